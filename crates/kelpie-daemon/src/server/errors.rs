//! Why the control socket refuses a client, and why a config it sent for `start` cannot be
//! read: each knows the kind of wire error the client gets.

use kelpie_proto::ErrorKind;

/// Why a client is refused before any request (answered to each of its requests).
#[derive(Debug, thiserror::Error)]
pub(super) enum Refused {
    /// Another user than the daemon's (and not root).
    #[error("permission denied: this kelpie daemon belongs to uid {own} and refuses uid {peer}")]
    OtherUser {
        /// The daemon's user.
        own: u32,
        /// The client's.
        peer: u32,
    },
    /// Its credentials cannot be read, so it cannot be told apart from another user.
    #[error("permission denied: cannot check the peer's credentials: {0}")]
    NoCredentials(#[source] std::io::Error),
}

impl Refused {
    /// The kind of the wire error it is answered with.
    pub(super) fn kind(&self) -> ErrorKind {
        ErrorKind::PermissionDenied
    }
}

/// Why the config of a `start` from a file (or stdin) cannot be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigLoadError {
    /// The config itself is wrong: the user's to fix.
    #[error(transparent)]
    Config(#[from] kelpie_config::ConfigError),
    /// The blocking task reading it failed (panicked or was cancelled at shutdown).
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

impl ConfigLoadError {
    /// The kind of the wire error it is answered with.
    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            ConfigLoadError::Config(_) => ErrorKind::Invalid,
            // As every failure to load was before the kinds were told apart: the Node API's
            // callers see "invalid" whatever went wrong.
            ConfigLoadError::Task(_) => ErrorKind::Invalid,
        }
    }
}
