//! A user's command ([`Lifecycle`]: start, stop, restart) in each state, and the two moves it
//! starts: a stop (the stop signal, then SIGKILL after `kill_timeout`) and a spawn.

use super::{AfterStop, Effect, InstanceState, Lifecycle, Now, Status};
use crate::spec::AppSpec;

impl InstanceState {
    pub(super) fn on_lifecycle(
        &mut self,
        spec: &AppSpec,
        lifecycle: Lifecycle,
        now: Now,
    ) -> Vec<Effect> {
        // A user's command overrides the reason of an automatic restart in progress.
        self.stop_why = None;
        // A user's stop pauses the schedule until they start or restart the app.
        self.stopped_by_user = lifecycle == Lifecycle::Stop;
        match lifecycle {
            Lifecycle::Start => match self.status {
                Status::Stopped | Status::Errored => {
                    self.unstable_restarts = 0;
                    self.prev_restart_delay_ms = 0;
                    self.spawn()
                }
                Status::WaitingRestart => {
                    let mut effects = vec![Effect::CancelTimer];
                    effects.extend(self.spawn());
                    effects
                }
                Status::Stopping => {
                    self.after_stop = AfterStop::Start;
                    Vec::new()
                }
                Status::Launching | Status::Online => Vec::new(),
            },
            Lifecycle::Stop => match self.status {
                Status::Launching | Status::Online => {
                    self.after_stop = AfterStop::StayStopped;
                    self.begin_stop(spec)
                }
                Status::Stopping => {
                    self.after_stop = AfterStop::StayStopped;
                    Vec::new()
                }
                Status::WaitingRestart => {
                    self.status = Status::Stopped;
                    vec![Effect::CancelTimer]
                }
                Status::Stopped | Status::Errored => Vec::new(),
            },
            Lifecycle::Restart => {
                self.unstable_restarts = 0;
                self.prev_restart_delay_ms = 0;
                self.created_at_ms = now.wall_ms;
                match self.status {
                    // Counted when the new process starts (`on_group_gone`).
                    Status::Launching | Status::Online => {
                        self.after_stop = AfterStop::Start;
                        self.begin_stop(spec)
                    }
                    Status::Stopping => {
                        self.after_stop = AfterStop::Start;
                        Vec::new()
                    }
                    Status::WaitingRestart => {
                        let mut effects = vec![Effect::CancelTimer];
                        effects.extend(self.respawn());
                        effects
                    }
                    Status::Stopped | Status::Errored => self.spawn(),
                }
            }
        }
    }

    pub(super) fn begin_stop(&mut self, spec: &AppSpec) -> Vec<Effect> {
        self.status = Status::Stopping;
        self.leader_exited = false;
        self.awaiting_ready = false;
        vec![
            Effect::SignalGroup(spec.kill_signal.clone()),
            Effect::ArmTimer(spec.kill_timeout_ms),
        ]
    }

    pub(super) fn spawn(&mut self) -> Vec<Effect> {
        self.status = Status::Launching;
        self.pid = None;
        vec![Effect::Spawn]
    }

    /// [`Self::spawn`] as a restart: counted in `restart_time` when its process exists
    /// (`Input::Spawned`), so a spawn that fails (the program gone, `fork` refused) counts none.
    pub(super) fn respawn(&mut self) -> Vec<Effect> {
        self.restart_pending = true;
        self.spawn()
    }
}
