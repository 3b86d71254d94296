//! Any cron expression, in a few zones, from any instant between 1900 and 2200: parsed or
//! refused, and each next run found (or given up) quickly, strictly later, on a whole second.
#![no_main]

use jiff::tz::TimeZone;
use jiff::Timestamp;
use kelpie_core::cron::{time_zone, CronSchedule};

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((head, text)) = data.split_first_chunk::<9>() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(schedule) = CronSchedule::parse(text) else {
        return;
    };
    assert_eq!(
        CronSchedule::parse(schedule.expression()),
        Ok(schedule.clone())
    );
    let [zone, bytes @ ..] = *head;
    let tz = time_zone(Some(ZONES[usize::from(zone) % ZONES.len()])).unwrap_or(TimeZone::UTC);
    // 1900-01-01 to 2200-01-01, with sub-second parts.
    let raw = i64::from_le_bytes(bytes);
    let span = 9_467_107_200i64;
    let secs = -2_208_988_800 + raw.rem_euclid(span);
    let nanos = (raw >> 40).rem_euclid(1_000_000_000) as i32;
    let Ok(at) = Timestamp::new(secs, nanos) else {
        return;
    };
    let mut after = at.to_zoned(tz);
    for _ in 0..3 {
        let Some(next) = schedule.next_after(&after) else {
            break;
        };
        assert!(next > after, "{text}: {next} is not after {after}");
        assert_eq!(next.timestamp().subsec_nanosecond(), 0);
        after = next;
    }
});
