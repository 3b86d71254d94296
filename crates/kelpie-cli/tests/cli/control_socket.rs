//! The control socket under a hostile or buggy local client (same user): raw connections that
//! send an oversized first frame, stall in the middle of huge frames, or stay idle by the
//! thousand. The daemon's memory stays bounded and `list`, `stop` and `kill` keep working.

use super::kelpie;
use kelpie_testkit::Kelpie;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A raw connection to the daemon of `k` (started first by a command).
fn connect(k: &Kelpie) -> UnixStream {
    let stream = UnixStream::connect(k.home().join("kelpie.sock")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// A frame: its 4-byte big-endian length, then `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Connected and greeted: the daemon's Hello read.
fn greeted(k: &Kelpie) -> UnixStream {
    let mut stream = connect(k);
    let hello = format!(
        r#"{{"protocol":1,"version":"{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(&frame(hello.as_bytes())).expect("hello");
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).expect("the daemon's hello");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).expect("hello body");
    stream
}

/// The daemon's resident memory (kB).
fn daemon_rss_kb(k: &Kelpie) -> u64 {
    let pid = k.daemon_pid().expect("daemon");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Bytes sent to the daemon's ends of its connections that it has not read yet (`ss`: their
/// Recv-Q).
fn unread_by_daemon(k: &Kelpie) -> u64 {
    let out = std::process::Command::new("ss")
        .args(["-xnH", "src"])
        .arg(k.home().join("kelpie.sock"))
        .output()
        .expect("run ss (iproute2)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// Whether the daemon closed `stream`: its end of file (after an error frame, maybe), or a
/// reset (closed with bytes of ours unread); not a read that times out.
fn closed_by_daemon(stream: &mut UnixStream) -> bool {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn an_oversized_first_frame_is_refused_before_the_hello_and_holds_nothing() {
    let k = kelpie();
    k.ok(&["list"]);
    let before = daemon_rss_kb(&k);
    let mut held = Vec::new();
    for _ in 0..60 {
        let mut stream = connect(&k);
        // A 16 MiB first frame, then 1 MiB of it: refused at its length.
        stream
            .write_all(&(16u32 * 1024 * 1024).to_be_bytes())
            .expect("length");
        let _ = stream.write_all(&vec![b'x'; 1024 * 1024]);
        held.push(stream);
    }
    for stream in &mut held {
        assert!(closed_by_daemon(stream), "the daemon must close it");
    }
    let after = daemon_rss_kb(&k);
    assert!(
        after < before + 32 * 1024,
        "daemon RSS {before} kB -> {after} kB for 60 oversized Hellos"
    );
    k.ok(&["list"]);
}

#[test]
fn huge_frames_stalled_midway_hold_at_most_the_budget_and_commands_still_work() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "app"]);
    let before = daemon_rss_kb(&k);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..10 {
        let mut stream = greeted(&k);
        // A 16 MiB request of which 12 MiB arrive, then nothing.
        stream
            .write_all(&(16u32 * 1024 * 1024).to_be_bytes())
            .expect("length");
        let sent = stream.write_all(&vec![b' '; 12 * 1024 * 1024]);
        if sent.is_err() {
            refused += 1;
        }
        held.push(stream);
    }
    // Each write ended with its last bytes in the socket's buffer, or refused: measured once
    // the daemon took them.
    k.wait_for(
        "the daemon to read every byte sent",
        Duration::from_secs(10),
        || unread_by_daemon(&k) == 0,
    );
    let after = daemon_rss_kb(&k);
    // 64 MiB of bodies at most (four such frames); the others were refused.
    assert!(
        after < before + 100 * 1024,
        "daemon RSS {before} kB -> {after} kB with 10 stalled 16 MiB frames"
    );
    assert!(
        refused >= 5,
        "frames past the budget are refused ({refused})"
    );
    // Everyone else is still served, and can stop what runs.
    k.ok(&["list"]);
    k.ok(&["stop", "app"]);
    drop(held);
}

#[test]
fn thousands_of_idle_connections_never_lock_a_command_out() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "app"]);
    // More idle, greeted connections than the daemon serves at once.
    let held: Vec<UnixStream> = (0..1100).map(|_| greeted(&k)).collect();
    let list = k.ok(&["list"]);
    assert!(list.contains("app"), "{list}");
    k.ok(&["stop", "app"]);
    // The ones closed to make room were the longest idle: the first ones.
    let mut first = held.into_iter().next().expect("one");
    assert!(closed_by_daemon(&mut first));
    k.ok(&["kill"]);
}

/// Start the daemon of `k` with an open-files limit of `limit`, soft and hard.
fn daemon_with_descriptors(k: &Kelpie, limit: u32) {
    let out = std::process::Command::new("prlimit")
        .arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_kelpie"))
        .arg("list")
        .env("KELPIE_HOME", k.home())
        .output()
        .expect("prlimit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn out_of_descriptors_the_daemon_still_answers_and_frees_idle_connections() {
    let k = kelpie();
    if super::tools::program("prlimit").is_none() {
        kelpie_testkit::skip("prlimit is not installed (Debian's `util-linux`)");
        return;
    }
    // A daemon whose hard limit is 96 descriptors (started by this command).
    daemon_with_descriptors(&k, 96);
    // Far more idle connections than it has descriptors.
    let held: Vec<UnixStream> = (0..200).map(|_| greeted(&k)).collect();
    k.ok(&["start", &k.fake_app(), "--name", "app"]);
    assert!(k.ok(&["list"]).contains("app"));
    k.ok(&["kill"]);
    drop(held);
}

/// Descriptors process `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count()
}

#[test]
fn a_file_of_10000_apps_is_refused_with_the_file_and_the_limit_named_and_nothing_started() {
    let k = kelpie();
    if super::tools::program("prlimit").is_none() {
        kelpie_testkit::skip("prlimit is not installed (Debian's `util-linux`)");
        return;
    }
    daemon_with_descriptors(&k, 2048);
    let apps: Vec<serde_json::Value> = (0..10_000)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "script": "sleep", "args": ["1000"]}))
        .collect();
    let file = k.write(
        "tenk.json",
        &serde_json::json!({ "apps": apps }).to_string(),
    );
    // The request carries the shell's environment once, not 10 000 times: it reaches the
    // daemon, which refuses it for want of descriptors before spawning anything.
    let err = k.fails(&["start", &file]);
    assert!(
        err.contains("tenk.json")
            && err.contains("starting 10000 instances needs about")
            && err.contains("the daemon's limit is 2048")
            && err.contains("nothing was started"),
        "{err}"
    );
    assert!(k.jlist().is_empty());
    // What fits starts.
    let apps: Vec<serde_json::Value> = (0..50)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "script": "sleep", "args": ["1000"]}))
        .collect();
    let file = k.write(
        "fifty.json",
        &serde_json::json!({ "apps": apps }).to_string(),
    );
    let daemon = k.daemon_pid().expect("daemon");
    let before = open_descriptors(daemon);
    k.ok(&["start", &file]);
    assert_eq!(k.jlist().len(), 50);
    // The start check's costs are not below what instances really cost: 6 per instance at
    // most, plus files kept open up to a bound (log files, /proc and cgroup files: 3 kinds of
    // at most 128 each at this limit), plus a few of the daemon's own that come and go
    // meanwhile (a client's connection, a file being read).
    let added = open_descriptors(daemon) - before;
    assert!(
        added <= 6 * 50 + 3 * 128 + 8,
        "{added} descriptors for 50 instances"
    );
    k.ok(&["kill"]);
}
