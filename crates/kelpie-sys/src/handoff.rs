//! What the daemon carries across its own re-exec (`kelpie update`): descriptors that must stay
//! open in the new program, and children it keeps waiting for after the exec (the pid does not
//! change, so they are still its children, and their exit statuses are still its to collect).

use rustix::io::FdFlags;
use rustix::process::Pid;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = rustix::io::fcntl_getfd(fd)?;
    let flags = if on {
        flags | FdFlags::CLOEXEC
    } else {
        flags - FdFlags::CLOEXEC
    };
    Ok(rustix::io::fcntl_setfd(fd, flags)?)
}

/// Let `fd` stay open across the next exec (clear `FD_CLOEXEC`).
pub fn keep_across_exec(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_cloexec(fd, false)
}

/// Close `fd` at exec again (an exec that was prepared did not happen).
pub fn close_on_exec(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_cloexec(fd, true)
}

/// Whether `fd` is open and will be inherited across exec (`FD_CLOEXEC` clear). A bare number
/// that may not be open: no BorrowedFd can be made of it, so its flags are read from
/// /proc/self/fdinfo, where the kernel adds `O_CLOEXEC` to them for a close-on-exec descriptor.
/// No such file: not open. /proc unreadable: not inheritable, so nothing is taken.
fn inheritable(fd: RawFd) -> bool {
    if crate::platform::portable() {
        return inheritable_by_flags(fd);
    }
    let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
        return false;
    };
    // `flags:` is octal (open(2)'s flags).
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .and_then(|octal| u32::from_str_radix(octal.trim(), 8).ok());
    flags.is_some_and(|flags| flags & libc::O_CLOEXEC as u32 == 0)
}

/// [`inheritable`] without /proc: the descriptor's flags asked by number (`F_GETFD` fails with
/// `EBADF` for a number that is not open; it touches nothing).
fn inheritable_by_flags(fd: RawFd) -> bool {
    if fd < 0 {
        return false;
    }
    // SAFETY: fcntl(F_GETFD) on a bare number only reads its flags, or fails for a closed one.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0 && flags & libc::FD_CLOEXEC == 0
}

/// Held while a descriptor is checked and taken, so two threads cannot take the same one.
static ADOPTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take ownership of the inherited descriptor `fd` and make it close-on-exec again: the one
/// place that turns a number inherited across exec into an [`OwnedFd`]. `None` (nothing done)
/// unless it is above stdio, open and inheritable.
///
/// Why that makes it ours: every descriptor this program opens itself is close-on-exec, so
/// one that is not was inherited and nothing in this program owns it; taking it makes it
/// close-on-exec, so the same number is never taken twice. Hence the rule for callers: take
/// inherited descriptors first thing at start, before anything clears `FD_CLOEXEC` on a
/// descriptor of its own ([`keep_across_exec`]).
pub(crate) fn adopt_inherited(fd: RawFd) -> Option<OwnedFd> {
    // A poisoned lock guards nothing that can be left half-done: carry on.
    let _adopting = ADOPTING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if fd < 3 || !inheritable(fd) {
        return None;
    }
    // SAFETY: the descriptor is open and inheritable, so it was inherited and nothing in this
    // program owns it (see above); the lock keeps another thread from taking it meanwhile, and
    // from now on it is close-on-exec, so it is not taken again.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // On failure `fd` is closed: it is ours now, and unusable as asked.
    set_cloexec(fd.as_fd(), true).ok()?;
    Some(fd)
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
        // Checked above; only a descriptor closed or taken by another thread meanwhile fails.
        let fd = adopt_inherited(fd).ok_or_else(|| {
            io::Error::other(format!("inherited descriptor {fd} could not be taken"))
        })?;
        owned.push(fd);
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
    // /dev/fd lists this process's descriptors on macOS as /proc/self/fd does on Linux.
    let listing = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    for entry in std::fs::read_dir(listing)? {
        let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        numbers.push(fd);
    }
    // The directory is closed now; those that are not inherited are left alone.
    let mut closed = 0;
    for fd in numbers {
        if let Some(fd) = adopt_inherited(fd) {
            // Closing it only gives the number back.
            drop(fd);
            closed += 1;
        }
    }
    Ok(closed)
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
    // The new program starts on the CPUs this daemon was given, and keeps its own threads on
    // one of them as this one did (see `affinity.rs`).
    let given_back = crate::affinity::give_back_cpus_here();
    // nix's execve is execve(2) itself (it builds the null-terminated pointer arrays), unlike
    // std's exec: nothing is reset. It returns only on failure.
    let Err(errno) = nix::unistd::execve(&path, &argv, &envp);
    if let Ok(Some(pinned)) = given_back {
        crate::affinity::pin_again(&pinned);
    }
    io::Error::from(errno)
}

/// A descriptor readable once the process `pid` has exited (close-on-exec): its pidfd on
/// Linux; the portable backend's watch (`portable/exit_watch.rs`) elsewhere.
pub fn watch_exit(pid: u32) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        return Ok(rustix::process::pidfd_open(
            to_pid(pid)?,
            rustix::process::PidfdFlags::empty(),
        )?);
    }
    crate::portable::exit_watch::watch_exit(pid)
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

/// `waitpid` of a process that is not our child fails with this.
pub const ECHILD: i32 = libc::ECHILD;

/// Collect the exit status of the child `pid` if it has ended (`waitpid` with `WNOHANG`):
/// `Ok(None)` while it runs. Only for a child nobody else waits for.
pub fn try_wait_child(pid: u32) -> io::Result<Option<ExitStatus>> {
    // A positive pid waits for exactly that child, and WNOHANG keeps it from blocking.
    let waited =
        rustix::process::waitpid(Some(to_pid(pid)?), rustix::process::WaitOptions::NOHANG)?;
    Ok(waited.map(|(_, status)| ExitStatus::from_raw(status.as_raw())))
}

/// Whether the child `pid` has ended, without collecting it (`waitid` with `WNOWAIT`): until it
/// is collected its number, and its process group's, cannot be given to another process, so
/// its group can still be signalled safely.
pub fn child_has_ended(pid: u32) -> io::Result<bool> {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    let waited = waitid(
        WaitId::Pid(to_pid(pid)?),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
    )?;
    Ok(waited.is_some())
}

/// Point this process's stdout and stderr at `file` (the daemon's log, opened anew after its
/// home was removed and made again). The previous targets are closed.
pub fn redirect_output(file: BorrowedFd<'_>) -> io::Result<()> {
    // Each standard descriptor is replaced atomically; std's stdout/stderr write by number.
    rustix::stdio::dup2_stdout(file)?;
    rustix::stdio::dup2_stderr(file)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
    fn a_number_that_is_not_open_is_not_inheritable() {
        assert!(!inheritable(987_654));
        assert!(!inheritable(-1));
    }

    #[test]
    fn an_inheritable_descriptor_is_adopted_once_and_made_close_on_exec() {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let fd = OwnedFd::from(reader);
        // Not inheritable: opened by this program, so not adopted.
        assert!(adopt_inherited(fd.as_raw_fd()).is_none());
        keep_across_exec(fd.as_fd()).expect("clear");
        // Give the number up, as an exec would have: nothing here owns it any more.
        let number = std::os::fd::IntoRawFd::into_raw_fd(fd);
        let adopted = adopt_inherited(number).expect("adopted");
        assert_eq!(adopted.as_raw_fd(), number);
        assert!(!inheritable(number), "close-on-exec again");
        assert!(adopt_inherited(number).is_none(), "taken once");
        assert!(adopt_inherited(1).is_none(), "stdio is never taken");
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
    fn an_exec_that_cannot_happen_returns_its_error() {
        let missing = std::path::Path::new("/nonexistent/kelpie-program");
        let error = exec_in_place(missing, &[], &[]);
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let nul = std::ffi::OsStr::new("a\0b");
        let error = exec_in_place(std::path::Path::new("/bin/true"), &[nul], &[]);
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_child_is_waited_for_through_its_pidfd() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn");
        let pid = child.id();
        let pidfd = watch_exit(pid).expect("pidfd");
        assert!(crate::poll::readable_within(
            pidfd.as_fd(),
            std::time::Duration::from_secs(10)
        ));
        let status = try_wait_child(pid).expect("wait").expect("ended");
        assert_eq!(status.code(), Some(7));
        // Reaped once: a second wait has nothing left.
        assert!(try_wait_child(pid).is_err());
        drop(child);
    }
}
