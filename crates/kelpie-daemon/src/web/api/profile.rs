//! `POST /api/processes/<target>/profile`: a running Node process's CPU profile or heap
//! snapshot, as `kelpie profile` makes it, downloaded as a file (`{"kind": "cpu", "seconds":
//! 10}` or `{"kind": "heap"}` in the body). The text is streamed as the process sends it, at
//! the pace the client reads it (see `crate::inspection`).

use super::super::body::{Body, Outlet};
use super::super::{error, Shared};
use super::actions::read_json;
use super::answers::answer;
use super::HttpResponse;
use crate::inspection;
use crate::profile_parts::Part;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Request as HttpRequest;
use kelpie_proto::{InspectAction, InspectRequest, Response, Target};

/// Longest CPU profile asked over HTTP.
const MOST_SECONDS: u64 = 300;

pub(super) async fn profile(
    shared: &Shared,
    request: HttpRequest<Incoming>,
    target: &str,
) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let (action, extension) = match body.get("kind").and_then(|k| k.as_str()) {
        Some("cpu") => {
            let seconds = match body.get("seconds") {
                None => 10,
                Some(value) => match value.as_u64().filter(|s| (1..=MOST_SECONDS).contains(s)) {
                    Some(seconds) => seconds,
                    None => {
                        return error(
                            400,
                            "Invalid",
                            &format!("`seconds` must be a whole number from 1 to {MOST_SECONDS}"),
                        )
                    }
                },
            };
            let action = InspectAction::CpuProfile {
                duration_ms: seconds * 1000,
                interval_us: 1000,
            };
            (action, "cpuprofile")
        }
        Some("heap") => (InspectAction::HeapSnapshot, "heapsnapshot"),
        _ => {
            return error(
                400,
                "Invalid",
                "the body must say which profile: {\"kind\": \"cpu\", \"seconds\": 10} or {\"kind\": \"heap\"}",
            )
        }
    };
    let request = InspectRequest {
        target: Target::parse(target),
        action,
    };
    let mut inspection = match inspection::begin(&shared.commands, &request).await {
        Ok(inspection) => inspection,
        Err(e) => return answer(Response::Error(e)),
    };
    // The first part decides the answer: a profile that failed is an error, not a file.
    let first = match inspection.next().await {
        Ok(Part::Text(text)) => text,
        Ok(Part::End(end)) => {
            let why = end["error"]
                .as_str()
                .unwrap_or("the process sent no profile");
            return error(500, "Internal", why);
        }
        Err(e) => return answer(Response::Error(e)),
    };
    let file = format!(
        "{}-{}-{}.{extension}",
        file_safe(&inspection.name),
        inspection.pm_id,
        local_stamp()
    );
    let body = Body::stream(move |outlet: Outlet| async move {
        if outlet.send_waiting(Bytes::from(first)).await.is_err() {
            return;
        }
        while let Ok(Part::Text(text)) = inspection.next().await {
            if outlet.send_waiting(Bytes::from(text)).await.is_err() {
                return;
            }
        }
    });
    let mut response = hyper::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    if let Ok(value) =
        hyper::header::HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
    {
        headers.insert(hyper::header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Now, the daemon's local time, as `20261128-183000`.
fn local_stamp() -> String {
    let now = crate::clock::wall_ms() as i64;
    kelpie_core::DateFormat::parse("YYYYMMDD-HHmmss")
        .format(now, kelpie_sys::utc_offset_secs(now.div_euclid(1000)))
}

/// An app's name in a file name (and a header): letters, digits, `-`, `_` and `.`; `_` for
/// anything else.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
