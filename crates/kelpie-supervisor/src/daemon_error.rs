//! Why the daemon could not run.

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The home or one of its files could not be set up.
    #[error("{about} {path}: {cause}")]
    Io {
        /// What we were doing.
        about: &'static str,
        /// The path involved.
        path: String,
        /// The error.
        cause: std::io::Error,
    },
    /// Another daemon answers on this home's socket.
    #[error("a kelpie daemon is already running for {0}")]
    AlreadyRunning(String),
    /// The home, or a directory above it, is another user's or may be changed by one.
    #[error("refusing the kelpie home {}: {refused}. Another user could replace what the daemon runs (the Node shim every Node app loads, kelpie.toml); use a home of your own (KELPIE_HOME, or run `sudo -H` so that root's home is used)", home.display())]
    UntrustedHome {
        /// The home.
        home: std::path::PathBuf,
        /// What is wrong, and where.
        refused: String,
    },
    /// A root daemon's directory for the shims (`/run/kelpie-shims/...`), or a directory above
    /// it, is another user's or may be changed by one.
    #[error("refusing {} for the shims: {refused}", dir.display())]
    UntrustedShimDir {
        /// The shims' directory.
        dir: std::path::PathBuf,
        /// What is wrong, and where.
        refused: String,
    },
    /// `KELPIE_PLATFORM` names no backend of this system.
    #[error("{0}")]
    Platform(#[from] kelpie_sys::platform::UnknownBackend),
}

impl DaemonError {
    /// `about` (what was being done) the file or directory `path` failed with `source`.
    pub fn io(about: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        DaemonError::Io {
            about,
            path: path.display().to_string(),
            cause: source,
        }
    }
}
