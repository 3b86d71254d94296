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

/// Lines of a group's stack printed (all of it with `--json`).
const STACK_LINES: usize = 6;

/// `kelpie errors [app] [--json] [--clear]`: the exception inbox.
pub(super) fn errors(
    home: &Home,
    app: Option<String>,
    json: bool,
    clear: bool,
) -> Result<ExitCode> {
    let request = Request::Errors(kelpie_proto::ErrorsRequest {
        app: app.clone(),
        clear,
    });
    let Response::Json(answer) = call(home, &request)? else {
        anyhow::bail!("the daemon answered `errors` with something else than its groups");
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&answer["groups"])?);
        return Ok(ExitCode::SUCCESS);
    }
    let groups = answer["groups"].as_array().cloned().unwrap_or_default();
    let whose = app
        .as_deref()
        .map(|a| format!(" of {}", printable(a)))
        .unwrap_or_default();
    if groups.is_empty() {
        outln!("[kelpie] no exception recorded{whose}");
    }
    for group in &groups {
        print_group(group);
    }
    if clear {
        outln!(
            "[kelpie] cleared {} groups{whose}",
            answer["cleared"].as_u64().unwrap_or(0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One group: its type and message, its figures, the start of its last stack.
fn print_group(group: &serde_json::Value) {
    let text = |key: &str| printable(group[key].as_str().unwrap_or(""));
    let when = |key: &str| {
        group[key]
            .as_i64()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    outln!(
        "[{}] {}: {}",
        text("fingerprint"),
        text("type"),
        text("message")
    );
    let apps: Vec<String> = group["apps"]
        .as_object()
        .map(|apps| {
            apps.iter()
                .map(|(app, n)| format!("{} ({n})", printable(app)))
                .collect()
        })
        .unwrap_or_default();
    outln!(
        "  {} · {} times · first {} · last {} · {}",
        text("language"),
        group["count"].as_u64().unwrap_or(0),
        when("first_seen_ms"),
        when("last_seen_ms"),
        apps.join(", ")
    );
    let stack = group["stack"].as_str().unwrap_or("");
    for line in stack.lines().take(STACK_LINES) {
        outln!("    {}", printable(line));
    }
}

/// `describe`'s part: each app's exception groups in a line, and the one seen last.
pub(super) fn describe_exceptions(home: &Home, apps: &[&str]) -> Result<()> {
    for app in apps {
        let request = Request::Errors(kelpie_proto::ErrorsRequest {
            app: Some(app.to_string()),
            clear: false,
        });
        let Response::Json(answer) = call(home, &request)? else {
            continue;
        };
        let groups = answer["groups"].as_array().cloned().unwrap_or_default();
        let Some(last) = groups.first() else {
            outln!("Exceptions of {}: none recorded", printable(app));
            continue;
        };
        let total: u64 = groups
            .iter()
            .map(|g| g["apps"][*app].as_u64().unwrap_or(0))
            .sum();
        outln!(
            "Exceptions of {}: {total} in {} groups; the last: {}: {} (`kelpie errors {}`)",
            printable(app),
            groups.len(),
            printable(last["type"].as_str().unwrap_or("")),
            printable(last["message"].as_str().unwrap_or("")),
            printable(app)
        );
    }
    Ok(())
}
