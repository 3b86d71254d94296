//! Why an expression or a time zone was refused: which part, and why, so a caller can tell a
//! wrong field count from a bad value without reading the text. `Display` is the message shown
//! to users.

/// Why a cron expression, or the time zone it is read in, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Neither 5 nor 6 fields.
    #[error(
        "expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {count} in `{expression}`"
    )]
    FieldCount {
        /// How many fields there were.
        count: usize,
        /// The expression as written.
        expression: String,
    },
    /// `@reboot`, which croner accepts but which is not a time.
    #[error("`@reboot` is not a time of day and cannot be a restart schedule")]
    Reboot,
    /// A `@name` that is not one of the known macros.
    #[error(
        "unknown macro `{text}`: expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
    )]
    UnknownMacro {
        /// The macro as written (trimmed).
        text: String,
    },
    /// One field is wrong.
    #[error("field {position} ({field}) of `{expression}`: {reason}")]
    Field {
        /// 1-based position of the field in the expression.
        position: usize,
        /// The field's name (`minute`, `day-of-week`...).
        field: &'static str,
        /// The expression as written.
        expression: String,
        /// What is wrong with it.
        reason: FieldError,
    },
    /// A time zone name the system's database does not know.
    #[error("unknown time zone `{name}`: {reason}")]
    UnknownTimeZone {
        /// The name as given.
        name: String,
        /// The time zone database's explanation (kept as text so the error stays comparable).
        reason: String,
    },
}

/// What is wrong with one field of an expression (the field itself is named by
/// [`CronError::Field`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// `?` outside the two day fields.
    #[error("`?` is only allowed in day-of-month and day-of-week")]
    QuestionMark,
    /// `1,,2`: an empty item.
    #[error("empty item in the list `{list}`")]
    EmptyItem {
        /// The field's text.
        list: String,
    },
    /// `22-2`: ranges do not wrap.
    #[error("range {first}-{last} is backwards")]
    Backwards {
        /// The start as written.
        first: String,
        /// The end as written.
        last: String,
    },
    /// `*/x`.
    #[error("step `{step}` in `{item}` is not a number")]
    StepNotNumber {
        /// The step as written.
        step: String,
        /// The item holding it.
        item: String,
    },
    /// `*/0`.
    #[error("step 0 in `{item}`: a step must be at least 1")]
    StepZero {
        /// The item holding it.
        item: String,
    },
    /// A step larger than the field's span.
    #[error("step {step} in `{item}` is larger than the field's range {low}-{high}")]
    StepTooLarge {
        /// The step as written.
        step: String,
        /// The item holding it.
        item: String,
        /// The field's lowest value.
        low: u8,
        /// The field's highest value.
        high: u8,
    },
    /// `-5` or `1-`.
    #[error("`{item}` is missing a number")]
    MissingNumber {
        /// The item as written.
        item: String,
    },
    /// A number outside what the field accepts.
    #[error("{value} is out of range {low}-{high}")]
    OutOfRange {
        /// The number as written.
        value: String,
        /// The lowest accepted value.
        low: u8,
        /// The highest accepted value.
        high: u8,
    },
    /// Neither a number nor one of the field's names (months, weekdays).
    #[error("`{text}` is not a number or a {kind} name ({first}-{last})")]
    UnknownName {
        /// The text as written.
        text: String,
        /// `month` or `weekday`.
        kind: &'static str,
        /// The first name (`JAN`, `SUN`).
        first: &'static str,
        /// The last name (`DEC`, `SAT`).
        last: &'static str,
    },
    /// Not a number, in a field without names.
    #[error("`{text}` is not a number")]
    NotANumber {
        /// The text as written.
        text: String,
    },
}
