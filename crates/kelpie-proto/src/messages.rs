//! The messages themselves.

use kelpie_core::{AppSpec, InstanceState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the request/response vocabulary. Bumped when a change would make an older peer
/// misread a message; the [`Hello`] exchange refuses a mismatch with a clear message.
pub const PROTOCOL_VERSION: u32 = 1;

/// First frame in each direction. Its shape must never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// Kelpie version of the sender (`CARGO_PKG_VERSION`).
    pub version: String,
}

impl Hello {
    /// The Hello of this build.
    pub fn current() -> Self {
        Hello {
            protocol: PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// What a command acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Every app.
    All,
    /// One instance by `pm_id`.
    Id(u32),
    /// Every instance whose name, or else whose namespace, is this.
    Name(String),
    /// Every instance whose name matches this regular expression (`/^api-/` on the command
    /// line).
    Pattern(String),
    /// A word that may be a script's path (`kelpie stop app.js`): the instances named `name`,
    /// else those whose script is `script` (absolute, resolved where the command was typed, as
    /// PM2 does), else the namespace `name`.
    NameOrScript {
        /// The word as typed.
        name: String,
        /// It as an absolute path.
        script: String,
    },
}

/// Settings a `restart` or `reload` can change, as PM2's do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SpecChanges {
    /// A new name for the app.
    pub name: Option<String>,
    /// New interpreter arguments (`--node-args`; empty = none).
    pub interpreter_args: Option<Vec<String>>,
    /// Watch the app's directory if it is not watched, else stop watching (`--watch`).
    pub toggle_watch: bool,
}

impl SpecChanges {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        *self == SpecChanges::default()
    }
}

/// A request from the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Is the daemon alive?
    Ping,
    /// Start apps. For each spec: a new name is created with `instances` instances; an existing
    /// name from an ecosystem file (`from_file`) is restarted with the new spec; an existing name
    /// that is stopped is started; one that runs is refused unless `force` (then it is duplicated).
    Start {
        /// Specs to start.
        apps: Vec<AppSpec>,
        /// Start a duplicate of a running app.
        force: bool,
        /// The specs come from an ecosystem file (PM2's smart start: restart what runs).
        from_file: bool,
    },
    /// Stop instances (they stay in the list).
    Stop {
        /// What to stop.
        targets: Vec<Target>,
    },
    /// Restart instances. With `update_env`, the inherited environment is replaced by this one.
    Restart {
        /// What to restart.
        targets: Vec<Target>,
        /// New inherited environment (`--update-env`).
        update_env: Option<BTreeMap<String, String>>,
    },
    /// Replace each instance's process by a new one without a gap (start the new one, wait
    /// until it is ready, stop the old one); instances without a Kelpie-owned port restart.
    /// The answer is an error naming every instance whose new process failed (its old process
    /// keeps running).
    Reload {
        /// What to reload.
        targets: Vec<Target>,
        /// Apps from an ecosystem file: their new config is applied first (instances added or
        /// removed to match), then the existing ones are reloaded.
        #[serde(default)]
        apps: Vec<kelpie_core::AppSpec>,
        /// New inherited environment (`--update-env`).
        update_env: Option<BTreeMap<String, String>>,
        /// Instances of one app replaced at once (at least 1).
        parallel: u32,
    },
    /// Change settings of instances' apps without restarting them (PM2's `restart app
    /// --name new --node-args ...` sends this, then the restart). Answered with the list.
    Change {
        /// Whose apps.
        targets: Vec<Target>,
        /// What changes.
        changes: SpecChanges,
    },
    /// Set the number of instances of an app.
    Scale {
        /// The app's name.
        name: String,
        /// How many it should have.
        count: ScaleCount,
    },
    /// Stop and forget instances.
    Delete {
        /// What to delete.
        targets: Vec<Target>,
    },
    /// Zero the restart counters.
    Reset {
        /// What to reset.
        targets: Vec<Target>,
    },
    /// Send a signal to the main process of instances.
    Signal {
        /// Signal name (`SIGUSR2`) or number.
        signal: String,
        /// Who gets it.
        targets: Vec<Target>,
    },
    /// Every instance with its state.
    List,
    /// Write the dump used by `resurrect`.
    Save {
        /// Overwrite a non-empty dump with an empty list.
        force: bool,
    },
    /// Start the apps of the dump that are not in the list.
    Resurrect,
    /// Stop every app, forget them, and exit.
    Kill,
    /// Stop every app, keep the list, and exit (the next daemon starts them again).
    Shutdown,
    /// Recent lines of instances, then (with `follow`) their new lines as they come. Answered
    /// with [`Response::LogLines`] frames, then [`Response::Done`] when not following.
    Logs {
        /// Whose lines (empty = all).
        targets: Vec<Target>,
        /// Lines of each stream of each instance to show first.
        lines: u32,
        /// Include stdout.
        out: bool,
        /// Include stderr.
        err: bool,
        /// Keep streaming new lines.
        follow: bool,
    },
    /// Empty the log files of instances (empty targets = all).
    Flush {
        /// Whose files.
        targets: Vec<Target>,
    },
    /// Close and reopen every log file (after an external logrotate).
    ReloadLogs,
    /// The configuration store (`kelpie set`, `get`, `unset`, `multiset`, `conf`). Answered with
    /// [`Response::Conf`].
    Conf(ConfRequest),
    /// Serve the web page, the HTTP API and `/metrics` (`kelpie web`), or stop serving them.
    /// Fields left out are taken from the `[web]` section of `kelpie.toml`, then the defaults
    /// (port 9615, host 127.0.0.1). Answered with [`Response::Done`] naming the URL.
    Web {
        /// TCP port.
        port: Option<u16>,
        /// Address to bind (an IP address or `localhost`).
        host: Option<String>,
        /// Bearer token the API will require (needed for any non-loopback address).
        token: Option<String>,
        /// On loopback without a token, answer the calls that change something without one
        /// too (`[web] open_loopback`).
        #[serde(default)]
        open_loopback: bool,
        /// Stop serving instead.
        stop: bool,
        /// Answer only with the token the running server requires (`kelpie web --show-token`).
        #[serde(default)]
        show_token: bool,
    },
    /// Start apps from PM2-shaped options, the way `kelpie start` does from a file: the daemon
    /// reads the config itself (the Node API sends this, so it needs no CLI). Answered like
    /// [`Request::Start`], with the config's warnings in `notes`.
    StartConfig {
        /// Where the config is.
        source: ConfigSource,
        /// The caller's working directory: relative paths are resolved from it.
        cwd: String,
        /// The caller's environment (becomes the apps' inherited environment).
        env: BTreeMap<String, String>,
        /// `env_<profile>` to apply (`--env`).
        #[serde(default)]
        profile: Option<String>,
        /// Only these apps of the config (`--only`, empty = all).
        #[serde(default)]
        only: Vec<String>,
        /// Start a duplicate of a running app.
        #[serde(default)]
        force: bool,
        /// Restart the apps that already run, as for an ecosystem file (always so for
        /// [`ConfigSource::File`]); else a running app's name is refused unless `force`.
        #[serde(default)]
        from_file: bool,
    },
    /// The list in PM2's `jlist` shape, answered with [`Response::Json`].
    Jlist {
        /// Show the values of secret-looking variables instead of masking them.
        #[serde(default)]
        show_secrets: bool,
    },
    /// Send a JSON message to instances' processes over their Node IPC channel (PM2's
    /// `sendDataToProcessId`): the process receives it with `process.on('message')`.
    SendMessage {
        /// Who gets it.
        targets: Vec<Target>,
        /// The message.
        message: serde_json::Value,
    },
    /// What happens to the processes from now on, as [`Response::Event`] frames, until the
    /// client closes the connection (the Node API's `launchBus`).
    Events,
}

/// Where a [`Request::StartConfig`] finds its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigSource {
    /// An ecosystem file (JSON, YAML, TOML, JavaScript), read by the daemon.
    File(String),
    /// A JSON document: an ecosystem (`{"apps": [...]}`), a list of apps or one app.
    Json(String),
}

/// Something that happened to a process (a [`Request::Events`] stream).
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
}

/// What a [`Request::Conf`] does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfRequest {
    /// Only answer with the store.
    Get,
    /// Set these keys, in order (`pm2-logrotate` values are checked first: one bad value
    /// changes nothing). Apps named by a key's section are restarted with the section in their
    /// environment.
    Set {
        /// `(key, value)` pairs.
        pairs: Vec<(String, String)>,
    },
    /// Remove a key (`all`: every key).
    Unset {
        /// The key.
        key: String,
    },
}

/// An app's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

impl LogStream {
    /// PM2's name (`out` / `err`), used in JSON log lines.
    pub fn pm2_name(self) -> &'static str {
        match self {
            LogStream::Out => "out",
            LogStream::Err => "err",
        }
    }
}

/// One line of an app's output, as sent to `kelpie logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLogLine {
    /// Instance id.
    pub pm_id: u32,
    /// App name.
    pub app_name: String,
    /// Which stream.
    pub stream: LogStream,
    /// When the daemon read it (ms since the epoch); `None` for lines read back from a file.
    pub at_ms: Option<i64>,
    /// The bytes, without the newline (exact, even when not UTF-8).
    pub bytes: LogBytes,
}

/// Bytes of a log line: a JSON string when they are UTF-8 (nearly always), else base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LogBytesRepr {
    Text(String),
    Base64 { b64: String },
}

impl Serialize for LogBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => LogBytesRepr::Base64 {
                b64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for LogBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        match LogBytesRepr::deserialize(deserializer)? {
            LogBytesRepr::Text(text) => Ok(LogBytes(text.into_bytes())),
            LogBytesRepr::Base64 { b64 } => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(LogBytes)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// State of one of an instance's log files, for `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFileInfo {
    /// `out`, `err` or `combined`.
    pub kind: String,
    /// The file.
    pub path: String,
    /// Lines that never reached it (writer behind, disk full, unwritable).
    pub dropped_lines: u64,
    /// The current problem writing it.
    pub error: Option<String>,
}

/// How one spec of a [`Request::Start`] was handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartOutcome {
    /// A new app with these ids.
    Created(Vec<u32>),
    /// An existing app, restarted with the new spec.
    Restarted(Vec<u32>),
    /// An existing, stopped app, started.
    Started(Vec<u32>),
}

/// The instance count `scale` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleCount {
    /// Exactly this many.
    To(u32),
    /// This many more.
    Up(u32),
    /// This many fewer (at least one is kept).
    Down(u32),
}

impl ScaleCount {
    /// Read `N`, `+N` or `-N`.
    pub fn parse(text: &str) -> Result<ScaleCount, String> {
        let text = text.trim();
        let number = |digits: &str| {
            digits
                .parse::<u32>()
                .map_err(|_| format!("expected N, +N or -N instances, got `{text}`"))
        };
        match text.as_bytes().first() {
            Some(b'+') => number(&text[1..]).map(ScaleCount::Up),
            Some(b'-') => number(&text[1..]).map(ScaleCount::Down),
            _ => number(text).map(ScaleCount::To),
        }
    }

    /// The count that results from `current` instances.
    pub fn apply(self, current: u32) -> u32 {
        match self {
            ScaleCount::To(n) => n,
            ScaleCount::Up(n) => current.saturating_add(n),
            ScaleCount::Down(n) => current.saturating_sub(n).max(1),
        }
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`].
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
    /// Answer to [`Request::Start`]: what happened per spec, and the list.
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
    /// Answer to [`Request::Conf`]: the store after the change.
    Conf {
        /// The whole store (a JSON object, as in `module_conf.json`).
        store: serde_json::Value,
        /// Instances restarted with new values in their environment.
        restarted: Vec<u32>,
        /// Things the user should know (the log rotation now in force...).
        notes: Vec<String>,
    },
    /// Answer to [`Request::Jlist`]: a JSON document.
    Json(serde_json::Value),
    /// One event of a [`Request::Events`] stream.
    Event(BusEvent),
    /// The command failed; nothing was changed.
    Error(WireError),
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
}
