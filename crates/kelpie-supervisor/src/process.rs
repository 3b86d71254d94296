//! The process an instance waits for, through a pidfd: one this daemon spawned (the pidfd comes
//! with the spawn), or one adopted from an earlier daemon: the one it replaced in place (`kelpie
//! update`: the pid did not change across the exec, so the process is still our child), or one
//! that was killed (its keeper kept a pidfd of the process; it is init's child now).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitStatus;
use tokio::net::unix::pipe;

/// A process of an instance.
pub(crate) struct ProcessHandle {
    pid: u32,
    exit: ExitSource,
    status: Option<ExitStatus>,
    /// Handed to the next daemon: nothing here may collect its status.
    handed_over: bool,
}

/// A pidfd registered with tokio's reactor, to wait until it turns readable (the process
/// exited). Registered through tokio's pipe receiver: its `from_owned_fd_unchecked` is the one
/// safe way tokio has to register a descriptor it did not open (`AsyncFd::register` is `unsafe`,
/// its safe `AsyncFd::new` deprecated as unsound). It checks nothing about the descriptor and
/// registers it for readable as `AsyncFd` would (the same mio registration, epoll's `EPOLLIN`);
/// it owns it, so the number cannot be closed or reused under the reactor. The pidfd is never
/// read through it (a pidfd cannot be read): only its readiness is used.
struct Pidfd(pipe::Receiver);

impl Pidfd {
    /// Register `fd` (a pidfd) with the current runtime's reactor.
    fn register(fd: OwnedFd) -> std::io::Result<Pidfd> {
        pipe::Receiver::from_owned_fd_unchecked(fd).map(Pidfd)
    }

    /// Wait until the process has exited and `collect` (`waitpid`) has a result: `collect`
    /// returns `Ok(None)` while the process runs, which makes the wait go on.
    async fn wait_until<T>(
        &self,
        mut collect: impl FnMut() -> std::io::Result<Option<T>>,
    ) -> std::io::Result<T> {
        loop {
            self.0.readable().await?;
            // Readable but still running: `WouldBlock` clears the readiness, to wait again.
            let collected = self.0.try_io(|| {
                collect()?.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::WouldBlock))
            });
            match collected {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }
}

/// Where the end of the process is learnt.
enum ExitSource {
    /// Its pidfd turns readable.
    Pidfd(Pidfd),
    /// A process of the in-process tests' fake (`instance::fake`): no process, the test says
    /// when and how it ends.
    #[cfg(test)]
    Scripted(tokio::sync::watch::Receiver<Option<ExitStatus>>),
}

impl ExitSource {
    fn pidfd(&self) -> Option<&Pidfd> {
        match self {
            ExitSource::Pidfd(pidfd) => Some(pidfd),
            #[cfg(test)]
            ExitSource::Scripted(_) => None,
        }
    }
}

impl ProcessHandle {
    /// A process of the in-process tests: it "exits" with the status sent on `exit`.
    #[cfg(test)]
    pub(crate) fn scripted(
        pid: u32,
        exit: tokio::sync::watch::Receiver<Option<ExitStatus>>,
    ) -> ProcessHandle {
        ProcessHandle {
            pid,
            exit: ExitSource::Scripted(exit),
            status: None,
            handed_over: false,
        }
    }

    /// A process this daemon just spawned.
    pub(crate) fn spawned(spawned: kelpie_sys::Spawned) -> std::io::Result<ProcessHandle> {
        ProcessHandle::adopted(spawned.pid, Some(spawned.pidfd))
    }

    /// Adopt `pid`, through `pidfd` when one was kept since it was known to be this process.
    pub(crate) fn adopted(pid: u32, pidfd: Option<OwnedFd>) -> std::io::Result<ProcessHandle> {
        let pidfd = match pidfd {
            Some(fd) => fd,
            None => kelpie_sys::watch_exit(pid)?,
        };
        Ok(ProcessHandle {
            pid,
            exit: ExitSource::Pidfd(Pidfd::register(pidfd)?),
            status: None,
            handed_over: false,
        })
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Its pidfd (a scripted process has none).
    pub(crate) fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.exit.pidfd().map(|pidfd| pidfd.0.as_fd())
    }

    /// Wait until it exits and collect its status.
    pub(crate) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        #[cfg(test)]
        if let ExitSource::Scripted(exit) = &mut self.exit {
            let seen = exit.wait_for(Option::is_some).await;
            let status = seen.map_err(|_| std::io::Error::other("the fake process was dropped"))?;
            let status = status.ok_or_else(|| std::io::Error::other("no status"))?;
            self.status = Some(status);
            return Ok(status);
        }
        let Some(pidfd) = self.exit.pidfd() else {
            return Err(std::io::Error::other("nothing to wait on"));
        };
        let pid = self.pid;
        match pidfd.wait_until(|| kelpie_sys::try_wait_child(pid)).await {
            Ok(status) => {
                self.status = Some(status);
                Ok(status)
            }
            // Not our child: it ended (the pidfd says so), its status is someone else's.
            Err(e) if e.raw_os_error() == Some(kelpie_sys::ECHILD) => {
                Err(std::io::Error::other(UnknownStatus))
            }
            Err(e) => Err(e),
        }
    }

    /// Hand it over to the next daemon: nothing here may wait for it any more (the next daemon
    /// would find no status to collect).
    pub(crate) fn hand_over(mut self) {
        self.handed_over = true;
    }
}

impl Drop for ProcessHandle {
    /// A process dropped before its status was collected is collected once it exits, so no
    /// zombie is left (tokio's `Child` did the same).
    fn drop(&mut self) {
        if self.handed_over || self.status.is_some() {
            return;
        }
        let Some(pidfd) = self.pidfd().map(|fd| fd.try_clone_to_owned()) else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            let _ = kelpie_sys::try_wait_child(self.pid);
            return;
        }
        let pid = self.pid;
        crate::tasks::background(async move {
            match pidfd.and_then(Pidfd::register) {
                Ok(pidfd) => {
                    let _ = pidfd.wait_until(|| kelpie_sys::try_wait_child(pid)).await;
                }
                Err(_) => {
                    let _ = kelpie_sys::try_wait_child(pid);
                }
            }
        });
    }
}

/// The wait of a process that ended as someone else's child: it exited, how is not known.
#[derive(Debug)]
pub(crate) struct UnknownStatus;

impl std::fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("its exit status went to init (adopted after a daemon was killed)")
    }
}

impl std::error::Error for UnknownStatus {}

/// Whether a failed wait only means the exit status is unknown.
pub(crate) fn status_unknown(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<UnknownStatus>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};

    fn spawn_sh(script: &str) -> kelpie_sys::Spawned {
        let path = std::env::var("PATH").unwrap_or_default();
        let sh = kelpie_sys::resolve_program("sh", Some(&path)).expect("sh");
        kelpie_sys::Spawn::new(
            &sh,
            &["sh".into(), "-c".into(), script.into()],
            &[("PATH", path)],
            Path::new("/"),
            (None, None),
            Vec::new(),
            false,
        )
        .and_then(kelpie_sys::Spawn::spawn)
        .expect("spawn")
    }

    /// Whether `pid` is still a process table entry (running or a zombie nobody reaped).
    fn listed(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn a_spawned_process_is_waited_for_through_its_pidfd() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut child = ProcessHandle::spawned(spawn_sh("exit 3")).expect("handle");
            let status = child.wait().await.expect("wait");
            assert_eq!(status.code(), Some(3));
            assert_eq!(child.wait().await.expect("again").code(), Some(3));
        });
    }

    #[test]
    fn a_process_that_is_not_our_child_ends_with_an_unknown_status() {
        // A grandchild: its shell exits at once, so it is init's child, as a process adopted
        // from the keeper is.
        let shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 >/dev/null 2>&1 & echo $!"])
            .stdout(std::process::Stdio::piped())
            .output()
            .expect("sh");
        let pid: u32 = String::from_utf8_lossy(&shell.stdout)
            .trim()
            .parse()
            .expect("pid");
        // Killed by pid on every way out, even a failed assertion.
        struct Kill(u32);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = kelpie_sys::send_signal(self.0, kelpie_sys::SIGKILL);
            }
        }
        let grandchild = Kill(pid);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut adopted = ProcessHandle::adopted(pid, None).expect("handle");
            drop(grandchild);
            let error = adopted.wait().await.expect_err("not our child");
            assert!(status_unknown(&error), "{error}");
        });
    }

    #[test]
    fn a_process_dropped_before_its_exit_is_reaped_when_it_exits_unless_handed_over() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let dropped = spawn_sh("sleep 0.2");
            let (dropped_pid, kept) = (dropped.pid, spawn_sh("sleep 0.2"));
            let kept_pid = kept.pid;
            drop(ProcessHandle::spawned(dropped).expect("handle"));
            ProcessHandle::spawned(kept).expect("handle").hand_over();
            let deadline = Instant::now() + Duration::from_secs(5);
            while listed(dropped_pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(!listed(dropped_pid), "no zombie left of a dropped process");
            // Handed over: its status is left for the next daemon (a zombie until then).
            assert!(listed(kept_pid));
            let mut status = None;
            while status.is_none() && Instant::now() < deadline {
                status = kelpie_sys::try_wait_child(kept_pid).expect("our child");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(status.is_some(), "the handed-over process ended");
        });
    }
}
