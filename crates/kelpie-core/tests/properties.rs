//! Property tests of the parsers of user text in the core: cron expressions and time zones,
//! listen addresses, log date formats and notify-socket lines. Whatever the text, they answer
//! (a value or an error that says why), never panic and never loop. The fuzz targets in `fuzz/`
//! run the same entry points for longer.

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use kelpie_core::cron::{time_zone, CronSchedule};
use kelpie_core::forensics::{parse_notify_line, NotifyLine, METRICS_MAX, STATUS_MAX_BYTES};
use kelpie_core::{format_utc, DateFormat, ListenAddress, Published};
use proptest::prelude::*;

/// One item of a cron field, mostly well formed, with numbers a little past every range.
fn cron_item() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        (0u8..70).prop_map(|n| n.to_string()),
        Just("*".to_string()),
        "(JAN|feb|Dec|SUN|mon|sat|XYZ)",
    ];
    (
        value.clone(),
        prop::option::of(value),
        prop::option::of(0u8..70),
    )
        .prop_map(|(low, high, step)| {
            let mut item = low;
            if let Some(high) = high {
                item = format!("{item}-{high}");
            }
            if let Some(step) = step {
                item = format!("{item}/{step}");
            }
            item
        })
}

/// Five or six fields of items, `?` or nothing.
fn cron_fields() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        4 => prop::collection::vec(cron_item(), 1..4).prop_map(|items| items.join(",")),
        1 => Just("?".to_string()),
        1 => Just("*".to_string()),
    ];
    prop::collection::vec(field, 4..8).prop_map(|fields| fields.join(" "))
}

/// Text made of what cron expressions are made of, so most cases get past the field count.
fn cronish() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => cron_fields(),
        1 => "[0-9*/,?\\- ]{0,40}",
        1 => "@[a-zA-Z]{0,10}",
        1 => any::<String>(),
    ]
}

/// An instant between 1900 and 2200, whole seconds or not.
fn instant() -> impl Strategy<Value = Timestamp> {
    (-2_208_988_800i64..7_258_118_400, 0i32..1_000_000_000)
        .prop_map(|(secs, nanos)| Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Zones with and without daylight-saving changes; the named ones only when the system has a
/// time zone database.
fn zone() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        Just("UTC"),
        Just("Europe/Paris"),
        Just("America/New_York"),
        Just("Australia/Lord_Howe"),
        Just("Asia/Kolkata"),
    ]
    .prop_map(|name| time_zone(Some(name)).unwrap_or(TimeZone::UTC))
}

proptest! {
    #[test]
    fn cron_expressions_parse_or_explain(text in cronish()) {
        match CronSchedule::parse(&text) {
            Ok(schedule) => {
                prop_assert_eq!(schedule.expression(), text.as_str());
                // What parsed once parses again to the same schedule.
                prop_assert_eq!(CronSchedule::parse(schedule.expression()), Ok(schedule));
            }
            Err(message) => prop_assert!(!message.to_string().is_empty()),
        }
    }

    #[test]
    fn the_next_run_is_later_on_a_whole_second_and_found_quickly(
        text in cronish(),
        at in instant(),
        tz in zone(),
    ) {
        let Ok(schedule) = CronSchedule::parse(&text) else {
            return Ok(());
        };
        let after = at.to_zoned(tz);
        let started = std::time::Instant::now();
        let next = schedule.next_after(&after);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(2), "{} from {}", text, after);
        if let Some(next) = next {
            prop_assert!(next > after, "{} from {}: {}", text, after, next);
            prop_assert_eq!(next.timestamp().subsec_nanosecond(), 0);
            // Eight years of search at most.
            prop_assert!(next.year() <= after.year() + 9, "{} from {}: {}", text, after, next);
        }
    }

    #[test]
    fn valid_five_field_expressions_always_parse(
        minute in 0u8..60,
        hour in 0u8..24,
        day in 1u8..32,
        month in 1u8..13,
        weekday in 0u8..8,
        step in 1u8..60,
    ) {
        for text in [
            format!("{minute} {hour} {day} {month} {weekday}"),
            format!("*/{step} {hour}-23 * {month} *"),
            format!("{minute},{} * ? * {weekday}-7", (minute + 1) % 60),
        ] {
            prop_assert!(CronSchedule::parse(&text).is_ok(), "{}", text);
        }
    }

    #[test]
    fn time_zone_names_are_found_or_refused(name in prop_oneof![
        any::<String>(),
        "[A-Za-z_/+\\-0-9.]{0,30}",
        Just("../../../../etc/passwd".to_string()),
    ]) {
        if let Err(message) = time_zone(Some(&name)) {
            prop_assert!(message.to_string().starts_with("unknown time zone"));
        }
    }

    #[test]
    fn listen_addresses_parse_or_explain(text in prop_oneof![
        any::<String>(),
        "(unix:)?[\\[\\]:/0-9a-f.]{0,24}",
    ]) {
        match ListenAddress::parse(&text) {
            Ok(ListenAddress::Tcp { port, .. }) => prop_assert!(port > 0),
            Ok(ListenAddress::Unix { path }) => prop_assert!(path.starts_with('/')),
            Err(message) => prop_assert!(message.to_string().starts_with("expected a port")),
        }
    }

    #[test]
    fn listen_addresses_round_trip(port in 1u16.., host in "[a-z0-9.]{1,20}") {
        prop_assert_eq!(
            ListenAddress::parse(&format!("{host}:{port}")),
            Ok(ListenAddress::Tcp { host: Some(host.clone()), port })
        );
        prop_assert_eq!(
            ListenAddress::parse(&port.to_string()),
            Ok(ListenAddress::Tcp { host: None, port })
        );
    }

    #[test]
    fn any_date_format_writes_any_instant(
        format in prop_oneof![any::<String>(), "[YMDdHhmsSZAaXx\\[\\] :.\\-]{0,30}"],
        unix_ms in any::<i64>(),
        offset in any::<i32>(),
    ) {
        let parsed = DateFormat::parse(&format);
        let _ = parsed.has_subsecond();
        let mut out = Vec::new();
        parsed.write(unix_ms, offset, &mut out);
        prop_assert!(std::str::from_utf8(&out).is_ok());
        prop_assert_eq!(parsed.format(unix_ms, offset).into_bytes(), out);
    }

    #[test]
    fn any_millisecond_formats_in_utc(ms in any::<u64>(), millis in any::<bool>()) {
        prop_assert!(format_utc(ms, millis).ends_with('Z'));
    }

    #[test]
    fn notify_lines_are_read_or_ignored(lines in prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300).boxed(),
            "(STATUS|X_KELPIE_METRIC|READY|WATCHDOG)=[a-z_=0-9.eEnaif+\\- ]{0,300}"
                .prop_map(String::into_bytes)
                .boxed(),
        ],
        0..64,
    )) {
        let mut published = Published::default();
        for line in &lines {
            let Some(parsed) = parse_notify_line(line) else { continue };
            if let NotifyLine::Status(text) = &parsed {
                prop_assert!(text.len() <= STATUS_MAX_BYTES);
            }
            if let NotifyLine::Metric(_, Some(value)) = &parsed {
                prop_assert!(value.is_finite());
            }
            let _ = published.apply(&parsed);
            prop_assert!(published.metrics.len() <= METRICS_MAX);
        }
    }
}

#[test]
fn a_schedule_that_never_fires_gives_up_quickly() {
    // February 30th, and the 31st of the months that have 30 days.
    for text in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 30,31 2 *"] {
        let schedule = CronSchedule::parse(text).expect("valid");
        let from: Zoned = "2024-01-01T00:00:00+00:00[UTC]".parse().expect("a date");
        let started = std::time::Instant::now();
        assert_eq!(schedule.next_after(&from), None, "{text}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{text}"
        );
    }
}
