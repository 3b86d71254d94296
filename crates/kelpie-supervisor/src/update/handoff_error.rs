//! Why an update in place cannot go on: the hand-off the new program reads, or the program
//! `kelpie update` asked for.

use std::io;

/// Why the hand-off file cannot be used; the new program then starts as a new daemon.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// It cannot be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The hand-off file.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// It is not a hand-off.
    #[error("cannot understand {path}: {cause}")]
    Parse {
        /// The hand-off file.
        path: String,
        /// What is wrong with it.
        cause: serde_json::Error,
    },
    /// It is of a format this program does not read.
    #[error("{path} is of format {version}, this kelpie reads formats {reads:?}")]
    Format {
        /// The hand-off file.
        path: String,
        /// Its format.
        version: u32,
        /// The formats this program reads.
        reads: &'static [u32],
    },
    /// The descriptors it names cannot be taken.
    #[error("the descriptors named by {path}: {cause}")]
    Descriptors {
        /// The hand-off file.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// It names a descriptor twice.
    #[error("descriptor {0} is named twice")]
    NamedTwice(std::os::fd::RawFd),
}

/// Why the program `kelpie update` asked for is not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProgramError {
    /// The work ended without its result (see [`crate::tasks::Interrupted`]).
    #[error(transparent)]
    Interrupted(#[from] crate::tasks::Interrupted),
    /// No program was named, and the daemon's own cannot be found.
    #[error("cannot tell which program this daemon runs: {0}")]
    OwnProgram(io::Error),
    /// It cannot be run.
    #[error("cannot run {path}: {cause}")]
    Run {
        /// The program.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// It runs, but its `--version` is not a kelpie's.
    #[error("{path} is not a kelpie program (`--version` printed {printed:?})")]
    NotKelpie {
        /// The program.
        path: String,
        /// What it printed, trimmed.
        printed: String,
    },
    /// It is a kelpie that cannot read this daemon's hand-off.
    #[error("{path} ({version}) cannot take over a running daemon (it reads hand-off formats {reads}, this daemon writes {writes}); stop the daemon with `kelpie kill` and start it again to use it")]
    CannotTakeOver {
        /// The program.
        path: String,
        /// Its version, as it printed it.
        version: String,
        /// The formats it reads, as shown (`none`, `[1]`).
        reads: String,
        /// The format this daemon writes.
        writes: u32,
    },
}
