//! Why an app's files cannot be watched (nothing of its watch is then left in place).

use std::io;

/// Why a watch could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The work ended without its result (see [`crate::tasks::Interrupted`]).
    #[error(transparent)]
    Interrupted(#[from] crate::tasks::Interrupted),
    /// The app names no path to watch.
    #[error("no path to watch")]
    NoPath,
    /// An `ignore_watch` pattern is not a glob.
    #[error("invalid ignore_watch glob {written:?}: {cause}")]
    Glob {
        /// The pattern as the app wrote it.
        written: String,
        /// What is wrong with it.
        cause: globset::Error,
    },
    /// The `ignore_watch` globs cannot be put together.
    #[error("invalid ignore_watch globs: {0}")]
    Globs(globset::Error),
    /// A path to watch does not exist.
    #[error("cannot watch {path}: it does not exist")]
    Missing {
        /// The path.
        path: String,
    },
    /// A path to watch is one of the app's log files, which are never watched (each line
    /// written would restart it).
    #[error("cannot watch {path}: log files are never watched")]
    Never {
        /// The path.
        path: String,
    },
    /// The user's limit of inotify watches is reached.
    #[error("cannot watch {path}: the limit of inotify watches is reached (raise fs.inotify.max_user_watches, e.g. `sysctl fs.inotify.max_user_watches=524288`, or ignore big directories with ignore_watch)")]
    Limit {
        /// The directory that could not be watched.
        path: String,
    },
    /// A path cannot be read or watched otherwise.
    #[error("cannot watch {path}: {cause}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// The watching thread is gone.
    #[error("the file watching service has stopped")]
    Stopped,
}
