//! Everything the CLI prints.

mod describe;
mod events;
mod format;
mod inspect;
mod jlist;
pub mod monit;
mod table;
mod terminal;

pub use describe::write_describe;
pub use events::{collect_events, write_events, write_events_json};
pub use jlist::{write_describe_json, write_jlist, write_prettylist};
pub use table::{print_table, write_table};
pub use terminal::RawTerminal;

use anyhow::Result;
use kelpie_proto::{Response, StartOutcome};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// What a masked environment value is shown as.
pub const MASK: &str = "****";

/// A variable whose value is kept out of `describe` and `jlist` unless asked for: its name holds
/// TOKEN, SECRET, PASSWORD or KEY (any case).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "KEY"]
        .iter()
        .any(|word| upper.contains(word))
}

/// `env` as shown: the values of secret-looking names replaced by [`MASK`], unless
/// `show_secrets`.
pub fn shown_env(
    env: &BTreeMap<String, String>,
    show_secrets: bool,
) -> Cow<'_, BTreeMap<String, String>> {
    if show_secrets || !env.keys().any(|k| is_secret_name(k)) {
        return Cow::Borrowed(env);
    }
    Cow::Owned(
        env.iter()
            .map(|(k, v)| match is_secret_name(k) {
                true => (k.clone(), MASK.to_string()),
                false => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

/// Print a daemon answer the way PM2 users expect: the table after a command.
pub fn print_response(response: &Response) -> Result<()> {
    match response {
        Response::Processes(list)
        | Response::Started {
            processes: list, ..
        } => print_table(list)?,
        Response::Done(message) => outln!("[kelpie] {message}"),
        Response::Pong { version, pid, .. } => outln!("pong (daemon v{version}, pid {pid})"),
        Response::Error(e) => eprintln!("kelpie: error: {}", e.message),
        Response::LogLines { lines, .. } => outln!("[kelpie] {} log lines", lines.len()),
        Response::Conf { store, .. } => outln!("{store:#}"),
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
        outln!("[kelpie] {verb} (ids: {})", ids.join(", "));
    }
}

/// Log files of the instances a start acted on that cannot be written (`-o /no/such/dir`),
/// one line each on stderr, with the system's reason.
pub fn print_log_problems(outcomes: &[StartOutcome], response: &Response) {
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

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secret_looking_names_are_masked_unless_asked() {
        for name in [
            "API_TOKEN",
            "db_password",
            "Secret",
            "AWS_ACCESS_KEY_ID",
            "keyring",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["PORT", "NODE_ENV", "PASSWD", "TOKE"] {
            assert!(!is_secret_name(name), "{name}");
        }
        let env: BTreeMap<String, String> = [("PORT", "3000"), ("API_TOKEN", "hunter2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let masked = shown_env(&env, false);
        assert_eq!(masked["PORT"], "3000");
        assert_eq!(masked["API_TOKEN"], MASK);
        assert_eq!(shown_env(&env, true)["API_TOKEN"], "hunter2");
    }
}
