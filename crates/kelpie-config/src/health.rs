//! `health_check`: what to probe (exactly one of `http`, `tcp` or `exec`) and how often, into a
//! [`HealthCheck`]. Read after the app's port is known, since a bare path is checked there.

use crate::convert::{self, describe};
use crate::fields::{closest, to_snake_case};
use kelpie_core::{AppSpec, HealthCheck, HealthProbe, ListenAddress};
use serde_json::{Map, Value};

/// The keys of `health_check`, snake_case (camelCase is accepted, as for app fields).
const KEYS: &[&str] = &[
    "http",
    "tcp",
    "exec",
    "status",
    "interval",
    "timeout",
    "failures",
    "start_period",
];

/// The keys that choose the probe.
const PROBES: &[&str] = &["http", "tcp", "exec"];

/// The keys of `http` written as an object.
const HTTP_KEYS: &[&str] = &["port", "path", "host"];

/// Where probes go when the user gave no host: the app runs on this machine, and Kelpie binds
/// every address when it has no host.
const LOCALHOST: &str = "127.0.0.1";

/// What `http` accepts, for messages.
const HTTP_FORMS: &str =
    "an http:// URL (http://127.0.0.1:3000/health), a path starting with / (checked on the app's port) or an object with `port`, `path` and `host`";

/// The one answer to every https URL: the probe speaks plain HTTP only.
const NO_HTTPS: &str = "https is not supported: check the app over http on localhost";

/// Collects "field `health_check.x`: …" messages, naming keys as the user wrote them.
struct Errors<'a> {
    field: &'a str,
    list: Vec<String>,
}

impl Errors<'_> {
    fn push(&mut self, sub: Option<&str>, message: impl std::fmt::Display) {
        let field = self.field;
        match sub {
            Some(sub) => self.list.push(format!("field `{field}.{sub}`: {message}")),
            None => self.list.push(format!("field `{field}`: {message}")),
        }
    }

    /// `read(value)`, or `None` with the error recorded under `sub`.
    fn check<T>(
        &mut self,
        sub: &str,
        value: &Value,
        read: impl Fn(&Value) -> Result<T, String>,
    ) -> Option<T> {
        match read(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.push(Some(sub), message);
                None
            }
        }
    }
}

/// The keys of an object by canonical name, with the user's spelling; unknown and repeated
/// keys are recorded as errors under `prefix` (`health_check` or `health_check.http`).
fn sort_keys<'v>(
    object: &'v Map<String, Value>,
    known: &'static [&'static str],
    prefix: Option<&str>,
    errors: &mut Errors<'_>,
) -> Vec<(&'static str, &'v str, &'v Value)> {
    let mut found: Vec<(&'static str, &'v str, &'v Value)> = Vec::new();
    for (key, value) in object {
        let canonical = to_snake_case(key);
        let Some(name) = known.iter().copied().find(|k| *k == canonical) else {
            let message = match closest(&canonical, known.iter().copied()) {
                Some(suggestion) => format!("unknown key `{key}` (did you mean `{suggestion}`?)"),
                None => format!(
                    "unknown key `{key}` (expected {})",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            errors.push(prefix, message);
            continue;
        };
        match found.iter().find(|(n, _, _)| *n == name) {
            Some((_, previous, _)) => errors.push(
                prefix,
                format!("`{previous}` and `{key}` both set `{name}`; keep one"),
            ),
            None => found.push((name, key.as_str(), value)),
        }
    }
    // In the documented order, whatever the map's: messages then read the same for every format.
    found.sort_by_key(|(name, _, _)| known.iter().position(|k| k == name));
    found
}

/// Read the `health_check` field, written `field` by the user, of an app whose port, instances
/// and environment are already set in `spec`. `false` means none. Errors are complete
/// "field `health_check.interval`: …" messages.
pub fn read(
    field: &str,
    value: &Value,
    spec: &AppSpec,
) -> Result<Option<HealthCheck>, Vec<String>> {
    let object = match value {
        Value::Bool(false) => return Ok(None),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(vec![format!(
                "field `{field}`: expected an object with one of `http`, `tcp` or `exec` (and optionally `status`, `interval`, `timeout`, `failures`, `start_period`), got {}",
                describe(other)
            )])
        }
    };
    let mut errors = Errors {
        field,
        list: Vec::new(),
    };
    let keys = sort_keys(object, KEYS, None, &mut errors);
    let probes: Vec<&(&str, &str, &Value)> = keys
        .iter()
        .filter(|(name, _, _)| PROBES.contains(name))
        .collect();
    let mut check = HealthCheck::default();
    let mut probe = None;
    match probes.as_slice() {
        [] => errors.push(
            None,
            "needs one of `http`, `tcp` or `exec` (what to probe); none is set",
        ),
        [(kind, key, value)] => {
            probe = match *kind {
                "http" => http(key, value, spec, &mut errors),
                "tcp" => tcp(key, value, spec, &mut errors),
                _ => errors
                    .check(key, value, convert::string)
                    .map(|command| HealthProbe::Exec { command }),
            }
        }
        [(_, first, _), (_, second, _), ..] => errors.push(
            None,
            format!(
                "`{first}` and `{second}` are both set; a health check probes exactly one of `http`, `tcp` or `exec`"
            ),
        ),
    }
    for (name, key, value) in &keys {
        match *name {
            "status" => {
                let status = errors.check(key, value, convert::http_status);
                match &mut probe {
                    Some(HealthProbe::Http { status: slot, .. }) => *slot = status,
                    // Without a probe there is already an error; do not add a second one.
                    None => {}
                    Some(_) => errors.push(Some(key), "only `http` checks have a status"),
                }
            }
            name => timing(name, key, value, &mut check, &mut errors),
        }
    }
    match probe {
        Some(probe) if errors.list.is_empty() => {
            check.probe = probe;
            Ok(Some(check))
        }
        _ => Err(errors.list),
    }
}

/// `interval`, `timeout`, `failures` and `start_period` (written `key`) into `check`; other
/// names are not timing keys and are left to the caller.
fn timing(name: &str, key: &str, value: &Value, check: &mut HealthCheck, errors: &mut Errors<'_>) {
    match name {
        "interval" => {
            if let Some(ms) = errors.check(key, value, |v| convert::duration_at_least(v, 1, "1 ms"))
            {
                check.interval_ms = ms;
            }
        }
        "timeout" => {
            if let Some(ms) = errors.check(key, value, |v| convert::duration_at_least(v, 1, "1 ms"))
            {
                check.timeout_ms = ms;
            }
        }
        "failures" => {
            if let Some(n) = errors.check(key, value, convert::positive_count) {
                check.failures = n;
            }
        }
        "start_period" => {
            if let Some(ms) = errors.check(key, value, convert::duration) {
                check.start_period_ms = ms;
            }
        }
        _ => {}
    }
}

/// The keys of the app-level `http` block (the health check of PM2 production templates).
const HTTP_BLOCK_KEYS: &[&str] = &[
    "port",
    "path",
    "host",
    "expect_status",
    "interval",
    "timeout",
    "failures",
    "start_period",
];

/// Read an app's `http: {port, path, expect_status, interval}` block, written `field` by the
/// user: an HTTP health check, the same as `health_check: {http: {port, path, host}, status,
/// interval, ...}`. `false` (or null) means none. PM2 itself ignores this block; production
/// templates written for PM2 use it, and Kelpie honours what they ask for.
pub fn read_http_block(
    field: &str,
    value: &Value,
    spec: &AppSpec,
) -> Result<Option<HealthCheck>, Vec<String>> {
    let object = match value {
        Value::Bool(false) | Value::Null => return Ok(None),
        Value::Object(object) => object,
        other => {
            return Err(vec![format!(
                "field `{field}`: expected an HTTP health check like {{port: 3000, path: '/health', expect_status: 200, interval: 30000}}, got {}",
                describe(other)
            )])
        }
    };
    let mut errors = Errors {
        field,
        list: Vec::new(),
    };
    let keys = sort_keys(object, HTTP_BLOCK_KEYS, None, &mut errors);
    let url = http_address(None, &keys, spec, &mut errors, 0);
    let mut check = HealthCheck::default();
    let mut status = None;
    for (name, key, value) in &keys {
        match *name {
            "expect_status" => status = errors.check(key, value, convert::http_status),
            name => timing(name, key, value, &mut check, &mut errors),
        }
    }
    match url {
        Some(url) if errors.list.is_empty() => {
            check.probe = HealthProbe::Http { url, status };
            Ok(Some(check))
        }
        _ => Err(errors.list),
    }
}

/// `http`: a full `http://` URL, a path on the app's port, or `{port, path, host}`.
fn http(key: &str, value: &Value, spec: &AppSpec, errors: &mut Errors<'_>) -> Option<HealthProbe> {
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
fn http_address(
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

/// `tcp`: a port (on 127.0.0.1), `host:port`, or `true` for the app's own port.
fn tcp(key: &str, value: &Value, spec: &AppSpec, errors: &mut Errors<'_>) -> Option<HealthProbe> {
    let expected = || {
        format!(
            "expected a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or true (the app's port), got {}",
            describe(value)
        )
    };
    let own_port = match value {
        Value::Bool(b) => *b,
        // `--health-tcp true` arrives as text.
        Value::String(s) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    };
    if own_port {
        return match app_address(spec) {
            Ok((host, port)) => Some(HealthProbe::Tcp { host, port }),
            Err(message) => {
                errors.push(Some(key), message);
                None
            }
        };
    }
    let address = match value {
        Value::Number(_) => convert::port(value)
            .ok()
            .map(|port| ListenAddress::Tcp { host: None, port }),
        Value::String(s) if !s.trim().starts_with('/') && !s.trim().starts_with("unix:") => {
            ListenAddress::parse(s).ok()
        }
        _ => None,
    };
    match address {
        Some(ListenAddress::Tcp { host, port }) => Some(HealthProbe::Tcp {
            host: host.unwrap_or_else(|| LOCALHOST.to_string()),
            port,
        }),
        _ => {
            errors.push(Some(key), expected());
            None
        }
    }
}

/// The host and port a probe of "the app" goes to: its Kelpie-owned TCP port (on its host when
/// that is one address, not a wildcard), else a numeric `PORT` in its environment.
fn app_address(spec: &AppSpec) -> Result<(String, u16), String> {
    if spec.increment_var.as_deref() == Some("PORT") && spec.instances > 1 {
        // Each instance listens on its own PORT, but a probe has one address for all of them.
        return Err(
            "each instance has its own PORT (`increment_var: PORT`), so a check on the app's port would probe only the first instance; use an `exec` check (it runs with the instance's PORT) or give an explicit address"
                .to_string(),
        );
    }
    if let Some(ListenAddress::Tcp { host, port }) = &spec.listen {
        let host = match host.as_deref() {
            Some(h) if !matches!(h, "0.0.0.0" | "::" | "") => h.to_string(),
            _ => LOCALHOST.to_string(),
        };
        return Ok((host, *port));
    }
    match spec.env_port() {
        Some(port) => Ok((LOCALHOST.to_string(), port)),
        None => Err(
            "the app has no TCP port to check: set its `port`, or PORT in its `env`, or give a full URL (http://127.0.0.1:3000/health)"
                .to_string(),
        ),
    }
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
    use serde_json::json;

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

    #[test]
    fn the_app_address_prefers_its_listen_host_unless_it_is_a_wildcard() {
        let with = |listen: &str| AppSpec {
            listen: ListenAddress::parse(listen).ok(),
            ..AppSpec::default()
        };
        assert_eq!(app_address(&with("3000")), Ok((LOCALHOST.into(), 3000)));
        assert_eq!(
            app_address(&with("0.0.0.0:3000")),
            Ok((LOCALHOST.into(), 3000))
        );
        assert_eq!(
            app_address(&with("[::]:3000")),
            Ok((LOCALHOST.into(), 3000))
        );
        assert_eq!(
            app_address(&with("10.0.0.5:3000")),
            Ok(("10.0.0.5".into(), 3000))
        );
        assert!(app_address(&with("unix:/run/a.sock")).is_err());
    }

    #[test]
    fn false_means_no_check() {
        assert_eq!(
            read("health_check", &json!(false), &AppSpec::default()),
            Ok(None)
        );
    }
}
