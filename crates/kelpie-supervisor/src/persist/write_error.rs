//! Why a durable write failed, or why a state file could not be read back.

use std::io;
use std::sync::Arc;

/// Why a write of the persister failed. Cheap to clone: one state write answers every
/// command that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    /// The file could not be written (the home removed, read-only, full).
    #[error("cannot write {path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        cause: Arc<io::Error>,
    },
    /// What was to be written could not be encoded.
    #[error(transparent)]
    Encode(Arc<serde_json::Error>),
}

impl WriteError {
    /// Writing `path` failed with `source`.
    pub(super) fn io(path: &std::path::Path, source: io::Error) -> Self {
        WriteError::Io {
            path: path.display().to_string(),
            cause: Arc::new(source),
        }
    }
}

/// Why a state file cannot be used (it is then moved aside, and its backup tried).
#[derive(Debug, thiserror::Error)]
pub(super) enum Unreadable {
    /// It exists but cannot be read (a directory, no permission).
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// It was read but is not a state (empty, truncated, garbage).
    #[error("{path} is not valid ({cause})")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        cause: serde_json::Error,
    },
}
