//! `kelpie fleet [file] <env> <command>`: one command on every host of a deploy section, over
//! the same SSH as `kelpie deploy` (its hosts, users, ports, keys and options), all at once,
//! and the answers together: one table with a host column for `list`, the `jlist`s merged
//! (each process with its `host`) for `jlist` and `--json`, each host's output under its name
//! otherwise. A host that cannot be reached, or does not answer within `--timeout`, is shown as
//! such while the others are; the status is 0 only if every host answered with 0.

use super::run::Run;
use super::ssh::{Connection, Outcome, Seen};
use crate::cli::FleetArgs;
use anyhow::{Context, Result};
use kelpie_view::terminal::visible;
use serde_json::Value;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

const USAGE: &str = "Usage: kelpie fleet [file] <env> <command> [--json] [--timeout 20s]

Commands (run on every host of the deploy section's <env>, at once):
  list                  one table of every host's apps, with a host column
  jlist                 the hosts' jlists merged, each process with its `host`
  describe <app>        each host's description of the app
  logs [app] [--lines N]
                        each host's last lines (default 15)
  events [app]          each host's latest exits (code or signal, OOM kill, cause)
  start|stop|restart|reload <app>
                        on every host; each host's answer";

/// What to run on each host.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FleetCommand {
    /// `list`: the merged table.
    List,
    /// `jlist`: the merged JSON.
    Jlist,
    /// Any other: each host's output, as it printed it.
    Text {
        /// The kelpie command line (quoted words).
        command: String,
        /// Each line prefixed with its host (logs), rather than under its name.
        prefixed: bool,
    },
}

/// What one host answered.
struct HostAnswer {
    /// Its output lines.
    lines: Vec<String>,
    /// What its command said on stderr.
    stderr: Vec<String>,
    /// The command's status, or why there is none.
    result: Result<i32, NoAnswer>,
}

/// Why a host gave no status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NoAnswer {
    /// It did not answer within `--timeout` (its ssh was killed).
    #[error("no answer within {0:?} (--timeout)")]
    TimedOut(Duration),
    /// Its login shell found no `kelpie`.
    #[error("kelpie is not on the PATH of the host's login shell")]
    NoKelpie,
    /// ssh could not reach it or log in (its error, worded by the deploy's report).
    #[error("{0}")]
    Unreachable(String),
}

/// What is wrong with the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum WordsError {
    #[error("--timeout needs a duration")]
    TimeoutWithoutValue,
    #[error("--timeout: {0}")]
    Timeout(String),
    #[error("`{0}` needs an app")]
    NoApp(String),
    #[error("`{verb}` takes one app (got {got})")]
    SeveralApps { verb: String, got: String },
    #[error("`{0}` takes nothing after it")]
    Extra(String),
    #[error("--lines takes a number")]
    Lines,
    #[error("`logs` on a fleet takes --lines only (got {0})")]
    LogsOption(String),
    #[error("`{0}` is not a fleet command")]
    Unknown(String),
    #[error("`errors` needs an exception inbox, which Kelpie does not have yet: `events` lists every host's exits, with their causes")]
    NoErrorsYet,
}

/// Run `kelpie fleet`.
pub(crate) fn fleet(args: FleetArgs) -> Result<ExitCode> {
    let args = match options_among_words(args) {
        Ok(args) => args,
        Err(why) => {
            eprintln!("kelpie: error: fleet: {why}\n\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut words = args.words.iter().map(String::as_str).peekable();
    let file = words
        .next_if(|word| super::words::is_config_file(word))
        .map(str::to_string);
    let (Some(env), Some(verb)) = (words.next(), words.next()) else {
        eprintln!("kelpie: error: fleet: which env, and which command?\n\n{USAGE}");
        return Ok(ExitCode::from(2));
    };
    let rest: Vec<&str> = words.collect();
    let command = match parse(verb, &rest) {
        Ok(command) => command,
        Err(why) => {
            eprintln!("kelpie: error: fleet: {why}\n\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (target, file) = super::load_target(&cwd, file, env)?;
    let run = Run::new(target, &file, args.json)?;
    let remote = match &command {
        FleetCommand::List | FleetCommand::Jlist => "kelpie jlist".to_string(),
        FleetCommand::Text { command, .. } => command.clone(),
    };
    let answers = run.each(|connection| ask(&run, connection, &remote, args.timeout));
    run.close();
    let every_host_answered = answers.iter().all(|a| a.result == Ok(0));
    match (&command, args.json) {
        (FleetCommand::List | FleetCommand::Jlist, json) => {
            let merged = merge_jlists(&run.connections, &answers);
            if json || command == FleetCommand::Jlist {
                outln!("{}", Value::Array(merged));
            } else {
                print_table(&run.connections, &merged);
            }
        }
        (FleetCommand::Text { .. }, true) => {
            let hosts: Vec<Value> = run
                .connections
                .iter()
                .zip(&answers)
                .map(|(connection, answer)| {
                    serde_json::json!({
                        "host": connection.label,
                        "status": answer.result.as_ref().ok(),
                        "error": answer.result.as_ref().err().map(ToString::to_string),
                        "output": answer.lines,
                        "stderr": answer.stderr,
                    })
                })
                .collect();
            outln!("{}", Value::Array(hosts));
        }
        (FleetCommand::Text { prefixed, .. }, false) => {
            print_outputs(&run.connections, &answers, *prefixed)
        }
    }
    report_failures(&run.connections, &answers, &command);
    Ok(if every_host_answered {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--json` and `--timeout` typed after the words (the words take everything after the
/// env, as `deploy`'s do), taken out of them.
fn options_among_words(mut args: FleetArgs) -> Result<FleetArgs, WordsError> {
    let mut words = Vec::new();
    let mut given = std::mem::take(&mut args.words).into_iter();
    while let Some(word) = given.next() {
        let timeout = match word.as_str() {
            "--json" => {
                args.json = true;
                continue;
            }
            "--timeout" => given.next().ok_or(WordsError::TimeoutWithoutValue)?,
            other => match other.strip_prefix("--timeout=") {
                Some(value) => value.to_string(),
                None => {
                    words.push(word);
                    continue;
                }
            },
        };
        args.timeout =
            crate::cli::parse_duration(&timeout).map_err(|e| WordsError::Timeout(e.to_string()))?;
    }
    args.words = words;
    Ok(args)
}

/// The command's words, read.
fn parse(verb: &str, rest: &[&str]) -> Result<FleetCommand, WordsError> {
    let quoted = |words: &[&str]| {
        words
            .iter()
            .map(|w| super::remote::quote(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let one_app = |verb: &str| match rest {
        [app] => Ok(format!("kelpie {verb} {}", super::remote::quote(app))),
        [] => Err(WordsError::NoApp(verb.to_string())),
        _ => Err(WordsError::SeveralApps {
            verb: verb.to_string(),
            got: rest.join(" "),
        }),
    };
    match verb {
        "list" | "ls" | "l" | "status" | "ps" if rest.is_empty() => Ok(FleetCommand::List),
        "jlist" if rest.is_empty() => Ok(FleetCommand::Jlist),
        "list" | "ls" | "l" | "status" | "ps" | "jlist" => Err(WordsError::Extra(verb.to_string())),
        "describe" | "show" | "info" | "desc" => Ok(FleetCommand::Text {
            command: one_app("describe")?,
            prefixed: false,
        }),
        "start" | "stop" | "restart" | "reload" => Ok(FleetCommand::Text {
            command: one_app(verb)?,
            prefixed: false,
        }),
        "logs" | "log" => {
            let mut app = None;
            let mut lines = "15".to_string();
            let mut words = rest.iter();
            while let Some(word) = words.next() {
                match *word {
                    "--lines" | "-n" => {
                        lines = words
                            .next()
                            .filter(|n| n.parse::<u32>().is_ok())
                            .ok_or(WordsError::Lines)?
                            .to_string();
                    }
                    "--nostream" => {}
                    word if word.starts_with('-') => {
                        return Err(WordsError::LogsOption(word.to_string()))
                    }
                    word if app.is_none() => app = Some(word),
                    word => {
                        return Err(WordsError::SeveralApps {
                            verb: "logs".into(),
                            got: format!("{} {word}", app.unwrap_or_default()),
                        })
                    }
                }
            }
            let app = app
                .map(|a| format!(" {}", quoted(&[a])))
                .unwrap_or_default();
            Ok(FleetCommand::Text {
                command: format!("kelpie logs{app} --lines {lines} --nostream"),
                prefixed: true,
            })
        }
        "events" => match rest {
            [] => Ok(FleetCommand::Text {
                command: "kelpie events".into(),
                prefixed: true,
            }),
            [_] => Ok(FleetCommand::Text {
                command: one_app("events")?,
                prefixed: true,
            }),
            _ => Err(WordsError::SeveralApps {
                verb: "events".into(),
                got: rest.join(" "),
            }),
        },
        "errors" => Err(WordsError::NoErrorsYet),
        other => Err(WordsError::Unknown(other.to_string())),
    }
}

/// Run `remote` on one host; its output kept, not shown.
fn ask(run: &Run, connection: &Connection, remote: &str, timeout: Duration) -> HostAnswer {
    let lines = Mutex::new(Vec::new());
    let outcome = connection.run_within(
        &run.prelude(connection).fleet(remote),
        &|seen| {
            if let Seen::Line(text) = seen {
                lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(text.to_string());
            }
        },
        Some(timeout),
    );
    let stderr: Vec<String> = outcome
        .reports
        .iter()
        .filter(|(word, _)| word == "stderr")
        .map(|(_, line)| line.clone())
        .collect();
    let result = status_of(run, connection, &outcome, timeout);
    HostAnswer {
        lines: lines.into_inner().unwrap_or_else(|p| p.into_inner()),
        stderr,
        result,
    }
}

/// The remote command's status, or why it has none (unreachable, timed out).
fn status_of(
    run: &Run,
    connection: &Connection,
    outcome: &Outcome,
    timeout: Duration,
) -> Result<i32, NoAnswer> {
    if outcome.timed_out {
        return Err(NoAnswer::TimedOut(timeout));
    }
    match outcome.report("exit").and_then(|s| s.trim().parse().ok()) {
        Some(127) => Err(NoAnswer::NoKelpie),
        Some(code) => Ok(code),
        None => Err(NoAnswer::Unreachable(run.explain(connection, outcome))),
    }
}

/// Every host's `jlist`, each process with its `host` (hosts that did not answer left out).
fn merge_jlists(connections: &[Connection], answers: &[HostAnswer]) -> Vec<Value> {
    let mut merged = Vec::new();
    for (connection, answer) in connections.iter().zip(answers) {
        if answer.result != Ok(0) {
            continue;
        }
        // The last line that is a JSON array (a login shell may print before it).
        let list = answer
            .lines
            .iter()
            .rev()
            .find_map(|line| serde_json::from_str::<Vec<Value>>(line).ok())
            .unwrap_or_default();
        for mut process in list {
            if let Some(fields) = process.as_object_mut() {
                fields.insert("host".into(), Value::String(connection.label.clone()));
            }
            merged.push(process);
        }
    }
    merged
}

/// The merged list as one table, `list`'s columns after a host column.
fn print_table(connections: &[Connection], merged: &[Value]) {
    let now_ms = crate::render::format::now_ms();
    let headers = [
        "host", "id", "name", "mode", "pid", "uptime", "↺", "status", "cpu", "mem",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for process in merged {
        let env = &process["pm2_env"];
        let text = |value: &Value| visible(value.as_str().unwrap_or_default()).into_owned();
        let number = |value: &Value| value.as_u64().unwrap_or(0);
        let status = text(&env["status"]);
        let uptime = if status == "online" {
            crate::render::format::short_duration(now_ms.saturating_sub(number(&env["pm_uptime"])))
        } else {
            "0".into()
        };
        rows.push(vec![
            text(&process["host"]),
            number(&process["pm_id"]).to_string(),
            text(&process["name"]),
            text(&env["exec_mode"])
                .trim_end_matches("_mode")
                .to_string(),
            number(&process["pid"]).to_string(),
            uptime,
            number(&env["restart_time"]).to_string(),
            status,
            format!("{}%", process["monit"]["cpu"].as_f64().unwrap_or(0.0)),
            crate::render::format::bytes(number(&process["monit"]["memory"])),
        ]);
    }
    if rows.is_empty() && !connections.is_empty() {
        outln!("[kelpie] no app on any host that answered");
        return;
    }
    let widths: Vec<usize> = (0..headers.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([headers[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    outln!("{}", line(headers.to_vec()));
    for row in &rows {
        outln!("{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// Each host's output: under its name, or each line prefixed with it.
fn print_outputs(connections: &[Connection], answers: &[HostAnswer], prefixed: bool) {
    for (connection, answer) in connections.iter().zip(answers) {
        let Ok(status) = &answer.result else { continue };
        if !prefixed {
            let said = if *status == 0 {
                String::new()
            } else {
                format!(" (exit {status})")
            };
            outln!("=== {}{said}", connection.label);
        }
        for text in answer.lines.iter().chain(&answer.stderr) {
            let text = visible(text);
            if prefixed {
                outln!("[{}] {text}", connection.label);
            } else {
                outln!("{text}");
            }
        }
    }
}

/// On stderr: each host that did not answer, and why; for `list` and `jlist`, what a host
/// that answered with a failure said.
fn report_failures(connections: &[Connection], answers: &[HostAnswer], command: &FleetCommand) {
    for (connection, answer) in connections.iter().zip(answers) {
        match &answer.result {
            Err(why) => eprintln!(
                "[kelpie] {}: {}",
                connection.label,
                visible(&why.to_string())
            ),
            Ok(0) => {}
            Ok(status) if !matches!(command, FleetCommand::Text { .. }) => {
                let said = answer.stderr.last().map(String::as_str).unwrap_or_default();
                eprintln!(
                    "[kelpie] {}: kelpie jlist exited with status {status}: {}",
                    connection.label,
                    visible(said)
                );
            }
            Ok(_) => {}
        }
    }
    let failed = answers.iter().filter(|a| a.result.is_err()).count();
    if failed > 0 {
        eprintln!(
            "[kelpie] {failed} of {} hosts did not answer",
            connections.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_into_what_runs_on_each_host() {
        let text = |command: &str, prefixed| FleetCommand::Text {
            command: command.into(),
            prefixed,
        };
        assert_eq!(parse("ls", &[]), Ok(FleetCommand::List));
        assert_eq!(
            parse("jlist", &["x"]),
            Err(WordsError::Extra("jlist".into()))
        );
        assert_eq!(
            parse("reload", &["api"]),
            Ok(text("kelpie reload 'api'", false))
        );
        assert_eq!(parse("stop", &[]), Err(WordsError::NoApp("stop".into())));
        assert_eq!(
            parse("logs", &["api", "--lines", "5"]),
            Ok(text("kelpie logs 'api' --lines 5 --nostream", true))
        );
        assert_eq!(parse("events", &[]), Ok(text("kelpie events", true)));
        assert_eq!(parse("errors", &[]), Err(WordsError::NoErrorsYet));
        assert_eq!(parse("rm", &["api"]), Err(WordsError::Unknown("rm".into())));
    }
}
