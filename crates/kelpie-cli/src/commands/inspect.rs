//! list, jlist, describe, pid.

use super::{call, parse_target};
use crate::render;
use anyhow::{bail, Result};
use kelpie_proto::{Home, ProcessInfo, Request, Response, Target};
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

fn matches(target: &Target, p: &ProcessInfo) -> bool {
    match target {
        Target::All => true,
        Target::Id(id) => p.pm_id == *id,
        Target::Name(name) => &p.spec.name == name || &p.spec.namespace == name,
    }
}

pub fn describe(home: &Home, target: &str) -> Result<ExitCode> {
    let target = parse_target(target);
    let list = processes(home)?;
    let found: Vec<&ProcessInfo> = list.iter().filter(|p| matches(&target, p)).collect();
    if found.is_empty() {
        bail!("no app matches `{}`", describe_target(&target));
    }
    let mut out = std::io::stdout().lock();
    for process in found {
        render::write_describe(&mut out, process)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_target(target: &Target) -> String {
    match target {
        Target::All => "all".into(),
        Target::Id(id) => id.to_string(),
        Target::Name(name) => name.clone(),
    }
}

/// `pid [target]`: one pid per line (0 for an instance that is not running, like PM2).
pub fn pid(home: &Home, target: Option<&str>) -> Result<ExitCode> {
    let target = target.map(parse_target).unwrap_or(Target::All);
    let list = processes(home)?;
    let found: Vec<&ProcessInfo> = list.iter().filter(|p| matches(&target, p)).collect();
    if found.is_empty() && target != Target::All {
        bail!("no app matches `{}`", describe_target(&target));
    }
    let mut out = std::io::stdout().lock();
    for p in found {
        writeln!(out, "{}", p.state.pid.unwrap_or(0))?;
    }
    Ok(ExitCode::SUCCESS)
}
