//! The states an instance is in, as people see them: its [`Status`] (PM2's names) and its
//! health check's last result ([`Health`]).

use serde::{Deserialize, Serialize};

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
