//! A config read off the async threads, and why it cannot be used: the apps of a `start` from a
//! file or stdin (`server/answers.rs`), or the daemon's own settings (`kelpie.toml`, at start-up
//! and again for `reloadLogs`). Each error knows the kind of wire error the client gets.

use kelpie_proto::ErrorKind;
use std::path::PathBuf;

/// Why a config cannot be used: the apps of a `start` from a file (or stdin), or the daemon's
/// own settings (`kelpie.toml`), read on the blocking pool.
#[derive(Debug, thiserror::Error)]
pub enum ConfigLoadError {
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
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

/// Read `kelpie.toml` off the async thread.
pub async fn read_daemon_settings(
    path: PathBuf,
) -> Result<kelpie_config::DaemonSettings, ConfigLoadError> {
    Ok(crate::tasks::blocking(move || kelpie_config::DaemonSettings::load(&path)).await??)
}
