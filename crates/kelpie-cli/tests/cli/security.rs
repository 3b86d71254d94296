//! Secrets and privileges: env values named like secrets are masked where they are shown, the
//! files that hold them are private, apps run as exactly their configured user and groups, and
//! a root daemon takes no orders from another user.

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// An app whose config `env` holds secrets and ordinary values.
fn start_with_secrets(k: &Kelpie) {
    let file = k.write(
        "secrets.json",
        &format!(
            r#"{{"apps": [{{"name": "vault", "script": "{}", "env": {{
                "PORT": "3000",
                "API_TOKEN": "tok-value-1",
                "db_password": "pw-value-2",
                "Stripe_Secret": "sec-value-3",
                "AWS_ACCESS_KEY_ID": "key-value-4"
            }}}}]}}"#,
            k.fake_app()
        ),
    );
    k.ok(&["start", &file]);
}

const SECRET_VALUES: [&str; 4] = ["tok-value-1", "pw-value-2", "sec-value-3", "key-value-4"];

#[test]
fn secret_env_values_are_masked_unless_asked_and_still_reach_the_app() {
    let k = kelpie();
    start_with_secrets(&k);

    let described = k.ok(&["describe", "vault"]);
    assert!(described.contains("PORT=3000"), "{described}");
    for name in [
        "API_TOKEN",
        "db_password",
        "Stripe_Secret",
        "AWS_ACCESS_KEY_ID",
    ] {
        assert!(
            described.contains(&format!("{name}=****")),
            "{name}: {described}"
        );
    }
    for value in SECRET_VALUES {
        assert!(!described.contains(value), "{value} shown: {described}");
    }
    assert!(described.contains("--show-secrets"), "{described}");
    let shown = k.ok(&["describe", "vault", "--show-secrets"]);
    assert!(shown.contains("API_TOKEN=tok-value-1"), "{shown}");
    assert!(shown.contains("db_password=pw-value-2"), "{shown}");

    let jlist = k.ok(&["jlist"]);
    for value in SECRET_VALUES {
        assert!(!jlist.contains(value), "{value} in jlist: {jlist}");
    }
    let env = &k.app("vault")["pm2_env"]["env"];
    assert_eq!(env["PORT"], "3000");
    assert_eq!(env["API_TOKEN"], "****");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "****");
    let full = k.ok(&["jlist", "--show-secrets"]);
    let full: serde_json::Value = serde_json::from_str(full.trim()).expect("jlist JSON");
    assert_eq!(full[0]["pm2_env"]["env"]["API_TOKEN"], "tok-value-1");
    assert_eq!(full[0]["pm2_env"]["env"]["Stripe_Secret"], "sec-value-3");

    // Masking is only how they are shown: the app gets the values, and the dump keeps them.
    let environ = std::fs::read(format!("/proc/{}/environ", k.pid("vault"))).expect("environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("API_TOKEN=tok-value-1"), "{environ}");
    k.ok(&["save"]);
    let dump = std::fs::read_to_string(k.home().join("dump.json")).expect("dump");
    assert!(dump.contains("tok-value-1"), "{dump}");
}

#[test]
fn the_files_that_hold_secrets_are_private() {
    let k = kelpie();
    start_with_secrets(&k);
    k.ok(&["save"]);
    // A second save keeps the first as dump.json.bak.
    k.ok(&["save", "--force"]);
    let port = kelpie_testkit::free_port();
    k.ok(&["web", "--port", &port.to_string()]);
    k.ok(&["update"]);
    let home = k.home();
    assert_eq!(mode(home), 0o700, "the home");
    assert_eq!(mode(&home.join("kelpie.sock")), 0o600, "the socket");
    for file in ["dump.json", "dump.json.bak", "state.json", "web.token"] {
        assert_eq!(mode(&home.join(file)), 0o600, "{file}");
    }
    // What `kelpie update` and the old daemon hand over is written 0600 (like the files above,
    // by the same function) and removed once read.
    for file in ["handoff.json", "update-to", "update-result"] {
        assert!(
            !home.join(file).exists(),
            "{file} is left behind (mode {:o})",
            mode(&home.join(file))
        );
    }
    k.ok(&["kill"]);
    assert_eq!(mode(&home.join("dump.json")), 0o600);
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// The values of a `/proc/<pid>/status` line (`Uid:`, `Gid:`, `Groups:`).
fn status_ids(pid: u32, line: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("no {line} in {status}"))
        .split_whitespace()
        .map(|n| n.parse().expect("a number"))
        .collect()
}

/// The gid of a group in /etc/group.
fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            (fields.first() == Some(&name)).then(|| fields.get(2)?.parse().ok())?
        })
}

#[test]
fn apps_run_with_exactly_their_uid_gid_and_groups() {
    if !is_root() {
        kelpie_testkit::skip("needs root to run apps as another user");
        return;
    }
    let k = kelpie();
    let (uid, primary) = kelpie_sys::lookup_user("nobody").expect("the nobody user");
    let group = ["nogroup", "nobody"]
        .into_iter()
        .find(|g| group_id(g).is_some())
        .expect("a nogroup or nobody group");
    let gid = group_id(group).expect("gid");
    // The user alone: its uid, its primary group, and its own groups only.
    k.ok(&["start", &k.fake_app(), "--name", "plain", "--uid", "nobody"]);
    let pid = k.pid("plain");
    assert_eq!(status_ids(pid, "Uid:"), vec![uid; 4]);
    assert_eq!(status_ids(pid, "Gid:"), vec![primary; 4]);
    let mut expected = kelpie_sys::groups_of("nobody");
    if !expected.contains(&primary) {
        expected.push(primary);
    }
    expected.sort_unstable();
    let mut groups = status_ids(pid, "Groups:");
    groups.sort_unstable();
    assert_eq!(groups, expected, "no group of root's is left");
    assert!(!groups.contains(&0));

    // With a group: that gid, and still none of root's groups.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "grouped",
        "--user",
        "nobody",
        "--group",
        group,
    ]);
    let pid = k.pid("grouped");
    assert_eq!(status_ids(pid, "Uid:"), vec![uid; 4]);
    assert_eq!(status_ids(pid, "Gid:"), vec![gid; 4]);
    let groups = status_ids(pid, "Groups:");
    assert!(groups.contains(&gid), "{groups:?}");
    assert!(!groups.contains(&0), "{groups:?}");
    // The root daemon itself is unchanged.
    let daemon = k.daemon_pid().expect("daemon pid");
    assert_eq!(status_ids(daemon, "Uid:"), vec![0; 4]);
}

#[test]
fn a_root_daemon_takes_no_orders_from_another_user() {
    if !is_root() {
        kelpie_testkit::skip("needs root to run a client as another user");
        return;
    }
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "rooted"]);
    let pid = k.pid("rooted");
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_kelpie"))
            .args(args)
            .env("KELPIE_HOME", k.home())
            .current_dir("/")
            .output()
    };
    let Ok(out) = as_nobody(&["stop", "all"]) else {
        kelpie_testkit::skip("setpriv (util-linux) is not available");
        return;
    };
    // The home is private: the socket cannot even be reached (exit status 7: permission).
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains(&k.home().display().to_string()),
        "{err}"
    );
    // Opened up, the daemon's own check refuses it.
    std::fs::set_permissions(k.home(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        k.home().join("kelpie.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .expect("chmod sock");
    let out = as_nobody(&["stop", "all"]).expect("setpriv");
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains("uid 65534"),
        "{err}"
    );
    // A refused request carried out anyway would be in the supervisor's queue before this
    // list (which it answers in order): it would show as stopping or stopped.
    assert_eq!(k.status("rooted"), "online");
    assert_eq!(k.pid("rooted"), pid, "the refused client changed nothing");
}
