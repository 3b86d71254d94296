//! Typed readers for field values. Each fails with a [`ValueError`], whose `Display` is the
//! "expected …, got …" half of a message; the caller prefixes file, app and field. Strings holding numbers are accepted everywhere a number
//! is, because `kelpie start` flags arrive as strings and YAML users quote freely.
//!
//! Here: the shapes every reader builds on (strings, booleans, whole numbers, words) and how a
//! value is shown in messages. The readers by kind, in `convert/`: durations and sizes
//! (`amounts`), bounded numbers (`numbers`), values from a fixed set (`choices`), text that must
//! compile or resolve (`patterns`), and names, paths and addresses (`names`).

mod amounts;
mod choices;
mod error;
mod names;
mod numbers;
mod patterns;

pub(crate) use amounts::{bytes, duration, duration_at_least, rotate_interval, watchdog, DAILY_MS};
pub(crate) use choices::{exec_mode, log_file, log_type, signal};
pub use error::ValueError;
pub(crate) use error::{expected, out_of_range, too_small, unknown_choice};
pub(crate) use names::{account, app_names, env_var_name, listen, port, watch};
pub(crate) use numbers::{
    cpu_percent, exit_codes, instances, instances_cpu_relative, max_processes, nice,
};
pub(crate) use patterns::{cron, globs, regex, time_zone};

use serde_json::Value;

/// A value as shown in messages: strings quoted, other values as JSON.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The JSON type of a value in words, for shape errors.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A non-empty string.
pub(crate) fn string(value: &Value) -> Result<String, ValueError> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(expected("a non-empty string", value)),
    }
}

/// `true`/`false` (or those words as strings).
pub(crate) fn boolean(value: &Value) -> Result<bool, ValueError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(expected("true or false", value)),
    }
}

/// An integer, from a JSON number (integral) or a numeric string.
pub(super) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A whole number ≥ 0 that fits in `u32`.
pub(crate) fn count(value: &Value) -> Result<u32, ValueError> {
    integer(value)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| expected("a whole number ≥ 0", value))
}

/// A whole number ≥ 1 that fits in `u32`.
pub(crate) fn positive_count(value: &Value) -> Result<u32, ValueError> {
    integer(value)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .ok_or_else(|| expected("a whole number ≥ 1", value))
}

/// An HTTP status code, 100 to 599.
pub(crate) fn http_status(value: &Value) -> Result<u16, ValueError> {
    const WHAT: &str = "an HTTP status code from 100 to 599";
    let n = integer(value).ok_or_else(|| expected(WHAT, value))?;
    u16::try_from(n)
        .ok()
        .filter(|n| (100..=599).contains(n))
        .ok_or_else(|| out_of_range(WHAT, value))
}

/// A list of words: a string (split like a shell would) or a list of scalars.
pub(crate) fn words(value: &Value) -> Result<Vec<String>, ValueError> {
    match value {
        Value::String(s) => Ok(crate::words::split_words(s)?),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                other => Err(expected("a list of strings", other)),
            })
            .collect(),
        _ => Err(expected("a string or a list of strings", value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_accept_numeric_strings() {
        assert_eq!(count(&json!(5)), Ok(5));
        assert_eq!(count(&json!("7")), Ok(7));
        assert_eq!(count(&json!(3.0)), Ok(3));
        assert!(count(&json!(-1)).is_err());
        assert!(count(&json!(1.5)).is_err());
        assert!(count(&json!("x"))
            .expect_err("should fail")
            .to_string()
            .contains("got \"x\""));
    }

    #[test]
    fn words_split_strings_and_stringify_lists() {
        assert_eq!(
            words(&json!("--a 'b c'")),
            Ok(vec!["--a".into(), "b c".into()])
        );
        assert_eq!(
            words(&json!(["--port", 80, true])),
            Ok(vec!["--port".into(), "80".into(), "true".into()])
        );
        assert!(words(&json!({"a": 1})).is_err());
        assert!(words(&json!([["nested"]])).is_err());
    }

    #[test]
    fn statuses_counts_and_minimum_durations() {
        assert_eq!(http_status(&json!(204)), Ok(204));
        assert_eq!(http_status(&json!("100")), Ok(100));
        assert!(http_status(&json!(99)).is_err());
        assert!(http_status(&json!(600)).is_err());
        assert_eq!(positive_count(&json!(1)), Ok(1));
        assert!(positive_count(&json!(0)).is_err());
        assert_eq!(duration_at_least(&json!("2s"), 1000, "1 second"), Ok(2000));
        assert_eq!(
            duration_at_least(&json!(999), 1000, "1 second").map_err(|e| e.to_string()),
            Err("expected at least 1 second, got 999".into())
        );
    }

    #[test]
    fn nice_values_and_accounts() {
        assert_eq!(nice(&json!(-20)), Ok(-20));
        assert_eq!(nice(&json!("19")), Ok(19));
        assert!(nice(&json!(20)).is_err());
        assert!(nice(&json!(-21)).is_err());
        assert_eq!(account(&json!(" www "), "a user"), Ok("www".into()));
        assert_eq!(account(&json!(0), "a user"), Ok("0".into()));
        assert_eq!(
            account(&json!("a b"), "a user name or uid").map_err(|e| e.to_string()),
            Err("expected a user name or uid, got \"a b\"".into())
        );
        assert!(account(&json!(-1), "a user").is_err());
        assert!(account(&json!(1.5), "a user").is_err());
    }

    #[test]
    fn booleans_and_strings() {
        assert_eq!(boolean(&json!(true)), Ok(true));
        assert_eq!(boolean(&json!("false")), Ok(false));
        assert!(boolean(&json!(1)).is_err());
        assert!(string(&json!("")).is_err());
        assert_eq!(string(&json!("x")), Ok("x".into()));
    }
}
