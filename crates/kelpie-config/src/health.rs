//! `health_check`: what to probe (exactly one of `http`, `tcp` or `exec`) and how often, into a
//! [`HealthCheck`]. Read after the app's port is known, since a bare path is checked there.
//!
//! Here: `health_check` itself and its timing keys. Its parts, in `health/`: reading an
//! object's keys and naming errors as the user wrote them (`keys`), the `http` probe (`http`),
//! the app-level `http` block of PM2 templates (`http_block`), and where a probe of the app
//! goes, with the `tcp` probe (`address`).

mod address;
mod http;
mod http_block;
mod keys;

pub(crate) use http_block::read_http_block;

use crate::convert::{self, describe};
use address::tcp;
use http::http;
use kelpie_core::{AppSpec, HealthCheck, HealthProbe};
use keys::{sort_keys, Errors};
use serde_json::Value;

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

/// Where probes go when the user gave no host: the app runs on this machine, and Kelpie binds
/// every address when it has no host.
const LOCALHOST: &str = "127.0.0.1";

/// Read the `health_check` field, written `field` by the user, of an app whose port, instances
/// and environment are already set in `spec`. `false` means none. Errors are complete
/// "field `health_check.interval`: …" messages.
pub(crate) fn read(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn false_means_no_check() {
        assert_eq!(
            read("health_check", &json!(false), &AppSpec::default()),
            Ok(None)
        );
    }
}
