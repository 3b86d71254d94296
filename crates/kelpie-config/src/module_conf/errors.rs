//! What can go wrong with the store: a key that does not split, a `pm2-logrotate` value Kelpie
//! cannot use, a `multiset` line that is not pairs, a file that cannot be read. `Display` is the
//! message users see; the kinds are kept apart for callers.

use super::{LOGROTATE, LOGROTATE_KEYS};
use crate::convert::ValueError;
use kelpie_core::cron::CronError;
use std::path::PathBuf;

/// Why `set` or `unset` refused a key or a value; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfKeyError {
    /// A `"` that does not close.
    #[error("key `{key}` has an unclosed quote")]
    UnclosedQuote {
        /// The key as given.
        key: String,
    },
    /// `a..b`, `:b`: a part with nothing in it.
    #[error("key `{key}` has an empty part")]
    EmptyPart {
        /// The key as given.
        key: String,
    },
    /// No part at all (`split_key` returns at least one: kept for a store edited in between).
    #[error("key `{key}` is empty")]
    Empty {
        /// The key as given.
        key: String,
    },
    /// A part before the last that is a plain value, not a section (replaced before it is
    /// looked at, so only a defence).
    #[error("key `{key}`: `{section}` is not a section")]
    NotASection {
        /// The key as given.
        key: String,
        /// The part that is not a section.
        section: String,
    },
    /// `pm2-logrotate` alone: it is a section, not a value.
    #[error(
        "`{LOGROTATE}` holds the log rotation settings: set one of its keys, e.g. `kelpie set {LOGROTATE}:max_size 10M` (keys: {})",
        LOGROTATE_KEYS.join(", ")
    )]
    WholeLogrotateSection,
    /// A `pm2-logrotate` key pm2-logrotate does not have.
    #[error(transparent)]
    UnknownLogrotateKey(#[from] UnknownLogrotateKey),
    /// A `pm2-logrotate` value Kelpie cannot use.
    #[error("{LOGROTATE}:{key}: {reason}; nothing was changed")]
    Logrotate {
        /// The key in the section (`max_size`).
        key: String,
        /// What is wrong with the value (boxed: it is large, and this path is rare).
        reason: Box<LogrotateError>,
    },
}

/// A `pm2-logrotate` key pm2-logrotate does not have, with the closest known one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key `{LOGROTATE}:{key}` ({})", hint(*suggestion))]
pub struct UnknownLogrotateKey {
    /// The key in the section, as given.
    pub key: String,
    /// The known key it is probably a typo of.
    pub suggestion: Option<&'static str>,
}

fn hint(suggestion: Option<&str>) -> String {
    match suggestion {
        Some(known) => format!("did you mean `{known}`?"),
        None => format!("known keys: {}", LOGROTATE_KEYS.join(", ")),
    }
}

/// Why a `pm2-logrotate` value cannot be used (set now, or found in the file: then skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogrotateError {
    /// Not of the key's type (a size, a boolean, a count...).
    #[error(transparent)]
    Value(#[from] ValueError),
    /// `retain` that is neither a count nor `all`.
    #[error("expected a number of rotated files to keep (or all), got {got}")]
    Retain {
        /// The value as written.
        got: String,
    },
    /// `workerInterval` of 0.
    #[error("expected a number of seconds ≥ 1, got 0")]
    ZeroWorkerInterval,
    /// `rotateInterval` that is not text.
    #[error("expected a cron expression like `0 0 * * *`")]
    NotAnInterval,
    /// `rotateInterval` in Kelpie's own forms (`6h`, `daily`) that does not read.
    #[error("{0}; or a cron expression like `0 0 * * *` (daily) or `0 * * * *` (hourly)")]
    Interval(ValueError),
    /// `rotateInterval` or `TZ` that the cron parser refuses.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// A valid cron expression whose times are not evenly spaced over every day.
    #[error(
        "`{expression}` cannot be followed: Kelpie rotates by time at evenly spaced times of every day, counted from midnight. Use `0 0 * * *` (daily), `0 * * * *` (hourly), `0 */6 * * *` (every 6 hours), `*/30 * * * *` (every 30 minutes) or the like"
    )]
    UnevenSchedule {
        /// The expression as written.
        expression: String,
    },
    /// A key of the section pm2-logrotate does not have (found in the file).
    #[error(transparent)]
    UnknownKey(#[from] UnknownLogrotateKey),
}

/// Why a `multiset` argument is not pairs of words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultisetError {
    /// A `"` that does not close.
    #[error("unclosed quote")]
    UnclosedQuote,
    /// No words at all.
    #[error("expected \"<key> <value> [<key> <value>…]\"")]
    Empty,
    /// An odd number of words.
    #[error("expected pairs of <key> <value>, but `{key}` has no value")]
    MissingValue {
        /// The last word, a key without a value.
        key: String,
    },
}

/// Why the store's file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but cannot be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The store's file.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// The file does not hold a store.
    #[error("{}: {cause}", path.display())]
    Parse {
        /// The store's file.
        path: PathBuf,
        /// What is wrong with its text.
        cause: StoreTextError,
    },
}

/// Why a text is not a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreTextError {
    /// JSON, but not an object.
    #[error("expected a JSON object, got {kind}")]
    NotAnObject {
        /// The JSON type found, in words.
        kind: &'static str,
    },
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Json(serde_json::Error),
}
