//! The state machine of one instance (one process slot with a stable `pm_id`).
//!
//! The daemon's instance task feeds it [`Input`]s (a user command, the child's exit, a timer) and
//! carries out the [`Effect`]s it returns. All decisions live here: when an exit means restart,
//! wait, stop or give up; how a stop escalates to SIGKILL; what the counters become.

use crate::policy::{crash_loop_delay, next_backoff_delay, BACKOFF_RESET_AFTER_MS};
use crate::spec::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How many exits an instance remembers for `describe`.
pub const EXIT_HISTORY: usize = 10;

/// The states PM2 users know, with PM2's names on the wire and in `jlist`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Status {
    /// A process is being spawned.
    #[serde(rename = "launching")]
    Launching,
    /// The process runs.
    #[serde(rename = "online")]
    Online,
    /// The stop signal was sent; waiting for the process group to end.
    #[serde(rename = "stopping")]
    Stopping,
    /// Not running, on purpose (stopped, not restarted after exit, or never started).
    #[serde(rename = "stopped")]
    #[default]
    Stopped,
    /// Exited; a restart is scheduled after a delay.
    #[serde(rename = "waiting restart")]
    WaitingRestart,
    /// Gave up: too many unstable restarts, or the process could not be spawned.
    #[serde(rename = "errored")]
    Errored,
}

impl Status {
    /// PM2's spelling of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Launching => "launching",
            Status::Online => "online",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::WaitingRestart => "waiting restart",
            Status::Errored => "errored",
        }
    }

    /// A process exists (or is about to) for this instance.
    pub fn has_process(self) -> bool {
        matches!(self, Status::Launching | Status::Online | Status::Stopping)
    }

    /// Not running, and not about to run again by itself (stopped or errored).
    pub fn is_down(self) -> bool {
        matches!(self, Status::Stopped | Status::Errored)
    }

    /// The instance will not change state unless asked to.
    pub fn is_settled(self) -> bool {
        matches!(self, Status::Online | Status::Stopped | Status::Errored)
    }
}

/// The current time, passed in by the caller. Durations are measured on `mono_ms` (never goes
/// back); `wall_ms` (ms since the Unix epoch) is only recorded for people to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (any origin).
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// Why a process ended or was replaced, for `describe` and the event list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// It ended on its own with a failure (non-zero code or a signal).
    #[default]
    Crash,
    /// It ended on its own with code 0.
    Exit,
    /// A user command (stop, restart, delete) or the daemon stopping.
    User,
    /// A reload replaced it.
    Reload,
    /// It could not be started.
    Spawn,
    /// Its process tree used more memory than `max_memory_restart`.
    Memory,
    /// Its process tree used more CPU than `max_cpu` for `max_cpu_window`.
    Cpu,
    /// Its `cron_restart` schedule fired.
    Cron,
    /// A watched file changed.
    Watch,
    /// Its health check failed `failures` times in a row.
    Health,
    /// It stopped sending `WATCHDOG=1` within `watchdog`.
    Watchdog,
}

impl Cause {
    /// The word shown to people (`memory`, `cron`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Crash => "crash",
            Cause::Exit => "exit",
            Cause::User => "user",
            Cause::Reload => "reload",
            Cause::Spawn => "spawn",
            Cause::Memory => "memory",
            Cause::Cpu => "cpu",
            Cause::Cron => "cron",
            Cause::Watch => "watch",
            Cause::Health => "health",
            Cause::Watchdog => "watchdog",
        }
    }
}

/// An automatic restart's cause, with the detail people need (`tree RSS 312 MB over
/// max_memory_restart 200 MB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    /// The trigger.
    pub cause: Cause,
    /// What was seen.
    pub detail: String,
}

/// The result of an instance's health check, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No check has passed yet since the process started.
    Starting,
    /// The last check passed.
    Healthy,
    /// The last check(s) failed.
    Unhealthy,
}

impl Health {
    /// The word shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What a user (or the daemon on their behalf) asks of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Run it if it does not run.
    Start,
    /// Stop it and keep it stopped.
    Stop,
    /// Stop it if it runs, then run it again; counters of unstable runs are reset.
    Restart,
}

/// Everything that can happen to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A user command.
    Control(Control),
    /// The process asked for by [`Effect::Spawn`] was started.
    Spawned {
        /// Its pid (also its process group id).
        pid: u32,
    },
    /// The process asked for by [`Effect::Spawn`] was started but must say it is ready before it
    /// counts as online (`wait_ready`, a shared port, a ready pattern); `listen_timeout_ms`
    /// bounds the wait.
    Started {
        /// Its pid (also its process group id).
        pid: u32,
    },
    /// The process started with [`Input::Started`] is ready.
    Ready,
    /// A reload replaced the process by a new one, already ready; the old one is being stopped
    /// apart from this instance.
    Replaced {
        /// The new process's pid.
        pid: u32,
        /// Why, when the daemon reloaded it by itself (a limit, a watched file...).
        why: Option<Why>,
    },
    /// Restart the process because of `why` (a limit, a schedule, a watched file, a failed
    /// health check, a silent watchdog): like a user's restart, but the unstable-run counters
    /// are kept and the cause is recorded. Ignored when no process runs.
    AutoRestart(Why),
    /// The process asked for by [`Effect::Spawn`] could not be started.
    SpawnFailed {
        /// Why, for people.
        error: String,
    },
    /// The main process exited.
    Exited {
        /// Exit code, when it exited normally.
        code: Option<i32>,
        /// Signal name, when a signal ended it.
        signal: Option<String>,
    },
    /// No process of the instance's group is left (asked for by [`Effect::WatchGroup`]).
    GroupGone,
    /// The timer armed by [`Effect::ArmTimer`] fired.
    TimerFired,
}

/// What the daemon must do; the machine never does I/O itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start a new process, then report [`Input::Spawned`] or [`Input::SpawnFailed`].
    Spawn,
    /// Send this signal (the app's stop signal) to the whole process group.
    SignalGroup(String),
    /// Send SIGKILL to the whole process group.
    KillGroup,
    /// Report [`Input::GroupGone`] once no process of the group is left.
    WatchGroup,
    /// Arm the instance's single timer to fire after this many ms (replacing any armed one).
    ArmTimer(u64),
    /// Disarm the timer.
    CancelTimer,
}

/// One exit of the main process, kept for `describe` and crash forensics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ExitRecord {
    /// When it exited (ms since the Unix epoch).
    pub at_ms: u64,
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Signal name, when a signal ended it.
    pub signal: Option<String>,
    /// How long that run lasted (ms).
    pub uptime_ms: u64,
    /// What Kelpie did about it: `restart`, `waiting restart`, `stopped`, `errored`, `reload`.
    pub action: String,
    /// Why it ended.
    pub cause: Cause,
    /// Why, in a few words (`stopped by user`, `crashed`, `exit code in stop_exit_codes`...).
    pub reason: String,
    /// The process that ended, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Whether the kernel's OOM killer ended it, and how Kelpie knows (see
    /// [`crate::forensics::OomKill`]); `None`: not that Kelpie could tell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom: Option<crate::forensics::OomKill>,
    /// The last lines it wrote to stderr (bounded: [`crate::forensics::stderr_tail`]), filled in
    /// shortly after the exit, once its stderr pipe was read to the end.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
}

/// What to do once a stop in progress has completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum AfterStop {
    #[default]
    StayStopped,
    Start,
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
    /// The last exits, oldest first.
    pub exits: VecDeque<ExitRecord>,
    /// Why the instance last failed to spawn, if it did.
    pub last_error: Option<String>,
    /// Its health check's last result, when it has one and a process runs.
    pub health: Option<Health>,
    /// The last failed check's reason, while unhealthy or failing.
    pub health_detail: Option<String>,
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
}

impl InstanceState {
    /// A new, stopped instance created now.
    pub fn new(now: Now) -> Self {
        InstanceState {
            created_at_ms: now.wall_ms,
            ..InstanceState::default()
        }
    }

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
            Status::Stopping => self.after_stop == AfterStop::Start,
            Status::Stopped | Status::Errored => false,
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
        self.created_at_ms = now.wall_ms;
    }

    /// Apply one input and return the effects to carry out, in order.
    pub fn handle(&mut self, spec: &AppSpec, input: Input, now: Now) -> Vec<Effect> {
        match input {
            Input::Control(control) => self.on_control(spec, control, now),
            Input::Spawned { pid } => {
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
                self.handle(spec, Input::Spawned { pid }, now);
                self.restart_time += 1;
                self.unstable_restarts = 0;
                self.prev_restart_delay_ms = 0;
                Vec::new()
            }
            Input::SpawnFailed { error } => {
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
                Vec::new()
            }
            Input::AutoRestart(why) => match self.status {
                Status::Launching | Status::Online => {
                    self.restart_time += 1;
                    self.after_stop = AfterStop::Start;
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

    fn on_control(&mut self, spec: &AppSpec, control: Control, now: Now) -> Vec<Effect> {
        // A user's command overrides the reason of an automatic restart in progress.
        self.stop_why = None;
        match control {
            Control::Start => match self.status {
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
            Control::Stop => match self.status {
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
            Control::Restart => {
                self.unstable_restarts = 0;
                self.prev_restart_delay_ms = 0;
                self.created_at_ms = now.wall_ms;
                match self.status {
                    Status::Launching | Status::Online => {
                        self.restart_time += 1;
                        self.after_stop = AfterStop::Start;
                        self.begin_stop(spec)
                    }
                    Status::Stopping => {
                        self.restart_time += 1;
                        self.after_stop = AfterStop::Start;
                        Vec::new()
                    }
                    Status::WaitingRestart => {
                        self.restart_time += 1;
                        let mut effects = vec![Effect::CancelTimer];
                        effects.extend(self.spawn());
                        effects
                    }
                    Status::Stopped | Status::Errored => self.spawn(),
                }
            }
        }
    }

    fn begin_stop(&mut self, spec: &AppSpec) -> Vec<Effect> {
        self.status = Status::Stopping;
        self.leader_exited = false;
        self.awaiting_ready = false;
        vec![
            Effect::SignalGroup(spec.kill_signal.clone()),
            Effect::ArmTimer(spec.kill_timeout_ms),
        ]
    }

    fn spawn(&mut self) -> Vec<Effect> {
        self.status = Status::Launching;
        self.pid = None;
        vec![Effect::Spawn]
    }

    fn on_exit(
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
            // The stop completes when the whole group is gone, not only its leader.
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
                AfterStop::StayStopped => "stopped".into(),
            };
            self.push_exit(record);
            return vec![Effect::WatchGroup];
        }

        // The app ended on its own: whatever it left behind in its group goes with it, so a
        // restarted app never finds its port held by an orphaned child.
        let mut effects = vec![Effect::KillGroup];
        record.reason = describe_exit(code, record.signal.as_deref());
        record.cause = if code == Some(0) && record.signal.is_none() {
            Cause::Exit
        } else {
            Cause::Crash
        };

        if !spec.autorestart {
            self.status = Status::Stopped;
            record.action = "stopped".into();
            record.reason.push_str(" (autorestart off)");
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

        let delay_ms = match spec.exp_backoff_restart_delay_ms {
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
        };
        if delay_ms > 0 {
            self.status = Status::WaitingRestart;
            record.action = "waiting restart".into();
            self.push_exit(record);
            effects.push(Effect::ArmTimer(delay_ms));
        } else {
            record.action = "restart".into();
            self.push_exit(record);
            self.restart_time += 1;
            effects.extend(self.spawn());
        }
        effects
    }

    fn on_group_gone(&mut self, _now: Now) -> Vec<Effect> {
        if self.status != Status::Stopping || !self.leader_exited {
            return Vec::new();
        }
        let mut effects = vec![Effect::CancelTimer];
        match self.after_stop {
            AfterStop::Start => {
                self.after_stop = AfterStop::StayStopped;
                effects.extend(self.spawn());
            }
            AfterStop::StayStopped => self.status = Status::Stopped,
        }
        effects
    }

    fn on_timer(&mut self, spec: &AppSpec, _now: Now) -> Vec<Effect> {
        match self.status {
            // Not ready in time at start: online anyway, as in PM2, but said. (A reload does
            // not get here: it fails instead, and the old process keeps serving.)
            Status::Launching if self.awaiting_ready => {
                self.awaiting_ready = false;
                self.status = Status::Online;
                self.last_error = Some(format!(
                    "not ready within listen_timeout ({} ms); counted as online",
                    spec.listen_timeout_ms
                ));
                Vec::new()
            }
            // kill_timeout is over: whatever is left of the group is killed.
            Status::Stopping => vec![Effect::KillGroup],
            Status::WaitingRestart => {
                self.restart_time += 1;
                self.spawn()
            }
            _ => Vec::new(),
        }
    }

    /// Add what was seen of the OOM killer to the record of process `pid`'s exit; false when
    /// no record of it is kept. Only an exit on its own can be the OOM killer's.
    pub fn record_oom(&mut self, pid: u32, seen: crate::forensics::OomEvidence) -> bool {
        let Some(record) = self.exits.iter_mut().rev().find(|e| e.pid == Some(pid)) else {
            return false;
        };
        let on_its_own = matches!(record.cause, Cause::Crash | Cause::Exit);
        record.oom = crate::forensics::oom_verdict(on_its_own, record.signal.as_deref(), seen);
        if let Some(oom) = record.oom {
            record.reason = format!("{} ({})", record.reason, oom.describe());
        }
        true
    }

    /// Add the last lines process `pid` wrote to stderr to the record of its exit (bounded by
    /// the caller with [`crate::forensics::stderr_tail`]); false when no record of it is kept.
    pub fn record_stderr_tail(&mut self, pid: u32, lines: Vec<String>) -> bool {
        match self.exits.iter_mut().rev().find(|e| e.pid == Some(pid)) {
            Some(record) => {
                record.stderr_tail = lines;
                true
            }
            None => false,
        }
    }

    fn push_exit(&mut self, record: ExitRecord) {
        if self.exits.len() == EXIT_HISTORY {
            self.exits.pop_front();
        }
        self.exits.push_back(record);
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

#[cfg(test)]
mod tests;
