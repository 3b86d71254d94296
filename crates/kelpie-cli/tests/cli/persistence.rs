//! Save, resurrect, and state that survives the daemon.

use super::kelpie;
use std::time::Duration;

#[test]
fn resurrect_after_kill_brings_back_names_config_and_env() {
    let k = kelpie();
    let app = k.fake_app();
    let eco = k.write(
        "eco.json",
        &format!(r#"{{"apps":[{{"name":"api","script":"{app}","args":["--print-env","GREETING"],"instances":2,"env":{{"GREETING":"hello"}},"kill_timeout":500}},
                    {{"name":"idle","script":"{app}","autostart":false}}]}}"#),
    );
    k.ok(&["start", &eco]);
    let out = k.ok(&["save"]);
    assert!(out.contains("saved 2 apps"), "{out}");
    k.ok(&["kill"]);
    assert!(
        !k.home().join("kelpie.sock").exists(),
        "kill stops the daemon"
    );
    let out = k.ok(&["resurrect"]);
    assert!(out.contains("api"), "{out}");
    let list = k.jlist();
    assert_eq!(list.len(), 3);
    let api: Vec<_> = list.iter().filter(|a| a["name"] == "api").collect();
    assert_eq!(api.len(), 2);
    assert!(api
        .iter()
        .all(|a| a["pm2_env"]["status"] == "online" && a["pm2_env"]["kill_timeout"] == 500));
    assert_eq!(
        k.status("idle"),
        "stopped",
        "a saved stopped app comes back stopped"
    );
    k.wait_for("env restored", Duration::from_secs(15), || {
        k.log("api-out-0.log").matches("GREETING=hello").count() >= 2
    });
    // Resurrect again: names already present are left alone.
    let out = k.ok(&["resurrect"]);
    assert!(out.contains("already in the list"), "{out}");
    assert_eq!(k.jlist().len(), 3);
}

#[test]
fn save_refuses_to_replace_a_dump_with_an_empty_list_and_keeps_a_backup() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "api"]);
    k.ok(&["save"]);
    k.ok(&["save"]);
    assert!(k.home().join("dump.json.bak").exists());
    k.ok(&["delete", "all"]);
    let err = k.fails(&["save"]);
    assert!(err.contains("--force"), "{err}");
    let dump = std::fs::read_to_string(k.home().join("dump.json")).expect("dump");
    assert!(dump.contains("\"api\""), "the dump is unchanged");
    k.ok(&["save", "--force"]);
}

#[test]
fn a_corrupt_dump_is_reported_and_the_backup_used() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "api"]);
    k.ok(&["save"]);
    k.ok(&["save"]);
    k.ok(&["kill"]);
    std::fs::write(k.home().join("dump.json"), "{\"version\":1,\"apps\":[").expect("corrupt");
    let out = k.ok(&["resurrect"]);
    assert!(
        out.contains("not a valid dump") && out.contains("backup"),
        "{out}"
    );
    assert_eq!(k.status("api"), "online");
    // Set aside (PM2 deletes it), so the next resurrect or save does not meet it again.
    assert!(out.contains("kept as"), "{out}");
    assert!(!k.home().join("dump.json").exists());
    let kept = std::fs::read_dir(k.home())
        .expect("ls")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("dump.json.corrupt-")
        })
        .count();
    assert_eq!(kept, 1);
    let err = {
        k.ok(&["kill"]);
        std::fs::write(k.home().join("dump.json.bak"), "garbage").expect("corrupt bak");
        k.fails(&["resurrect"])
    };
    assert!(err.contains("dump.json") && err.contains("backup"), "{err}");
    assert!(k.jlist().is_empty(), "nothing started");
}

#[test]
fn update_with_no_daemon_running_starts_one() {
    let k = kelpie();
    let out = k.ok(&["update"]);
    assert!(out.contains("no daemon was running; started"), "{out}");
    let daemon = k.daemon_pid().expect("daemon pid");
    assert!(kelpie_testkit::alive(daemon));
    k.ok(&["ping"]);
}
