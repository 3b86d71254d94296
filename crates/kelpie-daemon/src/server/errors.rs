//! Why the control socket refuses a client: it knows the kind of wire error the client gets.

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
