//! The daemon's persisted state: every app, its spec and counters.

use kelpie_core::{AppSpec, InstanceState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Current format of `state.json`.
pub const STATE_VERSION: u32 = 1;

/// Content of `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    /// Format version.
    pub version: u32,
    /// Next `pm_id` to hand out.
    pub next_id: u32,
    /// Every instance.
    pub apps: Vec<PersistedInstance>,
}

/// One instance as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersistedInstance {
    /// Its id.
    pub pm_id: u32,
    /// Its index among its app's instances.
    #[serde(default)]
    pub instance: u32,
    /// Its app's spec.
    pub spec: Arc<AppSpec>,
    /// Its state when written.
    pub state: InstanceState,
    /// Whether it should run (a new daemon starts it).
    pub run: bool,
    /// Start time (clock ticks after boot) of `state.pid`, to recognise that exact process later
    /// even if the pid number has been reused.
    #[serde(default)]
    pub pid_start_ticks: Option<u64>,
}
