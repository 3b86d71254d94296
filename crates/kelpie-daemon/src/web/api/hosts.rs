//! `GET /api/hosts`: the other machines' daemons of `[[web.hosts]]` (kelpie.toml), each one's
//! apps as its own API lists them, asked by this daemon with that host's token, all at once.
//!
//! The tokens stay here: the page gets the lists and what went wrong, never a token. What a
//! host answers is not trusted: its body is bounded, read as JSON, and only the fields the
//! page shows are passed on (as numbers and strings the page writes as text).

use super::HttpResponse;
use crate::health::{connect, parse_http_url};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use kelpie_config::WebHost;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A host has this long to connect and send its whole list.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Largest list read from a host (a list of 10 000 apps is about 20 MB).
const LIST_MAX_BYTES: usize = 32 << 20;
/// Processes passed on per host, at most.
const PROCESSES_MAX: usize = 10_000;

/// One host, as the page gets it.
#[derive(Serialize)]
struct HostView {
    name: String,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<Vec<ProcessView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What the page shows of another host's process.
#[derive(Serialize, Debug, PartialEq)]
struct ProcessView {
    pm_id: u64,
    name: String,
    namespace: String,
    status: String,
    cpu: f64,
    memory: u64,
    restarts: u64,
    uptime_ms: u64,
}

/// Why a host's list is not shown.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Connect(String),
    #[error("no answer within {} s", ANSWER_WITHIN.as_secs())]
    TimedOut,
    #[error("HTTP: {0}")]
    Http(String),
    #[error("the host refused this host's token (HTTP 401): set the token `kelpie web --show-token` prints there")]
    Token,
    #[error("the host answered HTTP {0}")]
    Status(u16),
    #[error("the list is larger than {} MB", LIST_MAX_BYTES >> 20)]
    TooLarge,
    #[error("the answer is not a Kelpie process list")]
    NotAList,
}

/// Answer `GET /api/hosts`: every configured host, its processes or why there are none.
pub(super) async fn other_hosts(hosts: &Arc<[WebHost]>) -> HttpResponse {
    let asked: Vec<_> = (0..hosts.len())
        .map(|at| {
            let hosts = Arc::clone(hosts);
            crate::tasks::spawn(async move {
                let host = &hosts[at];
                tokio::time::timeout(ANSWER_WITHIN, fetch(host))
                    .await
                    .unwrap_or(Err(FetchError::TimedOut))
            })
        })
        .collect();
    let mut views = Vec::with_capacity(hosts.len());
    for (host, task) in hosts.iter().zip(asked) {
        let answer = task
            .await
            .unwrap_or_else(|e| Err(FetchError::Http(format!("the request ended: {e}"))));
        let (processes, error) = match answer {
            Ok(list) => (Some(list), None),
            Err(why) => (None, Some(why.to_string())),
        };
        views.push(HostView {
            name: host.name.clone(),
            url: host.url.clone(),
            processes,
            error,
        });
    }
    super::super::json(200, &views)
}

/// Ask `host` for its list.
async fn fetch(host: &WebHost) -> Result<Vec<ProcessView>, FetchError> {
    let url = format!("{}/api/processes", host.url);
    let target = parse_http_url(&url).map_err(|e| FetchError::Url(e.to_string()))?;
    let stream = connect(&target.host, target.port, &target.authority)
        .await
        .map_err(|e| FetchError::Connect(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    // The connection's own task, ended when this function returns (Owned aborts on drop).
    let _connection = crate::tasks::spawn(connection);
    let request = hyper::Request::get(target.target.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", host.token),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    match response.status().as_u16() {
        200 => {}
        401 => return Err(FetchError::Token),
        other => return Err(FetchError::Status(other)),
    }
    let body = Limited::new(response.into_body(), LIST_MAX_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                FetchError::TooLarge
            } else {
                FetchError::Http(e.to_string())
            }
        })?
        .to_bytes();
    let list: Value = serde_json::from_slice(&body).map_err(|_| FetchError::NotAList)?;
    processes_of(&list).ok_or(FetchError::NotAList)
}

/// The fields the page shows, from a host's `/api/processes` answer (None: not such a list).
fn processes_of(list: &Value) -> Option<Vec<ProcessView>> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    list.as_array()?
        .iter()
        .take(PROCESSES_MAX)
        .map(|p| {
            Some(ProcessView {
                pm_id: p["pm_id"].as_u64()?,
                name: text(&p["spec"]["name"])?,
                namespace: text(&p["spec"]["namespace"]).unwrap_or_default(),
                status: text(&p["state"]["status"])?,
                cpu: p["cpu"].as_f64().unwrap_or(0.0),
                memory: number(&p["memory"]),
                restarts: number(&p["state"]["restart_time"]),
                uptime_ms: number(&p["uptime_ms"]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shown_fields_of_a_list_pass_and_anything_else_is_not_a_list() {
        let list = serde_json::json!([{
            "pm_id": 3, "spec": {"name": "api", "namespace": "default", "env": {"X": "y"}},
            "state": {"status": "online", "restart_time": 2, "pid": 7},
            "cpu": 1.5, "memory": 1024, "uptime_ms": 60000
        }]);
        let views = processes_of(&list).expect("a list");
        assert_eq!(
            views,
            [ProcessView {
                pm_id: 3,
                name: "api".into(),
                namespace: "default".into(),
                status: "online".into(),
                cpu: 1.5,
                memory: 1024,
                restarts: 2,
                uptime_ms: 60000,
            }]
        );
        assert!(processes_of(&serde_json::json!({"error": "x"})).is_none());
        assert!(processes_of(&serde_json::json!([{"pm_id": "x"}])).is_none());
    }
}
