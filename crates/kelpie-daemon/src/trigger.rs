//! `trigger`: run an action that running processes registered with their PM2 SDK (`@pm2/io`'s
//! `io.action`, pmx, tx2), as PM2's `trigger` does, and collect the replies. The action goes
//! over each process's IPC channel as PM2 sends it (the bare name, or `{msg, opts, name}` with a
//! parameter); each reply comes back as an `axm:reply` message on the bus.
//!
//! Answered by the connection that asked (control socket, HTTP API), not by the supervisor:
//! it waits for the processes, and the supervisor waits for nobody.

use crate::bus::Bus;
use crate::supervisor_channel::{ask, Command};
use kelpie_proto::TriggerRequest;
use kelpie_proto::{
    resolve_targets, ErrorKind, ProcessInfo, Request, Response, Target, Targetable, TriggerReply,
    Triggered, WireError,
};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Longest wait for the replies a client may ask for.
pub(crate) const TIMEOUT_MAX: Duration = Duration::from_secs(600);

/// Send the action to the target's running processes that registered it, then wait until each
/// replied or the time ran out: who received it and what each replied, or why nobody could.
pub(crate) async fn trigger(
    commands: &mpsc::Sender<Command>,
    bus: &Bus,
    request: TriggerRequest,
) -> Response {
    let list = match ask(commands, Request::List).await {
        Response::Processes(list) => list,
        Response::Error(e) => return Response::Error(e),
        other => return failure(ErrorKind::Internal, format!("unexpected answer: {other:?}")),
    };
    let received = match receivers(&list, &request) {
        Ok(received) => received,
        Err(refused) => return Response::Error(refused),
    };
    // Listening before anything is sent, so that no reply can come first.
    let mut events = bus.subscribe();
    let message = match &request.param {
        None => serde_json::json!(request.action),
        Some(param) => {
            serde_json::json!({"msg": request.action, "opts": param, "name": received[0].name})
        }
    };
    let targets = received.iter().map(|r| Target::Id(r.pm_id)).collect();
    if let Response::Error(e) = ask(
        commands,
        Request::SendMessage(kelpie_proto::SendMessageRequest { targets, message }),
    )
    .await
    {
        return Response::Error(e);
    }
    let mut triggered = Triggered {
        action: request.action,
        received,
        replies: Vec::new(),
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(request.timeout_ms).min(TIMEOUT_MAX);
    while triggered.replies.len() < triggered.received.len() {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => event,
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
        };
        let Some(data) = event.data.as_ref().filter(|_| event.event == "message") else {
            continue;
        };
        let is_reply =
            data["type"] == "axm:reply" && data["data"]["action_name"] == triggered.action;
        let replied = triggered.replies.iter().any(|r| r.pm_id == event.pm_id);
        let asked = triggered.received.iter().find(|r| r.pm_id == event.pm_id);
        if let (true, false, Some(asked)) = (is_reply, replied, asked) {
            triggered.replies.push(TriggerReply {
                reply: data["data"]["return"].clone(),
                ..asked.clone()
            });
        }
    }
    Response::Triggered(triggered)
}

/// The target's running processes that registered the action; an error when there are none.
fn receivers(
    list: &[ProcessInfo],
    request: &TriggerRequest,
) -> Result<Vec<TriggerReply>, WireError> {
    let instances: Vec<Targetable<'_>> = list.iter().map(ProcessInfo::targetable).collect();
    let Ok(ids) = resolve_targets(std::slice::from_ref(&request.target), &instances) else {
        return Err(WireError {
            kind: ErrorKind::NotFound,
            message: format!("no app matches {}", request.target.describe()),
        });
    };
    let received: Vec<TriggerReply> = list
        .iter()
        .filter(|p| ids.contains(&p.pm_id))
        .filter(|p| p.state.status.has_process() && p.sdk.has_action(&request.action))
        .map(|p| TriggerReply {
            pm_id: p.pm_id,
            name: p.spec.name.clone(),
            namespace: p.spec.namespace.clone(),
            reply: serde_json::Value::Null,
        })
        .collect();
    if received.is_empty() {
        return Err(WireError {
            kind: ErrorKind::NotFound,
            message: format!(
                "Not any process has received a command: no running instance of {} registered the action `{}` (apps register actions with @pm2/io's `io.action`)",
                request.target.describe(),
                request.action
            ),
        });
    }
    Ok(received)
}

fn failure(kind: ErrorKind, message: String) -> Response {
    Response::Error(WireError { kind, message })
}
