//! One request to one response: method and credentials checked, the file found (off the async
//! thread), then sent by `file_response`: streamed in chunks (a file of any size costs a chunk
//! of memory, not its size), with Range requests, `ETag` and `Last-Modified`, and the
//! conditional requests that go with them (`If-None-Match`, `If-Modified-Since`: 304).

use super::content_type;
use super::file_response::{self, FileBody};
use super::lookup::{self, Resolved};
use super::settings::Settings;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::path::Path;
use std::sync::Arc;

/// A response body: a file streamed, or a short text.
pub(super) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The answer to `request`.
pub(super) async fn handle<B>(site: Arc<Settings>, request: Request<B>) -> Response<Body> {
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
    let lookup_site = site.clone();
    let resolved =
        match tokio::task::spawn_blocking(move || lookup::find(&lookup_site, &path)).await {
            Ok(resolved) => resolved,
            Err(e) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("500 Internal Server Error: {e}"),
                )
            }
        };
    match resolved {
        Resolved::File(file) => match serve(&file, request.headers(), head).await {
            Ok(mut response) => {
                // As PM2's server: pages elsewhere may fetch these files.
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                response
            }
            // Gone since the lookup.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => not_found(&site, head).await,
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
        Resolved::NotFound => not_found(&site, head).await,
        Resolved::Forbidden => text(StatusCode::FORBIDDEN, "403 Forbidden"),
        Resolved::BadRequest => text(StatusCode::BAD_REQUEST, "400 Bad Request"),
    }
}

/// `file`'s answer to a request with these headers (200, 206, 304, 412, 416).
async fn serve(file: &Path, request: &HeaderMap, head: bool) -> std::io::Result<Response<Body>> {
    let opened = tokio::fs::File::open(file).await?;
    let meta = opened.metadata().await?;
    if !meta.is_file() {
        return Err(std::io::ErrorKind::NotFound.into());
    }
    let content_type = content_type::of(file);
    let (status, headers, body) =
        file_response::respond(opened, &meta, request, head, content_type).await?;
    let body = match body {
        Some(body) => FileBody::boxed_unsync(body),
        None => Empty::new().map_err(|never| match never {}).boxed_unsync(),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// A 404, with the root's `404.html` as its page when there is one (as in PM2). The page is
/// sent plainly: a client's Range or validators are about the path it asked for, not it.
async fn not_found(site: &Settings, head: bool) -> Response<Body> {
    let Some(page) = lookup::not_found_page(site) else {
        return text(StatusCode::NOT_FOUND, "404 Not Resolved");
    };
    match serve(&page, &HeaderMap::new(), head).await {
        Ok(mut response) if response.status() == StatusCode::OK => {
            *response.status_mut() = StatusCode::NOT_FOUND;
            let headers = response.headers_mut();
            headers.remove(header::ETAG);
            headers.remove(header::LAST_MODIFIED);
            headers.remove(header::ACCEPT_RANGES);
            response
        }
        _ => text(StatusCode::NOT_FOUND, "404 Not Resolved"),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(message.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
