//! The desired shape of one app, after every config layer has been resolved.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Namespace of apps that did not ask for one (PM2's default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// How instances of an app are run. Cluster mode (shared listening socket) arrives with the
/// cluster issue; until then both modes run plain processes and differ only in how they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// One process per instance, started directly (PM2's `fork_mode`).
    #[default]
    Fork,
    /// Instances sharing one port (PM2's `cluster_mode`).
    Cluster,
}

impl ExecMode {
    /// The name PM2 uses in `jlist` (`fork_mode` / `cluster_mode`).
    pub fn pm2_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork_mode",
            ExecMode::Cluster => "cluster_mode",
        }
    }

    /// The short name shown by `list` (`fork` / `cluster`).
    pub fn short_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        }
    }
}

/// How each line is written to an app's log files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogType {
    /// The app's bytes as they are (with a date prefix when `log_date_format` is set).
    #[default]
    Raw,
    /// One JSON object per line: `message`, `timestamp`, `type`, `process_id`, `app_name`.
    Json,
}

/// Log rotation settings of one app; each `None` falls back to the daemon's setting
/// (`<home>/kelpie.toml`, then the built-in default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LogRotation {
    /// Rotate a file once it reaches this many bytes (0 = never by size).
    pub max_size: Option<u64>,
    /// Rotated files kept per log file.
    pub retain: Option<u32>,
    /// Gzip rotated files.
    pub compress: Option<bool>,
    /// Rotate at each boundary of this period in local time (86 400 000 = at midnight; 0 = never
    /// by time).
    pub interval_ms: Option<u64>,
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
    /// Arguments for the interpreter, placed before the script (`--node-args`).
    pub interpreter_args: Vec<String>,
    /// Working directory of the app (absolute).
    pub cwd: String,
    /// The CLI's environment when the app was started (or refreshed with `--update-env`).
    pub inherited_env: BTreeMap<String, String>,
    /// The config's `env` merged with the selected `env_<profile>`; wins over `inherited_env`.
    pub env: BTreeMap<String, String>,
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
    /// Memory limit in bytes (parsed and shown; enforced by the health issue).
    pub max_memory_restart: Option<u64>,
    /// Ecosystem file this app was declared in, if any.
    pub source_file: Option<String>,
}

impl Default for AppSpec {
    fn default() -> Self {
        AppSpec {
            name: String::new(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            script: String::new(),
            args: Vec::new(),
            interpreter: None,
            interpreter_args: Vec::new(),
            cwd: String::new(),
            inherited_env: BTreeMap::new(),
            env: BTreeMap::new(),
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
            log_file: None,
            log_date_format: None,
            log_type: LogType::Raw,
            disable_logs: false,
            log_rotation: LogRotation::default(),
            max_memory_restart: None,
            source_file: None,
        }
    }
}

impl AppSpec {
    /// The command line that runs one instance: interpreter, its args, the script, the app args.
    pub fn command_line(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(interpreter) = &self.interpreter {
            argv.push(interpreter.clone());
            argv.extend(self.interpreter_args.iter().cloned());
        }
        argv.push(self.script.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// The environment an instance gets, before Kelpie's own variables are added: the inherited
    /// environment, overridden by the config's.
    pub fn merged_env(&self) -> BTreeMap<String, String> {
        let mut env = self.inherited_env.clone();
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// PM2's file-name sanitising of app names: anything but `[A-Za-z0-9.-]` becomes `-`.
pub fn sanitize_log_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_puts_interpreter_and_its_args_first() {
        let spec = AppSpec {
            script: "/srv/app.js".into(),
            interpreter: Some("node".into()),
            interpreter_args: vec!["--max-old-space-size=64".into()],
            args: vec!["--port".into(), "80".into()],
            ..AppSpec::default()
        };
        assert_eq!(
            spec.command_line(),
            [
                "node",
                "--max-old-space-size=64",
                "/srv/app.js",
                "--port",
                "80"
            ]
        );
    }

    #[test]
    fn config_env_wins_over_inherited_env() {
        let mut spec = AppSpec::default();
        spec.inherited_env.insert("A".into(), "shell".into());
        spec.inherited_env.insert("B".into(), "shell".into());
        spec.env.insert("B".into(), "config".into());
        let env = spec.merged_env();
        assert_eq!(env["A"], "shell");
        assert_eq!(env["B"], "config");
    }

    #[test]
    fn old_state_without_new_fields_still_loads() {
        let spec: AppSpec =
            serde_json::from_str(r#"{"name":"api","script":"/a.js"}"#).expect("tolerant decode");
        assert_eq!(spec.name, "api");
        assert_eq!(spec.kill_timeout_ms, 1600);
        assert_eq!(spec.max_restarts, 16);
    }

    #[test]
    fn log_names_are_sanitized_like_pm2() {
        assert_eq!(sanitize_log_name("my app/v1.2"), "my-app-v1.2");
    }
}
