//! The ends of the machine's waits: the whole group gone after a stop, and its one timer
//! firing (not ready within `listen_timeout`, `kill_timeout` over, a restart delay over).

use super::{AfterStop, Effect, InstanceState, Now, Status};
use crate::spec::AppSpec;

impl InstanceState {
    pub(super) fn on_group_gone(&mut self, _now: Now) -> Vec<Effect> {
        if self.status != Status::Stopping || !self.leader_exited {
            return Vec::new();
        }
        let mut effects = vec![Effect::CancelTimer];
        match std::mem::take(&mut self.after_stop) {
            // A restart, once the old process is gone: one per process ended and started
            // again, whatever asked for it.
            AfterStop::Start => effects.extend(self.respawn()),
            AfterStop::StartAfter(ms) => {
                self.status = Status::WaitingRestart;
                effects.push(Effect::ArmTimer(ms));
            }
            AfterStop::GiveUp => self.status = Status::Errored,
            AfterStop::StayStopped => self.status = Status::Stopped,
        }
        effects
    }

    pub(super) fn on_timer(&mut self, spec: &AppSpec, _now: Now) -> Vec<Effect> {
        match self.status {
            // Not ready in time at start: online anyway, as in PM2, but said when the config
            // asked for readiness (a Node app's main module still running is no error). (A
            // reload does not get here: it fails instead, and the old process keeps serving.)
            Status::Launching if self.awaiting_ready => {
                self.awaiting_ready = false;
                self.status = Status::Online;
                if spec.asks_for_readiness() {
                    self.last_error = Some(format!(
                        "not ready within listen_timeout ({} ms); counted as online",
                        spec.listen_timeout_ms
                    ));
                }
                Vec::new()
            }
            // kill_timeout is over: whatever is left of the group is killed.
            Status::Stopping => vec![Effect::KillGroup],
            Status::WaitingRestart => self.respawn(),
            _ => Vec::new(),
        }
    }
}
