//! Stopping processes: the stop signal, `kill_timeout`, SIGKILL, and checks that nothing of
//! the process group is left.

use super::given::Given;
use super::Platform;
use crate::cgroups::ProcessCgroup;
use crate::link::ProcessLink;
use crate::maybe::when;
use crate::process::ProcessHandle;
use kelpie_core::AppSpec;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// How often a stopping instance checks whether its process group is empty.
const GROUP_POLL: Duration = Duration::from_millis(10);
/// How long a process stopped apart may take to disappear after SIGKILL.
const AFTER_SIGKILL: Duration = Duration::from_secs(5);

/// The stop in progress of the current process, once its leader exited: whether anything of
/// its group (and cgroup) is left ([`kelpie_core::Effect::WatchGroup`]).
#[derive(Default)]
pub(super) struct GroupWatch {
    watching: bool,
    checks: GroupChecks,
}

impl GroupWatch {
    /// Start watching the group `pgid` (and `cgroup`); false when nothing of it is left
    /// already (nothing to watch then).
    pub(super) fn start(
        &mut self,
        platform: &Platform,
        pgid: Option<u32>,
        cgroup: Option<&kelpie_sys::cgroup::Cgroup>,
    ) -> bool {
        self.checks = GroupChecks::default();
        let escaped = cgroup.is_some_and(|c| c.populated());
        self.watching = escaped || pgid.is_some_and(|pgid| platform.group_alive(pgid));
        self.watching
    }

    /// While watching, wait until it is time to look again.
    pub(super) async fn wake(&self) {
        when(self.watching.then_some(GROUP_POLL), sleep).await;
    }

    /// Look whether the group is gone; once it is, the watch ends.
    pub(super) async fn gone(
        &mut self,
        platform: &Platform,
        pgid: Option<u32>,
        cgroup: Option<&kelpie_sys::cgroup::Cgroup>,
    ) -> bool {
        let running = match pgid {
            Some(pgid) => self.checks.running(platform, pgid, cgroup).await,
            None => false,
        };
        if !running {
            self.watching = false;
        }
        !running
    }
}

/// A process group that an earlier daemon started and could not stop (it was killed): stop
/// it the way a stop would, so the app does not run twice.
pub(super) async fn stop_orphan_group(given: &Given, pgid: u32) {
    crate::daemon_log!(
        "app `{}` (id {}): stopping process group {pgid} left by a previous daemon",
        given.spec.name,
        given.pm_id
    );
    let orphan = Retiring {
        platform: given.platform.clone(),
        child: None,
        pgid: Some(pgid),
        link: None,
        cgroup: None,
    };
    orphan.stop(&given.spec).await;
}

/// A process on its way out (replaced by a reload, a reload's failed new process, or left by a
/// daemon that died), stopped apart from the instance's current process: its stop signal (or
/// the `shutdown` message), `kill_timeout`, then SIGKILL to whatever is left of its group.
pub(super) struct Retiring {
    pub(super) platform: Platform,
    pub(super) child: Option<ProcessHandle>,
    pub(super) pgid: Option<u32>,
    pub(super) link: Option<ProcessLink>,
    pub(super) cgroup: Option<ProcessCgroup>,
}

/// How often (in group polls) a group that still exists is scanned for live members.
const SCAN_EVERY: u32 = 10;

/// Checks whether a process group being stopped still has a running process.
#[derive(Default)]
struct GroupChecks {
    polls: u32,
}

/// The polite part of a stop: PM2's `shutdown` message when the app asks for it and has a Node
/// IPC channel, else its kill signal to the whole group.
pub(super) fn ask_to_stop(
    platform: &Platform,
    spec: &AppSpec,
    pgid: u32,
    link: Option<&ProcessLink>,
    cgroup: Option<&ProcessCgroup>,
) {
    let by_message = (spec.shutdown_with_message || kill_use_message())
        && link.is_some_and(|l| l.send_message(&serde_json::json!("shutdown")));
    if !by_message {
        let signal = kelpie_sys::signal_number(&spec.kill_signal).unwrap_or(libc_sigint());
        platform.kill_group(pgid, signal);
        // Processes that left the group are still in the cgroup: told too, as systemd does.
        // Only those: a second signal to a process that is draining means "now" (Node's shim).
        if let Some(cgroup) = cgroup {
            for pid in cgroup.cgroup().pids() {
                if kelpie_sys::sample_process(pid).is_some_and(|p| p.pgrp != pgid) {
                    let _ = platform.send_signal(pid, signal);
                }
            }
        }
    }
}

/// PM2's `PM2_KILL_USE_MESSAGE=true` in the daemon's environment: every app with an IPC channel
/// is stopped with the `shutdown` message, as if it had `shutdown_with_message`.
fn kill_use_message() -> bool {
    static USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USE.get_or_init(|| std::env::var("PM2_KILL_USE_MESSAGE").is_ok_and(|v| v == "true"))
}

pub(super) fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("killed by {}", kelpie_sys::signal_name(signal)),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "exited".into(),
    }
}

pub(super) fn libc_sigint() -> i32 {
    kelpie_sys::signal_number("SIGINT").unwrap_or(2)
}

impl Retiring {
    pub(super) async fn stop(mut self, spec: &AppSpec) {
        let Some(pgid) = self.pgid else {
            return;
        };
        let platform = &self.platform;
        ask_to_stop(
            platform,
            spec,
            pgid,
            self.link.as_ref(),
            self.cgroup.as_ref(),
        );
        let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout_ms);
        if let Some(child) = self.child.as_mut() {
            let _ = tokio::time::timeout_at(deadline, child.wait()).await;
        }
        let cgroup = self.cgroup.as_ref().map(ProcessCgroup::cgroup);
        let mut checks = GroupChecks::default();
        while checks.running(platform, pgid, cgroup).await && Instant::now() < deadline {
            sleep(GROUP_POLL).await;
        }
        platform.kill_group(pgid, kelpie_sys::SIGKILL);
        if let Some(cgroup) = cgroup {
            cgroup.kill();
        }
        // SIGKILL is not refused, but a process stuck in the kernel (D state) dies late: bounded,
        // so that an instance (and the daemon's exit) never waits on it forever.
        let killed_by = Instant::now() + AFTER_SIGKILL;
        if let Some(child) = self.child.as_mut() {
            let _ = tokio::time::timeout_at(killed_by, child.wait()).await;
        }
        while checks.running(platform, pgid, cgroup).await && Instant::now() < killed_by {
            sleep(GROUP_POLL).await;
        }
    }
}

impl GroupChecks {
    /// kill(2) says whether the group exists (one system call, every poll). Exited members
    /// waiting for init to reap them keep it existing, so while it does, every tenth poll
    /// scans /proc (off the async thread) for a member that has not exited.
    ///
    /// With a cgroup, the answer is exact and cheap: whether it holds a process that has not
    /// exited (a read of `cgroup.events`, a small in-kernel file), group or not.
    async fn running(
        &mut self,
        platform: &Platform,
        pgid: u32,
        cgroup: Option<&kelpie_sys::cgroup::Cgroup>,
    ) -> bool {
        if let Some(cgroup) = cgroup {
            return cgroup.populated();
        }
        if !platform.group_alive(pgid) {
            return false;
        }
        self.polls += 1;
        if !self.polls.is_multiple_of(SCAN_EVERY) {
            return true;
        }
        platform.group_has_live_members(pgid).await
    }
}
