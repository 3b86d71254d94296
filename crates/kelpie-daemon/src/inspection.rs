//! `kelpie profile cpu|heap` and `kelpie inspect`: a running Node process's CPU profile, heap
//! snapshot or inspector, through the Kelpie shim every Node app loads (node-shim.js). The
//! request goes to the process over its IPC channel as an internal message
//! (`{"cmd": "NODE_KELPIE_INSPECT", "id", ...}`, which the app's own `message` handlers never
//! see); the shim answers with `{"kelpie": "profile-part", "id", "data"}` messages carrying the
//! profile's text in order, then `{"kelpie": "profile-end", "id", ...}`. The process's link
//! hands them to `profile_parts`, for whoever waits for that request: a `kelpie` client or a
//! web download, which stream the text on as it comes (nothing is kept on disk or in memory
//! beyond a few parts). The wait is bounded: a client that reads slowly slows the process's
//! sending (its IPC writes wait), one that went away makes the rest be dropped.
//!
//! Answered by the connection that asked, not by the supervisor: it waits for the process.

use crate::profile_parts::{self, Part};
use crate::supervisor_channel::{ask, Command};
use kelpie_proto::{
    resolve_targets, ErrorKind, InspectAction, InspectRequest, ProcessInfo, Request, Response,
    Target, Targetable, WireError,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the process may be silent between two parts (a heap snapshot of a large heap
/// takes seconds to make before its first part).
const SILENCE_MAX: Duration = Duration::from_secs(120);

/// An inspection under way: the process asked, its parts to take.
pub(crate) struct Inspection {
    /// The process looked into.
    pub pm_id: u32,
    pub name: String,
    pub pid: u32,
    id: u64,
    parts: mpsc::Receiver<Part>,
}

impl Drop for Inspection {
    fn drop(&mut self) {
        profile_parts::forget(self.id);
    }
}

impl Inspection {
    /// The next part, or why none came (the process was silent too long, or went away).
    pub(crate) async fn next(&mut self) -> Result<Part, WireError> {
        match tokio::time::timeout(SILENCE_MAX, self.parts.recv()).await {
            Ok(Some(part)) => Ok(part),
            Ok(None) => Err(failure(ErrorKind::Internal, "the inspection was dropped".into())),
            Err(_) => Err(failure(
                ErrorKind::Internal,
                format!(
                    "`{}` (id {}) sent nothing for {} s: did its process exit, or is its event loop blocked?",
                    self.name,
                    self.pm_id,
                    SILENCE_MAX.as_secs()
                ),
            )),
        }
    }
}

/// Ask the process `request` names to do its action; its parts come through the answer.
pub(crate) async fn begin(
    commands: &mpsc::Sender<Command>,
    request: &InspectRequest,
) -> Result<Inspection, WireError> {
    let list = match ask(commands, Request::List).await {
        Response::Processes(list) => list,
        Response::Error(e) => return Err(e),
        other => {
            return Err(failure(
                ErrorKind::Internal,
                format!("unexpected answer: {other:?}"),
            ))
        }
    };
    let process = chosen(&list, &request.target)?;
    let id = request_number();
    let parts = profile_parts::wait_for(id);
    let inspection = Inspection {
        pm_id: process.pm_id,
        name: process.spec.name.clone(),
        pid: process.state.pid.unwrap_or(0),
        id,
        parts,
    };
    let message = message(id, request.action);
    let sent = ask(
        commands,
        Request::SendMessage(kelpie_proto::SendMessageRequest {
            targets: vec![Target::Id(process.pm_id)],
            message,
        }),
    )
    .await;
    match sent {
        Response::Error(e) => Err(e),
        _ => Ok(inspection),
    }
}

/// The message the shim acts on.
fn message(id: u64, action: InspectAction) -> serde_json::Value {
    let cmd = "NODE_KELPIE_INSPECT";
    match action {
        InspectAction::CpuProfile {
            duration_ms,
            interval_us,
        } => serde_json::json!({
            "cmd": cmd, "id": id, "action": "cpu", "ms": duration_ms, "interval_us": interval_us,
        }),
        InspectAction::HeapSnapshot => serde_json::json!({"cmd": cmd, "id": id, "action": "heap"}),
        InspectAction::OpenInspector { port, open_ms } => serde_json::json!({
            "cmd": cmd, "id": id, "action": "open", "port": port, "host": "127.0.0.1", "ms": open_ms,
        }),
        InspectAction::CloseInspector => {
            serde_json::json!({"cmd": cmd, "id": id, "action": "close"})
        }
    }
}

/// The process `target` names: an id, or an app's lowest id; it must run Node with the shim.
fn chosen<'a>(list: &'a [ProcessInfo], target: &Target) -> Result<&'a ProcessInfo, WireError> {
    let instances: Vec<Targetable<'_>> = list.iter().map(ProcessInfo::targetable).collect();
    let ids = resolve_targets(std::slice::from_ref(target), &instances).unwrap_or_default();
    let Some(process) = ids
        .iter()
        .min()
        .and_then(|id| list.iter().find(|p| p.pm_id == *id))
    else {
        return Err(failure(
            ErrorKind::NotFound,
            format!("no app matches {}", target.describe()),
        ));
    };
    if !process.spec.runs_on_node() {
        return Err(failure(
            ErrorKind::Invalid,
            format!(
                "`{}` (id {}) does not run on Node.js (it runs {}): profiles and the inspector are those of Node apps Kelpie starts with node, through its shim; for another runtime, use its own profiler (py-spy, pprof, rbspy...)",
                process.spec.name,
                process.pm_id,
                process.spec.command_line().first().map_or("?", String::as_str)
            ),
        ));
    }
    if !process.state.status.has_process() {
        return Err(failure(
            ErrorKind::Conflict,
            format!(
                "`{}` (id {}) is {}: start it first",
                process.spec.name,
                process.pm_id,
                process.state.status.as_str()
            ),
        ));
    }
    Ok(process)
}

/// A number another process cannot guess (an app that sent parts for another's request would
/// have them written into that profile).
fn request_number() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // JSON numbers are read as doubles by the shim: 53 bits survive.
    hasher.finish() & ((1 << 53) - 1)
}

fn failure(kind: ErrorKind, message: String) -> WireError {
    WireError { kind, message }
}
