//! `trigger <target> <action> [param]`: PM2's way to run an action an app registered with its
//! SDK (`io.action('name', (reply) => ...)` of @pm2/io, pmx, tx2). The daemon sends it to each
//! running instance that registered it and collects the replies (`kelpie_daemon`'s `trigger`,
//! shared with the HTTP API); they are printed as PM2 prints them,
//! `[name:id:namespace]=<the reply as JSON>`.

use super::call;
use crate::exit::{failed, Status};
use anyhow::Result;
use kelpie_proto::{Home, Request, Response};
use std::process::ExitCode;
use std::time::Duration;

pub(super) fn trigger(
    home: &Home,
    target_text: &str,
    action: &str,
    param: Option<&str>,
    timeout: Duration,
) -> Result<ExitCode> {
    let request = Request::Trigger(kelpie_proto::TriggerRequest {
        target: super::parse_target(target_text)?,
        action: action.to_string(),
        param: param.map(str::to_string),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    });
    let Response::Triggered(triggered) = call(home, &request)? else {
        anyhow::bail!("unexpected answer from the daemon to `trigger`");
    };
    outln!(
        "{} processes have received command {action}",
        triggered.received.len()
    );
    for reply in &triggered.replies {
        outln!(
            "[{}:{}:{}]={}",
            reply.name,
            reply.pm_id,
            reply.namespace,
            serde_json::to_string(&reply.reply)?
        );
    }
    let silent = triggered.silent();
    if silent.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let silent: Vec<String> = silent.iter().map(u32::to_string).collect();
    Err(failed(
        Status::Failure,
        format!(
            "no reply to `{action}` within {} s from id {}",
            timeout.as_secs(),
            silent.join(", ")
        ),
    ))
}
