//! The desired shape of one app, after every config layer has been resolved.

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

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthProbe {
    /// `GET url` (plain `http://`); healthy when the status is `status`, or any 2xx/3xx without
    /// one.
    Http {
        /// Full URL, `http://127.0.0.1:3000/health` (a path alone was resolved against the app's
        /// port by kelpie-config).
        url: String,
        /// Expected status code.
        status: Option<u16>,
    },
    /// A TCP connection to `host:port` succeeds.
    Tcp {
        /// Host to connect to (`127.0.0.1` when the user gave only a port).
        host: String,
        /// Port.
        port: u16,
    },
    /// `sh -c command` in the app's cwd and environment exits with 0.
    Exec {
        /// The command line.
        command: String,
    },
}

/// A health check of each instance: probed every `interval_ms`; after `failures` failed probes
/// in a row (none counted during `start_period_ms` after the process started) the instance is
/// restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// What is probed.
    pub probe: HealthProbe,
    /// Time between probes (ms).
    pub interval_ms: u64,
    /// A probe taking longer fails (ms).
    pub timeout_ms: u64,
    /// Failed probes in a row before the instance is restarted.
    pub failures: u32,
    /// Grace after the process starts during which failures are not counted (ms).
    pub start_period_ms: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            probe: HealthProbe::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            interval_ms: 5_000,
            timeout_ms: 2_000,
            failures: 3,
            start_period_ms: 0,
        }
    }
}

/// Where the daemon listens for an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ListenAddress {
    /// A TCP port; no host = every address, IPv6 and IPv4.
    Tcp {
        /// The host to bind (`127.0.0.1`, `::1`...), if not every address.
        host: Option<String>,
        /// The port.
        port: u16,
    },
    /// A Unix socket at this absolute path.
    Unix {
        /// The socket's path.
        path: String,
    },
}

impl ListenAddress {
    /// Read `3000`, `127.0.0.1:3000`, `[::1]:3000`, `unix:/run/app.sock` or `/run/app.sock`.
    pub fn parse(text: &str) -> Result<ListenAddress, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "expected a port (3000), host:port (127.0.0.1:3000, [::1]:3000) or a Unix socket path (unix:/run/app.sock), got `{text}`"
            )
        };
        let port_of = |p: &str| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad()),
            Ok(port) => Ok(port),
        };
        if let Some(path) = text
            .strip_prefix("unix:")
            .or_else(|| text.starts_with('/').then_some(text))
        {
            return if path.starts_with('/') {
                Ok(ListenAddress::Unix {
                    path: path.to_string(),
                })
            } else {
                Err(bad())
            };
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
            return Ok(ListenAddress::Tcp {
                host: Some(host.to_string()),
                port: port_of(port)?,
            });
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                Ok(ListenAddress::Tcp {
                    host: Some(host.to_string()),
                    port: port_of(port)?,
                })
            }
            Some(_) => Err(bad()),
            None => Ok(ListenAddress::Tcp {
                host: None,
                port: port_of(text)?,
            }),
        }
    }

    /// The TCP port, if it is one.
    pub fn port(&self) -> Option<u16> {
        match self {
            ListenAddress::Tcp { port, .. } => Some(*port),
            ListenAddress::Unix { .. } => None,
        }
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::Tcp { host: None, port } => write!(f, "{port}"),
            ListenAddress::Tcp {
                host: Some(host),
                port,
            } if host.contains(':') => {
                write!(f, "[{host}]:{port}")
            }
            ListenAddress::Tcp {
                host: Some(host),
                port,
            } => write!(f, "{host}:{port}"),
            ListenAddress::Unix { path } => write!(f, "unix:{path}"),
        }
    }
}

/// How instances of an app are run. Both run one process per instance; in cluster mode the
/// instances share one Kelpie-owned listening socket when the app has a port.
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

/// The most instances one app can have. Every way of asking for instances (a config file,
/// `start -i`, `scale` over the socket or HTTP) is held to it, so a typo such as
/// `scale api 4000000000` is refused instead of making the daemon create processes until
/// memory runs out.
pub const MAX_INSTANCES: u32 = 9999;

/// Why `count` instances cannot be asked for, if they cannot.
pub fn check_instances(count: u32) -> Result<(), String> {
    if count > MAX_INSTANCES {
        return Err(format!(
            "{count} instances asked for; at most {MAX_INSTANCES} per app"
        ));
    }
    Ok(())
}

/// Why `name` cannot name an app, if it cannot: it must not be empty, nor hold a control
/// character (a newline would break every list and log line that shows it), nor be `all`
/// (a target that means every app).
pub fn check_app_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("an app name cannot be empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "the app name {name:?} holds a control character (newline, tab...)"
        ));
    }
    if name == "all" {
        return Err("`all` cannot name an app: it is the target for every app".into());
    }
    Ok(())
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
    /// Run a Node app without Node's source maps (PM2's `disable_source_map_support`): by
    /// default Node apps get `--enable-source-maps`, so stack traces name the original sources.
    pub disable_source_map_support: bool,
    /// Working directory of the app (absolute).
    pub cwd: String,
    /// The CLI's environment when the app was started (or refreshed with `--update-env`).
    /// Shared: the apps started from one shell have one copy of it between them.
    pub inherited_env: Arc<BTreeMap<String, String>>,
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
            disable_source_map_support: false,
            cwd: String::new(),
            inherited_env: Arc::default(),
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
        }
    }
}

impl AppSpec {
    /// PM2's `increment_var` for one instance: the variable and its value, the app's value
    /// (from its `env`, else the environment it inherited) plus the instance's index. `None`
    /// without `increment_var` or when that value is not a whole number.
    pub fn incremented_var(&self, instance: u32) -> Option<(&str, u64)> {
        let var = self.increment_var.as_deref()?;
        let base = self.env.get(var).or_else(|| self.inherited_env.get(var))?;
        let base: u64 = base.trim().parse().ok()?;
        Some((var, base + u64::from(instance)))
    }

    /// The command line that runs one instance: interpreter, its args, the script, the app args.
    /// A Node app also gets `--enable-source-maps` (see [`AppSpec::enables_source_maps`]), here
    /// rather than in `interpreter_args` so that its `node_args` stay what the user gave, and so
    /// that exported units run the app the same way.
    pub fn command_line(&self) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(interpreter) = &self.interpreter {
            argv.push(interpreter.clone());
            if self.enables_source_maps() {
                argv.push(Self::NODE_SOURCE_MAPS_FLAG.to_string());
            }
            argv.extend(self.interpreter_args.iter().cloned());
        }
        argv.push(self.script.clone());
        argv.extend(self.args.iter().cloned());
        argv
    }

    /// Whether the app runs under Node (`node` or `nodejs`): it then gets an IPC channel, as
    /// under PM2, and with a Kelpie-owned socket the cluster shim.
    pub fn runs_on_node(&self) -> bool {
        self.interpreter.as_deref().is_some_and(|interpreter| {
            let base = interpreter.rsplit('/').next().unwrap_or(interpreter);
            base == "node" || base == "nodejs"
        })
    }

    /// Node's flag that maps stack traces back to the sources named by `//# sourceMappingURL`.
    pub const NODE_SOURCE_MAPS_FLAG: &'static str = "--enable-source-maps";

    /// Whether the app's processes get Node's `--enable-source-maps` (PM2 turns source maps on
    /// for every Node app): a Node app that does not disable them and whose interpreter
    /// arguments do not already say `--enable-source-maps` or `--no-enable-source-maps`.
    pub fn enables_source_maps(&self) -> bool {
        // Node reads `_` in a flag's name as `-`.
        let says_it = |arg: &String| {
            let flag = arg.replace('_', "-");
            flag == Self::NODE_SOURCE_MAPS_FLAG || flag == "--no-enable-source-maps"
        };
        self.runs_on_node()
            && !self.disable_source_map_support
            && !self.interpreter_args.iter().any(says_it)
    }

    /// Whether the ports the app's code listens on are shared by its instances, as under PM2's
    /// Node cluster: a Node app in cluster mode (not binding with `SO_REUSEPORT` itself). Its
    /// processes run with the cluster shim, which asks the daemon for the socket of each port
    /// they listen on.
    pub fn shares_node_ports(&self) -> bool {
        self.exec_mode == ExecMode::Cluster && self.runs_on_node() && !self.reuse_port
    }

    /// A numeric, non-zero `PORT` of the app's environment (the config's, else the inherited one).
    pub fn env_port(&self) -> Option<u16> {
        self.env
            .get("PORT")
            .or_else(|| self.inherited_env.get("PORT"))
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0)
    }

    /// The environment an instance gets, before Kelpie's own variables are added: the inherited
    /// environment, overridden by the config's.
    pub fn merged_env(&self) -> BTreeMap<String, String> {
        let mut env = (*self.inherited_env).clone();
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
                "--enable-source-maps",
                "--max-old-space-size=64",
                "/srv/app.js",
                "--port",
                "80"
            ]
        );
        let without_maps = AppSpec {
            disable_source_map_support: true,
            ..spec
        };
        assert_eq!(
            without_maps.command_line(),
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
    fn node_apps_get_source_maps_unless_disabled_or_already_asked() {
        let with = |interpreter: &str, args: &[&str], disabled: bool| AppSpec {
            interpreter: Some(interpreter.to_string()),
            interpreter_args: args.iter().map(|a| a.to_string()).collect(),
            disable_source_map_support: disabled,
            ..AppSpec::default()
        };
        assert!(with("node", &[], false).enables_source_maps());
        assert!(with("/usr/bin/nodejs", &["--max-old-space-size=64"], false).enables_source_maps());
        assert!(!with("node", &[], true).enables_source_maps());
        assert!(!with("python3", &[], false).enables_source_maps());
        assert!(!with("node", &["--enable-source-maps"], false).enables_source_maps());
        assert!(!with("node", &["--no-enable-source-maps"], false).enables_source_maps());
        assert!(!with("node", &["--enable_source_maps"], false).enables_source_maps());
    }

    #[test]
    fn node_apps_are_recognised_by_their_interpreter() {
        let with = |interpreter: Option<&str>| AppSpec {
            interpreter: interpreter.map(str::to_string),
            ..AppSpec::default()
        };
        assert!(with(Some("node")).runs_on_node());
        assert!(with(Some("/usr/local/bin/nodejs")).runs_on_node());
        assert!(!with(Some("python3")).runs_on_node());
        assert!(!with(None).runs_on_node());
    }

    #[test]
    fn config_env_wins_over_inherited_env() {
        let mut spec = AppSpec::default();
        Arc::make_mut(&mut spec.inherited_env).insert("A".into(), "shell".into());
        Arc::make_mut(&mut spec.inherited_env).insert("B".into(), "shell".into());
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
        assert!(spec.vizion, "git metadata is read unless turned off");
    }

    #[test]
    fn listen_addresses_parse_and_print_back() {
        for text in ["3000", "127.0.0.1:3000", "[::1]:3000", "unix:/run/app.sock"] {
            let address = ListenAddress::parse(text).expect(text);
            assert_eq!(address.to_string(), text);
        }
        assert_eq!(
            ListenAddress::parse("/run/a.sock"),
            Ok(ListenAddress::Unix {
                path: "/run/a.sock".into()
            })
        );
        assert_eq!(
            ListenAddress::parse("localhost:80").map(|a| a.port()),
            Ok(Some(80))
        );
        for bad in ["0", "70000", "x", "::1:80", "unix:rel.sock", ""] {
            assert!(ListenAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_names_are_sanitized_like_pm2() {
        assert_eq!(sanitize_log_name("my app/v1.2"), "my-app-v1.2");
    }
}
