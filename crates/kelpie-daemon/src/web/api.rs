//! Routes: the page, the OpenAPI document, the JSON API, live updates and `/metrics`; and who may
//! call them.

use super::body::Body;
use super::{error, json, respond, Access, Shared};
use crate::control::{Command, Reply};
use crate::follow::{LogOutput, LogsRequest};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request as HttpRequest};
use kelpie_proto::{
    resolve_targets, ErrorKind, ProcessInfo, Request, Response, ScaleCount, Target, WireLogLine,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The page: one file of HTML, CSS and JavaScript, no build step, nothing fetched elsewhere.
const PAGE: &str = include_str!("../../assets/web/index.html");
/// The API's description (hand-written; the tests check the API against it).
const OPENAPI: &str = include_str!("../../assets/web/openapi.json");

/// Largest request body accepted (they are a few bytes of JSON).
const MAX_BODY: usize = 64 * 1024;
/// How often live updates carry the process list.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

type HttpResponse = hyper::Response<Body>;

/// Answer one request.
pub async fn handle(shared: &Arc<Shared>, request: HttpRequest<Incoming>) -> HttpResponse {
    let path = request.uri().path().to_string();
    if let Some(refused) = check_host(shared, &request) {
        return refused;
    }
    // The page and the API's description hold no data: the page asks for the token itself.
    if let Some(public) = public_document(request.method(), &path) {
        return public;
    }
    if let Some(refused) = check_token(shared, &request) {
        return refused;
    }
    if request.method() == Method::POST {
        if let Some(refused) = check_origin(&request) {
            return refused;
        }
    }
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = Query::parse(request.uri().query().unwrap_or(""));
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["metrics"]) => super::metrics::serve(shared).await,
        (&Method::GET, ["api", "ping"]) => call(shared, Request::Ping).await,
        (&Method::GET, ["api", "processes"]) => call(shared, Request::List).await,
        (&Method::GET, ["api", "processes", target]) => describe(shared, target).await,
        (&Method::POST, ["api", "processes", target, action]) => {
            process_action(shared, request, target, action, &path).await
        }
        (&Method::POST, ["api", "apps", name, "scale"]) => scale(shared, request, name).await,
        (&Method::POST, ["api", "save"]) => save(shared, request).await,
        (&Method::GET, ["api", "logs"]) => match query.logs_request(false, 100) {
            Ok(request) => recent_logs(shared, request).await,
            Err(message) => error(400, "Invalid", &message),
        },
        (&Method::GET, ["api", "events"]) => match query.logs_request(true, 0) {
            Ok(request) => live(shared, request),
            Err(message) => error(400, "Invalid", &message),
        },
        (_, ["metrics"] | ["api", "ping" | "processes" | "logs" | "events"])
        | (_, ["api", "processes", _]) => not_allowed("GET"),
        (_, ["api", "processes", _, _] | ["api", "apps", _, "scale"] | ["api", "save"]) => {
            not_allowed("POST")
        }
        _ => not_found(&path),
    }
}

/// The page (with its content security policy) and the API's description, which anyone may
/// read; `None` for any other request.
fn public_document(method: &Method, path: &str) -> Option<HttpResponse> {
    match (method, path) {
        (&Method::GET, "/") => {
            let mut page = respond(
                200,
                "text/html; charset=utf-8",
                Bytes::from_static(PAGE.as_bytes()),
            );
            if let Ok(csp) = hyper::header::HeaderValue::from_str(
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ) {
                page.headers_mut()
                    .insert(hyper::header::CONTENT_SECURITY_POLICY, csp);
            }
            Some(page)
        }
        (&Method::GET, "/openapi.json") => Some(respond(
            200,
            "application/json",
            Bytes::from_static(OPENAPI.as_bytes()),
        )),
        _ => None,
    }
}

/// `POST /api/processes/<target>/<action>`: stop, restart, reload (`parallel` in the body),
/// reset or delete the target.
async fn process_action(
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
        "stop" => Request::Stop { targets },
        "restart" => Request::Restart {
            targets,
            update_env: None,
        },
        "reload" => match body.get("parallel").map(serde_json::Value::as_u64) {
            None => Request::Reload {
                targets,
                apps: Vec::new(),
                update_env: None,
                parallel: 1,
            },
            Some(Some(n)) if (1..=u32::MAX as u64).contains(&n) => Request::Reload {
                targets,
                apps: Vec::new(),
                update_env: None,
                parallel: n as u32,
            },
            Some(_) => return error(400, "Invalid", "`parallel` must be a whole number ≥ 1"),
        },
        "reset" => Request::Reset { targets },
        "delete" => Request::Delete { targets },
        _ => return not_found(path),
    };
    call(shared, request).await
}

/// `POST /api/apps/<name>/scale`: set, add or remove instances (`count` in the body: `N`,
/// `+N`, `-N` or a number).
async fn scale(shared: &Shared, request: HttpRequest<Incoming>, name: &str) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let count = match body.get("count") {
        Some(serde_json::Value::String(text)) => ScaleCount::parse(text),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(ScaleCount::To)
            .ok_or_else(|| format!("expected N, +N or -N instances, got {n}")),
        _ => Err("the body must be {\"count\": \"N\" | \"+N\" | \"-N\"}".to_string()),
    }
    .and_then(|count| match count {
        ScaleCount::To(n) | ScaleCount::Up(n) | ScaleCount::Down(n) => {
            kelpie_core::check_instances(n).map(|()| count)
        }
    });
    match count {
        Ok(count) => {
            call(
                shared,
                Request::Scale {
                    name: name.to_string(),
                    count,
                },
            )
            .await
        }
        Err(message) => error(400, "Invalid", &message),
    }
}

/// `POST /api/save`: save the process list (`force` in the body).
async fn save(shared: &Shared, request: HttpRequest<Incoming>) -> HttpResponse {
    let body = match read_json(request).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let force = match body.get("force") {
        None => false,
        Some(serde_json::Value::Bool(force)) => *force,
        Some(_) => return error(400, "Invalid", "`force` must be true or false"),
    };
    call(shared, Request::Save { force }).await
}

fn not_found(path: &str) -> HttpResponse {
    error(404, "NotFound", &format!("no such page or API: {path}"))
}

fn not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error(405, "Invalid", &format!("this URL only answers {allow}"));
    response.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allow),
    );
    response
}

/// The refusal of a request, if it is refused.
type Refusal = Option<HttpResponse>;

/// Without a configured token the server only listens on loopback; a page of another site that
/// makes its own name resolve to 127.0.0.1 (DNS rebinding) still sends its own name as `Host`:
/// refused.
fn check_host(shared: &Shared, request: &HttpRequest<Incoming>) -> Refusal {
    if matches!(shared.access, Access::Configured(_)) || !shared.loopback {
        return None;
    }
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| {
        error(
            403,
            "Forbidden",
            &format!("this server answers only requests to a loopback name (127.0.0.1, localhost, [::1]), not `{host}`; set a token to serve other names"),
        )
    })
}

/// With a configured token, everything but the page and the API's description needs it;
/// without, every call that may change something (any method but GET and HEAD) needs the stored
/// one, unless `open_loopback`.
fn check_token(shared: &Shared, request: &HttpRequest<Incoming>) -> Refusal {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let (token, message) = match &shared.access {
        Access::Configured(token) => (token, "this kelpie web server needs `Authorization: Bearer <token>` (the token of `[web]` in kelpie.toml or of `kelpie web --token`)"),
        Access::Stored(token) if !reads => (token, "changes need `Authorization: Bearer <token>`, even on loopback: the token in <home>/web.token, which `kelpie web --show-token` prints"),
        Access::Stored(_) | Access::Open => return None,
    };
    let given = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        return None;
    }
    let mut refused = error(401, "Unauthorized", message);
    refused.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Bearer realm=\"kelpie\""),
    );
    Some(refused)
}

/// A browser says where a request comes from: a change asked by another site's page (CSRF) is
/// refused.
fn check_origin(request: &HttpRequest<Incoming>) -> Refusal {
    let origin = request.headers().get(hyper::header::ORIGIN)?;
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    match origin.to_str() {
        Ok(origin) if origin == format!("http://{host}") || origin == format!("https://{host}") => {
            None
        }
        _ => Some(error(
            403,
            "Forbidden",
            "changes are only accepted from this server's own page (the Origin differs)",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `%XX` sequences of a path segment decoded (an app name may hold spaces).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request body: nothing, or a JSON object.
async fn read_json(
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

/// Send `request` to the supervisor, as the control socket does.
async fn ask(shared: &Shared, request: Request) -> Response {
    let (tx, rx) = oneshot::channel();
    let gone = || {
        Response::Error(kelpie_proto::WireError {
            kind: ErrorKind::Internal,
            message: "the daemon is shutting down".into(),
        })
    };
    if shared
        .commands
        .send(Command::Request { request, reply: tx })
        .await
        .is_err()
    {
        return gone();
    }
    match rx.await {
        Ok(Reply { response, written }) => {
            if let Some(written) = written {
                let _ = written.send(());
            }
            response
        }
        Err(_) => gone(),
    }
}

async fn call(shared: &Shared, request: Request) -> HttpResponse {
    answer(ask(shared, request).await)
}

/// A `Response` as JSON: the list, `{"message"}`, `{pid, version, uptime_ms}` or an error.
fn answer(response: Response) -> HttpResponse {
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
        Response::Event(event) => json(200, &event),
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
fn redacted(mut list: Vec<ProcessInfo>) -> Vec<ProcessInfo> {
    for info in &mut list {
        info.spec.env.clear();
        info.spec.inherited_env = Default::default();
    }
    list
}

/// `GET /api/processes/{target}`: the instances a target means, as `kelpie describe` shows them.
async fn describe(shared: &Shared, target: &str) -> HttpResponse {
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

/// Query parameters of `/api/logs` and `/api/events`.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(&v.replace('+', " ")))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `target` (repeatable; none = all), `lines`, `stream` (`out`, `err`, or both).
    fn logs_request(&self, follow: bool, default_lines: u32) -> Result<LogsRequest, String> {
        let targets = self
            .0
            .iter()
            .filter(|(k, v)| k == "target" && !v.is_empty())
            .map(|(_, v)| Target::parse(v))
            .collect();
        let lines = match self.get("lines") {
            Some(n) => {
                let lines = n
                    .parse::<u32>()
                    .map_err(|_| format!("`lines` must be a whole number, got `{n}`"))?;
                crate::follow::check_tail_lines(lines).map_err(|e| format!("`lines`: {e}"))?;
                lines
            }
            None => default_lines,
        };
        let (out, err) = match self.get("stream") {
            None | Some("" | "all") => (true, true),
            Some("out") => (true, false),
            Some("err") => (false, true),
            Some(other) => {
                return Err(format!(
                    "`stream` must be `out`, `err` or `all`, got `{other}`"
                ))
            }
        };
        Ok(LogsRequest {
            targets,
            lines,
            out,
            err,
            follow,
        })
    }
}

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
async fn recent_logs(shared: &Shared, request: LogsRequest) -> HttpResponse {
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
struct Events(mpsc::Sender<Bytes>);

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
            .await
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
/// the targets (`log` events), after the last `lines` of each, until the client goes.
fn live(shared: &Arc<Shared>, request: LogsRequest) -> HttpResponse {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let snapshots = tx.clone();
    let from = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SNAPSHOT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = snapshots.closed() => return,
            }
            let mut text = String::new();
            match ask(&from, Request::List).await {
                Response::Processes(list) => match serde_json::to_string(&redacted(list)) {
                    Ok(data) => event(&mut text, "processes", &data),
                    Err(_) => continue,
                },
                _ => return,
            }
            if snapshots.send(Bytes::from(text)).await.is_err() {
                return;
            }
        }
    });
    let from = shared.clone();
    tokio::spawn(async move {
        let mut out = Events(tx);
        crate::follow::serve(&mut out, &from.commands, &from.logs, request).await;
    });
    let mut response = hyper::Response::new(Body::Stream(rx));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("my%20app"), "my app");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
