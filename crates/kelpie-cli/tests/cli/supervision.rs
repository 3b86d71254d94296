//! Keeping apps alive: restarts, PM2's policy, stops that leave nothing behind.

use super::kelpie;
use kelpie_testkit::{alive, written};
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

#[test]
fn a_crashed_app_is_restarted_at_once_with_a_new_pid() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "web"]);
    let first = k.pid("web");
    assert!(alive(first));
    std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .expect("kill");
    k.wait_for("a new pid", 5 * SECS, || {
        let pid = k.pid("web");
        pid != 0 && pid != first
    });
    let app = k.app("web");
    assert_eq!(app["pm2_env"]["status"], "online");
    assert_eq!(app["pm2_env"]["restart_time"], 1);
    let describe = k.ok(&["describe", "web"]);
    assert!(describe.contains("signal SIGKILL"), "{describe}");
}

#[test]
fn short_runs_in_a_row_end_in_errored() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "crashy",
        "--max-restarts",
        "3",
        "--",
        "--exit-after",
        "10",
        "--exit-code",
        "4",
    ]);
    k.wait_for("errored", 10 * SECS, || k.status("crashy") == "errored");
    let entry = k.app("crashy");
    assert_eq!(
        entry["pm2_env"]["restart_time"], 2,
        "3 unstable runs = 2 restarts, then errored"
    );
    assert_eq!(entry["pm2_env"]["exit_code"], 4);
    assert!(k
        .ok(&["describe", "crashy"])
        .contains("3 unstable restarts"));
}

#[test]
fn no_autorestart_and_stop_exit_codes_leave_the_app_stopped() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "once",
        "--no-autorestart",
        "--",
        "--exit-after",
        "50",
        "--exit-code",
        "9",
    ]);
    k.ok(&[
        "start",
        &app,
        "--name",
        "done",
        "--stop-exit-codes",
        "0",
        "--",
        "--exit-after",
        "50",
        "--exit-code",
        "0",
    ]);
    k.ok(&[
        "start",
        &app,
        "--name",
        "again",
        "--stop-exit-codes",
        "0",
        "--",
        "--exit-after",
        "1100",
        "--exit-code",
        "5",
    ]);
    k.wait_for("once and done stopped", 5 * SECS, || {
        k.status("once") == "stopped" && k.status("done") == "stopped"
    });
    k.wait_for("again restarted", 5 * SECS, || {
        k.app("again")["pm2_env"]["restart_time"] == 1
    });
    assert_eq!(k.app("once")["pm2_env"]["restart_time"], 0);
    assert_eq!(k.app("done")["pm2_env"]["restart_time"], 0);
}

#[test]
fn restart_delay_shows_waiting_restart() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "slow",
        "--restart-delay",
        "1500",
        "--",
        "--exit-after",
        "1100",
    ]);
    k.wait_for("waiting restart", 5 * SECS, || {
        k.status("slow") == "waiting restart"
    });
    k.wait_for("online again", 5 * SECS, || {
        k.app("slow")["pm2_env"]["restart_time"] == 1
    });
}

#[test]
fn stop_kills_the_whole_process_group_including_grandchildren() {
    let k = kelpie();
    let children = k.dir.path().join("children");
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "parent",
        "--",
        "--spawn-children",
        "2",
        "--children-file",
        &children.display().to_string(),
    ]);
    let parent = k.pid("parent");
    let kids = k.children(&children, 2);
    assert!(kids.iter().all(|kid| alive(*kid)));
    let out = k.ok(&["stop", "parent"]);
    assert!(out.contains("stopped"), "{out}");
    assert!(!alive(parent), "the app is gone when stop returns");
    for kid in kids {
        assert!(!alive(kid), "grandchild {kid} survived the stop");
    }
}

#[test]
fn an_app_ignoring_the_stop_signal_is_killed_after_kill_timeout() {
    let k = kelpie();
    let children = k.dir.path().join("children");
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "stubborn",
        "--kill-timeout",
        "300",
        "--",
        "--ignore-signals",
        "--spawn-children",
        "1",
        "--children-file",
        &children.display().to_string(),
    ]);
    let kid = k.children(&children, 1)[0];
    let pid = k.pid("stubborn");
    // That SIGKILL comes exactly kill_timeout after the stop signal is the instance's
    // in-process test; here the whole group of a real app is gone once `stop` returns.
    k.ok(&["stop", "stubborn"]);
    assert!(!alive(pid) && !alive(kid));
    let describe = k.ok(&["describe", "stubborn"]);
    assert!(describe.contains("SIGKILL"), "{describe}");
}

#[test]
fn kill_signal_is_configurable_and_crash_children_do_not_outlive_the_app() {
    let k = kelpie();
    let children = k.dir.path().join("children");
    let app = k.fake_app();
    // The app exits on its own after 1.2 s, leaving a child: the child must not survive it.
    k.ok(&[
        "start",
        &app,
        "--name",
        "leaver",
        "--kill-signal",
        "SIGTERM",
        "--no-autorestart",
        "--",
        "--spawn-children",
        "1",
        "--children-file",
        &children.display().to_string(),
        "--exit-after",
        "1200",
    ]);
    let kid = k.children(&children, 1)[0];
    k.wait_for("app stopped", 5 * SECS, || k.status("leaver") == "stopped");
    k.wait_for("child gone", 2 * SECS, || !alive(kid));
    assert_eq!(k.app("leaver")["pm2_env"]["kill_signal"], "SIGTERM");
}

#[test]
fn a_flooding_app_is_never_slowed_and_the_daemon_stays_responsive() {
    let k = kelpie();
    // No size rotation here: the live file's size is the measure.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "flood",
        "--log-max-size",
        "0",
        "--",
        "--flood",
    ]);
    // The daemon answers (each within the CLI's 3 s) while the app floods: it writes on between
    // two answers.
    let pid = k.pid("flood");
    for _ in 0..5 {
        let before = written(pid);
        k.ok(&["list"]);
        k.wait_for("the flood going on", 5 * SECS, || written(pid) > before);
    }
    // Never blocked on its output: a pipe the daemon stopped reading holds 64 KiB. (How fast
    // lines go through is logs::an_app_that_prints_fast_is_not_slowed_down's and the bench's.)
    let size = || {
        std::fs::metadata(k.home().join("logs/flood-out.log"))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    k.wait_for("a megabyte in its log", 10 * SECS, || size() > 1_000_000);
    assert_eq!(k.status("flood"), "online");
    k.ok(&["delete", "flood"]);
}

#[test]
fn signal_reaches_the_app_and_restart_reset_and_pid_work() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "sig"]);
    let pid = k.pid("sig");
    assert_eq!(k.ok(&["pid", "sig"]).trim(), pid.to_string());
    let out = k.ok(&["signal", "SIGTERM", "sig"]);
    assert!(out.contains("sent SIGTERM to 1 process"), "{out}");
    k.wait_for("restart after the signal", 5 * SECS, || {
        k.app("sig")["pm2_env"]["restart_time"] == 1
    });
    k.ok(&["restart", "sig"]);
    assert_eq!(k.app("sig")["pm2_env"]["restart_time"], 2);
    let table = k.ok(&["reset", "sig"]);
    let row = table
        .lines()
        .find(|l| l.starts_with('│') && l.contains(" sig "))
        .expect("sig row");
    assert_eq!(
        row.split('│').nth(7).map(str::trim),
        Some("0"),
        "reset's own answer shows the reset: {row}"
    );
    assert_eq!(k.app("sig")["pm2_env"]["restart_time"], 0);
    let err = k.fails(&["signal", "SIGNOPE", "sig"]);
    assert!(err.contains("unknown signal"), "{err}");
}

#[test]
fn scripts_run_with_the_interpreter_of_their_extension_and_get_their_args() {
    let k = kelpie();
    let sh = k.write("hello.sh", "echo \"sh args: $*\"\nexec sleep 600\n");
    let py = k.write(
        "hello.py",
        "import sys, time\nprint('py args:', sys.argv[1:], flush=True)\ntime.sleep(600)\n",
    );
    k.ok(&["start", &sh, "--", "a", "b"]);
    k.ok(&["start", &py, "--name", "w", "--", "--flag", "value"]);
    k.ok(&["start", "sleep 600", "--name", "cmd"]);
    k.wait_for("both printed", 5 * SECS, || {
        k.log("hello-out.log").contains("sh args: a b")
            && k.log("w-out.log").contains("py args: ['--flag', 'value']")
    });
    assert_eq!(k.app("hello")["pm2_env"]["exec_interpreter"], "bash");
    assert_eq!(k.app("w")["pm2_env"]["exec_interpreter"], "python3");
    assert_eq!(k.status("cmd"), "online");
    // A command line in jlist as PM2 shows one: the shell runs itself with `-c <line>`.
    let cmd = &k.app("cmd")["pm2_env"];
    assert_eq!(cmd["exec_interpreter"], "none", "{cmd}");
    assert_eq!(cmd["args"], serde_json::json!(["-c", "sleep 600"]), "{cmd}");
    assert_eq!(cmd["node_args"], serde_json::json!([]), "{cmd}");
    let shell = cmd["pm_exec_path"].as_str().unwrap_or_default();
    assert!(shell.ends_with("/bash") || shell.ends_with("/sh"), "{cmd}");
    let node = k.write(
        "app.js",
        "console.log('node', process.argv.slice(2).join(','));setInterval(()=>{},1000)\n",
    );
    k.ok(&["start", &node, "--", "x", "y"]);
    k.wait_for("node printed", 5 * SECS, || {
        k.log("app-out.log").contains("node x,y")
    });
}

#[test]
fn a_crash_loop_runs_the_interpreter_it_found_and_restart_looks_in_path_again() {
    let k = kelpie();
    let (early, late) = (k.home().join("early-bin"), k.home().join("late-bin"));
    let interpreter = |dir: &std::path::Path, says: &str| {
        std::fs::create_dir_all(dir).expect("bin dir");
        let path = dir.join("tool");
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho {says}\nsleep 0.2\nexit 1\n"),
        )
        .expect("write");
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    };
    interpreter(&late, "late");
    let script = k.write("job.txt", "");
    let path = format!(
        "{}:{}:{}",
        early.display(),
        late.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = k
        .command(&[
            "start",
            &script,
            "--name",
            "job",
            "--interpreter",
            "tool",
            "--restart-delay",
            "50",
            "--max-restarts",
            "1000",
        ])
        .env("PATH", &path)
        .output()
        .expect("start");
    assert!(started.status.success(), "{started:?}");
    let runs = |says: &str| k.log("job-out.log").matches(says).count();
    k.wait_for("a few runs", 10 * SECS, || runs("late") >= 2);
    // A `tool` in an earlier directory of PATH: the crash loop goes on with the one it found
    // (looked up once, not before every restart)...
    interpreter(&early, "early");
    let seen = runs("late");
    k.wait_for("more runs", 10 * SECS, || runs("late") >= seen + 3);
    assert_eq!(runs("early"), 0);
    // ... and a command looks in PATH again.
    k.ok(&["restart", "job"]);
    k.wait_for("the new interpreter", 10 * SECS, || runs("early") >= 1);
}

#[test]
fn exp_backoff_waits_longer_after_each_crash() {
    let k = kelpie();
    let app = k.fake_app();
    k.ok(&[
        "start",
        &app,
        "--name",
        "backoff",
        "--exp-backoff-restart-delay",
        "200",
        "--max-restarts",
        "50",
        "--",
        "--exit-after",
        "10",
    ]);
    // Delays: 200, 300, 450 ms, then ×1.5 again. Read one snapshot: after the third restart,
    // while it waits for the fourth, the delay in force must be 675 ms.
    let mut snapshot = serde_json::Value::Null;
    k.wait_for("waiting after three restarts", 10 * SECS, || {
        snapshot = k.app("backoff")["pm2_env"].clone();
        snapshot["restart_time"] == 3 && snapshot["status"] == "waiting restart"
    });
    assert_eq!(snapshot["prev_restart_delay"], 675, "{snapshot}");
    let env = &snapshot;
    assert_eq!(env["exp_backoff_restart_delay"], 200);
}

#[test]
fn no_autostart_cwd_and_interpreter_none() {
    let k = kelpie();
    let app = k.fake_app();
    let cwd = k.dir.path().join("sub");
    std::fs::create_dir_all(&cwd).expect("sub dir");
    k.ok(&[
        "start",
        &app,
        "--name",
        "later",
        "--no-autostart",
        "--interpreter",
        "none",
        "--cwd",
        &cwd.display().to_string(),
    ]);
    assert_eq!(
        k.status("later"),
        "stopped",
        "--no-autostart registers without starting"
    );
    assert_eq!(k.pid("later"), 0);
    k.ok(&["start", "later"]);
    let pid = k.pid("later");
    assert_ne!(pid, 0);
    let actual_cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd of the app");
    assert_eq!(actual_cwd, cwd.canonicalize().expect("canonical"));
    assert_eq!(k.app("later")["pm2_env"]["exec_interpreter"], "none");
}

#[test]
fn start_without_arguments_uses_the_ecosystem_file_here() {
    let k = kelpie();
    let err = k.fails(&["start"]);
    assert!(
        err.contains("nothing to start") && err.contains("kelpie init"),
        "{err}"
    );
    k.write(
        "ecosystem.json",
        &format!(
            r#"{{"apps":[{{"name":"here","script":"{}"}}]}}"#,
            k.fake_app()
        ),
    );
    k.ok(&["start"]);
    assert_eq!(k.status("here"), "online");
}
