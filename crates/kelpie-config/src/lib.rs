//! Kelpie's configuration: ecosystem files (JSON, YAML, TOML, JavaScript) and `kelpie start`
//! flags, validated and resolved into [`kelpie_core::AppSpec`]s.
//!
//! Everything wrong with a file is reported at once ([`ConfigError::Invalid`]). Keys PM2 would
//! ignore (unknown fields, PM2 fields Kelpie does not implement) are accepted with a warning so
//! existing files keep working; [`Loaded::strict`] turns those warnings into an error.
#![warn(missing_docs)]

mod build;
mod convert;
mod daemon_settings;
mod dependencies;
mod env;
mod errors;
mod fields;
mod formats;
mod health;
mod interpreter;
mod json5;
mod load;
pub mod module_conf;
mod node;
mod normalize;
mod paths;
mod script;
mod serve;
mod template;
mod units;
mod words;

pub use daemon_settings::{
    check_token, stored_web_token, DaemonSettings, LogDefaults, WebSettings, DEFAULT_WEB_PORT,
};
pub use errors::ConfigError;
pub use formats::is_ecosystem_file;
pub use load::{
    app_names, app_names_in_stdin, from_script, load_file, load_stdin, serve_app, STDIN,
};
pub use paths::{absolutize, which};
pub use serve::{
    default_name as serve_default_name, DEFAULT_PORT as SERVE_DEFAULT_PORT, SERVE_SCRIPT,
    STATIC_SERVER_COMMAND,
};
pub use template::example_ecosystem;
pub use units::{parse_bytes, parse_duration_ms};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// Context of one CLI invocation.
#[derive(Debug, Clone, Default)]
pub struct LoadContext {
    /// The CLI's working directory, for relative paths.
    pub cwd: PathBuf,
    /// The CLI's environment (becomes `AppSpec::inherited_env`; its `PATH` and `HOME` are used
    /// for lookups).
    pub env: BTreeMap<String, String>,
    /// `--env <profile>`: selects `env_<profile>`.
    pub profile: Option<String>,
    /// `--only api,worker`, already split on commas.
    pub only: Vec<String>,
}

impl LoadContext {
    /// `$PATH` for command lookups: the CLI's, else this process's, else a conventional one.
    pub(crate) fn path_var(&self) -> OsString {
        match self.env.get("PATH") {
            Some(path) => OsString::from(path),
            None => std::env::var_os("PATH")
                .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin")),
        }
    }

    /// `$HOME`, for `~` in paths.
    pub(crate) fn home(&self) -> Option<&str> {
        self.env.get("HOME").map(String::as_str)
    }
}

/// The apps of one file or command, and what the user should know about them.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Resolved specs: in file order, except that an app's dependencies (`depends_on`, among
    /// the apps of the same file) come before it.
    pub apps: Vec<kelpie_core::AppSpec>,
    /// Complete messages (ignored fields, missing profiles), to print before starting.
    pub warnings: Vec<String>,
}

impl Loaded {
    /// Strict mode (`kelpie start --strict`, or `strict = true` in `kelpie.toml`): any warning
    /// is an error ([`ConfigError::Strict`]), so nothing is started from a file Kelpie would
    /// read differently from what its author meant.
    pub fn strict(self) -> Result<Loaded, ConfigError> {
        if self.warnings.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Strict {
                warnings: self.warnings,
            })
        }
    }
}

/// Options for starting a single script/command from CLI flags (`None` = not given). Values
/// are the flags' text; they are validated like the same fields in a file.
#[derive(Debug, Clone, Default)]
pub struct ScriptOptions {
    /// `--name`.
    pub name: Option<String>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--cwd` (relative to the CLI's working directory).
    pub cwd: Option<String>,
    /// `--interpreter` (`none` runs the script directly).
    pub interpreter: Option<String>,
    /// `--interpreter-args` / `--node-args`, split on spaces (quote-aware).
    pub interpreter_args: Option<String>,
    /// Arguments after `--`.
    pub args: Vec<String>,
    /// `-i` / `--instances` (`max`, a number, or `-N`).
    pub instances: Option<String>,
    /// `--no-autorestart` gives `Some(false)`.
    pub autorestart: Option<bool>,
    /// `--no-autostart` gives `Some(false)`.
    pub autostart: Option<bool>,
    /// `--kill-timeout` (duration).
    pub kill_timeout: Option<String>,
    /// `--restart-delay` (duration).
    pub restart_delay: Option<String>,
    /// `--exp-backoff-restart-delay` (duration).
    pub exp_backoff_restart_delay: Option<String>,
    /// `--max-restarts`.
    pub max_restarts: Option<String>,
    /// `--min-uptime` (duration).
    pub min_uptime: Option<String>,
    /// `--stop-exit-codes`.
    pub stop_exit_codes: Vec<String>,
    /// `--max-memory-restart` (size).
    pub max_memory_restart: Option<String>,
    /// `--kill-signal`.
    pub kill_signal: Option<String>,
    /// `-o` / `--output`.
    pub out_file: Option<String>,
    /// `-e` / `--error`.
    pub error_file: Option<String>,
    /// `--merge-logs`.
    pub merge_logs: bool,
    /// `-l` / `--log [path]`: `Some("")` without a path (the default combined file).
    pub log_file: Option<String>,
    /// `--log-date-format`.
    pub log_date_format: Option<String>,
    /// `--time` (the same as `time: true`: an ISO-like date prefix).
    pub time: bool,
    /// `--log-type` (`raw` or `json`).
    pub log_type: Option<String>,
    /// `--disable-logs`.
    pub disable_logs: bool,
    /// `--log-max-size` (size; `0` = never by size).
    pub log_max_size: Option<String>,
    /// `--log-retain`.
    pub log_retain: Option<String>,
    /// `--no-log-compress` gives `Some(false)`.
    pub log_compress: Option<bool>,
    /// `--log-rotate-interval` (`daily`, `hourly`, `never` or a duration).
    pub log_rotate_interval: Option<String>,
    /// `--port` (`3000`, `host:port`, `[v6]:port`, `unix:/path` or `/path`).
    pub port: Option<String>,
    /// `--reuse-port`.
    pub reuse_port: bool,
    /// `--wait-ready`.
    pub wait_ready: bool,
    /// `--disable-source-map-support` (a Node app runs without `--enable-source-maps`).
    pub disable_source_map_support: bool,
    /// `--listen-timeout` (duration).
    pub listen_timeout: Option<String>,
    /// `--ready-pattern` (regular expression).
    pub ready_pattern: Option<String>,
    /// `--shutdown-with-message`.
    pub shutdown_with_message: bool,
    /// `--no-vizion` (the app's git metadata is not read).
    pub no_vizion: bool,
    /// `--instance-var` (variable name).
    pub instance_var: Option<String>,
    /// `--max-cpu` (percent of one core: `80`, `80%`, `150`).
    pub max_cpu: Option<String>,
    /// `--max-cpu-window` (duration).
    pub max_cpu_window: Option<String>,
    /// `--max-processes` (a count).
    pub max_processes: Option<String>,
    /// `--nice` (-20 to 19).
    pub nice: Option<String>,
    /// `--uid` / `--user` (name or number).
    pub user: Option<String>,
    /// `--gid` / `--group` (name or number).
    pub group: Option<String>,
    /// `--cron-restart` / `--cron` (cron expression; `0` = none).
    pub cron_restart: Option<String>,
    /// `--cron-timezone`.
    pub cron_timezone: Option<String>,
    /// `--watch`: paths relative to the app's cwd; `.` (a bare `--watch`) is the cwd itself.
    /// Empty: not watched.
    pub watch: Vec<String>,
    /// `--ignore-watch` globs, one per item.
    pub ignore_watch: Vec<String>,
    /// `--watch-delay` (duration).
    pub watch_delay: Option<String>,
    /// `--health-http` (`http://` URL or a path on the app's port).
    pub health_http: Option<String>,
    /// `--health-tcp` (port or `host:port`).
    pub health_tcp: Option<String>,
    /// `--health-exec` (command line).
    pub health_exec: Option<String>,
    /// `--health-status` (expected HTTP status).
    pub health_status: Option<String>,
    /// `--health-interval` (duration).
    pub health_interval: Option<String>,
    /// `--health-timeout` (duration).
    pub health_timeout: Option<String>,
    /// `--health-failures` (failed probes in a row before a restart).
    pub health_failures: Option<String>,
    /// `--health-start-period` (duration).
    pub health_start_period: Option<String>,
    /// `--watchdog` (a bare number is seconds).
    pub watchdog: Option<String>,
    /// `--depends-on` app names, one per item.
    pub depends_on: Vec<String>,
    /// Variables for the app, as a file's `env` (`kelpie serve` passes its settings so).
    pub env: BTreeMap<String, String>,
}
