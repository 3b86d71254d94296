//! The daemon's life: daemon, ping, web, kill, update, report; and init. (An app's life, start,
//! stop, restart, is `start.rs` and `targeted.rs`; the saved list, `dump.rs`.)

use super::call;
use crate::client::Client;
use crate::render;
use anyhow::{bail, Context, Result};
use kelpie_proto::{Home, Request, Response};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(super) fn daemon(home: Home, options: kelpie_daemon::DaemonOptions) -> Result<ExitCode> {
    // A long-lived process: glibc's per-thread caches of freed blocks would keep megabytes
    // resident after a burst (see the function). Not in an update's new program, which takes
    // over its descriptors first: it is given the old daemon's environment, the tunable in it.
    if options.handoff.is_none() {
        if let Err(e) = kelpie_sys::run_again_without_thread_caches() {
            eprintln!("kelpie: memory: cannot run again without glibc's thread caches: {e}");
        }
    }
    kelpie_daemon::run_with(home, options)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn ping(home: &Home) -> Result<ExitCode> {
    if let Response::Pong { pid, version, .. } = call(home, &Request::Ping)? {
        outln!(
            "pong (daemon v{version}, pid {pid}, home {})",
            home.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `web`: the daemon serves the page, the API and /metrics (or stops serving them).
pub(super) fn web(home: &Home, args: crate::cli::WebArgs) -> Result<ExitCode> {
    let token = match args.show_token || args.stop {
        true => None,
        false => args
            .token
            .or_else(|| std::env::var("KELPIE_WEB_TOKEN").ok())
            .filter(|t| !t.is_empty()),
    };
    if let Some(token) = &token {
        if args.open_loopback {
            bail!("--open-loopback serves without a token, but KELPIE_WEB_TOKEN gives one: unset it, or leave out --open-loopback");
        }
        kelpie_config::check_token(token).map_err(anyhow::Error::msg)?;
    }
    let request = Request::Web(kelpie_proto::WebRequest {
        port: args.port,
        host: args.host,
        token,
        open_loopback: args.open_loopback,
        stop: args.stop,
        show_token: args.show_token,
    });
    if let Response::Done(message) = call(home, &request)? {
        match args.show_token {
            true => outln!("{message}"),
            false => outln!("[kelpie] {message}"),
        }
        if let Some(page) = page_with_token(home, &message) {
            outln!("[kelpie] open {page}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The page's address with the stored token after `#`, for a server that uses it: the page
/// takes it from there (a fragment is never sent to a server, so it is in no request, log or
/// proxy), keeps it in the tab and removes it from the address bar.
fn page_with_token(home: &Home, message: &str) -> Option<String> {
    if !message.contains(&home.web_token_file().display().to_string()) {
        return None;
    }
    let url = message
        .split_whitespace()
        .find(|word| word.starts_with("http://"))?;
    let token = std::fs::read_to_string(home.web_token_file()).ok()?;
    Some(format!("{url}#token={}", token.trim()))
}

pub(super) fn kill(home: &Home) -> Result<ExitCode> {
    let mut client = match Client::connect(home)? {
        Some(client) => client,
        // A daemon killed with -9 left its apps running, kept by its keeper: a new daemon takes
        // them over, then stops them.
        None if kelpie_sys::message_socket_connect(&home.keeper_socket()).is_ok() => {
            Client::connect_or_start(home)?
        }
        None => {
            outln!(
                "[kelpie] no daemon is running for {}",
                home.root().display()
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    match client.request(&Request::Kill)? {
        Response::Error(e) => return Err(crate::exit::from_wire(&e)),
        response => render::print_response(&response)?,
    }
    wait_until_gone(home)?;
    Ok(ExitCode::SUCCESS)
}

/// How long `update` waits for the daemon's answer: the apps may take up to 10 s to settle
/// (a start or reload finishing) before the daemon hands over.
const UPDATE_ANSWER: Duration = Duration::from_secs(30);

/// Replace the running daemon by this CLI's program, in place: it re-executes itself keeping
/// its pid, its apps (not restarted), their pipes and sockets (see docs/startup.md). The
/// request goes by a file and a signal, not the protocol, so it works with a daemon of any
/// version, even one this CLI cannot talk to.
pub(super) fn update(home: &Home) -> Result<ExitCode> {
    let pid = std::fs::read_to_string(home.pid_file())
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|pid| kelpie_sys::pid_alive(*pid))
        .filter(|_| std::os::unix::net::UnixStream::connect(home.socket()).is_ok());
    let Some(pid) = pid else {
        if let Response::Pong { pid, version, .. } = call(home, &Request::Ping)? {
            outln!("[kelpie] no daemon was running; started v{version} (pid {pid})");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let signal = kelpie_sys::signal_number(kelpie_proto::UPDATE_SIGNAL).unwrap_or(10);
    if !kelpie_sys::catches_signal(pid, signal) {
        return restart_daemon(home, pid);
    }
    let program = std::env::current_exe().context("cannot tell which program this kelpie is")?;
    let result_file = home.update_result();
    let _ = std::fs::remove_file(&result_file);
    kelpie_sys::atomic_write_mode(
        &home.update_request(),
        format!("{}\n", program.display()).as_bytes(),
        0o600,
    )
    .with_context(|| format!("cannot write {}", home.update_request().display()))?;
    kelpie_sys::send_signal(pid, signal)
        .with_context(|| format!("cannot signal the daemon (pid {pid})"))?;
    let deadline = Instant::now() + UPDATE_ANSWER;
    let answer = loop {
        if let Ok(answer) = std::fs::read_to_string(&result_file) {
            break answer;
        }
        if !kelpie_sys::pid_alive(pid) {
            bail!(
                "the daemon (pid {pid}) exited during the update; see {}",
                home.daemon_log().display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon (pid {pid}) did not answer the update within {} s; see {}",
                UPDATE_ANSWER.as_secs(),
                home.daemon_log().display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = std::fs::remove_file(&result_file);
    let (head, text) = answer.split_once('\n').unwrap_or((answer.as_str(), ""));
    if head != "ok" {
        bail!("{}", text.trim());
    }
    outln!("[kelpie] {}", text.trim());
    Ok(ExitCode::SUCCESS)
}

/// A daemon from before updates in place does not catch the update signal, which would end it
/// (and its apps would lose their pipes). It is replaced the old way: SIGTERM, which every
/// version understands, stops its apps keeping the list, and a new daemon starts them again.
fn restart_daemon(home: &Home, pid: u32) -> Result<ExitCode> {
    eprintln!(
        "[kelpie] the running daemon (pid {pid}) is too old to be updated in place: restarting it, and its apps with it"
    );
    kelpie_sys::send_signal(pid, kelpie_sys::signal_number("SIGTERM").unwrap_or(15))
        .with_context(|| format!("cannot signal the daemon (pid {pid})"))?;
    wait_until_gone(home)?;
    if let Response::Pong { pid, version, .. } = call(home, &Request::Ping)? {
        outln!("[kelpie] daemon v{version} running (pid {pid}); the apps of its list were started again");
    }
    Ok(ExitCode::SUCCESS)
}

/// Wait until nothing answers on the socket any more.
fn wait_until_gone(home: &Home) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::os::unix::net::UnixStream::connect(home.socket()).is_ok() {
        if Instant::now() > deadline {
            bail!("the daemon did not exit within 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// `report`: what a bug report needs, as PM2's `report` gathers it: the CLI's and the daemon's
/// versions, the home, the system, the list, and the daemon's last log lines.
pub(super) fn report(home: &Home) -> Result<ExitCode> {
    let rule = |title: &str| {
        format!(
            "--- {title} {}",
            "-".repeat(70usize.saturating_sub(title.len()))
        )
    };
    outln!("{}", rule("Kelpie report"));
    outln!("date                 : {}", jiff::Timestamp::now());
    outln!("{}", rule("CLI"));
    outln!("kelpie               : v{}", env!("CARGO_PKG_VERSION"));
    outln!(
        "path                 : {}",
        std::env::current_exe().map_or_else(|e| e.to_string(), |p| p.display().to_string())
    );
    outln!(
        "user                 : {} (uid {})",
        kelpie_sys::username(kelpie_sys::current_uid()),
        kelpie_sys::current_uid()
    );
    outln!("{}", rule("Daemon"));
    outln!("home                 : {}", home.root().display());
    match call(home, &Request::Ping)? {
        Response::Pong {
            pid,
            version,
            uptime_ms,
        } => {
            outln!("kelpie               : v{version}");
            outln!("pid                  : {pid}");
            outln!("uptime               : {} s", uptime_ms / 1000);
        }
        other => outln!("answer               : {other:?}"),
    }
    outln!("{}", rule("System"));
    outln!("arch                 : {}", std::env::consts::ARCH);
    outln!("os                   : {}", std::env::consts::OS);
    let kernel = kelpie_sys::kernel_release().unwrap_or_default();
    outln!("kernel               : {kernel}");
    outln!(
        "cpus                 : {}",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let (total, available) = kelpie_sys::memory_total_and_available_kib();
    for (name, kib) in [("MemTotal:", total), ("MemAvailable:", available)] {
        if let Some(kib) = kib {
            outln!("{name:<16}{kib:>8} kB");
        }
    }
    outln!("{}", rule("List"));
    if let Response::Processes(list) = call(home, &Request::List)? {
        render::print_table(&list)?;
    }
    let log = home.daemon_log();
    outln!(
        "{}",
        rule(&format!("Daemon log ({}, last 20 lines)", log.display()))
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for line in &lines[lines.len().saturating_sub(20)..] {
        outln!("{}", kelpie_view::terminal::visible(line));
    }
    outln!("{}", rule(""));
    outln!("Copy the above into your bug report (app environments are not in it; check the log lines for anything private).");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn init() -> Result<ExitCode> {
    let path = std::path::Path::new("ecosystem.config.js");
    if path.exists() {
        // PM2 writes over it; a user's file is never lost here.
        bail!("ecosystem.config.js already exists here; not overwritten (remove it first to get the example)");
    }
    std::fs::write(path, kelpie_config::example_ecosystem())
        .context("cannot write ecosystem.config.js")?;
    // The example runs `./app.js`: with none here, an example app, so it starts as written.
    let app = std::path::Path::new("app.js");
    let wrote_app = !app.exists()
        && std::fs::write(app, kelpie_config::example_app())
            .context("cannot write app.js")
            .map(|()| true)?;
    let also = if wrote_app {
        " and app.js (an example app: replace it with yours)"
    } else {
        ""
    };
    outln!("[kelpie] wrote ecosystem.config.js{also}; start it with `kelpie start ecosystem.config.js`");
    Ok(ExitCode::SUCCESS)
}
