//! Which implementation of the platform seam runs: Linux's own (pidfd, clone3, splice and tee,
//! abstract sockets with `SO_PASSCRED`, sequenced packets, epoll, the subreaper, cgroups), or
//! the portable one, POSIX only, which is what macOS runs (see `portable/` and
//! docs/platforms.md).
//!
//! On Linux the portable backend is chosen with `KELPIE_PLATFORM=portable`, so that the code a
//! Mac runs is run and tested here too; elsewhere it is the only one.

use std::sync::OnceLock;

/// The environment variable that chooses the backend on Linux.
pub const PLATFORM_VARIABLE: &str = "KELPIE_PLATFORM";

/// The two implementations of the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Linux's own interfaces.
    Linux,
    /// POSIX only: process groups, `waitpid` and SIGCHLD, read/write copies, polling.
    Portable,
}

impl Backend {
    /// Its name, as `KELPIE_PLATFORM` takes it and the daemon's log says it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Linux => "linux",
            Backend::Portable => "portable",
        }
    }
}

/// A `KELPIE_PLATFORM` that names no backend of this system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBackend {
    /// What it says.
    pub asked: String,
}

impl std::fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PLATFORM_VARIABLE}={:?} is not a backend of this system: {}",
            self.asked,
            if cfg!(target_os = "linux") {
                "use linux (the default) or portable"
            } else {
                "only portable runs here (unset it)"
            }
        )
    }
}

impl std::error::Error for UnknownBackend {}

static CHOSEN: OnceLock<Result<Backend, UnknownBackend>> = OnceLock::new();

/// What `KELPIE_PLATFORM` asks for: unset or empty is the system's own backend.
fn from_environment() -> Result<Backend, UnknownBackend> {
    let asked = std::env::var(PLATFORM_VARIABLE).unwrap_or_default();
    match asked.trim() {
        "" => Ok(native()),
        "portable" => Ok(Backend::Portable),
        "linux" if cfg!(target_os = "linux") => Ok(Backend::Linux),
        other => Err(UnknownBackend {
            asked: other.to_string(),
        }),
    }
}

/// The system's own backend.
fn native() -> Backend {
    if cfg!(target_os = "linux") {
        Backend::Linux
    } else {
        Backend::Portable
    }
}

/// The backend in use, read once from the environment. A value that names no backend of this
/// system falls back to the system's own, and [`check_choice`] reports it.
pub fn backend() -> Backend {
    match CHOSEN.get_or_init(from_environment) {
        Ok(backend) => *backend,
        Err(_) => native(),
    }
}

/// Whether the portable backend is in use (always, off Linux).
#[inline]
pub fn portable() -> bool {
    !cfg!(target_os = "linux") || backend() == Backend::Portable
}

/// The error of a `KELPIE_PLATFORM` that names no backend of this system, for the daemon to
/// refuse to start with.
pub fn check_choice() -> Result<Backend, UnknownBackend> {
    CHOSEN.get_or_init(from_environment).clone()
}

/// The operating system, as the daemon's log and `kelpie info` name it.
pub fn system_name() -> &'static str {
    std::env::consts::OS
}
