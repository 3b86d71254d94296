//! The desired shape of one app, after every config layer has been resolved.
//!
//! Here: [`AppSpec`] itself, its defaults and PM2's default values. Its parts, in `spec/`: what
//! a spec implies (`derived`: the command line, Node, the environment), the health check
//! (`health`), the listening address (`listen`), the small settings (`settings`: exec mode, log
//! type and rotation), and the checks every entry point makes on names and counts (`checks`).

mod checks;
mod derived;
mod health;
mod listen;
mod settings;
pub mod shared_env;

pub use checks::{
    check_app_name, check_instances, check_namespace, is_bidi_control, log_name, sanitize_log_name,
    AppNameError, TooManyInstances, MAX_INSTANCES,
};
pub use derived::JsRuntime;
pub use health::{HealthCheck, HealthProbe};
pub use listen::{BadListenAddress, ListenAddress};
pub use settings::{ExecMode, LogRotation, LogType};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Namespace of apps that did not ask for one (PM2's default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// PM2's default `listen_timeout` (ms).
pub const DEFAULT_LISTEN_TIMEOUT_MS: u64 = 3000;

/// PM2's default `instance_var`.
pub const DEFAULT_INSTANCE_VAR: &str = "NODE_APP_INSTANCE";

/// How long CPU use must stay over `max_cpu` before the app is restarted (ms).
pub const DEFAULT_MAX_CPU_WINDOW_MS: u64 = 10_000;

/// Quiet time after the last change of a watched file before the restart (ms): an edit burst
/// gives one restart.
pub const DEFAULT_WATCH_DELAY_MS: u64 = 500;

/// Which inherited (shell) variables an app leaves out: PM2's `filter_env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvFilter {
    /// Every one is passed on.
    #[default]
    KeepAll,
    /// None is (`filter_env: true`).
    DropAll,
    /// All but the one of this name (`filter_env: "NAME"`).
    Named(String),
    /// All but those whose name contains one of these texts (a list, `--filter-env`).
    Containing(Vec<String>),
}

impl EnvFilter {
    /// Whether nothing is left out.
    pub fn keeps_all(&self) -> bool {
        *self == EnvFilter::KeepAll
    }

    /// Whether the inherited variable `name` is passed on.
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            EnvFilter::KeepAll => true,
            EnvFilter::DropAll => false,
            EnvFilter::Named(dropped) => name != dropped,
            EnvFilter::Containing(texts) => !texts.iter().any(|text| name.contains(text.as_str())),
        }
    }
}

/// Everything the daemon needs to run one app. Built by `kelpie-config` (from the CLI's flags or
/// an ecosystem file), stored in the daemon's state and in the dump, sent over the wire.
///
/// Persisted and wire copies are read tolerantly (`#[serde(default)]`), so a state file written by
/// an older Kelpie still loads when fields are added.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppSpec {
    /// Name shown everywhere and used as a target; several instances share it.
    pub name: String,
    /// Group of apps that can be targeted together.
    pub namespace: String,
    /// Absolute path of the script or binary, or a shell command line when `interpreter` is a shell
    /// given `-c`.
    pub script: String,
    /// Arguments after the script.
    pub args: Vec<String>,
    /// Program that runs the script (`node`, `python3`, ...); `None` executes the script itself.
    pub interpreter: Option<String>,
    /// The app named no interpreter: Kelpie chose `interpreter` from the script (its extension,
    /// its `#!` line), so `jlist` shows what PM2's own choice would be (`exec_interpreter`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interpreter_auto: bool,
    /// Arguments for the interpreter, placed before the script (`--node-args`).
    pub interpreter_args: Vec<String>,
    /// `--node-args=null` cleared them: `jlist` then leaves `node_args` out, as PM2 does
    /// (its own scenarios check that), rather than showing `[]`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interpreter_args_cleared: bool,
    /// Run a Node app without Node's source maps (PM2's `disable_source_map_support`): by
    /// default Node apps get `--enable-source-maps`, so stack traces name the original sources.
    pub disable_source_map_support: bool,
    /// Working directory of the app (absolute).
    pub cwd: String,
    /// The CLI's environment when the app was started (or refreshed with `--update-env`).
    /// Shared: the apps started from one shell have one copy of it between them, and a list
    /// of specs writes it once ([`shared_env`]).
    #[serde(skip_serializing_if = "shared_env::left_out")]
    pub inherited_env: Arc<BTreeMap<String, String>>,
    /// Inherited variables the app leaves out (PM2's `filter_env`), whichever shell they
    /// come from (the start's, `--update-env`'s).
    #[serde(skip_serializing_if = "EnvFilter::keeps_all")]
    pub filter_env: EnvFilter,
    /// The config's `env` merged with the selected `env_<profile>`; wins over `inherited_env`.
    pub env: BTreeMap<String, String>,
    /// Names in `env` whose value the config gave as a JSON number or boolean (`PORT: 3000`):
    /// the process gets text, as always, but `jlist` shows them with their type, as PM2 does.
    #[serde(skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub env_typed: std::collections::BTreeSet<String>,
    /// Profile selected with `--env` when the app came from a file, for `describe`.
    pub env_profile: Option<String>,
    /// Number of instances (processes) to run.
    pub instances: u32,
    /// How instances are run.
    pub exec_mode: ExecMode,
    /// Restart the app when it exits on its own.
    pub autorestart: bool,
    /// Start the app when it is registered (false: registered as `stopped`).
    pub autostart: bool,
    /// A run shorter than this counts as an unstable restart (ms).
    pub min_uptime_ms: u64,
    /// Unstable restarts in a row before the app is `errored`.
    pub max_restarts: u32,
    /// Fixed delay before each automatic restart (ms).
    pub restart_delay_ms: u64,
    /// Initial delay of exponential backoff between restarts (ms); overrides `restart_delay_ms`.
    pub exp_backoff_restart_delay_ms: Option<u64>,
    /// Exit codes that mean "done": the app is not restarted after them.
    pub stop_exit_codes: Vec<i32>,
    /// Time between the stop signal and SIGKILL (ms).
    pub kill_timeout_ms: u64,
    /// Signal sent to the app's process group to stop it (`SIGINT` like PM2).
    pub kill_signal: String,
    /// Where stdout goes; `None` = `<home>/logs/<name>-out.log`.
    pub out_file: Option<String>,
    /// Where stderr goes; `None` = `<home>/logs/<name>-error.log`.
    pub error_file: Option<String>,
    /// One log file for all instances instead of a `-<pm_id>` suffix per instance.
    pub merge_logs: bool,
    /// Each instance's pid is written to this file while it runs (PM2's `pid_file`), with the
    /// `-<pm_id>` suffix when the log files get one.
    pub pid_file: Option<String>,
    /// The app asked for a number of instances (`instances`, `-i`), even one: as PM2 does, its
    /// log files get the `-<pm_id>` suffix (unless `merge_logs`) like a cluster app's, whatever
    /// the count.
    pub instances_given: bool,
    /// The `instances` of the ecosystem file the app was last started, restarted or reloaded
    /// from, as the file said it then. Applying the file again keeps the count `scale` set
    /// while the file still says this (PM2 never changes the count on a restart), and follows
    /// a file whose `instances` changed since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_instances: Option<u32>,
    /// Combined stdout+stderr file (`-l`); `Some("")` = `<home>/logs/<name>.log`.
    pub log_file: Option<String>,
    /// Prefix each line with the time in this dayjs-style format (`YYYY-MM-DD HH:mm:ss Z`).
    pub log_date_format: Option<String>,
    /// How lines are written to the files.
    pub log_type: LogType,
    /// Discard the output: no files, nothing kept for `logs`.
    pub disable_logs: bool,
    /// Rotation of this app's files.
    pub log_rotation: LogRotation,
    /// Restart the app gracefully when its process tree's resident memory goes over this many
    /// bytes.
    pub max_memory_restart: Option<u64>,
    /// Restart the app gracefully when its process tree uses more than this percent of one core
    /// (200 = two cores) for `max_cpu_window_ms`.
    pub max_cpu: Option<u32>,
    /// How long CPU use must stay over `max_cpu` (ms).
    pub max_cpu_window_ms: u64,
    /// At most this many processes (and threads) in the app's process tree at once: `pids.max`
    /// of its cgroup, so a fork bomb cannot take the machine. Only where the daemon has cgroups
    /// with the pids controller.
    pub max_processes: Option<u32>,
    /// Scheduling priority of the app's processes (-20 highest, 19 lowest; below 0 needs root).
    pub nice: Option<i32>,
    /// Run the app as this user (name or uid); the daemon must run as root.
    pub user: Option<String>,
    /// Run the app with this group (name or gid); the daemon must run as root. Default: the
    /// user's primary group when `user` is set.
    pub group: Option<String>,
    /// Restart the app on this schedule: a cron expression of 5 fields (minute hour day month
    /// weekday) or 6 (seconds first). Only running instances are restarted.
    pub cron_restart: Option<String>,
    /// The time zone `cron_restart` is read in: an IANA name (`Europe/Paris`) or `UTC`; `None`
    /// = the daemon's local time zone.
    pub cron_timezone: Option<String>,
    /// Absolute paths (files or directories, watched recursively) whose changes restart the app;
    /// empty = not watched.
    pub watch: Vec<String>,
    /// Globs of paths not to watch, besides `node_modules`, `.git` and the log files, which are
    /// never watched. A glob without `/` matches any path component; with one, the path relative
    /// to `cwd`.
    pub ignore_watch: Vec<String>,
    /// Quiet time after the last change before the restart (ms).
    pub watch_delay_ms: u64,
    /// Health check of each instance.
    pub health_check: Option<HealthCheck>,
    /// Once a process has sent `WATCHDOG=1` on its `NOTIFY_SOCKET`, it must send it again at
    /// least this often (ms) or it is restarted (systemd's `WatchdogSec`).
    pub watchdog_ms: Option<u64>,
    /// Apps (by name) that must be online, or healthy when they have a health check, before this
    /// one starts; it is stopped before them.
    pub depends_on: Vec<String>,
    /// The address Kelpie listens on for the app (`port`): it creates the socket once and hands
    /// it to every instance, so instances share it and a reload never leaves the port unserved.
    pub listen: Option<ListenAddress>,
    /// The instances bind the port themselves with `SO_REUSEPORT`; Kelpie owns no socket and
    /// counts an instance ready once it listens on the port.
    pub reuse_port: bool,
    /// Wait for an explicit ready signal: `process.send('ready')` (Node) or `READY=1` on
    /// `NOTIFY_SOCKET` (any language).
    pub wait_ready: bool,
    /// A line of output (regular expression) that means the instance is ready.
    pub ready_pattern: Option<String>,
    /// How long a starting instance may take to become ready (ms).
    pub listen_timeout_ms: u64,
    /// Stop by sending `shutdown` over the Node IPC channel instead of the kill signal.
    pub shutdown_with_message: bool,
    /// Name of the variable that holds the instance index (PM2's `NODE_APP_INSTANCE`).
    pub instance_var: String,
    /// A variable of `env` that each instance gets incremented by its index (`PORT`: 8000,
    /// 8001, ...).
    pub increment_var: Option<String>,
    /// Ecosystem file this app was declared in, if any.
    pub source_file: Option<String>,
    /// Read the git metadata of the app's directory for `jlist` and `describe` (PM2's
    /// `vizion`, on by default; saved specs without it read it as on).
    pub vizion: bool,
    /// Give a Node app the runtime metrics PM2's agent gives (PM2's `pmx`, on by default;
    /// saved specs without it read it as on).
    pub pmx: bool,
}

impl Default for AppSpec {
    fn default() -> Self {
        AppSpec {
            name: String::new(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            script: String::new(),
            args: Vec::new(),
            interpreter: None,
            interpreter_auto: false,
            interpreter_args: Vec::new(),
            interpreter_args_cleared: false,
            disable_source_map_support: false,
            cwd: String::new(),
            inherited_env: Arc::default(),
            filter_env: EnvFilter::KeepAll,
            env: BTreeMap::new(),
            env_typed: std::collections::BTreeSet::new(),
            env_profile: None,
            instances: 1,
            exec_mode: ExecMode::Fork,
            autorestart: true,
            autostart: true,
            min_uptime_ms: 1000,
            max_restarts: 16,
            restart_delay_ms: 0,
            exp_backoff_restart_delay_ms: None,
            stop_exit_codes: Vec::new(),
            kill_timeout_ms: 1600,
            kill_signal: "SIGINT".to_string(),
            out_file: None,
            error_file: None,
            merge_logs: false,
            instances_given: false,
            file_instances: None,
            pid_file: None,
            log_file: None,
            log_date_format: None,
            log_type: LogType::Raw,
            disable_logs: false,
            log_rotation: LogRotation::default(),
            max_memory_restart: None,
            max_cpu: None,
            max_cpu_window_ms: DEFAULT_MAX_CPU_WINDOW_MS,
            max_processes: None,
            nice: None,
            user: None,
            group: None,
            cron_restart: None,
            cron_timezone: None,
            watch: Vec::new(),
            ignore_watch: Vec::new(),
            watch_delay_ms: DEFAULT_WATCH_DELAY_MS,
            health_check: None,
            watchdog_ms: None,
            depends_on: Vec::new(),
            listen: None,
            reuse_port: false,
            wait_ready: false,
            ready_pattern: None,
            listen_timeout_ms: DEFAULT_LISTEN_TIMEOUT_MS,
            shutdown_with_message: false,
            instance_var: DEFAULT_INSTANCE_VAR.to_string(),
            increment_var: None,
            source_file: None,
            vizion: true,
            pmx: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_state_without_new_fields_still_loads() {
        let spec: AppSpec =
            serde_json::from_str(r#"{"name":"api","script":"/a.js"}"#).expect("tolerant decode");
        assert_eq!(spec.name, "api");
        assert_eq!(spec.kill_timeout_ms, 1600);
        assert_eq!(spec.max_restarts, 16);
        assert!(spec.vizion, "git metadata is read unless turned off");
    }
}
