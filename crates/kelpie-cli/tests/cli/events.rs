//! Crash forensics and what apps publish: `events`, the exits in `describe`/`jlist`, and
//! `STATUS=` / `X_KELPIE_METRIC=` sent on `NOTIFY_SOCKET`, with real processes.

use super::kelpie;
use serde_json::Value;
use std::time::Duration;

const SECS: Duration = Duration::from_secs(1);

/// Held by the tests that look at the machine's OOM-kill counter: the real OOM kill of one
/// must not fall into the other's window.
static OOM_COUNTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn oom_counter() -> std::sync::MutexGuard<'static, ()> {
    OOM_COUNTER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn events_json(k: &kelpie_testkit::Kelpie, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str::<Value>(&k.ok(&all))
        .expect("events --json is JSON")
        .as_array()
        .cloned()
        .expect("an array")
}

#[test]
fn a_crash_is_listed_with_its_code_and_last_lines_of_stderr() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "crasher",
        "--no-autorestart",
        "--",
        "--print-err",
        "30",
        "--err-line",
        "fatal: cannot open config.yaml",
        "--exit-after",
        "300",
        "--exit-code",
        "3",
    ]);
    let pid = k.pid("crasher");
    k.wait_for("the crash with its stderr", 10 * SECS, || {
        events_json(&k, &["crasher"])
            .first()
            .is_some_and(|e| e["stderr_tail"].as_array().is_some_and(|t| !t.is_empty()))
    });
    let events = events_json(&k, &["crasher"]);
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["name"], "crasher");
    assert_eq!(event["pm_id"], 0);
    assert_eq!(event["pid"], pid);
    assert_eq!(event["code"], 3);
    assert_eq!(event["signal"], Value::Null);
    assert_eq!(event["oom"], Value::Null);
    assert_eq!(event["cause"], "crash");
    assert_eq!(event["action"], "stopped");
    assert!(event["uptime_ms"].as_u64().is_some_and(|ms| ms >= 250));
    let tail: Vec<&str> = event["stderr_tail"]
        .as_array()
        .expect("tail")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The last 20 lines, the newest last: 19 of the numbered ones, then the fatal one.
    assert_eq!(tail.len(), 20, "{tail:?}");
    assert_eq!(tail[0], "error line 11");
    assert_eq!(tail[19], "fatal: cannot open config.yaml");

    // The same in describe (the last lines) and in jlist's exit history.
    let describe = k.ok(&["describe", "crasher"]);
    assert!(
        describe.contains("stderr | fatal: cannot open config.yaml"),
        "{describe}"
    );
    assert!(describe.contains("code 3"), "{describe}");
    let exits = k.exits("crasher");
    assert_eq!(
        exits[0]["stderr_tail"][19],
        "fatal: cannot open config.yaml"
    );
    assert_eq!(exits[0]["pid"], pid);

    // The text form, with and without stderr.
    let text = k.ok(&["events"]);
    assert!(
        text.contains(&format!("crasher (0)  pid {pid}  code 3")),
        "{text}"
    );
    assert!(!text.contains("fatal:"), "{text}");
    let text = k.ok(&["events", "--stderr"]);
    assert!(
        text.contains("stderr | fatal: cannot open config.yaml"),
        "{text}"
    );
}

#[test]
fn events_across_apps_come_oldest_first_and_lines_keeps_the_newest() {
    let k = kelpie();
    for name in ["a", "b"] {
        k.ok(&[
            "start",
            &k.fake_app(),
            "--name",
            name,
            // Runs of 200 ms are stable then: restarted at once, no crash-loop backoff, so a
            // process runs when the stop comes.
            "--min-uptime",
            "100",
            "--",
            "--exit-after",
            "200",
            "--exit-code",
            "1",
        ]);
    }
    k.wait_for("several crashes", 10 * SECS, || {
        events_json(&k, &[]).len() >= 6
    });
    k.ok(&["stop", "all"]);
    let events = events_json(&k, &[]);
    let times: Vec<u64> = events.iter().filter_map(|e| e["at_ms"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let names: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let last_two = events_json(&k, &["--lines", "2"]);
    assert_eq!(last_two.len(), 2);
    assert_eq!(last_two[1], events[events.len() - 1]);
    assert_eq!(last_two[1]["cause"], "user", "the stop is the newest");
    let only_a = events_json(&k, &["a"]);
    assert!(only_a.iter().all(|e| e["name"] == "a"));
    k.fails(&["events", "nope"]);
}

/// Apps share one notify socket, each datagram told apart by its sender: a shell script's
/// `systemd-notify` (which names the script as sender, or runs in a subshell of it) reaches
/// its own app, and another app's readiness is not taken for it.
#[test]
fn systemd_notify_run_from_an_apps_shell_script_reaches_that_app() {
    let k = kelpie();
    if super::tools::program("systemd-notify").is_none() {
        kelpie_testkit::skip("systemd-notify is not installed (Debian's `systemd`)");
        return;
    }
    // The first says it is ready from the script itself, the second from a subshell (a
    // process of its group that is not the app's), the third never.
    for (name, notify, timeout) in [
        ("direct", "systemd-notify --ready --status=direct", "10000"),
        (
            "subshell",
            "( systemd-notify --ready --status=subshell )",
            "10000",
        ),
        ("silent", "true", "1000"),
    ] {
        let script = k.write_script(
            &format!("{name}.sh"),
            &format!("#!/bin/sh\nsleep 0.3\n{notify}\nexec sleep 1000\n"),
        );
        k.ok(&[
            "start",
            &script,
            "--name",
            name,
            "--wait-ready",
            "--listen-timeout",
            timeout,
        ]);
    }
    for name in ["direct", "subshell"] {
        let describe = k.ok(&["describe", name]);
        assert!(!describe.contains("not ready within"), "{describe}");
        assert_eq!(k.status(name), "online");
        assert_eq!(k.app(name)["pm2_env"]["status_text"], name);
    }
    let describe = k.ok(&["describe", "silent"]);
    assert!(
        describe.contains("not ready within listen_timeout"),
        "{describe}"
    );
    k.ok(&["delete", "all"]);
}

#[test]
fn status_and_metrics_sent_on_the_notify_socket_are_shown() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "pub",
        "--",
        "--notify",
        "STATUS=warming up",
        "--notify",
        "STATUS=serving 12 clients\\nX_KELPIE_METRIC=queue_depth=7\\nX_KELPIE_METRIC=hit_ratio=0.93",
        "--notify",
        "X_KELPIE_METRIC=bad-name=1\\nX_KELPIE_METRIC=not_a_number=abc",
    ]);
    k.wait_for("the status and metrics", 10 * SECS, || {
        let app = k.app("pub");
        app["pm2_env"]["status_text"] == "serving 12 clients"
            && app["pm2_env"]["metrics"]["hit_ratio"] == 0.93
    });
    let env = k.app("pub")["pm2_env"].clone();
    assert_eq!(env["metrics"]["queue_depth"], 7.0);
    assert_eq!(
        env["metrics"].as_object().map(|m| m.len()),
        Some(2),
        "bad names and values are refused: {env}"
    );
    assert_eq!(env["axm_monitor"]["queue_depth"]["value"], 7.0);

    let list = k.ok(&["list"]);
    assert!(list.contains("app status"), "{list}");
    assert!(list.contains("serving 12 clients"), "{list}");
    let describe = k.ok(&["describe", "pub"]);
    assert!(describe.contains("serving 12 clients"), "{describe}");
    assert!(describe.contains("queue_depth"), "{describe}");
    assert!(describe.contains("hit_ratio"), "{describe}");
    assert!(
        std::fs::read_to_string(k.home().join("kelpie.log"))
            .unwrap_or_default()
            .contains("bad-name"),
        "a bad metric is said in the daemon log"
    );

    // Metrics are the running process's: gone once it stops; its status text stays.
    k.ok(&["stop", "pub"]);
    let env = k.app("pub")["pm2_env"].clone();
    assert_eq!(
        env["metrics"].as_object().map(|m| m.len()),
        Some(0),
        "{env}"
    );
    assert_eq!(env["status_text"], "serving 12 clients");
}

#[test]
fn an_app_without_status_keeps_the_usual_table() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "plain"]);
    let list = k.ok(&["list"]);
    assert!(!list.contains("app status"), "{list}");
}

/// A cgroup v1 memory cgroup with a small limit under this test's own, when this machine has
/// the v1 memory hierarchy and lets us write it (root). Removed when dropped.
struct V1MemoryCgroup(std::path::PathBuf);

impl V1MemoryCgroup {
    fn create(limit: u64) -> Option<V1MemoryCgroup> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let relative = own.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_string())
        })?;
        let dir = std::path::Path::new("/sys/fs/cgroup/memory")
            .join(relative.trim_start_matches('/'))
            .join(format!("kelpie-oom-test-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let cgroup = V1MemoryCgroup(dir);
        std::fs::write(cgroup.0.join("memory.limit_in_bytes"), limit.to_string()).ok()?;
        Some(cgroup)
    }
}

impl Drop for V1MemoryCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_real_oom_kill_is_recorded_as_likely_without_a_memory_cgroup_of_kelpie() {
    // Kelpie's own cgroups here (v2) have no memory controller, so the OOM kill is told by the
    // machine's counter. The kill itself is real and contained: the app puts itself in a cgroup
    // v1 memory cgroup limited to 64 MiB, then allocates 300 MiB.
    let _counter = oom_counter();
    let Some(cgroup) = V1MemoryCgroup::create(64 << 20) else {
        kelpie_testkit::skip(
            "no writable cgroup v1 memory hierarchy here (needs root and /sys/fs/cgroup/memory)",
        );
        return;
    };
    let k = kelpie();
    let script = k.write(
        "oom.sh",
        "echo $$ > \"$1/cgroup.procs\" || exit 9\nexec \"$2\" --allocate 300 --allocate-after 1500\n",
    );
    k.ok(&[
        "start",
        &script,
        "--name",
        "hog",
        "--no-autorestart",
        "--",
        cgroup.0.to_str().expect("utf-8"),
        &k.fake_app(),
    ]);
    k.wait_for("the OOM kill", 20 * SECS, || k.status("hog") == "stopped");
    let events = events_json(&k, &["hog"]);
    let event = &events[0];
    assert_eq!(event["signal"], "SIGKILL", "{event}");
    assert_eq!(event["oom"], "likely", "{event}");
    assert!(
        event["reason"]
            .as_str()
            .is_some_and(|r| r.contains("OOM killer")),
        "{event}"
    );
    assert!(k.ok(&["events"]).contains("signal SIGKILL OOM?"));
}

#[test]
fn a_sigkill_from_someone_else_is_not_called_an_oom_kill() {
    let _counter = oom_counter();
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "victim",
        "--no-autorestart",
    ]);
    let pid = k.pid("victim");
    // After the monitor's first sample of the machine's OOM-kill counter: it takes one at the
    // start of each round, before the apps' usage (so, once the app's memory is in the list).
    k.wait_for("the monitor's first round with the app", 10 * SECS, || {
        k.app("victim")["monit"]["memory"].as_u64().unwrap_or(0) > 0
    });
    kelpie_sys::send_signal(pid, kelpie_sys::SIGKILL).expect("kill -9");
    k.wait_for("the exit", 10 * SECS, || k.status("victim") == "stopped");
    let events = events_json(&k, &["victim"]);
    assert_eq!(events[0]["signal"], "SIGKILL");
    assert_eq!(events[0]["oom"], Value::Null, "{:?}", events[0]);
}

/// Another local user cannot speak for an app on its notify socket. Linux's abstract socket
/// takes anyone's datagram, but the kernel names the sender and nobody's pid is no app's; the
/// portable backend's socket is a file whose datagrams name no sender, so only the app's user
/// may send to it (mode 0600, the app's owner).
#[test]
fn another_user_cannot_speak_for_an_app_on_its_notify_socket() {
    let k = kelpie();
    k.ok(&[
        "start",
        &k.fake_app(),
        "--name",
        "quiet",
        "--",
        "--tick",
        "50",
    ]);
    let pid = k.pid("quiet");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("its environment");
    let socket = environ
        .split(|b| *b == 0)
        .find_map(|entry| entry.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .expect("NOTIFY_SOCKET");
    if !socket.starts_with('@') {
        use std::os::unix::fs::MetadataExt;
        let file = std::fs::metadata(&socket).expect("the socket's file");
        assert_eq!(file.mode() & 0o777, 0o600, "{socket}");
        assert_eq!(file.uid(), 0, "the app's user (root here)");
    }
    let spoof = "import socket, sys\n\
                 a = sys.argv[1]\n\
                 s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                 try:\n    s.sendto(b'STATUS=spoofed', '\\0' + a[1:] if a.startswith('@') else a)\n\
                 except PermissionError:\n    print('refused')\n";
    let sent = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            // Debian's, which any user may run (a version manager's may sit in root's home).
            "/usr/bin/python3",
            "-c",
        ])
        .arg(spoof)
        .arg(&socket)
        .output()
        .expect("setpriv (util-linux) and python3");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // pacing: what is tested is that nothing arrives; a second is many times the delivery.
    std::thread::sleep(Duration::from_secs(1));
    assert_ne!(
        k.app("quiet")["pm2_env"]["status_text"],
        "spoofed",
        "another user's datagram was taken as the app's"
    );
}
