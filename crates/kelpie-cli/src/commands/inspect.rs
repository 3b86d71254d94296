//! list, jlist, describe, pid.

use super::call;
use crate::render;
use anyhow::{bail, Result};
use kelpie_proto::{resolve_targets, Home, ProcessInfo, Request, Response, Target, Targetable};
use std::io::Write;
use std::process::ExitCode;

fn processes(home: &Home) -> Result<Vec<ProcessInfo>> {
    match call(home, &Request::List)? {
        Response::Processes(list) => Ok(list),
        other => bail!("unexpected answer from the daemon: {other:?}"),
    }
}

pub fn list(home: &Home) -> Result<ExitCode> {
    render::print_table(&processes(home)?)?;
    Ok(ExitCode::SUCCESS)
}

pub fn jlist(home: &Home) -> Result<ExitCode> {
    let list = processes(home)?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    render::write_jlist(&mut out, &list)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The instances of `list` that `target` selects, by the daemon's rule; an unknown target is
/// an error.
fn select<'a>(list: &'a [ProcessInfo], target: &Target) -> Result<Vec<&'a ProcessInfo>> {
    let instances: Vec<Targetable<'_>> = list.iter().map(ProcessInfo::targetable).collect();
    let ids = resolve_targets(std::slice::from_ref(target), &instances)
        .map_err(|_| anyhow::anyhow!("no app matches {}", target.describe()))?;
    Ok(list.iter().filter(|p| ids.contains(&p.pm_id)).collect())
}

pub fn describe(home: &Home, target: &str) -> Result<ExitCode> {
    let target = Target::parse(target);
    let list = processes(home)?;
    let found = select(&list, &target)?;
    if found.is_empty() {
        bail!("there are no apps to describe");
    }
    let mut out = std::io::stdout().lock();
    for process in found {
        render::write_describe(&mut out, process)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `events [target]`: the exits of the selected instances, newest last.
pub fn events(home: &Home, args: &crate::cli::EventsArgs) -> Result<ExitCode> {
    let target = args
        .target
        .as_deref()
        .map(Target::parse)
        .unwrap_or(Target::All);
    let list = processes(home)?;
    let found = select(&list, &target)?;
    let events = render::collect_events(&found, args.lines);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        render::write_events_json(&mut out, &events)?;
    } else {
        render::write_events(&mut out, &events, args.stderr)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `pid [target]`: one pid per line (0 for an instance that is not running, like PM2).
pub fn pid(home: &Home, target: Option<&str>) -> Result<ExitCode> {
    let target = target.map(Target::parse).unwrap_or(Target::All);
    let list = processes(home)?;
    let found = select(&list, &target)?;
    let mut out = std::io::stdout().lock();
    for p in found {
        writeln!(out, "{}", p.state.pid.unwrap_or(0))?;
    }
    Ok(ExitCode::SUCCESS)
}
