//! The local time zone's offset from UTC, for log timestamps.
//!
//! From jiff's system time zone: `TZ` when set, else `/etc/localtime` (jiff reads the zone's
//! rules once and looks at `/etc/localtime` again now and then, so a changed zone is seen
//! without a restart). The offset follows daylight saving time from the zone's rules.

/// The local time zone's offset east of UTC at `unix_secs`, in seconds (3600 for +01:00, and
/// the summer offset during daylight saving time), or 0 when it cannot be told (a time out of
/// range).
pub fn utc_offset_secs(unix_secs: i64) -> i32 {
    match jiff::Timestamp::from_second(unix_secs) {
        Ok(time) => jiff::tz::TimeZone::system().to_offset(time).seconds(),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::utc_offset_secs;

    const FOURTEEN_HOURS: i32 = 14 * 3600;

    #[test]
    fn offset_is_a_real_zone_offset() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for secs in [now, 0, 1_709_210_096, -2_208_988_800] {
            let offset = utc_offset_secs(secs);
            assert!(
                (-FOURTEEN_HOURS..=FOURTEEN_HOURS).contains(&offset),
                "offset {offset} at {secs}"
            );
        }
        // Out of time_t's or the zone code's range is 0, not a panic.
        assert_eq!(utc_offset_secs(i64::MAX), 0);
    }

    /// Agrees with date(1), which reads the same TZ and /etc/localtime in a child process, so
    /// nothing is set in this one. Skipped where GNU date is missing (coreutils).
    #[test]
    fn agrees_with_date() {
        // Winter and summer in both hemispheres.
        for secs in [1_709_210_096_i64, 1_719_792_000] {
            let Ok(output) = std::process::Command::new("date")
                .arg("-d")
                .arg(format!("@{secs}"))
                .arg("+%z")
                .output()
            else {
                kelpie_testkit::skip("date(1) is not installed (coreutils)");
                return;
            };
            if !output.status.success() {
                kelpie_testkit::skip("date(1) is not GNU date (no `-d @secs`; coreutils)");
                return;
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let text = text.trim();
            // `+0530`: sign, hours, minutes.
            let (sign, digits) = text.split_at(1);
            let (Ok(hours), Ok(minutes)) = (digits[..2].parse::<i32>(), digits[2..].parse::<i32>())
            else {
                panic!("unexpected date output {text:?}");
            };
            let want = (hours * 3600 + minutes * 60) * if sign == "-" { -1 } else { 1 };
            assert_eq!(utc_offset_secs(secs), want, "at {secs}, date says {text}");
        }
    }
}
