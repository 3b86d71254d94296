//! What goes into the machine and what comes out: the time ([`Now`]), what can happen
//! ([`Input`], a user's [`Lifecycle`] among them) and what the daemon must do ([`Effect`]).

use super::Why;

/// The current time, passed in by the caller. Durations are measured on `mono_ms` (never goes
/// back); `wall_ms` (ms since the Unix epoch) is only recorded for people to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (any origin).
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// What a user (or the daemon on their behalf) asks of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
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
    Lifecycle(Lifecycle),
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
    /// The app's schedule (`cron_restart`) fired while no process runs: start it, unless a user
    /// stopped it (a periodic job that ended on its own runs again; a user's stop pauses the
    /// schedule). Ignored while a process runs or a restart is pending: a schedule firing then
    /// is an [`Input::AutoRestart`].
    ScheduledStart,
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
