//! One request to one response: method and credentials checked, then the file found and read
//! off the async thread.

use super::content_type;
use super::lookup::{self, Resolved};
use super::settings::Settings;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::path::Path;
use std::sync::Arc;

/// A response body: the whole file.
pub type Body = Full<Bytes>;

/// The answer to `request`.
pub async fn handle<B>(site: Arc<Settings>, request: Request<B>) -> Response<Body> {
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    if let Some(credentials) = &site.auth {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if !credentials.accept(given) {
            let mut response = text(StatusCode::UNAUTHORIZED, "401 Unauthorized");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(super::auth::CHALLENGE),
            );
            return response;
        }
    }
    let path = request.uri().path().to_string();
    let answer = tokio::task::spawn_blocking(move || answer(&site, &path, head)).await;
    // hyper sends no body in answer to HEAD (files are not even read then).
    answer.unwrap_or_else(|e| {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("500 Internal Server Error: {e}"),
        )
    })
}

/// The response for `path`, reading the file system (blocking). For `HEAD`, files are not read:
/// their length is enough.
fn answer(site: &Settings, path: &str, head: bool) -> Response<Body> {
    match lookup::find(site, path) {
        Resolved::File(file) => match read(&file, head) {
            Ok((body, length)) => {
                let mut response = with_body(StatusCode::OK, content_type::of(&file), body);
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                // As PM2's server: pages elsewhere may fetch these files.
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                response
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => not_found(site, head),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                text(StatusCode::FORBIDDEN, "403 Forbidden")
            }
            Err(e) => {
                eprintln!("cannot read {}: {e}", file.display());
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                )
            }
        },
        Resolved::Redirect(location) => {
            let mut response = text(StatusCode::MOVED_PERMANENTLY, "301 Moved Permanently");
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Resolved::NotFound => not_found(site, head),
        Resolved::Forbidden => text(StatusCode::FORBIDDEN, "403 Forbidden"),
        Resolved::BadRequest => text(StatusCode::BAD_REQUEST, "400 Bad Request"),
    }
}

/// The file's bytes (none for `HEAD`) and its length.
fn read(file: &Path, head: bool) -> std::io::Result<(Bytes, u64)> {
    if head {
        return Ok((Bytes::new(), std::fs::metadata(file)?.len()));
    }
    let bytes = std::fs::read(file)?;
    let length = bytes.len() as u64;
    Ok((Bytes::from(bytes), length))
}

/// A 404, with the root's `404.html` as its page when there is one (as in PM2).
fn not_found(site: &Settings, head: bool) -> Response<Body> {
    match read(&lookup::not_found_page(site), head) {
        Ok((body, length)) => {
            let mut response = with_body(StatusCode::NOT_FOUND, "text/html; charset=utf-8", body);
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            response
        }
        Err(_) => text(StatusCode::NOT_FOUND, "404 Not Resolved"),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    with_body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(message.to_string()),
    )
}

fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
