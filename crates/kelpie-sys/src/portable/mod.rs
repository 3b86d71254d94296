//! The portable backend: what the seam does with POSIX alone (what macOS has), chosen on Linux
//! with `KELPIE_PLATFORM=portable` (see `platform.rs`) so that it runs and is tested here.
//!
//! What it gives up against Linux's own, and what the user gets instead, is in
//! docs/platforms.md; each file says its own part.

pub(crate) mod exit_watch;
pub(crate) mod message_socket;
pub(crate) mod notify;
pub(crate) mod pipe_copy;
pub(crate) mod ready_poll;

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::RwLock;

/// Held (shared) while a descriptor is made and then marked close-on-exec in two steps, where
/// the system has no call that does both (macOS: `pipe`, `socket`, `accept`); held exclusively
/// by a fork. A child forked between the two steps would otherwise keep a copy of the
/// descriptor for the life of the app it becomes (a pipe that never sees its end, a socket
/// that never closes). Go's runtime does the same (`syscall.ForkLock`).
pub(crate) static FORK_LOCK: RwLock<()> = RwLock::new(());

/// Run `make` (which creates descriptors) so that no fork of ours happens in the middle.
pub(crate) fn making_descriptors<T>(make: impl FnOnce() -> T) -> T {
    let _held = FORK_LOCK.read().unwrap_or_else(|p| p.into_inner());
    make()
}

/// Mark `fd` close-on-exec, and non-blocking when asked.
pub(crate) fn set_flags(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    use rustix::io::{fcntl_getfd, fcntl_setfd, FdFlags};
    fcntl_setfd(fd, fcntl_getfd(fd)? | FdFlags::CLOEXEC)?;
    if nonblocking {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};
        fcntl_setfl(fd, fcntl_getfl(fd)? | OFlags::NONBLOCK)?;
    }
    Ok(())
}

/// A pipe, both ends close-on-exec (and non-blocking when asked): `(read end, write end)`.
pub(crate) fn pipe_pair(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    {
        use rustix::pipe::PipeFlags;
        let flags = if nonblocking {
            PipeFlags::CLOEXEC | PipeFlags::NONBLOCK
        } else {
            PipeFlags::CLOEXEC
        };
        Ok(rustix::pipe::pipe_with(flags)?)
    }
    #[cfg(not(target_os = "linux"))]
    making_descriptors(|| {
        let (read, write) = rustix::pipe::pipe()?;
        use std::os::fd::AsFd;
        set_flags(read.as_fd(), nonblocking)?;
        set_flags(write.as_fd(), nonblocking)?;
        Ok((read, write))
    })
}

/// A socket, close-on-exec (and non-blocking when asked): in one call where the system has
/// one (Linux's `SOCK_CLOEXEC`), else under the fork lock.
pub(crate) fn new_socket(
    family: rustix::net::AddressFamily,
    kind: rustix::net::SocketType,
    nonblocking: bool,
) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    {
        use rustix::net::SocketFlags;
        let flags = if nonblocking {
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
        } else {
            SocketFlags::CLOEXEC
        };
        Ok(rustix::net::socket_with(family, kind, flags, None)?)
    }
    #[cfg(not(target_os = "linux"))]
    making_descriptors(|| {
        use std::os::fd::AsFd;
        let socket = rustix::net::socket(family, kind, None)?;
        set_flags(socket.as_fd(), nonblocking)?;
        Ok(socket)
    })
}

/// The write end woken on SIGCHLD (see [`on_sigchld`]): set once, since a second handler
/// would only write a second byte for the same wake-up.
static SIGCHLD_TARGETS: std::sync::OnceLock<RawFd> = std::sync::OnceLock::new();

/// Write a byte to `wake` (a non-blocking pipe's write end, kept open for the life of the
/// process) on every SIGCHLD, beside whatever else handles it (tokio's child handling: the
/// registry calls every action registered for a signal).
pub(crate) fn on_sigchld(wake: BorrowedFd<'_>) -> io::Result<()> {
    let fd = wake.as_raw_fd();
    if SIGCHLD_TARGETS.set(fd).is_err() {
        return Err(io::Error::other("SIGCHLD already wakes another watcher"));
    }
    // SAFETY: the action makes one write(2) of one byte to a descriptor that stays open for
    // the life of the process (the watcher is never dropped): async-signal-safe, no lock, no
    // allocation, and errno is saved and restored around it by the registry.
    unsafe {
        signal_hook_registry::register(libc::SIGCHLD, move || {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        })?;
    }
    Ok(())
}
