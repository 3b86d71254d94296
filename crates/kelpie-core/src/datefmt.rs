//! Log timestamps in PM2's `log_date_format`: the format tokens of dayjs (the version PM2 pins,
//! 1.11.15, with its English locale), parsed once and then written straight into a byte buffer.
//!
//! The time zone is not looked up here: the caller passes the local offset east of UTC
//! (`kelpie_sys::utc_offset_secs`), which shifts the wall time and is what `Z`/`ZZ` print.

#[cfg(test)]
mod oracle_tests;
mod read;

/// What dayjs formats with when the format is empty.
const DEFAULT_FORMAT: &str = "YYYY-MM-DDTHH:mm:ssZ";

/// The largest |ms| a JavaScript `Date` holds; dayjs prints `Invalid Date` beyond it.
const JS_DATE_MAX_MS: i64 = 8_640_000_000_000_000;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// One dayjs token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `YYYY`
    Year4,
    /// `YY`
    Year2,
    /// `M`
    Month,
    /// `MM`
    Month2,
    /// `MMM`
    MonthShort,
    /// `MMMM`
    MonthLong,
    /// `D`
    Day,
    /// `DD`
    Day2,
    /// `d`
    Weekday,
    /// `dd`
    WeekdayMin,
    /// `ddd`
    WeekdayShort,
    /// `dddd`
    WeekdayLong,
    /// `H`
    Hour,
    /// `HH`
    Hour2,
    /// `h`
    Hour12,
    /// `hh`
    Hour12Pad,
    /// `m`
    Minute,
    /// `mm`
    Minute2,
    /// `s`
    Second,
    /// `ss`
    Second2,
    /// `SSS`
    Millis,
    /// `Z`: `+05:30`
    Offset,
    /// `ZZ`: `+0530`; also what dayjs 1.11.15 prints for `Y` and `YYY`.
    OffsetCompact,
    /// `A`
    MeridiemUpper,
    /// `a`
    MeridiemLower,
    /// `X` (dayjs's advancedFormat plugin)
    UnixSecs,
    /// `x` (dayjs's advancedFormat plugin)
    UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A one-byte literal (`-`, `:`, ` `), the most common, pushed without a copy call.
    Byte(u8),
    Literal(Box<str>),
    Token(Token),
}

impl Piece {
    fn literal(text: String) -> Piece {
        match text.as_bytes() {
            &[byte] => Piece::Byte(byte),
            _ => Piece::Literal(text.into()),
        }
    }
}

/// A dayjs format string (`YYYY-MM-DD HH:mm:ss Z`), parsed once.
///
/// Tokens are matched longest first as dayjs does (`MMMMM` is `MMMM` then `M`); `[...]` is
/// literal text without its brackets; anything else is kept as is. Like the dayjs 1.11.15 that
/// PM2 pins, `Y` and `YYY` print the offset as `ZZ` does (dayjs 1.11.21 and later print `Y` as
/// text and `YYY` as `YY` then `Y`). `X` and `x` (unix seconds and ms) come from dayjs's
/// advancedFormat plugin, which PM2 does not load, so PM2 itself prints them as text. An empty
/// format means dayjs's default, `YYYY-MM-DDTHH:mm:ssZ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat {
    pieces: Vec<Piece>,
}

impl DateFormat {
    /// Parse once; never fails: anything that is not a token is literal text.
    pub fn parse(format: &str) -> DateFormat {
        let format = if format.is_empty() {
            DEFAULT_FORMAT
        } else {
            format
        };
        let bytes = format.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'[' {
                // dayjs: `\[([^\]]+)]`, so `[]` and an unclosed `[` are plain text.
                match format[i + 1..].find(']') {
                    Some(len) if len > 0 => {
                        literal.push_str(&format[i + 1..i + 1 + len]);
                        i += len + 2;
                    }
                    _ => {
                        literal.push('[');
                        i += 1;
                    }
                }
                continue;
            }
            let run = bytes[i..].iter().take_while(|&&c| c == b).count();
            let token = match (b, run) {
                (b'Y', 4..) => Some((Token::Year4, 4)),
                (b'Y', 3) => Some((Token::OffsetCompact, 3)),
                (b'Y', 2) => Some((Token::Year2, 2)),
                (b'Y', _) => Some((Token::OffsetCompact, 1)),
                (b'M', 4..) => Some((Token::MonthLong, 4)),
                (b'M', 3) => Some((Token::MonthShort, 3)),
                (b'M', 2) => Some((Token::Month2, 2)),
                (b'M', _) => Some((Token::Month, 1)),
                (b'D', 2..) => Some((Token::Day2, 2)),
                (b'D', _) => Some((Token::Day, 1)),
                (b'd', 4..) => Some((Token::WeekdayLong, 4)),
                (b'd', 3) => Some((Token::WeekdayShort, 3)),
                (b'd', 2) => Some((Token::WeekdayMin, 2)),
                (b'd', _) => Some((Token::Weekday, 1)),
                (b'H', 2..) => Some((Token::Hour2, 2)),
                (b'H', _) => Some((Token::Hour, 1)),
                (b'h', 2..) => Some((Token::Hour12Pad, 2)),
                (b'h', _) => Some((Token::Hour12, 1)),
                (b'm', 2..) => Some((Token::Minute2, 2)),
                (b'm', _) => Some((Token::Minute, 1)),
                (b's', 2..) => Some((Token::Second2, 2)),
                (b's', _) => Some((Token::Second, 1)),
                (b'S', 3..) => Some((Token::Millis, 3)),
                (b'Z', 2..) => Some((Token::OffsetCompact, 2)),
                (b'Z', _) => Some((Token::Offset, 1)),
                (b'A', _) => Some((Token::MeridiemUpper, 1)),
                (b'a', _) => Some((Token::MeridiemLower, 1)),
                (b'X', _) => Some((Token::UnixSecs, 1)),
                (b'x', _) => Some((Token::UnixMillis, 1)),
                _ => None,
            };
            match token {
                Some((token, len)) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Token(token));
                    i += len;
                }
                None => {
                    // Tokens are ASCII, so `i` is always on a char boundary here.
                    let c = format[i..].chars().next().unwrap_or('\u{fffd}');
                    literal.push(c);
                    i += c.len_utf8();
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::literal(literal));
        }
        DateFormat { pieces }
    }

    /// Append the formatted time. `unix_ms`: ms since epoch (i64). `utc_offset_secs`: local
    /// offset east of UTC, e.g. 3600 for +01:00.
    ///
    /// Beyond the range of a JavaScript `Date` (±8.64e15 ms) this writes `Invalid Date`, as dayjs
    /// does.
    pub fn write(&self, unix_ms: i64, utc_offset_secs: i32, out: &mut Vec<u8>) {
        if !(-JS_DATE_MAX_MS..=JS_DATE_MAX_MS).contains(&unix_ms) {
            out.extend_from_slice(b"Invalid Date");
            return;
        }
        let wall = Wall::new(unix_ms, utc_offset_secs);
        for piece in &self.pieces {
            let token = match piece {
                Piece::Byte(byte) => {
                    out.push(*byte);
                    continue;
                }
                Piece::Literal(text) => {
                    out.extend_from_slice(text.as_bytes());
                    continue;
                }
                Piece::Token(token) => *token,
            };
            match token {
                Token::Year4 => push_year4(out, wall.year),
                Token::Year2 => push_year2(out, wall.year),
                Token::Month => push_1_or_2(out, wall.month),
                Token::Month2 => push_2(out, wall.month),
                Token::MonthShort => out.extend_from_slice(&wall.month_name()[..3]),
                Token::MonthLong => out.extend_from_slice(wall.month_name()),
                Token::Day => push_1_or_2(out, wall.day),
                Token::Day2 => push_2(out, wall.day),
                Token::Weekday => push_1_or_2(out, wall.weekday),
                Token::WeekdayMin => out.extend_from_slice(&wall.weekday_name()[..2]),
                Token::WeekdayShort => out.extend_from_slice(&wall.weekday_name()[..3]),
                Token::WeekdayLong => out.extend_from_slice(wall.weekday_name()),
                Token::Hour => push_1_or_2(out, wall.hour),
                Token::Hour2 => push_2(out, wall.hour),
                Token::Hour12 => push_1_or_2(out, wall.hour12()),
                Token::Hour12Pad => push_2(out, wall.hour12()),
                Token::Minute => push_1_or_2(out, wall.minute),
                Token::Minute2 => push_2(out, wall.minute),
                Token::Second => push_1_or_2(out, wall.second),
                Token::Second2 => push_2(out, wall.second),
                Token::Millis => push_3(out, wall.millis),
                Token::Offset => push_offset(out, utc_offset_secs, true),
                Token::OffsetCompact => push_offset(out, utc_offset_secs, false),
                Token::MeridiemUpper => {
                    out.extend_from_slice(if wall.hour < 12 { b"AM" } else { b"PM" })
                }
                Token::MeridiemLower => {
                    out.extend_from_slice(if wall.hour < 12 { b"am" } else { b"pm" })
                }
                Token::UnixSecs => push_int(out, unix_ms.div_euclid(1000)),
                Token::UnixMillis => push_int(out, unix_ms),
            }
        }
    }

    /// Convenience: same as write into a new String.
    pub fn format(&self, unix_ms: i64, utc_offset_secs: i32) -> String {
        let mut out = Vec::new();
        self.write(unix_ms, utc_offset_secs, &mut out);
        // Only ASCII and whole slices of the (UTF-8) format string were written.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// True when the output changes more often than once per second (SSS, x ...), so a caller
    /// can cache per second otherwise.
    ///
    /// Without such a token the output depends only on the whole second (`unix_ms` floored to
    /// a multiple of 1000) and the offset.
    pub fn has_subsecond(&self) -> bool {
        self.pieces.iter().any(|piece| {
            matches!(
                piece,
                Piece::Token(Token::Millis) | Piece::Token(Token::UnixMillis)
            )
        })
    }
}

/// The local wall-clock fields of one instant.
struct Wall {
    year: i64,
    month: u8,
    day: u8,
    /// 0 = Sunday.
    weekday: u8,
    hour: u8,
    minute: u8,
    second: u8,
    millis: u16,
}

impl Wall {
    fn new(unix_ms: i64, utc_offset_secs: i32) -> Wall {
        // The offset is whole seconds, so it never changes the millisecond.
        let secs = unix_ms.div_euclid(1000) + i64::from(utc_offset_secs);
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Wall {
            year,
            month: month as u8,
            day: day as u8,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u8,
            hour: (of_day / 3600) as u8,
            minute: (of_day % 3600 / 60) as u8,
            second: (of_day % 60) as u8,
            millis: unix_ms.rem_euclid(1000) as u16,
        }
    }

    fn hour12(&self) -> u8 {
        match self.hour % 12 {
            0 => 12,
            h => h,
        }
    }

    fn month_name(&self) -> &'static [u8] {
        MONTHS[usize::from(self.month - 1)].as_bytes()
    }

    fn weekday_name(&self) -> &'static [u8] {
        WEEKDAYS[usize::from(self.weekday)].as_bytes()
    }
}

/// `n` (< 100) as two digits.
#[inline]
fn push_2(out: &mut Vec<u8>, n: u8) {
    out.extend_from_slice(&[b'0' + n / 10, b'0' + n % 10]);
}

/// `n` (< 100) as one or two digits.
#[inline]
fn push_1_or_2(out: &mut Vec<u8>, n: u8) {
    if n < 10 {
        out.push(b'0' + n);
    } else {
        push_2(out, n);
    }
}

/// `n` (< 1000) as three digits.
#[inline]
fn push_3(out: &mut Vec<u8>, n: u16) {
    let hundreds = (n / 100) as u8;
    let rest = (n % 100) as u8;
    out.extend_from_slice(&[b'0' + hundreds, b'0' + rest / 10, b'0' + rest % 10]);
}

/// `n` in decimal, zero-padded to at least `width` digits (`width` <= 20).
fn push_uint(out: &mut Vec<u8>, mut n: u64, width: usize) {
    if width == 4 && n < 10_000 {
        let (high, low) = ((n / 100) as u8, (n % 100) as u8);
        out.extend_from_slice(&[
            b'0' + high / 10,
            b'0' + high % 10,
            b'0' + low / 10,
            b'0' + low % 10,
        ]);
        return;
    }
    let mut buf = [b'0'; 20];
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = start.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_uint(out, n.unsigned_abs(), 1);
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// `YYYY`: dayjs left-pads `String(year)` with zeros to 4 characters, sign included, so year
/// -5 is `00-5`; longer years are printed whole.
fn push_year4(out: &mut Vec<u8>, year: i64) {
    if year >= 0 {
        push_uint(out, year.unsigned_abs(), 4);
        return;
    }
    let digits = decimal_len(year.unsigned_abs());
    for _ in 0..4usize.saturating_sub(digits + 1) {
        out.push(b'0');
    }
    out.push(b'-');
    push_uint(out, year.unsigned_abs(), 1);
}

/// `YY`: the last two characters of `String(year)`: `24` for 2024, `5` for year 5, `-5` for -5.
fn push_year2(out: &mut Vec<u8>, year: i64) {
    let abs = year.unsigned_abs();
    if abs >= 10 {
        push_2(out, (abs % 100) as u8);
    } else {
        if year < 0 {
            out.push(b'-');
        }
        push_1_or_2(out, abs as u8);
    }
}

/// `Z` (`+05:30`) or `ZZ` (`+0530`). dayjs takes the offset from `Date.getTimezoneOffset()`,
/// which Node gives in whole minutes west of UTC (truncated toward zero), and rounds that to a
/// quarter hour. This only shows on historic offsets that are not whole quarters, like
/// Amsterdam's +00:19:32 until 1937, printed `+00:15`; the wall time keeps the exact offset.
fn push_offset(out: &mut Vec<u8>, utc_offset_secs: i32, colon: bool) {
    let minutes_west = -i64::from(utc_offset_secs) / 60;
    // Math.round(minutes_west / 15); never a tie, as minutes_west is whole.
    let quarters_west = (2 * minutes_west + 15).div_euclid(30);
    let minutes_east = -quarters_west * 15;
    out.push(if minutes_east >= 0 { b'+' } else { b'-' });
    let minutes = minutes_east.unsigned_abs();
    match u8::try_from(minutes / 60) {
        Ok(hours) if hours < 100 => push_2(out, hours),
        _ => push_uint(out, minutes / 60, 2),
    }
    if colon {
        out.push(b':');
    }
    push_2(out, (minutes % 60) as u8);
}

/// Days since 1970-01-01 to (year, month, day), for the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::DateFormat;

    /// 2024-02-29T12:34:56.789Z, a Thursday.
    const LEAP_NOON: i64 = 1_709_210_096_789;
    /// 2024-02-29T09:05:03.007Z.
    const LEAP_MORNING: i64 = 1_709_197_503_007;
    /// 2024-02-29T13:00:00.000Z.
    const LEAP_ONE_PM: i64 = 1_709_211_600_000;
    /// 1900-01-01T00:00:00.000Z, a Monday.
    const Y1900: i64 = -2_208_988_800_000;
    const IST: i32 = 5 * 3600 + 30 * 60;
    const PST: i32 = -8 * 3600;

    fn fmt(format: &str, ms: i64, offset: i32) -> String {
        DateFormat::parse(format).format(ms, offset)
    }

    #[test]
    fn pm2_formats() {
        let cases: [(&str, i64, i32, &str); 10] = [
            (
                "YYYY-MM-DD HH:mm:ss Z",
                LEAP_NOON,
                0,
                "2024-02-29 12:34:56 +00:00",
            ),
            (
                "YYYY-MM-DD HH:mm:ss Z",
                LEAP_NOON,
                IST,
                "2024-02-29 18:04:56 +05:30",
            ),
            (
                "YYYY-MM-DD HH:mm:ss Z",
                LEAP_NOON,
                PST,
                "2024-02-29 04:34:56 -08:00",
            ),
            ("YYYY-MM-DDTHH:mm:ss", LEAP_NOON, 0, "2024-02-29T12:34:56"),
            ("YYYY-MM-DD-HH:mm:ss", LEAP_NOON, IST, "2024-02-29-18:04:56"),
            (
                "YYYY-MM-DD HH:mm:ss.SSS",
                LEAP_NOON,
                PST,
                "2024-02-29 04:34:56.789",
            ),
            ("DD/MM/YYYY hh:mm A", LEAP_NOON, 0, "29/02/2024 12:34 PM"),
            ("DD/MM/YYYY hh:mm A", LEAP_NOON, IST, "29/02/2024 06:04 PM"),
            ("DD/MM/YYYY hh:mm A", LEAP_NOON, PST, "29/02/2024 04:34 AM"),
            ("DD/MM/YYYY hh:mm A", 0, 0, "01/01/1970 12:00 AM"),
        ];
        for (format, ms, offset, want) in cases {
            assert_eq!(fmt(format, ms, offset), want, "{format} at {ms} {offset}");
        }
    }

    #[test]
    fn every_token() {
        let all = "YYYY|YY|M|MM|MMM|MMMM|D|DD|d|dd|ddd|dddd|H|HH|h|hh|m|mm|s|ss|SSS|Z|ZZ|A|a|X|x";
        let cases: [(i64, i32, &str); 8] = [
            (
                0,
                0,
                "1970|70|1|01|Jan|January|1|01|4|Th|Thu|Thursday|0|00|12|12|0|00|0|00|000\
                 |+00:00|+0000|AM|am|0|0",
            ),
            (
                LEAP_NOON,
                0,
                "2024|24|2|02|Feb|February|29|29|4|Th|Thu|Thursday|12|12|12|12|34|34|56|56|789\
                 |+00:00|+0000|PM|pm|1709210096|1709210096789",
            ),
            (
                LEAP_NOON,
                IST,
                "2024|24|2|02|Feb|February|29|29|4|Th|Thu|Thursday|18|18|6|06|4|04|56|56|789\
                 |+05:30|+0530|PM|pm|1709210096|1709210096789",
            ),
            (
                LEAP_NOON,
                PST,
                "2024|24|2|02|Feb|February|29|29|4|Th|Thu|Thursday|4|04|4|04|34|34|56|56|789\
                 |-08:00|-0800|AM|am|1709210096|1709210096789",
            ),
            (
                LEAP_MORNING,
                0,
                "2024|24|2|02|Feb|February|29|29|4|Th|Thu|Thursday|9|09|9|09|5|05|3|03|007\
                 |+00:00|+0000|AM|am|1709197503|1709197503007",
            ),
            (
                LEAP_ONE_PM,
                0,
                "2024|24|2|02|Feb|February|29|29|4|Th|Thu|Thursday|13|13|1|01|0|00|0|00|000\
                 |+00:00|+0000|PM|pm|1709211600|1709211600000",
            ),
            // One ms before the epoch: the wall time and X floor, they do not truncate.
            (
                -1,
                0,
                "1969|69|12|12|Dec|December|31|31|3|We|Wed|Wednesday|23|23|11|11|59|59|59|59\
                 |999|+00:00|+0000|PM|pm|-1|-1",
            ),
            // The offset can move the date across a year and a weekday.
            (
                Y1900,
                PST,
                "1899|99|12|12|Dec|December|31|31|0|Su|Sun|Sunday|16|16|4|04|0|00|0|00|000\
                 |-08:00|-0800|PM|pm|-2208988800|-2208988800000",
            ),
        ];
        for (ms, offset, want) in cases {
            assert_eq!(fmt(all, ms, offset), want, "at {ms} {offset}");
        }
        assert_eq!(fmt("dddd D MMMM", Y1900, 0), "Monday 1 January");
    }

    #[test]
    fn years_as_dayjs_prints_them() {
        // 0005-03-01T00:00:00Z, 0000-03-01, -0005-03-01 (proleptic Gregorian).
        assert_eq!(fmt("YYYY YY", -62_004_268_800_000, 0), "0005 5");
        assert_eq!(fmt("YYYY YY", -62_162_035_200_000, 0), "0000 0");
        assert_eq!(fmt("YYYY YY", -62_319_888_000_000, 0), "00-5 -5");
        // The last instant a JavaScript Date holds, then one past it.
        assert_eq!(
            fmt("YYYY-MM-DD YY", 8_640_000_000_000_000, 0),
            "275760-09-13 60"
        );
        assert_eq!(fmt("YYYY", 8_640_000_000_000_001, 0), "Invalid Date");
        assert_eq!(fmt("YYYY", i64::MIN, i32::MIN), "Invalid Date");
        // dayjs 1.11.15 (PM2's) prints the ZZ offset for `Y` and `YYY`.
        assert_eq!(fmt("Y", 0, 3600), "+0100");
        assert_eq!(fmt("YYY", 0, 3600), "+0100");
        assert_eq!(fmt("YYYYY", 0, 0), "1970+0000");
        assert_eq!(fmt("YYYYYY", 0, 0), "197070");
    }

    #[test]
    fn longest_tokens_first() {
        assert_eq!(fmt("MMMMM", LEAP_NOON, 0), "February2");
        assert_eq!(fmt("DDD", LEAP_NOON, 0), "2929");
        assert_eq!(fmt("ddddd", LEAP_NOON, 0), "Thursday4");
        assert_eq!(fmt("HHH hhh mmm sss", LEAP_NOON, 0), "1212 1212 3434 5656");
        assert_eq!(fmt("ZZZ", LEAP_NOON, IST), "+0530+05:30");
        assert_eq!(fmt("SSSS SS S", LEAP_NOON, 0), "789S SS S");
        assert_eq!(fmt("SSSSSS", LEAP_NOON, 0), "789789");
    }

    #[test]
    fn offsets() {
        assert_eq!(fmt("Z ZZ", 0, 0), "+00:00 +0000");
        assert_eq!(fmt("Z ZZ", 0, 5 * 3600 + 45 * 60), "+05:45 +0545");
        assert_eq!(fmt("Z ZZ", 0, -(9 * 3600 + 30 * 60)), "-09:30 -0930");
        assert_eq!(fmt("Z ZZ", 0, 14 * 3600), "+14:00 +1400");
        assert_eq!(fmt("Z ZZ", 0, -12 * 3600), "-12:00 -1200");
        // Historic offsets: truncated to whole minutes, then rounded to a quarter hour, for
        // Z only; the wall time keeps the seconds.
        assert_eq!(fmt("Z HH:mm:ss", 0, 19 * 60 + 32), "+00:15 00:19:32");
        assert_eq!(fmt("Z", 0, -(44 * 60 + 30)), "-00:45");
        assert_eq!(fmt("Z", 0, 7 * 60 + 59), "+00:00");
        assert_eq!(fmt("Z", 0, 8 * 60), "+00:15");
        assert_eq!(fmt("Z", 0, -(7 * 60 + 59)), "+00:00");
        assert_eq!(fmt("Z", 0, -8 * 60), "-00:15");
    }

    #[test]
    fn brackets_escape() {
        assert_eq!(fmt("[T]", LEAP_ONE_PM, 0), "T");
        assert_eq!(fmt("[at] HH", LEAP_ONE_PM, 0), "at 13");
        assert_eq!(
            fmt("YYYY-MM-DD[T]HH:mm:ss[Z]", LEAP_NOON, 0),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(fmt("[YYYY] YYYY", LEAP_NOON, 0), "YYYY 2024");
        // `[]` and an unclosed `[` are text; a `[` inside brackets is text too.
        assert_eq!(fmt("[]", LEAP_NOON, 0), "[]");
        assert_eq!(fmt("[YYYY", LEAP_NOON, 0), "[2024");
        assert_eq!(fmt("[a[b]", LEAP_NOON, 0), "a[b");
        assert_eq!(fmt("[[x]]", LEAP_NOON, 0), "[x]");
        assert_eq!(fmt("[ünï]MM", LEAP_NOON, 0), "ünï02");
    }

    #[test]
    fn other_text_is_literal() {
        assert_eq!(fmt("T W Q k G b", LEAP_NOON, 0), "T W Q k G b");
        assert_eq!(fmt("été: HH", LEAP_NOON, 0), "été: 12");
        assert_eq!(fmt("", LEAP_NOON, IST), "2024-02-29T18:04:56+05:30");
        assert_eq!(fmt("-- ", LEAP_NOON, 0), "-- ");
    }

    #[test]
    fn write_appends() {
        let format = DateFormat::parse("HH:mm");
        let mut out = b"at ".to_vec();
        format.write(LEAP_NOON, IST, &mut out);
        format.write(LEAP_NOON, 0, &mut out);
        assert_eq!(out, b"at 18:0412:34");
    }

    #[test]
    fn subsecond_tokens() {
        for format in ["YYYY-MM-DD HH:mm:ss.SSS", "x", "[at] x", "HH SSSS"] {
            assert!(DateFormat::parse(format).has_subsecond(), "{format}");
        }
        for format in ["YYYY-MM-DD HH:mm:ss Z", "X", "[SSS] [x]", "SS", ""] {
            assert!(!DateFormat::parse(format).has_subsecond(), "{format}");
        }
    }
}
