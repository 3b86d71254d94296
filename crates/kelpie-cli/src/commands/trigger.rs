//! `trigger <target> <action> [param]`: PM2's way to run an action an app registered with its
//! SDK (`io.action('name', (reply) => ...)` of @pm2/io, pmx, tx2). The action goes over each
//! running instance's IPC channel as PM2 sends it (the bare name, or `{msg, opts, name}` with a
//! parameter); each reply comes back on the bus as `axm:reply` and is printed as PM2 prints it,
//! `[name:id:namespace]=<the reply as JSON>`.

use super::call;
use super::inspect::{processes, select};
use crate::client::Client;
use crate::exit::{failed, Status};
use anyhow::Result;
use kelpie_proto::{Home, ProcessInfo, Request, Response, Target};
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub fn trigger(
    home: &Home,
    target_text: &str,
    action: &str,
    param: Option<&str>,
    timeout: Duration,
) -> Result<ExitCode> {
    let target = super::parse_target(target_text)?;
    let list = processes(home)?;
    let receivers: Vec<&ProcessInfo> = select(&list, &target)?
        .into_iter()
        .filter(|p| p.state.status.has_process() && p.sdk.has_action(action))
        .collect();
    if receivers.is_empty() {
        return Err(failed(
            Status::NotFound,
            format!(
                "Not any process has received a command: no running instance of {} registered the action `{action}` (apps register actions with @pm2/io's `io.action`)",
                target.describe()
            ),
        ));
    }
    // Listening before anything is sent, so that no reply can come first.
    let mut bus = Client::connect_or_start(home)?;
    bus.send(&Request::Events)?;
    wait_until_subscribed(&mut bus)?;
    let message = match param {
        None => serde_json::json!(action),
        Some(param) => serde_json::json!({"msg": action, "opts": param, "name": target_text}),
    };
    call(
        home,
        &Request::SendMessage {
            targets: receivers.iter().map(|p| Target::Id(p.pm_id)).collect(),
            message,
        },
    )?;
    outln!(
        "{} processes have received command {action}",
        receivers.len()
    );
    let mut waiting: BTreeSet<u32> = receivers.iter().map(|p| p.pm_id).collect();
    let deadline = Instant::now() + timeout;
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        bus.set_read_timeout(Some(left))?;
        let Ok(Response::Event(event)) = bus.receive() else {
            break;
        };
        let Some(data) = event.data.as_ref().filter(|_| event.event == "message") else {
            continue;
        };
        let is_reply = data["type"] == "axm:reply" && data["data"]["action_name"] == action;
        if is_reply && waiting.remove(&event.pm_id) {
            let reply = serde_json::to_string(&data["data"]["return"])?;
            outln!(
                "[{}:{}:{}]={reply}",
                event.name,
                event.pm_id,
                event.namespace
            );
        }
    }
    if waiting.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let silent: Vec<String> = waiting.iter().map(u32::to_string).collect();
    Err(failed(
        Status::Failure,
        format!(
            "no reply to `{action}` within {} s from id {}",
            timeout.as_secs(),
            silent.join(", ")
        ),
    ))
}

/// The bus's first event says the subscription is in place.
fn wait_until_subscribed(bus: &mut Client) -> Result<()> {
    bus.set_read_timeout(Some(Duration::from_secs(10)))?;
    loop {
        match bus.receive()? {
            Response::Event(event) if event.event == "subscribed" => return Ok(()),
            Response::Event(_) => {}
            Response::Error(e) => return Err(crate::exit::from_wire(&e)),
            other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
}
