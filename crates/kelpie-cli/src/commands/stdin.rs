//! `send` and `attach`: lines to the stdin of apps in fork mode (PM2's verbs). The daemon
//! writes them into each process's stdin FIFO, whole or not at all, without waiting for the
//! app to read (see docs/cli.md).

use super::{call, parse_target};
use crate::client::Client;
use crate::render;
use anyhow::{bail, Result};
use kelpie_proto::{Home, LogStream, Request, Response, Target};
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// `send <target> <line...>`: the words joined by spaces, and a newline, to every running
/// process of the target (PM2 takes an id and sends its first word only).
pub(super) fn send(home: &Home, target: &str, words: &[String]) -> Result<ExitCode> {
    let response = call(
        home,
        &Request::SendLine(kelpie_proto::SendLineRequest {
            targets: vec![parse_target(target)?],
            text: format!("{}\n", words.join(" ")),
        }),
    )?;
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

/// `attach <target> [separator]`: the process's output as it prints it (both streams, raw, as
/// PM2), and each line typed sent to its stdin with `separator` (a newline by default), until
/// the input ends (Ctrl-D) or Ctrl-C; both end with status 0, as PM2's.
pub(super) fn attach(home: &Home, target: &str, separator: Option<&str>) -> Result<ExitCode> {
    let pm_id = one_process(home, target)?;
    let mut output = Client::connect_or_start(home)?;
    output.send(&Request::Logs(kelpie_proto::LogsRequest {
        targets: vec![Target::Id(pm_id)],
        lines: 0,
        out: true,
        err: true,
        follow: true,
    }))?;
    // Ctrl-C ends the command as the end of the input does: status 0.
    signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        0,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
    )?;
    let separator = separator.unwrap_or("\n").to_string();
    let home = home.clone();
    std::thread::spawn(move || forward_input(&home, pm_id, &separator));
    loop {
        match output.receive()? {
            Response::LogLines { lines, .. } => {
                let mut out = std::io::stdout().lock();
                let mut err = std::io::stderr().lock();
                for line in &lines {
                    let to: &mut dyn Write = match line.stream {
                        LogStream::Out => &mut out,
                        LogStream::Err => &mut err,
                    };
                    let _ = to.write_all(&line.bytes.0);
                    let _ = to.write_all(b"\n");
                }
                let _ = out.flush();
            }
            // The app was deleted: nothing more will come.
            Response::Done(_) => return Ok(ExitCode::SUCCESS),
            Response::Error(e) => return Err(crate::exit::from_wire(&e)),
            other => bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
}

/// Each line typed, sent as it comes; what the daemon refuses is said and the next line tried
/// (as PM2's attach goes on). The end of the input ends the command.
fn forward_input(home: &Home, pm_id: u32, separator: &str) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let request = Request::SendLine(kelpie_proto::SendLineRequest {
            targets: vec![Target::Id(pm_id)],
            text: format!("{line}{separator}"),
        });
        if let Err(e) = call(home, &request) {
            eprintln!("kelpie: {e:#}");
        }
    }
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// The one process `target` names: an id, or a name or namespace with a single instance.
fn one_process(home: &Home, target: &str) -> Result<u32> {
    let list = match call(home, &Request::List)? {
        Response::Processes(list) => list,
        other => bail!("unexpected answer from the daemon: {other:?}"),
    };
    let instances: Vec<kelpie_proto::Targetable<'_>> = list
        .iter()
        .map(kelpie_proto::ProcessInfo::targetable)
        .collect();
    let target = parse_target(target)?;
    let ids = kelpie_proto::resolve_targets(std::slice::from_ref(&target), &instances)
        .unwrap_or_default();
    match ids.as_slice() {
        [] => bail!("no app matches {}", target.describe()),
        [one] => Ok(*one),
        several => {
            let ids: Vec<String> = several.iter().map(u32::to_string).collect();
            bail!(
                "{} has {} processes (ids {}): attach to one of them by its id",
                target.describe(),
                several.len(),
                ids.join(", ")
            )
        }
    }
}
