//! Reading a time back from the text a [`DateFormat`] wrote: the date prefix of a log line, so
//! that lines read back from a file carry the time they were written (`logs --json`).
//!
//! The inverse of `DateFormat::write` for what it prints: numbers, English month and weekday
//! names, `AM`/`PM`, offsets and unix times. A format without a date (only `HH:mm:ss`) reads
//! as nothing: the day cannot be told.

use super::{DateFormat, Piece, Token, MONTHS, WEEKDAYS};

/// The fields found, before they are put together.
#[derive(Default)]
struct Fields {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    hour12: Option<u32>,
    pm: Option<bool>,
    minute: Option<u32>,
    second: Option<u32>,
    millis: u32,
    offset_secs: Option<i32>,
    unix_ms: Option<i64>,
}

impl DateFormat {
    /// The time (ms since the epoch) this format wrote at the start of `text`, and how many
    /// bytes it took. `local_offset` gives the local offset east of UTC (seconds) at a unix
    /// time (seconds), for formats that print no offset.
    pub fn read(&self, text: &[u8], local_offset: impl Fn(i64) -> i32) -> Option<(i64, usize)> {
        let mut fields = Fields::default();
        let mut at = 0;
        for piece in &self.pieces {
            let rest = &text[at..];
            at += match piece {
                Piece::Byte(byte) => (rest.first() == Some(byte)).then_some(1)?,
                Piece::Literal(literal) => rest
                    .starts_with(literal.as_bytes())
                    .then_some(literal.len())?,
                Piece::Token(token) => read_token(*token, rest, &mut fields)?,
            };
        }
        Some((fields.unix_ms(local_offset)?, at))
    }
}

impl Fields {
    fn unix_ms(&self, local_offset: impl Fn(i64) -> i32) -> Option<i64> {
        if let Some(ms) = self.unix_ms {
            return Some(ms);
        }
        let hour = match (self.hour12, self.pm) {
            (Some(h), Some(pm)) => h % 12 + if pm { 12 } else { 0 },
            (Some(h), None) => h,
            (None, _) => self.hour.unwrap_or(0),
        };
        // What the format does not print is 0 (`YYYY-MM-DD` is midnight).
        let (minute, second) = (self.minute.unwrap_or(0), self.second.unwrap_or(0));
        if self.month? > 12 || self.day? > 31 || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let days = days_from_civil(self.year?, self.month?, self.day?);
        let wall_secs =
            days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
        let offset = match self.offset_secs {
            Some(offset) => offset,
            // The offset at the wall time read as UTC is off by at most the offset itself;
            // asking again at the corrected instant gets it right outside the hour of a change.
            None => local_offset(wall_secs - i64::from(local_offset(wall_secs))),
        };
        Some((wall_secs - i64::from(offset)) * 1000 + i64::from(self.millis))
    }
}

/// Read one token at the start of `text` into `fields`: how many bytes it took.
fn read_token(token: Token, text: &[u8], fields: &mut Fields) -> Option<usize> {
    match token {
        Token::Year4 => {
            let (year, len) = digits(text, 4, 6)?;
            fields.year = Some(year as i64);
            Some(len)
        }
        Token::Year2 => {
            // As moment reads two-digit years: 69-99 are 1969-1999, 00-68 are 2000-2068.
            let (year, len) = digits(text, 2, 2)?;
            fields.year = Some(year as i64 + if year > 68 { 1900 } else { 2000 });
            Some(len)
        }
        Token::Month | Token::Month2 => number(text, token == Token::Month2, &mut fields.month),
        Token::Day | Token::Day2 => number(text, token == Token::Day2, &mut fields.day),
        Token::Hour | Token::Hour2 => number(text, token == Token::Hour2, &mut fields.hour),
        Token::Hour12 | Token::Hour12Pad => {
            number(text, token == Token::Hour12Pad, &mut fields.hour12)
        }
        Token::Minute | Token::Minute2 => number(text, token == Token::Minute2, &mut fields.minute),
        Token::Second | Token::Second2 => number(text, token == Token::Second2, &mut fields.second),
        Token::Millis => {
            let (millis, len) = digits(text, 3, 3)?;
            fields.millis = millis;
            Some(len)
        }
        Token::MonthShort | Token::MonthLong => {
            let (index, len) = MONTHS.iter().enumerate().find_map(|(i, name)| {
                let name = if token == Token::MonthShort {
                    &name[..3]
                } else {
                    name
                };
                text.starts_with(name.as_bytes()).then_some((i, name.len()))
            })?;
            fields.month = Some(index as u32 + 1);
            Some(len)
        }
        Token::Weekday => digits(text, 1, 1).map(|(_, len)| len),
        Token::WeekdayMin | Token::WeekdayShort | Token::WeekdayLong => {
            WEEKDAYS.iter().find_map(|name| {
                let name = match token {
                    Token::WeekdayMin => &name[..2],
                    Token::WeekdayShort => &name[..3],
                    _ => name,
                };
                text.starts_with(name.as_bytes()).then_some(name.len())
            })
        }
        Token::Offset | Token::OffsetCompact => {
            let colon = token == Token::Offset;
            let sign = match text.first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, _) = digits(&text[1..], 2, 2)?;
            let minutes_at = if colon {
                (text.get(3) == Some(&b':')).then_some(4)?
            } else {
                3
            };
            let (minutes, _) = digits(text.get(minutes_at..)?, 2, 2)?;
            fields.offset_secs = Some(sign * (hours as i32 * 3600 + minutes as i32 * 60));
            Some(minutes_at + 2)
        }
        Token::MeridiemUpper | Token::MeridiemLower => {
            let word = text.get(..2)?.to_ascii_uppercase();
            fields.pm = Some(match word.as_slice() {
                b"AM" => false,
                b"PM" => true,
                _ => return None,
            });
            Some(2)
        }
        Token::UnixSecs | Token::UnixMillis => {
            let negative = text.first() == Some(&b'-');
            let start = usize::from(negative);
            let len = text[start..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let value: i64 = std::str::from_utf8(&text[start..start + len])
                .ok()?
                .parse()
                .ok()?;
            let value = if negative { -value } else { value };
            fields.unix_ms = Some(if token == Token::UnixSecs {
                value * 1000
            } else {
                value
            });
            Some(start + len)
        }
    }
}

/// A one-or-two-digit number (`M`, `D`, `H`...), or exactly two digits when `padded`.
fn number(text: &[u8], padded: bool, into: &mut Option<u32>) -> Option<usize> {
    let (value, len) = if padded {
        digits(text, 2, 2)?
    } else {
        digits(text, 1, 2)?
    };
    *into = Some(value);
    Some(len)
}

/// Between `min` and `max` ASCII digits at the start of `text` (as many as there are).
fn digits(text: &[u8], min: usize, max: usize) -> Option<(u32, usize)> {
    let len = text
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if len < min {
        return None;
    }
    let value = text[..len]
        .iter()
        .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    Some((value, len))
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
pub(super) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token, written then read back, at offsets east and west and at UTC.
    #[test]
    fn what_a_format_writes_reads_back_as_the_same_time() {
        let formats = [
            "YYYY-MM-DD HH:mm:ss",
            "YYYY-MM-DD HH:mm:ss.SSS Z",
            "YYYY-MM-DDTHH:mm:ssZZ",
            "",
            "ddd, D MMM YYYY h:m:s A",
            "dddd D MMMM YY hh:mm:ss.SSS a [at] Z",
            "dd M/D/YYYY H:mm",
            "x",
            "X",
        ];
        let instants = [0i64, 1_764_000_000_123, 951_782_400_000, 1_709_164_799_999];
        for offset in [0, 3600, -18_000, 19_800] {
            for format in formats {
                let parsed = DateFormat::parse(format);
                for at in instants {
                    let text = parsed.format(at, offset);
                    let (read, len) = parsed
                        .read(format!("{text}: line").as_bytes(), |_| offset)
                        .unwrap_or_else(|| panic!("{format:?} did not read {text:?}"));
                    // What the format does not print is not read back.
                    let precision = if format.contains('S') || format == "x" {
                        1
                    } else if format.contains('s') || format.contains('X') || format.is_empty() {
                        1000
                    } else {
                        60_000
                    };
                    assert_eq!(read, at - at.rem_euclid(precision), "{format:?} {text:?}");
                    assert_eq!(len, text.len(), "{format:?}");
                }
            }
        }
    }

    #[test]
    fn text_that_is_not_the_format_reads_as_nothing() {
        let parsed = DateFormat::parse("YYYY-MM-DD HH:mm:ss");
        for text in [
            "tick",
            "2026-11-24",
            "2026-13-01 00:00:00",
            "2026-11-24 25:00:00",
            "",
        ] {
            assert_eq!(parsed.read(text.as_bytes(), |_| 0), None, "{text}");
        }
        // No date in the format: the day cannot be told.
        assert_eq!(DateFormat::parse("HH:mm:ss").read(b"03:14:55", |_| 0), None);
    }
}
