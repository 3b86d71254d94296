//! One request to one response: method and credentials checked, the file found (off the async
//! thread), then served by tower-http's `ServeFile`: streamed in chunks (a file of any size
//! costs a buffer, not its size in memory), with Range requests, `ETag` and `Last-Modified`,
//! and the conditional requests that go with them (`If-None-Match`, `If-Modified-Since`: 304).

use super::content_type;
use super::lookup::{self, Resolved};
use super::settings::Settings;
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_http::services::ServeFile;

/// A response body: a file streamed by `ServeFile`, or a short text.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

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
    // The request without its body: `ServeFile` reads only its method and headers.
    let (parts, _) = request.into_parts();
    let request = Request::from_parts(parts, ());
    match resolved {
        Resolved::File(file) => match serve(&file, request).await {
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

/// `file` as `ServeFile` answers `request` (200, 206, 304, 412, 416), with Kelpie's media type.
async fn serve(file: &Path, request: Request<()>) -> std::io::Result<Response<Body>> {
    let media_type = content_type::of(file)
        .parse::<mime::Mime>()
        .unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let response = ServeFile::new_with_mime(file, &media_type)
        .try_call(request)
        .await?;
    Ok(response.map(|body| body.map_err(std::io::Error::other).boxed_unsync()))
}

/// A 404, with the root's `404.html` as its page when there is one (as in PM2). The page is
/// asked for plainly: a client's Range or validators are about the path it asked for, not it.
async fn not_found(site: &Settings, head: bool) -> Response<Body> {
    let page: PathBuf = lookup::not_found_page(site);
    let mut request = Request::new(());
    if head {
        *request.method_mut() = Method::HEAD;
    }
    match serve(&page, request).await {
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
