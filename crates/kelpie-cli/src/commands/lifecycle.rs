//! The daemon's life: daemon, ping, kill, update, save, resurrect; and init.

use super::call;
use crate::client::Client;
use crate::render;
use anyhow::{bail, Context, Result};
use kelpie_proto::{Home, Request, Response};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub fn daemon(home: Home, resurrect_if_empty: bool) -> Result<ExitCode> {
    kelpie_daemon::run_with(home, kelpie_daemon::DaemonOptions { resurrect_if_empty })?;
    Ok(ExitCode::SUCCESS)
}

pub fn ping(home: &Home) -> Result<ExitCode> {
    if let Response::Pong { pid, version, .. } = call(home, &Request::Ping)? {
        println!(
            "pong (daemon v{version}, pid {pid}, home {})",
            home.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn kill(home: &Home) -> Result<ExitCode> {
    let Some(mut client) = Client::connect(home)? else {
        println!(
            "[kelpie] no daemon is running for {}",
            home.root().display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    match client.request(&Request::Kill)? {
        Response::Error(e) => bail!(e.message),
        response => render::print_response(&response)?,
    }
    wait_until_gone(home)?;
    Ok(ExitCode::SUCCESS)
}

/// Restart the daemon with the kelpie binary installed now. The old daemon gets SIGTERM, which
/// any version understands: it stops the apps and exits keeping its list; the new one starts
/// them again.
pub fn update(home: &Home) -> Result<ExitCode> {
    let pid_file = home.pid_file();
    if let Some(pid) = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        if kelpie_sys::pid_alive(pid) && Client::connect(home)?.is_some() {
            kelpie_sys::send_signal(pid, kelpie_sys::signal_number("SIGTERM").unwrap_or(15))
                .with_context(|| format!("cannot signal the daemon (pid {pid})"))?;
            wait_until_gone(home)?;
        }
    }
    if let Response::Pong { pid, version, .. } = call(home, &Request::Ping)? {
        println!(
            "[kelpie] daemon v{version} running (pid {pid}); apps of the list were started again"
        );
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

pub fn save(home: &Home, force: bool) -> Result<ExitCode> {
    render::print_response(&call(home, &Request::Save { force })?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn resurrect(home: &Home) -> Result<ExitCode> {
    let response = call(home, &Request::Resurrect)?;
    if let Response::Started {
        outcomes, notes, ..
    } = &response
    {
        for note in notes {
            println!("[kelpie] {note}");
        }
        render::print_start_outcomes(outcomes);
    }
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

pub fn init() -> Result<ExitCode> {
    let path = std::path::Path::new("ecosystem.config.js");
    if path.exists() {
        bail!("ecosystem.config.js already exists here; not overwritten");
    }
    std::fs::write(path, kelpie_config::example_ecosystem())
        .context("cannot write ecosystem.config.js")?;
    println!(
        "[kelpie] wrote ecosystem.config.js; start it with `kelpie start ecosystem.config.js`"
    );
    Ok(ExitCode::SUCCESS)
}
