//! fake-app's `--serve`: a small HTTP/1.1 server with a graceful stop, for the cluster mode's
//! tests.

use super::Options;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocked waits look at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Keep-alive connections idle this long are closed (Node's `keepAliveTimeout`).
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);
/// While draining, connections idle this long are closed.
const DRAIN_IDLE: Duration = Duration::from_millis(500);
/// Draining ends here even if connections are left.
const DRAIN_CAP: Duration = Duration::from_secs(5);
/// A request (head or body) that takes longer than this to arrive is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest request head read.
const MAX_HEAD: usize = 64 * 1024;

struct Shared {
    draining: AtomicBool,
    connections: AtomicUsize,
    slow: Duration,
    body: String,
    /// Answer 500 from this moment on.
    fail_at: Option<Instant>,
}

impl Shared {
    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Sleep `total`, in ticks, until draining starts.
    fn sleep_unless_draining(&self, total: Duration) {
        let until = Instant::now() + total;
        while !self.draining() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(TICK));
        }
    }
}

/// Serve until stopped; never returns.
pub(crate) fn run(o: &Options) -> ! {
    // Both while this is still the only thread: the passed descriptors are ours to take,
    // and the mask of the threads spawned below inherits the blocked signals.
    let (listener, label) = match open_listener(o.reuse_port) {
        Ok(opened) => opened,
        Err(message) => {
            eprintln!("fake-app: {message}");
            std::process::exit(2);
        }
    };
    let stop_signals = if o.ignore_signals {
        None
    } else {
        let numbers: Vec<i32> = ["SIGINT", "SIGTERM"]
            .iter()
            .filter_map(|name| kelpie_sys::signal_number(name))
            .collect();
        match kelpie_sys::block_signals(&numbers) {
            Ok(blocked) => Some(blocked),
            Err(e) => {
                eprintln!("fake-app: blocking SIGINT and SIGTERM: {e}");
                std::process::exit(2);
            }
        }
    };
    let instance = std::env::var("NODE_APP_INSTANCE").unwrap_or_else(|_| "-".into());
    let shared = Arc::new(Shared {
        draining: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        slow: Duration::from_millis(o.slow),
        body: format!("pid={} instance={instance}\n", std::process::id()),
        fail_at: o
            .fail_after
            .map(|ms| Instant::now() + Duration::from_millis(ms)),
    });
    if let Some(ms) = o.exit_after {
        let code = o.exit_code;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            std::process::exit(code);
        });
    }
    let ready_after = Duration::from_millis(o.ready_after.unwrap_or(0));
    let never_ready = o.never_ready;
    let acceptor = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            shared.sleep_unless_draining(ready_after);
            if shared.draining() {
                return;
            }
            let _ = writeln!(std::io::stdout(), "serving on {label}");
            if !never_ready {
                notify_ready();
            }
            accept_until_draining(listener, &shared);
        })
    };
    let Some(stop_signals) = stop_signals else {
        let _ = acceptor.join();
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    };
    let signal = match stop_signals.wait() {
        Ok(number) => kelpie_sys::signal_name(number),
        Err(e) => format!("an error waiting for signals ({e})"),
    };
    let _ = writeln!(std::io::stdout(), "draining on {signal}");
    let began = Instant::now();
    shared.draining.store(true, Ordering::SeqCst);
    // Returns within a tick, closing the listener: no connection is accepted after this.
    let _ = acceptor.join();
    while shared.connections.load(Ordering::SeqCst) > 0 && began.elapsed() < DRAIN_CAP {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = shared.connections.load(Ordering::SeqCst);
    if left > 0 {
        eprintln!("fake-app: {left} connection(s) still open after {DRAIN_CAP:?}, exiting");
    }
    std::process::exit(0);
}

/// The passed socket, else a new one on `0.0.0.0:$PORT`; with a label for the log line.
fn open_listener(reuse_port: bool) -> Result<(TcpListener, String), String> {
    if let Some(socket) = kelpie_sys::take_listen_fds().into_iter().next() {
        return Ok((
            TcpListener::from(socket),
            format!("fd {}", kelpie_sys::LISTEN_FDS_START),
        ));
    }
    let port: u16 = std::env::var("PORT")
        .map_err(|_| "--serve needs a LISTEN_FDS socket or PORT".to_string())?
        .trim()
        .parse()
        .map_err(|_| "PORT is not a port number".to_string())?;
    let address = std::net::SocketAddr::from(([0, 0, 0, 0], port));
    let socket = if reuse_port {
        kelpie_sys::listen_tcp_reuse_port(address)
    } else {
        kelpie_sys::listen_tcp(address)
    }
    .map_err(|e| format!("listening on {address}: {e}"))?;
    let listener = TcpListener::from(socket);
    let label = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| address.to_string());
    Ok((listener, label))
}

/// `sd_notify(READY=1)`.
fn notify_ready() {
    super::notify("READY=1");
}

/// Accept, a thread per connection, until draining starts; then close the listener.
///
/// The socket may be shared with the daemon and other instances, so this process must not
/// shut it down, only close its own descriptor; and it must not block in accept() (a
/// blocked accept cannot be called off). So the listener is made non-blocking, as Node
/// (libuv) does with a passed socket, and waited on with a timeout.
fn accept_until_draining(listener: TcpListener, shared: &Arc<Shared>) {
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("fake-app: making the listener non-blocking: {e}");
    }
    while !shared.draining() {
        match kelpie_sys::wait_readable(listener.as_fd(), TICK) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                eprintln!("fake-app: waiting for connections: {e}");
                std::thread::sleep(TICK);
                continue;
            }
        }
        // Take everything queued (another process may have been quicker: WouldBlock).
        loop {
            match listener.accept() {
                Ok((stream, _)) => start_connection(stream, shared),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, a connection aborted while queued…: go on.
                    eprintln!("fake-app: accept: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
    }
    drop(listener);
}

/// Counts a connection until its thread ends.
struct Counted(Arc<Shared>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn start_connection(stream: TcpStream, shared: &Arc<Shared>) {
    // Counted before the thread exists, so draining never sees it missing.
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let counted = Counted(Arc::clone(shared));
    let spawned = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let counted = counted;
            serve_connection(stream, &counted.0);
        });
    if let Err(e) = spawned {
        // The closure (with the stream and the count) was dropped: the client sees a close.
        eprintln!("fake-app: starting a connection thread: {e}");
    }
}

/// What the server needs from a request head.
struct Head {
    /// The client does not want the connection kept (`Connection: close`, or HTTP/1.0
    /// without `keep-alive`).
    close: bool,
    content_length: usize,
    chunked: bool,
    head_method: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?;
    let _target = request_line.next()?;
    let version = request_line.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let mut parsed = Head {
        close: version == "HTTP/1.0",
        content_length: 0,
        chunked: false,
        head_method: method == "HEAD",
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    parsed.close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == "HTTP/1.0" {
                    parsed.close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = !value.eq_ignore_ascii_case("identity");
        }
    }
    Some(parsed)
}

fn find_head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Requests on one connection, until either side closes it.
fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Accepted sockets do not inherit O_NONBLOCK on Linux; be explicit anyway.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(TICK)).is_err()
        || stream.set_write_timeout(Some(REQUEST_TIMEOUT)).is_err()
    {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buffer: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let mut last_activity = Instant::now();
    loop {
        // The request head.
        let head_end = loop {
            if let Some(end) = find_head_end(&buffer) {
                break end;
            }
            if buffer.len() > MAX_HEAD {
                return;
            }
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    buffer.extend_from_slice(&chunk[..n]);
                    last_activity = Instant::now();
                }
                Err(e) if is_timeout(&e) => {
                    let idle = last_activity.elapsed();
                    let limit = if !buffer.is_empty() {
                        REQUEST_TIMEOUT
                    } else if shared.draining() {
                        DRAIN_IDLE
                    } else {
                        KEEP_ALIVE_IDLE
                    };
                    if idle >= limit {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        };
        let Some(head) = parse_head(&buffer[..head_end]) else {
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            close_gracefully(stream);
            return;
        };
        buffer.drain(..head_end);
        if head.chunked {
            let _ = stream.write_all(
                b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            close_gracefully(stream);
            return;
        }
        // The body, skipped.
        let body_began = Instant::now();
        while buffer.len() < head.content_length {
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) && body_began.elapsed() < REQUEST_TIMEOUT => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
        buffer.drain(..head.content_length);
        if !shared.slow.is_zero() {
            // Said, so that a test can act while a request is in progress.
            let _ = writeln!(std::io::stdout(), "answering slowly");
            std::thread::sleep(shared.slow);
        }
        let close = head.close || shared.draining();
        let failing = shared.fail_at.is_some_and(|at| Instant::now() >= at);
        let status = if failing {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{}",
            shared.body.len(),
            if close { "close" } else { "keep-alive" },
            if head.head_method { "" } else { &shared.body },
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
        if close {
            close_gracefully(stream);
            return;
        }
        last_activity = Instant::now();
    }
}

/// Close after a final response without risking a reset: send our FIN first, then read
/// (and drop) whatever the client still sends until it closes too, briefly. Closing with
/// unread bytes would send a RST, which can destroy the response in the client's buffer.
fn close_gracefully(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let began = Instant::now();
    let mut sink = [0u8; 4096];
    while began.elapsed() < Duration::from_millis(500) {
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
