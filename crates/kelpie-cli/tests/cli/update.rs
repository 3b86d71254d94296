//! `kelpie update`: the daemon re-executes itself in place. Same daemon pid, the apps are not
//! restarted, their output and their ports go on without a gap, and the new program supervises
//! them as the old one did.

use super::apps::GracefulNode;
use super::{free_port, heavy, kelpie, local};
use kelpie_testkit::{load, BackgroundLoad, Kelpie};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);
/// What a daemon says it is, for tests (see `kelpie_daemon`'s update module).
const TEST_VERSION_ENV: &str = "KELPIE_TEST_DAEMON_VERSION";

/// The `tick <n>` numbers of a log file, in order.
fn ticks(k: &Kelpie, file: &str) -> Vec<u64> {
    k.log(file)
        .lines()
        .filter_map(|line| line.strip_prefix("tick "))
        .filter_map(|n| n.trim().parse().ok())
        .collect()
}

/// Pids by app name and instance, and restart counts, from `jlist`.
fn processes(k: &Kelpie) -> Vec<(String, u64, u64, u64)> {
    k.jlist()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["pm_id"].as_u64().unwrap_or(0),
                p["pid"].as_u64().unwrap_or(0),
                p["pm2_env"]["restart_time"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn ping_version(k: &Kelpie) -> String {
    let out = k.ok(&["ping"]);
    out.split("daemon v")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn update_keeps_the_daemon_pid_the_apps_their_output_their_port_and_their_counters() {
    let _heavy = heavy();
    let k = kelpie();
    // The daemon says it is an older version: after the update, the new program answers.
    let started = k
        .command(&["ping"])
        .env(TEST_VERSION_ENV, "0.0.9:1")
        .output()
        .expect("ping");
    assert!(started.status.success());
    assert_eq!(ping_version(&k), "0.0.9");
    let daemon = k.daemon_pid().expect("daemon pid");
    let fake = k.fake_app();
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    k.ok(&["start", &fake, "--name", "ticker", "--", "--tick", "10"]);
    k.ok(&[
        "start", &fake, "--name", "web", "-i", "2", "--port", &address, "--", "--serve",
    ]);
    // Crashes once and comes back: a counter that must survive.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "flaky",
        "--",
        "--exit-after",
        "300",
        "--exit-code",
        "3",
    ]);
    k.wait_for("flaky restarted once", 10 * SECS, || {
        k.app("flaky")["pm2_env"]["restart_time"].as_u64() >= Some(1)
    });
    k.ok(&["stop", "flaky"]);
    // An app that gave up stays errored.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "broken",
        "--max-restarts",
        "1",
        "--",
        "--exit-after",
        "10",
    ]);
    k.wait_for("broken errored", 10 * SECS, || {
        k.status("broken") == "errored"
    });
    // Crashed, and waits a minute before its restart: it goes on waiting.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "patient",
        "--restart-delay",
        "60000",
        "--",
        "--exit-after",
        "100",
    ]);
    k.wait_for("patient waiting", 10 * SECS, || {
        k.status("patient") == "waiting restart"
    });
    k.wait_for("ticks in the log", 10 * SECS, || {
        ticks(&k, "ticker-out.log").len() > 20
    });
    let before = processes(&k);

    // Requests keep coming during the update.
    let load = BackgroundLoad::start(local(port), false, 2);
    k.wait_for("answers before the update", 10 * SECS, || {
        load.seen().ok > 0
    });
    // It does not wait for `patient`'s restart, a minute away: it would give up at its
    // settling time (10 s), failing, and `patient` would have been restarted.
    let out = k.ok(&["update"]);
    let answered = load.seen().ok;
    k.wait_for("answers after the update", 10 * SECS, || {
        load.seen().ok > answered + 10
    });
    let report = load.finish();

    assert!(out.contains("none restarted"), "{out}");
    assert!(out.contains("3 processes kept running"), "{out}");
    assert_eq!(k.daemon_pid(), Some(daemon), "same daemon pid");
    assert!(kelpie_testkit::alive(daemon));
    assert_eq!(
        ping_version(&k),
        env!("CARGO_PKG_VERSION"),
        "the new program answers"
    );
    assert_eq!(processes(&k), before, "same pids and counters");
    assert_eq!(k.status("broken"), "errored");
    assert_eq!(k.status("flaky"), "stopped");
    assert_eq!(
        k.status("patient"),
        "waiting restart",
        "not restarted early"
    );
    assert_eq!(report.failed, 0, "no failed request: {report:?}");
    assert!(report.ok > 20, "requests served: {report:?}");

    // The output goes on in the same file with no line lost or repeated.
    let count = ticks(&k, "ticker-out.log").len();
    k.wait_for("more ticks after the update", 10 * SECS, || {
        ticks(&k, "ticker-out.log").len() > count + 20
    });
    let seen = ticks(&k, "ticker-out.log");
    let first = seen[0];
    let expected: Vec<u64> = (first..first + seen.len() as u64).collect();
    assert_eq!(seen, expected, "every tick once, in order");
    let recent = k.ok(&["logs", "ticker", "--nostream", "--lines", "5"]);
    assert!(recent.contains("tick "), "{recent}");

    // Still supervised: a crash of a kept process is restarted, a stop stops it.
    let ticker = k.pid("ticker");
    std::process::Command::new("kill")
        .args(["-9", &ticker.to_string()])
        .status()
        .expect("kill");
    k.wait_for("ticker restarted", 10 * SECS, || {
        let pid = k.pid("ticker");
        pid != 0 && pid != ticker && k.status("ticker") == "online"
    });
    let describe = k.ok(&["describe", "ticker"]);
    assert!(describe.contains("killed by SIGKILL"), "{describe}");
    let web: Vec<u32> = before
        .iter()
        .filter(|p| p.0 == "web")
        .map(|p| p.2 as u32)
        .collect();
    assert!(load::get(local(port)).is_ok());
    k.ok(&["stop", "web"]);
    for pid in web {
        assert!(!kelpie_testkit::alive(pid), "web process {pid} stopped");
    }
}

/// Whether `node` runs here (said, and a failure under `KELPIE_NO_SKIP`, when it does not).
fn has_node() -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        kelpie_testkit::skip("node is not installed (Debian's `nodejs`)");
    }
    found
}

#[test]
fn a_node_app_keeps_its_ipc_channel_across_an_update() {
    let _heavy = heavy();
    let k = kelpie();
    if !has_node() {
        return;
    }
    let app = GracefulNode::write(&k, "process.send('ready');\n");
    app.start_with_message(&k, "gr");
    let pid = k.pid("gr");
    k.ok(&["update"]);
    assert_eq!(k.pid("gr"), pid);
    // The stop goes through the IPC channel the new program took over.
    k.ok(&["stop", "gr"]);
    assert!(app.shut_down());
}

/// What a Node app's SDK registered at its start (an action) is still known after an update:
/// the app will not register it again.
#[test]
fn sdk_actions_survive_an_update() {
    let _heavy = heavy();
    let k = kelpie();
    if !has_node() {
        return;
    }
    let script = k.write(
        "pinged.js",
        "process.send({ type: 'axm:action', data: { action_name: 'ping', arity: 1 } });\n\
         process.on('message', (m) => { if (m === 'ping') process.send({ type: 'axm:reply', data: { action_name: 'ping', return: 'pong' } }); });\n\
         setInterval(() => {}, 1000);\n",
    );
    k.ok(&["start", &script, "--name", "pinged"]);
    let registered = || k.app("pinged")["pm2_env"]["axm_actions"][0]["action_name"] == "ping";
    k.wait_for("the action registered", 10 * SECS, registered);
    k.ok(&["update"]);
    assert!(registered(), "{}", k.app("pinged")["pm2_env"]);
    let out = k.ok(&["trigger", "pinged", "ping"]);
    assert!(out.contains(r#"[pinged:0:default]="pong""#), "{out}");
}

#[test]
fn an_old_daemon_the_cli_cannot_talk_to_is_updated_in_place() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "keep", "--", "--tick", "50"]);
    k.ok(&["save"]);
    k.ok(&["kill"]);
    // A daemon of another protocol, as a boot service starts it: it brings the saved apps back.
    let mut daemon = k
        .command(&["daemon", "--resurrect-if-empty"])
        .env(TEST_VERSION_ENV, "0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("daemon");
    k.wait_for("the daemon up", 10 * SECS, || {
        k.home().join("kelpie.sock").exists() && k.daemon_pid() == Some(daemon.id())
    });
    k.track(daemon.id());
    let refused = k.fails(&["list"]);
    assert!(refused.contains("run `kelpie update`"), "{refused}");
    // The app it started (read from its state file: the CLI cannot ask it).
    k.wait_for("the app online", 10 * SECS, || {
        std::fs::read_to_string(k.home().join("state.json")).is_ok_and(|s| s.contains("\"online\""))
    });
    let out = k.ok(&["update"]);
    assert!(out.contains("from v0.0.1 to v"), "{out}");
    assert!(out.contains("1 processes kept running"), "{out}");
    assert_eq!(k.daemon_pid(), Some(daemon.id()));
    assert_eq!(ping_version(&k), env!("CARGO_PKG_VERSION"));
    let pid = k.pid("keep");
    assert!(pid != 0 && kelpie_testkit::alive(pid));
    assert!(out.contains(&pid.to_string()), "{out}");
    assert_eq!(k.app("keep")["pm2_env"]["restart_time"].as_u64(), Some(0));
    k.ok(&["kill"]);
    let _ = daemon.wait();
}

#[test]
fn an_update_waits_for_apps_to_settle_and_gives_up_cleanly() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "steady", "--", "--tick", "100"]);
    let steady = k.pid("steady");
    let daemon = k.daemon_pid().expect("daemon");
    // Never says it is ready, for a minute: launching all along.
    let mut started = k
        .command(&[
            "start",
            &fake,
            "--name",
            "slow",
            "--wait-ready",
            "--listen-timeout",
            "60000",
            "--",
            "--tick",
            "1000",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start");
    k.wait_for("slow launching", 10 * SECS, || {
        k.jlist().iter().any(|p| p["name"] == "slow")
    });
    let refused = k.fails(&["update"]);
    assert!(refused.contains("did not settle"), "{refused}");
    assert!(refused.contains("`slow`"), "{refused}");
    assert_eq!(k.daemon_pid(), Some(daemon));
    assert_eq!(k.pid("steady"), steady, "nothing was touched");
    k.ok(&["delete", "slow"]);
    let _ = started.wait();

    // Something that is not a kelpie is refused before anything is handed over.
    std::fs::write(k.home().join("update-to"), "/bin/true\n").expect("request");
    std::process::Command::new("kill")
        .args(["-USR1", &daemon.to_string()])
        .status()
        .expect("signal");
    let result = k.home().join("update-result");
    k.wait_for("the daemon's answer", 10 * SECS, || result.exists());
    let answer = std::fs::read_to_string(&result).unwrap_or_default();
    assert!(answer.starts_with("error\n"), "{answer}");
    assert!(answer.contains("is not a kelpie program"), "{answer}");
    assert_eq!(k.pid("steady"), steady);
    assert_eq!(k.status("steady"), "online");
}

/// A daemon's blocked and ignored signals, from /proc.
fn signal_masks(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or(0)
    };
    (field("SigBlk:"), field("SigIgn:"))
}

#[test]
fn signals_sent_during_the_exec_wait_for_the_new_program() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "calm", "--", "--tick", "100"]);
    let pid = k.pid("calm");
    let daemon = k.daemon_pid().expect("daemon");
    // SIGHUP over and over while the daemon re-executes itself: its default action would end
    // the daemon (and the apps' pipes with it) in the moment between the two programs.
    let stop = Arc::new(AtomicBool::new(false));
    let hups = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) {
                let _ = std::process::Command::new("kill")
                    .args(["-HUP", &daemon.to_string()])
                    .status();
                sent += 1;
            }
            sent
        })
    };
    for _ in 0..3 {
        k.ok(&["update"]);
    }
    stop.store(true, Ordering::SeqCst);
    assert!(hups.join().expect("thread") > 3);
    assert!(kelpie_testkit::alive(daemon), "the daemon survived");
    assert_eq!(k.daemon_pid(), Some(daemon));
    assert_eq!(k.pid("calm"), pid);
    let (blocked, _) = signal_masks(daemon);
    assert_eq!(blocked, 0, "nothing left blocked in the new program");
}

#[test]
fn a_failed_exec_leaves_everything_as_it_was() {
    let k = kelpie();
    let fake = k.fake_app();
    k.ok(&["start", &fake, "--name", "stay", "--", "--tick", "50"]);
    let pid = k.pid("stay");
    let daemon = k.daemon_pid().expect("daemon");
    let (_, ignored_before) = signal_masks(daemon);
    // Passes every check, then is gone when the daemon executes it.
    let script = k.dir.path().join("vanishing-kelpie");
    std::fs::write(
        &script,
        "#!/bin/sh\ncase \"$*\" in\n  --version) echo 'kelpie 9.9.9' ;;\n  'daemon --handoff-formats') rm -f \"$0\"; echo 1 2 ;;\nesac\n",
    )
    .expect("script");
    std::process::Command::new("chmod")
        .args(["+x", &script.display().to_string()])
        .status()
        .expect("chmod");
    std::fs::write(k.home().join("update-to"), script.display().to_string()).expect("request");
    std::process::Command::new("kill")
        .args(["-USR1", &daemon.to_string()])
        .status()
        .expect("signal");
    let result = k.home().join("update-result");
    k.wait_for("the daemon's answer", 10 * SECS, || result.exists());
    let answer = std::fs::read_to_string(&result).unwrap_or_default();
    assert!(answer.starts_with("error\n"), "{answer}");
    assert!(answer.contains("cannot execute"), "{answer}");
    // Same daemon, same process, still supervised, same signal dispositions.
    assert_eq!(k.daemon_pid(), Some(daemon));
    assert_eq!(k.pid("stay"), pid);
    assert_eq!(signal_masks(daemon), (0, ignored_before));
    let ticks_now = ticks(&k, "stay-out.log").len();
    k.wait_for("its output still read", 10 * SECS, || {
        ticks(&k, "stay-out.log").len() > ticks_now + 5
    });
    // The descriptors prepared for the exec are close-on-exec again: a new app gets none.
    k.ok(&["start", &fake, "--name", "fresh", "--", "--tick", "1000"]);
    let fresh = k.pid("fresh");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{fresh}/fd"))
        .expect("fds")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(fds.len(), 3, "only stdio: {fds:?}");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    k.wait_for("stay restarted", 10 * SECS, || {
        let now = k.pid("stay");
        now != 0 && now != pid
    });
    // And a real update works afterwards.
    let out = k.ok(&["update"]);
    assert!(out.contains("2 processes kept running"), "{out}");
}

#[test]
fn a_daemon_that_cannot_update_in_place_is_restarted_the_old_way() {
    let k = kelpie();
    // Stands for a daemon from before updates in place: it listens on the socket, has its pid
    // file, and has no handler for SIGUSR1 (which would end it), only for SIGTERM.
    let marker = k.dir.path().join("got");
    let script = format!(
        "import os, signal, socket, sys\n\
         home = sys.argv[1]\n\
         path = os.path.join(home, 'kelpie.sock')\n\
         s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(8)\n\
         def term(*_):\n    open({marker:?}, 'w').write('SIGTERM'); s.close(); os.unlink(path); os._exit(0)\n\
         signal.signal(signal.SIGTERM, term)\n\
         open(os.path.join(home, 'kelpie.pid'), 'w').write(str(os.getpid()))\n\
         while True: signal.pause()\n",
        marker = marker.display().to_string()
    );
    std::fs::create_dir_all(k.home()).expect("home");
    let mut old = std::process::Command::new("python3")
        .args(["-c", &script, &k.home().display().to_string()])
        .spawn()
        .expect("python3");
    k.track(old.id());
    k.wait_for("the old daemon up", 10 * SECS, || {
        k.daemon_pid() == Some(old.id())
    });
    let out = k.run(&["update"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("too old to be updated in place"),
        "{stderr}"
    );
    let _ = old.wait();
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some("SIGTERM"),
        "stopped with SIGTERM, never sent SIGUSR1"
    );
    let daemon = k.daemon_pid().expect("a new daemon");
    assert_ne!(daemon, old.id());
    k.ok(&["ping"]);
}
