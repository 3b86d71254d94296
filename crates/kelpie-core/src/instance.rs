//! The state machine of one instance (one process slot with a stable `pm_id`).
//!
//! The daemon's instance task feeds it [`Input`]s (a user command, the child's exit, a timer) and
//! carries out the [`Effect`]s it returns. All decisions live here: when an exit means restart,
//! wait, stop or give up; how a stop escalates to SIGKILL; what the counters become.
//!
//! Here: the state ([`InstanceState`]) and how each input is dispatched. Its parts, in
//! `instance/`: the states people see (`status`), what goes in and out (`messages`), why a
//! process ended (`cause`), the exits remembered (`history`), a user's commands (`lifecycle`),
//! an exit of the main process (`exit`), the ends of waits (`waits`), the schedule of periodic
//! jobs (`schedule`), and the state across daemons (`restore`).

mod cause;
mod exit;
mod history;
mod lifecycle;
mod memory_loop;
mod messages;
mod restore;
mod schedule;
mod status;
mod waits;

pub use cause::{Cause, Why};
pub use history::{ExitRecord, EXIT_HISTORY};
pub use messages::{Effect, Input, Lifecycle, Now};
pub use status::{Health, Status};

use crate::spec::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// What to do once a stop in progress has completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum AfterStop {
    #[default]
    StayStopped,
    Start,
    /// Start again after this many ms (a memory limit hit right after each start: a crash loop).
    StartAfter(u64),
    /// Give up: errored (that crash loop reached `max_restarts`).
    GiveUp,
}

/// Observed state of one instance. The persisted part (counters, history) survives a daemon
/// restart; the monotonic marks do not, they only make sense inside one daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct InstanceState {
    /// Current state.
    pub status: Status,
    /// Pid of the main process while one exists.
    pub pid: Option<u32>,
    /// Restarts since the app was created or reset (PM2's `restart_time`, the ↺ column).
    pub restart_time: u32,
    /// Short runs in a row (PM2's `unstable_restarts`).
    pub unstable_restarts: u32,
    /// When the app was created, restarted by hand or reset (ms since epoch).
    pub created_at_ms: u64,
    /// When the current (or last) process started (ms since epoch; PM2's `pm_uptime`).
    pub started_at_ms: u64,
    /// Last backoff delay used (ms); 0 when backoff is at its start.
    pub prev_restart_delay_ms: u64,
    /// The last exits, oldest first. Shared: the state is copied to the supervisor at each
    /// change, and copying ten records (their texts, their stderr lines) each time cost more
    /// than anything else of a restart on the daemon's async thread.
    pub exits: VecDeque<Arc<ExitRecord>>,
    /// Why the instance last failed to spawn, if it did.
    pub last_error: Option<String>,
    /// Its health check's last result, when it has one and a process runs.
    pub health: Option<Health>,
    /// The last failed check's reason, while unhealthy or failing.
    pub health_detail: Option<String>,
    /// A user stopped it (`stop`): its schedule (`cron_restart`) does not start it again until a
    /// `start` or `restart`. An app that ended on its own is not stopped by a user: its schedule
    /// runs it at the next tick (a periodic job).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped_by_user: bool,
    /// Runs in a row that ended on their own with a failure (a non-zero code, a signal) or could
    /// not be spawned; 0 after a run that exited with code 0. What shows a failing periodic job.
    #[serde(skip_serializing_if = "is_zero")]
    pub failed_runs: u32,
    /// When its schedule (`cron_restart`) fires next (ms since the Unix epoch); `None` without a
    /// schedule or while a user's stop pauses it. Set by the daemon, which owns the timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_ms: Option<u64>,
    /// Why the current stop was asked for by the daemon itself.
    #[serde(skip)]
    stop_why: Option<Why>,
    #[serde(skip)]
    started_mono_ms: u64,
    #[serde(skip)]
    after_stop: AfterStop,
    #[serde(skip)]
    leader_exited: bool,
    /// Started, waiting for the process to say it is ready.
    #[serde(skip)]
    awaiting_ready: bool,
    /// The spawn under way is a restart: counted in `restart_time` once its process exists
    /// (a spawn that fails started nothing again).
    #[serde(skip)]
    restart_pending: bool,
}

impl InstanceState {
    /// A new, stopped instance created now.
    pub fn new(now: Now) -> Self {
        InstanceState {
            created_at_ms: now.wall_ms,
            ..InstanceState::default()
        }
    }

    /// How long the current process has run (ms), or 0. Counted on the monotonic clock, like
    /// `min_uptime`: a wall clock set forward or back does not change it.
    pub fn uptime_ms(&self, now: Now) -> u64 {
        if self.status == Status::Online {
            now.mono_ms.saturating_sub(self.started_mono_ms)
        } else {
            0
        }
    }

    /// Zero the counters (PM2's `reset` command).
    pub fn reset_counters(&mut self, now: Now) {
        self.restart_time = 0;
        self.unstable_restarts = 0;
        self.prev_restart_delay_ms = 0;
        self.failed_runs = 0;
        self.created_at_ms = now.wall_ms;
    }

    /// Apply one input and return the effects to carry out, in order.
    pub fn handle(&mut self, spec: &AppSpec, input: Input, now: Now) -> Vec<Effect> {
        match input {
            Input::Lifecycle(lifecycle) => self.on_lifecycle(spec, lifecycle, now),
            Input::Spawned { pid } => {
                if std::mem::take(&mut self.restart_pending) {
                    self.restart_time += 1;
                }
                self.status = Status::Online;
                self.pid = Some(pid);
                self.started_at_ms = now.wall_ms;
                self.started_mono_ms = now.mono_ms;
                self.leader_exited = false;
                self.awaiting_ready = false;
                self.last_error = None;
                self.health = spec.health_check.as_ref().map(|_| Health::Starting);
                self.health_detail = None;
                Vec::new()
            }
            Input::Started { pid } => {
                self.handle(spec, Input::Spawned { pid }, now);
                self.status = Status::Launching;
                self.awaiting_ready = true;
                vec![Effect::ArmTimer(spec.listen_timeout_ms)]
            }
            Input::Ready => {
                if !self.awaiting_ready || self.status != Status::Launching {
                    return Vec::new();
                }
                self.awaiting_ready = false;
                self.status = Status::Online;
                vec![Effect::CancelTimer]
            }
            Input::Replaced { pid, why } => {
                let replaced = format!("replaced by a new process (pid {pid}) that was ready");
                let (cause, reason) = match why {
                    Some(why) => (why.cause, format!("{}; {replaced}", why.detail)),
                    None => (Cause::Reload, replaced),
                };
                self.push_exit(ExitRecord {
                    at_ms: now.wall_ms,
                    pid: self.pid,
                    uptime_ms: now.mono_ms.saturating_sub(self.started_mono_ms),
                    action: "reload".into(),
                    reason,
                    cause,
                    ..ExitRecord::default()
                });
                // A restart, its process already there.
                self.restart_pending = true;
                self.handle(spec, Input::Spawned { pid }, now);
                self.unstable_restarts = 0;
                self.prev_restart_delay_ms = 0;
                Vec::new()
            }
            Input::SpawnFailed { error } => {
                self.restart_pending = false;
                self.status = Status::Errored;
                self.pid = None;
                self.push_exit(ExitRecord {
                    at_ms: now.wall_ms,
                    action: "errored".into(),
                    reason: format!("could not start: {error}"),
                    cause: Cause::Spawn,
                    ..ExitRecord::default()
                });
                self.last_error = Some(error);
                self.failed_runs = self.failed_runs.saturating_add(1);
                Vec::new()
            }
            Input::ScheduledStart => self.on_scheduled_start(),
            Input::AutoRestart(why) => match self.status {
                Status::Launching | Status::Online => {
                    // Counted when the new process starts (`on_group_gone`, or `on_timer` after
                    // a memory loop's backoff): a user's stop meanwhile means no restart.
                    self.after_stop = AfterStop::Start;
                    let why = self.memory_loop(spec, why, now);
                    self.stop_why = Some(why);
                    self.begin_stop(spec)
                }
                _ => Vec::new(),
            },
            Input::Exited { code, signal } => self.on_exit(spec, code, signal, now),
            Input::GroupGone => self.on_group_gone(now),
            Input::TimerFired => self.on_timer(spec, now),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests;
