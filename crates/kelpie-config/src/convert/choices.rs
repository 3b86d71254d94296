//! Values from a fixed set: the exec mode, the log type, `log_file` (a path or a boolean), a
//! stop signal.

use super::{expected, unknown_choice, ValueError};
use kelpie_core::{ExecMode, LogType};
use serde_json::Value;

/// `exec_mode`: `fork`/`fork_mode`/`cluster`/`cluster_mode`.
pub(crate) fn exec_mode(value: &Value) -> Result<ExecMode, ValueError> {
    match value.as_str().map(str::trim) {
        Some("fork" | "fork_mode") => Ok(ExecMode::Fork),
        Some("cluster" | "cluster_mode") => Ok(ExecMode::Cluster),
        _ => Err(unknown_choice("\"fork\" or \"cluster\"", value)),
    }
}

/// `log_type`: `raw` or `json`.
pub(crate) fn log_type(value: &Value) -> Result<LogType, ValueError> {
    match value
        .as_str()
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("raw") => Ok(LogType::Raw),
        Some("json") => Ok(LogType::Json),
        _ => Err(unknown_choice("\"raw\" or \"json\"", value)),
    }
}

/// `log_file`: `true` is the default combined file (`Some("")`), `false` none, or a path
/// (resolved by the caller).
pub(crate) fn log_file(value: &Value) -> Result<Option<String>, ValueError> {
    match value {
        Value::Bool(b) => Ok(b.then(String::new)),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(String::new())),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(None),
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.clone())),
        _ => Err(expected(
            "a file path, true (the default file) or false",
            value,
        )),
    }
}

/// Signals that terminate a process by default. Others (`SIGCHLD`, `SIGCONT`, `SIGSTOP`, …) would
/// never stop the app and always end in SIGKILL after `kill_timeout`, so they are refused.
const STOP_SIGNALS: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A stop signal name; `TERM`, `sigterm` and `SIGTERM` all give `SIGTERM`.
pub(crate) fn signal(value: &Value) -> Result<String, ValueError> {
    let refuse = || {
        unknown_choice(
            "a signal name such as SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL",
            value,
        )
    };
    let upper = value
        .as_str()
        .ok_or_else(refuse)?
        .trim()
        .to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    STOP_SIGNALS
        .iter()
        .find(|s| **s == name)
        .map(|s| s.to_string())
        .ok_or_else(refuse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exec_modes_accept_pm2_spellings() {
        assert_eq!(exec_mode(&json!("fork")), Ok(ExecMode::Fork));
        assert_eq!(exec_mode(&json!("fork_mode")), Ok(ExecMode::Fork));
        assert_eq!(exec_mode(&json!("cluster")), Ok(ExecMode::Cluster));
        assert_eq!(exec_mode(&json!("cluster_mode")), Ok(ExecMode::Cluster));
        assert!(exec_mode(&json!("threads")).is_err());
    }

    #[test]
    fn signals_are_normalised_and_validated() {
        assert_eq!(signal(&json!("SIGTERM")), Ok("SIGTERM".into()));
        assert_eq!(signal(&json!("TERM")), Ok("SIGTERM".into()));
        assert_eq!(signal(&json!("sigusr2")), Ok("SIGUSR2".into()));
        assert!(signal(&json!("SIGCONT")).is_err());
        assert!(signal(&json!("NOPE"))
            .expect_err("should fail")
            .to_string()
            .contains("SIGINT"));
        assert!(signal(&json!(15)).is_err());
    }

    #[test]
    fn log_files_take_paths_or_booleans() {
        assert_eq!(log_file(&json!(true)), Ok(Some(String::new())));
        assert_eq!(log_file(&json!("true")), Ok(Some(String::new())));
        assert_eq!(log_file(&json!(false)), Ok(None));
        assert_eq!(log_file(&json!("FALSE")), Ok(None));
        assert_eq!(log_file(&json!("a.log")), Ok(Some("a.log".into())));
        assert_eq!(
            log_file(&json!("")).map_err(|e| e.to_string()),
            Err("expected a file path, true (the default file) or false, got \"\"".into())
        );
        assert!(log_file(&json!(1)).is_err());
    }

    #[test]
    fn log_types_are_raw_or_json() {
        assert_eq!(log_type(&json!("json")), Ok(LogType::Json));
        assert_eq!(log_type(&json!(" JSON ")), Ok(LogType::Json));
        assert_eq!(log_type(&json!("raw")), Ok(LogType::Raw));
        assert_eq!(
            log_type(&json!("xml")).map_err(|e| e.to_string()),
            Err("expected \"raw\" or \"json\", got \"xml\"".into())
        );
        assert!(log_type(&json!(true)).is_err());
    }
}
