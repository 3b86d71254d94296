//! Why the control socket refuses a client, and why a config cannot be read (the one a client
//! sent for `start`, or `kelpie.toml`): each knows the kind of wire error the client gets.

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
    NoCredentials(std::io::Error),
}

impl Refused {
    /// The kind of the wire error it is answered with.
    pub(super) fn kind(&self) -> ErrorKind {
        ErrorKind::PermissionDenied
    }
}

/// Why a config cannot be used: the apps of a `start` from a file (or stdin), or the daemon's
/// own settings (`kelpie.toml`), read on the blocking pool.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigLoadError {
    /// The config itself is wrong: the user's to fix.
    #[error(transparent)]
    Config(#[from] kelpie_config::ConfigError),
    /// The blocking work reading it ended without a result (a panic, or the daemon's end).
    #[error(transparent)]
    Interrupted(#[from] crate::tasks::Interrupted),
}

impl ConfigLoadError {
    /// The kind of the wire error it is answered with: "invalid" whatever went wrong, as every
    /// failure to load was before the kinds were told apart (the Node API's callers see it).
    pub(super) fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}
