//! `kelpie runtime`: apps in the foreground, Kelpie as PID 1 of a real pid namespace
//! (`unshare --pid --fork --mount-proc`), as in a container. Skipped, with a message, where
//! unshare is not permitted (a failure instead under `KELPIE_NO_SKIP`, as in CI).
//!
//! Pids inside the namespace are not the host's: these tests never hand `jlist` pids to the
//! testkit's cleanup. Cleanup is a SIGKILL to the runtime's host pid, which, as the namespace's
//! init, takes every process of the namespace with it.

use super::kelpie;
use super::pid1::{unshare_permitted, Pid1};
use kelpie_testkit::{written, Kelpie};
use std::process::Command;
use std::time::{Duration, Instant};

/// A `kelpie runtime` running as PID 1 of its own pid namespace.
struct Runtime {
    pid1: Pid1,
    home: std::path::PathBuf,
}

impl std::ops::Deref for Runtime {
    type Target = Pid1;
    fn deref(&self) -> &Pid1 {
        &self.pid1
    }
}

impl std::ops::DerefMut for Runtime {
    fn deref_mut(&mut self) -> &mut Pid1 {
        &mut self.pid1
    }
}

impl Runtime {
    /// `kelpie runtime args…` in a new pid namespace; `None` (skipped, with the reason printed:
    /// see [`unshare_permitted`]) without unshare.
    fn start(k: &Kelpie, args: &[&str]) -> Option<Runtime> {
        let runtime = [env!("CARGO_BIN_EXE_kelpie"), "runtime"];
        Runtime::start_as(k, &runtime.iter().chain(args).copied().collect::<Vec<_>>())
    }

    /// `command…` (the runtime, under whatever name) in a new pid namespace.
    fn start_as(k: &Kelpie, command: &[&str]) -> Option<Runtime> {
        if !unshare_permitted() {
            return None;
        }
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .args(command)
            .env("KELPIE_HOME", k.home())
            .current_dir(k.dir.path());
        Some(Runtime {
            pid1: Pid1::spawn(cmd),
            home: k.home().to_path_buf(),
        })
    }

    /// `kelpie <args>` against the runtime's home, from outside the namespace.
    fn cli(&self, k: &Kelpie, args: &[&str]) -> String {
        let out = k.run(args);
        assert!(
            out.status.success(),
            "kelpie {args:?} against the runtime failed: {}\nruntime stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.err()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Its pid file holds a pid of the namespace: the testkit must not act on it (PID 1 and
        // its namespace are killed by `Pid1`'s drop, if still running).
        let _ = std::fs::remove_file(self.home.join("kelpie.pid"));
        let _ = std::fs::remove_file(self.home.join("pm2.pid"));
        let _ = std::fs::remove_file(self.home.join("kelpie.sock"));
    }
}

const SIGTERM: i32 = 15;

#[test]
fn orphans_that_double_fork_are_reaped_as_pid_1() {
    let k = kelpie();
    let app = k.fake_app();
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            &app,
            "--name",
            "forker",
            "--",
            "--orphans",
            "5",
            "--orphan-life",
            "200",
        ],
    ) else {
        return;
    };
    rt.wait_out("orphans 5 spawned", Duration::from_secs(10));
    // It really is PID 1 of its namespace.
    let host = rt.host_pid().expect("runtime pid");
    let status = std::fs::read_to_string(format!("/proc/{host}/status")).expect("status");
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .expect("NSpid");
    assert!(nspid.trim_end().ends_with("\t1"), "{nspid}");
    // The orphans were re-parented to it, lived 200 ms and exited: none may stay a zombie.
    kelpie_testkit::wait_until(
        "the orphans reaped, the app alone left",
        Duration::from_secs(10),
        || {
            let inside = rt.descendants();
            let zombies: Vec<u32> = inside.iter().filter(|p| p.1).map(|p| p.0).collect();
            // Only the app itself is left (its orphans are gone, reaped).
            match zombies.is_empty() && inside.len() == 1 {
                true => Ok(()),
                false => Err(format!(
                    "zombies {zombies:?} among {inside:?}\nstderr:\n{}",
                    rt.err()
                )),
            }
        },
    );
    // The app's own exit status still reached its instance (the reaper left it to tokio):
    // it is online with no restart, and a restart by the CLI sees the exit.
    let list = rt.cli(&k, &["jlist"]);
    assert!(list.contains("\"status\":\"online\""), "{list}");
    rt.cli(&k, &["restart", "forker"]);
    rt.wait_out("orphans 5 spawned\n", Duration::from_secs(5));
    let list = rt.cli(&k, &["jlist"]);
    assert!(list.contains("\"restart_time\":1"), "{list}");
    rt.signal(SIGTERM);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn sigterm_stops_the_apps_within_kill_timeout_and_exits_0() {
    let k = kelpie();
    let app = k.fake_app();
    // It ignores the stop signal: only SIGKILL at kill_timeout ends it.
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            &app,
            "--name",
            "stubborn",
            "--kill-timeout",
            "1500",
            "--",
            "--ignore-signals",
            "--print-err",
            "1",
            "--tick",
            "20",
        ],
    ) else {
        return;
    };
    rt.wait_out("fake-app", Duration::from_secs(10));
    // `kelpie list` from outside works against the runtime's home.
    let list = rt.cli(&k, &["list"]);
    assert!(
        list.contains("stubborn") && list.contains("online"),
        "{list}"
    );
    // stderr lines go to stderr, as they are.
    kelpie_testkit::wait_until(
        "the app's error line on stderr",
        Duration::from_secs(10),
        || match rt.err().contains("error line 0") {
            true => Ok(()),
            false => Err(format!("stderr:\n{}", rt.err())),
        },
    );
    assert!(!rt.out().contains("error line 0"), "{}", rt.out());
    // The stop begins, the app runs on through its stop signal, then SIGKILL at kill_timeout
    // (exactly then: the instance's in-process test) ends it and the runtime exits 0.
    let app = app_pid(&rt, &k);
    rt.signal(SIGTERM);
    stop_begun_and_app_running_on(&k, &rt, app);
    let status = rt.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", rt.err());
    // The namespace died with its init: nothing of the app is left.
    assert!(rt.descendants().is_empty());
}

#[test]
fn a_second_sigterm_kills_everything_at_once() {
    let k = kelpie();
    let app = k.fake_app();
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            &app,
            "--name",
            "stubborn",
            "--kill-timeout",
            "60000",
            "--",
            "--ignore-signals",
            "--tick",
            "20",
        ],
    ) else {
        return;
    };
    rt.wait_out("fake-app", Duration::from_secs(10));
    let app = app_pid(&rt, &k);
    rt.signal(SIGTERM);
    stop_begun_and_app_running_on(&k, &rt, app);
    assert!(
        rt.wait_exit(Duration::ZERO).is_none(),
        "exited on the first"
    );
    // The second: everything killed at once, long before the minute of kill_timeout.
    rt.signal(SIGTERM);
    let status = rt.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", rt.err());
}

/// The host pid of the runtime's fake-app.
fn app_pid(rt: &Runtime, k: &Kelpie) -> u32 {
    let fake = std::path::PathBuf::from(k.fake_app());
    rt.descendants()
        .into_iter()
        .map(|(pid, _)| pid)
        .find(|pid| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == fake))
        .expect("the app runs")
}

/// After a SIGTERM to the runtime: it says it stops every app, and its app (`app`, a host pid),
/// which ignores the stop signal, writes on after that (so it was not killed with it).
fn stop_begun_and_app_running_on(k: &Kelpie, rt: &Runtime, app: u32) {
    k.wait_for("the stop begun", Duration::from_secs(5), || {
        rt.err().contains("stopping every app")
    });
    let wrote = written(app);
    k.wait_for("the app running on", Duration::from_secs(5), || {
        written(app) > wrote
    });
}

#[test]
fn a_missing_script_fails_at_once_naming_it() {
    let k = kelpie();
    let eco = k.write(
        "ecosystem.config.json",
        r#"{"apps": [{"name": "ghost", "script": "./no-such-script.sh"}]}"#,
    );
    let Some(mut rt) = Runtime::start(&k, &[&eco]) else {
        return;
    };
    let status = rt.wait_exit(Duration::from_secs(3)).expect("exits at once");
    assert!(!status.success());
    let err = rt.err();
    assert!(err.contains("no-such-script.sh"), "{err}");
}

#[test]
fn all_apps_errored_exits_1() {
    let k = kelpie();
    let app = k.fake_app();
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            &app,
            "--name",
            "crasher",
            "--max-restarts",
            "2",
            "--restart-delay",
            "0",
            "--",
            "--exit-after",
            "10",
            "--exit-code",
            "3",
        ],
    ) else {
        return;
    };
    let status = rt.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", rt.err());
    assert!(rt.err().contains("0|crasher"), "{}", rt.err());
}

#[test]
fn a_one_shot_job_that_succeeds_exits_0_with_its_output() {
    let k = kelpie();
    let app = k.fake_app();
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            "--json",
            &app,
            "--name",
            "job",
            "--no-autorestart",
            "--",
            "--print",
            "2",
            "--exit-after",
            "100",
            "--exit-code",
            "0",
        ],
    ) else {
        return;
    };
    let status = rt.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", rt.err());
    let lines: Vec<serde_json::Value> = rt
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[2]["message"], "line 1");
    assert_eq!(lines[2]["app_name"], "job");
    assert_eq!(lines[2]["type"], "out");
}

/// A link named `pm2-runtime` (Dockerfiles written for PM2: `CMD ["pm2-runtime", ...]`) is
/// `kelpie runtime`, with PM2's file names in its home.
#[test]
fn a_link_named_pm2_runtime_is_kelpie_runtime() {
    let k = kelpie();
    let link = k.dir.path().join("pm2-runtime");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kelpie"), &link).expect("link pm2-runtime");
    let app = k.fake_app();
    let link = link.display().to_string();
    let Some(mut rt) = Runtime::start_as(
        &k,
        &[
            &link,
            // pm2-runtime's `start <app>` form.
            "start",
            "--json",
            &app,
            "--name",
            "job",
            "--no-autorestart",
            "--",
            "--print",
            "2",
            "--exit-after",
            "1000",
            "--exit-code",
            "0",
        ],
    ) else {
        return;
    };
    k.wait_for(
        "the runtime's pid in pm2.pid",
        Duration::from_secs(5),
        || k.home().join("pm2.pid").is_file(),
    );
    let status = rt.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", rt.err());
    let lines: Vec<serde_json::Value> = rt
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        lines.last().map(|l| &l["message"]),
        Some(&"line 1".into()),
        "{lines:?}"
    );
    assert!(!k.home().join("kelpie.pid").exists());
}

#[test]
fn a_one_shot_job_that_fails_exits_1() {
    let k = kelpie();
    let app = k.fake_app();
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            "--raw",
            &app,
            "--name",
            "job",
            "--no-autorestart",
            "--",
            "--exit-after",
            "100",
            "--exit-code",
            "4",
        ],
    ) else {
        return;
    };
    let status = rt.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", rt.err());
    assert!(rt.out().starts_with("fake-app "), "raw: {}", rt.out());
}

#[test]
fn a_periodic_job_keeps_the_container_up_and_runs_at_every_tick() {
    let k = kelpie();
    let app = k.fake_app();
    // A job every two seconds: the container does not end when its run does.
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            &app,
            "--name",
            "job",
            "--no-autorestart",
            "--cron-restart",
            "*/2 * * * * *",
            "--",
            "--print",
            "1",
            "--exit-after",
            "50",
            "--exit-code",
            "0",
        ],
    ) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.out().matches("line 0").count() < 3 {
        assert!(
            Instant::now() < deadline,
            "three runs expected:\n{}\nstderr:\n{}",
            rt.out(),
            rt.err()
        );
        assert!(
            rt.wait_exit(Duration::from_millis(100)).is_none(),
            "the runtime ended with a job scheduled:\n{}",
            rt.err()
        );
    }
    rt.signal(SIGTERM);
    let status = rt.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", rt.err());
}

#[test]
fn the_apps_lines_are_printed_as_written_dated_and_the_files_it_names_are_written() {
    let k = kelpie();
    let app = k.fake_app();
    let out_file = k.dir.path().join("api.out.log");
    let json_app = k.write(
        "json.sh",
        "echo '{\"level\":\"info\",\"msg\":\"up\"}'\nexec sleep 1000\n",
    );
    let file = k.write(
        "ecosystem.json",
        &serde_json::json!({"apps": [
            {"name": "api", "script": json_app, "out_file": out_file},
            {"name": "dated", "script": app, "args": ["--print", "1", "--tick", "100000"],
             "log_date_format": "YYYY-MM-DD HH:mm:ss"}
        ]})
        .to_string(),
    );
    let Some(mut rt) = Runtime::start(&k, &[&file]) else {
        return;
    };
    // A JSON line is printed as it is (pm2-runtime's default): still JSON for a collector.
    rt.wait_out(
        "{\"level\":\"info\",\"msg\":\"up\"}\n",
        Duration::from_secs(10),
    );
    let json_line = rt
        .out()
        .lines()
        .find(|l| l.contains("\"msg\":\"up\""))
        .map(str::to_string)
        .expect("the line");
    assert!(
        serde_json::from_str::<serde_json::Value>(&json_line).is_ok(),
        "not JSON any more: {json_line}"
    );
    // A dated app's line with its date, as in its file.
    let dated = kelpie_testkit::wait_until("the dated app's line", Duration::from_secs(10), || {
        let out = rt.out();
        match out.lines().find(|l| l.ends_with(": line 0")) {
            Some(line) => Ok(line.to_string()),
            None => Err(out),
        }
    });
    let date = dated.trim_end_matches(": line 0");
    assert!(
        date.len() == 19 && date.as_bytes()[4] == b'-' && date.as_bytes()[13] == b':',
        "{dated}"
    );
    // The file the app names is written, as pm2-runtime writes it; no other file is.
    k.wait_for(
        &format!("the line in {}", out_file.display()),
        Duration::from_secs(10),
        || std::fs::read_to_string(&out_file).is_ok_and(|t| t.contains("\"msg\":\"up\"")),
    );
    assert!(!k.home().join("logs/dated-out.log").exists());
    rt.signal(SIGTERM);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(0)
    );
    // `--format`: each line after its `id|name |` prefix.
    let k = kelpie();
    let Some(mut rt) = Runtime::start(
        &k,
        &[
            "--format", &app, "--name", "fmt", "--", "--print", "1", "--tick", "100000",
        ],
    ) else {
        return;
    };
    rt.wait_out("0|fmt | line 0", Duration::from_secs(10));
    rt.signal(SIGTERM);
    assert_eq!(
        rt.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(0)
    );
}
