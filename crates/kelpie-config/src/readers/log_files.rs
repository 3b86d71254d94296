//! The app's logs: their paths, merging, date format, type, rotation.

use super::Reader;
use crate::convert;
use crate::paths::{absolutize, expand_tilde};
use kelpie_core::{AppSpec, LogRotation, LogType};
use std::path::Path;

/// What `time: true` sets `log_date_format` to, as PM2 does.
pub(super) const TIME_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss";

/// Log paths are made absolute against the app's cwd (as PM2 does), after `~` expansion;
/// `NULL` (PM2's "discard") is kept as is, like `/dev/null`.
pub(super) fn read_logs(r: &mut Reader<'_>, spec: &mut AppSpec, cwd: &Path, home: Option<&str>) {
    let resolve = |p: String| {
        if p == "NULL" {
            return p;
        }
        absolutize(cwd, Path::new(&expand_tilde(&p, home)))
            .display()
            .to_string()
    };
    spec.out_file = r.get("out_file", convert::string).map(resolve);
    spec.error_file = r.get("error_file", convert::string).map(resolve);
    spec.pid_file = r.get("pid_file", convert::string).map(resolve);
    if let Some(b) = r.get("merge_logs", convert::boolean) {
        spec.merge_logs = b;
    }
    // `Some("")` (`log: true`) is the daemon's default location and stays empty.
    spec.log_file = r.get("log_file", convert::log_file).flatten().map(|p| {
        if p.is_empty() {
            p
        } else {
            resolve(p)
        }
    });
    spec.log_date_format = r.get("log_date_format", convert::string);
    // PM2: `time: true` wins over a custom `log_date_format`.
    if r.get("time", convert::boolean) == Some(true) {
        spec.log_date_format = Some(TIME_FORMAT.to_string());
    }
    // PM2 writes JSON for `json` and raw lines for any other string (`format`, ...).
    let raw_lines = |value: &serde_json::Value| {
        value
            .is_string()
            .then_some((LogType::Raw, "lines are written raw, as PM2 writes them"))
    };
    if let Some(log_type) = r.get_or_warn("log_type", convert::log_type, raw_lines) {
        spec.log_type = log_type;
    }
    if let Some(b) = r.get("disable_logs", convert::boolean) {
        spec.disable_logs = b;
    }
    spec.log_rotation = LogRotation {
        max_size: r.get("log_max_size", convert::bytes),
        retain: r.get("log_retain", convert::count),
        compress: r.get("log_compress", convert::boolean),
        interval_ms: r.get("log_rotate_interval", convert::rotate_interval),
    };
}
