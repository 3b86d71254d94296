//! The daemon and its socket: permissions, handshake, who may connect, where it lives.

use super::kelpie;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[test]
fn ping_starts_the_daemon_with_a_private_home_and_socket() {
    let k = kelpie();
    let out = k.ok(&["ping"]);
    assert!(out.contains("pong"), "{out}");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(k.home()), 0o700);
    assert_eq!(mode(&k.home().join("kelpie.sock")), 0o600);
    k.ok(&["kill"]);
    let out = k.ok(&["kill"]);
    assert!(out.contains("no daemon is running"), "{out}");
}

/// Serve `connections` clients with a Hello of a future protocol, like an old/new daemon would.
fn fake_daemon(listener: UnixListener, connections: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut len = [0u8; 4];
            let _ = stream.read_exact(&mut len);
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            let _ = stream.read_exact(&mut body);
            let hello = br#"{"protocol":999,"version":"9.9.9"}"#;
            let _ = stream.write_all(&(hello.len() as u32).to_be_bytes());
            let _ = stream.write_all(hello);
        }
    })
}

#[test]
fn a_daemon_of_another_protocol_gives_a_clear_message_not_a_panic() {
    let k = kelpie();
    std::fs::create_dir_all(k.home()).expect("home");
    let listener = UnixListener::bind(k.home().join("kelpie.sock")).expect("bind");
    let server = fake_daemon(listener, 1);
    let err = k.fails(&["list"]);
    assert!(
        err.contains("v9.9.9") && err.contains("protocol 999") && err.contains("kelpie update"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    server.join().expect("fake daemon");
}

#[test]
fn something_else_on_the_socket_is_reported() {
    let k = kelpie();
    std::fs::create_dir_all(k.home()).expect("home");
    let listener = UnixListener::bind(k.home().join("kelpie.sock")).expect("bind");
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut hello = [0u8; 64];
            let _ = stream.read(&mut hello);
            let _ = stream.write_all(b"\0\0\0\x05hello");
        }
    });
    let err = k.fails(&["ping"]);
    assert!(err.contains("does not speak kelpie's protocol"), "{err}");
    server.join().expect("server");
}

#[test]
fn an_unusable_home_is_a_clear_error() {
    let k = kelpie();
    let file = k.write("not-a-dir", "x");
    let out = k
        .command(&["ping"])
        .env("KELPIE_HOME", format!("{file}/home"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create the kelpie home") && err.contains("not-a-dir"),
        "{err}"
    );
}

#[test]
fn another_user_is_refused() {
    if kelpie_sys_uid() != 0 {
        kelpie_testkit::skip("needs root to run a client as another user");
        return;
    }
    let k = kelpie();
    k.ok(&["ping"]);
    // Open the home so only the daemon's own check can refuse (as root we can).
    std::fs::set_permissions(k.home(), std::fs::Permissions::from_mode(0o755)).expect("chmod home");
    std::fs::set_permissions(
        k.home().join("kelpie.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .expect("chmod sock");
    let Ok(out) = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_kelpie"),
            "list",
        ])
        .env("KELPIE_HOME", k.home())
        .current_dir("/")
        .output()
    else {
        kelpie_testkit::skip("setpriv (util-linux) is not available");
        return;
    };
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains("uid 65534"),
        "{err}"
    );
}

fn kelpie_sys_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
}

/// Connections queued on the listening Unix socket at `path`, not yet accepted (`ss`: a
/// listener's Recv-Q).
fn queued_on(path: &std::path::Path) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-xlnH", "src"])
        .arg(path)
        .output()
        .expect("run ss (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Wait until a client is queued on the listener bound at `path` (its name when bound: `ss`
/// knows it by that, whatever its file is called now).
fn wait_until_queued(path: &std::path::Path) {
    kelpie_testkit::wait_until(
        &format!("a client queued on {path:?}"),
        std::time::Duration::from_secs(10),
        || match queued_on(path) {
            0 => Err("none queued"),
            _ => Ok(()),
        },
    );
}

#[test]
fn a_handshake_reset_again_and_again_by_daemons_going_away_is_tried_again() {
    let k = kelpie();
    std::fs::create_dir_all(k.home()).expect("home");
    let socket = k.home().join("kelpie.sock");
    let first = UnixListener::bind(&socket).expect("bind");
    let next = k.home().join("kelpie.sock.next");
    let second = UnixListener::bind(&next).expect("bind");
    // Each listener is dropped with the CLI's connection unaccepted in its backlog: the CLI is
    // reset, as by a daemon going away. The second takes the socket's name before the first
    // goes, so the CLI's next try is queued on it whatever the timing; then its file goes too.
    let resets = std::thread::spawn(move || {
        wait_until_queued(&socket);
        std::fs::rename(&next, &socket).expect("rename");
        drop(first);
        wait_until_queued(&next);
        std::fs::remove_file(&socket).expect("remove");
        drop(second);
    });
    // Reset twice, the CLI then finds no socket and starts the daemon.
    let out = k.ok(&["ping"]);
    assert!(out.contains("pong"), "{out}");
    resets.join().expect("the two listeners");
}

#[test]
fn a_daemon_that_does_not_answer_is_reported_not_waited_for_forever() {
    let k = kelpie();
    std::fs::create_dir_all(k.home()).expect("home");
    let listener = UnixListener::bind(k.home().join("kelpie.sock")).expect("bind");
    // Accepts, reads, never answers, never closes: a stuck daemon. It tells whether the client
    // closed the connection (gave up) before its own minute was over.
    let server = std::thread::spawn(move || -> bool {
        let Ok((mut stream, _)) = listener.accept() else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(60)));
        let mut sink = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut sink).is_ok()
    });
    let err = k.fails(&["list"]);
    assert!(
        err.contains("does not answer") && err.contains("kelpie.log"),
        "{err}"
    );
    assert!(
        server.join().expect("server"),
        "the CLI gave up by itself, the daemon still holding the connection"
    );
}

/// (soft, hard) limit on open files of a process, from /proc.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_string();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (
        fields.get(3).unwrap_or(&"").to_string(),
        fields.get(4).unwrap_or(&"").to_string(),
    )
}

#[test]
fn the_daemon_raises_its_open_files_limit_and_its_apps_keep_the_one_it_was_given() {
    let k = kelpie();
    let (_, hard) = open_files_limit(std::process::id());
    if hard.parse::<u64>().is_ok_and(|h| h <= 512) {
        kelpie_testkit::skip(format!(
            "the hard limit on open files ({hard}) leaves nothing to raise (`ulimit -Hn` above 512)"
        ));
        return;
    }
    // Started by a CLI with the soft limit a shell often has.
    let out = std::process::Command::new("prlimit")
        .args(["--nofile=512:", "--"])
        .arg(env!("CARGO_BIN_EXE_kelpie"))
        .args(["start", &k.fake_app(), "--name", "app"])
        .env("KELPIE_HOME", k.home())
        .output();
    let Ok(out) = out else {
        kelpie_testkit::skip("prlimit (util-linux) is not installed");
        return;
    };
    assert!(out.status.success(), "{out:?}");
    let daemon = k.daemon_pid().expect("daemon pid");
    assert_eq!(open_files_limit(daemon), (hard.clone(), hard.clone()));
    assert_eq!(open_files_limit(k.pid("app")), ("512".to_string(), hard));
}

#[test]
fn a_daemon_killed_mid_command_is_reported_with_its_cause_once() {
    let k = kelpie();
    let fake = k.fake_app();
    // Its process ignores the stop signal: the daemon waits `kill_timeout` before its SIGKILL,
    // and the `stop` waits with it.
    k.ok(&[
        "start",
        &fake,
        "--name",
        "slow",
        "--kill-timeout",
        "20000",
        "--",
        "--ignore-signals",
    ]);
    // Its start line is printed once its handlers are in place: a SIGTERM before that would
    // end it at once, and the status would go past `stopping` unseen (a loaded CI machine can
    // take that long to exec and load it).
    k.wait_for(
        "the app's start line",
        std::time::Duration::from_secs(10),
        || k.log("slow-out.log").contains("started"),
    );
    let stop = k
        .command(&["stop", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kelpie stop");
    k.wait_for(
        "the stop under way",
        std::time::Duration::from_secs(10),
        || k.status("slow") == "stopping",
    );
    let daemon = k.daemon_pid().expect("daemon pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &daemon.to_string()])
        .status()
        .expect("kill -9");
    assert!(killed.success());
    let out = stop.wait_with_output().expect("the stop ends");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr.trim();
    assert!(
        message.starts_with("kelpie: error: the daemon closed the connection before answering: "),
        "{message}"
    );
    // The innermost cause (the socket's end, "failed to fill whole buffer") once, not once
    // per error of the chain that carries it.
    let cause = message.rsplit(": ").next().unwrap_or_default();
    assert_eq!(message.matches(cause).count(), 1, "{message}");
}

/// The CPUs listed in `status` (a /proc status file's `Cpus_allowed_list`: "0-3,6").
fn allowed_cpus(status: &str) -> Vec<u32> {
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {status}"));
    let mut cpus = Vec::new();
    for range in list.trim().split(',') {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (u32, u32) = (
            first.parse().expect("a CPU number"),
            last.parse().expect("a CPU number"),
        );
        cpus.extend(first..=last);
    }
    cpus
}

/// The CPUs of each thread of process `pid`.
fn threads_cpus(pid: u32) -> Vec<Vec<u32>> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
        .map(|status| allowed_cpus(&status))
        .collect()
}

/// Wake-ups between the daemon's threads are cheap on one CPU (see kelpie-sys's `affinity`):
/// its threads, and its keeper's, share one of the CPUs it was given; its apps and its health
/// checks' commands get every one of them back, and so does the program that replaces it
/// (`kelpie update`), which then keeps its own threads on one CPU again.
#[test]
fn the_daemon_keeps_to_one_cpu_and_what_it_starts_gets_every_cpu_it_was_given() {
    if !kelpie_testkit::linux_backend_only("The daemon's threads on one CPU") {
        return;
    }
    let k = kelpie();
    let given =
        allowed_cpus(&std::fs::read_to_string("/proc/self/status").expect("our own status"));
    let app_cpus = k.dir.path().join("app-cpus");
    let check_cpus = k.dir.path().join("check-cpus");
    let config = k.write(
        "cpus.json",
        &format!(
            r#"{{"apps": [{{"name": "cpus", "script": "/bin/sh", "interpreter": "none",
                "args": ["-c", "cat /proc/self/status > {app}; exec sleep 600"],
                "health_check": {{"exec": "cat /proc/self/status > {check}", "interval": "100ms"}}}}]}}"#,
            app = app_cpus.display(),
            check = check_cpus.display(),
        ),
    );
    // Each file is read whole in one go, and parsed then: the check rewrites its file every
    // 100 ms (`>` empties it first), so a second read could find it empty.
    let started_with_every_cpu = |what: &str| {
        let mut seen = Vec::new();
        k.wait_for(what, Duration::from_secs(10), || {
            seen = [&app_cpus, &check_cpus]
                .iter()
                .filter_map(|file| std::fs::read_to_string(file).ok())
                .filter(|status| status.ends_with('\n') && status.contains("Cpus_allowed_list"))
                .map(|status| allowed_cpus(&status))
                .collect();
            seen.len() == 2
        });
        assert_eq!(
            seen,
            [given.clone(), given.clone()],
            "the app's, the check's"
        );
    };
    // Returns the keeper's pid. An update dismisses the keeper and the new program starts
    // another, which writes its pid file from its own process: `before`'s is not the one.
    let kept_on_one_cpu = |before: u32| -> u32 {
        let daemon = k.daemon_pid().expect("the daemon's pid");
        let mut keeper = 0;
        k.wait_for("the keeper's pid file", Duration::from_secs(10), || {
            keeper = std::fs::read_to_string(k.home().join("keeper.pid"))
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
                .unwrap_or(0);
            keeper != 0
                && keeper != before
                && std::path::Path::new(&format!("/proc/{keeper}")).exists()
        });
        let mut threads = threads_cpus(daemon);
        threads.extend(threads_cpus(keeper));
        let first = threads[0].clone();
        for cpus in &threads {
            assert_eq!(cpus, &first, "threads on different CPUs: {threads:?}");
        }
        if given.len() > 1 {
            assert_eq!(first.len(), 1, "{threads:?}");
        }
        assert!(
            first.iter().all(|cpu| given.contains(cpu)),
            "{first:?} of {given:?}"
        );
        keeper
    };
    k.ok(&["start", &config]);
    started_with_every_cpu("the app and its health check wrote their CPUs");
    let keeper = kept_on_one_cpu(0);
    let daemon = k.daemon_pid();
    k.ok(&["update"]);
    assert_eq!(k.daemon_pid(), daemon);
    kept_on_one_cpu(keeper);
    for file in [&app_cpus, &check_cpus] {
        std::fs::remove_file(file).expect("remove a status");
    }
    k.ok(&["restart", "cpus"]);
    started_with_every_cpu("after the update, the app and its check wrote their CPUs again");
    k.ok(&["delete", "all"]);
}
