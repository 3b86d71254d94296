//! A small, predictable app for Kelpie's tests and benchmarks. With no flags it prints one line
//! and sleeps forever. Flags combine:
//!
//! - `--stamp FILE`: append `<pid> <unix time in ns>` to FILE at start (restart latency).
//! - `--print N` / `--print-err N`: print N numbered lines to stdout / stderr at start.
//! - `--print-args`: print its arguments, one per line, as `arg=<value>`.
//! - `--print-env VAR`: print `VAR=<value>` (or `VAR unset`); repeatable.
//! - `--exit-after MS` with `--exit-code N`: exit with code N (default 1) after MS.
//! - `--ignore-signals`: survive SIGINT, SIGTERM, SIGHUP and SIGQUIT (they are caught and
//!   do nothing); the copies it starts (`--spawn-children`, `--orphans`) are given it too.
//! - `--spawn-children N`: start N copies of itself that sleep forever (grandchildren of
//!   Kelpie) and append their pids to `--children-file FILE`.
//! - `--orphans N`: double-fork N orphans, as a daemonizing program does: for each, a child
//!   starts a grandchild and exits at once (reaped here), so the grandchild is re-parented to
//!   init (or the nearest subreaper); it exits 0 after `--orphan-life MS` (default 300), and
//!   must then be reaped by that init or stay a zombie. Prints `orphans <N> spawned`.
//! - `--flood`: write lines to stdout as fast as possible, forever.
//! - `--cat FILE`: copy FILE's bytes to stdout exactly (after the start line).
//! - `--long-line N`: print one line of N `x` bytes, then the line `after the long line`.
//! - `--tick MS`: print `tick <n>` every MS milliseconds, forever.
//! - `--report-elapsed`: after printing, write `elapsed_ms <ms>` to stderr (how long printing
//!   took, to compare with and without Kelpie).
//! - `--quiet`: no `fake-app <pid> started` line.
//! - `--serve`: instead of sleeping forever, be an HTTP/1.1 server (keep-alive, a thread per
//!   connection) answering every request with `200` and the body
//!   `pid=<pid> instance=<NODE_APP_INSTANCE or ->`. It listens on the socket passed by socket
//!   activation (`LISTEN_FDS`, fd 3) if any, else on `0.0.0.0:$PORT` (`PORT=0`: any free port;
//!   neither: exit 2), and prints `serving on <address or fd 3>` once accepting. Keep-alive
//!   connections idle for 5 s are closed (Node's default). SIGINT or SIGTERM drains it: prints
//!   `draining on <signal>`, stops accepting (closes its copy of the socket), finishes the
//!   requests in progress, answers any further request with `Connection: close`, closes
//!   connections idle for 500 ms, and exits 0 once no connection is left (at the latest
//!   after 5 s). With `--ignore-signals` it never drains; `--exit-after` still applies.
//! - `--reuse-port` (with `--serve` and `PORT`): set `SO_REUSEPORT`, so that several copies
//!   can listen on the same port.
//! - `--ready-after MS` (with `--serve`): wait MS before accepting, then send `READY=1` to
//!   `NOTIFY_SOCKET` (`@name`: the abstract namespace). Without it, `READY=1` is sent as
//!   accepting starts.
//! - `--never-ready` (with `--serve`): never send `READY=1` (but serve).
//! - `--slow MS` (with `--serve`): wait MS before writing each response.
//! - `--fail-after MS` (with `--serve`): answer `500` instead of `200` once MS have passed.
//! - `--allocate MB` (with `--allocate-after MS`, default 0): after MS, allocate and touch MB
//!   mebibytes, a MiB at a time, and keep them; prints `allocated <MB> MB`. With `--stamp FILE`
//!   (or `--alloc-stamp FILE`, which only takes these lines), it also appends
//!   `allocating <pid> <unix time in ns>` to FILE just before it starts touching the memory and
//!   `allocated <pid> <unix time in ns>` once every page is resident; with `--stamp-over LIMIT`
//!   (MiB) also `over <pid> <unix time in ns>` as soon as its resident memory (`VmRSS`, read
//!   after each MiB) is over LIMIT: when a memory limit was crossed, for the restart latency.
//!   (Lines of three fields, unlike the start stamp's two.)
//! - `--child-allocate MB`: the children of `--spawn-children` allocate MB (after
//!   `--allocate-after`, with the parent's `--stamp-over`) instead of the parent; they append
//!   their `allocating` / `over` / `allocated` lines to the parent's `--alloc-stamp` or
//!   `--stamp` file (and no start stamp).
//! - `--burn`: keep one core busy, forever.
//! - `--notify MESSAGE`: send MESSAGE (`\n` in it stands for a newline) as one datagram to
//!   `NOTIFY_SOCKET` at start, after the printing; repeatable (`STATUS=...`,
//!   `X_KELPIE_METRIC=name=value`).
//! - `--err-line TEXT`: print TEXT to stderr at start; repeatable.
//! - `--watchdog MS`: send `WATCHDOG=1` to `NOTIFY_SOCKET` every MS; with `--hang-after MS2`,
//!   stop sending (and stop doing anything) after MS2, as a hung app would.
//!
//! `--print` output is block-buffered (written in 64 KiB pieces), as a fast app's would be.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Options {
    stamp: Option<String>,
    alloc_stamp: Option<String>,
    print: u64,
    print_err: u64,
    print_args: bool,
    print_env: Vec<String>,
    exit_after: Option<u64>,
    exit_code: i32,
    ignore_signals: bool,
    spawn_children: u32,
    orphans: u32,
    orphan_life: u64,
    orphan_parent: Option<u64>,
    children_file: Option<String>,
    flood: bool,
    cat: Option<String>,
    long_line: usize,
    tick: Option<u64>,
    report_elapsed: bool,
    quiet: bool,
    serve: bool,
    reuse_port: bool,
    ready_after: Option<u64>,
    never_ready: bool,
    slow: u64,
    fail_after: Option<u64>,
    allocate: u64,
    allocate_after: u64,
    child_allocate: u64,
    stamp_over: Option<u64>,
    burn: bool,
    watchdog: Option<u64>,
    hang_after: Option<u64>,
    notify: Vec<String>,
    err_lines: Vec<String>,
}

fn parse(args: &[String]) -> Options {
    let mut o = Options {
        exit_code: 1,
        orphan_life: 300,
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match arg.as_str() {
            "--stamp" => o.stamp = Some(value()),
            "--alloc-stamp" => o.alloc_stamp = Some(value()),
            "--print" => o.print = value().parse().unwrap_or(0),
            "--print-err" => o.print_err = value().parse().unwrap_or(0),
            "--print-args" => o.print_args = true,
            "--print-env" => o.print_env.push(value()),
            "--exit-after" => o.exit_after = value().parse().ok(),
            "--exit-code" => o.exit_code = value().parse().unwrap_or(1),
            "--ignore-signals" => o.ignore_signals = true,
            "--spawn-children" => o.spawn_children = value().parse().unwrap_or(0),
            "--orphans" => o.orphans = value().parse().unwrap_or(0),
            "--orphan-life" => o.orphan_life = value().parse().unwrap_or(300),
            // Internal: the middle process of `--orphans`.
            "--orphan-parent" => o.orphan_parent = value().parse().ok(),
            "--children-file" => o.children_file = Some(value()),
            "--flood" => o.flood = true,
            "--cat" => o.cat = Some(value()),
            "--long-line" => o.long_line = value().parse().unwrap_or(0),
            "--tick" => o.tick = value().parse().ok(),
            "--report-elapsed" => o.report_elapsed = true,
            "--quiet" => o.quiet = true,
            "--serve" => o.serve = true,
            "--reuse-port" => o.reuse_port = true,
            "--ready-after" => o.ready_after = value().parse().ok(),
            "--never-ready" => o.never_ready = true,
            "--slow" => o.slow = value().parse().unwrap_or(0),
            "--fail-after" => o.fail_after = value().parse().ok(),
            "--allocate" => o.allocate = value().parse().unwrap_or(0),
            "--allocate-after" => o.allocate_after = value().parse().unwrap_or(0),
            "--child-allocate" => o.child_allocate = value().parse().unwrap_or(0),
            "--stamp-over" => o.stamp_over = value().parse().ok(),
            "--burn" => o.burn = true,
            "--watchdog" => o.watchdog = value().parse().ok(),
            "--hang-after" => o.hang_after = value().parse().ok(),
            "--notify" => o.notify.push(value()),
            "--err-line" => o.err_lines.push(value()),
            _ => {}
        }
    }
    o
}

fn append(path: &str, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// `--ignore-signals`: SIGINT, SIGTERM, SIGHUP and SIGQUIT no longer end this process. Each
/// gets signal-hook's handler that only sets a flag (read by nobody), which needs no unsafe,
/// unlike SIG_IGN. An exec resets handlers (SIG_IGN it kept), so the copies of itself this
/// program starts are passed `--ignore-signals` instead.
fn ignore_stop_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let caught = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP, SIGQUIT] {
        if let Err(e) = signal_hook::flag::register(signal, std::sync::Arc::clone(&caught)) {
            eprintln!("fake-app: cannot catch signal {signal}: {e}");
        }
    }
}

/// Nanoseconds since the Unix epoch.
fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = parse(&args);
    let pid = std::process::id();
    if o.ignore_signals {
        ignore_stop_signals();
    }
    if let Some(life) = o.orphan_parent {
        leave_an_orphan(life, o.ignore_signals);
    }
    if let Some(path) = &o.stamp {
        append(path, &format!("{pid} {}", unix_ns()));
    }
    // Where the `allocating` / `allocated` lines go.
    let alloc_stamp = o.alloc_stamp.clone().or_else(|| o.stamp.clone());
    print_at_start(&o, &args, pid);
    for message in &o.notify {
        notify(&message.replace("\\n", "\n"));
    }
    if o.orphans > 0 {
        spawn_orphans(o.orphans, o.orphan_life, o.ignore_signals);
    }
    for _ in 0..o.spawn_children {
        spawn_child(&o, alloc_stamp.as_deref());
    }
    if o.allocate > 0 {
        allocate_in_background(o.allocate, o.allocate_after, o.stamp_over, alloc_stamp, pid);
    }
    if o.burn {
        std::thread::spawn(|| {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        });
    }
    if let Some(every) = o.watchdog {
        feed_watchdog(every, o.hang_after);
    }
    if o.serve {
        serve::run(&o);
    }
    if o.flood {
        flood();
    }
    if let Some(ms) = o.tick {
        for n in 0.. {
            println!("tick {n}");
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
    if let Some(ms) = o.exit_after {
        std::thread::sleep(Duration::from_millis(ms));
        std::process::exit(o.exit_code);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `--orphan-parent`, the middle process of `--orphans`: start the grandchild and leave it
/// behind: it is an orphan as soon as we exit.
fn leave_an_orphan(life: u64, ignore_signals: bool) -> ! {
    let exe = std::env::current_exe().unwrap_or_else(|_| "fake-app".into());
    let life = life.to_string();
    let mut args = vec!["--quiet", "--exit-after", &life, "--exit-code", "0"];
    if ignore_signals {
        args.push("--ignore-signals");
    }
    let code = i32::from(std::process::Command::new(exe).args(args).spawn().is_err());
    std::process::exit(code);
}

/// What is printed at start: the start line, `--print-args`, `--print-env`, `--print`,
/// `--cat` and `--long-line` to stdout (block-buffered), then `--report-elapsed`,
/// `--print-err` and `--err-line` to stderr.
fn print_at_start(o: &Options, args: &[String], pid: u32) {
    let began = std::time::Instant::now();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    if !o.quiet {
        let _ = writeln!(out, "fake-app {pid} started");
    }
    if o.print_args {
        for arg in args {
            let _ = writeln!(out, "arg={arg}");
        }
    }
    for var in &o.print_env {
        let _ = match std::env::var(var) {
            Ok(v) => writeln!(out, "{var}={v}"),
            Err(_) => writeln!(out, "{var} unset"),
        };
    }
    for i in 0..o.print {
        let _ = writeln!(out, "line {i}");
    }
    if let Some(path) = &o.cat {
        let _ = out.write_all(&std::fs::read(path).unwrap_or_default());
    }
    if o.long_line > 0 {
        let _ = out.write_all(&vec![b'x'; o.long_line]);
        let _ = writeln!(out, "\nafter the long line");
    }
    let _ = out.flush();
    drop(out);
    if o.report_elapsed {
        eprintln!("elapsed_ms {}", began.elapsed().as_millis());
    }
    for i in 0..o.print_err {
        eprintln!("error line {i}");
    }
    for line in &o.err_lines {
        eprintln!("{line}");
    }
}

/// `--orphans N`: double-fork N orphans that exit after `life` ms.
fn spawn_orphans(orphans: u32, life: u64, ignore_signals: bool) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "fake-app".into());
    let life = life.to_string();
    for _ in 0..orphans {
        // `status` waits for (reaps) the middle process; its child is the orphan.
        let mut args = vec!["--orphan-parent", &life];
        if ignore_signals {
            args.push("--ignore-signals");
        }
        let _ = std::process::Command::new(&exe).args(args).status();
    }
    println!("orphans {orphans} spawned");
}

/// One child of `--spawn-children`: a copy of this program that sleeps forever (ignoring
/// signals like its parent, allocating for `--child-allocate`), its pid appended to
/// `--children-file`.
fn spawn_child(o: &Options, alloc_stamp: Option<&str>) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "fake-app".into());
    let mut child_args = Vec::new();
    if o.ignore_signals {
        child_args.push("--ignore-signals".to_string());
    }
    if o.child_allocate > 0 {
        child_args.extend([
            "--allocate".to_string(),
            o.child_allocate.to_string(),
            "--allocate-after".to_string(),
            o.allocate_after.to_string(),
        ]);
        if let Some(path) = alloc_stamp {
            child_args.extend(["--alloc-stamp".to_string(), path.to_string()]);
        }
        if let Some(limit) = o.stamp_over {
            child_args.extend(["--stamp-over".to_string(), limit.to_string()]);
        }
    }
    match std::process::Command::new(exe).args(child_args).spawn() {
        Ok(child) => {
            if let Some(path) = &o.children_file {
                append(path, &child.id().to_string());
            }
        }
        Err(e) => eprintln!("spawn failed: {e}"),
    }
}

/// `--allocate MB`: on a thread, after `after` ms, allocate and touch `megabytes` and keep
/// them, stamping when it starts, when its resident memory goes over `over` MiB, and when
/// it is done.
fn allocate_in_background(
    megabytes: u64,
    after: u64,
    over: Option<u64>,
    alloc_stamp: Option<String>,
    pid: u32,
) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(after));
        if let Some(path) = &alloc_stamp {
            append(path, &format!("allocating {pid} {}", unix_ns()));
        }
        // Filled with ones, so every page is touched and resident; a MiB at a time, so
        // that crossing `--stamp-over` is seen within a MiB.
        let total = (megabytes << 20) as usize;
        let mut kept: Vec<u8> = Vec::with_capacity(total);
        let mut over_limit = over.map(|mib| mib << 20);
        while kept.len() < total {
            let next = (kept.len() + (1 << 20)).min(total);
            kept.resize(next, 1);
            if let Some(limit) = over_limit {
                if resident_bytes().is_some_and(|rss| rss > limit) {
                    if let Some(path) = &alloc_stamp {
                        append(path, &format!("over {pid} {}", unix_ns()));
                    }
                    over_limit = None;
                }
            }
        }
        if let Some(path) = &alloc_stamp {
            append(path, &format!("allocated {pid} {}", unix_ns()));
        }
        println!("allocated {megabytes} MB");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
            std::hint::black_box(&kept);
        }
    });
}

/// `--watchdog MS`: send `WATCHDOG=1` every `every` ms, forever, or until `hang_after` ms
/// have passed, then do nothing, as a hung app would.
fn feed_watchdog(every: u64, hang_after: Option<u64>) -> ! {
    let hang_after = hang_after.map(Duration::from_millis);
    let began = std::time::Instant::now();
    loop {
        if hang_after.is_some_and(|limit| began.elapsed() >= limit) {
            println!("hanging");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        notify("WATCHDOG=1");
        std::thread::sleep(Duration::from_millis(every));
    }
}

/// `--flood`: lines to stdout as fast as possible, forever (exit 3 once stdout is gone).
fn flood() -> ! {
    let mut out = std::io::stdout().lock();
    let mut n: u64 = 0;
    loop {
        if writeln!(
            out,
            "flood line {n} .............................................................."
        )
        .is_err()
        {
            std::process::exit(3);
        }
        n += 1;
    }
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// `sd_notify(message)`: one datagram to `NOTIFY_SOCKET`, if set.
fn notify(message: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Ok(target) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| match target.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|address| socket.send_to_addr(message.as_bytes(), &address)),
        None => socket.send_to(message.as_bytes(), &target),
    });
    if let Err(e) = sent {
        eprintln!("fake-app: sending {message} to {target}: {e}");
    }
}

/// `--serve`: a small HTTP/1.1 server with a graceful stop, for the cluster mode's tests.
mod serve {
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
    pub fn run(o: &Options) -> ! {
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
}
