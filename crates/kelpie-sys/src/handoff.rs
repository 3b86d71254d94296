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

/// Whether `fd` is open and will be inherited across exec (`FD_CLOEXEC` clear).
fn inheritable(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFD) on an integer only reads the descriptor's flags; EBADF if closed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags != -1 && flags & libc::FD_CLOEXEC == 0
}

/// Descriptors were taken (or closed) already in this process.
static INHERITED_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Take ownership of descriptors `fds`, inherited across the exec that started this program and
/// named by the program that exec'd it; they are made close-on-exec again. All or none: fails if
/// a number is repeated, not open, or not inheritable (every descriptor this program opens
/// itself is close-on-exec, so one that is not was inherited), and on a second call.
///
/// Call it first thing at start, before anything clears `FD_CLOEXEC` on a descriptor of its
/// own. On failure, [`close_inherited_fds`] closes them all.
pub fn take_inherited_fds(fds: &[RawFd]) -> io::Result<Vec<OwnedFd>> {
    let mut seen = std::collections::BTreeSet::new();
    for &fd in fds {
        if fd < 3 || !seen.insert(fd) || !inheritable(fd) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("descriptor {fd} is not an inherited one (closed, repeated or stdio)"),
            ));
        }
    }
    if INHERITED_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::other("inherited descriptors were taken already"));
    }
    let mut owned = Vec::with_capacity(fds.len());
    for &fd in fds {
        set_cloexec(fd, true)?;
        // SAFETY: the descriptor is open and was inherited (not close-on-exec, which nothing
        // this program opens ever is), each number appears once, and this runs once per
        // process: nothing else owns it.
        owned.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(owned)
}

/// Close every inherited descriptor above stdio (those not close-on-exec): what the program
/// that exec'd us passed on, when the hand-off naming them cannot be used. Without this, a
/// control socket passed on would keep listening with nobody accepting. Same rules as
/// [`take_inherited_fds`], which it excludes.
pub fn close_inherited_fds() -> io::Result<usize> {
    if INHERITED_TAKEN.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::other("inherited descriptors were taken already"));
    }
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if fd >= 3 && inheritable(fd) {
            numbers.push(fd);
        }
    }
    for &fd in &numbers {
        // SAFETY: an inherited descriptor nothing in this program owns (see above); closing
        // it only gives the number back.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    Ok(numbers.len())
}

/// Replace this program by `program` with `args` (argv[1..]) and `env`, keeping the pid, the
/// inheritable descriptors, the calling thread's signal mask and ignored signals (std's
/// `Command::exec` resets the mask and SIGPIPE, and leaves SIGPIPE reset if the exec fails).
/// Returns only on failure.
pub fn exec_in_place(
    program: &std::path::Path,
    args: &[&std::ffi::OsStr],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstring = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let built = (|| -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = cstring(program.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for arg in args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let mut envp = Vec::new();
        for (key, value) in env {
            let mut entry = key.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(value.as_bytes());
            envp.push(cstring(&entry)?);
        }
        Ok((path, argv, envp))
    })();
    let (path, argv, envp) = match built {
        Ok(built) => built,
        Err(e) => return e,
    };
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: every pointer is to a NUL-terminated string owned by `path`, `argv` or `envp`,
    // which outlive the call, and both arrays end with a null pointer as execve(2) requires.
    unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
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

/// `waitpid` of a process that is not our child fails with this.
pub const ECHILD: i32 = libc::ECHILD;

/// A pidfd for `pid` registered with the current tokio runtime: readable once it has exited.
pub fn async_pidfd(pid: u32) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    async_fd(pidfd_open(pid)?)
}

/// A pidfd (or any pollable descriptor) registered with the current tokio runtime.
pub fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
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

/// Point this process's stdout and stderr at `file` (the daemon's log, opened anew after its
/// home was removed and made again). The previous targets are closed.
pub fn redirect_output(file: BorrowedFd<'_>) -> io::Result<()> {
    for target in [1, 2] {
        // SAFETY: dup2 between a descriptor the caller borrows (open for the call) and one of
        // the standard descriptors of this process, which is replaced atomically; no Rust
        // object owns fds 1 and 2 except through std's stdout/stderr, which write by number.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_kept_across_exec_is_inheritable_and_can_be_made_close_on_exec_again() {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let fd = OwnedFd::from(reader);
        assert!(!inheritable(fd.as_raw_fd()), "std opens close-on-exec");
        keep_across_exec(fd.as_fd()).expect("clear");
        assert!(inheritable(fd.as_raw_fd()));
        close_on_exec(fd.as_fd()).expect("set");
        assert!(!inheritable(fd.as_raw_fd()));
    }

    #[test]
    fn descriptors_that_were_not_inherited_are_refused() {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let fd = OwnedFd::from(reader);
        // Close-on-exec: opened by this program, not inherited.
        assert!(take_inherited_fds(&[fd.as_raw_fd()]).is_err());
        assert!(take_inherited_fds(&[987_654]).is_err());
        assert!(take_inherited_fds(&[1]).is_err());
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
