//! Why a request that has acted did not end as asked (the change is made, or made in part): one
//! type, each failure with its words and its wire kind, made into the client's error in one
//! place ([`Failure::wire`]). A request turned down before it acted is a
//! [`Refusal`](super::refusal::Refusal).

use kelpie_proto::{ErrorKind, WireError};

/// What did not go as asked once a request had acted.
#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    /// `save`: the dump was not written (a cause `--force` can override, or the file's).
    #[error("{0}")]
    DumpNotSaved(String),
    /// `save`: the persister ended without answering.
    #[error("the dump was not written")]
    DumpNoAnswer,
    /// `scale`: instances that could not be started or deleted, one line each.
    #[error("{}", .0.join("\n"))]
    ScaleIncomplete(Vec<String>),
    /// `set` or `unset`: in force, but not written to the store.
    #[error("{0}: the change is in force but will be lost when the daemon stops")]
    ConfNotSaved(String),
    /// `send` and the like: some processes did not get it.
    #[error("{what} to {sent}; {}", .errors.join("; "))]
    NotAllSent {
        /// What was sent (`message`, `line`...).
        what: String,
        /// To how many processes it went.
        sent: usize,
        /// Why the others did not get it.
        errors: Vec<String>,
    },
    /// `flush`: the files could not be emptied.
    #[error("{0}")]
    FlushFailed(String),
    /// `reloadLogs`: the files were reopened, but `kelpie.toml` could not be used.
    #[error("reopened {count} log file(s), but {problem}")]
    ReopenedBut {
        /// Log files reopened.
        count: usize,
        /// What was wrong with the settings.
        problem: String,
    },
    /// The change was made, but `state.json` could not be written.
    #[error("the change was made but could not be saved: {0}")]
    NotSaved(String),
}

impl Failure {
    /// How the client classifies it (its exit status, the HTTP status).
    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            Failure::DumpNotSaved(_) | Failure::ScaleIncomplete(_) | Failure::NotAllSent { .. } => {
                ErrorKind::Conflict
            }
            Failure::FlushFailed(_) => ErrorKind::NotFound,
            Failure::ReopenedBut { .. } => ErrorKind::Invalid,
            Failure::DumpNoAnswer | Failure::ConfNotSaved(_) | Failure::NotSaved(_) => {
                ErrorKind::Internal
            }
        }
    }

    /// The error the client gets.
    pub(super) fn wire(&self) -> WireError {
        WireError {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

impl From<Failure> for WireError {
    fn from(failure: Failure) -> WireError {
        failure.wire()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_words_and_kind() {
        let cases = [
            (
                Failure::NotAllSent {
                    what: "message".into(),
                    sent: 1,
                    errors: vec!["a".into(), "b".into()],
                },
                ErrorKind::Conflict,
                "message to 1; a; b",
            ),
            (
                Failure::ScaleIncomplete(vec!["one".into(), "two".into()]),
                ErrorKind::Conflict,
                "one\ntwo",
            ),
            (
                Failure::ReopenedBut {
                    count: 3,
                    problem: "kelpie.toml: bad".into(),
                },
                ErrorKind::Invalid,
                "reopened 3 log file(s), but kelpie.toml: bad",
            ),
            (
                Failure::NotSaved("disk full".into()),
                ErrorKind::Internal,
                "the change was made but could not be saved: disk full",
            ),
            (
                Failure::ConfNotSaved("disk full".into()),
                ErrorKind::Internal,
                "disk full: the change is in force but will be lost when the daemon stops",
            ),
            (
                Failure::DumpNoAnswer,
                ErrorKind::Internal,
                "the dump was not written",
            ),
        ];
        for (failure, kind, words) in cases {
            let wire = WireError::from(failure);
            assert_eq!((wire.kind, wire.message.as_str()), (kind, words));
        }
    }
}
