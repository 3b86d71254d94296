//! The parts of the profiles processes send (`crate::inspection`), on their way from each
//! process's link to whoever waits for that request: below both, so that the link knows
//! nothing of inspections.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Parts waiting to be taken, per request: a few, so a slow reader holds the process back
/// rather than letting its profile pile up in the daemon.
const PARTS_QUEUED: usize = 8;
/// How long a part waits for room before the request is taken as abandoned.
const PART_WAIT: Duration = Duration::from_secs(30);

/// What a process sent for a request.
#[derive(Debug)]
pub enum Part {
    /// Text of the profile, in order.
    Text(String),
    /// How it ended: `{"bytes", "pause_ms"}`, `{"url"}`, or `{"error"}`.
    End(serde_json::Value),
}

/// Who waits for which request's parts.
static WAITING: Mutex<Option<HashMap<u64, mpsc::Sender<Part>>>> = Mutex::new(None);

fn waiting() -> std::sync::MutexGuard<'static, Option<HashMap<u64, mpsc::Sender<Part>>>> {
    WAITING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `message` (from a process's IPC channel) is part of an answer to an inspection.
pub fn is_part(message: &serde_json::Value) -> bool {
    matches!(
        message.get("kelpie").and_then(|k| k.as_str()),
        Some("profile-part" | "profile-end")
    )
}

/// Hand a part ([`is_part`]) to whoever waits for its request; dropped when nobody does.
pub async fn deliver(mut message: serde_json::Value) {
    let Some(id) = message.get("id").and_then(serde_json::Value::as_u64) else {
        return;
    };
    let Some(to) = waiting().as_ref().and_then(|w| w.get(&id).cloned()) else {
        return;
    };
    let part = match message.get("kelpie").and_then(|k| k.as_str()) {
        Some("profile-part") => match message.get_mut("data").map(serde_json::Value::take) {
            Some(serde_json::Value::String(text)) => Part::Text(text),
            _ => return,
        },
        _ => {
            if let Some(fields) = message.as_object_mut() {
                fields.remove("kelpie");
                fields.remove("id");
            }
            Part::End(message)
        }
    };
    if tokio::time::timeout(PART_WAIT, to.send(part))
        .await
        .is_err()
    {
        // Nobody took parts for that long: the request is abandoned, the rest dropped.
        forget(id);
    }
}

pub fn forget(id: u64) {
    if let Some(waiting) = waiting().as_mut() {
        waiting.remove(&id);
    }
}

/// Start waiting for the parts of request `id`.
pub fn wait_for(id: u64) -> mpsc::Receiver<Part> {
    let (tx, parts) = mpsc::channel(PARTS_QUEUED);
    waiting().get_or_insert_with(HashMap::new).insert(id, tx);
    parts
}
