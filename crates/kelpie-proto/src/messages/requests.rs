//! What the CLI asks of the daemon ([`Request`]), with the settings a restart can change and
//! where a started config comes from.

use super::{ConfRequest, ScaleCount, Target};
use kelpie_core::AppSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// A new `autorestart` (`--no-autorestart`: `Some(false)`). Not written when `None`, so
    /// the other changes read as before to a daemon that does not know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autorestart: Option<bool>,
}

impl SpecChanges {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        *self == SpecChanges::default()
    }

    /// Make every change but the name to one app's `spec`. The name is the supervisor's to give
    /// (it checks it against the other apps and gives it to every instance of the app); a
    /// watch toggle turns every targeted instance one way, off when `watched` (any of them is
    /// watched now), else on (its directory). Beside the fields, so a change declared here is
    /// applied here (a test sets each field and sees the spec change).
    pub fn apply_to(&self, spec: &mut AppSpec, watched: bool) {
        if let Some(args) = &self.interpreter_args {
            spec.interpreter_args = args.clone();
            spec.interpreter_args_cleared = args.is_empty();
        }
        if let Some(autorestart) = self.autorestart {
            spec.autorestart = autorestart;
        }
        if self.toggle_watch {
            spec.watch = if watched {
                Vec::new()
            } else {
                vec![spec.cwd.clone()]
            };
        }
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
    Start(StartRequest),
    /// Stop instances (they stay in the list).
    Stop(Targets),
    /// Restart instances. With `update_env`, the inherited environment is replaced by this one.
    Restart(RestartRequest),
    /// Replace each instance's process by a new one without a gap (start the new one, wait
    /// until it is ready, stop the old one); instances without a Kelpie-owned port restart.
    /// The answer is an error naming every instance whose new process failed (its old process
    /// keeps running).
    Reload(ReloadRequest),
    /// Change settings of instances' apps without restarting them (PM2's `restart app
    /// --name new --node-args ...` sends this, then the restart). Answered with the list.
    Change(ChangeRequest),
    /// Set the number of instances of an app.
    Scale(ScaleRequest),
    /// Stop and forget instances.
    Delete(Targets),
    /// Zero the restart counters.
    Reset(Targets),
    /// Send a signal to the main process of instances.
    Signal(SignalRequest),
    /// Every instance with its state.
    List,
    /// The host's use (answered with [`Response::Host`](super::Response::Host)).
    Host,
    /// Write the dump used by `resurrect`.
    Save(SaveRequest),
    /// Start the apps of the dump that are not in the list.
    Resurrect,
    /// Stop every app, forget them, and exit.
    Kill,
    /// Stop every app, keep the list, and exit (the next daemon starts them again).
    Shutdown,
    /// Recent lines of instances, then (with `follow`) their new lines as they come. Answered
    /// with [`Response::LogLines`](super::Response::LogLines) frames, then [`Response::Done`](super::Response::Done) when not following.
    Logs(LogsRequest),
    /// Empty the log files of instances (empty targets = all, and the daemon's own log). A name
    /// that no listed app has empties the files a deleted app of that name left.
    Flush(FlushRequest),
    /// Close and reopen every log file (after an external logrotate).
    ReloadLogs,
    /// The configuration store (`kelpie set`, `get`, `unset`, `multiset`, `conf`). Answered with
    /// [`Response::Conf`](super::Response::Conf).
    Conf(ConfRequest),
    /// Serve the web page, the HTTP API and `/metrics` (`kelpie web`), or stop serving them.
    /// Fields left out are taken from the `[web]` section of `kelpie.toml`, then the defaults
    /// (port 9615, host 127.0.0.1). Answered with [`Response::Done`](super::Response::Done) naming the URL.
    Web(WebRequest),
    /// Start apps from PM2-shaped options, the way `kelpie start` does from a file: the daemon
    /// reads the config itself (the Node API sends this, so it needs no CLI). Answered like
    /// [`Request::Start`], with the config's warnings in `notes`.
    StartConfig(StartConfigRequest),
    /// The list in PM2's `jlist` shape, answered with [`Response::Json`](super::Response::Json).
    Jlist(JlistRequest),
    /// Send a JSON message to instances' processes over their Node IPC channel (PM2's
    /// `sendDataToProcessId`): the process receives it with `process.on('message')`.
    SendMessage(SendMessageRequest),
    /// Run an action the target's running processes registered with their PM2 SDK (`@pm2/io`'s
    /// `io.action`), as PM2's `trigger` does, and collect each one's reply.
    Trigger(TriggerRequest),
    /// What happens to the processes from now on, as [`Response::Event`](super::Response::Event) frames, until the
    /// client closes the connection (the Node API's `launchBus`).
    Events,
    /// The environment the first instance of the targets was given (PM2's `env <id>`): the
    /// inherited one, the config's over it, and Kelpie's variables, with nothing masked (the
    /// client masks secrets; the socket is its owner's alone). Answered with
    /// [`Response::Json`](super::Response::Json): `{"pm_id", "name", "env": {...}}`.
    Env(Targets),
    /// `send` and `attach`: text written to the stdin of each targeted fork-mode process (its
    /// FIFO in the home). Answered with `Done`, or an error naming who did not get it and why.
    SendLine(SendLineRequest),
    /// `profile cpu|heap` and `inspect`: look inside a running Node process through its
    /// Kelpie shim. Answered by the connection: [`Response::Inspecting`](super::Response::Inspecting)
    /// (which process), then for a profile its text in
    /// [`Response::ProfilePart`](super::Response::ProfilePart)s, then `Json` with how it ended
    /// (`{"bytes", "pause_ms"}`, or the inspector's `{"url"}`).
    Inspect(InspectRequest),
    /// `kelpie notify`: the notification targets of `[[notify]]` and their counters, or (`test`)
    /// kelpie.toml read again and a test message sent to each. Answered with
    /// [`Response::Json`](super::Response::Json): `{"targets": [...], "dropped"}`, with each
    /// test's `result` or `error`.
    Notify(NotifyRequest),
    /// `kelpie errors`: the exception inbox's groups (of one app's), the one seen last first,
    /// and with `clear` then forgotten. Answered with [`Response::Json`](super::Response::Json):
    /// `{"groups": [...], "cleared"}`.
    Errors(ErrorsRequest),
}

/// What `kelpie errors` asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorsRequest {
    /// Only the groups this app saw (its name).
    pub app: Option<String>,
    /// Forget them after answering.
    pub clear: bool,
}

/// What `kelpie notify` asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyRequest {
    /// The targets and their counters.
    Status,
    /// Read kelpie.toml's targets again, and send each a test message.
    Test,
    /// How a `kelpie deploy` (or revert) run here ended on each host, to tell the targets
    /// (sent by the CLI to the daemon it finds running; answered with `Done`).
    Deploy(DeployOutcome),
}

/// How a deploy ended, host by host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOutcome {
    /// The deploy section's environment (`production`).
    pub env: String,
    /// `deploy` or `revert`.
    pub action: String,
    /// Each host: its label, whether the new release is live there, and what was said.
    pub hosts: Vec<(String, bool, String)>,
}

/// What a [`Request::Stop`], [`Request::Delete`] or [`Request::Reset`] acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Targets {
    /// What to stop.
    pub targets: Vec<Target>,
}

/// What `restart` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRequest {
    /// What to restart.
    pub targets: Vec<Target>,
    /// New inherited environment (`--update-env`).
    pub update_env: Option<BTreeMap<String, String>>,
}

/// What a [`Request::Change`] changes, and whose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// Whose apps.
    pub targets: Vec<Target>,
    /// What changes.
    pub changes: SpecChanges,
}

/// What `scale` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// The app's name.
    pub name: String,
    /// How many it should have.
    pub count: ScaleCount,
}

/// What `sendSignal` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRequest {
    /// Signal name (`SIGUSR2`) or number.
    pub signal: String,
    /// Who gets it.
    pub targets: Vec<Target>,
}

/// What `save` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveRequest {
    /// Overwrite a non-empty dump with an empty list.
    pub force: bool,
}

/// What `flush` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushRequest {
    /// Whose files.
    pub targets: Vec<Target>,
    /// Also empty every file deleted apps left in the logs directory.
    #[serde(default)]
    pub deleted: bool,
}

/// What `jlist` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JlistRequest {
    /// Show the values of secret-looking variables instead of masking them.
    #[serde(default)]
    pub show_secrets: bool,
}

/// What `profile` and `inspect` ask of a Node process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectRequest {
    /// Whose process: an id, or an app (its lowest id).
    pub target: Target,
    /// What to do.
    pub action: InspectAction,
}

/// What [`InspectRequest`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InspectAction {
    /// A CPU profile (V8's `.cpuprofile`) of `duration_ms`, sampled every `interval_us`.
    CpuProfile {
        /// How long it samples.
        duration_ms: u64,
        /// Microseconds between samples.
        interval_us: u32,
    },
    /// A heap snapshot (V8's `.heapsnapshot`).
    HeapSnapshot,
    /// Open the Node inspector on 127.0.0.1:`port` (0: a free port) for `open_ms`.
    OpenInspector {
        /// The port.
        port: u16,
        /// How long it stays open.
        open_ms: u64,
    },
    /// Close the inspector `OpenInspector` opened.
    CloseInspector,
}

/// What `send` writes to apps' stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLineRequest {
    /// Who gets it.
    pub targets: Vec<Target>,
    /// The bytes, as written (the line and its separator).
    pub text: String,
}

/// What `sendDataToProcessId` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    /// Who gets it.
    pub targets: Vec<Target>,
    /// The message.
    pub message: serde_json::Value,
}

/// Where a [`Request::StartConfig`] finds its config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigSource {
    /// An ecosystem file (JSON, YAML, TOML, JavaScript), read by the daemon.
    File(String),
    /// A JSON document: an ecosystem (`{"apps": [...]}`), a list of apps or one app.
    Json(String),
}

/// What `start` sends: the specs, and what to do with apps that exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Specs to start (their shared inherited environment written once).
    #[serde(with = "kelpie_core::shared_env::specs")]
    pub apps: Vec<AppSpec>,
    /// Start a duplicate of a running app.
    pub force: bool,
    /// The specs come from an ecosystem file (PM2's smart start: restart what runs).
    pub from_file: bool,
}

/// What `reload` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadRequest {
    /// What to reload.
    pub targets: Vec<Target>,
    /// Apps from an ecosystem file: their new config is applied first (instances added or
    /// removed to match), then the existing ones are reloaded.
    #[serde(default)]
    pub apps: Vec<kelpie_core::AppSpec>,
    /// New inherited environment (`--update-env`).
    pub update_env: Option<BTreeMap<String, String>>,
    /// Instances of one app replaced at once (at least 1).
    pub parallel: u32,
}

/// What `logs` sends: whose lines, how many first, and whether to follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// Whose lines (empty = all).
    pub targets: Vec<Target>,
    /// Lines of each stream of each instance to show first.
    pub lines: u32,
    /// Include stdout.
    pub out: bool,
    /// Include stderr.
    pub err: bool,
    /// Keep streaming new lines.
    pub follow: bool,
}

/// What `web` sends: where to serve, or to stop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebRequest {
    /// TCP port.
    pub port: Option<u16>,
    /// Address to bind (an IP address or `localhost`).
    pub host: Option<String>,
    /// Bearer token the API will require (needed for any non-loopback address).
    pub token: Option<String>,
    /// On loopback without a token, answer the calls that change something without one
    /// too (`[web] open_loopback`).
    #[serde(default)]
    pub open_loopback: bool,
    /// Stop serving instead.
    pub stop: bool,
    /// Answer only with the token the running server requires (`kelpie web --show-token`).
    #[serde(default)]
    pub show_token: bool,
}

/// What the Node API's `start` sends: a config for the daemon to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartConfigRequest {
    /// Where the config is.
    pub source: ConfigSource,
    /// The caller's working directory: relative paths are resolved from it.
    pub cwd: String,
    /// The caller's environment (becomes the apps' inherited environment).
    pub env: BTreeMap<String, String>,
    /// `env_<profile>` to apply (`--env`).
    #[serde(default)]
    pub profile: Option<String>,
    /// Only these apps of the config (`--only`, empty = all).
    #[serde(default)]
    pub only: Vec<String>,
    /// Start a duplicate of a running app.
    #[serde(default)]
    pub force: bool,
    /// Restart the apps that already run, as for an ecosystem file (always so for
    /// [`ConfigSource::File`]); else a running app's name is refused unless `force`.
    #[serde(default)]
    pub from_file: bool,
}

/// What `trigger` sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// Whose processes.
    pub target: Target,
    /// The action's name.
    pub action: String,
    /// Its parameter, if any (sent as `{msg, opts, name}`).
    pub param: Option<String>,
    /// How long to wait for the replies (ms).
    pub timeout_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every change `restart` can ask for is applied by `apply_to` (the name, the supervisor's
    /// to give, aside): each field, set alone, changes a spec.
    #[test]
    fn every_change_but_the_name_is_applied_to_the_spec() {
        let all = SpecChanges {
            name: Some("renamed".into()),
            interpreter_args: Some(vec!["--inspect".into()]),
            toggle_watch: true,
            autorestart: Some(false),
        };
        let serde_json::Value::Object(fields) = serde_json::to_value(&all).expect("JSON") else {
            panic!("an object");
        };
        let spec = AppSpec {
            name: "api".into(),
            cwd: "/srv/api".into(),
            autorestart: true,
            ..AppSpec::default()
        };
        let mut applied = Vec::new();
        for (field, value) in fields {
            let mut one = serde_json::Map::new();
            one.insert(field.clone(), value);
            let alone: SpecChanges =
                serde_json::from_value(serde_json::Value::Object(one)).expect("one change");
            assert!(!alone.is_empty(), "{field} alone is a change");
            let mut changed = spec.clone();
            alone.apply_to(&mut changed, false);
            if changed != spec {
                applied.push(field);
            } else {
                assert_eq!(
                    field, "name",
                    "SpecChanges::{field} is not applied by apply_to"
                );
            }
        }
        assert_eq!(applied.len(), 3, "{applied:?}");
    }

    #[test]
    fn a_request_passed_as_a_struct_reads_and_writes_as_before() {
        // The variants held their fields inline until the structs; peers of either kind (a CLI
        // before `kelpie update`, the Node API) send and read the same JSON.
        let web = Request::Web(WebRequest {
            port: Some(9615),
            host: None,
            token: None,
            open_loopback: false,
            stop: false,
            show_token: true,
        });
        let json = serde_json::to_value(&web).expect("encode");
        assert_eq!(
            json,
            serde_json::json!({"Web": {"port": 9615, "host": null, "token": null,
                "open_loopback": false, "stop": false, "show_token": true}})
        );
        let older =
            r#"{"Logs": {"targets": [], "lines": 15, "out": true, "err": false, "follow": true}}"#;
        let read: Request = serde_json::from_str(older).expect("decode");
        assert_eq!(
            read,
            Request::Logs(LogsRequest {
                targets: Vec::new(),
                lines: 15,
                out: true,
                err: false,
                follow: true,
            })
        );
        let trigger =
            r#"{"Trigger": {"target": "All", "action": "km", "param": null, "timeout_ms": 5}}"#;
        assert!(matches!(
            serde_json::from_str::<Request>(trigger).expect("decode"),
            Request::Trigger(TriggerRequest { timeout_ms: 5, .. })
        ));
    }

    #[test]
    fn a_change_without_autorestart_reads_and_writes_as_before() {
        let rename = SpecChanges {
            name: Some("api".into()),
            ..SpecChanges::default()
        };
        assert_eq!(
            serde_json::to_value(&rename).expect("encode"),
            serde_json::json!({"name": "api", "interpreter_args": null, "toggle_watch": false})
        );
        let older = r#"{"name": null, "interpreter_args": null, "toggle_watch": true}"#;
        let read: SpecChanges = serde_json::from_str(older).expect("decode");
        assert_eq!(read.autorestart, None);
        assert!(read.toggle_watch);
        let off = SpecChanges {
            autorestart: Some(false),
            ..SpecChanges::default()
        };
        let json = serde_json::to_string(&off).expect("encode");
        assert_eq!(
            serde_json::from_str::<SpecChanges>(&json).expect("decode"),
            off
        );
    }
}
