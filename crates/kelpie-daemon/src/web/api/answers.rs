//! Asking the supervisor as the control socket does, and its answer as JSON (environment values
//! left out); `GET /api/processes/{target}`.

use super::super::{error, json, respond, Shared};
use super::HttpResponse;
use bytes::Bytes;
use kelpie_proto::{resolve_targets, ErrorKind, ProcessInfo, Request, Response, Target};

/// Send `request` to the supervisor, as the control socket does.
pub(super) async fn ask(shared: &Shared, request: Request) -> Response {
    crate::supervisor_channel::ask(&shared.commands, request).await
}

pub(super) async fn call(shared: &Shared, request: Request) -> HttpResponse {
    answer(ask(shared, request).await)
}

/// A `Response` as JSON: the list, `{"message"}`, `{pid, version, uptime_ms}` or an error.
pub(in crate::web) fn answer(response: Response) -> HttpResponse {
    match response {
        Response::Processes(list) => json(200, &redacted(list)),
        Response::Started { processes, .. } => json(200, &redacted(processes)),
        Response::Done(message) => json(200, &serde_json::json!({ "message": message })),
        Response::Pong {
            pid,
            version,
            uptime_ms,
        } => json(
            200,
            &serde_json::json!({"pid": pid, "version": version, "uptime_ms": uptime_ms}),
        ),
        Response::Conf {
            store,
            restarted,
            notes,
        } => json(
            200,
            &serde_json::json!({"store": store, "restarted": restarted, "notes": notes}),
        ),
        Response::Json(value) => json(200, &value),
        Response::Host(host) => json(200, &host),
        Response::Event(event) => json(200, &event),
        Response::Triggered(triggered) => json(200, &triggered),
        Response::Inspecting { pm_id, name, pid } => json(
            200,
            &serde_json::json!({"pm_id": pm_id, "name": name, "pid": pid}),
        ),
        Response::ProfilePart(text) => respond(200, "application/json", Bytes::from(text)),
        Response::LogLines { lines, skipped } => json(
            200,
            &serde_json::json!({"lines": lines, "skipped": skipped}),
        ),
        Response::Error(e) => {
            let status = match e.kind {
                ErrorKind::NotFound => 404,
                ErrorKind::Conflict => 409,
                ErrorKind::Invalid => 400,
                ErrorKind::PermissionDenied => 403,
                _ => 500,
            };
            error(status, &format!("{:?}", e.kind), &e.message)
        }
    }
}

/// The list without environment values: over HTTP they are never shown (`kelpie describe`
/// shows them to the apps' own user).
pub(super) fn redacted(mut list: Vec<ProcessInfo>) -> Vec<ProcessInfo> {
    for info in &mut list {
        info.spec.env.clear();
        info.spec.inherited_env = Default::default();
    }
    list
}

/// `GET /api/processes/{target}`: the instances a target means, as `kelpie describe` shows them.
pub(super) async fn describe(shared: &Shared, target: &str) -> HttpResponse {
    let list = match ask(shared, Request::List).await {
        Response::Processes(list) => list,
        other => return answer(other),
    };
    let target = Target::parse(target);
    let instances: Vec<_> = list.iter().map(ProcessInfo::targetable).collect();
    match resolve_targets(std::slice::from_ref(&target), &instances) {
        Ok(ids) if !ids.is_empty() => {
            let chosen = list
                .into_iter()
                .filter(|p| ids.contains(&p.pm_id))
                .collect();
            json(200, &redacted(chosen))
        }
        _ => error(
            404,
            "NotFound",
            &format!("no app matches {}", target.describe()),
        ),
    }
}
