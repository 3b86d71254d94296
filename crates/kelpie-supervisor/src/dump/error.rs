//! Why the dump could not be written or read. `save` answers the first kind with a refusal the
//! user can override (`--force`); the others are failures of the files themselves.

use std::fmt;
use std::io;

/// Why a dump's bytes are not a dump.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Invalid {
    /// PM2's `dump.pm2` (a list of its processes), where Kelpie writes an object.
    #[error("it is a list of processes as PM2 writes it, not a dump Kelpie wrote (start the apps from their ecosystem file, then save)")]
    Pm2List,
    /// Not the JSON of a dump.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why one dump file (the dump or its backup) cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unusable {
    /// It cannot be read (missing, unreadable).
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// It was read, but is not a dump.
    #[error("{path} is not a valid dump: {cause}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong with it.
        cause: Invalid,
    },
}

impl Unusable {
    /// What is wrong, without the file's name (said once already where the backup is named).
    fn reason(&self) -> &dyn fmt::Display {
        match self {
            Unusable::Read { cause: source, .. } => source,
            Unusable::Invalid { cause: source, .. } => source,
        }
    }
}

/// Why `save` or `resurrect` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DumpError {
    /// The work ended without its result (see [`crate::tasks::Interrupted`]).
    #[error(transparent)]
    Interrupted(#[from] crate::tasks::Interrupted),
    /// `save` of no app over a dump of some: refused unless forced, since it is most often a
    /// `save` after the daemon lost its apps.
    #[error("refusing to overwrite {path} ({apps} apps) with an empty list; use `kelpie save --force` to do it anyway")]
    WouldEmpty {
        /// The dump.
        path: String,
        /// How many apps it has.
        apps: usize,
    },
    /// A file could not be written (the dump or its backup).
    #[error("cannot write {path}: {cause}")]
    Write {
        /// The file.
        path: String,
        /// The error.
        cause: io::Error,
    },
    /// The previous dump is not valid, and could not be moved aside to keep it.
    #[error("the previous dump {path} is not valid ({invalid}) and cannot be moved aside ({cause}); nothing saved")]
    CannotSetAside {
        /// The previous dump.
        path: String,
        /// What is wrong with it.
        invalid: Invalid,
        /// Why the rename failed.
        cause: io::Error,
    },
    /// The apps could not be encoded.
    #[error(transparent)]
    Encode(serde_json::Error),
    /// There is neither a dump nor a backup.
    #[error("no dump at {path}: run `kelpie save` first")]
    Missing {
        /// Where the dump would be.
        path: String,
    },
    /// Neither the dump nor its backup can be used.
    #[error("{dump}; the backup {backup_path} cannot be used either: {}", .backup.reason())]
    Unusable {
        /// Why not the dump.
        dump: Unusable,
        /// The backup.
        backup_path: String,
        /// Why not the backup.
        backup: Unusable,
    },
}
