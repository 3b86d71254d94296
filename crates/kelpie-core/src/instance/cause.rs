//! Why a process ended or was replaced: the [`Cause`] recorded with each exit, and [`Why`], an
//! automatic restart's cause with what was seen.

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Why {
    /// The trigger.
    pub cause: Cause,
    /// What was seen.
    pub detail: String,
    /// It held at the first reading of the process (a memory limit the app is over from its
    /// start): a start-up failure, not something that happened to a running app.
    pub from_start: bool,
}
