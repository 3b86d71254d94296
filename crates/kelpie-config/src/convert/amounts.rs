//! Durations and sizes: a number (of milliseconds, of bytes) or a string with a unit; a
//! minimum; a log rotation period (`daily`, `hourly`, `never` or a duration); `watchdog`, whose
//! bare numbers are seconds.

use super::{expected, integer, too_small, ValueError};
use crate::units::{parse_bytes, parse_duration_ms};
use serde_json::Value;

/// Milliseconds: a number of ms, or a string like `10s`.
pub(crate) fn duration(value: &Value) -> Result<u64, ValueError> {
    match value {
        Value::String(s) => Ok(parse_duration_ms(s)?),
        _ => integer(value)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                expected(
                    "a duration like 500ms, 10s, 5m, 1h or a number of milliseconds",
                    value,
                )
            }),
    }
}

/// Bytes: a number of bytes, or a string like `200M`.
pub(crate) fn bytes(value: &Value) -> Result<u64, ValueError> {
    match value {
        Value::String(s) => Ok(parse_bytes(s)?),
        _ => integer(value)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| expected("a size like 200M, 1G or a number of bytes", value)),
    }
}

/// A [`duration`] of at least `min_ms`; `min` says it in words for the message.
pub(crate) fn duration_at_least(value: &Value, min_ms: u64, min: &str) -> Result<u64, ValueError> {
    let ms = duration(value)?;
    if ms < min_ms {
        return Err(too_small(min, value));
    }
    Ok(ms)
}

/// One day in milliseconds: rotation at local midnight.
pub(crate) const DAILY_MS: u64 = 86_400_000;
/// One hour in milliseconds.
pub(super) const HOURLY_MS: u64 = 3_600_000;
/// Shortest rotation period accepted (a shorter one is almost certainly a unit mistake).
const MIN_ROTATE_INTERVAL_MS: u64 = 60_000;

/// Rotation period in ms: `daily`, `hourly`, `never` (0), or a duration of at least one minute
/// (`6h`, `30m`, a number of ms; `0` also means never).
pub(crate) fn rotate_interval(value: &Value) -> Result<u64, ValueError> {
    let ms = match value.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("daily") => DAILY_MS,
        Some("hourly") => HOURLY_MS,
        Some("never") => 0,
        _ => duration(value).map_err(|_| {
            expected(
                "\"daily\", \"hourly\", \"never\" or a duration like 6h, 30m or a number of milliseconds",
                value,
            )
        })?,
    };
    if ms != 0 && ms < MIN_ROTATE_INTERVAL_MS {
        return Err(too_small("1 minute (or \"never\")", value));
    }
    Ok(ms)
}

/// `watchdog`: like systemd's `WatchdogSec`, a bare number is SECONDS (`30`, `"1.5"`), unlike
/// every other duration field; with a unit it reads as they do (`30s`, `1m`, `1500ms`). At least
/// one second.
pub(crate) fn watchdog(value: &Value) -> Result<u64, ValueError> {
    let bad = || {
        expected(
            "a duration like 30s, 1m or a number of seconds (not milliseconds)",
            value,
        )
    };
    let seconds = |s: f64| {
        (0.0..1e12)
            .contains(&s)
            .then(|| (s * 1000.0).round() as u64)
    };
    let ms = match value {
        Value::Number(n) => n.as_f64().and_then(seconds),
        Value::String(s) => {
            let t = s.trim();
            let plain = !t.is_empty()
                && t.bytes().any(|b| b.is_ascii_digit())
                && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if plain {
                t.parse::<f64>().ok().and_then(seconds)
            } else {
                parse_duration_ms(t).ok()
            }
        }
        _ => None,
    }
    .ok_or_else(bad)?;
    if ms < 1000 {
        return Err(too_small("1 second", value));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_and_bytes_take_numbers_or_units() {
        assert_eq!(duration(&json!(3000)), Ok(3000));
        assert_eq!(duration(&json!("3s")), Ok(3000));
        assert!(duration(&json!(-5)).is_err());
        assert_eq!(bytes(&json!(1024)), Ok(1024));
        assert_eq!(bytes(&json!("200M")), Ok(200 << 20));
        assert_eq!(
            bytes(&json!("lots")).expect_err("should fail").to_string(),
            "expected a size like 200M, 1G or a number of bytes, got \"lots\""
        );
        assert!(bytes(&json!(true)).is_err());
    }

    #[test]
    fn rotate_intervals_take_words_and_durations() {
        assert_eq!(rotate_interval(&json!("daily")), Ok(DAILY_MS));
        assert_eq!(rotate_interval(&json!("Hourly")), Ok(HOURLY_MS));
        assert_eq!(rotate_interval(&json!("never")), Ok(0));
        assert_eq!(rotate_interval(&json!(0)), Ok(0));
        assert_eq!(rotate_interval(&json!("0")), Ok(0));
        assert_eq!(rotate_interval(&json!("6h")), Ok(6 * HOURLY_MS));
        assert_eq!(rotate_interval(&json!("1m")), Ok(60_000));
        assert_eq!(rotate_interval(&json!(120_000)), Ok(120_000));
        assert_eq!(
            rotate_interval(&json!("30s")).map_err(|e| e.to_string()),
            Err("expected at least 1 minute (or \"never\"), got \"30s\"".into())
        );
        assert!(rotate_interval(&json!(500)).is_err());
        assert_eq!(
            rotate_interval(&json!("weekly")).map_err(|e| e.to_string()),
            Err("expected \"daily\", \"hourly\", \"never\" or a duration like 6h, 30m or a number of milliseconds, got \"weekly\"".into())
        );
        assert!(rotate_interval(&json!(-1)).is_err());
    }

    #[test]
    fn watchdog_bare_numbers_are_seconds() {
        assert_eq!(watchdog(&json!(30)), Ok(30_000));
        assert_eq!(watchdog(&json!(1)), Ok(1000));
        assert_eq!(watchdog(&json!(0.5 + 1.0)), Ok(1500));
        assert_eq!(watchdog(&json!("45")), Ok(45_000));
        assert_eq!(watchdog(&json!(" 2.25 ")), Ok(2250));
        assert_eq!(watchdog(&json!("1m")), Ok(60_000));
        assert_eq!(watchdog(&json!("1000ms")), Ok(1000));
        assert_eq!(
            watchdog(&json!("999ms")).map_err(|e| e.to_string()),
            Err("expected at least 1 second, got \"999ms\"".into())
        );
        assert_eq!(
            watchdog(&json!(0.5)).map_err(|e| e.to_string()),
            Err("expected at least 1 second, got 0.5".into())
        );
        for bad in [json!("."), json!("1e3"), json!(-1), json!(""), json!(null)] {
            assert!(watchdog(&bad).is_err(), "{bad}");
        }
    }
}
