//! An instance across daemons: its state brought back from disk ([`InstanceState::restored`]),
//! adopted with its running process after an in-place update ([`InstanceState::adopted`]), and
//! whether a new daemon should run it again.

use super::{AfterStop, InstanceState, Now, Status};

impl InstanceState {
    /// The state as it was persisted by an earlier daemon, to be brought back: the process of
    /// that daemon is gone (or no longer ours), so the instance starts from `stopped`.
    pub fn restored(mut self) -> Self {
        self.status = Status::Stopped;
        self.pid = None;
        self.after_stop = AfterStop::StayStopped;
        self.leader_exited = false;
        self.awaiting_ready = false;
        self.health = None;
        self.health_detail = None;
        self
    }

    /// The state handed over by the daemon this one replaced in place (`kelpie update`), whose
    /// process still runs and is still ours: online with the same pid and counters. Its start
    /// is placed on this daemon's monotonic clock from the wall clock, so `min_uptime` still
    /// counts from when the process really started. `None` unless it was online with a pid.
    pub fn adopted(mut self, now: Now) -> Option<Self> {
        if self.status != Status::Online || self.pid.is_none() {
            return None;
        }
        let ran_ms = now.wall_ms.saturating_sub(self.started_at_ms);
        self.started_mono_ms = now.mono_ms.saturating_sub(ran_ms);
        self.stop_why = None;
        self.after_stop = AfterStop::default();
        self.leader_exited = false;
        self.awaiting_ready = false;
        Some(self)
    }

    /// Whether the instance is meant to be running: what a new daemon should bring back.
    /// A restart in progress counts as running; a stop in progress does not.
    pub fn wants_to_run(&self) -> bool {
        match self.status {
            Status::Launching | Status::Online | Status::WaitingRestart => true,
            Status::Stopping => {
                matches!(self.after_stop, AfterStop::Start | AfterStop::StartAfter(_))
            }
            Status::Stopped | Status::Errored => false,
        }
    }
}
