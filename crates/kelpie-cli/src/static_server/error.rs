//! Why `kelpie serve-static` cannot serve, and the exit status that says which kind of failure
//! it is (the CLI's statuses, crates/kelpie-cli/src/exit.rs): settings the user gave wrong are
//! "invalid", a port already taken is a "conflict", anything else a plain failure.

use super::settings::SettingsError;
use crate::exit::Status;
use std::ffi::OsString;
use std::io;

/// Why the server did not start (or stopped other than by a signal).
#[derive(Debug, thiserror::Error)]
pub(super) enum ServeError {
    /// A word of the command line is not UTF-8.
    #[error("argument {0:?} is not UTF-8")]
    NotUtf8(OsString),
    /// An option: the server takes none.
    #[error(
        "unknown option `{0}`: the settings are [path] [port] [host], or PM2_SERVE_* variables"
    )]
    UnknownOption(String),
    /// The process has no working directory (it was removed).
    #[error("no working directory: {0}")]
    NoWorkingDirectory(io::Error),
    /// The settings are wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The directory to serve cannot be resolved (it does not exist, most often).
    #[error("cannot serve {path}: {cause}")]
    Root {
        /// The directory, as given.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// What to serve is not a directory.
    #[error("{0} is not a directory")]
    NotDirectory(String),
    /// The async runtime could not be made.
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    /// A stop signal's handler could not be installed.
    #[error("cannot handle {signal}: {cause}")]
    Signal {
        /// `SIGINT` or `SIGTERM`.
        signal: &'static str,
        /// The error.
        cause: io::Error,
    },
    /// The address cannot be listened on (taken, not local, not allowed).
    #[error("cannot listen on {host}:{port}: {cause}")]
    Listen {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The error.
        cause: io::Error,
    },
    /// The address listened on cannot be read back.
    #[error("cannot read the listening address: {0}")]
    Address(io::Error),
    /// Started as root, and root could not be given up (no `nobody` user, or the call failed).
    #[error("refusing to serve files as root, and cannot run as `{user}` instead: {why}; set the app's `user` (kelpie serve --user <name>)")]
    StillRoot {
        /// Who it tried to become.
        user: String,
        /// Why it could not.
        why: String,
    },
    /// Once root was given up, the directory cannot be read.
    #[error("serving as `{user}` (not as root): {root} cannot be read by it ({cause}); make it readable by others, or set the app's `user`")]
    UnreadableAsUser {
        /// Who it runs as.
        user: String,
        /// The directory served.
        root: String,
        /// The error.
        cause: io::Error,
    },
}

impl ServeError {
    /// The exit status for it.
    pub(super) fn status(&self) -> Status {
        match self {
            ServeError::NotUtf8(_)
            | ServeError::UnknownOption(_)
            | ServeError::Settings(_)
            | ServeError::Root { .. }
            | ServeError::NotDirectory(_) => Status::Invalid,
            ServeError::Listen { cause, .. } if cause.kind() == io::ErrorKind::AddrInUse => {
                Status::Conflict
            }
            _ => Status::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_settings_are_invalid_and_a_taken_port_a_conflict() {
        let port = ServeError::Settings(SettingsError::Port("http".into()));
        assert_eq!(port.status(), Status::Invalid);
        assert_eq!(
            port.to_string(),
            "the port `http` is not a number from 0 to 65535"
        );
        let listen = |kind: io::ErrorKind| ServeError::Listen {
            host: "0.0.0.0".into(),
            port: 8080,
            cause: io::Error::from(kind),
        };
        assert_eq!(listen(io::ErrorKind::AddrInUse).status(), Status::Conflict);
        assert_eq!(
            listen(io::ErrorKind::PermissionDenied).status(),
            Status::Failure
        );
    }
}
