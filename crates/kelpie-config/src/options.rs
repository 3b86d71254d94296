//! The app settings as `kelpie start` flags: one struct that is at once clap's flags
//! (`kelpie start`, `kelpie run`, `kelpie serve` flatten it) and, serialized, the fields of an
//! app object with the names a file uses, so flags and files go through one validator
//! (`readers.rs`).
//!
//! The settings are declared in the table of `settings.rs`; a flag here is checked against its
//! row (`settings/tests.rs`: the flags a row names are exactly this struct's, and each sets its
//! row's field). Adding a flag: its row first, then its field here (`rename` when the file's
//! name differs).

use clap::Args;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// Options for starting a single script/command from CLI flags (`None` = not given, written as
/// `null` and left out of the fields). Values are the flags' text; they are validated like the
/// same fields in a file.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ScriptOptions {
    /// Arguments for the script, after `--`
    #[arg(last = true)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// App name (default: the script's name without extension)
    #[arg(short, long)]
    pub name: Option<String>,
    /// Namespace (default: `default`)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Number of instances (`max` or 0 = one per CPU, -1 = CPUs minus one)
    #[arg(short = 'i', long, allow_hyphen_values = true)]
    pub instances: Option<String>,
    /// Program that runs the script (`none` runs it directly)
    #[arg(long)]
    pub interpreter: Option<String>,
    /// Arguments for the interpreter
    #[arg(long, visible_alias = "node-args", allow_hyphen_values = true)]
    pub interpreter_args: Option<String>,
    /// Working directory of the app
    #[arg(long)]
    pub cwd: Option<String>,
    /// Do not restart the app when it exits
    #[arg(long)]
    #[serde(
        rename = "autorestart",
        serialize_with = "negated",
        skip_serializing_if = "off"
    )]
    pub no_autorestart: bool,
    /// Register the app without starting it
    #[arg(long)]
    #[serde(
        rename = "autostart",
        serialize_with = "negated",
        skip_serializing_if = "off"
    )]
    pub no_autostart: bool,
    /// Time between the stop signal and SIGKILL (ms, or 5s)
    #[arg(short = 'k', long)]
    pub kill_timeout: Option<String>,
    /// Signal that stops the app (default SIGINT)
    #[arg(long)]
    pub kill_signal: Option<String>,
    /// Delay before each automatic restart (ms, or 2s)
    #[arg(long)]
    pub restart_delay: Option<String>,
    /// Exponential backoff between restarts, starting at this delay (ms)
    #[arg(long)]
    pub exp_backoff_restart_delay: Option<String>,
    /// Unstable restarts in a row before the app is errored (default 16)
    #[arg(long)]
    pub max_restarts: Option<String>,
    /// A run shorter than this is unstable (default 1000 ms)
    #[arg(long)]
    pub min_uptime: Option<String>,
    /// Exit codes after which the app is not restarted
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_exit_codes: Vec<String>,
    /// Restart the app when its process tree uses more memory than this (200M, 1G)
    #[arg(long, value_name = "SIZE")]
    pub max_memory_restart: Option<String>,
    /// Restart the app when its process tree uses more than this percent of one core (80, 150%)
    /// for --max-cpu-window
    #[arg(long, value_name = "PERCENT")]
    pub max_cpu: Option<String>,
    /// How long CPU use must stay over --max-cpu (default 10s, at least 1s)
    #[arg(long, value_name = "DURATION")]
    pub max_cpu_window: Option<String>,
    /// At most this many processes and threads in the app at once (cgroup pids.max): a fork
    /// bomb stays inside it
    #[arg(long, value_name = "N")]
    pub max_processes: Option<String>,
    /// Scheduling priority: -20 (highest, needs root) to 19 (lowest)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub nice: Option<String>,
    /// Run the app as this user (name or uid); the daemon must run as root
    #[arg(long = "uid", visible_alias = "user", value_name = "USER")]
    #[serde(rename = "uid")]
    pub user: Option<String>,
    /// Run the app with this group (name or gid; default: the user's group)
    #[arg(long = "gid", visible_alias = "group", value_name = "GROUP")]
    #[serde(rename = "gid")]
    pub group: Option<String>,
    /// Restart the app on this cron schedule ("0 3 * * *"; 6 fields = seconds first)
    #[arg(short = 'c', long, visible_alias = "cron", value_name = "CRON")]
    pub cron_restart: Option<String>,
    /// Time zone of --cron-restart (UTC, Europe/Paris; default: local time)
    #[arg(long, visible_alias = "cron-tz", value_name = "ZONE")]
    pub cron_timezone: Option<String>,
    /// Restart the app when files change: bare, its working directory; --watch=PATH (repeatable)
    /// for other paths. The word after a bare --watch is the script, not a path
    #[arg(
        long,
        value_name = "PATH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "."
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
    /// Globs not to watch ("*.log", "tmp/**"); repeatable, or several in one quoted word
    #[arg(long, value_name = "GLOBS")]
    #[serde(serialize_with = "words", skip_serializing_if = "Vec::is_empty")]
    pub ignore_watch: Vec<String>,
    /// Quiet time after the last change before restarting (default 500ms)
    #[arg(long, value_name = "DURATION")]
    pub watch_delay: Option<String>,
    /// The `--health-*` flags: one `health_check` object.
    #[command(flatten)]
    #[serde(
        rename = "health_check",
        skip_serializing_if = "HealthFlags::has_no_probe"
    )]
    pub health: HealthFlags,
    /// Restart an instance that stops sending WATCHDOG=1 on NOTIFY_SOCKET for this long
    /// (a bare number is seconds, as systemd's WatchdogSec)
    #[arg(long, value_name = "DURATION")]
    pub watchdog: Option<String>,
    /// Start the app only once these apps are online (healthy, with a health check);
    /// comma separated, repeatable
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    #[serde(serialize_with = "trimmed", skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// stdout log file
    #[arg(short = 'o', long = "output")]
    pub out_file: Option<String>,
    /// stderr log file
    #[arg(short = 'e', long = "error")]
    pub error_file: Option<String>,
    /// Write each instance's pid to this file while it runs (`-<id>` added when the log files
    /// are numbered: cluster mode or instances given), as PM2's --pid
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pub pid_file: Option<String>,
    /// One log file for all instances
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub merge_logs: bool,
    /// Also write stdout and stderr to one file (default: <name>.log in Kelpie's log directory).
    /// Before the script, give the path as --log=PATH (`-l app.js` starts app.js)
    #[arg(
        short = 'l',
        long = "log",
        value_name = "PATH",
        num_args = 0..=1,
        default_missing_value = ""
    )]
    #[serde(serialize_with = "log_file")]
    pub log_file: Option<String>,
    /// How lines are written to the log files: raw or json
    #[arg(long, value_name = "raw|json")]
    pub log_type: Option<String>,
    /// Prefix each log line with the time in this format ("YYYY-MM-DD HH:mm:ss Z")
    #[arg(long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// Prefix each log line with the time (YYYY-MM-DDTHH:mm:ss)
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub time: bool,
    /// Discard the app's output (no log files)
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub disable_logs: bool,
    /// Rotate a log file when it reaches this size (10M; 0 = never by size)
    #[arg(long, value_name = "SIZE")]
    pub log_max_size: Option<String>,
    /// Rotated log files kept per file
    #[arg(long, value_name = "N")]
    pub log_retain: Option<String>,
    /// Keep rotated log files uncompressed
    #[arg(long)]
    #[serde(
        rename = "log_compress",
        serialize_with = "negated",
        skip_serializing_if = "off"
    )]
    pub no_log_compress: bool,
    /// Rotate log files daily, hourly, never, or every DURATION (6h)
    #[arg(long, value_name = "WHEN")]
    pub log_rotate_interval: Option<String>,
    /// Port Kelpie listens on and shares between the instances; also sets PORT
    /// (3000, 127.0.0.1:3000, [::1]:3000 or unix:/run/app.sock)
    #[arg(long, value_name = "ADDRESS")]
    pub port: Option<String>,
    /// The instances bind the port themselves (SO_REUSEPORT); --port then only sets PORT
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub reuse_port: bool,
    /// Wait for the app's ready signal (process.send('ready') or READY=1 on NOTIFY_SOCKET)
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub wait_ready: bool,
    /// How long a starting instance may take to become ready (default 3000 ms)
    #[arg(long, value_name = "DURATION")]
    pub listen_timeout: Option<String>,
    /// A line of output (regular expression) that means the instance is ready
    #[arg(long, value_name = "REGEX")]
    pub ready_pattern: Option<String>,
    /// Stop by sending `shutdown` over the Node IPC channel instead of the kill signal
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub shutdown_with_message: bool,
    /// Do not read the git metadata of the app's directory (PM2's vizion) for jlist and describe
    #[arg(long)]
    #[serde(
        rename = "vizion",
        serialize_with = "negated",
        skip_serializing_if = "off"
    )]
    pub no_vizion: bool,
    /// Give a Node app no runtime metrics from Kelpie's shim (heap, event loop, handles: PM2's
    /// `pmx`, whose agent gives them)
    #[arg(long)]
    #[serde(
        rename = "pmx",
        serialize_with = "negated",
        skip_serializing_if = "off"
    )]
    pub no_pmx: bool,
    /// Run a Node app without Node's source maps (by default Node apps get
    /// --enable-source-maps, so stack traces name the original sources)
    #[arg(long)]
    #[serde(skip_serializing_if = "off")]
    pub disable_source_map_support: bool,
    /// PM2's flag to turn source maps on: they already are for Node apps (the field is read
    /// and changes nothing)
    #[arg(long, hide = true)]
    #[serde(skip_serializing_if = "off")]
    pub source_map_support: bool,
    /// Variable holding the instance index (default NODE_APP_INSTANCE)
    #[arg(long, value_name = "NAME")]
    pub instance_var: Option<String>,
    /// Variables from this dotenv file (NAME=value lines; relative to the app's directory);
    /// repeatable: later files win, and the app's `env` wins over them
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<String>,
    /// Leave out the inherited shell variables whose name contains this text (repeatable; a
    /// file may also give one exact name, or `true` for none at all)
    #[arg(long, value_name = "TEXT")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_env: Vec<String>,
    /// Variables for the app, as a file's `env` (`kelpie serve` passes its settings so).
    #[arg(skip)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// The `--health-*` flags, which become one `health_check` object (as a file writes it).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct HealthFlags {
    /// Health check: GET this http:// URL, or this /path on the app's port
    #[arg(long, value_name = "URL|/PATH", conflicts_with_all = ["health_tcp", "health_exec"])]
    #[serde(rename = "http", skip_serializing_if = "Option::is_none")]
    pub health_http: Option<String>,
    /// Health check: connect to this port (on 127.0.0.1), host:port, or `true` for the app's port
    #[arg(long, value_name = "PORT|HOST:PORT", conflicts_with = "health_exec")]
    #[serde(rename = "tcp", skip_serializing_if = "Option::is_none")]
    pub health_tcp: Option<String>,
    /// Health check: run this command (sh -c) in the app's directory; healthy when it exits 0
    #[arg(long, value_name = "COMMAND", allow_hyphen_values = true)]
    #[serde(rename = "exec", skip_serializing_if = "Option::is_none")]
    pub health_exec: Option<String>,
    /// HTTP status the health check expects (default: any 2xx or 3xx)
    #[arg(long, value_name = "CODE")]
    #[serde(rename = "status", skip_serializing_if = "Option::is_none")]
    pub health_status: Option<String>,
    /// Time between health probes (default 5s)
    #[arg(long, value_name = "DURATION")]
    #[serde(rename = "interval", skip_serializing_if = "Option::is_none")]
    pub health_interval: Option<String>,
    /// A health probe taking longer fails (default 2s)
    #[arg(long, value_name = "DURATION")]
    #[serde(rename = "timeout", skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<String>,
    /// Failed probes in a row before the instance is restarted (default 3)
    #[arg(long, value_name = "N")]
    #[serde(rename = "failures", skip_serializing_if = "Option::is_none")]
    pub health_failures: Option<String>,
    /// Failed probes are not counted this long after the process starts (default 0)
    #[arg(long, value_name = "DURATION")]
    #[serde(rename = "start_period", skip_serializing_if = "Option::is_none")]
    pub health_start_period: Option<String>,
}

impl ScriptOptions {
    /// The fields the given flags set, named as a file names them.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            // `null`: a flag that was not given.
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .filter(|(_, value)| !value.is_null())
                .collect(),
            // Strings, lists and maps of strings always serialize to an object.
            _ => serde_json::Map::new(),
        }
    }
}

impl HealthFlags {
    fn has_no_probe(&self) -> bool {
        self.health_http.is_none() && self.health_tcp.is_none() && self.health_exec.is_none()
    }

    /// Timing flags without a probe flag: an error here, where the flags' names are known.
    pub(crate) fn missing_probe(&self) -> Option<String> {
        if !self.has_no_probe() {
            return None;
        }
        let settings = [
            ("--health-status", &self.health_status),
            ("--health-interval", &self.health_interval),
            ("--health-timeout", &self.health_timeout),
            ("--health-failures", &self.health_failures),
            ("--health-start-period", &self.health_start_period),
        ];
        let given: Vec<&str> = settings
            .iter()
            .filter(|(_, value)| value.is_some())
            .map(|(flag, _)| *flag)
            .collect();
        if given.is_empty() {
            return None;
        }
        let verb = if given.len() == 1 { "needs" } else { "need" };
        Some(format!(
            "{} {verb} a probe: add --health-http, --health-tcp or --health-exec",
            given.join(", ")
        ))
    }
}

/// For `skip_serializing_if`: a switch that was not given.
fn off(on: &bool) -> bool {
    !*on
}

/// `--no-x` given: the field `x` is false.
fn negated<S: Serializer>(on: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(!*on)
}

/// `-l` without a path is `log_file: true` (the default combined file).
fn log_file<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value.as_deref() {
        Some("") => serializer.serialize_bool(true),
        Some(path) => serializer.serialize_str(path),
        None => serializer.serialize_none(),
    }
}

/// PM2 takes several globs in one word (`--ignore-watch="node_modules *.log"`).
fn words<S: Serializer>(items: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(items.iter().flat_map(|item| item.split_whitespace()))
}

/// `--depends-on "api, db"`: names without the spaces around them, empty ones dropped.
fn trimmed<S: Serializer>(items: &[String], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_given_flags_become_fields_with_the_names_files_use() {
        assert!(ScriptOptions::default().fields().is_empty());
        let options = ScriptOptions {
            no_autorestart: true,
            no_vizion: true,
            no_log_compress: true,
            user: Some("www".into()),
            log_file: Some(String::new()),
            ignore_watch: vec!["node_modules *.log".into(), "tmp".into()],
            depends_on: vec![" db".into(), " ".into()],
            health: HealthFlags {
                health_tcp: Some("5432".into()),
                health_interval: Some("2s".into()),
                ..HealthFlags::default()
            },
            source_map_support: true,
            ..ScriptOptions::default()
        };
        assert_eq!(
            serde_json::Value::Object(options.fields()),
            json!({
                "autorestart": false,
                "vizion": false,
                "log_compress": false,
                "uid": "www",
                "log_file": true,
                "ignore_watch": ["node_modules", "*.log", "tmp"],
                "depends_on": ["db"],
                "health_check": {"tcp": "5432", "interval": "2s"},
                "source_map_support": true,
            })
        );
    }

    #[test]
    fn health_timing_without_a_probe_is_named() {
        let flags = HealthFlags {
            health_interval: Some("1s".into()),
            health_failures: Some("2".into()),
            ..HealthFlags::default()
        };
        assert_eq!(
            flags.missing_probe().as_deref(),
            Some("--health-interval, --health-failures need a probe: add --health-http, --health-tcp or --health-exec")
        );
        assert_eq!(HealthFlags::default().missing_probe(), None);
    }
}
