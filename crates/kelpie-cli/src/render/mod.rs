//! Everything the CLI prints.

mod describe;
mod events;
pub(crate) mod format;
mod host;
mod inspect;
pub(crate) mod monit;
mod schedule;
mod table;
mod terminal;

pub(crate) use describe::write_describe;
pub(crate) use events::{collect_events, write_events, write_events_json};
pub(crate) use host::host_line;
pub(crate) use kelpie_view::jlist::{is_secret, shown_env, write_describe_json, write_jlist, MASK};
pub(crate) use table::{print_table, write_table};
pub(crate) use terminal::RawTerminal;

use anyhow::Result;
use kelpie_proto::{Response, StartOutcome};

/// `prettylist`: the `jlist` data as Node's `util.inspect` prints it, as PM2 does.
pub(crate) fn write_prettylist(
    out: &mut impl std::io::Write,
    list: &[kelpie_proto::ProcessInfo],
    show_secrets: bool,
) -> std::io::Result<()> {
    // Through the JSON text, which has `jlist`'s key order (PM2's); a `serde_json::Value`
    // would sort the keys.
    let mut json = Vec::new();
    kelpie_view::jlist::write_jlist(&mut json, list, show_secrets)?;
    let value = inspect::Value::parse(&json)?;
    writeln!(out, "{}", inspect::inspect(&value))
}

/// Print a daemon answer the way PM2 users expect: the table after a command.
pub(crate) fn print_response(response: &Response) -> Result<()> {
    match response {
        Response::Processes(list)
        | Response::Started {
            processes: list, ..
        } => print_table(list)?,
        Response::Done(message) => outln!("[kelpie] {message}"),
        Response::Pong { version, pid, .. } => outln!("pong (daemon v{version}, pid {pid})"),
        Response::Error(e) => eprintln!("kelpie: error: {}", e.message),
        Response::LogLines { lines, .. } => outln!("[kelpie] {} log lines", lines.len()),
        Response::Conf { store, .. } | Response::Json(store) => outln!("{store:#}"),
        Response::Event(event) => outln!("{}", serde_json::to_string(event)?),
        Response::Triggered(triggered) => outln!("{}", serde_json::to_string(triggered)?),
        Response::Host(Some(host)) => outln!("{}", host_line(host)),
        Response::Host(None) => outln!("[kelpie] the host has not been sampled yet"),
        Response::Inspecting { name, pm_id, pid } => {
            outln!("[kelpie] {name} (id {pm_id}, pid {pid})")
        }
        Response::ProfilePart(text) => outln!("{text}"),
    }
    Ok(())
}

/// Warnings from loading a config, once each, on stderr.
pub(crate) fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("kelpie: warning: {warning}");
    }
}

/// One line per started spec.
pub(crate) fn print_start_outcomes(outcomes: &[StartOutcome]) {
    for outcome in outcomes {
        let (verb, ids) = match outcome {
            StartOutcome::Created(ids) => ("started", ids),
            StartOutcome::Restarted(ids) => ("restarted", ids),
            StartOutcome::Started(ids) => ("started again", ids),
        };
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        outln!("[kelpie] {verb} (ids: {})", ids.join(", "));
    }
}

/// Log files of the instances a start acted on that cannot be written (`-o /no/such/dir`),
/// one line each on stderr, with the system's reason.
pub(crate) fn print_log_problems(outcomes: &[StartOutcome], response: &Response) {
    let Response::Started { processes, .. } = response else {
        return;
    };
    let acted: Vec<u32> = outcomes
        .iter()
        .flat_map(|o| match o {
            StartOutcome::Created(ids)
            | StartOutcome::Restarted(ids)
            | StartOutcome::Started(ids) => ids.iter().copied(),
        })
        .collect();
    for process in processes.iter().filter(|p| acted.contains(&p.pm_id)) {
        for file in &process.log_files {
            if let Some(error) = &file.error {
                eprintln!(
                    "[kelpie] app `{}` (id {}): its {} log is not written: {error}",
                    process.spec.name, process.pm_id, file.kind
                );
            }
        }
    }
}
