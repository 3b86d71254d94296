//! `fake-app --serve`: what it answers, its readiness notification, and its graceful drain,
//! alone and sharing one listening socket with another instance (as in cluster mode).

use kelpie_testkit::load::get;
use kelpie_testkit::BackgroundLoad;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const FAKE_APP: &str = env!("CARGO_BIN_EXE_fake-app");

/// A running fake-app, killed on drop whatever happens to the test.
struct App {
    child: Child,
    lines: Receiver<String>,
}

impl App {
    /// Spawn `command` (stdout is piped here).
    fn spawn(mut command: Command) -> App {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn fake-app");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        App { child, lines }
    }

    /// `fake-app --serve args…` on `PORT`.
    fn on_port(port: u16, args: &[&str]) -> App {
        let mut command = Command::new(FAKE_APP);
        command
            .arg("--serve")
            .args(args)
            .env("PORT", port.to_string())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        App::spawn(command)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first stdout line starting with `prefix`; panics after 10 s.
    fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no `{prefix}` line within 10 s"),
                Err(RecvTimeoutError::Disconnected) => panic!("stdout closed before `{prefix}`"),
            }
        }
    }

    /// Wait for `serving on 0.0.0.0:<port>`; the address to connect to.
    fn serving_address(&self) -> SocketAddr {
        let line = self.line("serving on ");
        let port: u16 = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn signal(&self, name: &str) {
        let number = kelpie_sys::signal_number(name).expect("signal");
        kelpie_sys::send_signal(self.pid(), number).expect("send signal");
    }

    /// The exit status within `timeout`, else None.
    fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send one keep-alive `GET /` on `stream` and read the response (head and body) as text.
fn keep_alive_request(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send");
    let mut response = Vec::new();
    let mut byte = [0u8];
    while !response.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).expect("read head"), 1, "EOF");
        response.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&response).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read body");
    head + &String::from_utf8_lossy(&body)
}

/// Wait until `done` holds, polling; panics naming `what` after 10 s.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn answers_with_its_pid_and_instance_on_port() {
    let mut command = Command::new(FAKE_APP);
    command
        .args(["--serve", "--quiet"])
        .env("PORT", "0")
        .env("NODE_APP_INSTANCE", "3")
        .env_remove("LISTEN_FDS");
    let app = App::spawn(command);
    let address = app.serving_address();
    assert_eq!(
        get(address).as_deref(),
        Ok(format!("pid={} instance=3\n", app.pid()).as_str())
    );
}

#[test]
fn without_a_socket_or_port_it_exits_2() {
    let status = Command::new(FAKE_APP)
        .args(["--serve", "--quiet"])
        .env_remove("PORT")
        .env_remove("LISTEN_FDS")
        .status()
        .expect("run fake-app");
    assert_eq!(status.code(), Some(2));
}

/// A datagram socket in the abstract namespace, unique to this test run.
fn abstract_notify_socket(tag: &str) -> (UnixDatagram, String) {
    let name = format!("kelpie-testkit-{}-{tag}", std::process::id());
    let address =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
    let socket = UnixDatagram::bind_addr(&address).expect("bind notify socket");
    (socket, format!("@{name}"))
}

fn receive(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buffer = [0u8; 256];
    let n = socket.recv(&mut buffer).ok()?;
    Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
}

#[test]
fn ready_goes_to_an_abstract_notify_socket_after_the_delay() {
    let (socket, name) = abstract_notify_socket("ready-after");
    let began = Instant::now();
    let mut command = Command::new(FAKE_APP);
    command
        .args(["--serve", "--ready-after", "300"])
        .env("PORT", "0")
        .env("NOTIFY_SOCKET", &name);
    let app = App::spawn(command);
    assert_eq!(
        receive(&socket, Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert!(get(app.serving_address()).is_ok());
}

#[test]
fn ready_goes_to_a_notify_socket_path_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).expect("bind notify socket");
    let mut command = Command::new(FAKE_APP);
    command
        .arg("--serve")
        .env("PORT", "0")
        .env("NOTIFY_SOCKET", &path);
    let app = App::spawn(command);
    assert_eq!(
        receive(&socket, Duration::from_secs(10)).as_deref(),
        Some("READY=1")
    );
    assert!(get(app.serving_address()).is_ok());
}

#[test]
fn never_ready_serves_without_notifying() {
    let (socket, name) = abstract_notify_socket("never-ready");
    let mut command = Command::new(FAKE_APP);
    command
        .args(["--serve", "--never-ready"])
        .env("PORT", "0")
        .env("NOTIFY_SOCKET", &name);
    let app = App::spawn(command);
    assert!(get(app.serving_address()).is_ok());
    assert_eq!(receive(&socket, Duration::from_millis(500)), None);
}

#[test]
fn a_drain_finishes_requests_in_flight_answers_with_close_and_exits_0() {
    let mut app = App::on_port(0, &["--slow", "600"]);
    let address = app.serving_address();
    let mut kept = TcpStream::connect(address).expect("connect");
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let first = keep_alive_request(&mut kept);
    assert!(first.contains("Connection: keep-alive"), "{first}");

    let in_flight = std::thread::spawn(move || get(address));
    // The first request's wait was said already; this is the second's.
    app.line("answering slowly");
    app.line("answering slowly");
    app.signal("SIGTERM");
    assert_eq!(app.line("draining on "), "draining on SIGTERM");

    // The kept connection was idle for less than 500 ms: its next request is answered, with
    // `Connection: close`, and the connection is closed after it.
    let last = keep_alive_request(&mut kept);
    assert!(last.contains("Connection: close"), "{last}");
    assert!(
        last.ends_with(&format!("pid={} instance=-\n", app.pid())),
        "{last}"
    );
    let mut rest = Vec::new();
    assert_eq!(kept.read_to_end(&mut rest).expect("read to EOF"), 0);

    // The request that was in flight when the signal came completed.
    let body = in_flight.join().expect("client thread");
    assert_eq!(
        body.as_deref(),
        Ok(format!("pid={} instance=-\n", app.pid()).as_str())
    );
    // Nothing listens any more, and the app is gone with code 0.
    assert!(TcpStream::connect(address).is_err());
    let status = app.exit_within(Duration::from_secs(3)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_drain_closes_idle_connections_and_exits_0() {
    let mut app = App::on_port(0, &[]);
    let address = app.serving_address();
    let mut idle = TcpStream::connect(address).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    keep_alive_request(&mut idle);
    let began = Instant::now();
    app.signal("SIGINT");
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).expect("read to EOF"), 0);
    let closed_after = began.elapsed();
    assert!(
        closed_after >= Duration::from_millis(300) && closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    let status = app.exit_within(Duration::from_secs(3)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn with_ignore_signals_it_never_drains() {
    let mut app = App::on_port(0, &["--ignore-signals"]);
    let address = app.serving_address();
    app.signal("SIGTERM");
    app.signal("SIGINT");
    assert!(app.exit_within(Duration::from_millis(300)).is_none());
    assert!(get(address).is_ok());
}

#[test]
fn copies_with_reuse_port_share_a_port() {
    let first = App::on_port(0, &["--reuse-port"]);
    let address = first.serving_address();
    let second = App::on_port(address.port(), &["--reuse-port"]);
    assert_eq!(second.serving_address(), address);
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let body = get(address).expect("get");
        pids.insert(body);
    }
    assert_eq!(pids.len(), 2, "both copies answer: {pids:?}");

    let mut third = App::on_port(address.port(), &[]);
    let status = third.exit_within(Duration::from_secs(5)).expect("exits");
    assert_eq!(
        status.code(),
        Some(2),
        "the port is taken without SO_REUSEPORT"
    );
}

/// Two instances sharing one listening socket, passed at fd 3 as the daemon does.
fn instance_on_shared_socket(socket: &std::os::fd::OwnedFd, instance: u32) -> App {
    let program = std::path::Path::new(FAKE_APP);
    let mut command = Command::new(program);
    kelpie_sys::exec_with_fds(
        &mut command,
        program,
        &["fake-app".into(), "--serve".into(), "--quiet".into()],
        &[
            ("LISTEN_FDS".into(), "1".into()),
            ("LISTEN_FDNAMES".into(), "web".into()),
            ("NODE_APP_INSTANCE".into(), instance.to_string()),
        ],
        true,
        vec![(socket.as_raw_fd(), kelpie_sys::LISTEN_FDS_START)],
    )
    .expect("prepare exec");
    let app = App::spawn(command);
    assert_eq!(app.line("serving on "), "serving on fd 3");
    app
}

#[test]
fn on_a_shared_socket_a_drain_loses_no_request() {
    let socket = kelpie_sys::listen_tcp("127.0.0.1:0".parse().expect("address")).expect("listen");
    let address = std::net::TcpListener::from(socket.try_clone().expect("dup"))
        .local_addr()
        .expect("address");
    let mut leaving = instance_on_shared_socket(&socket, 0);
    let staying = instance_on_shared_socket(&socket, 1);

    let loads: Vec<_> = [true, false]
        .into_iter()
        .map(|keep_alive| BackgroundLoad::start(address, keep_alive, 4))
        .collect();
    // Under load (answering), it drains; then the other one goes on answering.
    wait_until("answers from the leaving instance", || {
        loads.iter().any(|l| l.seen().served_by(leaving.pid()))
    });
    leaving.signal("SIGTERM");
    let status = leaving.exit_within(Duration::from_secs(6)).expect("exits");
    assert_eq!(status.code(), Some(0));
    let answered: Vec<u64> = loads.iter().map(|l| l.seen().ok).collect();
    wait_until("answers after the drain", || {
        loads
            .iter()
            .zip(&answered)
            .all(|(l, before)| l.seen().ok > before + 10)
    });

    let mut leaving_answered = 0;
    for (load, keep_alive) in loads.into_iter().zip([true, false]) {
        let report = load.finish();
        eprintln!("keep_alive={keep_alive}: {report:?}");
        assert_eq!(report.failed, 0, "keep_alive={keep_alive}: {report:?}");
        // After the drain only the other instance answers. (Which instance accepts each
        // connection is up to the race on the shared queue: the few keep-alive connections
        // may all have gone to one of them.)
        assert!(
            report.pids.contains_key(&staying.pid().to_string()),
            "keep_alive={keep_alive}: no answer from the staying instance: {report:?}"
        );
        leaving_answered += report
            .pids
            .get(&leaving.pid().to_string())
            .copied()
            .unwrap_or(0);
    }
    assert!(
        leaving_answered > 0,
        "the leaving instance was under load when it drained"
    );
}
