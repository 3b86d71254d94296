//! Cron schedules for `cron_restart`: 5 fields (minute hour day-of-month month day-of-week) or 6
//! (seconds first), read in an explicit time zone.
//!
//! The meaning of an expression follows PM2's `croner` (in its default, legacy mode):
//!
//! - each field is `*`, a number, a range `a-b`, a step `*/n`, `a-b/n` or `a/n` (from `a` to
//!   the field's maximum), or a comma-separated list of those; a step may not be 0 nor larger
//!   than the field's range, and a range may not run backwards (`22-2` is an error, not a wrap);
//! - months may be named `JAN`-`DEC` and weekdays `SUN`-`SAT` (any case); weekday 0 and 7 are
//!   both Sunday, so `FRI-SUN` means Friday, Saturday and Sunday;
//! - `?` means `*` in the two day fields (as in Quartz; croner would put the time the schedule
//!   was created there instead, which makes a restart schedule depend on when the daemon
//!   started);
//! - `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight` and `@hourly` stand
//!   for their usual 5-field expressions;
//! - day-of-month and day-of-week: when both are restricted, a day matches if either matches
//!   (Vixie cron's rule); when one of them is `*` (or `?`), only the other one restricts. As
//!   in croner, only a field that is exactly `*` or `?` counts as unrestricted: `*/2` in
//!   day-of-month is a restriction (Vixie cron would treat anything starting with `*` as
//!   unrestricted).
//!
//! croner's extensions `L`, `W`, `#`, a seventh (year) field and the `+` prefix of day-of-week
//! are not supported: they are rejected with an error, not misread.
//!
//! A schedule fires at the instants whose wall-clock reading, in its time zone, matches. Two
//! consequences around daylight-saving changes:
//!
//! - a wall time that does not exist (the hour skipped when clocks spring forward) never fires:
//!   no instant reads 02:30 in Europe/Paris on the day of the spring change, so `30 2 * * *`
//!   has no run that day (Vixie cron would run it at 03:00). Moving it to the first instant
//!   after the gap would also fold a whole hour of an every-minute schedule into one run;
//! - a wall time that happens twice (the hour repeated when clocks fall back) fires once, at its
//!   first occurrence: the repeated hour has already been served. An every-minute schedule
//!   therefore pauses for the repeated hour.
//!
//! Here: the schedule and what it tells about itself. Its parts, in `cron/`: reading an
//! expression (`parse`), its six fields (`fields`), the next time it fires (`next`), and the
//! set of values a field matches (`value_set`).

mod error;
mod fields;
mod next;
#[cfg(test)]
mod oracle_tests;
mod parse;
mod value_set;

pub use error::{CronError, FieldError};
use jiff::tz::TimeZone;
use std::fmt;
use value_set::ValueSet;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expression: String,
    seconds: ValueSet,
    minutes: ValueSet,
    hours: ValueSet,
    days_of_month: ValueSet,
    months: ValueSet,
    /// 0 = Sunday .. 6 = Saturday (a 7 in the expression is stored as 0).
    days_of_week: ValueSet,
    /// The day-of-month field is `*` or `?`: the day is chosen by day-of-week alone.
    any_day_of_month: bool,
    /// The day-of-week field is `*` or `?`: the day is chosen by day-of-month alone.
    any_day_of_week: bool,
}

impl CronSchedule {
    /// The expression as it was written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// When the schedule fires every day, on every day, at equally spaced times starting at
    /// midnight (`0 0 * * *`, `0 */6 * * *`, `*/30 * * * *`, `@hourly`): that spacing in
    /// milliseconds (a divisor of one day). `None` for any other schedule (certain days only,
    /// times not evenly spaced, the first one not at 00:00:00).
    pub fn daily_period_ms(&self) -> Option<u64> {
        if !self.any_day_of_month
            || !self.any_day_of_week
            || self.months != ValueSet::range(1, 12, 1)
        {
            return None;
        }
        let mut times = Vec::new();
        for hour in 0..24u64 {
            for minute in 0..60u64 {
                for second in 0..60u64 {
                    // Bounded by the loops: at most 86 400 values, all below 64.
                    #[allow(clippy::cast_possible_truncation)]
                    let fires = self.hours.contains(hour as u8)
                        && self.minutes.contains(minute as u8)
                        && self.seconds.contains(second as u8);
                    if fires {
                        times.push((hour * 60 + minute) * 60 + second);
                    }
                }
            }
        }
        let period = match times.as_slice() {
            [0] => 86_400,
            [0, second, ..] => *second,
            _ => return None,
        };
        let even = times
            .iter()
            .enumerate()
            .all(|(i, t)| *t == i as u64 * period);
        (even && period * times.len() as u64 == 86_400).then_some(period * 1000)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// The zone a schedule is read in: `None` or `local` = the system's, `UTC`, or an IANA name
/// (`Europe/Paris`, read from the system's time zone database).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, CronError> {
    match name {
        None | Some("local") => Ok(TimeZone::system()),
        // Built in, so that UTC works even on a system without a time zone database.
        Some("UTC") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| CronError::UnknownTimeZone {
            name: name.to_string(),
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{time_zone, CronSchedule, ValueSet};
    use jiff::civil::DateTime;
    use jiff::tz::{AmbiguousOffset, TimeZone};
    use jiff::{Timestamp, Zoned};

    fn schedule(expression: &str) -> CronSchedule {
        CronSchedule::parse(expression).expect("a valid expression")
    }

    fn zoned(text: &str) -> Zoned {
        text.parse().expect("a zoned date-time")
    }

    /// A set as its runs (`1-3,7`), or `*` when it is the field's whole span.
    fn render(set: ValueSet, low: u8, high: u8) -> String {
        if set == ValueSet::range(low, high, 1) {
            return "*".to_string();
        }
        let values: Vec<u8> = (low..=high).filter(|&v| set.contains(v)).collect();
        let mut runs: Vec<String> = Vec::new();
        let mut index = 0;
        while index < values.len() {
            let start = values[index];
            while index + 1 < values.len() && values[index + 1] == values[index] + 1 {
                index += 1;
            }
            let end = values[index];
            runs.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            index += 1;
        }
        runs.join(",")
    }

    /// All six fields, seconds first, then `either` when a day matches by either day field.
    fn describe(s: &CronSchedule) -> String {
        let mut text = [
            render(s.seconds, 0, 59),
            render(s.minutes, 0, 59),
            render(s.hours, 0, 23),
            render(s.days_of_month, 1, 31),
            render(s.months, 1, 12),
            render(s.days_of_week, 0, 6),
        ]
        .join(" ");
        if !s.any_day_of_month && !s.any_day_of_week {
            text.push_str(" either");
        }
        text
    }

    #[test]
    fn parses_every_syntax() {
        let cases: &[(&str, &str)] = &[
            ("* * * * *", "0 * * * * *"),
            ("* * * * * *", "* * * * * *"),
            ("  0   12\t* * *  ", "0 0 12 * * *"),
            ("*/15 * * * *", "0 0,15,30,45 * * * *"),
            (
                "*/3 * * * * *",
                "0,3,6,9,12,15,18,21,24,27,30,33,36,39,42,45,48,51,54,57 * * * * *",
            ),
            (
                "0 */5 * * * *",
                "0 0,5,10,15,20,25,30,35,40,45,50,55 * * * *",
            ),
            ("*/60 */24 * * *", "0 0 0 * * *"),
            ("5-10 * * * *", "0 5-10 * * * *"),
            ("10-30/10 * * * *", "0 10,20,30 * * * *"),
            ("50/3 * * * *", "0 50,53,56,59 * * * *"),
            ("1,2,3,10-12,*/30 * * * *", "0 0-3,10-12,30 * * * *"),
            ("059 007 * * *", "0 59 7 * * *"),
            ("0 0 1 jan,Jul *", "0 0 0 1 1,7 *"),
            ("0 0 * JAN-MAR mon-FRI", "0 0 0 * 1-3 1-5"),
            ("0 0 * feb-dec/2 *", "0 0 0 * 2,4,6,8,10,12 *"),
            ("0 0 * * 7", "0 0 0 * * 0"),
            ("0 0 * * 0,7", "0 0 0 * * 0"),
            ("0 0 * * 5-7", "0 0 0 * * 0,5-6"),
            ("0 0 * * FRI-SUN", "0 0 0 * * 0,5-6"),
            ("0 0 * * SUN-SAT", "0 0 0 * * *"),
            ("0 0 * * */2", "0 0 0 * * 0,2,4,6"),
            ("0 0 * * 3/2", "0 0 0 * * 3,5"),
            ("0 0 ? * MON", "0 0 0 * * 1"),
            ("0 0 1 * ?", "0 0 0 1 * *"),
            ("0 0 1,15 * MON", "0 0 0 1,15 * 1 either"),
            // As in croner, only a bare `*` leaves a day field unrestricted.
            ("0 0 */10 * MON", "0 0 0 1,11,21,31 * 1 either"),
            ("0 0 1-31 * 1-5", "0 0 0 * * 1-5 either"),
            ("@yearly", "0 0 0 1 1 *"),
            ("@annually", "0 0 0 1 1 *"),
            ("@monthly", "0 0 0 1 * *"),
            ("@weekly", "0 0 0 * * 0"),
            ("@daily", "0 0 0 * * *"),
            (" @Midnight ", "0 0 0 * * *"),
            ("@HOURLY", "0 0 * * * *"),
        ];
        for &(expression, want) in cases {
            let parsed = schedule(expression);
            assert_eq!(describe(&parsed), want, "`{expression}`");
            assert_eq!(parsed.expression(), expression);
            assert_eq!(parsed.to_string(), expression);
        }
    }

    #[test]
    fn rejects_every_error_with_its_field_and_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got 0 in ``"),
            (
                "* * * *",
                "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got 4 in `* * * *`",
            ),
            (
                "* * * * * * *",
                "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got 7 in `* * * * * * *`",
            ),
            ("*/3 x * * *", "field 2 (hour) of `*/3 x * * *`: `x` is not a number"),
            ("60 * * * * *", "field 1 (second) of `60 * * * * *`: 60 is out of range 0-59"),
            ("60 * * * *", "field 1 (minute) of `60 * * * *`: 60 is out of range 0-59"),
            ("* 24 * * *", "field 2 (hour) of `* 24 * * *`: 24 is out of range 0-23"),
            ("* * 0 * *", "field 3 (day-of-month) of `* * 0 * *`: 0 is out of range 1-31"),
            ("* * 32 * *", "field 3 (day-of-month) of `* * 32 * *`: 32 is out of range 1-31"),
            ("* * * 13 *", "field 4 (month) of `* * * 13 *`: 13 is out of range 1-12"),
            ("* * * * 8", "field 5 (day-of-week) of `* * * * 8`: 8 is out of range 0-7"),
            (
                "0 * * * * 1-8",
                "field 6 (day-of-week) of `0 * * * * 1-8`: 8 is out of range 0-7",
            ),
            (
                "99999999999 * * * *",
                "field 1 (minute) of `99999999999 * * * *`: 99999999999 is out of range 0-59",
            ),
            ("*/0 * * * *", "field 1 (minute) of `*/0 * * * *`: step 0 in `*/0`: a step must be at least 1"),
            (
                "* * * * * 1-5/0",
                "field 6 (day-of-week) of `* * * * * 1-5/0`: step 0 in `1-5/0`: a step must be at least 1",
            ),
            (
                "*/61 * * * *",
                "field 1 (minute) of `*/61 * * * *`: step 61 in `*/61` is larger than the field's range 0-59",
            ),
            (
                "* */999 * * *",
                "field 2 (hour) of `* */999 * * *`: step 999 in `*/999` is larger than the field's range 0-23",
            ),
            ("*/x * * * *", "field 1 (minute) of `*/x * * * *`: step `x` in `*/x` is not a number"),
            ("*/ * * * *", "field 1 (minute) of `*/ * * * *`: step `` in `*/` is not a number"),
            ("1/2/3 * * * *", "field 1 (minute) of `1/2/3 * * * *`: step `2/3` in `1/2/3` is not a number"),
            ("5-2 * * * *", "field 1 (minute) of `5-2 * * * *`: range 5-2 is backwards"),
            ("* * * * FRI-MON", "field 5 (day-of-week) of `* * * * FRI-MON`: range FRI-MON is backwards"),
            ("* * * DEC-JAN *", "field 4 (month) of `* * * DEC-JAN *`: range DEC-JAN is backwards"),
            ("-5 * * * *", "field 1 (minute) of `-5 * * * *`: `-5` is missing a number"),
            ("5- * * * *", "field 1 (minute) of `5- * * * *`: `5-` is missing a number"),
            ("1-2-3 * * * *", "field 1 (minute) of `1-2-3 * * * *`: `2-3` is not a number"),
            ("*-5 * * * *", "field 1 (minute) of `*-5 * * * *`: `*` is not a number"),
            ("1,,2 * * * *", "field 1 (minute) of `1,,2 * * * *`: empty item in the list `1,,2`"),
            ("1, * * * *", "field 1 (minute) of `1, * * * *`: empty item in the list `1,`"),
            ("JAN * * * *", "field 1 (minute) of `JAN * * * *`: `JAN` is not a number"),
            (
                "* * * FOO *",
                "field 4 (month) of `* * * FOO *`: `FOO` is not a number or a month name (JAN-DEC)",
            ),
            (
                "* * * * MONDAY",
                "field 5 (day-of-week) of `* * * * MONDAY`: `MONDAY` is not a number or a weekday name (SUN-SAT)",
            ),
            (
                "* * * * MON#2",
                "field 5 (day-of-week) of `* * * * MON#2`: `MON#2` is not a number or a weekday name (SUN-SAT)",
            ),
            ("* * L * *", "field 3 (day-of-month) of `* * L * *`: `L` is not a number"),
            (
                "? * * * *",
                "field 1 (minute) of `? * * * *`: `?` is only allowed in day-of-month and day-of-week",
            ),
            (
                "0 0 ?/2 * *",
                "field 3 (day-of-month) of `0 0 ?/2 * *`: `?` is not a number",
            ),
            (
                "@reboot",
                "`@reboot` is not a time of day and cannot be a restart schedule",
            ),
            (
                "@often",
                "unknown macro `@often`: expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
            ),
            (
                "@daily now",
                "unknown macro `@daily now`: expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly",
            ),
        ];
        for &(expression, want) in cases {
            assert_eq!(
                CronSchedule::parse(expression).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "`{expression}`"
            );
        }
    }

    #[test]
    fn next_after_matches_the_table() {
        // (expression, after, the next run or "none")
        let cases: &[(&str, &str, &str)] = &[
            // Every second, at whole-second resolution.
            (
                "* * * * * *",
                "2026-01-01T10:00:00+00:00[UTC]",
                "2026-01-01T10:00:01+00:00[UTC]",
            ),
            (
                "* * * * * *",
                "2026-01-01T10:00:00.3+00:00[UTC]",
                "2026-01-01T10:00:01+00:00[UTC]",
            ),
            (
                "* * * * * *",
                "2026-01-01T10:00:00.999999999+00:00[UTC]",
                "2026-01-01T10:00:01+00:00[UTC]",
            ),
            (
                "* * * * * *",
                "2026-12-31T23:59:59.5+00:00[UTC]",
                "2027-01-01T00:00:00+00:00[UTC]",
            ),
            (
                "*/3 * * * * *",
                "2026-01-01T10:00:00+00:00[UTC]",
                "2026-01-01T10:00:03+00:00[UTC]",
            ),
            (
                "*/3 * * * * *",
                "2026-01-01T10:00:57.5+00:00[UTC]",
                "2026-01-01T10:01:00+00:00[UTC]",
            ),
            (
                "*/3 * * * * *",
                "2026-01-01T10:59:58+00:00[UTC]",
                "2026-01-01T11:00:00+00:00[UTC]",
            ),
            (
                "0 */5 * * * *",
                "2026-01-01T10:00:00+00:00[UTC]",
                "2026-01-01T10:05:00+00:00[UTC]",
            ),
            (
                "0 */5 * * * *",
                "2026-01-01T10:04:59.9+00:00[UTC]",
                "2026-01-01T10:05:00+00:00[UTC]",
            ),
            (
                "0 */5 * * * *",
                "2026-02-28T23:55:00+00:00[UTC]",
                "2026-03-01T00:00:00+00:00[UTC]",
            ),
            (
                "0 */5 * * * *",
                "2028-02-28T23:55:00+00:00[UTC]",
                "2028-02-29T00:00:00+00:00[UTC]",
            ),
            // 5 fields: second 0.
            (
                "* * * * *",
                "2026-01-01T10:00:00+00:00[UTC]",
                "2026-01-01T10:01:00+00:00[UTC]",
            ),
            (
                "30 9 * * 1-5",
                "2026-01-02T09:30:00+00:00[UTC]",
                "2026-01-05T09:30:00+00:00[UTC]",
            ),
            (
                "30 9 * * 1-5",
                "2026-01-05T09:29:59+00:00[UTC]",
                "2026-01-05T09:30:00+00:00[UTC]",
            ),
            (
                "15,45 8-10 * * *",
                "2026-01-01T10:45:00+00:00[UTC]",
                "2026-01-02T08:15:00+00:00[UTC]",
            ),
            // Rollovers: end of month, end of year, months without a 31st.
            (
                "0 0 1 * *",
                "2026-01-31T12:00:00+00:00[UTC]",
                "2026-02-01T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 31 * *",
                "2026-01-31T00:00:00+00:00[UTC]",
                "2026-03-31T00:00:00+00:00[UTC]",
            ),
            (
                "59 23 31 12 *",
                "2026-06-01T00:00:00+00:00[UTC]",
                "2026-12-31T23:59:00+00:00[UTC]",
            ),
            (
                "59 23 31 12 *",
                "2026-12-31T23:59:00+00:00[UTC]",
                "2027-12-31T23:59:00+00:00[UTC]",
            ),
            (
                "@yearly",
                "2026-12-31T23:59:59+00:00[UTC]",
                "2027-01-01T00:00:00+00:00[UTC]",
            ),
            (
                "@hourly",
                "2026-01-01T10:59:59.5+00:00[UTC]",
                "2026-01-01T11:00:00+00:00[UTC]",
            ),
            (
                "@weekly",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-01-04T00:00:00+00:00[UTC]",
            ),
            // Names.
            (
                "0 12 * JUN-AUG SAT,sun",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-06-06T12:00:00+00:00[UTC]",
            ),
            (
                "0 12 * JUN-AUG SAT,sun",
                "2026-06-06T12:00:00+00:00[UTC]",
                "2026-06-07T12:00:00+00:00[UTC]",
            ),
            (
                "0 12 * JUN-AUG SAT,sun",
                "2026-08-30T12:00:00+00:00[UTC]",
                "2027-06-05T12:00:00+00:00[UTC]",
            ),
            (
                "0 0 * * 7",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-01-04T00:00:00+00:00[UTC]",
            ),
            // Day-of-month and day-of-week: either when both are restricted.
            (
                "0 0 13 * FRI",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-01-02T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 13 * FRI",
                "2026-01-10T00:00:00+00:00[UTC]",
                "2026-01-13T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 13 * FRI",
                "2026-01-13T00:00:00+00:00[UTC]",
                "2026-01-16T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 */10 * MON",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-01-05T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 */10 * MON",
                "2026-01-05T00:00:00+00:00[UTC]",
                "2026-01-11T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 * * MON",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-01-05T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 ? * MON",
                "2026-01-01T00:00:00+00:00[UTC]",
                "2026-01-05T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 13 * *",
                "2026-01-02T00:00:00+00:00[UTC]",
                "2026-01-13T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 13 * ?",
                "2026-01-02T00:00:00+00:00[UTC]",
                "2026-01-13T00:00:00+00:00[UTC]",
            ),
            // The month still restricts: February, and the 29th or a Monday.
            (
                "0 0 29 2 MON",
                "2026-03-01T00:00:00+00:00[UTC]",
                "2027-02-01T00:00:00+00:00[UTC]",
            ),
            // The 29th of February: leap years only, across 2100 too.
            (
                "0 0 29 2 *",
                "2026-03-01T00:00:00+00:00[UTC]",
                "2028-02-29T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 29 2 *",
                "2028-02-29T00:00:00+00:00[UTC]",
                "2032-02-29T00:00:00+00:00[UTC]",
            ),
            (
                "0 0 29 2 *",
                "2097-03-01T00:00:00+00:00[UTC]",
                "2104-02-29T00:00:00+00:00[UTC]",
            ),
            // Never: the 30th of February, the 31st of a 30-day month.
            ("0 0 30 2 *", "2026-01-01T00:00:00+00:00[UTC]", "none"),
            (
                "* * * 31 4,6,9,11 *",
                "2026-01-01T00:00:00+00:00[UTC]",
                "none",
            ),
            // The end of the calendar.
            ("0 0 1 1 *", "9999-06-01T00:00:00+00:00[UTC]", "none"),
            // A fixed offset.
            (
                "0 0 * * *",
                "2026-01-01T00:00:00+05:30[+05:30]",
                "2026-01-02T00:00:00+05:30[+05:30]",
            ),
            // Europe/Paris springs forward on 2026-03-29 at 02:00 (to 03:00): 02:xx is skipped.
            (
                "* * * * * *",
                "2026-03-29T01:59:59+01:00[Europe/Paris]",
                "2026-03-29T03:00:00+02:00[Europe/Paris]",
            ),
            (
                "0 30 2 * * *",
                "2026-03-28T03:00:00+01:00[Europe/Paris]",
                "2026-03-30T02:30:00+02:00[Europe/Paris]",
            ),
            (
                "0 */15 * * * *",
                "2026-03-29T01:50:00+01:00[Europe/Paris]",
                "2026-03-29T03:00:00+02:00[Europe/Paris]",
            ),
            (
                "0 0 3 * * *",
                "2026-03-29T01:00:00+01:00[Europe/Paris]",
                "2026-03-29T03:00:00+02:00[Europe/Paris]",
            ),
            (
                "0 0 9 * * *",
                "2026-03-28T09:00:00+01:00[Europe/Paris]",
                "2026-03-29T09:00:00+02:00[Europe/Paris]",
            ),
            // Europe/Paris falls back on 2026-10-25 at 03:00 (to 02:00): 02:xx happens twice and
            // fires the first time only.
            (
                "0 30 2 * * *",
                "2026-10-25T00:00:00+02:00[Europe/Paris]",
                "2026-10-25T02:30:00+02:00[Europe/Paris]",
            ),
            (
                "0 30 2 * * *",
                "2026-10-25T02:30:00+02:00[Europe/Paris]",
                "2026-10-26T02:30:00+01:00[Europe/Paris]",
            ),
            (
                "0 30 2 * * *",
                "2026-10-25T02:10:00+01:00[Europe/Paris]",
                "2026-10-26T02:30:00+01:00[Europe/Paris]",
            ),
            (
                "0 0 * * * *",
                "2026-10-25T01:30:00+02:00[Europe/Paris]",
                "2026-10-25T02:00:00+02:00[Europe/Paris]",
            ),
            (
                "0 0 * * * *",
                "2026-10-25T02:00:00+02:00[Europe/Paris]",
                "2026-10-25T03:00:00+01:00[Europe/Paris]",
            ),
            (
                "* * * * * *",
                "2026-10-25T02:59:59+02:00[Europe/Paris]",
                "2026-10-25T03:00:00+01:00[Europe/Paris]",
            ),
            (
                "* * * * * *",
                "2026-10-25T02:10:00.5+01:00[Europe/Paris]",
                "2026-10-25T03:00:00+01:00[Europe/Paris]",
            ),
            // America/New_York: 2026-03-08 02:xx is skipped, 2026-11-01 01:xx happens twice.
            (
                "30 2 * * *",
                "2026-03-07T03:00:00-05:00[America/New_York]",
                "2026-03-09T02:30:00-04:00[America/New_York]",
            ),
            (
                "0 9 * * MON-FRI",
                "2026-03-06T09:00:00-05:00[America/New_York]",
                "2026-03-09T09:00:00-04:00[America/New_York]",
            ),
            (
                "30 1 * * *",
                "2026-11-01T00:00:00-04:00[America/New_York]",
                "2026-11-01T01:30:00-04:00[America/New_York]",
            ),
            (
                "30 1 * * *",
                "2026-11-01T01:30:00-04:00[America/New_York]",
                "2026-11-02T01:30:00-05:00[America/New_York]",
            ),
            (
                "*/20 * * * *",
                "2026-11-01T01:40:00-04:00[America/New_York]",
                "2026-11-01T02:00:00-05:00[America/New_York]",
            ),
            // Australia/Lord_Howe moves by half an hour: 01:30-02:00 twice on 2026-04-05,
            // 02:00-02:30 skipped on 2026-10-04.
            (
                "0 45 1 * * *",
                "2026-04-04T12:00:00+11:00[Australia/Lord_Howe]",
                "2026-04-05T01:45:00+11:00[Australia/Lord_Howe]",
            ),
            (
                "0 45 1 * * *",
                "2026-04-05T01:45:00+11:00[Australia/Lord_Howe]",
                "2026-04-06T01:45:00+10:30[Australia/Lord_Howe]",
            ),
            (
                "0 15 2 * * *",
                "2026-10-03T12:00:00+10:30[Australia/Lord_Howe]",
                "2026-10-05T02:15:00+11:00[Australia/Lord_Howe]",
            ),
            (
                "0 */10 * * * *",
                "2026-10-04T01:55:00+10:30[Australia/Lord_Howe]",
                "2026-10-04T02:30:00+11:00[Australia/Lord_Howe]",
            ),
            // Pacific/Apia skipped the whole of 2011-12-30.
            (
                "0 0 12 * * *",
                "2011-12-29T13:00:00-10:00[Pacific/Apia]",
                "2011-12-31T12:00:00+14:00[Pacific/Apia]",
            ),
            (
                "* * * * * *",
                "2011-12-29T23:59:59-10:00[Pacific/Apia]",
                "2011-12-31T00:00:00+14:00[Pacific/Apia]",
            ),
        ];
        for &(expression, after, want) in cases {
            let next = schedule(expression).next_after(&zoned(after));
            let got = next.map_or_else(|| "none".to_string(), |next| next.to_string());
            assert_eq!(got, want, "`{expression}` after {after}");
        }
    }

    #[test]
    fn a_schedule_that_never_fires_gives_up_quickly() {
        // Field by field, eight years of `0 0 30 2 *` are a few hundred steps; second by
        // second they would be 250 million, and this test would not finish.
        let start = zoned("2026-01-01T00:00:00+01:00[Europe/Paris]");
        for expression in ["0 0 30 2 *", "* * * 31 4,6,9,11 *", "0 0 29 2 *"] {
            let parsed = schedule(expression);
            for _ in 0..200 {
                std::hint::black_box(parsed.next_after(&start));
            }
        }
    }

    #[test]
    fn time_zones_by_name() {
        assert!(time_zone(None).is_ok());
        assert!(time_zone(Some("local")).is_ok());
        assert_eq!(time_zone(Some("UTC")), Ok(TimeZone::UTC));
        let paris = time_zone(Some("Europe/Paris")).expect("Europe/Paris");
        assert_eq!(paris.iana_name(), Some("Europe/Paris"));
        let error = time_zone(Some("Mars/Olympus_Mons"))
            .expect_err("no such zone")
            .to_string();
        assert!(
            error.starts_with("unknown time zone `Mars/Olympus_Mons`"),
            "{error}"
        );
        assert!(time_zone(Some("")).is_err());
    }

    /// A small deterministic generator (Knuth's MMIX constants): no crate needed.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % bound
        }

        /// A value in `low..=high`.
        fn within(&mut self, low: u8, high: u8) -> u8 {
            low + self.below(u64::from(high - low) + 1) as u8
        }

        fn one_in(&mut self, n: u64) -> bool {
            self.below(n) == 0
        }
    }

    /// A random valid field: `*`, `?` for the day fields, a value, a range, steps, a list;
    /// values are sometimes names. `star_percent`: how often the field is `*` (or `?`).
    fn random_field(rng: &mut Lcg, field: super::fields::Field, star_percent: u64) -> String {
        let (low, high) = field.span();
        let (_, accepted_high) = field.accepted();
        let text = |rng: &mut Lcg, value: u8| match field.names() {
            Some((names, first)) if value - first < names.len() as u8 && rng.one_in(2) => {
                let name = names[usize::from(value - first)];
                if rng.one_in(2) {
                    name.to_ascii_lowercase()
                } else {
                    name.to_string()
                }
            }
            _ => value.to_string(),
        };
        if rng.below(100) < star_percent {
            return if field.is_day() && rng.one_in(3) {
                "?".to_string()
            } else {
                "*".to_string()
            };
        }
        let span = u64::from(high - low) + 1;
        let item = |rng: &mut Lcg| -> String {
            match rng.below(6) {
                0 | 1 => {
                    let value = rng.within(low, accepted_high);
                    text(rng, value)
                }
                2 => {
                    let first = rng.within(low, high);
                    let last = rng.within(first, high);
                    format!("{}-{}", text(rng, first), text(rng, last))
                }
                3 => format!("*/{}", 1 + rng.below(span.min(15))),
                4 => {
                    let first = rng.within(low, high);
                    let last = rng.within(first, high);
                    format!("{first}-{last}/{}", 1 + rng.below(span.min(10)))
                }
                _ => format!("{}/{}", rng.within(low, high), 1 + rng.below(span.min(10))),
            }
        };
        let items = if rng.one_in(4) { 2 + rng.below(2) } else { 1 };
        (0..items).map(|_| item(rng)).collect::<Vec<_>>().join(",")
    }

    /// Whether a wall time matches, written from the rules rather than from the search.
    fn matches(s: &CronSchedule, wall: DateTime) -> bool {
        let field = |value: i8| u8::try_from(value).expect("a civil field");
        let weekday = field(wall.weekday().to_sunday_zero_offset());
        let by_month = s.days_of_month.contains(field(wall.day()));
        let by_week = s.days_of_week.contains(weekday);
        let day = match (s.any_day_of_month, s.any_day_of_week) {
            (true, true) => true,
            (true, false) => by_week,
            (false, true) => by_month,
            (false, false) => by_month || by_week,
        };
        day && s.seconds.contains(field(wall.second()))
            && s.minutes.contains(field(wall.minute()))
            && s.hours.contains(field(wall.hour()))
            && s.months.contains(field(wall.month()))
    }

    /// The first instant after `after` (whole seconds) that matches, trying every `step`
    /// seconds up to `horizon` seconds ahead. A repeated wall time counts at its first
    /// occurrence only; a skipped one is never seen, as no instant has it.
    fn brute_force(s: &CronSchedule, after: &Zoned, horizon: i64, step: i64) -> Option<Timestamp> {
        let tz = after.time_zone();
        let start = after.timestamp().as_second();
        let mut second = (start + 1 + step - 1) / step * step;
        while second <= start + horizon {
            let instant = Timestamp::from_second(second).expect("a timestamp");
            let wall = tz.to_datetime(instant);
            let first_occurrence = match tz.to_ambiguous_timestamp(wall).offset() {
                AmbiguousOffset::Fold { before, .. } => {
                    before.to_timestamp(wall).expect("a timestamp") == instant
                }
                _ => true,
            };
            if first_occurrence && matches(s, wall) {
                return Some(instant);
            }
            second += step;
        }
        None
    }

    /// Random expressions from random starts, often just before a daylight-saving change,
    /// against the brute force: 6 fields second by second over 3 hours, 5 fields minute by
    /// minute (they only fire at second 0) over 40 days.
    #[test]
    fn next_after_agrees_with_brute_force() {
        use super::fields::Field;
        let zones: Vec<TimeZone> = [
            "UTC",
            "Europe/Paris",
            "America/New_York",
            "Australia/Lord_Howe",
        ]
        .iter()
        .map(|name| time_zone(Some(name)).expect("a zone"))
        .collect();
        let mut rng = Lcg(0x6b65_6c70_6965);
        let mut found = 0;
        let rounds = 300;
        for round in 0..rounds {
            let six_fields = round % 4 != 0;
            let (horizon, step) = if six_fields {
                (3 * 3600, 1)
            } else {
                (40 * 86_400, 60)
            };
            // The larger the field, the more often it is `*`: otherwise most expressions would
            // not fire within the horizon, and the comparison would prove little.
            let star_percent = |field: Field| match (six_fields, field) {
                (_, Field::Second | Field::Minute) => 35,
                (true, Field::Hour) => 50,
                (true, Field::DayOfMonth | Field::DayOfWeek) => 75,
                (true, Field::Month) => 90,
                (false, Field::Hour) => 35,
                (false, Field::DayOfMonth | Field::DayOfWeek) => 60,
                (false, Field::Month) => 75,
            };
            let fields: &[Field] = if six_fields {
                &Field::ALL
            } else {
                &Field::ALL[1..]
            };
            let expression = fields
                .iter()
                .map(|&field| random_field(&mut rng, field, star_percent(field)))
                .collect::<Vec<_>>()
                .join(" ");
            let parsed = CronSchedule::parse(&expression)
                .unwrap_or_else(|error| panic!("`{expression}` should parse: {error}"));

            let tz = zones[rng.below(zones.len() as u64) as usize].clone();
            // A start in 2025-2027, moved to shortly before the next transition half the time.
            let mut start = 1_735_689_600 + rng.below(3 * 365 * 86_400) as i64;
            if rng.one_in(2) {
                let from = Timestamp::from_second(start).expect("a timestamp");
                if let Some(transition) = tz.following(from).next() {
                    start = transition.timestamp().as_second() - rng.below(3 * 3600) as i64;
                }
            }
            let nanos = if rng.one_in(2) {
                0
            } else {
                rng.below(1_000_000_000) as i32
            };
            let after = Timestamp::new(start, nanos)
                .expect("a timestamp")
                .to_zoned(tz);

            let want = brute_force(&parsed, &after, horizon, step);
            let got = parsed.next_after(&after);
            let context = format!("`{expression}` after {after}");
            match want {
                Some(want) => {
                    found += 1;
                    let got = got.unwrap_or_else(|| panic!("{context}: none, want {want}"));
                    assert_eq!(got.timestamp(), want, "{context}: got {got}");
                    assert_eq!(got.time_zone(), after.time_zone(), "{context}");
                }
                None => {
                    if let Some(got) = got {
                        assert!(
                            got.timestamp().as_second() > after.timestamp().as_second() + horizon,
                            "{context}: got {got}, the brute force found nothing before it"
                        );
                    }
                }
            }
        }
        // The comparison is only worth something if most cases do fire within the horizon.
        assert!(
            found * 2 > rounds,
            "only {found} of {rounds} cases fired within the horizon"
        );
    }
}

#[cfg(test)]
mod daily_period_tests {
    use super::CronSchedule;

    fn period(expression: &str) -> Option<u64> {
        CronSchedule::parse(expression)
            .expect("valid")
            .daily_period_ms()
    }

    #[test]
    fn evenly_spaced_daily_schedules_have_a_period() {
        assert_eq!(period("0 0 * * *"), Some(86_400_000));
        assert_eq!(period("@daily"), Some(86_400_000));
        assert_eq!(period("0 0 0 * * *"), Some(86_400_000));
        assert_eq!(period("0 * * * *"), Some(3_600_000));
        assert_eq!(period("@hourly"), Some(3_600_000));
        assert_eq!(period("0 */6 * * *"), Some(6 * 3_600_000));
        assert_eq!(period("0 0,12 * * ?"), Some(12 * 3_600_000));
        assert_eq!(period("*/30 * * * *"), Some(1_800_000));
        assert_eq!(period("* * * * *"), Some(60_000));
    }

    #[test]
    fn other_schedules_have_none() {
        for expression in [
            "0 0 * * 0",
            "@weekly",
            "0 0 1 * *",
            "0 0 * 1 *",
            "30 0 * * *",
            "0 1 * * *",
            "0 0,5 * * *",
            "0 */7 * * *",
            "*/7 * * * *",
        ] {
            assert_eq!(period(expression), None, "{expression}");
        }
    }
}
