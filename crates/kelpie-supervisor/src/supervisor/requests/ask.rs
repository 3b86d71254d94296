//! `sendSignal`, `sendDataToProcessId` and `send`: asking each targeted instance to do something to its
//! process, and answering how many did.

use crate::instance::refusal::NotDelivered;
use crate::instance::InstanceMsg;
use crate::supervisor::apps::Apps;
use crate::supervisor::failure::Failure;
use crate::supervisor::pending::{Back, PendingWork};
use crate::supervisor::refusal::Refusal;
use crate::supervisor::requests::fail;
use crate::supervisor_channel::{Finish, Reply};
use kelpie_proto::Target;
use std::sync::Arc;
use tokio::sync::oneshot;

pub(super) fn send_signal(
    (apps, pending): (&Apps, &mut PendingWork),
    signal: &str,
    targets: &[Target],
    reply: oneshot::Sender<Reply>,
) {
    let Some(number) = kelpie_sys::signal_number(signal) else {
        return fail(reply, Refusal::UnknownSignal(signal.to_string()));
    };
    let what = format!("sent {}", kelpie_sys::signal_name(number));
    ask_each((apps, pending), targets, what, reply, |tx| {
        InstanceMsg::Signal(number, tx)
    });
}

/// PM2's `sendDataToProcessId`: a JSON message to processes over their Node IPC channel.
pub(super) fn send_message(
    (apps, pending): (&Apps, &mut PendingWork),
    targets: &[Target],
    message: serde_json::Value,
    reply: oneshot::Sender<Reply>,
) {
    let message = Arc::new(message);
    ask_each(
        (apps, pending),
        targets,
        "sent the message".into(),
        reply,
        |tx| InstanceMsg::SendMessage(Arc::clone(&message), tx),
    );
}

/// `send` and `attach`: text to the stdin of each targeted process (fork mode).
pub(super) fn send_line(
    (apps, pending): (&Apps, &mut PendingWork),
    targets: &[Target],
    text: String,
    reply: oneshot::Sender<Reply>,
) {
    let text = Arc::new(text);
    ask_each(
        (apps, pending),
        targets,
        "sent the line".into(),
        reply,
        |tx| InstanceMsg::SendLine(Arc::clone(&text), tx),
    );
}

/// Ask each targeted instance to do something to its process, and answer how many did
/// (`what` to N processes) or, when some could not, why.
fn ask_each(
    (apps, pending): (&Apps, &mut PendingWork),
    targets: &[Target],
    what: String,
    reply: oneshot::Sender<Reply>,
    ask: impl Fn(oneshot::Sender<Result<(), NotDelivered>>) -> InstanceMsg,
) {
    let ids = match apps.resolve_some(targets) {
        Ok(ids) => ids,
        Err(refusal) => return fail(reply, refusal),
    };
    let results: Vec<oneshot::Receiver<Result<(), NotDelivered>>> = ids
        .iter()
        .map(|id| {
            let (tx, rx) = oneshot::channel();
            apps.send(*id, ask(tx));
            rx
        })
        .collect();
    pending.spawn(async move {
        let mut sent = 0;
        let mut errors = Vec::new();
        for result in results {
            match result.await {
                Ok(Ok(())) => sent += 1,
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(_) => errors.push("the app was deleted meanwhile".into()),
            }
        }
        let finish = if errors.is_empty() {
            Finish::Done(format!(
                "{what} to {sent} process{}",
                if sent == 1 { "" } else { "es" }
            ))
        } else {
            Finish::Failed(Failure::NotAllSent { what, sent, errors }.into())
        };
        Back::Answer { finish, reply }
    });
}
