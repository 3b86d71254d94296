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
