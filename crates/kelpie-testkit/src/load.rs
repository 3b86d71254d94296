//! A small HTTP/1.1 load client for the cluster tests: threads sending `GET /` as fast as they
//! can until told to stop, counting what succeeded, what failed and which process answered
//! (the `pid=` of `fake-app --serve`'s body).
//!
//! It behaves like real clients (curl, browsers, wrk) where a server may legitimately close a
//! connection: a keep-alive connection that turns out closed before any byte of the response
//! arrived (the server closed it while idle) is retried once on a new connection, and a
//! response with `Connection: close` makes the next request use a new connection. Everything
//! else that goes wrong is a failure. Every wait has a timeout, so a test cannot hang here.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest wait for a connection, a write or a read.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How many distinct error descriptions a report keeps.
const MAX_ERRORS: usize = 20;
/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What a load run saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Requests answered `200` with a complete body.
    pub ok: u64,
    /// Requests that failed: connection refused or reset, closed before the whole response,
    /// timed out, or answered with another status.
    pub failed: u64,
    /// The first distinct error descriptions (at most 20).
    pub errors: Vec<String>,
    /// Successful responses by the `pid=` value of their body (`?` when there is none).
    pub pids: BTreeMap<String, u64>,
}

impl LoadReport {
    /// Whether process `pid` answered at least one request.
    pub fn served_by(&self, pid: u32) -> bool {
        self.pids.contains_key(&pid.to_string())
    }

    fn success(&mut self, body: &str) {
        self.ok += 1;
        *self.pids.entry(pid_of(body)).or_insert(0) += 1;
    }

    fn failure(&mut self, error: String) {
        self.failed += 1;
        self.note_error(error);
    }

    fn note_error(&mut self, error: String) {
        if self.errors.len() < MAX_ERRORS && !self.errors.contains(&error) {
            self.errors.push(error);
        }
    }
}

/// The value after `pid=` in a body like `pid=123 instance=0`.
fn pid_of(body: &str) -> String {
    body.split_whitespace()
        .find_map(|word| word.strip_prefix("pid="))
        .unwrap_or("?")
        .to_string()
}

/// Send `GET /` to `addr` from `threads` threads until `stop` is set, then report. With
/// `keep_alive`, each thread keeps its connection for as long as the server does; without,
/// every request has its own connection and says `Connection: close`.
pub fn run_load(
    addr: SocketAddr,
    keep_alive: bool,
    threads: usize,
    stop: Arc<AtomicBool>,
) -> LoadReport {
    let seen = Mutex::new(LoadReport::default());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| scope.spawn(|| send_until(addr, keep_alive, &stop, &seen)))
            .collect();
        for worker in workers {
            if worker.join().is_err() {
                record(&seen, Err("a load thread panicked".to_string()));
            }
        }
    });
    seen.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Load sent from background threads until [`BackgroundLoad::finish`] (or its drop), as
/// [`run_load`] sends it; what it has seen so far can be read at any time, so that a test waits
/// for what it needs (every instance served, enough requests) instead of loading for a fixed
/// time.
pub struct BackgroundLoad {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<LoadReport>>,
    threads: Vec<JoinHandle<()>>,
}

impl BackgroundLoad {
    /// Start `threads` clients on `addr` (with `keep_alive` or a new connection per request).
    pub fn start(addr: SocketAddr, keep_alive: bool, threads: usize) -> BackgroundLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(LoadReport::default()));
        let threads = (0..threads.max(1))
            .map(|_| {
                let (stop, seen) = (stop.clone(), seen.clone());
                std::thread::spawn(move || send_until(addr, keep_alive, &stop, &seen))
            })
            .collect();
        BackgroundLoad {
            stop,
            seen,
            threads,
        }
    }

    /// What the clients have seen so far.
    pub fn seen(&self) -> LoadReport {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stop the clients, wait for their requests in flight, and report.
    pub fn finish(mut self) -> LoadReport {
        self.stop_and_join();
        self.seen()
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                record(&self.seen, Err("a load thread panicked".to_string()));
            }
        }
    }
}

impl Drop for BackgroundLoad {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// One client's loop: requests until `stop`, each recorded in `seen` as it ends.
fn send_until(addr: SocketAddr, keep_alive: bool, stop: &AtomicBool, seen: &Mutex<LoadReport>) {
    let mut client = Client::new(addr, keep_alive);
    while !stop.load(Ordering::SeqCst) {
        let outcome = client.request();
        let refused = outcome.is_err();
        record(seen, outcome);
        if refused {
            // Do not spin on a refused port.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

fn record(seen: &Mutex<LoadReport>, outcome: Result<String, String>) {
    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    match outcome {
        Ok(body) => seen.success(&body),
        Err(error) => seen.failure(error),
    }
}

/// One `GET /` on a new connection; the body of a `200` response, else what went wrong.
pub fn get(addr: SocketAddr) -> Result<String, String> {
    Client::new(addr, false).request()
}

/// How an attempt failed.
#[derive(Debug)]
enum Failure {
    /// The connection was found closed (EOF, reset, broken pipe) before any byte of the
    /// response: on a reused connection, the server had closed it while idle.
    ClosedBeforeResponse(String),
    /// Anything else.
    Other(String),
}

impl Failure {
    fn describe(self) -> String {
        match self {
            Failure::ClosedBeforeResponse(what) | Failure::Other(what) => what,
        }
    }
}

struct Response {
    status: u16,
    body: String,
    /// The server will close the connection after this response.
    close: bool,
}

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

/// One thread's client: at most one connection, kept between requests with keep-alive.
pub(crate) struct Client {
    addr: SocketAddr,
    keep_alive: bool,
    /// A connection that has already carried a response, kept for the next request.
    kept: Option<Connection>,
    /// Requests retried because their reused connection was found closed.
    pub(crate) retries: u64,
}

impl Client {
    pub(crate) fn new(addr: SocketAddr, keep_alive: bool) -> Client {
        Client {
            addr,
            keep_alive,
            kept: None,
            retries: 0,
        }
    }

    /// One request: the body of a `200` response, or an error description.
    pub(crate) fn request(&mut self) -> Result<String, String> {
        let reused = self.kept.is_some();
        match self.attempt() {
            Ok(body) => Ok(body),
            Err(Failure::ClosedBeforeResponse(_)) if reused => {
                self.retries += 1;
                self.attempt()
                    .map_err(|f| format!("{} (retry on a new connection)", f.describe()))
            }
            Err(failure) => Err(failure.describe()),
        }
    }

    fn attempt(&mut self) -> Result<String, Failure> {
        let mut connection = match self.kept.take() {
            Some(connection) => connection,
            None => connect(self.addr).map_err(|e| Failure::Other(format!("connect: {e}")))?,
        };
        let response = exchange(&mut connection, self.addr, self.keep_alive)?;
        if self.keep_alive && !response.close {
            self.kept = Some(connection);
        }
        if response.status == 200 {
            Ok(response.body)
        } else {
            Err(Failure::Other(format!("status {}", response.status)))
        }
    }
}

fn connect(addr: SocketAddr) -> io::Result<Connection> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(Connection {
        stream,
        buffer: Vec::new(),
    })
}

/// Whether an error means the peer closed the connection.
fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

fn describe_io(stage: &str, error: &io::Error) -> String {
    if matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        format!("{stage}: no answer within {TIMEOUT:?}")
    } else {
        format!("{stage}: {error}")
    }
}

/// Send the request and read one whole response.
fn exchange(
    connection: &mut Connection,
    addr: SocketAddr,
    keep_alive: bool,
) -> Result<Response, Failure> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\n{}\r\n",
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        }
    );
    if let Err(e) = connection.stream.write_all(request.as_bytes()) {
        let what = describe_io("sending the request", &e);
        return Err(if is_closed(&e) {
            Failure::ClosedBeforeResponse(what)
        } else {
            Failure::Other(what)
        });
    }
    connection.buffer.clear();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = find_head_end(&connection.buffer) {
            break end;
        }
        if connection.buffer.len() > MAX_HEAD {
            return Err(Failure::Other("response head too long".into()));
        }
        match connection.stream.read(&mut chunk) {
            Ok(0) if connection.buffer.is_empty() => {
                return Err(Failure::ClosedBeforeResponse(
                    "closed before the response".into(),
                ))
            }
            Ok(0) => return Err(Failure::Other("closed mid-response".into())),
            Ok(n) => connection.buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if connection.buffer.is_empty() && is_closed(&e) => {
                return Err(Failure::ClosedBeforeResponse(describe_io(
                    "reading the response",
                    &e,
                )))
            }
            Err(e) if connection.buffer.is_empty() => {
                return Err(Failure::Other(describe_io("reading the response", &e)))
            }
            Err(e) => return Err(Failure::Other(describe_io("reading mid-response", &e))),
        }
    };
    let head = parse_head(&connection.buffer[..head_end])
        .ok_or_else(|| Failure::Other("malformed response head".into()))?;
    connection.buffer.drain(..head_end);
    let mut close = head.close;
    match head.content_length {
        Some(length) => {
            while connection.buffer.len() < length {
                match connection.stream.read(&mut chunk) {
                    Ok(0) => return Err(Failure::Other("closed mid-response".into())),
                    Ok(n) => connection.buffer.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Failure::Other(describe_io("reading mid-response", &e))),
                }
            }
        }
        None => {
            // The body ends with the connection.
            close = true;
            loop {
                match connection.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => connection.buffer.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Failure::Other(describe_io("reading mid-response", &e))),
                }
            }
        }
    }
    let length = head.content_length.unwrap_or(connection.buffer.len());
    let body = String::from_utf8_lossy(&connection.buffer[..length]).into_owned();
    connection.buffer.drain(..length);
    Ok(Response {
        status: head.status,
        body,
        close,
    })
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

struct Head {
    status: u16,
    content_length: Option<usize>,
    close: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    let version = status_line.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status = status_line.next()?.parse().ok()?;
    let mut parsed = Head {
        status,
        content_length: None,
        close: version == "HTTP/1.0",
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = Some(value.parse().ok()?);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    parsed.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == "HTTP/1.0" {
                    parsed.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked bodies are not needed by these tests.
            return None;
        }
    }
    Some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;

    /// A server on a free port running `handler(connection, its index)` in a thread per
    /// connection; returns its address and the count of accepted connections.
    fn server(
        handler: impl Fn(TcpStream, usize) + Send + Sync + 'static,
    ) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let handler = Arc::new(handler);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let index = count.fetch_add(1, Ordering::SeqCst);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || handler(stream, index));
            }
        });
        (addr, accepted)
    }

    /// Read one request head; its text, or None at EOF.
    fn read_request(stream: &mut TcpStream) -> Option<String> {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        Some(String::from_utf8_lossy(&head).into_owned())
    }

    fn respond(stream: &mut TcpStream, status: &str, connection: &str, body: &str) {
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).expect("respond");
    }

    #[test]
    fn keep_alive_reuses_one_connection() {
        let (addr, accepted) = server(|mut stream, _| {
            while read_request(&mut stream).is_some() {
                respond(&mut stream, "200 OK", "keep-alive", "pid=7 instance=0\n");
            }
        });
        let mut client = Client::new(addr, true);
        for _ in 0..5 {
            assert_eq!(client.request().as_deref(), Ok("pid=7 instance=0\n"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(client.retries, 0);
    }

    #[test]
    fn without_keep_alive_every_request_has_its_connection_and_asks_to_close() {
        let (addr, accepted) = server(|mut stream, _| {
            let request = read_request(&mut stream).expect("a request");
            assert!(request.contains("Connection: close\r\n"), "{request}");
            respond(&mut stream, "200 OK", "close", "pid=8\n");
        });
        let mut client = Client::new(addr, false);
        for _ in 0..5 {
            assert_eq!(client.request().as_deref(), Ok("pid=8\n"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
        assert_eq!(get(addr).as_deref(), Ok("pid=8\n"));
    }

    #[test]
    fn a_reused_connection_the_server_closed_is_retried_once_without_failing() {
        // Keep-alive is announced, but each connection is closed after its first response
        // (as a server closing idle connections would): the next request on it finds it
        // closed before any byte of the response, by EOF or by reset.
        let (addr, accepted) = server(|mut stream, _| {
            if read_request(&mut stream).is_some() {
                respond(&mut stream, "200 OK", "keep-alive", "pid=9\n");
            }
        });
        let mut client = Client::new(addr, true);
        for _ in 0..5 {
            assert_eq!(client.request().as_deref(), Ok("pid=9\n"));
        }
        assert_eq!(client.retries, 4);
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn connection_close_in_a_response_means_a_new_connection_not_a_retry() {
        let (addr, accepted) = server(|mut stream, _| {
            if read_request(&mut stream).is_some() {
                respond(&mut stream, "200 OK", "close", "pid=10\n");
            }
        });
        let mut client = Client::new(addr, true);
        for _ in 0..5 {
            assert_eq!(client.request().as_deref(), Ok("pid=10\n"));
        }
        assert_eq!(client.retries, 0);
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_reset_mid_response_is_a_failure_and_not_retried() {
        let (addr, accepted) = server(|mut stream, _| {
            if read_request(&mut stream).is_none() {
                return;
            }
            respond(&mut stream, "200 OK", "keep-alive", "pid=11\n");
            // Wait for the second request without reading it: closing with it unread makes
            // the kernel send a reset, after half a response.
            let mut byte = [0u8];
            let _ = stream.peek(&mut byte);
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npid=")
                .expect("half a response");
            std::thread::sleep(Duration::from_millis(50));
        });
        let mut client = Client::new(addr, true);
        assert_eq!(client.request().as_deref(), Ok("pid=11\n"));
        let error = client.request().expect_err("reset mid-response");
        assert!(error.contains("mid-response"), "{error}");
        assert_eq!(client.retries, 0);
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_new_connection_closed_before_the_response_is_a_failure() {
        let (addr, _) = server(|mut stream, _| {
            let _ = read_request(&mut stream);
        });
        let mut client = Client::new(addr, true);
        let error = client.request().expect_err("closed");
        assert!(error.contains("before the response"), "{error}");
        assert_eq!(client.retries, 0);
    }

    #[test]
    fn the_retry_happens_once_and_its_failure_counts() {
        // The first connection answers once and closes; later ones close without answering.
        let (addr, accepted) = server(|mut stream, index| {
            if read_request(&mut stream).is_some() && index == 0 {
                respond(&mut stream, "200 OK", "keep-alive", "pid=12\n");
            }
        });
        let mut client = Client::new(addr, true);
        assert_eq!(client.request().as_deref(), Ok("pid=12\n"));
        let error = client.request().expect_err("the retry fails too");
        assert!(error.contains("retry"), "{error}");
        assert_eq!(client.retries, 1);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn another_status_is_a_failure_that_keeps_the_connection() {
        let (addr, accepted) = server(|mut stream, _| {
            while read_request(&mut stream).is_some() {
                respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "keep-alive",
                    "busy\n",
                );
            }
        });
        let mut client = Client::new(addr, true);
        assert_eq!(client.request(), Err("status 503".to_string()));
        assert_eq!(client.request(), Err("status 503".to_string()));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_load_run_counts_answers_by_pid() {
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&answered);
        let (addr, _) = server(move |mut stream, index| {
            let body = format!("pid={} instance=0\n", index % 2);
            while read_request(&mut stream).is_some() {
                respond(&mut stream, "200 OK", "keep-alive", &body);
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        for keep_alive in [true, false] {
            // Stopped once the server has answered 40 more (at most 4 in flight), not after a
            // fixed time a loaded machine may give few requests.
            let stop = Arc::new(AtomicBool::new(false));
            let stopper = Arc::clone(&stop);
            let enough = answered.load(Ordering::SeqCst) + 40;
            let answers = Arc::clone(&answered);
            let timer = std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while answers.load(Ordering::SeqCst) < enough
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                stopper.store(true, Ordering::SeqCst);
            });
            let report = run_load(addr, keep_alive, 4, stop);
            timer.join().expect("timer");
            assert_eq!(report.failed, 0, "{report:?}");
            assert!(report.ok > 10, "{report:?}");
            assert_eq!(report.pids.values().sum::<u64>(), report.ok);
            assert!(report.pids.keys().all(|pid| pid == "0" || pid == "1"));
        }
    }

    #[test]
    fn a_refused_port_fails_with_one_distinct_error() {
        // A port nothing listens on, below the ephemeral range: no other test's server, bound
        // to port 0 meanwhile, can be given it (a freed ephemeral port once was).
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = Arc::clone(&stop);
        let timer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stopper.store(true, Ordering::SeqCst);
        });
        let report = run_load(addr, true, 2, stop);
        timer.join().expect("timer");
        assert_eq!(report.ok, 0);
        assert!(report.failed > 0);
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(report.errors[0].starts_with("connect: "), "{report:?}");
        assert!(get(addr).is_err());
    }

    #[test]
    fn pids_are_read_from_the_body() {
        assert_eq!(pid_of("pid=123 instance=0\n"), "123");
        assert_eq!(pid_of("instance=- pid=4"), "4");
        assert_eq!(pid_of("hello"), "?");
    }
}
