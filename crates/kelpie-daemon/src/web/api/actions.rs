//! The calls that change something (`POST`): an action on processes, scaling an app, saving
//! the list; and their JSON bodies, bounded by [`MAX_BODY`].

use super::super::{error, Shared};
use super::answers::{answer, call};
use super::{not_found, HttpResponse};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request as HttpRequest;
use kelpie_proto::{Request, ScaleCount, Target};

/// Largest request body accepted (they are a few bytes of JSON).
const MAX_BODY: usize = 64 * 1024;
/// How long `trigger` waits for the replies unless asked otherwise (as `kelpie trigger`).
const DEFAULT_TRIGGER_TIMEOUT_MS: u64 = 10_000;

/// `POST /api/processes/<target>/<action>`: stop, restart, reload (`parallel` in the body),
/// reset or delete the target.
pub(super) async fn process_action(
    shared: &Shared,
    request: HttpRequest<Incoming>,
    target: &str,
    action: &str,
    path: &str,
) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let targets = vec![Target::parse(target)];
    let request = match action {
        "stop" => Request::Stop(kelpie_proto::Targets { targets }),
        "restart" => Request::Restart(kelpie_proto::RestartRequest {
            targets,
            update_env: None,
        }),
        "reload" => match body.get("parallel").map(serde_json::Value::as_u64) {
            None => Request::Reload(kelpie_proto::ReloadRequest {
                targets,
                apps: Vec::new(),
                update_env: None,
                parallel: 1,
            }),
            Some(Some(n)) if (1..=u32::MAX as u64).contains(&n) => {
                Request::Reload(kelpie_proto::ReloadRequest {
                    targets,
                    apps: Vec::new(),
                    update_env: None,
                    parallel: n as u32,
                })
            }
            Some(_) => return error(400, "Invalid", "`parallel` must be a whole number ≥ 1"),
        },
        "reset" => Request::Reset(kelpie_proto::Targets { targets }),
        "delete" => Request::Delete(kelpie_proto::Targets { targets }),
        _ => return not_found(path),
    };
    call(shared, request).await
}

/// `POST /api/apps/<name>/scale`: set, add or remove instances (`count` in the body: `N`,
/// `+N`, `-N` or a number).
pub(super) async fn scale(
    shared: &Shared,
    request: HttpRequest<Incoming>,
    name: &str,
) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let count = match body.get("count") {
        Some(serde_json::Value::String(text)) => ScaleCount::parse(text).map_err(|e| e.to_string()),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(ScaleCount::To)
            .ok_or_else(|| format!("expected N, +N or -N instances, got {n}")),
        _ => Err("the body must be {\"count\": \"N\" | \"+N\" | \"-N\"}".to_string()),
    }
    .and_then(|count| match count {
        ScaleCount::To(n) | ScaleCount::Up(n) | ScaleCount::Down(n) => {
            kelpie_core::check_instances(n)
                .map(|()| count)
                .map_err(|e| e.to_string())
        }
    });
    match count {
        Ok(count) => {
            call(
                shared,
                Request::Scale(kelpie_proto::ScaleRequest {
                    name: name.to_string(),
                    count,
                }),
            )
            .await
        }
        Err(message) => error(400, "Invalid", &message),
    }
}

/// `POST /api/processes/<target>/trigger`: run an action the target's processes registered
/// with their PM2 SDK (`action`, optional `param` and `timeout_ms` in the body), as `kelpie
/// trigger` does; answers who received it and each reply.
pub(super) async fn trigger(
    shared: &Shared,
    request: HttpRequest<Incoming>,
    target: &str,
) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let action = match body.get("action") {
        Some(serde_json::Value::String(action)) if !action.is_empty() => action.clone(),
        _ => {
            return error(
                400,
                "Invalid",
                "the body must name the action: {\"action\": \"name\"}",
            )
        }
    };
    let param = match body.get("param") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(param)) => Some(param.clone()),
        Some(_) => return error(400, "Invalid", "`param` must be a string"),
    };
    let most = crate::trigger::TIMEOUT_MAX.as_millis() as u64;
    let timeout_ms = match body.get("timeout_ms") {
        None => DEFAULT_TRIGGER_TIMEOUT_MS,
        Some(value) => match value.as_u64().filter(|ms| *ms <= most) {
            Some(ms) => ms,
            None => {
                return error(
                    400,
                    "Invalid",
                    &format!("`timeout_ms` must be a whole number from 0 to {most}"),
                )
            }
        },
    };
    let request = kelpie_proto::TriggerRequest {
        target: Target::parse(target),
        action,
        param,
        timeout_ms,
    };
    answer(crate::trigger::trigger(&shared.commands, &shared.bus, request).await)
}

/// `POST /api/save`: save the process list (`force` in the body).
pub(super) async fn save(shared: &Shared, request: HttpRequest<Incoming>) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let force = match body.get("force") {
        None => false,
        Some(serde_json::Value::Bool(force)) => *force,
        Some(_) => return error(400, "Invalid", "`force` must be true or false"),
    };
    call(shared, Request::Save(kelpie_proto::SaveRequest { force })).await
}

/// A request body: nothing, or a JSON object.
pub(super) async fn read_json(
    request: HttpRequest<Incoming>,
) -> Result<serde_json::Map<String, serde_json::Value>, HttpResponse> {
    let limited = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(error(
                413,
                "Invalid",
                &format!("the body must be at most {MAX_BODY} bytes of JSON"),
            ))
        }
    };
    if bytes.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(error(400, "Invalid", "the body must be a JSON object")),
        Err(e) => Err(error(400, "Invalid", &format!("the body is not JSON: {e}"))),
    }
}
