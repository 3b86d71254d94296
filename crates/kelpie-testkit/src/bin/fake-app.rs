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
//! - `--slow MS` (with `--serve`): wait MS before writing each response (printing
//!   `answering slowly` as the wait begins).
//! - `--fail-after MS` (with `--serve`): answer `500` instead of `200` once MS have passed.
//! - `--allocate MB` (with `--allocate-after MS`, default 0): after MS, allocate and touch MB
//!   mebibytes, a MiB at a time, and keep them; prints `allocated <MB> MB`. With `--stamp FILE`
//!   (or `--alloc-stamp FILE`, which only takes these lines), it also appends
//!   `allocating <pid> <unix time in ns>` to FILE just before it starts touching the memory and
//!   `allocated <pid> <unix time in ns>` once every page is resident; with `--stamp-over LIMIT`
//!   (MiB) also `over <pid> <unix time in ns>` just before touching the MiB that takes its
//!   resident memory (`VmRSS`, read before each MiB) over LIMIT: when a memory limit was
//!   crossed (within a MiB, ~1 ms early), for the restart latency.
//!   (Lines of three fields, unlike the start stamp's two.)
//! - `--child-allocate MB`: the children of `--spawn-children` allocate MB (after
//!   `--allocate-after`, with the parent's `--stamp-over` counted on the child's and the
//!   parent's resident memory together, as a manager counts the tree) instead of the parent; they append
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
    /// `--stamp-over` counts this process's parent too (set for `--child-allocate` children).
    stamp_over_tree: bool,
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
            "--stamp-over-tree" => o.stamp_over_tree = true,
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
        let over = o.stamp_over.map(|mib| OverLimit {
            bytes: mib << 20,
            with_parent: o.stamp_over_tree,
        });
        allocate_in_background(o.allocate, o.allocate_after, over, alloc_stamp, pid);
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
            child_args.extend([
                "--stamp-over".to_string(),
                limit.to_string(),
                "--stamp-over-tree".to_string(),
            ]);
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

/// `--stamp-over`: the limit whose crossing is stamped, and whether it counts the parent
/// (the app whose child allocates): a manager's memory limit is on the app's whole tree.
#[derive(Clone, Copy)]
struct OverLimit {
    bytes: u64,
    with_parent: bool,
}

impl OverLimit {
    /// Whether touching one more MiB takes the counted memory over the limit.
    fn next_mib_crosses(self) -> bool {
        let own = resident_bytes_of("self");
        let parent = if self.with_parent {
            resident_bytes_of(&std::os::unix::process::parent_id().to_string()).unwrap_or(0)
        } else {
            0
        };
        own.is_some_and(|own| own + parent + (1 << 20) > self.bytes)
    }
}

/// `--allocate MB`: on a thread, after `after` ms, allocate and touch `megabytes` and keep
/// them, stamping when it starts, just before its counted memory goes over the limit, and
/// when it is done.
fn allocate_in_background(
    megabytes: u64,
    after: u64,
    over: Option<OverLimit>,
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
        let mut over_limit = over;
        while kept.len() < total {
            // Stamped just before the MiB that crosses the limit is touched: the stamp then
            // exists before a manager can see the crossing and kill us (stamped after, a
            // fast manager could kill us first).
            if let Some(limit) = over_limit {
                if limit.next_mib_crosses() {
                    if let Some(path) = &alloc_stamp {
                        append(path, &format!("over {pid} {}", unix_ns()));
                    }
                    over_limit = None;
                }
            }
            let next = (kept.len() + (1 << 20)).min(total);
            kept.resize(next, 1);
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

/// `VmRSS` of `/proc/<process>` ("self" or a pid), in bytes.
fn resident_bytes_of(process: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
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
    use std::os::unix::net::UnixDatagram;
    let Ok(target) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| match target.strip_prefix('@') {
        Some(name) => send_to_abstract(&socket, name, message),
        None => socket.send_to(message.as_bytes(), &target),
    });
    if let Err(e) = sent {
        eprintln!("fake-app: sending {message} to {target}: {e}");
    }
}

/// A datagram to an abstract socket name (Linux's; the portable backend's socket is a file).
#[cfg(target_os = "linux")]
fn send_to_abstract(
    socket: &std::os::unix::net::UnixDatagram,
    name: &str,
    message: &str,
) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    socket.send_to_addr(message.as_bytes(), &address)
}

#[cfg(not(target_os = "linux"))]
fn send_to_abstract(
    _: &std::os::unix::net::UnixDatagram,
    name: &str,
    _: &str,
) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("no abstract socket names here (@{name})"),
    ))
}

/// `--serve`: a small HTTP/1.1 server with a graceful stop, for the cluster mode's tests.
// Beside this file, not in src/bin/ (where Cargo would take it for another binary).
#[path = "fake-app/serve.rs"]
mod serve;
