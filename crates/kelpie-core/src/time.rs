//! Wall-clock times for people: RFC 3339 in UTC, without a date library.

/// Format ms since the Unix epoch as `2026-11-22T08:17:27Z`, or with `.mmm` when `with_millis`.
pub fn format_utc(ms: u64, with_millis: bool) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if with_millis {
        format!(
            "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            ms % 1000
        )
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day), for the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    }
}
