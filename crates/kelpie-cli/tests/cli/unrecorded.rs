//! Processes of a home's apps that what the next daemon restores does not describe (issue 51,
//! findings 2 and 5): one started after the state that could be read (a corrupt `state.json`
//! recovered from a `state.json.bak` that does not know it) is adopted under its app with its
//! output read on, or stopped with its app's signal and a line in kelpie.log when its app is
//! known nowhere; with the daemon and its keeper both killed and no readable state, the apps'
//! processes are found by their environment and stopped, and their apps started again from the
//! dump: none runs on unmanaged.

use super::kelpie;
use super::survival::{keeper_of, kill_daemon};
use kelpie_testkit::{alive, Kelpie};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// Numbered lines, a few a second; it ignores SIGPIPE, as a quiet server would never see it,
/// so that it outlives the pipes of a daemon and keeper both killed.
const PRINTER: &str = "trap '' PIPE\ni=0\nwhile :; do\n  i=$((i+1))\n  echo \"n $i\" 2>/dev/null\n  sleep 0.05\ndone\n";

fn daemon_log(k: &Kelpie) -> String {
    std::fs::read_to_string(k.home().join("kelpie.log")).unwrap_or_default()
}

/// The numbers of `name`'s output lines, in file order.
fn numbers(k: &Kelpie, name: &str) -> Vec<u64> {
    k.log(&format!("{name}-out.log"))
        .lines()
        .filter_map(|line| line.strip_prefix("n "))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// `printer.sh` started as each of `names`, with their pids, each tracked so that a failed test
/// leaves none running.
fn printers(k: &Kelpie, names: &[&str]) -> Vec<u32> {
    let script = k.write("printer.sh", PRINTER);
    names
        .iter()
        .map(|name| {
            k.ok(&["start", &script, "--name", name]);
            let pid = k.pid(name);
            k.track(pid);
            pid
        })
        .collect()
}

/// Replace `state.json.bak` by the state without app `name` (the state before it started), and
/// make `state.json` unreadable.
fn backup_without(k: &Kelpie, name: &str) {
    let text = std::fs::read_to_string(k.home().join("state.json")).expect("state.json");
    let mut state: serde_json::Value = serde_json::from_str(&text).expect("state.json is JSON");
    let apps = state["apps"].as_array_mut().expect("apps");
    let before = apps.len();
    apps.retain(|app| app["spec"]["name"] != name);
    assert!(apps.len() < before, "{name} was in the state: {text}");
    std::fs::write(
        k.home().join("state.json.bak"),
        serde_json::to_string(&state).expect("json"),
    )
    .expect("write the backup");
    std::fs::write(k.home().join("state.json"), "{\"version\": 1, garbage").expect("corrupt");
}

/// After `kelpie kill`, none of `pids` runs.
fn all_ended(k: &Kelpie, pids: &[u32]) {
    k.ok(&["kill"]);
    for pid in pids {
        k.wait_for("the app's process gone", 10 * SECS, || !alive(*pid));
    }
}

#[test]
fn a_process_the_recovered_state_does_not_know_is_adopted_under_its_app_with_its_output() {
    let k = kelpie();
    let pids = printers(&k, &["a", "b"]);
    // The dump knows b; the backup, the state before b started, does not.
    k.ok(&["save"]);
    backup_without(&k, "b");
    k.wait_for("b printing", 10 * SECS, || numbers(&k, "b").len() >= 5);
    kill_daemon(&k);
    // Printed while no daemon runs, kept by the keeper.
    let out = k.run(&["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<u32> = ["a", "b"].iter().map(|n| k.pid(n)).collect();
    assert_eq!(
        listed, pids,
        "the same processes, adopted: none started again"
    );
    let log = daemon_log(&k);
    assert!(
        log.contains(&format!("app `b` (id 1): adopting process {}", pids[1])),
        "{log}"
    );
    // Its output is read on: the lines it prints now reach its log, after those from before.
    let then = numbers(&k, "b").last().copied().unwrap_or(0);
    k.wait_for("b's new lines in its log", 15 * SECS, || {
        numbers(&k, "b").last().is_some_and(|n| *n > then + 20)
    });
    let seen = numbers(&k, "b");
    let gaps: Vec<(u64, u64)> = seen
        .windows(2)
        .filter(|pair| pair[1] != pair[0] + 1)
        .map(|pair| (pair[0], pair[1]))
        .collect();
    // A daemon killed with SIGKILL may lose what it had read but not written (one read).
    assert!(
        gaps.len() <= 1 && gaps.iter().all(|(before, after)| after > before),
        "b's lines not once and in order: {gaps:?}"
    );
    // Managed: `stop` ends it, `kill` the rest.
    k.ok(&["stop", "b"]);
    k.wait_for("b's process gone", 10 * SECS, || !alive(pids[1]));
    all_ended(&k, &pids);
}

#[test]
fn a_process_of_an_app_known_nowhere_is_stopped_and_said() {
    let k = kelpie();
    let pids = printers(&k, &["a", "b"]);
    // Neither the backup nor the dump knows b (saved before it? never saved at all).
    backup_without(&k, "b");
    kill_daemon(&k);
    let out = k.run(&["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.wait_for("b's process stopped", 15 * SECS, || !alive(pids[1]));
    let log = daemon_log(&k);
    assert!(
        log.contains(&format!(
            "app `b`: stopping process group {} left by a previous daemon with SIGINT (neither the state nor the dump knows its app `b`)",
            pids[1]
        )),
        "{log}"
    );
    let names: Vec<String> = k
        .jlist()
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(k.pid("a"), pids[0], "a adopted");
    all_ended(&k, &pids);
}

#[test]
fn with_daemon_and_keeper_killed_and_no_readable_state_no_app_process_runs_unmanaged() {
    let k = kelpie();
    let mut pids = printers(&k, &["a", "b"]);
    k.ok(&["save"]);
    // c is in no dump: nothing could start it again.
    pids.extend(printers(&k, &["c"]));
    let keeper = keeper_of(&k);
    kill_daemon(&k);
    std::process::Command::new("kill")
        .args(["-9", &keeper.to_string()])
        .status()
        .expect("kill -9");
    k.wait_for("the keeper gone", 5 * SECS, || !alive(keeper));
    // Neither the state nor its backup can be read: a directory, and an empty file.
    let state = k.home().join("state.json");
    std::fs::remove_file(&state).expect("rm state");
    std::fs::create_dir(&state).expect("a directory in its place");
    std::fs::write(k.home().join("state.json.bak"), "").expect("empty backup");
    assert!(pids.iter().all(|pid| alive(*pid)), "the apps outlived both");

    let out = k.run(&["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The old processes are stopped; the saved apps run again, new processes, listed.
    for pid in &pids {
        k.wait_for("an old process stopped", 15 * SECS, || !alive(*pid));
    }
    k.wait_for("a and b online again", 15 * SECS, || {
        let list = k.jlist();
        list.len() == 2
            && list.iter().all(|p| {
                p["pm2_env"]["status"] == "online" && p["pid"].as_u64().is_some_and(|p| p > 0)
            })
    });
    let now: Vec<u32> = ["a", "b"].iter().map(|n| k.pid(n)).collect();
    for pid in &now {
        k.track(*pid);
        assert!(!pids.contains(pid), "started anew: {now:?} {pids:?}");
    }
    let log = daemon_log(&k);
    for (name, pid) in ["a", "b"].iter().zip(&pids) {
        assert!(
            log.contains(&format!(
                "stopping process group {pid} left by a previous daemon"
            )) && log.contains(&format!("`{name}` (pid {pid})")),
            "{log}"
        );
    }
    assert!(
        log.contains(&format!(
            "app `c`: stopping process group {} left by a previous daemon with SIGINT (neither the state nor the dump knows its app `c`)",
            pids[2]
        )),
        "{log}"
    );
    all_ended(&k, &now);
}
