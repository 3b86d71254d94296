//! The app-level `http: {port, path, expect_status, interval}` block of PM2 production
//! templates: an HTTP health check like `health_check`'s.

use super::http::http_address;
use super::keys::{sort_keys, Errors};
use super::timing;
use crate::convert::{self, describe};
use kelpie_core::{AppSpec, HealthCheck, HealthProbe};
use serde_json::Value;

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
pub(crate) fn read_http_block(
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
