//! Who may call: a loopback `Host` without a token (DNS rebinding), the bearer token, and the
//! `Origin` of a change (CSRF).

use super::super::{error, Access, Shared};
use super::HttpResponse;
use hyper::body::Incoming;
use hyper::Request as HttpRequest;

/// The refusal of a request, if it is refused.
type Refusal = Option<HttpResponse>;

/// Without a configured token the server only listens on loopback; a page of another site that
/// makes its own name resolve to 127.0.0.1 (DNS rebinding) still sends its own name as `Host`:
/// refused.
pub(super) fn check_host(shared: &Shared, request: &HttpRequest<Incoming>) -> Refusal {
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

/// Everything but the page and the API's description needs the token, configured or stored:
/// reads too, since the apps' logs, arguments and last stderr lines are as private as their
/// files on disk (the home is its owner's alone), and loopback is open to every local user. Only
/// `open_loopback` lets every call through.
pub(super) fn check_token(shared: &Shared, request: &HttpRequest<Incoming>) -> Refusal {
    let (token, message) = match &shared.access {
        Access::Configured(token) => (token, "this kelpie web server needs `Authorization: Bearer <token>` (the token of `[web]` in kelpie.toml or of `kelpie web --token`)"),
        Access::Stored(token) => (token, "this kelpie web server needs `Authorization: Bearer <token>`, even on loopback: the token in <home>/web.token, which `kelpie web --show-token` prints (`kelpie web` prints the page's address with it)"),
        Access::Open => return None,
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
pub(super) fn check_origin(request: &HttpRequest<Incoming>) -> Refusal {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
