//! In the child, between the clone (or fork) and the exec: what it sets up, with only
//! async-signal-safe calls on what was prepared before.

use super::Spawn;
use crate::creds::Identity;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

impl Spawn {
    /// In the child: everything between the clone (or fork) and the exec, resetting the
    /// daemon's signal handlers first unless the clone did. Returns only on failure.
    pub(super) fn in_child(&mut self, migrate: Option<RawFd>, reset_handlers: bool) -> io::Error {
        // SAFETY (for every call below): only async-signal-safe system calls on descriptors
        // and buffers prepared before the clone; nothing allocates, nothing takes a lock.
        unsafe {
            // Signals: the daemon's handlers are not the app's (CLONE_CLEAR_SIGHAND, or here on
            // an older kernel or after a fork), it ignores SIGPIPE, and blocked them all
            // around the clone.
            if reset_handlers {
                for signal in 1..SIGNAL_LIMIT() {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(signal, std::ptr::null(), &mut action) == 0
                        && action.sa_sigaction != libc::SIG_IGN
                        && action.sa_sigaction != libc::SIG_DFL
                    {
                        libc::signal(signal, libc::SIG_DFL);
                    }
                }
            }
            crate::affinity::give_back_cpus();
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            for (fd, target) in [
                (self.stdin.as_raw_fd(), 0),
                (self.stdout.as_raw_fd(), 1),
                (self.stderr.as_raw_fd(), 2),
            ] {
                if libc::dup2(fd, target) < 0 {
                    return io::Error::last_os_error();
                }
            }
            if libc::chdir(self.cwd.as_ptr()) < 0 {
                return io::Error::last_os_error();
            }
            if libc::setpgid(0, 0) < 0 {
                return io::Error::last_os_error();
            }
            // Joining a cgroup needs the daemon's privileges: before the identity switch.
            for procs in migrate
                .iter()
                .copied()
                .chain(self.join.iter().map(AsRawFd::as_raw_fd))
            {
                if libc::write(procs, b"0".as_ptr().cast(), 1) < 0 {
                    return io::Error::last_os_error();
                }
            }
            if let Some(nice) = self.nice {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) < 0 {
                    return io::Error::last_os_error();
                }
            }
            if let Some(identity) = &self.identity {
                if let Err(e) = become_identity(identity) {
                    return e;
                }
            }
            // Placed before the limit is lowered (see `place_descriptors`).
            if let Err(e) = self.exec.place_descriptors() {
                return e;
            }
            if let Some(limit) = &self.nofile {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
        }
        self.exec.exec_placed()
    }
}

/// Signals 1 to this (excluded) are reset in a child: Linux's real-time ones included.
#[cfg(target_os = "linux")]
#[allow(non_snake_case)]
fn SIGNAL_LIMIT() -> i32 {
    libc::SIGRTMAX()
}

/// Signals 1 to this (excluded) are reset in a child (macOS's `NSIG`).
#[cfg(not(target_os = "linux"))]
#[allow(non_snake_case)]
fn SIGNAL_LIMIT() -> i32 {
    32
}

/// In a child between clone (or fork) and exec: its groups, group and user. Raw system calls
/// on Linux: this process has one thread, whatever glibc remembers of the daemon's (glibc's
/// `setuid` would try to tell them). Elsewhere the C library's, which after a fork act on the
/// one thread there is.
///
/// # Safety
/// Only between clone (or fork) and exec: it changes the credentials of the whole process.
unsafe fn become_identity(identity: &Identity) -> io::Result<()> {
    let groups: &[libc::gid_t] = &identity.groups;
    // SAFETY: async-signal-safe system calls on a list built before the clone.
    unsafe {
        #[cfg(target_os = "linux")]
        let failed = libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
            || libc::syscall(libc::SYS_setgid, identity.gid) < 0
            || identity
                .uid
                .is_some_and(|uid| libc::syscall(libc::SYS_setuid, uid) < 0);
        #[cfg(not(target_os = "linux"))]
        let failed = libc::setgroups(
            libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX),
            groups.as_ptr(),
        ) < 0
            || libc::setgid(identity.gid) < 0
            || identity.uid.is_some_and(|uid| libc::setuid(uid) < 0);
        if failed {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Block every signal in this thread; returns the mask to restore.
pub(super) fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigfillset and pthread_sigmask write into live locals of type sigset_t.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

pub(super) fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: pthread_sigmask reads a live sigset_t.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}
