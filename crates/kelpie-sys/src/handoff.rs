//! What the daemon carries across its own re-exec (`kelpie update`): descriptors that must stay
//! open in the new program, and children it keeps waiting for after the exec (the pid does not
//! change, so they are still its children, and their exit statuses are still its to collect).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl(2) F_GETFD/F_SETFD on an integer descriptor reads and writes only the
    // descriptor's flags in the kernel; an fd that is not open makes it fail with EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags == -1 {
        return Err(io::Error::last_os_error());
    }
    let flags = if on {
        flags | libc::FD_CLOEXEC
    } else {
        flags & !libc::FD_CLOEXEC
    };
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Let `fd` stay open across the next exec (clear `FD_CLOEXEC`).
pub fn keep_across_exec(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_cloexec(fd.as_raw_fd(), false)
}

/// Close `fd` at exec again (an exec that was prepared did not happen).
pub fn close_on_exec(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_cloexec(fd.as_raw_fd(), true)
}

/// Take ownership of descriptor `fd`, inherited across exec and named by the program that
/// exec'd us; it is made close-on-exec again. Fails if `fd` is not open.
///
/// Call it once per number, before this process opens anything that could have been given
/// that number (at start, with the numbers from the hand-off).
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    set_cloexec(fd, true)?;
    // SAFETY: the descriptor is open (fcntl succeeded), was handed to this program by the one
    // that exec'd it, and nothing in this process has claimed it: the caller takes each number
    // from the hand-off exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pidfd for `pid`: readable once the process has exited.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open(2) takes a pid and flags (0) and returns a new descriptor or -1; no
    // memory of ours is involved.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this new descriptor (close-on-exec by default); it is
    // ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A pidfd for `pid` registered with the current tokio runtime: readable once it has exited.
pub fn async_pidfd(pid: u32) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    let fd = pidfd_open(pid)?;
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open and keeps the same number for as
    // long as it lives: exactly what registration asks of its descriptor.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    registered.map_err(io::Error::from)
}

/// Collect the exit status of the child `pid` if it has ended (`waitpid` with `WNOHANG`):
/// `Ok(None)` while it runs. Only for a child nobody else waits for.
pub fn try_wait_child(pid: u32) -> io::Result<Option<ExitStatus>> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid(2) writes into `status`, a live local of the right type; a positive pid
    // waits for exactly that child, and WNOHANG keeps it from blocking.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        _ => Ok(Some(ExitStatus::from_raw(status))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_kept_across_exec_can_be_taken_back_by_number() {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let fd = OwnedFd::from(reader);
        keep_across_exec(fd.as_fd()).expect("clear");
        // SAFETY (test): reading the flags of our own open descriptor.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0);
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        let taken = take_inherited_fd(raw).expect("take");
        // SAFETY (test): as above.
        let flags = unsafe { libc::fcntl(taken.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn a_closed_number_is_refused() {
        assert!(take_inherited_fd(987_654).is_err());
        assert!(take_inherited_fd(-1).is_err());
    }

    #[test]
    fn a_child_is_waited_for_through_its_pidfd() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let pidfd = pidfd_open(pid).expect("pidfd");
        assert!(
            crate::wait_readable(pidfd.as_fd(), std::time::Duration::from_secs(10)).expect("poll")
        );
        let status = try_wait_child(pid).expect("wait").expect("ended");
        assert_eq!(status.code(), Some(7));
        // Reaped once: a second wait has nothing left.
        assert!(try_wait_child(pid).is_err());
        drop(child);
    }
}
