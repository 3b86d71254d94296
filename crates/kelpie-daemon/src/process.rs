//! The process an instance waits for: one this daemon spawned (tokio's `Child`), or one adopted
//! from an earlier daemon, waited for through a pidfd: the one it replaced in place (`kelpie
//! update`: the pid did not change across the exec, so the process is still our child), or one
//! that was killed (its keeper kept a pidfd of the process; it is init's child now).

use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use tokio::io::unix::AsyncFd;
use tokio::process::Child;

/// A process of an instance.
pub enum ProcessHandle {
    /// Started by this daemon.
    Spawned(Child),
    /// Started by an earlier daemon.
    Adopted(AdoptedChild),
}

impl ProcessHandle {
    /// Wait until it exits and collect its status.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            ProcessHandle::Spawned(child) => child.wait().await,
            ProcessHandle::Adopted(child) => child.wait().await,
        }
    }

    /// Hand it over to the next daemon: nothing here may wait for it any more (tokio would
    /// reap a dropped child, and the next daemon would find no status to collect).
    pub fn hand_over(self) {
        if let ProcessHandle::Spawned(child) = self {
            std::mem::forget(child);
        }
    }
}

/// A process adopted from an earlier daemon: across the exec of `kelpie update` it is still
/// our child; after a daemon was killed (adopted through its keeper) it is not, and its exit
/// status went to whoever reaped it.
pub struct AdoptedChild {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl AdoptedChild {
    /// Adopt `pid`, through `pidfd` when one was kept since it was known to be this process.
    pub fn new(pid: u32, pidfd: Option<OwnedFd>) -> std::io::Result<AdoptedChild> {
        let pidfd = match pidfd {
            Some(fd) => kelpie_sys::async_fd(fd)?,
            None => kelpie_sys::async_pidfd(pid)?,
        };
        Ok(AdoptedChild {
            pid,
            pidfd,
            status: None,
        })
    }

    async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            let mut ready = self.pidfd.readable().await?;
            match kelpie_sys::try_wait_child(self.pid) {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return Ok(status);
                }
                Ok(None) => ready.clear_ready(),
                // Not our child: it ended (the pidfd says so), its status is someone else's.
                Err(e) if e.raw_os_error() == Some(kelpie_sys::ECHILD) => {
                    return Err(std::io::Error::other(UnknownStatus));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The wait of a process that ended as someone else's child: it exited, how is not known.
#[derive(Debug)]
pub struct UnknownStatus;

impl std::fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("its exit status went to init (adopted after a daemon was killed)")
    }
}

impl std::error::Error for UnknownStatus {}

/// Whether a failed wait only means the exit status is unknown.
pub fn status_unknown(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<UnknownStatus>())
}
