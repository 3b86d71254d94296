//! Why an instance's process could not be started. The state machine and the client only
//! see its text (`kelpie_core::Input::SpawnFailed`), which stays what the daemon always
//! said; the kinds let the daemon's own code tell a missing program from a failed fork.

use std::io;

/// Why starting a process of an instance failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    /// The pipes for its stdout and stderr could not be created (out of descriptors).
    #[error("cannot create the output pipes: {0}")]
    OutputPipes(io::Error),
    /// The socket it notifies the daemon on could not be created.
    #[error("cannot create its notify socket: {0}")]
    NotifySocket(io::Error),
    /// Its program is not in the `PATH` it runs with.
    #[error("{program}: `{program}` not found in PATH")]
    ProgramNotFound {
        /// The program, as the app names it.
        program: String,
    },
    /// The user or group it runs as cannot be used (unknown, or the daemon is not root).
    #[error("{program}: {cause}")]
    Identity {
        /// The program, as the app names it.
        program: String,
        /// What was wrong with the identity.
        cause: io::Error,
    },
    /// Preparing or running the fork/exec failed: a working directory that does not exist,
    /// a program that is not executable, a cgroup that refused it...
    #[error("{program}: {cause}")]
    Exec {
        /// The program, as the app names it.
        program: String,
        /// The error the child (or the spawn before it) reported.
        cause: io::Error,
    },
    /// It started, but the daemon cannot wait for it (the runtime is shutting down).
    #[error("cannot wait for process {pid}: {cause}")]
    Wait {
        /// Its pid.
        pid: u32,
        /// Why its pidfd could not be registered.
        cause: io::Error,
    },
}
