//! The process an instance waits for: one this daemon spawned (tokio's `Child`), or one adopted
//! from the daemon it replaced in place (`kelpie update`): the pid did not change across the
//! exec, so the process is still our child, waited for through a pidfd.

use std::os::fd::OwnedFd;
use std::process::ExitStatus;
use tokio::io::unix::AsyncFd;
use tokio::process::Child;

/// A child process of the daemon.
pub enum ProcessHandle {
    /// Started by this daemon.
    Spawned(Child),
    /// Started by the daemon this one replaced.
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

/// A child adopted across the exec.
pub struct AdoptedChild {
    pid: u32,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl AdoptedChild {
    /// Adopt `pid`, which must be an unreaped child of this process.
    pub fn new(pid: u32) -> std::io::Result<AdoptedChild> {
        let pidfd = kelpie_sys::async_pidfd(pid)?;
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
            if let Some(status) = kelpie_sys::try_wait_child(self.pid)? {
                self.status = Some(status);
                return Ok(status);
            }
            ready.clear_ready();
        }
    }
}
