//! Small formatting helpers shared by the renderers.

/// PM2-style short duration: `45s`, `12m`, `5h`, `3D`.
pub(crate) fn short_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}D", s / 86_400),
    }
}

/// PM2-style memory: `0b`, `812.0kb`, `12.3mb`, `1.2gb`.
pub(crate) fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let f = n as f64;
    if n == 0 {
        "0b".into()
    } else if f < K * K {
        format!("{:.1}kb", f / K)
    } else if f < K * K * K {
        format!("{:.1}mb", f / K / K)
    } else {
        format!("{:.1}gb", f / K / K / K)
    }
}

/// One `@pm2/io` metric as `pm2 show` writes it: its value, then its unit when it has one
/// (`10.48 MiB`). The SDK sends numbers, text (`"10.48"`, shown without quotes) or booleans.
pub(super) fn sdk_metric(entry: &serde_json::Value) -> String {
    let value = match &entry["value"] {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    match entry["unit"].as_str() {
        Some(unit) => format!("{value} {unit}"),
        None => value,
    }
}

/// The wall clock now, in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// ms since the epoch as RFC 3339 UTC (`2026-11-22T08:17:27Z`).
pub(super) fn utc(ms: u64) -> String {
    kelpie_core::format_utc(ms, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(short_duration(59_999), "59s");
        assert_eq!(short_duration(3_600_000), "1h");
        assert_eq!(short_duration(90_000_000), "1D");
        assert_eq!(bytes(0), "0b");
        assert_eq!(bytes(12 * 1024 * 1024 + 300 * 1024), "12.3mb");
        assert_eq!(utc(1_709_210_096_789), "2024-02-29T12:34:56Z");
        use serde_json::json;
        assert_eq!(
            sdk_metric(&json!({"value": "10.48", "unit": "MiB"})),
            "10.48 MiB"
        );
        assert_eq!(
            sdk_metric(&json!({"value": 42, "unit": "users"})),
            "42 users"
        );
        assert_eq!(
            sdk_metric(&json!({"value": true, "historic": true})),
            "true"
        );
    }
}
