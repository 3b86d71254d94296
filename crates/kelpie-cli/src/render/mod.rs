//! Everything the CLI prints.

mod describe;
mod events;
mod format;
mod jlist;
pub mod monit;
mod table;
mod terminal;

pub use describe::write_describe;
pub use events::{collect_events, write_events, write_events_json};
pub use jlist::write_jlist;
pub use table::{print_table, write_table};
pub use terminal::RawTerminal;

use anyhow::Result;
use kelpie_proto::{Response, StartOutcome};

/// Print a daemon answer the way PM2 users expect: the table after a command.
pub fn print_response(response: &Response) -> Result<()> {
    match response {
        Response::Processes(list)
        | Response::Started {
            processes: list, ..
        } => print_table(list)?,
        Response::Done(message) => println!("[kelpie] {message}"),
        Response::Pong { version, pid, .. } => println!("pong (daemon v{version}, pid {pid})"),
        Response::Error(e) => eprintln!("kelpie: error: {}", e.message),
        Response::LogLines { lines, .. } => println!("[kelpie] {} log lines", lines.len()),
    }
    Ok(())
}

/// Warnings from loading a config, once each, on stderr.
pub fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("kelpie: warning: {warning}");
    }
}

/// One line per started spec.
pub fn print_start_outcomes(outcomes: &[StartOutcome]) {
    for outcome in outcomes {
        let (verb, ids) = match outcome {
            StartOutcome::Created(ids) => ("started", ids),
            StartOutcome::Restarted(ids) => ("restarted", ids),
            StartOutcome::Started(ids) => ("started again", ids),
        };
        let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("[kelpie] {verb} (ids: {})", ids.join(", "));
    }
}
