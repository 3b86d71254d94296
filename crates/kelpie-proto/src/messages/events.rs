//! What happens to the processes, as a `launchBus` stream sends it ([`BusEvent`]).

use serde::{Deserialize, Serialize};

/// Something that happened to a process (a [`Request::Events`](super::Request::Events) stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusEvent {
    /// What happened: `online`, `exit`, `restart`, `stop`, `errored`, `delete`, or `message`
    /// (the process sent `{"type": "process:msg", ...}` over its IPC channel).
    pub event: String,
    /// The instance's id.
    pub pm_id: u32,
    /// Its app's name.
    pub name: String,
    /// Its app's namespace.
    pub namespace: String,
    /// Its status after the event.
    pub status: String,
    /// Its process, if one runs (for `exit`: the process that ended).
    pub pid: Option<u32>,
    /// Its automatic restarts so far.
    pub restart_time: u32,
    /// For `exit`: the exit code, when it exited by itself.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// For `exit`: the signal that ended it.
    #[serde(default)]
    pub signal: Option<String>,
    /// For `message`: what the process sent.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// For a change of state (`online`, `exit`, `restart`, `stop`, `errored`): the instance as
    /// PM2's `process:event` carries it, its `jlist` `pm2_env` without `env` (log paths, exec
    /// mode, instances, restarts, uptime...), when anyone follows the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<serde_json::Value>,
}
