//! The next time a schedule fires: searched on the wall clock field by field, then mapped back
//! to an instant (a wall time skipped by a daylight-saving change never fires, a repeated one
//! fires at its first occurrence).

use super::CronSchedule;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp, Zoned};

/// How many years ahead `next_after` looks before giving up. Eight, not fewer, so that
/// `0 0 29 2 *` still finds the 29th of February across 2100, which is not a leap year.
const SEARCH_YEARS: i16 = 8;

impl CronSchedule {
    /// The first time strictly after `after` (whole seconds) that matches, in `after`'s zone;
    /// `None` if none within the next eight years.
    ///
    /// A wall time skipped by a daylight-saving change never matches; a wall time repeated by
    /// one matches at its first occurrence only (see the module documentation).
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone();
        // Whole-second resolution: from 10:00:00.300 the earliest answer is 10:00:01. Floor,
        // not truncation, so that instants before 1970 round the same way.
        let timestamp = after.timestamp();
        let mut whole_seconds = timestamp.as_second();
        if timestamp.subsec_nanosecond() < 0 {
            whole_seconds -= 1;
        }
        let earliest = Timestamp::from_second(whole_seconds.checked_add(1)?).ok()?;
        let last_year = tz.to_datetime(earliest).year().saturating_add(SEARCH_YEARS);

        // Search the wall clock, then map each matching wall time back to an instant. No
        // answer has a wall time before `earliest`'s: the wall clock only goes backwards in a
        // repeated hour, whose second occurrences never fire.
        let mut cursor = tz.to_datetime(earliest);
        loop {
            let wall = self.next_wall_time(cursor, last_year)?;
            let offset = match tz.to_ambiguous_timestamp(wall).offset() {
                AmbiguousOffset::Unambiguous { offset } => Some(offset),
                // Repeated: the first occurrence, which is in the offset before the change.
                AmbiguousOffset::Fold { before, .. } => Some(before),
                // Skipped: never fires.
                AmbiguousOffset::Gap { .. } => None,
            };
            if let Some(offset) = offset {
                let instant = offset.to_timestamp(wall).ok()?;
                if instant >= earliest {
                    return Some(instant.to_zoned(tz.clone()));
                }
            }
            // Either a skipped wall time, or a repeated one whose first occurrence is already
            // past (`after` is in the second occurrence): then the rest of the skipped or
            // repeated span cannot fire either, so jump past it rather than test each second.
            cursor = end_of_transition(tz, wall)
                .or_else(|| wall.checked_add(SignedDuration::from_secs(1)).ok())?;
        }
    }

    /// The first wall time at or after `from` (whole seconds) that matches every field, in a
    /// year up to `last_year`. Skips by field: a month that does not match is passed in one
    /// step, then a day, an hour, a minute.
    fn next_wall_time(&self, from: DateTime, last_year: i16) -> Option<DateTime> {
        let mut year = from.year();
        // Every value below fits in a u8: the fields' ranges, or one past their end.
        let mut month = u8::try_from(from.month()).ok()?;
        let mut day = u8::try_from(from.day()).ok()?;
        let mut hour = u8::try_from(from.hour()).ok()?;
        let mut minute = u8::try_from(from.minute()).ok()?;
        let mut second = u8::try_from(from.second()).ok()?;
        loop {
            if year > last_year {
                return None;
            }
            match self.months.first_at_or_after(month) {
                None => {
                    year = year.checked_add(1)?;
                    (month, day, hour, minute, second) = (1, 1, 0, 0, 0);
                    continue;
                }
                Some(found) if found != month => {
                    (month, day, hour, minute, second) = (found, 1, 0, 0, 0);
                }
                Some(_) => {}
            }
            let first_of_month = Date::new(year, i8::try_from(month).ok()?, 1).ok()?;
            let days_in_month = u8::try_from(first_of_month.days_in_month()).ok()?;
            let first_weekday =
                u8::try_from(first_of_month.weekday().to_sunday_zero_offset()).ok()?;
            let matching_day = (day..=days_in_month).find(|&candidate| {
                self.day_matches(candidate, (first_weekday + candidate - 1) % 7)
            });
            match matching_day {
                None => {
                    // Past the month's last day: `first_at_or_after(13)` moves to next year.
                    (month, day, hour, minute, second) = (month + 1, 1, 0, 0, 0);
                    continue;
                }
                Some(found) if found != day => {
                    (day, hour, minute, second) = (found, 0, 0, 0);
                }
                Some(_) => {}
            }
            match self.hours.first_at_or_after(hour) {
                None => {
                    (day, hour, minute, second) = (day + 1, 0, 0, 0);
                    continue;
                }
                Some(found) if found != hour => {
                    (hour, minute, second) = (found, 0, 0);
                }
                Some(_) => {}
            }
            match self.minutes.first_at_or_after(minute) {
                None => {
                    (hour, minute, second) = (hour + 1, 0, 0);
                    continue;
                }
                Some(found) if found != minute => {
                    (minute, second) = (found, 0);
                }
                Some(_) => {}
            }
            match self.seconds.first_at_or_after(second) {
                None => {
                    (minute, second) = (minute + 1, 0);
                    continue;
                }
                Some(found) => second = found,
            }
            return DateTime::new(
                year,
                i8::try_from(month).ok()?,
                i8::try_from(day).ok()?,
                i8::try_from(hour).ok()?,
                i8::try_from(minute).ok()?,
                i8::try_from(second).ok()?,
                0,
            )
            .ok();
        }
    }

    /// Whether a day (of month, and of week with 0 = Sunday) is chosen by the two day fields.
    fn day_matches(&self, day_of_month: u8, day_of_week: u8) -> bool {
        let by_month = self.days_of_month.contains(day_of_month);
        let by_week = self.days_of_week.contains(day_of_week);
        if self.any_day_of_month || self.any_day_of_week {
            // The unrestricted one holds every day, so this is the other one alone.
            by_month && by_week
        } else {
            by_month || by_week
        }
    }
}

/// The first wall time after the skipped or repeated span that `wall` is in, from the time
/// zone's transition; `None` if that cannot be worked out (then the caller steps one second).
fn end_of_transition(tz: &TimeZone, wall: DateTime) -> Option<DateTime> {
    let (before, after) = match tz.to_ambiguous_timestamp(wall).offset() {
        AmbiguousOffset::Gap { before, after } | AmbiguousOffset::Fold { before, after } => {
            (before, after)
        }
        AmbiguousOffset::Unambiguous { .. } => return None,
    };
    // The span is [transition + smaller offset, transition + larger offset) on the wall clock,
    // so the transition is the first one after `wall` read in the larger offset.
    let larger: Offset = if before > after { before } else { after };
    let transition = tz.following(larger.to_timestamp(wall).ok()?).next()?;
    let end = larger.to_datetime(transition.timestamp());
    // A guard against odd zone data: the search must move forward.
    (end > wall).then_some(end)
}
