//! `events`: the recorded exits of apps, across the list, newest last (crash forensics).

use super::format::{short_duration, utc};
use kelpie_core::ExitRecord;
use kelpie_proto::ProcessInfo;
use serde::Serialize;
use std::io::Write;

/// One exit with the instance it belongs to.
#[derive(Debug, Serialize)]
pub(crate) struct Event<'a> {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The same, RFC 3339 UTC.
    pub at: String,
    /// The app.
    pub name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The instance.
    pub pm_id: u32,
    /// The process that ended, when known.
    pub pid: Option<u32>,
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<&'a str>,
    /// `cgroup` (certain) or `likely` when the kernel's OOM killer did it, else null.
    pub oom: Option<kelpie_core::OomKill>,
    /// How long it ran (ms).
    pub uptime_ms: u64,
    /// Why it ended: crash, exit, user, reload, memory, cron...
    pub cause: &'static str,
    /// What Kelpie did: restart, waiting restart, stopped, errored, reload.
    pub action: &'a str,
    /// Why, for people.
    pub reason: &'a str,
    /// Its last lines of stderr, oldest first.
    pub stderr_tail: &'a [String],
    /// The uncaught exception it reported just before it ended (Node apps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<&'a kelpie_core::AppException>,
}

impl<'a> Event<'a> {
    fn of(p: &'a ProcessInfo, exit: &'a ExitRecord) -> Event<'a> {
        Event {
            at_ms: exit.at_ms,
            at: utc(exit.at_ms),
            name: &p.spec.name,
            namespace: &p.spec.namespace,
            pm_id: p.pm_id,
            pid: exit.pid,
            code: exit.code,
            signal: exit.signal.as_deref(),
            oom: exit.oom,
            uptime_ms: exit.uptime_ms,
            cause: exit.cause.as_str(),
            action: &exit.action,
            reason: &exit.reason,
            stderr_tail: &exit.stderr_tail,
            exception: exit.exception.as_ref(),
        }
    }
}

/// The exits of `processes`, oldest first, the newest `last` of them.
pub(crate) fn collect_events<'a>(processes: &[&'a ProcessInfo], last: usize) -> Vec<Event<'a>> {
    let mut events: Vec<Event<'a>> = processes
        .iter()
        .flat_map(|p| p.state.exits.iter().map(move |exit| Event::of(p, exit)))
        .collect();
    events.sort_by_key(|e| (e.at_ms, e.pm_id));
    let skip = events.len().saturating_sub(last);
    events.split_off(skip)
}

/// `code 3`, `signal SIGKILL`, `-`.
pub(super) fn how_it_ended(code: Option<i32>, signal: Option<&str>) -> String {
    match (signal, code) {
        (Some(signal), _) => format!("signal {signal}"),
        (None, Some(code)) => format!("code {code}"),
        (None, None) => "-".into(),
    }
}

/// ` OOM` (certain) or ` OOM?` (likely), or nothing.
pub(super) fn oom_mark(oom: Option<kelpie_core::OomKill>) -> &'static str {
    match oom {
        Some(kelpie_core::OomKill::Cgroup) => " OOM",
        Some(kelpie_core::OomKill::Likely) => " OOM?",
        None => "",
    }
}

/// One line per exit; with `stderr`, its last lines of stderr under it.
pub(crate) fn write_events(
    out: &mut impl Write,
    events: &[Event<'_>],
    stderr: bool,
) -> std::io::Result<()> {
    if events.is_empty() {
        writeln!(out, "[kelpie] no exits recorded")?;
        return Ok(());
    }
    for e in events {
        let how = format!("{}{}", how_it_ended(e.code, e.signal), oom_mark(e.oom));
        let pid = e.pid.map_or_else(|| "-".to_string(), |p| p.to_string());
        writeln!(
            out,
            "{}  {} ({})  pid {pid}  {how}  uptime {}  {}  {}: {}",
            e.at,
            e.name,
            e.pm_id,
            short_duration(e.uptime_ms),
            e.cause,
            e.action,
            e.reason
        )?;
        if let Some(exception) = e.exception {
            write_exception(out, exception, if stderr { usize::MAX } else { 1 }, "    ")?;
        }
        if stderr {
            for line in e.stderr_tail {
                writeln!(out, "    stderr | {line}")?;
            }
        }
    }
    Ok(())
}

/// The exception an exit came of: its name and message, then at most `frames` lines of its
/// stack (each under `indent`).
pub(super) fn write_exception(
    out: &mut impl Write,
    exception: &kelpie_core::AppException,
    frames: usize,
    indent: &str,
) -> std::io::Result<()> {
    let name = exception.name.as_deref().unwrap_or("exception");
    writeln!(out, "{indent}exception | {name}: {}", exception.message)?;
    let stack = exception.stack.as_deref().unwrap_or("");
    // The stack's first line repeats the name and message.
    for line in stack.lines().skip(1).take(frames) {
        writeln!(out, "{indent}exception | {line}")?;
    }
    Ok(())
}

/// The exits as one JSON array (one line, like `jlist`).
pub(crate) fn write_events_json(out: &mut impl Write, events: &[Event<'_>]) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, events)?;
    writeln!(out)
}
