//! Automatic restarts: resource limits, schedules, watched files, health checks, the watchdog,
//! and start order. Each trigger is checked with real processes, and each restart must say why.

use super::{free_port, kelpie};
use kelpie_testkit::{alive, Kelpie};
use std::path::Path;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// `(pid, unix time in ns)` lines written by `fake-app --stamp`.
fn stamps(path: &Path) -> Vec<(u32, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (pid, ns) = line.split_once(' ')?;
            Some((pid.parse().ok()?, ns.parse().ok()?))
        })
        .collect()
}

/// When a `--stamp-over` allocation first went over its limit: the first `over <pid> <ns>` line.
fn over_stamp(path: &Path) -> Option<u128> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("over ")?.split(' ').nth(1)?.parse().ok())
}

/// The causes of the app's recorded exits, oldest first.
fn causes(k: &Kelpie, name: &str) -> Vec<String> {
    k.exits(name)
        .iter()
        .filter_map(|e| e["cause"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_child_over_the_memory_limit_restarts_the_app_within_two_seconds() {
    let k = kelpie();
    let stamp = k.home().join("stamps");
    let children = k.home().join("children");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "fat",
        "--max-memory-restart",
        "60M",
        "--",
        "--stamp",
        stamp.to_str().expect("utf-8"),
        "--spawn-children",
        "1",
        "--children-file",
        children.to_str().expect("utf-8"),
        "--child-allocate",
        "100",
        "--allocate-after",
        "1000",
        "--stamp-over",
        "60",
    ]);
    let first = k.pid("fat");
    let child = k.children(&children, 1)[0];
    k.wait_for("a restart", 6 * SECS, || stamps(&stamp).len() >= 2);
    let lines = stamps(&stamp);
    let restarted = lines[1].1;
    // The child stamps `over <pid> <ns>` when its resident memory crossed the limit: measured
    // from there, not from an estimate (touching 60 MB takes long on a loaded machine).
    let crossed = over_stamp(&stamp).expect("the child stamped its crossing");
    let after_crossing_ms = restarted.saturating_sub(crossed) / 1_000_000;
    assert!(
        after_crossing_ms < 2000,
        "restarted {after_crossing_ms} ms after crossing the limit"
    );
    assert_ne!(lines[1].0, first);
    k.wait_for("the old child gone", 3 * SECS, || !alive(child));
    assert_eq!(
        causes(&k, "fat").first().map(String::as_str),
        Some("memory")
    );
    let describe = k.ok(&["describe", "fat"]);
    assert!(
        describe.contains("memory") && describe.contains("over max_memory_restart 60.0 MB"),
        "{describe}"
    );
}

#[test]
fn sustained_cpu_over_max_cpu_restarts_the_app() {
    // The burner must get its core: not next to the load tests.
    let _heavy = super::heavy();
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "hot",
        "--max-cpu",
        "25",
        "--max-cpu-window",
        "1500",
        "--",
        "--burn",
    ]);
    let first = k.pid("hot");
    k.wait_for("a restart for cpu", 15 * SECS, || k.pid("hot") != first);
    assert_eq!(causes(&k, "hot").first().map(String::as_str), Some("cpu"));
}

#[test]
fn an_app_whose_watchdog_goes_silent_is_restarted() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "dog",
        "--watchdog",
        "1",
        "--",
        "--print-env",
        "WATCHDOG_USEC",
        "--watchdog",
        "200",
        "--hang-after",
        "1000",
    ]);
    let first = k.pid("dog");
    // systemd's variable, which sd_watchdog_enabled() reads.
    k.wait_for("WATCHDOG_USEC in the app's output", 3 * SECS, || {
        k.log("dog-out.log").contains("WATCHDOG_USEC=1000000")
    });
    // It pings for a second, then hangs: restarted about 1 s later. (The exact timing, and
    // no restart while it pings, are the instance's in-process tests.)
    k.wait_for("a restart for the watchdog", 5 * SECS, || {
        let pid = k.pid("dog");
        pid != 0 && pid != first
    });
    assert_eq!(
        causes(&k, "dog").first().map(String::as_str),
        Some("watchdog")
    );
}

/// The schedule's exact timing, and that it never revives a stopped app, are the instance's
/// in-process tests (paused clock); here a real app is restarted by it.
#[test]
fn a_cron_every_second_restarts_a_real_app_until_it_is_stopped() {
    let k = kelpie();
    let stamp = k.home().join("stamps");
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "cron",
        "--cron-restart",
        "* * * * * *",
        "--cron-timezone",
        "UTC",
        "--",
        "--stamp",
        stamp.to_str().expect("utf-8"),
    ]);
    k.wait_for("two restarts by the schedule", 5 * SECS, || {
        stamps(&stamp).len() >= 3
    });
    let causes = causes(&k, "cron");
    assert!(
        causes.len() >= 2 && causes.iter().all(|c| c == "cron"),
        "{causes:?}"
    );
    k.ok(&["stop", "cron"]);
    assert_eq!(k.status("cron"), "stopped");
    let describe = k.ok(&["describe", "cron"]);
    assert!(describe.contains("`* * * * * *` (UTC)"), "{describe}");
}

#[test]
fn an_http_server_that_starts_failing_is_restarted_after_the_configured_failures() {
    let k = kelpie();
    let port = free_port();
    let config = k.write(
        "health.json",
        &format!(
            r#"{{"apps": [{{"name": "web", "script": "{app}", "args": ["--serve", "--fail-after", "1200"],
                "env": {{"PORT": "{port}"}},
                "health_check": {{"http": "/health", "interval": "200ms", "timeout": "500ms", "failures": 3}}}}]}}"#,
            app = k.fake_app()
        ),
    );
    k.ok(&["start", &config]);
    let first = k.pid("web");
    k.wait_for("healthy", 3 * SECS, || {
        k.app("web")["pm2_env"]["health"] == "healthy"
    });
    // Failing from 1.2 s on, three failed checks 200 ms apart: restarted about 0.6 s later.
    k.wait_for("a restart for health", 5 * SECS, || {
        let pid = k.pid("web");
        pid != 0 && pid != first
    });
    assert_eq!(
        causes(&k, "web").first().map(String::as_str),
        Some("health")
    );
    let describe = k.ok(&["describe", "web"]);
    assert!(
        describe.contains("health check failed 3 times in a row: HTTP 500 from http://127.0.0.1:"),
        "{describe}"
    );
}

#[test]
fn a_depends_on_chain_starts_in_order_and_stops_in_reverse() {
    let k = kelpie();
    let order = k.home().join("order");
    let order = order.to_str().expect("utf-8");
    let db_port = free_port();
    let cache_port = free_port();
    // db answers HTTP only after 700 ms (its health check passes then); cache needs db (and is
    // healthy once it answers), api needs cache. Written api first, to show that the file's order does not matter.
    let config = k.write(
        "chain.json",
        &format!(
            r#"{{"apps": [
                {{"name": "api", "script": "{app}", "args": ["--stamp", "{order}", "--ignore-signals"],
                  "kill_timeout": 500, "depends_on": ["cache"]}},
                {{"name": "cache", "script": "{app}", "args": ["--serve", "--stamp", "{order}"],
                  "env": {{"PORT": "{cache_port}"}}, "depends_on": ["db"],
                  "health_check": {{"http": "/", "interval": "100ms"}}}},
                {{"name": "db", "script": "{app}", "args": ["--serve", "--ready-after", "700", "--stamp", "{order}"],
                  "env": {{"PORT": "{db_port}"}},
                  "health_check": {{"http": "/", "interval": "100ms"}}}}
            ]}}"#,
            app = k.fake_app()
        ),
    );
    k.ok(&["start", &config]);
    // `start` returns once api is spawned (it has no readiness); its stamp is written by api
    // itself a moment later.
    k.wait_for("api's start stamp", 5 * SECS, || {
        stamps(k.home().join("order").as_path()).len() >= 3
    });
    let pids: Vec<u32> = stamps(k.home().join("order").as_path())
        .iter()
        .map(|(pid, _)| *pid)
        .collect();
    assert_eq!(
        pids,
        [k.pid("db"), k.pid("cache"), k.pid("api")],
        "start order"
    );
    let started: Vec<u128> = stamps(k.home().join("order").as_path())
        .iter()
        .map(|(_, ns)| *ns)
        .collect();
    assert!(
        started[1] - started[0] > 600_000_000,
        "cache started before db was healthy"
    );
    for name in ["db", "cache", "api"] {
        assert_eq!(k.status(name), "online", "{name}");
    }
    // Stopped in reverse: api ignores its stop signal and dies at its kill_timeout (500 ms);
    // cache is asked to stop only then, and db after cache.
    let db = k.pid("db");
    let api = k.pid("api");
    k.ok(&["stop", &config]);
    assert!(!alive(db) && !alive(api));
    let stopped_at = |name: &str| -> u64 {
        k.exits(name)
            .last()
            .and_then(|exit| exit["at_ms"].as_u64())
            .unwrap_or_default()
    };
    assert!(stopped_at("api") <= stopped_at("cache"));
    assert!(stopped_at("cache") <= stopped_at("db"));
}

#[test]
fn a_start_whose_dependency_fails_is_not_done_and_says_why() {
    let k = kelpie();
    let config = k.write(
        "broken.json",
        &format!(
            r#"{{"apps": [
                {{"name": "db", "script": "{app}", "args": ["--exit-after", "10"], "max_restarts": 2,
                  "wait_ready": true}},
                {{"name": "api", "script": "{app}", "depends_on": "db"}}
            ]}}"#,
            app = k.fake_app()
        ),
    );
    let out = k.run(&["start", &config]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("app `api` was not started: `db` (id 0), which it depends on, is errored"),
        "{stderr}"
    );
    assert_eq!(k.status("api"), "stopped");
    let missing = k.fails(&[
        "start",
        &k.fake_app(),
        "--name",
        "lonely",
        "--depends-on",
        "nobody",
    ]);
    assert!(
        missing.contains("app `lonely` depends on `nobody`, which is neither started with it nor known to the daemon"),
        "{missing}"
    );
}

#[test]
fn nice_and_user_apply_to_the_apps_processes() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "low", "--nice", "5"]);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", k.pid("low"))).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let nice = after_name.split_whitespace().nth(16).expect("nice field");
    assert_eq!(nice, "5", "{stat}");
    if kelpie_sys::current_uid() != 0 {
        kelpie_testkit::skip("the `--user` part needs root");
        return;
    }
    // A negative nice needs root: it is set before the switch to the user.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "nobody",
        "--user",
        "nobody",
        "--nice=-5",
    ]);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", k.pid("nobody"))).expect("status");
    let (uid, _) = kelpie_sys::lookup_user("nobody").expect("the nobody user");
    assert!(
        status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some(&uid.to_string())),
        "{status}"
    );
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", k.pid("nobody"))).expect("stat");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    assert_eq!(after_name.split_whitespace().nth(16), Some("-5"), "{stat}");
    let missing = k.run(&[
        "start",
        &k.fake_app(),
        "--name",
        "ghost",
        "--user",
        "no-such-user-here",
    ]);
    let describe = k.ok(&["describe", "ghost"]);
    assert!(
        describe.contains("user `no-such-user-here` does not exist"),
        "{describe}\n{missing:?}"
    );
}

#[test]
fn a_burst_of_fifty_writes_gives_one_restart_and_stop_ends_watching() {
    let k = kelpie();
    let project = tempfile::tempdir().expect("project dir");
    let src = project.path().join("src");
    std::fs::create_dir_all(src.join("node_modules")).expect("mkdir");
    let stamp = k.home().join("stamps");
    let watch = format!("--watch={}", project.path().display());
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "dev",
        &watch,
        "--watch-delay",
        "300",
        "--",
        "--stamp",
        stamp.to_str().expect("utf-8"),
    ]);
    for i in 0..50 {
        std::fs::write(src.join(format!("file{}.js", i % 5)), format!("v{i}")).expect("write");
        // pacing: a burst spread over 200 ms, inside the watch delay.
        std::thread::sleep(Duration::from_millis(4));
    }
    k.wait_for("a restart", 5 * SECS, || stamps(&stamp).len() >= 2);
    assert_eq!(causes(&k, "dev"), ["watch"]);
    assert!(k.ok(&["describe", "dev"]).contains("changed"));
    // Never watched: node_modules, editors' swap files. Written before a watched file, they would
    // be its burst's first path (or a restart of their own); what was left of the first burst, if
    // anything, would be a restart of its own before it: the watched file's restart is the
    // second, and names it first.
    std::fs::write(src.join("node_modules").join("dep.js"), "x").expect("write");
    std::fs::write(src.join(".file0.js.swp"), "x").expect("write");
    std::fs::write(src.join("marker.js"), "x").expect("write");
    k.wait_for("the watched file's restart", 5 * SECS, || {
        watch_restarts(&k).len() >= 2
    });
    let restarts = watch_restarts(&k);
    assert!(
        restarts[1].contains("/src/marker.js "),
        "one burst, one restart; ignored paths unseen: {restarts:?}"
    );
    k.wait_for("its start", 5 * SECS, || stamps(&stamp).len() >= 3);
    assert_eq!(stamps(&stamp).len(), 3, "{restarts:?}");
    // Stopped: no longer watched, even once started again (as in PM2), until `restart
    // --watch` turns watching back on (the app's directory).
    // (A restart for the changes made while stopped, or after the start, would come within
    // the watch delay, before the restart for the last change: counted at the end.)
    k.ok(&["stop", "dev"]);
    assert_eq!(k.app("dev")["pm2_env"]["watch"], false);
    std::fs::write(src.join("file0.js"), "after stop").expect("write");
    assert_eq!(k.status("dev"), "stopped");
    k.ok(&["start", "dev"]);
    assert_eq!(k.app("dev")["pm2_env"]["watch"], false);
    k.wait_for("the start", 5 * SECS, || stamps(&stamp).len() >= 4);
    std::fs::write(src.join("file1.js"), "after start").expect("write");
    k.ok(&["restart", "dev", "--watch"]);
    assert_eq!(k.app("dev")["pm2_env"]["watch"], true);
    k.wait_for("the restart", 5 * SECS, || stamps(&stamp).len() >= 5);
    k.write("changed.js", "in the app's directory");
    k.wait_for("a restart for a change in its directory", 5 * SECS, || {
        stamps(&stamp).len() >= 6
    });
    let restarts = watch_restarts(&k);
    assert_eq!(
        restarts.len(),
        3,
        "a stopped app stays unwatched: {restarts:?}"
    );
    assert!(restarts[2].contains("/changed.js "), "{restarts:?}");
    assert_eq!(stamps(&stamp).len(), 6);
}

#[test]
fn what_kelpie_writes_in_a_watched_directory_never_restarts_the_app() {
    let k = kelpie();
    let project = tempfile::tempdir().expect("project dir");
    let dir = project.path();
    // An existing directory named as a pid file (a real file's `pid: "./data/logs/"`, with
    // `data/logs` ignored): PM2 cannot write it (EISDIR) and runs the app; so does Kelpie,
    // without a temporary file beside it in the watched `data`.
    std::fs::create_dir_all(dir.join("data/logs")).expect("mkdir");
    // A witness, watching a directory of its own with the same delay: the one watcher reads
    // its changes in order, so once a change made there has restarted the witness, anything
    // written before it in the others' directory would have asked for their restart.
    let elsewhere = tempfile::tempdir().expect("the witness's dir");
    let witness_dir = elsewhere.path();
    let witnessed = |n: u64| {
        std::fs::write(witness_dir.join(format!("change{n}.js")), "x").expect("write");
        k.wait_for("the witness's restart", 10 * SECS, || {
            k.app("witness")["pm2_env"]["restart_time"] == n
        });
    };
    let config = k.write(
        "watched.json",
        &format!(
            r#"{{"apps": [
                {{"name": "file", "script": "{app}", "cwd": "{dir}", "watch": true,
                  "ignore_watch": ["data/logs"],
                  "pid_file": "./run/file.pid", "out_file": "./logs/deep/file.log"}},
                {{"name": "dir", "script": "{app}", "cwd": "{dir}", "watch": true,
                  "ignore_watch": ["node_modules", "data/logs"], "pid": "./data/logs/"}},
                {{"name": "witness", "script": "{app}", "cwd": "{witness}", "watch": true}}
            ]}}"#,
            app = k.fake_app(),
            dir = dir.display(),
            witness = witness_dir.display(),
        ),
    );
    k.ok(&["start", &config]);
    let pid_file = dir.join("run/file-0.pid");
    k.wait_for("the pid file", 5 * SECS, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == k.pid("file").to_string())
    });
    assert_eq!(
        k.app("dir")["pm2_env"]["pm_pid_path"],
        dir.join("data/logs").display().to_string()
    );
    witnessed(1);
    for app in ["file", "dir"] {
        assert_eq!(
            k.app(app)["pm2_env"]["restart_time"],
            0,
            "{app}: its pid file, its temporary file or its log restarted it: {}",
            daemon_log(&k)
        );
        assert_eq!(k.status(app), "online");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("data"))
        .expect("ls data")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["logs"], "nothing written beside data/logs");
    assert!(
        daemon_log(&k).contains("is a directory"),
        "{}",
        daemon_log(&k)
    );
    // A real change still restarts both, once each (the new pid file written at the restart
    // wakes nothing either).
    std::fs::write(dir.join("index.js"), "changed").expect("write");
    for app in ["file", "dir"] {
        k.wait_for("the restart for the change", 10 * SECS, || {
            k.app(app)["pm2_env"]["restart_time"] == 1
        });
    }
    k.wait_for("the new pid file", 10 * SECS, || {
        std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == k.pid("file").to_string())
    });
    witnessed(2);
    for app in ["file", "dir"] {
        assert_eq!(k.app(app)["pm2_env"]["restart_time"], 1, "{app}");
    }
}

/// Whether the daemon makes a cgroup per app process; skips (with its log) when not. The
/// portable backend has none: the test's promise is then `row` of docs/platforms.md's table.
fn makes_cgroups(k: &Kelpie, row: &str) -> bool {
    if !kelpie_testkit::linux_backend_only(row) {
        return false;
    }
    let log = daemon_log(k);
    let makes = log.contains("cgroups: one per app process");
    if !makes {
        kelpie_testkit::skip(format!(
            "the daemon cannot create cgroups here (needs root and a writable cgroup v2 \
             hierarchy); its log: {log}"
        ));
    }
    makes
}

/// The daemon's log.
fn daemon_log(k: &Kelpie) -> String {
    std::fs::read_to_string(k.home().join("kelpie.log")).unwrap_or_default()
}

/// What each restart by the watch of app `dev` said changed, from the daemon's log, oldest
/// first.
fn watch_restarts(k: &Kelpie) -> Vec<String> {
    daemon_log(k)
        .lines()
        .filter_map(|l| l.split_once("app `dev` (id 0): restarting (watch): "))
        .map(|(_, changed)| changed.to_string())
        .collect()
}

#[test]
fn dependencies_that_will_never_come_up_fail_the_start_at_once() {
    let k = kelpie();
    // db is registered but not started; b waits for a db that will never run, a for b.
    let config = k.write(
        "never.json",
        &format!(
            r#"{{"apps": [
                {{"name": "db", "script": "{app}", "autostart": false}},
                {{"name": "b", "script": "{app}", "depends_on": "db"}},
                {{"name": "a", "script": "{app}", "depends_on": "b"}}
            ]}}"#,
            app = k.fake_app()
        ),
    );
    // Refused for the reason (a stopped dependency), not given up on after a wait.
    let out = k.run(&["start", &config]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("app `b` was not started: `db` (id 0), which it depends on, is stopped"),
        "{stderr}"
    );
    assert!(stderr.contains("app `a` was not started: `b`"), "{stderr}");
    // A cycle through an app the daemon already knows is refused before anything changes.
    k.ok(&["start", &k.fake_app(), "--name", "p"]);
    k.ok(&["start", &k.fake_app(), "--name", "q", "--depends-on", "p"]);
    let refused = k.fails(&[
        "start",
        &k.fake_app(),
        "--name",
        "p",
        "-f",
        "--depends-on",
        "q",
    ]);
    assert!(
        refused.contains("depends_on has a cycle: p -> q -> p"),
        "{refused}"
    );
    assert_eq!(k.jlist().len(), 5, "nothing was added");
}

#[test]
fn with_cgroups_an_app_process_is_in_its_cgroup_from_its_start() {
    let k = kelpie();
    // The shell's first act is to print its cgroup: the process was there before it ran.
    k.ok(&[
        "start",
        "sh -c 'cat /proc/self/cgroup; exec sleep 300'",
        "--name",
        "placed",
    ]);
    if !makes_cgroups(&k, "Starting a process") {
        return;
    }
    let daemon = k.daemon_pid().expect("daemon pid");
    let id = k.app("placed")["pm_id"].as_u64().expect("pm_id");
    let expected = format!("/kelpie-{daemon}/{id}.");
    k.wait_for("its cgroup line", 5 * SECS, || {
        k.log("placed-out.log")
            .lines()
            .any(|line| line.starts_with("0::") && line.contains(&expected))
    });
}

#[test]
fn with_cgroups_a_process_that_left_the_group_is_counted_and_stopped_with_the_app() {
    let k = kelpie();
    let escaped = k.home().join("escaped.pid");
    // What the escaped process got: the stop signal, which it says, or SIGKILL, which it cannot.
    let got = k.home().join("escaped.got");
    // Says so once its trap is set: a stop before that would kill it by the signal's default.
    let trapping = k.home().join("escaped.trapping");
    let script = k.write_script(
        "escape.sh",
        &format!(
            "#!/bin/sh\nsetsid sh -c 'trap \"echo TERM > {got}; exit 0\" TERM; echo > {trapping}; sleep 300 & wait' &\necho $! > {escaped}\nexec sleep 300\n",
            got = got.display(),
            escaped = escaped.display(),
            trapping = trapping.display()
        ),
    );
    // SIGTERM: sh starts background jobs with SIGINT ignored. A kill_timeout of a minute: a
    // stop that had to wait for it would show.
    k.ok(&[
        "start",
        &script,
        "--name",
        "escape",
        "--kill-signal",
        "SIGTERM",
        "--kill-timeout",
        "60000",
    ]);
    if !makes_cgroups(&k, "Stop leaves nothing of the tree") {
        return;
    }
    // The shell creates the file before it writes the pid into it: wait for a whole number.
    let read_pid =
        || -> Option<u32> { std::fs::read_to_string(&escaped).ok()?.trim().parse().ok() };
    k.wait_for("the escaped pid", 5 * SECS, || read_pid().is_some());
    let pid = read_pid().expect("a pid");
    k.track(pid);
    assert!(alive(pid));
    k.wait_for("its memory sampled", 5 * SECS, || {
        k.app("escape")["monit"]["memory"].as_u64().unwrap_or(0) > 0
    });
    k.wait_for("its trap set", 10 * SECS, || trapping.exists());
    // It gets the stop signal too (it is in the app's cgroup), so the stop takes no kill_timeout.
    k.ok(&["stop", "escape"]);
    assert!(
        !alive(pid),
        "the process that left the group survived the stop"
    );
    assert_eq!(
        std::fs::read_to_string(&got).ok().as_deref(),
        Some("TERM\n"),
        "the process that left the group got the stop signal"
    );
}

#[test]
fn with_cgroups_a_crash_loop_leaves_no_cgroups_and_nothing_that_escaped_its_processes() {
    let k = kelpie();
    // `plain` crashes alone; each process of `escaping` leaves a process behind (setsid), which
    // must be killed at its exit (its cgroup cannot be removed while that one is in it). Each
    // process first prints its cgroup.
    let escaped = k.home().join("escaped.pids");
    let escaping = k.write_script(
        "escaping.sh",
        &format!(
            "#!/bin/sh
grep '^0::' /proc/self/cgroup
setsid sleep 300 &
echo $! >> {escaped}
sleep 0.2
exit 1
",
            escaped = escaped.display()
        ),
    );
    let plain = k.write_script(
        "plain.sh",
        "#!/bin/sh
grep '^0::' /proc/self/cgroup
sleep 0.2
exit 1
",
    );
    for (script, name) in [(&plain, "plain"), (&escaping, "escaping")] {
        k.ok(&["start", script, "--name", name, "--restart-delay", "0"]);
    }
    if !makes_cgroups(&k, "Stop leaves nothing of the tree") {
        return;
    }
    // Where the daemon makes them (`<base>/<pm_id>.<n>`), as its log says.
    let log = daemon_log(&k);
    let base = log
        .split_once("cgroups: one per app process under ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(std::path::PathBuf::from)
        .expect("the daemon's cgroup in its log");
    let cgroups_of = |pm_id: u64| {
        std::fs::read_dir(&base)
            .expect("the daemon's cgroup")
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{pm_id}."))
            })
            .count()
    };
    let plain_id = k.app("plain")["pm_id"].as_u64().expect("pm_id");
    let restarts = |name: &str| k.app(name)["pm2_env"]["restart_time"].as_u64().unwrap_or(0);
    let mut most = 0;
    k.wait_for("5 restarts of each", 30 * SECS, || {
        most = most.max(cgroups_of(plain_id));
        restarts("plain") >= 5 && restarts("escaping") >= 5
    });
    // The running process's cgroup, and at most the last one's while it is replaced.
    assert!(
        (1..=2).contains(&most),
        "{most} cgroups of `plain` at once in {}",
        base.display()
    );
    let pids: Vec<u32> = std::fs::read_to_string(&escaped)
        .expect("the escaped pids")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for &pid in &pids {
        k.track(pid);
    }
    assert!(pids.len() >= 5, "{pids:?}");
    // Each process that escaped was killed when its app's process exited (all but the last
    // one's, which may still run).
    k.wait_for("the escaped processes killed", 10 * SECS, || {
        pids[..pids.len() - 1].iter().all(|&pid| !alive(pid))
    });
    // The cgroup a process left empty is its instance's next process's (no directory removed
    // and made again per restart); one that held what escaped is never given to another.
    let cgroups_printed = |name: &str| -> Vec<String> {
        k.log(&format!("{name}-out.log"))
            .lines()
            .filter(|line| line.starts_with("0::"))
            .map(str::to_string)
            .collect()
    };
    let distinct = |printed: &[String]| {
        printed
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len()
    };
    let plain_cgroups = cgroups_printed("plain");
    assert!(plain_cgroups.len() >= 5, "{plain_cgroups:?}");
    assert!(
        distinct(&plain_cgroups) < plain_cgroups.len(),
        "no process of `plain` was given the cgroup its last one left: {plain_cgroups:?}"
    );
    let escaping_cgroups = cgroups_printed("escaping");
    assert_eq!(
        distinct(&escaping_cgroups),
        escaping_cgroups.len(),
        "a cgroup that held an escaped process was given to the next one: {escaping_cgroups:?}"
    );
    k.ok(&["delete", "all"]);
    k.wait_for("the last one killed with the app", 10 * SECS, || {
        pids.iter().all(|&pid| !alive(pid))
    });
    k.wait_for("the cgroups removed", 10 * SECS, || {
        cgroups_of(plain_id) == 0 && cgroups_of(plain_id + 1) == 0
    });
}

#[test]
fn a_memory_limit_below_the_start_up_memory_is_a_crash_loop_that_says_so() {
    let k = kelpie();
    // Seed 003's example: no process can start under 1 KB.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "tiny",
        "--max-memory-restart",
        "1K",
        "--max-restarts",
        "3",
    ]);
    k.wait_for("errored", Duration::from_secs(30), || {
        k.status("tiny") == "errored"
    });
    let describe = k.ok(&["describe", "tiny"]);
    assert!(
        describe.contains("below the app's start-up memory")
            && describe.contains("over max_memory_restart")
            && describe.contains("max_restarts is 3"),
        "{describe}"
    );
    let events = k.ok(&["events"]);
    assert!(events.contains("start-up memory"), "{events}");
}

#[test]
fn a_leak_found_after_start_up_is_restarted_at_once_and_a_memory_loop_counts_as_a_crash_loop() {
    let k = kelpie();
    // Runs 1.8 s at 1-2 MB, then grows past its 150 MB limit: a leak, not a start-up failure.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "leak",
        "--max-memory-restart",
        "150M",
        "--",
        "--allocate",
        "200",
        "--allocate-after",
        "1800",
    ]);
    k.wait_for("three memory restarts", 30 * SECS, || {
        k.exits("leak").len() >= 3
    });
    for exit in k.exits("leak").iter().take(3) {
        assert_eq!(exit["cause"], "memory", "{exit}");
        assert_eq!(exit["action"], "restart", "restarted at once: {exit}");
        let reason = exit["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains("start-up memory"), "{reason}");
    }
    let describe = k.ok(&["describe", "leak"]);
    assert!(!describe.contains("start-up memory"), "{describe}");
    k.ok(&["delete", "leak"]);
    // Side by side, a limit no process can start under and an app that exits at its start are
    // the same loop: the same count and the same waits.
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "tiny",
        "--max-memory-restart",
        "1K",
    ]);
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "crash",
        "--",
        "--exit-after",
        "0",
        "--exit-code",
        "1",
    ]);
    // pacing: the two loops run side by side this long (the issue's 12 s).
    std::thread::sleep(12 * SECS);
    let count = |name: &str| {
        k.app(name)["pm2_env"]["restart_time"]
            .as_u64()
            .expect("restart_time")
    };
    let (tiny, crash) = (count("tiny"), count("crash"));
    // About the same: ±1 alone (a loop's cycles differ by how the end is found: a sample of
    // its memory, or its exit), within a third when the machine is loaded (16 and 11 were
    // seen beside a build). A memory loop not held back would restart a hundred times; one
    // taken for a start-up failure, once or twice.
    assert!(
        tiny.abs_diff(crash) <= 1 + tiny.max(crash) / 3,
        "the memory loop restarted {tiny} times, the crash loop {crash}"
    );
    assert!(crash >= 5, "{crash}");
}
