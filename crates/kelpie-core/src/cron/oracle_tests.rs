//! The hand-written schedule (`parse`, `next`) checked against `croner`, the Rust port of the
//! library PM2 itself uses for `cron_restart`, on the subset both read the same way: random
//! 5- and 6-field expressions of numbers, ranges, steps and lists (names and the day fields'
//! `?` are left out: croner reads `?` as the creation time, Kelpie as `*`, on purpose), from
//! random instants in UTC (the daylight-saving rules are Kelpie's own, documented in
//! `cron.rs`, and tested there). The next five firings must be the same instants.

use super::CronSchedule;
use chrono::{DateTime, TimeZone as _, Utc};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use proptest::prelude::*;

/// One field: `*`, a value, a range, a step over either, or a list of those.
fn field(min: u32, max: u32) -> BoxedStrategy<String> {
    let value = move || (min..=max).prop_map(|v| v.to_string());
    let range =
        move || (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b)));
    let part = prop_oneof![
        3 => value(),
        2 => range(),
        1 => (1..=(max - min).max(1)).prop_map(|s| format!("*/{s}")),
        1 => (range(), 1..=(max - min).max(1)).prop_map(|(r, s)| format!("{r}/{s}")),
    ];
    prop_oneof![
        2 => Just("*".to_string()),
        3 => part.clone(),
        1 => prop::collection::vec(part, 2..4).prop_map(|parts| parts.join(",")),
    ]
    .boxed()
}

fn expressions() -> impl Strategy<Value = String> {
    (
        prop::option::of(field(0, 59)),
        field(0, 59),
        field(0, 23),
        field(1, 31),
        field(1, 12),
        field(0, 6),
    )
        .prop_map(|(seconds, minutes, hours, days, months, weekdays)| {
            let five = format!("{minutes} {hours} {days} {months} {weekdays}");
            match seconds {
                Some(seconds) => format!("{seconds} {five}"),
                None => five,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_500))]

    #[test]
    fn the_next_firings_are_croners(
        expression in expressions(),
        // 2001 to 2037: inside both libraries' ranges, across leap years.
        start in 978_307_200i64..2_114_380_800,
    ) {
        let ours = CronSchedule::parse(&expression);
        let theirs = croner::Cron::new(&expression).with_seconds_optional().parse();
        let (ours, theirs) = match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => (ours, theirs),
            (Err(_), Err(_)) => return Ok(()),
            (ours, theirs) => {
                prop_assert!(false, "{expression}: they disagree on its validity: ours {ours:?}, croner {theirs:?}");
                unreachable!()
            }
        };
        let mut at = Timestamp::from_second(start).expect("in range").to_zoned(TimeZone::UTC);
        let mut their_at: DateTime<Utc> = Utc.timestamp_opt(start, 0).single().expect("in range");
        for _ in 0..5 {
            let our_next = ours.next_after(&at);
            let their_next = theirs.find_next_occurrence(&their_at, false).ok();
            prop_assert_eq!(
                our_next.as_ref().map(|z| z.timestamp().as_second()),
                their_next.map(|t| t.timestamp()),
                "{} after {}", expression, at
            );
            match (our_next, their_next) {
                (Some(ours), Some(theirs)) => {
                    at = ours;
                    their_at = theirs;
                }
                _ => break,
            }
        }
    }
}
