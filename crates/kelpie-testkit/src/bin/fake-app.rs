//! A small, predictable app for Kelpie's tests and benchmarks. With no flags it prints one line
//! and sleeps forever. Flags combine:
//!
//! - `--stamp FILE`: append `<pid> <unix time in ns>` to FILE at start (restart latency).
//! - `--print N` / `--print-err N`: print N numbered lines to stdout / stderr at start.
//! - `--print-args`: print its arguments, one per line, as `arg=<value>`.
//! - `--print-env VAR`: print `VAR=<value>` (or `VAR unset`); repeatable.
//! - `--exit-after MS` with `--exit-code N`: exit with code N (default 1) after MS.
//! - `--ignore-signals`: ignore SIGINT, SIGTERM, SIGHUP and SIGQUIT.
//! - `--spawn-children N`: start N copies of itself that sleep forever (grandchildren of
//!   Kelpie) and append their pids to `--children-file FILE`.
//! - `--flood`: write lines to stdout as fast as possible, forever.
//! - `--cat FILE`: copy FILE's bytes to stdout exactly (after the start line).
//! - `--long-line N`: print one line of N `x` bytes, then the line `after the long line`.
//! - `--tick MS`: print `tick <n>` every MS milliseconds, forever.
//! - `--report-elapsed`: after printing, write `elapsed_ms <ms>` to stderr (how long printing
//!   took, to compare with and without Kelpie).
//! - `--quiet`: no `fake-app <pid> started` line.
//!
//! `--print` output is block-buffered (written in 64 KiB pieces), as a fast app's would be.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Default)]
struct Options {
    stamp: Option<String>,
    print: u64,
    print_err: u64,
    print_args: bool,
    print_env: Vec<String>,
    exit_after: Option<u64>,
    exit_code: i32,
    ignore_signals: bool,
    spawn_children: u32,
    children_file: Option<String>,
    flood: bool,
    cat: Option<String>,
    long_line: usize,
    tick: Option<u64>,
    report_elapsed: bool,
    quiet: bool,
}

fn parse(args: &[String]) -> Options {
    let mut o = Options {
        exit_code: 1,
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match arg.as_str() {
            "--stamp" => o.stamp = Some(value()),
            "--print" => o.print = value().parse().unwrap_or(0),
            "--print-err" => o.print_err = value().parse().unwrap_or(0),
            "--print-args" => o.print_args = true,
            "--print-env" => o.print_env.push(value()),
            "--exit-after" => o.exit_after = value().parse().ok(),
            "--exit-code" => o.exit_code = value().parse().unwrap_or(1),
            "--ignore-signals" => o.ignore_signals = true,
            "--spawn-children" => o.spawn_children = value().parse().unwrap_or(0),
            "--children-file" => o.children_file = Some(value()),
            "--flood" => o.flood = true,
            "--cat" => o.cat = Some(value()),
            "--long-line" => o.long_line = value().parse().unwrap_or(0),
            "--tick" => o.tick = value().parse().ok(),
            "--report-elapsed" => o.report_elapsed = true,
            "--quiet" => o.quiet = true,
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = parse(&args);
    let pid = std::process::id();
    if let Some(path) = &o.stamp {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        append(path, &format!("{pid} {ns}"));
    }
    if o.ignore_signals {
        for signal in ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] {
            if let Some(n) = kelpie_sys::signal_number(signal) {
                let _ = kelpie_sys::ignore_signal(n);
            }
        }
    }
    let began = std::time::Instant::now();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    if !o.quiet {
        let _ = writeln!(out, "fake-app {pid} started");
    }
    if o.print_args {
        for arg in &args {
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
    for _ in 0..o.spawn_children {
        let exe = std::env::current_exe().unwrap_or_else(|_| "fake-app".into());
        let mut child_args = Vec::new();
        if o.ignore_signals {
            child_args.push("--ignore-signals");
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
    if o.flood {
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
