//! The six fields of an expression: their names, the values `*` stands for, the numbers and
//! names they accept.

/// The six fields, in the order of a 6-field expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
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
    pub(super) const ALL: [Field; 6] = [
        Field::Second,
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    pub(super) fn name(self) -> &'static str {
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
    pub(super) fn span(self) -> (u8, u8) {
        match self {
            Field::Second | Field::Minute => (0, 59),
            Field::Hour => (0, 23),
            Field::DayOfMonth => (1, 31),
            Field::Month => (1, 12),
            Field::DayOfWeek => (0, 6),
        }
    }

    /// The values a number may take: the span, plus 7 for Sunday in day-of-week.
    pub(super) fn accepted(self) -> (u8, u8) {
        match self {
            Field::DayOfWeek => (0, 7),
            other => other.span(),
        }
    }

    /// Names accepted in place of numbers, and the number of the first name.
    pub(super) fn names(self) -> Option<(&'static [&'static str], u8)> {
        match self {
            Field::Month => Some((&MONTH_NAMES, 1)),
            Field::DayOfWeek => Some((&WEEKDAY_NAMES, 0)),
            _ => None,
        }
    }

    pub(super) fn is_day(self) -> bool {
        matches!(self, Field::DayOfMonth | Field::DayOfWeek)
    }
}
