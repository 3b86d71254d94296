//! The CLI's exit statuses: scripts can tell "no such app" from "the daemon is down" without
//! parsing messages. Documented in docs/cli.md ("Exit statuses"); 0 is success and 1 any failure
//! not listed, as before, so `kelpie … || …` keeps working as with PM2.

use kelpie_proto::{ErrorKind, WireError};

/// Why a command failed, as its exit status. (2, a wrong command line, comes from the argument
/// parser itself.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Any other failure (the daemon could not carry the command out, an app did not start).
    Failure = 1,
    /// A target names no app.
    NotFound = 3,
    /// A config file or a request is invalid (nothing was changed).
    Invalid = 4,
    /// The request conflicts with the current state (a port in use, a name taken).
    Conflict = 5,
    /// No daemon answers and none could be started, or CLI and daemon do not match.
    Unreachable = 6,
    /// The daemon's home or socket belongs to someone else.
    Permission = 7,
}

impl Status {
    /// The status of a failure the daemon reported.
    pub(crate) fn of_wire(kind: ErrorKind) -> Status {
        match kind {
            ErrorKind::NotFound => Status::NotFound,
            ErrorKind::Conflict => Status::Conflict,
            ErrorKind::Invalid => Status::Invalid,
            ErrorKind::Internal => Status::Failure,
            ErrorKind::VersionMismatch => Status::Unreachable,
            ErrorKind::PermissionDenied => Status::Permission,
            // A kind newer than this CLI.
            _ => Status::Failure,
        }
    }
}

/// An error carrying its exit status; the message is shown as it is.
#[derive(Debug)]
pub(crate) struct Failed {
    /// The exit status.
    pub status: Status,
    message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// An error that exits with `status`.
pub(crate) fn failed(status: Status, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failed {
        status,
        message: message.into(),
    })
}

/// The daemon's error answer as an error of the CLI.
pub(crate) fn from_wire(error: &WireError) -> anyhow::Error {
    failed(Status::of_wire(error.kind), error.message.clone())
}

/// The exit status for `error`: the first [`Failed`] in its chain; a config that could not be
/// loaded is [`Status::Invalid`]; anything else is [`Status::Failure`].
pub(crate) fn status_of(error: &anyhow::Error) -> Status {
    error
        .chain()
        .find_map(|cause| {
            if let Some(failed) = cause.downcast_ref::<Failed>() {
                return Some(failed.status);
            }
            cause
                .downcast_ref::<kelpie_config::ConfigError>()
                .map(|_| Status::Invalid)
        })
        .unwrap_or(Status::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_found_under_context() {
        let error = from_wire(&WireError {
            kind: ErrorKind::NotFound,
            message: "no app named `x`".into(),
        })
        .context("restart");
        assert_eq!(status_of(&error), Status::NotFound);
        assert_eq!(status_of(&anyhow::anyhow!("plain")), Status::Failure);
    }
}
