//! What an exit of the main process leads to: the end of a stop in progress, or, when the app
//! ended on its own, a restart now, a restart after a delay (backoff, crash loop), a stop or
//! giving up (`max_restarts` unstable runs in a row).

use super::{AfterStop, Cause, Effect, ExitRecord, InstanceState, Now, Status};
use crate::policy::{crash_loop_delay, next_backoff_delay, BACKOFF_RESET_AFTER_MS};
use crate::spec::AppSpec;

impl InstanceState {
    pub(super) fn on_exit(
        &mut self,
        spec: &AppSpec,
        code: Option<i32>,
        signal: Option<String>,
        now: Now,
    ) -> Vec<Effect> {
        let uptime_ms = now.mono_ms.saturating_sub(self.started_mono_ms);
        let pid = self.pid.take();
        self.awaiting_ready = false;
        self.health = None;
        self.health_detail = None;
        let mut record = ExitRecord {
            at_ms: now.wall_ms,
            code,
            signal,
            uptime_ms,
            pid,
            ..ExitRecord::default()
        };

        if self.status == Status::Stopping {
            return self.stop_ended(record);
        }

        // The app ended on its own: whatever it left behind in its group goes with it, so a
        // restarted app never finds its port held by an orphaned child.
        let mut effects = vec![Effect::KillGroup];
        record.reason = describe_exit(code, record.signal.as_deref());
        record.cause = if code == Some(0) && record.signal.is_none() {
            self.failed_runs = 0;
            Cause::Exit
        } else {
            self.failed_runs = self.failed_runs.saturating_add(1);
            Cause::Crash
        };

        if !spec.autorestart {
            self.status = Status::Stopped;
            if spec.is_scheduled() {
                // A periodic job: its schedule runs it again at the next tick.
                record.action = "scheduled".into();
                record
                    .reason
                    .push_str(" (autorestart off: runs again on its schedule)");
            } else {
                record.action = "stopped".into();
                record.reason.push_str(" (autorestart off)");
            }
            self.push_exit(record);
            return effects;
        }
        if let Some(code) = code.filter(|c| spec.stop_exit_codes.contains(c)) {
            self.status = Status::Stopped;
            record.action = "stopped".into();
            record.reason = format!("exit code {code} is in stop_exit_codes");
            self.push_exit(record);
            return effects;
        }

        // Unstable runs are counted in a row: a run that lasted min_uptime starts the count again.
        if uptime_ms < spec.min_uptime_ms {
            self.unstable_restarts += 1;
        } else {
            self.unstable_restarts = 0;
        }
        if self.unstable_restarts >= spec.max_restarts {
            self.status = Status::Errored;
            record.action = "errored".into();
            record.reason.push_str(&format!(
                " ({} unstable restarts, max_restarts is {})",
                self.unstable_restarts, spec.max_restarts
            ));
            self.unstable_restarts = 0;
            self.push_exit(record);
            return effects;
        }

        let delay_ms = self.restart_delay_ms(spec, uptime_ms);
        if delay_ms > 0 {
            self.status = Status::WaitingRestart;
            record.action = "waiting restart".into();
            self.push_exit(record);
            effects.push(Effect::ArmTimer(delay_ms));
        } else {
            record.action = "restart".into();
            self.push_exit(record);
            effects.extend(self.respawn());
        }
        effects
    }

    /// The main process of a stop in progress ended: the stop completes when the whole group
    /// is gone, not only its leader.
    fn stop_ended(&mut self, mut record: ExitRecord) -> Vec<Effect> {
        self.leader_exited = true;
        match self.stop_why.take() {
            Some(why) => {
                record.cause = why.cause;
                record.reason = why.detail;
            }
            None => {
                record.cause = Cause::User;
                record.reason = "stopped by kelpie".into();
            }
        }
        record.action = match self.after_stop {
            AfterStop::Start => "restart".into(),
            AfterStop::StartAfter(_) => "waiting restart".into(),
            AfterStop::GiveUp => "errored".into(),
            AfterStop::StayStopped => "stopped".into(),
        };
        self.push_exit(record);
        vec![Effect::WatchGroup]
    }

    /// How long to wait before the next start: the exponential backoff when it is set, else
    /// `restart_delay`, else the crash-loop delay (none for a first crash).
    pub(super) fn restart_delay_ms(&mut self, spec: &AppSpec, uptime_ms: u64) -> u64 {
        match spec.exp_backoff_restart_delay_ms {
            Some(initial) => {
                if uptime_ms >= BACKOFF_RESET_AFTER_MS {
                    self.prev_restart_delay_ms = 0;
                }
                let delay = next_backoff_delay(initial, self.prev_restart_delay_ms);
                self.prev_restart_delay_ms = delay;
                delay
            }
            None if spec.restart_delay_ms == 0 => crash_loop_delay(self.unstable_restarts),
            None => spec.restart_delay_ms,
        }
    }
}

fn describe_exit(code: Option<i32>, signal: Option<&str>) -> String {
    match (code, signal) {
        (_, Some(signal)) => format!("killed by {signal}"),
        (Some(0), None) => "exited with code 0".into(),
        (Some(code), None) => format!("crashed with exit code {code}"),
        (None, None) => "exited".into(),
    }
}
