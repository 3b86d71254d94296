//! `startup` / `unstartup`: the boot service, checked with systemd's own validator, and the
//! boot itself: the service's command brings back the saved apps when none is left.

use super::kelpie;
use std::time::Duration;

#[test]
fn the_systemd_unit_passes_systemd_analyze_and_unstartup_removes_it() {
    let k = kelpie();
    let dir = tempfile::tempdir().expect("unit dir");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let out = k.ok(&[
        "startup",
        "systemd",
        "--dir",
        dir_arg,
        "--service-name",
        "kelpie-test",
    ]);
    let unit = dir.path().join("kelpie-test.service");
    assert!(out.contains("wrote"), "{out}");
    let text = std::fs::read_to_string(&unit).expect("the unit");
    for line in [
        format!("Environment=KELPIE_HOME={}", k.home().display()),
        format!("StandardError=append:{}/kelpie.log", k.home().display()),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    match std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
    {
        Ok(verify) => {
            let said = String::from_utf8_lossy(&verify.stderr);
            assert!(verify.status.success() && said.trim().is_empty(), "{said}");
        }
        Err(e) => kelpie_testkit::skip(format!(
            "the check with systemd-analyze (Debian's `systemd`), which cannot run: {e}"
        )),
    }
    k.ok(&[
        "unstartup",
        "systemd",
        "--dir",
        dir_arg,
        "--service-name",
        "kelpie-test",
    ]);
    assert!(!unit.exists());
    let again = k.fails(&[
        "unstartup",
        "systemd",
        "--dir",
        dir_arg,
        "--service-name",
        "kelpie-test",
    ]);
    assert!(again.contains("no boot service at"), "{again}");
}

#[test]
fn the_boot_command_brings_back_the_saved_list_when_no_app_is_left() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "saved"]);
    k.ok(&["save"]);
    // `kill` stops everything and leaves no app for the next daemon: as after a reboot of a
    // machine where the list was saved and then the daemon killed.
    k.ok(&["kill"]);
    let printed = k.ok(&["startup", "systemd", "--print"]);
    let exec_start = printed
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    let words: Vec<&str> = exec_start.split_whitespace().collect();
    let mut daemon = std::process::Command::new(words[0]);
    daemon
        .args(&words[1..])
        .env("KELPIE_HOME", k.home())
        .stdout(std::process::Stdio::null())
        // As the unit says: StandardError=append:<home>/kelpie.log.
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(k.home().join("kelpie.log"))
                .expect("open kelpie.log"),
        );
    let mut daemon = daemon.spawn().expect("start the boot command");
    k.track(daemon.id());
    k.wait_for("the saved app back", Duration::from_secs(10), || {
        std::fs::read_to_string(k.home().join("kelpie.log"))
            .is_ok_and(|log| log.contains("brought back the 1 saved in the dump"))
    });
    assert_eq!(k.status("saved"), "online");
    k.ok(&["kill"]);
    let _ = daemon.wait();
}

#[test]
fn unstartup_removes_the_service_even_when_the_service_manager_cannot_be_reached() {
    let k = kelpie();
    if kelpie_sys::current_uid() != 0 {
        kelpie_testkit::skip("writing a boot service under /etc needs root");
        return;
    }
    // A service manager that cannot be reached (as in a container with no systemd running).
    let bin = k.dir.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let systemctl = bin.join("systemctl");
    std::fs::write(
        &systemctl,
        "#!/bin/sh\necho 'Failed to connect to bus' >&2\nexit 1\n",
    )
    .expect("systemctl");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let name = format!("kelpie-test-unstartup-{}", std::process::id());
    let unit = std::path::PathBuf::from(format!("/etc/systemd/system/{name}.service"));
    let run = |verb: &str| {
        k.command(&[verb, "systemd", "--service-name", &name])
            .env("PATH", &path)
            .output()
            .expect("run")
    };
    let started = run("startup");
    assert!(
        unit.exists(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let said = String::from_utf8_lossy(&started.stderr);
    assert!(
        said.contains("`kelpie unstartup`"),
        "how to undo it: {said}"
    );
    let out = run("unstartup");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let removed = !unit.exists();
    let _ = std::fs::remove_file(&unit);
    assert!(removed, "the file is removed: {said}");
    assert!(!out.status.success());
    assert!(
        said.contains("failed") && !said.contains("the file is written"),
        "unstartup's own words: {said}"
    );
}

/// The launchd job, read back by a real property-list parser (Python's `plistlib`, which
/// reads the XML format launchd reads), and its keys against launchd.plist(5): the types
/// launchd expects of each, the daemon in the foreground with the home, the log appended to.
#[test]
fn the_launchd_plist_parses_and_has_the_keys_launchd_documents() {
    let k = kelpie();
    let dir = tempfile::tempdir().expect("plist dir");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let name = "dev.kelpie.test&co";
    k.ok(&[
        "startup",
        "launchd",
        "--dir",
        dir_arg,
        "--service-name",
        name,
    ]);
    let plist = dir.path().join(format!("{name}.plist"));
    // Each key with its value as JSON, the value's Python type beside it.
    let script = r#"
import json, plistlib, sys
with open(sys.argv[1], 'rb') as f:
    job = plistlib.load(f)
print(json.dumps({k: [type(v).__name__, v] for k, v in job.items()}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&plist)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let typed = |key: &str, kind: &str| -> serde_json::Value {
        let entry = &job[key];
        assert_eq!(
            entry[0], kind,
            "{key} is a {kind} in launchd.plist(5): {job}"
        );
        entry[1].clone()
    };
    assert_eq!(typed("Label", "str"), name, "escaped and read back whole");
    let arguments = typed("ProgramArguments", "list");
    assert_eq!(arguments[1], "daemon");
    assert_eq!(arguments[2], "--resurrect-if-empty");
    assert!(std::path::Path::new(arguments[0].as_str().expect("a path")).is_absolute());
    assert_eq!(typed("RunAtLoad", "bool"), true);
    assert_eq!(typed("AbandonProcessGroup", "bool"), true);
    assert_eq!(typed("KeepAlive", "dict")["SuccessfulExit"], false);
    let log = format!("{}/kelpie.log", k.home().display());
    assert_eq!(typed("StandardOutPath", "str"), log);
    assert_eq!(typed("StandardErrorPath", "str"), log);
    let environment = typed("EnvironmentVariables", "dict");
    assert_eq!(environment["KELPIE_HOME"], k.home().display().to_string());
    assert!(environment["PATH"].is_string());
    // As root, a LaunchDaemon for the user named; as anyone else, the user's own LaunchAgent,
    // which names no user (it runs as the one who loads it).
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .expect("id");
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        assert_eq!(typed("UserName", "str"), "root");
    } else {
        assert!(job.get("UserName").is_none(), "{job}");
    }
    let known = [
        "Label",
        "UserName",
        "ProgramArguments",
        "EnvironmentVariables",
        "RunAtLoad",
        "KeepAlive",
        "AbandonProcessGroup",
        "StandardOutPath",
        "StandardErrorPath",
    ];
    for key in job.as_object().expect("a dict").keys() {
        assert!(known.contains(&key.as_str()), "{key} is not a launchd key");
    }
    k.ok(&[
        "unstartup",
        "launchd",
        "--dir",
        dir_arg,
        "--service-name",
        name,
    ]);
    assert!(!plist.exists());
}
