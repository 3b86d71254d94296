//! Sizes and durations written the way PM2 users write them (`200M`, `10s`).

/// Text that is not a size or a duration; `Display` says what was expected and what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a size ([`parse_bytes`]).
    #[error("expected a size like 200M, 1G or a number of bytes, got {text:?}")]
    Size {
        /// The text as given.
        text: String,
    },
    /// Not a duration ([`parse_duration_ms`]).
    #[error(
        "expected a duration like 500ms, 10s, 5m, 1h or a number of milliseconds, got {text:?}"
    )]
    Duration {
        /// The text as given.
        text: String,
    },
}

/// Parse "1G"/"200M"/"10K"/"512" into bytes (binary multiples, like PM2).
pub fn parse_bytes(s: &str) -> Result<u64, AmountError> {
    let expected = || AmountError::Size {
        text: s.to_string(),
    };
    let (number, unit) = split_unit(s);
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(expected()),
    };
    scale(number, multiplier).ok_or_else(expected)
}

/// Parse "500ms"/"10s"/"5m"/"1h"/"1500" into milliseconds; a bare number is milliseconds, as in PM2.
pub fn parse_duration_ms(s: &str) -> Result<u64, AmountError> {
    let expected = || AmountError::Duration {
        text: s.to_string(),
    };
    let (number, unit) = split_unit(s);
    let multiplier: u64 = match unit.as_str() {
        "" | "ms" => 1,
        "s" | "sec" | "secs" => 1_000,
        "m" | "min" | "mins" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(expected()),
    };
    scale(number, multiplier).ok_or_else(expected)
}

/// Splits "200 M" into ("200", "m"): the unit is the trailing run of letters, lowercased.
fn split_unit(s: &str) -> (&str, String) {
    let t = s.trim();
    let idx = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    (t[..idx].trim(), t[idx..].trim().to_ascii_lowercase())
}

/// Exact integer arithmetic when possible; decimals ("1.5G") go through f64 and are rounded.
fn scale(number: &str, multiplier: u64) -> Option<u64> {
    if number.is_empty() {
        return None;
    }
    if number.bytes().all(|b| b.is_ascii_digit()) {
        return number.parse::<u64>().ok()?.checked_mul(multiplier);
    }
    // Only plain decimals: f64's parser would also take "inf", "1e3" or "-1".
    if !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scaled = (value * multiplier as f64).round();
    (scaled.is_finite() && scaled >= 0.0 && scaled < u64::MAX as f64).then_some(scaled as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_accept_pm2_forms() {
        assert_eq!(parse_bytes("512"), Ok(512));
        assert_eq!(parse_bytes("10K"), Ok(10 * 1024));
        assert_eq!(parse_bytes("200M"), Ok(200 * 1024 * 1024));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes(" 64 MB "), Ok(64 << 20));
    }

    #[test]
    fn bytes_reject_nonsense_with_expected_form() {
        let err = parse_bytes("lots").expect_err("should fail").to_string();
        assert_eq!(
            err,
            "expected a size like 200M, 1G or a number of bytes, got \"lots\""
        );
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("-1M").is_err());
        assert!(parse_bytes("10X").is_err());
        assert!(parse_bytes("99999999999999999999").is_err());
    }

    #[test]
    fn durations_accept_units_and_bare_milliseconds() {
        assert_eq!(parse_duration_ms("1500"), Ok(1500));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("10s"), Ok(10_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
    }

    #[test]
    fn durations_reject_nonsense_with_expected_form() {
        let err = parse_duration_ms("soon")
            .expect_err("should fail")
            .to_string();
        assert!(err.contains("expected a duration like 500ms, 10s"), "{err}");
        assert!(err.contains("\"soon\""), "{err}");
        assert!(parse_duration_ms("10 parsecs").is_err());
        assert!(parse_duration_ms("1e3").is_err());
    }
}
