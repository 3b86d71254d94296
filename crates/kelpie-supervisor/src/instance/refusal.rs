//! Why an instance does not do what the supervisor asked of its process: send it a signal, a
//! message or a line on its stdin, reload it, or hand it over to the next program (`kelpie update`).

use std::io;

/// Why a signal or a message did not reach the instance's process.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotDelivered {
    /// It has no process.
    #[error("`{name}` (id {pm_id}) is not running")]
    NotRunning {
        /// The app.
        name: String,
        /// The instance.
        pm_id: u32,
    },
    /// It has no IPC channel to send a message on.
    #[error("`{name}` (id {pm_id}) has no IPC channel (only Node.js apps have one)")]
    NoIpc {
        /// The app.
        name: String,
        /// The instance.
        pm_id: u32,
    },
    /// The system refused the signal.
    #[error(transparent)]
    Signal(io::Error),
    /// A cluster-mode process has no stdin to write to (PM2 refuses the same).
    #[error("Cannot send line to processes in cluster mode: `{name}` (id {pm_id}) runs in cluster mode, whose stdin is /dev/null as PM2's workers'; start it in fork mode to write to its stdin")]
    ClusterStdin {
        /// The app.
        name: String,
        /// The instance.
        pm_id: u32,
    },
    /// Its process does not hold its stdin open any more (it closed it).
    #[error("`{name}` (id {pm_id}) closed its stdin")]
    StdinClosed {
        /// The app.
        name: String,
        /// The instance.
        pm_id: u32,
    },
    /// It has not read what was sent before, and the text would not fit in its pipe.
    #[error("`{name}` (id {pm_id}) has not read the {unread} bytes sent to its stdin before, and its pipe holds {capacity}: nothing was written (does the app read its stdin?)")]
    StdinFull {
        /// The app.
        name: String,
        /// The instance.
        pm_id: u32,
        /// Bytes it has not read.
        unread: u64,
        /// What its pipe holds.
        capacity: u64,
    },
    /// Writing to its FIFO failed.
    #[error("cannot write to the stdin of `{name}` (id {pm_id}): {cause}")]
    Stdin {
        /// The app.
        name: String,
        /// The instance.
        pm_id: u32,
        /// Why.
        cause: io::Error,
    },
}

/// Why an instance cannot be handed over now; an update waits for it to settle, then gives up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandOverRefused {
    /// A reload is under way.
    #[error("it is being reloaded")]
    Reloading,
    /// A process a reload replaced has not stopped yet.
    #[error("a process it replaced is still stopping")]
    Retiring,
    /// The app is being deleted.
    #[error("it is being deleted")]
    Deleting,
    /// Its process is between two states (`launching`, `stopping`).
    #[error("it is {0}")]
    Busy(&'static str),
    /// Its process, group or link is not known, so it cannot be passed on.
    #[error("its process is not known")]
    Unknown,
    /// Its link could not be turned into descriptors to pass on; the process stays supervised.
    #[error("cannot pass on its notify socket: {0}")]
    Link(io::Error),
}

/// Why a reload failed or was refused; the old process keeps running. Worded by
/// `kelpie_core::reload`, which decides reloads (a candidate that did not start, was not ready
/// in time, or exited; a reload already under way).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ReloadFailed(pub(crate) String);
