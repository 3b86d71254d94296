//! What a field reader says when a value will not do: the "expected …, got …" half of a
//! message (the caller prefixes file, app and field), with the kind of failure kept apart so a
//! caller can tell a shape error from a value out of range or a pattern that does not compile.

use super::describe;
use crate::units::AmountError;
use crate::words::UnterminatedQuote;
use kelpie_core::cron::CronError;
use serde_json::Value;

/// Why a field's value was refused. `Display` is the message's "expected …, got …" part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not of the shape the field takes (a string where a number is wanted, a word that is not a
    /// number...).
    #[error("expected {what}, got {got}")]
    Expected {
        /// What the field takes, in words.
        what: String,
        /// The value as written: strings quoted, other values as JSON.
        got: String,
    },
    /// A number, but outside the field's range.
    #[error("expected {what}, got {got}")]
    OutOfRange {
        /// What the field takes, in words, range included.
        what: String,
        /// The value as written.
        got: String,
    },
    /// Below the field's minimum (a duration too short to be meant).
    #[error("expected at least {min}, got {got}")]
    TooSmall {
        /// The minimum, in words (`1 second`).
        min: String,
        /// The value as written.
        got: String,
    },
    /// Not one of the fixed set of values the field takes (an exec mode, a signal...).
    #[error("expected {what}, got {got}")]
    UnknownChoice {
        /// The choices, in words.
        what: &'static str,
        /// The value as written.
        got: String,
    },
    /// A regular expression or a glob that does not compile.
    #[error("expected {what}, got {got} ({reason})")]
    BadPattern {
        /// `a valid regular expression` or `a valid glob`.
        what: &'static str,
        /// The value as written.
        got: String,
        /// Why it does not compile, on one line.
        reason: String,
    },
    /// A cron expression or a time zone the daemon's parser refuses.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// A string that is not a size or a duration.
    #[error(transparent)]
    Amount(#[from] AmountError),
    /// A command line whose quote does not close.
    #[error(transparent)]
    Words(#[from] UnterminatedQuote),
}

/// [`ValueError::Expected`] for `value`.
pub(crate) fn expected(what: &str, value: &Value) -> ValueError {
    ValueError::Expected {
        what: what.to_string(),
        got: describe(value),
    }
}

/// [`ValueError::OutOfRange`] for `value`.
pub(crate) fn out_of_range(what: &str, value: &Value) -> ValueError {
    ValueError::OutOfRange {
        what: what.to_string(),
        got: describe(value),
    }
}

/// [`ValueError::TooSmall`] for `value`.
pub(crate) fn too_small(min: &str, value: &Value) -> ValueError {
    ValueError::TooSmall {
        min: min.to_string(),
        got: describe(value),
    }
}

/// [`ValueError::UnknownChoice`] for `value`.
pub(crate) fn unknown_choice(what: &'static str, value: &Value) -> ValueError {
    ValueError::UnknownChoice {
        what,
        got: describe(value),
    }
}
