//! The calendar arithmetic of `datefmt` (Howard Hinnant's day algorithms) checked against
//! jiff's. The copy stays rather than calling jiff because log lines are stamped for PM2's
//! dayjs, whose JavaScript dates reach the year 275 760 while jiff stops at 9999; it is as
//! fast as jiff's (measured on 2026-11-25: 14-21 ns a stamp against jiff's 15-29 ns, the same
//! loop, release build), so nothing else argues either way. Over jiff's range they must agree.

use super::read::days_from_civil;
use super::{civil_from_days, Wall};
use jiff::tz::Offset;
use jiff::Timestamp;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn the_wall_clock_of_an_instant_is_jiffs(
        // -9999-01-02 to 9999-12-30: jiff's range, with a day to spare for the offset.
        unix_ms in -377_705_030_400_000i64..253_402_128_000_000,
        offset in -93_599i32..93_599,
    ) {
        let ours = Wall::new(unix_ms, offset);
        let timestamp = Timestamp::from_millisecond(unix_ms).expect("in jiff's range");
        let theirs = Offset::from_seconds(offset).expect("an offset").to_datetime(timestamp);
        prop_assert_eq!(
            (ours.year, ours.month, ours.day, ours.hour, ours.minute, ours.second, ours.millis),
            (
                i64::from(theirs.year()),
                theirs.month() as u8,
                theirs.day() as u8,
                theirs.hour() as u8,
                theirs.minute() as u8,
                theirs.second() as u8,
                (theirs.subsec_nanosecond() / 1_000_000) as u16,
            )
        );
        prop_assert_eq!(ours.weekday, theirs.weekday().to_sunday_zero_offset() as u8);
    }

    #[test]
    fn days_and_dates_convert_both_ways_as_jiff_counts_them(days in -4_371_587i64..2_932_896) {
        let (year, month, day) = civil_from_days(days);
        let date = jiff::civil::Date::new(year as i16, month as i8, day as i8).expect("a date");
        let epoch = jiff::civil::date(1970, 1, 1);
        prop_assert_eq!(i64::from((date - epoch).get_days()), days);
        prop_assert_eq!(days_from_civil(year, month, day), days);
    }
}
