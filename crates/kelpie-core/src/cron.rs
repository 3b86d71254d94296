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

use std::fmt;

use jiff::tz::TimeZone;
use jiff::Zoned;

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
    /// Parse a 5- or 6-field expression; the error says which field is wrong and why.
    pub fn parse(expression: &str) -> Result<CronSchedule, String> {
        let trimmed = expression.trim();
        let expanded = if trimmed.starts_with('@') {
            expand_macro(trimmed)?
        } else {
            expression
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let count = fields.len();
        if count != 5 && count != 6 {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {count} in `{expression}`"
            ));
        }
        // A 5-field expression fires at second 0; its fields start with the minute.
        let kinds: &[Field] = if count == 6 {
            &Field::ALL
        } else {
            &Field::ALL[1..]
        };
        let mut sets = [ValueSet::single(0); 6];
        let mut unrestricted = [false; 6];
        for (position, (&kind, &text)) in kinds.iter().zip(&fields).enumerate() {
            let set = parse_field(kind, text).map_err(|why| {
                format!(
                    "field {} ({}) of `{expression}`: {why}",
                    position + 1,
                    kind.name()
                )
            })?;
            sets[kind as usize] = set;
            unrestricted[kind as usize] = text == "*" || text == "?";
        }
        let [seconds, minutes, hours, days_of_month, months, days_of_week] = sets;
        Ok(CronSchedule {
            expression: expression.to_string(),
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            any_day_of_month: unrestricted[Field::DayOfMonth as usize],
            any_day_of_week: unrestricted[Field::DayOfWeek as usize],
        })
    }

    /// The expression as it was written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first time strictly after `after` (whole seconds) that matches, in `after`'s zone;
    /// `None` if none within the next few years.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        // The search is the next step; until then nothing is ever due.
        let _ = after;
        None
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

/// The zone a schedule is read in: `None` or `local` = the system's, `UTC`, or an IANA name
/// (`Europe/Paris`, read from the system's time zone database).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("local") => Ok(TimeZone::system()),
        // Built in, so that UTC works even on a system without a time zone database.
        Some("UTC") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown time zone `{name}`: {e}")),
    }
}

/// Replace a `@name` macro with its 5-field expression.
fn expand_macro(text: &str) -> Result<&'static str, String> {
    match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 1 1 *"),
        "@monthly" => Ok("0 0 1 * *"),
        "@weekly" => Ok("0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 * * *"),
        "@hourly" => Ok("0 * * * *"),
        "@reboot" => Err("`@reboot` is not a time of day and cannot be a restart schedule".to_string()),
        _ => Err(format!(
            "unknown macro `{text}`: expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
        )),
    }
}

/// The six fields, in the order of a 6-field expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    const ALL: [Field; 6] = [
        Field::Second,
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    /// The values `*` stands for, which also bound `a/n` and the size of a step.
    fn span(self) -> (u8, u8) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 6),
        }
    }

    /// The values a number may take: the span, plus 7 for Sunday in day-of-week.
    fn accepted(self) -> (u8, u8) {
        match self {
            Field::DayOfWeek => (0, 7),
            other => other.span(),
        }
    }

    /// Names accepted in place of numbers, and the number of the first name.
    fn names(self) -> Option<(&'static [&'static str], u8)> {
        match self {
            Field::Month => Some((&MONTH_NAMES, 1)),
            Field::DayOfWeek => Some((&WEEKDAY_NAMES, 0)),
            _ => None,
        }
    }

    fn is_day(self) -> bool {
        matches!(self, Field::DayOfMonth | Field::DayOfWeek)
    }
}

/// One field's text to the set of values it matches; the error is the reason alone (the
/// caller names the field).
fn parse_field(field: Field, text: &str) -> Result<ValueSet, String> {
    if text == "?" {
        return if field.is_day() {
            let (low, high) = field.span();
            Ok(ValueSet::range(low, high, 1))
        } else {
            Err("`?` is only allowed in day-of-month and day-of-week".to_string())
        };
    }
    let mut set = ValueSet::EMPTY;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("empty item in the list `{text}`"));
        }
        set = set.union(parse_item(field, item)?);
    }
    if field == Field::DayOfWeek && set.contains(7) {
        // 7 is Sunday, stored as 0 so that matching has one number per weekday.
        set = set.without(7).union(ValueSet::single(0));
    }
    Ok(set)
}

/// One item of a list: `*`, `a`, `a-b`, each optionally followed by `/step`.
fn parse_item(field: Field, item: &str) -> Result<ValueSet, String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(field, item, step)?)),
        None => (item, None),
    };
    let (span_low, span_high) = field.span();
    let (low, high) = if range == "*" {
        (span_low, span_high)
    } else if let Some((first, last)) = range.split_once('-') {
        let low = parse_value(field, item, first, false)?;
        let high = parse_value(field, item, last, true)?;
        if low > high {
            return Err(format!("range {first}-{last} is backwards"));
        }
        (low, high)
    } else {
        let value = parse_value(field, item, range, false)?;
        // `a/n` runs from a to the end of the field.
        if step.is_some() {
            (value, span_high.max(value))
        } else {
            (value, value)
        }
    };
    Ok(ValueSet::range(low, high, step.unwrap_or(1)))
}

/// The `n` of `/n`: at least 1, at most the number of values in the field.
fn parse_step(field: Field, item: &str, text: &str) -> Result<u8, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("step `{text}` in `{item}` is not a number"));
    }
    let (low, high) = field.span();
    let too_large =
        || format!("step {text} in `{item}` is larger than the field's range {low}-{high}");
    let step: u8 = text.parse().map_err(|_| too_large())?;
    if step == 0 {
        return Err(format!("step 0 in `{item}`: a step must be at least 1"));
    }
    if step > high - low + 1 {
        return Err(too_large());
    }
    Ok(step)
}

/// A number or a name within the field's range. `range_end` is set for the `b` of `a-b`, where
/// `SUN` means 7 so that `FRI-SUN` reads as Friday to Sunday.
fn parse_value(field: Field, item: &str, text: &str, range_end: bool) -> Result<u8, String> {
    let (low, high) = field.accepted();
    if text.is_empty() {
        return Err(format!("`{item}` is missing a number"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = || format!("{text} is out of range {low}-{high}");
        let value: u8 = text.parse().map_err(|_| out_of_range())?;
        if value < low || value > high {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    match field.names() {
        Some((names, first)) => {
            let index = names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(text));
            match index.and_then(|index| u8::try_from(index).ok()) {
                Some(0) if field == Field::DayOfWeek && range_end => Ok(7),
                Some(index) => Ok(first + index),
                None => Err(format!(
                    "`{text}` is not a number or a {} name ({}-{})",
                    if field == Field::Month {
                        "month"
                    } else {
                        "weekday"
                    },
                    names[0],
                    names[names.len() - 1]
                )),
            }
        }
        None => Err(format!("`{text}` is not a number")),
    }
}

/// A set of small numbers (0 to 63), one bit each: every field fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ValueSet(u64);

impl ValueSet {
    const EMPTY: ValueSet = ValueSet(0);

    fn single(value: u8) -> ValueSet {
        ValueSet(1 << value)
    }

    /// `low`, `low + step`, ... up to `high` included.
    fn range(low: u8, high: u8, step: u8) -> ValueSet {
        let mut bits = 0;
        let mut value = low;
        while value <= high {
            bits |= 1 << value;
            match value.checked_add(step) {
                Some(next) => value = next,
                None => break,
            }
        }
        ValueSet(bits)
    }

    fn union(self, other: ValueSet) -> ValueSet {
        ValueSet(self.0 | other.0)
    }

    fn without(self, value: u8) -> ValueSet {
        ValueSet(self.0 & !(1 << value))
    }

    fn contains(self, value: u8) -> bool {
        value < 64 && self.0 & (1 << value) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::{time_zone, CronSchedule, ValueSet};
    use jiff::tz::TimeZone;

    fn schedule(expression: &str) -> CronSchedule {
        CronSchedule::parse(expression).expect("a valid expression")
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
                CronSchedule::parse(expression),
                Err(want.to_string()),
                "`{expression}`"
            );
        }
    }

    #[test]
    fn time_zones_by_name() {
        assert!(time_zone(None).is_ok());
        assert!(time_zone(Some("local")).is_ok());
        assert_eq!(time_zone(Some("UTC")), Ok(TimeZone::UTC));
        let paris = time_zone(Some("Europe/Paris")).expect("Europe/Paris");
        assert_eq!(paris.iana_name(), Some("Europe/Paris"));
        let error = time_zone(Some("Mars/Olympus_Mons")).expect_err("no such zone");
        assert!(
            error.starts_with("unknown time zone `Mars/Olympus_Mons`"),
            "{error}"
        );
        assert!(time_zone(Some("")).is_err());
    }
}
