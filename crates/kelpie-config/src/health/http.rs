//! The `http` probe: a full `http://` URL, a path on the app's port, or `{port, path, host}`;
//! https refused (the probe speaks plain HTTP).

use super::address::app_address;
use super::keys::{sort_keys, Errors};
use super::LOCALHOST;
use crate::convert::{self, describe};
use kelpie_core::{AppSpec, HealthProbe};
use serde_json::{Map, Value};

/// The keys of `http` written as an object.
const HTTP_KEYS: &[&str] = &["port", "path", "host"];

/// What `http` accepts, for messages.
const HTTP_FORMS: &str =
    "an http:// URL (http://127.0.0.1:3000/health), a path starting with / (checked on the app's port) or an object with `port`, `path` and `host`";

/// The one answer to every https URL: the probe speaks plain HTTP only.
const NO_HTTPS: &str = "https is not supported: check the app over http on localhost";

/// `http`: a full `http://` URL, a path on the app's port, or `{port, path, host}`.
pub(super) fn http(
    key: &str,
    value: &Value,
    spec: &AppSpec,
    errors: &mut Errors<'_>,
) -> Option<HealthProbe> {
    let url = match value {
        Value::String(s) => {
            let text = s.trim();
            let lower = text.to_ascii_lowercase();
            if lower.starts_with("https://") {
                errors.push(Some(key), NO_HTTPS);
                return None;
            }
            if text.starts_with('/') {
                match app_address(spec) {
                    Ok((host, port)) => url(&host, port, text),
                    Err(message) => {
                        errors.push(Some(key), message);
                        return None;
                    }
                }
            } else {
                match full_url(text) {
                    Some(url) => url,
                    None => {
                        errors.push(
                            Some(key),
                            format!("expected {HTTP_FORMS}, got {}", describe(value)),
                        );
                        return None;
                    }
                }
            }
        }
        Value::Object(object) => http_object(key, object, spec, errors)?,
        other => {
            errors.push(
                Some(key),
                format!("expected {HTTP_FORMS}, got {}", describe(other)),
            );
            return None;
        }
    };
    Some(HealthProbe::Http { url, status: None })
}

/// `http: {port, path, host}`; each is optional: the app's port, `/`, `127.0.0.1`.
fn http_object(
    key: &str,
    object: &Map<String, Value>,
    spec: &AppSpec,
    errors: &mut Errors<'_>,
) -> Option<String> {
    let before = errors.list.len();
    let keys = sort_keys(object, HTTP_KEYS, Some(key), errors);
    http_address(Some(key), &keys, spec, errors, before)
}

/// The URL of `port`, `path` and `host` among `keys` (other keys are ignored), each optional:
/// the app's port, `/`, `127.0.0.1`. Keys are named in messages under `prefix` (`http` in
/// `health_check.http.port`), or directly under the field without one (`http.port`). `None`
/// when errors were recorded after the first `before` ones.
pub(super) fn http_address(
    prefix: Option<&str>,
    keys: &[(&'static str, &str, &Value)],
    spec: &AppSpec,
    errors: &mut Errors<'_>,
    before: usize,
) -> Option<String> {
    let mut port = None;
    let mut path = "/".to_string();
    let mut host = None;
    for &(name, sub, value) in keys {
        let sub = match prefix {
            Some(prefix) => format!("{prefix}.{sub}"),
            None => sub.to_string(),
        };
        match name {
            "port" => port = errors.check(&sub, value, convert::port),
            "path" => {
                let read = |v: &Value| match v {
                    Value::String(s) if s.trim().starts_with('/') => Ok(s.trim().to_string()),
                    other => Err(format!(
                        "expected a path starting with /, got {}",
                        describe(other)
                    )),
                };
                if let Some(p) = errors.check(&sub, value, read) {
                    path = p;
                }
            }
            "host" => {
                let read = |v: &Value| match v {
                    Value::String(s)
                        if !s.trim().is_empty()
                            && !s.trim().contains(|c: char| c == '/' || c.is_whitespace()) =>
                    {
                        Ok(s.trim()
                            .trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_string())
                    }
                    other => Err(format!(
                        "expected a host name or address (127.0.0.1, ::1, localhost), got {}",
                        describe(other)
                    )),
                };
                host = errors.check(&sub, value, read);
            }
            _ => {}
        }
    }
    if errors.list.len() > before {
        return None;
    }
    let (host, port) = match (host, port) {
        (Some(host), Some(port)) => (host, port),
        (host, Some(port)) => (host.unwrap_or_else(|| LOCALHOST.to_string()), port),
        (host, None) => match app_address(spec) {
            Ok((app_host, port)) => (host.unwrap_or(app_host), port),
            Err(message) => {
                errors.push(prefix, message);
                return None;
            }
        },
    };
    Some(url(&host, port, &path))
}

/// `http://host:port/path`, with an IPv6 host in brackets.
fn url(host: &str, port: u16, path: &str) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}{path}")
    } else {
        format!("http://{host}:{port}{path}")
    }
}

/// An `http://` URL with a host and, if given, a valid port; the scheme is written in lower
/// case. `None` for anything else.
fn full_url(text: &str) -> Option<String> {
    let scheme = text.get(..7)?;
    if !scheme.eq_ignore_ascii_case("http://") || text.contains(char::is_whitespace) {
        return None;
    }
    let rest = &text[7..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // No user:password@: the probe sends no credentials.
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    if let Some(port) = port {
        port.parse::<u16>().ok().filter(|p| *p > 0)?;
    }
    Some(format!("http://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_urls_need_a_host_and_a_valid_port() {
        assert_eq!(
            full_url("http://127.0.0.1:3000/health").as_deref(),
            Some("http://127.0.0.1:3000/health")
        );
        assert_eq!(
            full_url("HTTP://localhost/").as_deref(),
            Some("http://localhost/")
        );
        assert_eq!(
            full_url("http://[::1]:8080/h?x=1").as_deref(),
            Some("http://[::1]:8080/h?x=1")
        );
        assert_eq!(full_url("http://api").as_deref(), Some("http://api"));
        for bad in [
            "http://",
            "http:///health",
            "http://:80/",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://u:p@host/",
            "http://a b/",
            "ftp://host/",
            "host:80",
            "http://[::1/",
        ] {
            assert_eq!(full_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(url("::1", 80, "/h"), "http://[::1]:80/h");
        assert_eq!(url("127.0.0.1", 80, "/"), "http://127.0.0.1:80/");
    }
}
