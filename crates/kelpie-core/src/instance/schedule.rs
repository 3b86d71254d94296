//! Periodic jobs: an app with a schedule (`cron_restart`) that is not running because it ended
//! on its own is started by the schedule's next tick, as under PM2; a user's `stop` pauses the
//! schedule until `start` or `restart` (PM2 revives stopped apps). A tick while the app runs is
//! an automatic restart ([`super::Input::AutoRestart`]), decided by the daemon with reloads.

use super::{Effect, InstanceState};
use crate::spec::AppSpec;

impl InstanceState {
    pub(super) fn on_scheduled_start(&mut self) -> Vec<Effect> {
        if self.stopped_by_user || !self.status.is_down() {
            return Vec::new();
        }
        // The schedule's start is a restart for PM2's counters, and a new run: the unstable-run
        // count of the runs before does not carry over (the schedule, not a crash, started it).
        self.unstable_restarts = 0;
        self.prev_restart_delay_ms = 0;
        self.respawn()
    }

    /// Not running now, but its schedule will start it by itself: a periodic job between runs.
    /// A user's stop pauses the schedule; a restart pending after a crash is not "between runs".
    pub fn waits_for_schedule(&self, spec: &AppSpec) -> bool {
        spec.is_scheduled() && self.status.is_down() && !self.stopped_by_user
    }
}
