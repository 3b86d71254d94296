//! Looking inside running apps: `send` and `attach` (a fork-mode app's stdin, as PM2's), and
//! `profile cpu|heap` and `inspect` (a Node app's CPU profile, heap snapshot and inspector,
//! through the Kelpie shim, with no restart), on the command line and over HTTP.

use super::kelpie;
use super::monit::Tmux;
use kelpie_testkit::Kelpie;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECS: Duration = Duration::from_secs(1);

/// A Node app that logs each line of its stdin, as PM2's users' REPL-style servers read it.
const NODE_READER: &str = r#"
const rl = require('readline').createInterface({ input: process.stdin });
rl.on('line', (line) => console.log('GOT LINE: ' + JSON.stringify(line)));
rl.on('close', () => console.log('STDIN END'));
setInterval(() => {}, 1 << 30);
"#;

/// The same in Python.
const PYTHON_READER: &str = r#"
import sys
for line in sys.stdin:
    print("PY GOT LINE: %r" % line, flush=True)
print("PY STDIN END", flush=True)
"#;

/// Wait until `name`'s out log holds `text`.
fn wait_for_line(k: &Kelpie, name: &str, text: &str) {
    let log = k.app(name)["pm2_env"]["pm_out_log_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    k.wait_for(&format!("{name} to log {text}"), 10 * SECS, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(text))
    });
}

fn out_log(k: &Kelpie, name: &str) -> String {
    let log = k.app(name)["pm2_env"]["pm_out_log_path"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    std::fs::read_to_string(log).unwrap_or_default()
}

fn id_of(k: &Kelpie, name: &str) -> String {
    k.app(name)["pm_id"].to_string()
}

/// What a process has as its stdin (`/proc/<pid>/fd/0`).
fn stdin_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/fd/0"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn send_reaches_node_and_python_stdin_in_fork_mode_and_survives_a_daemon_restart() {
    let k = kelpie();
    let node = k.write("reader.js", NODE_READER);
    let python = k.write("reader.py", PYTHON_READER);
    k.ok(&["start", &node, "--name", "reader"]);
    k.ok(&[
        "start",
        &python,
        "--name",
        "pyreader",
        "--interpreter",
        "python3",
    ]);
    k.wait_for("both readers online", 10 * SECS, || {
        k.status("reader") == "online" && k.status("pyreader") == "online"
    });
    // Their stdin is their FIFO in the home, which nobody else may write.
    let reader_id = id_of(&k, "reader");
    let fifo = k.home().join("stdin").join(&reader_id);
    assert_eq!(stdin_of(k.pid("reader")), fifo.display().to_string());
    assert_eq!(
        std::fs::metadata(k.home().join("stdin"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .ok(),
        Some(0o700)
    );

    // Words are joined, as a person means them; an empty line is a line.
    let said = k.ok(&["send", "reader", "hello", "world"]);
    assert!(said.contains("sent the line to 1 process"), "{said}");
    wait_for_line(&k, "reader", r#"GOT LINE: "hello world""#);
    k.ok(&["send", &reader_id, ""]);
    wait_for_line(&k, "reader", r#"GOT LINE: """#);
    k.ok(&["send", &id_of(&k, "pyreader"), "hi there"]);
    wait_for_line(&k, "pyreader", r"PY GOT LINE: 'hi there\n'");

    // The daemon dies; its successor writes to the same pipe of the same process.
    let pid = k.pid("reader");
    let daemon = k.daemon_pid().expect("daemon pid");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &daemon.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    k.wait_for("the daemon to be gone", 10 * SECS, || {
        !kelpie_testkit::alive(daemon)
    });
    k.ok(&["send", "reader", "after the daemon"]);
    wait_for_line(&k, "reader", r#"GOT LINE: "after the daemon""#);
    assert_eq!(k.pid("reader"), pid, "the app is the same process");
    assert!(!out_log(&k, "reader").contains("STDIN END"));

    // A process restarted reads the same FIFO, with nothing left from before.
    k.ok(&["restart", "reader"]);
    k.ok(&["send", "reader", "after the restart"]);
    wait_for_line(&k, "reader", r#"GOT LINE: "after the restart""#);

    // Stopped: nothing to write to, said so.
    k.ok(&["stop", "pyreader"]);
    let err = k.fails(&["send", "pyreader", "x"]);
    assert!(err.contains("is not running"), "{err}");
    // Deleted: its FIFO goes with it.
    let py_fifo = k.home().join("stdin").join(id_of(&k, "pyreader"));
    assert!(py_fifo.exists());
    k.ok(&["delete", "pyreader"]);
    assert!(!py_fifo.exists());
}

#[test]
fn cluster_mode_stdin_is_empty_as_pm2s_and_send_says_why_it_cannot() {
    let k = kelpie();
    let node = k.write("reader.js", NODE_READER);
    k.ok(&["start", &node, "--name", "clus", "-i", "2"]);
    k.wait_for("both instances online", 10 * SECS, || {
        k.jlist()
            .iter()
            .filter(|a| a["pm2_env"]["status"] == "online")
            .count()
            == 2
    });
    // As PM2's cluster workers: an end of file at once.
    wait_for_line(&k, "clus", "STDIN END");
    let pid = k.pid("clus");
    assert_eq!(stdin_of(pid), "/dev/null");
    let err = k.fails(&["send", "clus", "x"]);
    assert!(
        err.contains("Cannot send line to processes in cluster mode"),
        "{err}"
    );
}

#[test]
fn an_app_that_never_reads_stdin_is_never_blocked_and_the_line_that_does_not_fit_is_refused() {
    let k = kelpie();
    k.ok(&["start", &k.fake_app(), "--name", "deaf"]);
    let pid = k.pid("deaf");
    let line = "x".repeat(4095);
    let began = Instant::now();
    let mut sent = 0;
    let refused = loop {
        let out = k.run(&["send", "deaf", &line]);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        sent += 1;
        assert!(sent < 1000, "the pipe never filled");
    };
    assert!(
        refused.contains("has not read") && refused.contains("nothing was written"),
        "{refused}"
    );
    // A pipe holds 64 KiB by default: 16 lines of 4 KiB.
    assert_eq!(sent, 16, "{refused}");
    assert!(began.elapsed() < 30 * SECS, "a send waited");
    assert_eq!((k.pid("deaf"), k.status("deaf").as_str()), (pid, "online"));
}

#[test]
fn attach_shows_the_output_and_sends_what_is_typed_until_ctrl_c_which_ends_with_status_0() {
    let k = kelpie();
    let Some(tmux) = Tmux::start(&k) else {
        return;
    };
    let node = k.write("reader.js", NODE_READER);
    k.ok(&["start", &node, "--name", "reader"]);
    tmux.type_line(&format!(
        "{} attach reader; echo attach-ended-$?",
        env!("CARGO_BIN_EXE_kelpie")
    ));
    // pacing: attach subscribes to the output before the first line is typed.
    std::thread::sleep(SECS);
    tmux.type_line("interactive one");
    tmux.wait_for_screen("the app's answer in the terminal", 10 * SECS, |s| {
        s.contains(r#"GOT LINE: "interactive one""#)
    });
    tmux.keys(&["C-c"]);
    tmux.wait_for_screen("attach to end with status 0", 10 * SECS, |s| {
        s.contains("attach-ended-0")
    });
    // Several processes: attach asks for one.
    k.ok(&["start", &k.fake_app(), "--name", "other"]);
    let err = k.fails(&["attach", "all"]);
    assert!(err.contains("attach to one of them by its id"), "{err}");
}

/// A Node app with a hot function, a marked object on its heap, and an HTTP server.
const NODE_BUSY: &str = r#"
const http = require('http');
class KelpieMarkerHeld { constructor() { this.payload = 'kelpie-marker-' + 'x'.repeat(64); } }
globalThis.kept = new KelpieMarkerHeld();
function kelpieHotLoop(ms) {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x += Math.sqrt(x + 1);
  return x;
}
setInterval(() => kelpieHotLoop(15), 30);
http.createServer((req, res) => res.end('ok\n')).listen(Number(process.env.PORT), '127.0.0.1');
"#;

/// GET / on `port`: whether it answered `ok`.
fn answered(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&super::local(port), 2 * SECS) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(5 * SECS));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.ends_with("ok\n")
}

/// Requests in a loop until stopped: how many were answered, how many failed.
struct Requests {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Requests {
    fn start(port: u16) -> Requests {
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if answered(port) {
                    o.fetch_add(1, Ordering::SeqCst);
                } else {
                    f.fetch_add(1, Ordering::SeqCst);
                }
                // pacing: a steady trickle of requests, not a load test.
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Requests {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    /// Stop; (answered, failed).
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Requests {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn json_file(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[test]
fn a_cpu_profile_and_a_heap_snapshot_of_a_serving_node_app_with_no_restart() {
    let _heavy = super::heavy();
    let k = kelpie();
    let port = super::free_port();
    let app = k.write("busy.js", NODE_BUSY);
    let out = k
        .command(&["start", &app, "--name", "busy"])
        .env("PORT", port.to_string())
        .output()
        .expect("start");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    k.wait_for("busy to serve", 10 * SECS, || answered(port));
    let pid = k.pid("busy");

    // A CPU profile of 2 s while requests come: every one answered, the hot function in it.
    let requests = Requests::start(port);
    let profile = k.dir.path().join("busy.cpuprofile");
    let said = k.ok(&[
        "profile",
        "cpu",
        "busy",
        "--duration",
        "2s",
        "-o",
        &profile.display().to_string(),
    ]);
    let (ok, failed) = requests.finish();
    assert!(
        said.contains("wrote") && said.contains("busy.cpuprofile"),
        "{said}"
    );
    assert_eq!(failed, 0, "requests failed during the profile");
    assert!(
        ok >= 20,
        "only {ok} requests were answered during 2 s of profile"
    );
    let cpu = json_file(&profile);
    let functions: Vec<&str> = cpu["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["callFrame"]["functionName"].as_str())
        .collect();
    assert!(functions.contains(&"kelpieHotLoop"), "{functions:?}");
    let covered_us = cpu["endTime"].as_u64().unwrap_or(0) - cpu["startTime"].as_u64().unwrap_or(0);
    assert!(
        (1_900_000..4_000_000).contains(&covered_us),
        "the samples cover {covered_us} µs"
    );
    assert!(cpu["samples"].as_array().is_some_and(|s| s.len() > 100));
    assert!(!k.dir.path().join("busy.cpuprofile.partial").exists());

    // A heap snapshot, under the default name, in the current directory.
    let out = k
        .command(&["profile", "heap", "busy"])
        .current_dir(k.dir.path())
        .output()
        .expect("profile heap");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("the app paused"), "{said}");
    let snapshot = std::fs::read_dir(k.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            name.starts_with(&format!("busy-{}-", id_of(&k, "busy")))
                && name.ends_with(".heapsnapshot")
        })
        .unwrap_or_else(|| panic!("no busy-<id>-<date>.heapsnapshot here: {said}"));
    let heap = json_file(&snapshot);
    assert!(heap["snapshot"]["meta"]["node_fields"].is_array());
    let strings = heap["strings"].as_array().expect("strings");
    assert!(
        strings.iter().any(|s| s == "KelpieMarkerHeld"),
        "the app's object is not in the snapshot"
    );

    // The same process served all along.
    assert_eq!((k.pid("busy"), k.status("busy").as_str()), (pid, "online"));
    assert_eq!(k.app("busy")["pm2_env"]["restart_time"], 0);

    // Not a Node app: said what is supported.
    k.ok(&["start", &k.fake_app(), "--name", "native"]);
    let err = k.fails(&["profile", "cpu", "native", "--duration", "1"]);
    assert!(err.contains("does not run on Node.js"), "{err}");
}

#[test]
fn inspect_opens_the_node_inspector_on_loopback_and_closes_it() {
    let k = kelpie();
    let app = k.write("idle.js", "setInterval(() => {}, 1000);\n");
    k.ok(&["start", &app, "--name", "idle"]);
    let said = k.ok(&["inspect", "idle", "--for", "5m"]);
    let url = said
        .split_whitespace()
        .find(|w| w.starts_with("ws://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no ws:// address: {said}"));
    assert!(said.contains("chrome://inspect"), "{said}");
    let port: u16 = url["ws://127.0.0.1:".len()..]
        .split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"));
    let list = http_get(port, "/json/list").unwrap_or_else(|| panic!("nothing on {port}"));
    assert!(
        list.contains("webSocketDebuggerUrl") && list.contains(&url[5..]),
        "{list}"
    );

    k.ok(&["inspect", "idle", "--close"]);
    k.wait_for("the inspector to close", 10 * SECS, || {
        TcpStream::connect(super::local(port)).is_err()
    });

    // Its time runs out by itself.
    let said = k.ok(&["inspect", "idle", "--for", "2s"]);
    assert!(said.contains("It closes in 2 s"), "{said}");
    let port: u16 = said
        .split("ws://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(TcpStream::connect(super::local(port)).is_ok());
    k.wait_for("the inspector to close by itself", 10 * SECS, || {
        TcpStream::connect(super::local(port)).is_err()
    });
    assert_eq!(k.status("idle"), "online");
}

#[test]
fn profiles_download_over_http_with_the_token() {
    let _heavy = super::heavy();
    let k = kelpie();
    let port = super::free_port();
    let app = k.write("busy.js", NODE_BUSY);
    let out = k
        .command(&["start", &app, "--name", "busy"])
        .env("PORT", super::free_port().to_string())
        .output()
        .expect("start");
    assert!(out.status.success());
    k.ok(&["web", "--port", &port.to_string()]);
    let token = std::fs::read_to_string(k.home().join("web.token")).expect("web.token");
    let token = token.trim();
    let post = |body: &str, with_token: bool| -> String {
        let mut stream = TcpStream::connect(super::local(port)).expect("connect");
        stream.set_read_timeout(Some(60 * SECS)).expect("timeout");
        let auth = if with_token {
            format!("Authorization: Bearer {token}\r\n")
        } else {
            String::new()
        };
        let request = format!(
            "POST /api/processes/busy/profile HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        let mut text = Vec::new();
        let _ = stream.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    };
    assert!(post(r#"{"kind":"cpu","seconds":1}"#, false).starts_with("HTTP/1.1 401"));
    let answer = post(r#"{"kind":"cpu","seconds":1}"#, true);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..answer.len().min(400)]
    );
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("content-disposition: attachment; filename=\"busy-0-")
            && lower.contains(".cpuprofile\""),
        "{}",
        &answer[..answer.len().min(400)]
    );
    // Chunked: the body's JSON is the profile's, once the chunks are put back together (a
    // chunk may end in the middle of a name).
    let profile = dechunked(&answer);
    let profile: serde_json::Value = serde_json::from_str(&profile).unwrap_or_else(|e| {
        panic!("{e}: {}", &profile[..profile.len().min(400)]);
    });
    let functions: Vec<&str> = profile["nodes"]
        .as_array()
        .expect("the profile's nodes")
        .iter()
        .filter_map(|node| node["callFrame"]["functionName"].as_str())
        .collect();
    assert!(functions.contains(&"kelpieHotLoop"), "{functions:?}");
    let heap = post(r#"{"kind":"heap"}"#, true);
    assert!(heap.starts_with("HTTP/1.1 200") && heap.contains("KelpieMarkerHeld"));
    let bad = post(r#"{"kind":"flame"}"#, true);
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
}

/// The body of a chunked HTTP answer (`answer` holding its head too), its chunks joined.
fn dechunked(answer: &str) -> String {
    let (_, mut rest) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk's size");
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size..];
        rest = rest.strip_prefix("\r\n").unwrap_or(rest);
    }
    body
}

/// GET `path` on 127.0.0.1:`port`: the body, or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&super::local(port), 2 * SECS).ok()?;
    stream.set_read_timeout(Some(5 * SECS)).ok()?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    // Node's inspector keeps the connection open after its answer, whatever the request asks:
    // the answer ends where its Content-Length says.
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).ok()?;
        bytes.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&bytes);
        let whole = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
            head.lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|n| n.trim().parse::<usize>().ok())
                })
                .flatten()
                .is_some_and(|length| body.len() >= length)
        });
        if read == 0 || whole {
            return Some(text.into_owned());
        }
    }
}
