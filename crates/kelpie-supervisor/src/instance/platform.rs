//! What an instance asks of the system about its processes besides starting them: signal a
//! process or its group, and whether the group still has a process. The daemon always uses the
//! system; the in-process tests use a fake (instance/fake.rs) that starts no process, so that
//! the instance's timing (backoff, listen_timeout, kill_timeout, watchdog, cron) runs exactly on
//! tokio's paused clock.

#[cfg(test)]
use std::sync::Arc;

/// Where an instance's processes live.
#[derive(Clone)]
pub enum Platform {
    /// Real processes.
    System,
    /// The in-process tests' fake processes.
    #[cfg(test)]
    Fake(Arc<super::fake::FakeProcesses>),
}

impl Platform {
    /// Send `signal` to the process group `pgid`. ESRCH only means the group is already gone,
    /// which is what a stop wants, so failures are not reported.
    pub(super) fn kill_group(&self, pgid: u32, signal: i32) {
        match self {
            Platform::System => {
                let _ = kelpie_sys::kill_group(pgid, signal);
            }
            #[cfg(test)]
            Platform::Fake(fake) => fake.signal(pgid, signal),
        }
    }

    /// Send `signal` to process `pid` alone (`kelpie sendSignal`, or a process that left its
    /// group but not its cgroup).
    pub(super) fn send_signal(&self, pid: u32, signal: i32) -> std::io::Result<()> {
        match self {
            Platform::System => kelpie_sys::send_signal(pid, signal),
            #[cfg(test)]
            Platform::Fake(fake) => {
                fake.signal(pid, signal);
                Ok(())
            }
        }
    }

    /// Whether process group `pgid` exists (one system call).
    pub(super) fn group_alive(&self, pgid: u32) -> bool {
        match self {
            Platform::System => kelpie_sys::group_alive(pgid),
            #[cfg(test)]
            Platform::Fake(fake) => fake.running(pgid),
        }
    }

    /// Whether process group `pgid` has a member that has not exited (a scan of /proc).
    pub(super) async fn group_has_live_members(&self, pgid: u32) -> bool {
        match self {
            Platform::System => {
                crate::tasks::blocking(move || kelpie_sys::group_has_live_members(pgid))
                    .await
                    .unwrap_or(true)
            }
            #[cfg(test)]
            Platform::Fake(fake) => fake.running(pgid),
        }
    }
}
