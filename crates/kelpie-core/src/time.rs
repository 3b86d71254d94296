//! Wall-clock times for people: RFC 3339 in UTC.

/// Format ms since the Unix epoch as `2026-11-22T08:17:27Z`, or with `.mmm` when `with_millis`.
/// Instants past jiff's range (after the year 9999) are shown as its last one.
pub fn format_utc(ms: u64, with_millis: bool) -> String {
    let instant = i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    if with_millis {
        format!("{instant:.3}")
    } else {
        format!("{instant:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0, true), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_utc(1_709_210_096_789, true),
            "2024-02-29T12:34:56.789Z"
        );
        assert_eq!(format_utc(1_709_210_096_789, false), "2024-02-29T12:34:56Z");
        assert_eq!(format_utc(951_782_400_000, false), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(u64::MAX, false), "9999-12-30T22:00:00Z");
    }
}
