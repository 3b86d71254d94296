//! The apps outlive the daemon: `kill -9` of the daemon leaves every app running with its output
//! read (by the daemon's keeper) and its port open, and the next daemon adopts the same
//! processes and goes on supervising them. Without a keeper (killed too), the next daemon stops
//! what was left and starts it again: never twice.

use super::apps::GracefulNode;
use super::{free_port, heavy, kelpie, local};
use kelpie_testkit::{alive, load, written, BackgroundLoad, Kelpie};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// `kill -9` of the daemon, waiting until it is gone.
pub(super) fn kill_daemon(k: &Kelpie) -> u32 {
    let daemon = k.daemon_pid().expect("daemon pid");
    kill9(daemon);
    k.wait_for("the daemon gone", 5 * SECS, || !alive(daemon));
    daemon
}

fn kill9(pid: u32) {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill -9");
}

/// The daemon's keeper, once it has written its pid (it starts next to the daemon, which
/// answers before the keeper is ready on a loaded machine).
pub(super) fn keeper_of(k: &Kelpie) -> u32 {
    k.wait_for("the keeper's pid file", 5 * SECS, || {
        k.keeper_pid().is_some()
    });
    k.keeper_pid().expect("keeper")
}

/// The keeper that replaced `first` (its pid file names it).
fn second_keeper(k: &Kelpie, first: u32) -> u32 {
    k.keeper_pid().filter(|p| *p != first).unwrap_or(0)
}

/// Whether `holder` has the pipe `app` writes its output to among its descriptors.
fn holds_output_of(holder: u32, app: u32) -> bool {
    let Ok(pipe) = std::fs::read_link(format!("/proc/{app}/fd/1")) else {
        return false;
    };
    std::fs::read_dir(format!("/proc/{holder}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == pipe))
}

/// `kill -9` of the keeper, until another one holds the output pipe of `app`'s process (the
/// daemon gives it everything the first one held).
fn replace_the_keeper(k: &Kelpie, app: u32) {
    let first = keeper_of(k);
    kill9(first);
    k.wait_for("another keeper", 10 * SECS, || {
        k.keeper_pid().is_some_and(|p| p != first && alive(p))
    });
    k.wait_for("the new keeper holding the app's output", 10 * SECS, || {
        holds_output_of(second_keeper(k, first), app)
    });
}

/// Lines of a log file that start with `prefix`, as numbers.
fn numbered(k: &Kelpie, file: &str, prefix: &str) -> Vec<u64> {
    k.log(file)
        .lines()
        .filter_map(|line| line.strip_prefix(prefix))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Every line once and in order: nothing lost, doubled or reordered.
fn assert_consecutive(seen: &[u64], what: &str) {
    assert!(!seen.is_empty(), "no {what}");
    let breaks: Vec<(u64, u64)> = seen
        .windows(2)
        .filter(|pair| pair[1] != pair[0] + 1)
        .map(|pair| (pair[0], pair[1]))
        .collect();
    assert!(
        breaks.is_empty(),
        "{what}: not every line once and in order: {breaks:?}"
    );
}

/// (name, pid, restarts) of every process.
fn processes(k: &Kelpie) -> Vec<(String, u64, u64)> {
    k.jlist()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["pid"].as_u64().unwrap_or(0),
                p["pm2_env"]["restart_time"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn apps_outlive_a_daemon_killed_with_sigkill_and_the_next_one_adopts_them() {
    let _heavy = heavy();
    let k = kelpie();
    let fake = k.fake_app();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    k.ok(&["start", &fake, "--name", "ticker", "--", "--tick", "5"]);
    k.ok(&[
        "start", &fake, "--name", "web", "-i", "2", "--port", &address, "--", "--serve",
    ]);
    // Prints far more than its pipes hold (1 MiB + 64 KiB) once told to, then says it is done.
    let trigger = k.home().join("trigger");
    let done = k.home().join("done");
    let burst = k.write_script(
        "burst.sh",
        &format!(
            "#!/bin/sh\n\
             while [ ! -e {trigger} ]; do sleep 0.02; done\n\
             seq 1 300000 | sed 's/^/burst /'\n\
             seq 1 20000 | sed 's/^/oops /' >&2\n\
             touch {done}\n\
             exec sleep 300\n",
            trigger = trigger.display(),
            done = done.display()
        ),
    );
    k.ok(&["start", &burst, "--name", "burst"]);
    k.wait_for("ticks in the log", 10 * SECS, || {
        numbered(&k, "ticker-out.log", "tick ").len() > 20
    });
    let before = processes(&k);
    let keeper = keeper_of(&k);
    assert!(alive(keeper));

    // Requests keep coming while the daemon is dead and when the next one takes over.
    let load = BackgroundLoad::start(local(port), false, 2);
    k.wait_for("answers before the kill", 10 * SECS, || load.seen().ok > 0);
    let daemon = kill_daemon(&k);
    let ticker = before
        .iter()
        .find(|p| p.0 == "ticker")
        .map(|p| p.1 as u32)
        .expect("ticker");
    let (ticked, answered) = (written(ticker), load.seen().ok);
    // With no daemon: the burst is printed in full, nothing blocks and nothing dies (a write
    // to a pipe nobody holds would kill its writer; one nobody reads would block it).
    std::fs::write(&trigger, "").expect("trigger");
    k.wait_for(
        "the burst printed with no daemon reading",
        10 * SECS,
        || done.exists(),
    );
    k.wait_for(
        "ticks written and requests answered with no daemon",
        10 * SECS,
        || written(ticker) > ticked + 100 && load.seen().ok > answered + 10,
    );
    for (name, pid, _) in &before {
        assert!(alive(*pid as u32), "{name} ({pid}) died with the daemon");
    }
    assert!(alive(keeper), "the keeper waits for the next daemon");

    // The next command starts a daemon that adopts every process.
    k.ok(&["ping"]);
    assert_ne!(k.daemon_pid(), Some(daemon));
    let answered = load.seen().ok;
    k.wait_for("requests answered after the adoption", 10 * SECS, || {
        load.seen().ok > answered + 10
    });
    let report = load.finish();
    assert_eq!(processes(&k), before, "same pids, nothing restarted");
    for (name, _, _) in &before {
        assert_eq!(k.status(name), "online", "{name}");
    }
    assert_eq!(report.failed, 0, "no refused or failed request: {report:?}");
    assert!(report.ok > 20, "requests served: {report:?}");
    k.wait_for("the old keeper gone", 5 * SECS, || !alive(keeper));
    let daemon_log = std::fs::read_to_string(k.home().join("kelpie.log")).unwrap_or_default();
    assert!(
        daemon_log.contains("adopted 4 processes left running by daemon"),
        "{daemon_log}"
    );

    // Every line printed while no daemon ran reached the files, once and in order.
    k.wait_for("the whole burst in the logs", 20 * SECS, || {
        numbered(&k, "burst-out.log", "burst ").len() == 300000
            && numbered(&k, "burst-error.log", "oops ").len() == 20000
    });
    assert_consecutive(&numbered(&k, "burst-out.log", "burst "), "burst");
    assert_eq!(numbered(&k, "burst-error.log", "oops ").len(), 20000);
    let count = numbered(&k, "ticker-out.log", "tick ").len();
    k.wait_for("more ticks", 10 * SECS, || {
        numbered(&k, "ticker-out.log", "tick ").len() > count + 20
    });
    // Nothing lost to the kill either: what the daemon had seen but not written was still in
    // the pipe (issue 51, finding 3).
    assert_consecutive(&numbered(&k, "ticker-out.log", "tick "), "ticks");
    assert!(k
        .ok(&["logs", "ticker", "--nostream", "--lines", "3"])
        .contains("tick "));

    // Still supervised: a crash of an adopted process is restarted, a stop stops it.
    let ticker = k.pid("ticker");
    kill9(ticker);
    k.wait_for("ticker restarted", 10 * SECS, || {
        let pid = k.pid("ticker");
        pid != 0 && pid != ticker && k.status("ticker") == "online"
    });
    assert_eq!(k.app("ticker")["pm2_env"]["restart_time"], 1);
    let web: Vec<u32> = before
        .iter()
        .filter(|p| p.0 == "web")
        .map(|p| p.1 as u32)
        .collect();
    assert!(load::get(local(port)).is_ok());
    k.ok(&["stop", "web"]);
    for pid in web {
        assert!(!alive(pid), "web process {pid} stopped");
    }
}

#[test]
fn after_an_update_or_a_killed_keeper_a_new_keeper_still_keeps_everything() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "ticker", "--", "--tick", "5"]);
    let pid = k.pid("ticker");
    // `kelpie update` dismisses the keeper before the exec; the new program starts its own.
    let before_update = keeper_of(&k);
    assert!(k.ok(&["update"]).contains("none restarted"));
    k.wait_for("the new program's keeper", 10 * SECS, || {
        k.keeper_pid()
            .is_some_and(|p| p != before_update && alive(p))
    });
    assert!(!alive(before_update));
    // The new keeper is given everything the first one held (the app's output pipe among it):
    // the app survives the daemon, and goes on writing.
    replace_the_keeper(&k, pid);
    kill_daemon(&k);
    let ticked = written(pid);
    k.wait_for("ticks written with no daemon", 10 * SECS, || {
        written(pid) > ticked + 100
    });
    assert!(alive(pid));
    k.ok(&["ping"]);
    assert_eq!(k.pid("ticker"), pid, "adopted");
    assert_eq!(k.status("ticker"), "online");
    let count = numbered(&k, "ticker-out.log", "tick ").len();
    k.wait_for("more ticks", 10 * SECS, || {
        numbered(&k, "ticker-out.log", "tick ").len() > count + 20
    });
    // Nothing lost to the kill either: what the daemon had seen but not written was still in
    // the pipe (issue 51, finding 3).
    assert_consecutive(&numbered(&k, "ticker-out.log", "tick "), "ticks");
}

/// A Node app counting over its IPC channel (`@pm2/io`'s message, no npm package), every 100 ms.
const COUNTING_NODE_APP: &str = r#"
let count = 0;
setInterval(() => process.send({ type: 'axm:monitor', data: { count: { value: ++count } } }), 100);
"#;

/// The count a Node app last sent over its IPC channel, as `jlist` shows it.
fn ipc_count(k: &Kelpie, name: &str) -> f64 {
    k.app(name)["pm2_env"]["axm_monitor"]["count"]["value"]
        .as_f64()
        .unwrap_or(0.0)
}

/// A keeper that replaces a killed one is given each process with its IPC channel, and the
/// next daemon reads the channel on: the keeper's client gives the new keeper copies of what
/// it holds by their numbers in the daemon, and the process's IPC end was held by a copy
/// closed right after the spawn (the new keeper then got nothing of the process).
#[test]
fn a_new_keeper_keeps_a_node_apps_ipc_channel_for_the_next_daemon() {
    if super::tools::program("node").is_none() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let k = kelpie();
    let script = k.write("counting.js", COUNTING_NODE_APP);
    k.ok(&["start", &script, "--name", "counting"]);
    let pid = k.pid("counting");
    k.wait_for("the count over IPC", 10 * SECS, || {
        ipc_count(&k, "counting") > 0.0
    });
    replace_the_keeper(&k, pid);
    kill_daemon(&k);
    k.ok(&["ping"]);
    assert_eq!(k.pid("counting"), pid, "adopted");
    assert_eq!(k.status("counting"), "online");
    // What it sends from now on reaches the new daemon: its channel was handed over.
    let adopted_at = ipc_count(&k, "counting");
    k.wait_for("the count going on over IPC", 10 * SECS, || {
        ipc_count(&k, "counting") > adopted_at + 5.0
    });
}

/// The blocking pool sends a spawn's holds to the keeper itself: a keeper that stops taking
/// them (stopped here) must not hold a restart back for longer than the send's timeout. It is
/// replaced, and the new one is given everything, the new processes' output included.
#[test]
fn a_stopped_keeper_is_replaced_and_holds_no_restart_back() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "ticker", "--", "--tick", "5"]);
    let ticker = k.pid("ticker");
    // Up 50 ms, longer than its min_uptime: it never counts as unstable, so it never errors.
    let crash = k.write_script(
        "crash.sh",
        "#!/bin/sh\necho out\necho err >&2\nsleep 0.05\nexit 1\n",
    );
    k.ok(&[
        "start",
        &crash,
        "--name",
        "crash",
        "--restart-delay",
        "0",
        "--min-uptime",
        "10",
        "--max-restarts",
        "1000000",
    ]);
    let restarts = || {
        k.app("crash")["pm2_env"]["restart_time"]
            .as_u64()
            .unwrap_or(0)
    };
    let first = keeper_of(&k);
    let status = std::process::Command::new("kill")
        .args(["-STOP", &first.to_string()])
        .status()
        .expect("kill -STOP");
    assert!(status.success());
    let before = restarts();
    // Its socket's buffer (about 250 messages, 6 a restart) fills within seconds; a send then
    // waits 2 s at most.
    k.wait_for("another keeper", 15 * SECS, || {
        k.keeper_pid().is_some_and(|p| p != first && alive(p))
    });
    k.wait_for("the stopped keeper gone", 5 * SECS, || !alive(first));
    let replaced = restarts();
    k.wait_for("the crash loop going on", 10 * SECS, || {
        restarts() > replaced + 20
    });
    assert!(
        replaced > before,
        "restarts went on while the keeper was stopped"
    );
    let second = second_keeper(&k, first);
    k.wait_for("the new keeper holding the app's output", 10 * SECS, || {
        holds_output_of(second, ticker)
    });
    // A process started after the replacement is held too.
    k.ok(&["restart", "ticker"]);
    let restarted = k.pid("ticker");
    assert_ne!(restarted, ticker);
    k.wait_for(
        "the new keeper holding the new process's output",
        10 * SECS,
        || holds_output_of(second, restarted),
    );
    kill_daemon(&k);
    k.ok(&["ping"]);
    assert_eq!(k.pid("ticker"), restarted, "adopted");
    k.ok(&["delete", "crash"]);
}

#[test]
fn a_process_that_ended_while_no_daemon_ran_is_started_again_not_adopted() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "gone"]);
    k.ok(&["start", &fake, "--name", "stays"]);
    let gone = k.pid("gone");
    let stays = k.pid("stays");
    kill_daemon(&k);
    kill9(gone);
    k.wait_for("it ended", 5 * SECS, || !alive(gone));
    k.ok(&["ping"]);
    assert_eq!(k.pid("stays"), stays);
    k.wait_for("gone started again", 10 * SECS, || {
        let pid = k.pid("gone");
        pid != 0 && pid != gone && k.status("gone") == "online"
    });
}

#[test]
fn without_its_keeper_a_killed_daemons_apps_are_restarted_never_run_twice() {
    let _heavy = heavy();
    let k = kelpie();
    let fake = k.fake_app();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    k.ok(&["start", &fake, "--name", "api", "--kill-timeout", "700"]);
    k.ok(&["start", &fake, "--name", "paused"]);
    k.ok(&["stop", "paused"]);
    k.ok(&[
        "start", &fake, "--name", "phoenix", "--port", &address, "--", "--serve",
    ]);
    let api = k.pid("api");
    let phoenix = k.pid("phoenix");
    let keeper = keeper_of(&k);
    kill9(keeper);
    let daemon = kill_daemon(&k);
    // The next command starts a new daemon that knows every app.
    let list = k.jlist();
    assert_eq!(list.len(), 3);
    assert_ne!(k.daemon_pid(), Some(daemon));
    assert_eq!(k.app("api")["pm2_env"]["kill_timeout"], 700);
    assert_eq!(k.status("paused"), "stopped");
    // What the dead daemon left is stopped first and started again: never kept twice.
    k.wait_for("api running again", 10 * SECS, || {
        let pid = k.pid("api");
        pid != 0 && pid != api && k.status("api") == "online"
    });
    k.wait_for("old api stopped", 5 * SECS, || !alive(api));
    // The new daemon took the port back from the old process.
    k.wait_for("a new process serving", 10 * SECS, || {
        let pid = k.pid("phoenix");
        pid != 0
            && pid != phoenix
            && load::get(local(port)).is_ok_and(|b| b.contains(&format!("pid={pid} ")))
    });
    assert!(!alive(phoenix));
}

#[test]
fn a_node_app_keeps_its_ipc_channel_while_no_daemon_runs() {
    let k = kelpie();
    if super::tools::program("node").is_none() {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
        return;
    }
    let app = GracefulNode::write(
        &k,
        "process.send('ready');\nsetInterval(() => console.log('alive'), 20);\n",
    );
    app.start_with_message(&k, "gr");
    let pid = k.pid("gr");
    kill_daemon(&k);
    // A closed channel is seen by Node's event loop at its next turn: 20 more lines (about
    // 400 ms of turns) would have come after it.
    let printed = written(pid);
    k.wait_for("lines written with no daemon", 10 * SECS, || {
        written(pid) >= printed + 20 * "alive\n".len() as u64
    });
    assert!(alive(pid));
    assert!(
        !app.disconnect.exists(),
        "the IPC channel closed with the daemon"
    );
    k.ok(&["ping"]);
    assert_eq!(k.pid("gr"), pid);
    // The stop goes through the IPC channel the keeper kept.
    k.ok(&["stop", "gr"]);
    assert!(app.shut_down());
    assert!(!app.disconnect.exists());
}

#[test]
fn kill_after_a_daemon_crash_stops_the_apps_it_left() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "left"]);
    let pid = k.pid("left");
    let keeper = keeper_of(&k);
    kill_daemon(&k);
    k.ok(&["kill"]);
    assert!(!alive(pid), "the app the dead daemon left is stopped");
    k.wait_for("the keeper gone", 5 * SECS, || !alive(keeper));
    assert!(k.daemon_pid().is_none_or(|p| !alive(p)));
}

#[test]
fn a_keeper_left_with_nothing_to_keep_exits() {
    let k = kelpie();
    let fake = k.fake_app();
    // `--quiet`: not even a start line, which a daemon killed early might leave unread for
    // the keeper (which then rightly stays, holding that output for the next daemon).
    k.ok(&["start", &fake, "--name", "quiet", "--", "--quiet"]);
    let pid = k.pid("quiet");
    let keeper = keeper_of(&k);
    kill_daemon(&k);
    // Its only app ends, and printed nothing meanwhile: nothing is left for a next daemon.
    kill9(pid);
    k.wait_for("the keeper gone", 5 * SECS, || !alive(keeper));
    assert!(!k.home().join("keeper.sock").exists());
    // The next daemon starts the app again from its state.
    k.wait_for("quiet started again", 10 * SECS, || {
        let now = k.pid("quiet");
        now != 0 && now != pid && k.status("quiet") == "online"
    });
}

/// Three apps started and saved, their pids, and the keeper of their daemon.
fn three_apps_saved(k: &Kelpie) -> (Vec<u32>, u32) {
    let fake = k.fake_app();
    for name in ["a", "b", "c"] {
        k.ok(&["start", &fake, "--name", name]);
    }
    k.ok(&["save"]);
    let pids: Vec<u32> = ["a", "b", "c"].iter().map(|n| k.pid(n)).collect();
    (pids, keeper_of(k))
}

/// After `kelpie kill`, none of `pids` runs.
fn all_ended(k: &Kelpie, pids: &[u32]) {
    k.ok(&["kill"]);
    for pid in pids {
        k.wait_for("the app's process gone", 5 * SECS, || !alive(*pid));
    }
}

/// What the first command after a recovery prints on stderr.
fn first_command_stderr(k: &Kelpie) -> String {
    let out = k.run(&["list"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_corrupt_state_and_a_daemon_crash_recover_the_state_before_its_last_change() {
    let k = kelpie();
    let (pids, _keeper) = three_apps_saved(&k);
    // One more change, so the backup is a real state with the three apps.
    k.ok(&["reset", "a"]);
    std::fs::write(k.home().join("state.json"), "{\"version\": 1, garbage").expect("corrupt");
    kill_daemon(&k);
    let told = first_command_stderr(&k);
    assert!(
        told.contains("kelpie: notice:") && told.contains("recovered 3 instances"),
        "{told}"
    );
    // Said once.
    assert!(!String::from_utf8_lossy(&k.run(&["list"]).stderr).contains("notice"));
    let now: Vec<u32> = ["a", "b", "c"].iter().map(|n| k.pid(n)).collect();
    assert_eq!(now, pids, "the same processes, adopted: none started again");
    // The unreadable file was kept aside, not lost.
    let kept = std::fs::read_dir(k.home()).expect("ls").flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("state.json.corrupt-")
    });
    assert!(kept);
    // resurrect runs nothing a second time.
    let resurrect = k.ok(&["resurrect"]);
    assert!(
        resurrect.contains("already in the list") || k.jlist().len() == 3,
        "{resurrect}"
    );
    assert_eq!(k.jlist().len(), 3);
    all_ended(&k, &pids);
}

#[test]
fn a_daemon_killed_right_after_a_recovery_leaves_the_recovered_state_to_the_next() {
    let k = kelpie();
    let (pids, _keeper) = three_apps_saved(&k);
    // An app with no process: only the state knows it, no keeper does.
    k.ok(&["start", &k.fake_app(), "--name", "d"]);
    k.ok(&["stop", "d"]);
    k.ok(&["reset", "a"]);
    let backup = k.home().join("state.json.bak");
    k.wait_for("the backup to know the stopped app", 5 * SECS, || {
        std::fs::read_to_string(&backup).is_ok_and(|text| text.contains("\"stopped\""))
    });
    std::fs::write(k.home().join("state.json"), "{\"version\": 1, garbage").expect("corrupt");
    kill_daemon(&k);
    let told = first_command_stderr(&k);
    assert!(told.contains("recovered 4 instances"), "{told}");
    // Killed before it wrote anything: the next daemon still has the recovered state (it
    // read a missing state.json as no apps, and the stopped app was lost).
    kill_daemon(&k);
    let list = k.jlist();
    let status = |name: &str| {
        list.iter().find(|p| p["name"] == name).map(|p| {
            p["pm2_env"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    };
    let listed: Vec<String> = list
        .iter()
        .map(|p| format!("{} {}", p["name"], p["pm2_env"]["status"]))
        .collect();
    assert_eq!(status("d").as_deref(), Some("stopped"), "{listed:?}");
    let now: Vec<u32> = ["a", "b", "c"].iter().map(|n| k.pid(n)).collect();
    assert_eq!(now, pids, "the same processes, adopted: none started again");
    assert_eq!(list.len(), 4, "{listed:?}");
    all_ended(&k, &pids);
}

#[test]
fn processes_no_state_describes_are_listed_and_managed_never_run_twice() {
    let k = kelpie();
    let (pids, _keeper) = three_apps_saved(&k);
    // Neither the state nor its backup can be read: a directory, and an empty file.
    let state = k.home().join("state.json");
    std::fs::remove_file(&state).expect("rm state");
    std::fs::create_dir(&state).expect("a directory in its place");
    std::fs::write(k.home().join("state.json.bak"), "").expect("empty backup");
    kill_daemon(&k);
    let told = first_command_stderr(&k);
    assert!(
        told.contains("3 processes kept running by the last daemon were described by no state"),
        "{told}"
    );
    // Listed under their names (the dump's specs), with their pids, and managed.
    let now: Vec<u32> = ["a", "b", "c"].iter().map(|n| k.pid(n)).collect();
    assert_eq!(now, pids);
    // resurrect starts none of them again.
    k.ok(&["resurrect"]);
    assert_eq!(k.jlist().len(), 3, "{:?}", k.jlist());
    let running: usize = pids.iter().filter(|p| alive(**p)).count();
    assert_eq!(running, 3);
    // `stop` ends one, `kill` the others.
    k.ok(&["stop", "a"]);
    k.wait_for("a's process gone", 5 * SECS, || !alive(pids[0]));
    all_ended(&k, &pids);
}

/// How many of process `pid`'s open descriptors are of each kind: `socket`, `pipe` (one end
/// of a pipe whose other end is elsewhere: an app's output), `own pipe` (both ends held here:
/// the log thread's scratch pipe, made when it first reads a line), `anon_inode:[pidfd]`, or
/// `file`.
fn descriptor_kinds(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    let mut pipes: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        let kind = match target.split_once(':') {
            Some(("anon_inode", what)) => format!("anon_inode:{what}"),
            Some(("pipe", inode)) => {
                *pipes.entry(inode.to_string()).or_default() += 1;
                continue;
            }
            Some(("socket", _)) => "socket".to_string(),
            _ => "file".to_string(),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    for ends in pipes.into_values() {
        let kind = if ends == 1 { "pipe" } else { "own pipe" };
        *kinds.entry(kind.to_string()).or_default() += ends;
    }
    kinds
}

/// What 9 more apps cost: in the daemon, their output pipes and pidfds (and files kept open
/// up to a bound: logs, /proc), no socket (one more may be a client's connection being
/// closed); in the keeper, their pipes only.
fn check_descriptor_costs(
    (daemon_had, daemon_has): (&DescriptorKinds, &DescriptorKinds),
    (keeper_had, keeper_has): (&DescriptorKinds, &DescriptorKinds),
) {
    let added = |had: &DescriptorKinds, has: &DescriptorKinds, kind: &str| {
        has.get(kind).copied().unwrap_or(0) as i64 - had.get(kind).copied().unwrap_or(0) as i64
    };
    let said = format!("the daemon had {daemon_had:?}, has {daemon_has:?}");
    assert_eq!(added(daemon_had, daemon_has, "pipe"), 18, "{said}");
    assert_eq!(
        added(daemon_had, daemon_has, "anon_inode:[pidfd]"),
        9,
        "{said}"
    );
    assert!(added(daemon_had, daemon_has, "socket") <= 1, "{said}");
    let said = format!("the keeper had {keeper_had:?}, has {keeper_has:?}");
    let total = |kinds: &DescriptorKinds| kinds.values().sum::<usize>();
    assert_eq!(total(keeper_has) - total(keeper_had), 18, "{said}");
}

type DescriptorKinds = std::collections::BTreeMap<String, usize>;

/// What an app costs in descriptors: 3 in the daemon (its output pipes and pidfd), 2 in the
/// keeper (the pipes). The apps' notify socket is one for all, and what the apps send there is heard by the daemon that adopts them after a `kill -9`
/// (the keeper kept the socket) and after an update (handed over with the rest).
#[test]
fn the_shared_notify_socket_outlives_the_daemon_and_an_update() {
    let k = kelpie();
    let watched = |name: &str| {
        k.ok(&[
            "start",
            &k.fake_app(),
            "--name",
            name,
            "--watchdog",
            "1",
            "--",
            "--watchdog",
            "150",
        ]);
    };
    watched("w0");
    let daemon = k.daemon_pid().expect("daemon");
    let keeper = keeper_of(&k);
    // The daemon sends the keeper what it must hold before each spawn, but the keeper takes
    // it from its socket on its own time: wait until it holds w0's pipes and the notify socket
    // (its sockets: its end of the daemon's link, its listener, the notify socket).
    // The portable backend gives each app a notify socket of its own (docs/platforms.md,
    // "Descriptors per app"): the keeper holds one per app beside its two.
    let linux = kelpie_testkit::linux_backend_only("Descriptors per app");
    let keeper_holds = |pipes: usize| {
        let sockets = if linux { 3 } else { 2 + pipes / 2 };
        k.wait_for("the keeper to take what it was sent", 10 * SECS, || {
            let kinds = descriptor_kinds(keeper);
            kinds.get("pipe") == Some(&pipes) && kinds.get("socket") == Some(&sockets)
        })
    };
    keeper_holds(2);
    let (daemon_had, keeper_had) = (descriptor_kinds(daemon), descriptor_kinds(keeper));
    for i in 1..10 {
        watched(&format!("w{i}"));
    }
    keeper_holds(20);
    if linux {
        check_descriptor_costs(
            (&daemon_had, &descriptor_kinds(daemon)),
            (&keeper_had, &descriptor_kinds(keeper)),
        );
    }
    let pids = |k: &Kelpie| -> Vec<u32> { (0..10).map(|i| k.pid(&format!("w{i}"))).collect() };
    let before = pids(&k);
    let no_restarts = |k: &Kelpie, when: &str| {
        // pacing: the window is what is tested: four watchdog periods, in which a daemon that
        // heard nothing would have restarted them all (no event says "heard").
        std::thread::sleep(4 * SECS);
        assert_eq!(pids(k), before, "{when}: same processes");
        for i in 0..10 {
            assert!(
                k.exits(&format!("w{i}")).is_empty(),
                "{when}: w{i} restarted"
            );
        }
    };
    no_restarts(&k, "first daemon");

    kill_daemon(&k);
    k.ok(&["ping"]);
    assert_ne!(k.daemon_pid(), Some(daemon));
    no_restarts(&k, "after the adoption");

    k.ok(&["update"]);
    no_restarts(&k, "after an update");
    k.ok(&["kill"]);
    for pid in before {
        k.wait_for("the apps gone", 5 * SECS, || !alive(pid));
    }
}
