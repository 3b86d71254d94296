//! Routes: the page, the OpenAPI document, the JSON API, live updates and `/metrics`; and who may
//! call them.
//!
//! Here: the routing, the public documents and the refusals of unknown URLs. Its parts, in
//! `api/`: who may call (`access`), the query and path decoding (`query`), the calls that change
//! something (`actions`), asking the supervisor and answering in JSON (`answers`), the logs
//! and live updates (`logs`), profiles of Node apps (`profile`), and other hosts' apps (`hosts`).

mod access;
mod actions;
mod answers;
mod hosts;
mod logs;
mod profile;
mod query;

use super::body::Body;
use super::{error, respond, Shared};
use access::{check_host, check_origin, check_token};
use actions::{process_action, save, scale, trigger};
use answers::{call, describe};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request as HttpRequest};
use kelpie_proto::Request;
pub(super) use logs::MAX_STREAMS;
use logs::{live, recent_logs};
use query::{percent_decode, Query};
use std::sync::Arc;

/// The page: one file of HTML, CSS and JavaScript, no build step, nothing fetched elsewhere.
const PAGE: &str = include_str!("../../assets/web/index.html");
/// The API's description (hand-written; the tests check the API against it).
const OPENAPI: &str = include_str!("../../assets/web/openapi.json");

type HttpResponse = hyper::Response<Body>;

/// Answer one request.
pub(super) async fn handle(shared: &Arc<Shared>, request: HttpRequest<Incoming>) -> HttpResponse {
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
        // The monitor thread keeps it: no need to ask the supervisor.
        (&Method::GET, ["api", "host"]) => {
            answers::answer(kelpie_proto::Response::Host(crate::host::latest()))
        }
        (&Method::GET, ["api", "processes", target]) => describe(shared, target).await,
        (&Method::GET, ["api", "hosts"]) => hosts::other_hosts(&shared.hosts).await,
        (&Method::GET, ["api", "errors"]) => {
            let app = query.get("app");
            let (groups, _) = shared.alerts.errors(app, false).await;
            answers::answer(kelpie_proto::Response::Json(serde_json::json!(groups)))
        }
        (&Method::POST, ["api", "processes", target, "trigger"]) => {
            trigger(shared, request, target).await
        }
        (&Method::POST, ["api", "processes", target, "profile"]) => {
            profile::profile(shared, request, target).await
        }
        (&Method::POST, ["api", "processes", target, action]) => {
            process_action(shared, request, target, action, &path).await
        }
        (&Method::POST, ["api", "apps", name, "scale"]) => scale(shared, request, name).await,
        (&Method::POST, ["api", "save"]) => save(shared, request).await,
        (&Method::GET, ["api", "logs"]) => match query.logs_request(false, 100) {
            Ok(request) => recent_logs(shared, request).await,
            Err(refused) => error(400, "Invalid", &refused.to_string()),
        },
        (&Method::GET, ["api", "events"]) => match query.logs_request(true, 0) {
            Ok(logs) => live(shared, request.extensions().get(), logs),
            Err(refused) => error(400, "Invalid", &refused.to_string()),
        },
        (
            _,
            ["metrics"]
            | ["api", "ping" | "processes" | "host" | "hosts" | "logs" | "events" | "errors"],
        )
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
