//! What `kelpie runtime` needs to be a good init: adopting orphans, reaping them one pid at a
//! time, and killing a whole pid namespace.
//!
//! Reaping is by pid only (never `waitpid(-1)`): the caller decides which zombies are orphans
//! and leaves the ones tokio waits for alone, so their exit statuses reach their instances.

use rustix::process::Signal;
use std::io;

/// Adopt the orphaned descendants of this process (`PR_SET_CHILD_SUBREAPER`): when a process
/// below us loses its parent, it is re-parented to us instead of to the namespace's init, so
/// we can reap it. PID 1 needs no such call.
///
/// The portable backend cannot (macOS has no subreaper): an orphan of an app goes to the
/// system's init, and `Unsupported` says so.
pub fn adopt_orphans() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        // Any pid: only "set or not" matters (the kernel stores a flag).
        return Ok(rustix::process::set_child_subreaper(Some(
            rustix::process::getpid(),
        ))?);
    }
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this system cannot adopt orphans (no subreaper)",
    ))
}

/// Reap the child `pid` if it has exited; `Ok(true)` when it was reaped, `Ok(false)` when it
/// still runs. Only for a pid the caller knows is its child and no one else waits for.
pub fn reap_child(pid: u32) -> io::Result<bool> {
    crate::try_wait_child(pid).map(|status| status.is_some())
}

/// SIGKILL every process of this pid namespace but ourselves. Refused unless we are its init
/// (pid 1): anywhere else `kill(-1)` would reach every process the user may signal.
pub fn kill_all_but_self() -> io::Result<()> {
    if std::process::id() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "only the init of a pid namespace may kill all of it",
        ));
    }
    // As pid 1, kill(-1) signals every process of the namespace except the caller: exactly the
    // processes it is the init of.
    match rustix::process::kill_process_group(rustix::process::Pid::INIT, Signal::KILL) {
        // Nothing left to kill is not a failure.
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_reaped_by_pid_once_it_has_exited() {
        let child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if reap_child(pid).expect("waitpid") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never exited");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Gone: not our child any more.
        assert!(reap_child(pid).is_err());
        // The Child is dropped without a wait: std does not reap on drop.
        drop(child);
    }

    #[test]
    fn only_init_may_kill_its_namespace() {
        if std::process::id() != 1 {
            assert!(kill_all_but_self().is_err());
        }
    }
}
