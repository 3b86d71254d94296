//! `GET /api/logs` (the recent lines, collected) and `GET /api/events` (live updates as
//! server-sent events: the process list every second, and the log lines as they come).

use super::super::body::Body;
use super::super::body::Outlet;
use super::super::Shared;
use super::answers::{answer, ask, redacted};
use super::HttpResponse;
use crate::follow::LogOutput;
use bytes::Bytes;
use kelpie_proto::LogsRequest;
use kelpie_proto::{Request, Response, WireLogLine};
use std::sync::Arc;
use std::time::Duration;

/// Live streams served at once, at most (of the server's 64 connections).
pub(in crate::web) const MAX_STREAMS: usize = 16;

/// How often live updates carry the process list.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Collects the frames of a `logs` answer that does not follow.
struct Collected(Vec<Response>);

impl LogOutput for Collected {
    async fn send(&mut self, response: &Response) -> std::io::Result<()> {
        self.0.push(response.clone());
        Ok(())
    }

    async fn gone(&mut self) {
        std::future::pending::<()>().await;
    }
}

/// `GET /api/logs`: the recent lines, as `kelpie logs --nostream` prints them.
pub(super) async fn recent_logs(shared: &Shared, request: LogsRequest) -> HttpResponse {
    let mut out = Collected(Vec::new());
    crate::follow::serve(&mut out, &shared.commands, &shared.logs, request).await;
    let mut lines: Vec<WireLogLine> = Vec::new();
    let mut skipped = 0;
    for response in out.0 {
        match response {
            Response::LogLines {
                lines: more,
                skipped: s,
            } => {
                lines.extend(more);
                skipped += s;
            }
            Response::Error(e) => return answer(Response::Error(e)),
            _ => {}
        }
    }
    answer(Response::LogLines { lines, skipped })
}

/// Sends a following `logs` answer as server-sent events: one `log` event per line, and a
/// `skipped` event when this client read too slowly and missed lines.
struct Events(Outlet);

impl LogOutput for Events {
    async fn send(&mut self, response: &Response) -> std::io::Result<()> {
        let mut text = String::new();
        match response {
            Response::LogLines { lines, skipped } => {
                if *skipped > 0 {
                    event(&mut text, "skipped", &skipped.to_string());
                }
                for line in lines {
                    if let Ok(data) = serde_json::to_string(line) {
                        event(&mut text, "log", &data);
                    }
                }
            }
            Response::Error(e) => {
                let data =
                    serde_json::json!({"kind": format!("{:?}", e.kind), "message": e.message});
                event(&mut text, "failure", &data.to_string());
            }
            _ => return Ok(()),
        }
        if text.is_empty() {
            return Ok(());
        }
        self.0
            .send(Bytes::from(text))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    async fn gone(&mut self) {
        self.0.closed().await;
    }
}

/// One server-sent event (`data` is one line of JSON).
fn event(text: &mut String, name: &str, data: &str) {
    text.push_str("event: ");
    text.push_str(name);
    text.push_str("\ndata: ");
    text.push_str(data);
    text.push_str("\n\n");
}

/// `GET /api/events`: the process list every second (`processes` events) and the log lines of
/// the targets (`log` events), after the last `lines` of each, until the client goes or is cut
/// for reading too slowly (`super::super::body`: a `cut` event ends the stream). At most
/// [`MAX_STREAMS`] at once, so live pages cannot take every connection of the server.
pub(super) fn live(
    shared: &Arc<Shared>,
    slot: Option<&super::super::StreamSlot>,
    request: LogsRequest,
) -> HttpResponse {
    if !slot.is_some_and(|slot| slot.take(&shared.streams)) {
        return super::super::error(
            503,
            "Unavailable",
            &format!("{MAX_STREAMS} live streams are open already; close one (another tab?) and try again"),
        );
    };
    let from = shared.clone();
    let body = Body::stream(move |outlet: Outlet| async move {
        let snapshots = {
            let outlet = outlet.clone();
            let from = from.clone();
            async move {
                let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        () = outlet.closed() => return,
                    }
                    let mut text = String::new();
                    match ask(&from, Request::List).await {
                        Response::Processes(list) => match serde_json::to_string(&redacted(list)) {
                            Ok(data) => event(&mut text, "processes", &data),
                            Err(_) => continue,
                        },
                        _ => return,
                    }
                    if outlet.send(Bytes::from(text)).is_err() {
                        return;
                    }
                }
            }
        };
        let lines = async move {
            let mut out = Events(outlet);
            crate::follow::serve(&mut out, &from.commands, &from.logs, request).await;
        };
        // Either ends the stream: a cut, or the client gone.
        tokio::select! {
            () = snapshots => {}
            () = lines => {}
        }
    });
    let mut response = hyper::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}
