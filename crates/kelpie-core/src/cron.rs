//! Cron schedules for `cron_restart`: 5 fields (minute hour day-of-month month day-of-week) or 6
//! (seconds first), read in an explicit time zone.
//!
//! SKELETON: the API is fixed; the parser and `next_after` are being written (issue 4).

use jiff::tz::TimeZone;
use jiff::Zoned;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expression: String,
}

impl CronSchedule {
    /// Parse a 5- or 6-field expression; the error says which field is wrong and why.
    pub fn parse(expression: &str) -> Result<CronSchedule, String> {
        let fields = expression.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {fields} in `{expression}`"
            ));
        }
        Ok(CronSchedule {
            expression: expression.to_string(),
        })
    }

    /// The first time strictly after `after` (whole seconds) that matches, in `after`'s zone;
    /// `None` if none within the next few years.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let _ = after;
        None
    }
}

/// The zone a schedule is read in: `None` or `local` = the system's, `UTC`, or an IANA name
/// (`Europe/Paris`, read from the system's time zone database).
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None | Some("local") => Ok(TimeZone::system()),
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown time zone `{name}`: {e}")),
    }
}
