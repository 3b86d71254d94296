//! What the daemon answers ([`Response`]): the list of processes ([`ProcessInfo`]), what a start
//! did, a message, or an error with its kind.

use super::{BusEvent, LogFileInfo, WireLogLine};
use kelpie_core::{AppSpec, InstanceState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`](super::Request::Ping).
    Pong {
        /// Daemon pid.
        pid: u32,
        /// Daemon version.
        version: String,
        /// Daemon uptime (ms).
        uptime_ms: u64,
    },
    /// The current list (answer to most commands, so the CLI can print the table).
    Processes(Vec<ProcessInfo>),
    /// Answer to [`Request::Start`](super::Request::Start): what happened per spec, and the list.
    Started {
        /// One outcome per requested spec, in order.
        outcomes: Vec<StartOutcome>,
        /// The list after the start.
        processes: Vec<ProcessInfo>,
        /// Things the user should know (a backup dump was used...).
        #[serde(default)]
        notes: Vec<String>,
        /// Apps that were registered but not started, and why (an app they depend on did not
        /// come up).
        #[serde(default)]
        failures: Vec<String>,
    },
    /// A command that has nothing to show succeeded, with a message for people.
    Done(String),
    /// Lines for `logs` (several of these may follow one request).
    LogLines {
        /// The lines, in arrival order.
        lines: Vec<WireLogLine>,
        /// Lines this client missed just before these because it read too slowly.
        skipped: u64,
    },
    /// Answer to [`Request::Conf`](super::Request::Conf): the store after the change.
    Conf {
        /// The whole store (a JSON object, as in `module_conf.json`).
        store: serde_json::Value,
        /// Instances restarted with new values in their environment.
        restarted: Vec<u32>,
        /// Things the user should know (the log rotation now in force...).
        notes: Vec<String>,
    },
    /// Answer to [`Request::Jlist`](super::Request::Jlist): a JSON document.
    Json(serde_json::Value),
    /// Answer to [`Request::Host`](super::Request::Host): the host's use, once the daemon has
    /// sampled it twice (a second after it started).
    Host(Option<super::HostMetrics>),
    /// Answer to [`Request::Trigger`](super::Request::Trigger).
    Triggered(Triggered),
    /// One event of a [`Request::Events`](super::Request::Events) stream.
    Event(BusEvent),
    /// Answer to [`Request::Inspect`](super::Request::Inspect): the process it looks into
    /// (what follows comes from it).
    Inspecting {
        /// Its id.
        pm_id: u32,
        /// Its app.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// Part of a profile's text (a `.cpuprofile` or `.heapsnapshot`), in order.
    ProfilePart(String),
    /// The command failed; nothing was changed.
    Error(WireError),
}

/// How one spec of a [`Request::Start`](super::Request::Start) was handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartOutcome {
    /// A new app with these ids.
    Created(Vec<u32>),
    /// An existing app, restarted with the new spec.
    Restarted(Vec<u32>),
    /// An existing, stopped app, started.
    Started(Vec<u32>),
}

/// Broad class of a failure, so the CLI can pick an exit code or a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A target names no app.
    NotFound,
    /// The request makes no sense in the current state (app already running...).
    Conflict,
    /// The request itself is invalid.
    Invalid,
    /// The daemon failed to do something (I/O...).
    Internal,
    /// The peers do not speak the same protocol.
    VersionMismatch,
    /// The client may not give this daemon orders (another user's daemon).
    PermissionDenied,
    /// A kind added by a newer daemon than this client knows.
    #[serde(other)]
    Unknown,
}

/// A failure as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// Class of failure.
    pub kind: ErrorKind,
    /// Complete message for people.
    pub message: String,
}

/// One instance as shown by `list`, `jlist` and `describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Stable id of the instance.
    pub pm_id: u32,
    /// 0-based index among the instances of its app (`NODE_APP_INSTANCE`).
    pub instance: u32,
    /// The app's spec.
    pub spec: AppSpec,
    /// Its observed state.
    pub state: InstanceState,
    /// Resident memory of the main process (bytes), 0 when not running.
    pub memory: u64,
    /// CPU use of the main process since the last sample (percent of one core).
    pub cpu: f64,
    /// How long the current process has run (ms), 0 when not running.
    pub uptime_ms: u64,
    /// Resolved stdout log path.
    pub out_log: String,
    /// Resolved stderr log path.
    pub err_log: String,
    /// User the app runs as.
    pub username: String,
    /// Its log files and how writing them goes.
    #[serde(default)]
    pub log_files: Vec<LogFileInfo>,
    /// The last `STATUS=` line its current (or last) process sent on `NOTIFY_SOCKET`
    /// (systemd's status text), at most 256 bytes. Not persisted.
    #[serde(default)]
    pub status_text: Option<String>,
    /// The metrics its running process sent on `NOTIFY_SOCKET` as
    /// `X_KELPIE_METRIC=<name>=<number>`: the last value of each, by name (Prometheus-safe
    /// names, at most 32). Cleared when the process ends. Not persisted.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// What its running process's PM2 SDK (`@pm2/io`, pmx, tx2) said over its IPC channel:
    /// metrics, actions, options, Node version. Not persisted.
    #[serde(default)]
    pub sdk: kelpie_core::SdkState,
    /// Its running process's page faults and context switches, read by the daemon from /proc
    /// every few seconds while it runs (none before the first reading). Not persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counters: Option<ProcessCounters>,
}

/// How often an instance's main process was held up by the kernel, each since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessCounters {
    /// Page faults served without a disk read (the whole process).
    pub minor_faults: u64,
    /// Page faults that read from disk (the whole process).
    pub major_faults: u64,
    /// Times its main thread gave the CPU up to wait (for Node, the event loop).
    pub voluntary_switches: u64,
    /// Times the kernel took the CPU from its main thread.
    pub involuntary_switches: u64,
}

/// What a `trigger` did: who was sent the action, and what each answered in time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Triggered {
    /// The action.
    pub action: String,
    /// The processes sent the action (those of the target that run and registered it).
    pub received: Vec<TriggerReply>,
    /// Each reply, in arrival order: `received` entries with their `reply` set.
    pub replies: Vec<TriggerReply>,
}

/// One process a `trigger` reached, and its reply.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TriggerReply {
    /// Its instance.
    pub pm_id: u32,
    /// Its app's name.
    pub name: String,
    /// Its app's namespace.
    pub namespace: String,
    /// What the action returned (the SDK's `axm:reply` `return`); null until it replied.
    pub reply: serde_json::Value,
}

impl Triggered {
    /// The instances that did not reply.
    pub fn silent(&self) -> Vec<u32> {
        self.received
            .iter()
            .map(|r| r.pm_id)
            .filter(|id| !self.replies.iter().any(|r| r.pm_id == *id))
            .collect()
    }
}
