//! `cron_restart` expressions (already validated by kelpie-config, read as in
//! `kelpie_core::cron`) turned into systemd calendar events and Kubernetes CronJob schedules.

use std::collections::BTreeSet;

/// Why an expression cannot be turned into a calendar event or a CronJob schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum CronError {
    /// Not 5 or 6 fields (nor a macro such as `@daily`).
    #[error("`{0}` does not have 5 or 6 fields")]
    Fields(String),
    /// A field's value is neither a number nor a month or weekday name.
    #[error("`{0}` is not a value")]
    Value(String),
    /// A `/step` that is not a number above 0.
    #[error("bad step in `{0}`")]
    Step(String),
    /// A valid expression that fires at seconds other than 0, which a five-field schedule
    /// (a CronJob's, a crontab's) cannot say.
    #[error("`{0}` fires at seconds other than 0; CronJob schedules have minutes at most")]
    Seconds(String),
}

/// The fields of an expression, seconds first (`0` when the expression has five fields).
struct Fields<'a> {
    texts: [&'a str; 6],
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/// systemd's weekday names, Sunday first like cron's numbers.
const SYSTEMD_WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
/// Lowest and highest value of each field, seconds first.
const RANGES: [(u32, u32); 6] = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

fn split(expression: &str) -> Result<Fields<'_>, CronError> {
    let expression = expression.trim();
    let macro_fields = match expression.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Some("0 0 1 1 *"),
        "@monthly" => Some("0 0 1 * *"),
        "@weekly" => Some("0 0 * * 0"),
        "@daily" | "@midnight" => Some("0 0 * * *"),
        "@hourly" => Some("0 * * * *"),
        _ => None,
    };
    let words: Vec<&str> = macro_fields
        .unwrap_or(expression)
        .split_whitespace()
        .collect();
    let texts = match words.as_slice() {
        [m, h, dom, mon, dow] => ["0", m, h, dom, mon, dow],
        [s, m, h, dom, mon, dow] => [*s, *m, *h, *dom, *mon, *dow],
        _ => return Err(CronError::Fields(expression.to_string())),
    };
    Ok(Fields { texts })
}

fn value(text: &str, index: usize) -> Result<u32, CronError> {
    let lower = text.to_ascii_lowercase();
    let named = match index {
        4 => MONTHS
            .iter()
            .position(|m| *m == lower)
            .map(|i| i as u32 + 1),
        5 => WEEKDAYS.iter().position(|d| *d == lower).map(|i| i as u32),
        _ => None,
    };
    named
        .or_else(|| text.parse().ok())
        .ok_or_else(|| CronError::Value(text.to_string()))
}

/// The values a field matches (weekday 7 folded into 0).
fn values(text: &str, index: usize) -> Result<BTreeSet<u32>, CronError> {
    let (low, high) = RANGES[index];
    let mut set = BTreeSet::new();
    for item in text.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (
                base,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| CronError::Step(item.to_string()))?,
            ),
            None => (item, 1),
        };
        let (from, to) = if base == "*" || base == "?" {
            (low, high)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(a, index)?, value(b, index)?);
            // `FRI-SUN` ends on Sunday as 7, not 0.
            (a, if index == 5 && b == 0 && a > 0 { 7 } else { b })
        } else if item.contains('/') {
            (value(base, index)?, high)
        } else {
            let v = value(base, index)?;
            (v, v)
        };
        set.extend((from..=to).step_by(step as usize));
    }
    if index == 5 && set.remove(&7) {
        set.insert(0);
    }
    Ok(set)
}

/// `*` for every value of the field, else the values, comma separated.
fn calendar_field(set: &BTreeSet<u32>, index: usize) -> String {
    let (low, high) = RANGES[index];
    if set.len() as u32 == high - low + 1 {
        return "*".to_string();
    }
    set.iter()
        .map(|v| format!("{v:02}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn unrestricted(text: &str) -> bool {
    text == "*" || text == "?"
}

/// systemd `OnCalendar=` values equivalent to `expression` in `timezone`. Two values (a timer
/// fires on any of its `OnCalendar=`) when both day fields are restricted: cron then matches a
/// day if either matches, while one calendar event requires both.
pub(super) fn on_calendar(
    expression: &str,
    timezone: Option<&str>,
) -> Result<Vec<String>, CronError> {
    let fields = split(expression)?;
    let mut sets = Vec::new();
    for (index, text) in fields.texts.iter().enumerate() {
        sets.push(values(text, index)?);
    }
    let time = format!(
        "{}:{}:{}",
        calendar_field(&sets[2], 2),
        calendar_field(&sets[1], 1),
        calendar_field(&sets[0], 0)
    );
    let month = calendar_field(&sets[4], 4);
    let day = calendar_field(&sets[3], 3);
    let weekdays = sets[5]
        .iter()
        .filter_map(|d| SYSTEMD_WEEKDAYS.get(*d as usize).copied())
        .collect::<Vec<_>>()
        .join(",");
    let zone = timezone.map(|z| format!(" {z}")).unwrap_or_default();
    let by_day = format!("*-{month}-{day} {time}{zone}");
    let by_weekday = format!("{weekdays} *-{month}-* {time}{zone}");
    let (dom_free, dow_free) = (unrestricted(fields.texts[3]), unrestricted(fields.texts[5]));
    Ok(match (dom_free, dow_free) {
        (_, true) => vec![by_day],
        (true, false) => vec![by_weekday],
        (false, false) => vec![by_day, by_weekday],
    })
}

/// A Kubernetes CronJob schedule (five fields). A seconds field other than `0` cannot be
/// expressed.
pub(super) fn five_fields(expression: &str) -> Result<String, CronError> {
    let fields = split(expression)?;
    if values(fields.texts[0], 0)? != BTreeSet::from([0]) {
        return Err(CronError::Seconds(expression.to_string()));
    }
    Ok(fields.texts[1..].join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions_become_calendar_events() {
        assert_eq!(
            on_calendar("0 3 * * *", None).expect("ok"),
            ["*-*-* 03:00:00"]
        );
        assert_eq!(
            on_calendar("*/15 * * * *", Some("Europe/Paris")).expect("ok"),
            ["*-*-* *:00,15,30,45:00 Europe/Paris"]
        );
        assert_eq!(
            on_calendar("30 0 9 * * MON-FRI", None).expect("ok"),
            ["Mon,Tue,Wed,Thu,Fri *-*-* 09:00:30"]
        );
        assert_eq!(
            on_calendar("0 0 1 jan,jul 0", None).expect("ok"),
            ["*-01,07-01 00:00:00", "Sun *-01,07-* 00:00:00"]
        );
        assert_eq!(on_calendar("@hourly", None).expect("ok"), ["*-*-* *:00:00"]);
        assert_eq!(
            on_calendar("0 0 * * fri-sun", None).expect("ok"),
            ["Sun,Fri,Sat *-*-* 00:00:00"]
        );
    }

    #[test]
    fn kubernetes_schedules_drop_a_zero_seconds_field() {
        assert_eq!(five_fields("0 3 * * *").expect("ok"), "0 3 * * *");
        assert_eq!(five_fields("0 */5 * * * *").expect("ok"), "*/5 * * * *");
        assert_eq!(
            five_fields("*/10 * * * * *"),
            Err(CronError::Seconds("*/10 * * * * *".into()))
        );
        assert_eq!(
            five_fields("0 3 * *").map_err(|e| e.to_string()),
            Err("`0 3 * *` does not have 5 or 6 fields".into())
        );
        assert_eq!(
            on_calendar("0 3 * FOO *", None),
            Err(CronError::Value("FOO".into()))
        );
    }
}
