//! `kelpie notify [test]`: the targets of `[[notify]]` in kelpie.toml, each with what it was
//! sent, what failed and what was dropped; `test` reads kelpie.toml again and sends each a test
//! message. Addresses come masked from the daemon; what a receiver answered is made printable.

use super::call;
use crate::render::monit::printable;
use anyhow::Result;
use kelpie_proto::{Home, NotifyRequest, Request, Response};
use std::process::ExitCode;

pub(super) fn notify(home: &Home, test: bool, json: bool) -> Result<ExitCode> {
    let request = Request::Notify(match test {
        true => NotifyRequest::Test,
        false => NotifyRequest::Status,
    });
    let Response::Json(answer) = call(home, &request)? else {
        anyhow::bail!("the daemon answered `notify` with something else than its targets");
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    }
    let targets = answer["targets"].as_array().cloned().unwrap_or_default();
    let failed_test = targets.iter().any(|t| t["test"]["ok"] == false);
    if json {
        return Ok(exit_code(failed_test));
    }
    if targets.is_empty() {
        outln!("[kelpie] no notification targets: add a `[[notify]]` table to {} (docs/notifications.md)", home.settings_file().display());
        return Ok(ExitCode::SUCCESS);
    }
    for target in &targets {
        let shown = printable(target["target"].as_str().unwrap_or(""));
        let count = |key: &str| target[key].as_u64().unwrap_or(0);
        outln!(
            "{shown}: {} sent, {} failed, {} dropped, {} held back",
            count("sent"),
            count("failed"),
            count("dropped"),
            count("held_back")
        );
        match &target["test"] {
            serde_json::Value::Null => {}
            test if test["ok"] == true => {
                outln!(
                    "  test: ok ({})",
                    printable(test["answer"].as_str().unwrap_or(""))
                );
            }
            test => outln!(
                "  test: FAILED: {}",
                printable(test["error"].as_str().unwrap_or(""))
            ),
        }
        if let Some(error) = target["last_error"]
            .as_str()
            .filter(|_| target["test"].is_null())
        {
            outln!("  last error: {}", printable(error));
        }
    }
    let dropped = answer["dropped"].as_u64().unwrap_or(0);
    if dropped > 0 {
        outln!("[kelpie] {dropped} events were dropped before any target: the notifier was behind");
    }
    Ok(exit_code(failed_test))
}

/// A test that failed is a failure of the command.
fn exit_code(failed_test: bool) -> ExitCode {
    match failed_test {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    }
}
