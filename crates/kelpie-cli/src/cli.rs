//! The command line, with PM2's verbs, aliases and flag spellings.

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

/// Kelpie: a production process manager for any language. PM2's commands, one small binary.
#[derive(Debug, Parser)]
#[command(
    name = "kelpie",
    version,
    about,
    propagate_version = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// Print the version (`-v` as in PM2, or `-V`)
    #[arg(short = 'v', visible_short_alias = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a script, binary, command or ecosystem file (or restart apps by name or id)
    Start(Box<StartArgs>),
    /// Start an ecosystem file's apps, restarting those already in the list (deploy scripts)
    #[command(name = "startOrRestart")]
    StartOrRestart(Box<StartArgs>),
    /// Start an ecosystem file's apps, reloading those already in the list
    #[command(name = "startOrReload", alias = "startOrGracefulReload")]
    StartOrReload(Box<StartArgs>),
    /// Stop apps (they stay in the list) and stop watching their files
    Stop(TargetArgs),
    /// Restart apps
    Restart(RestartArgs),
    /// Replace apps' processes one by one with no failed request: start the new one, wait until
    /// it is ready, stop the old one (apps without a Kelpie-owned port restart)
    #[command(alias = "gracefulReload")]
    Reload(ReloadArgs),
    /// Set the number of instances of an app: N, +N or -N
    Scale {
        /// The app's name
        name: String,
        /// N, +N or -N
        #[arg(allow_hyphen_values = true)]
        count: String,
    },
    /// Stop apps and remove them from the list
    #[command(alias = "del")]
    Delete(TargetArgs),
    /// Zero the restart counters of apps
    Reset(TargetArgs),
    /// Send a signal to apps (`kelpie signal SIGUSR2 api`)
    #[command(alias = "sendSignal")]
    Signal {
        /// Signal name or number
        signal: String,
        #[command(flatten)]
        targets: TargetArgs,
    },
    /// Print the pid of apps (all apps without a target)
    Pid {
        /// Name, id, namespace or `all`
        target: Option<String>,
    },
    /// List apps
    #[command(aliases = ["ls", "l", "status", "ps"])]
    List(ListArgs),
    /// List apps as JSON, in PM2's `jlist` shape
    Jlist {
        /// Show the values of env variables named like secrets (TOKEN, SECRET, PASSWORD, KEY),
        /// which are otherwise `****`
        #[arg(long)]
        show_secrets: bool,
    },
    /// List apps as PM2's `prettylist` prints them (the `jlist` data, as Node prints objects)
    Prettylist {
        /// Show the values of env variables named like secrets, which are otherwise `****`
        #[arg(long)]
        show_secrets: bool,
    },
    /// Print the environment an app was given (its config's env over the inherited one)
    Env {
        /// Id or name
        target: String,
        /// Show the values of variables named like secrets, which are otherwise `****`
        #[arg(long)]
        show_secrets: bool,
    },
    /// Print the ids of the instances of an app (`[ 0, 1 ]`, as PM2)
    Id {
        /// The app's name
        name: String,
    },
    /// Every detail of one app, including its last exits
    #[command(aliases = ["show", "info", "desc"])]
    Describe {
        /// Name or id
        target: String,
        /// Print JSON: the `jlist` entries of its instances, with their last exits
        #[arg(long)]
        json: bool,
        /// Show the values of env variables named like secrets (TOKEN, SECRET, PASSWORD, KEY),
        /// which are otherwise `****`
        #[arg(long)]
        show_secrets: bool,
    },
    /// Exits of apps across the list, newest last: when, code or signal, OOM kill, uptime,
    /// cause, what Kelpie did, and (with --stderr or --json) the last lines of stderr
    #[command(alias = "exits")]
    Events(EventsArgs),
    /// Full-screen dashboard: apps, cpu and memory history, details and live logs, with keys to
    /// restart, reload, stop, scale and filter (`?` lists them)
    #[command(aliases = ["dashboard", "dash"])]
    Monit(MonitArgs),
    /// Show the last lines of apps' output, then follow it live
    #[command(alias = "log")]
    Logs(LogsArgs),
    /// Empty the log files of apps (every app without a target)
    Flush {
        /// Names, ids, namespaces, /regex/, script paths or `all`
        targets: Vec<String>,
    },
    /// Reopen every log file (after an external logrotate moved them); same as SIGUSR2 to the daemon
    #[command(name = "reloadLogs", alias = "reload-logs")]
    ReloadLogs,
    /// Serve a directory's files over HTTP, as an app (`kelpie serve dist 3000 --spa`): Kelpie's
    /// own static file server, no Node needed
    #[command(alias = "expose")]
    Serve(Box<ServeArgs>),
    /// Write the list of apps for `resurrect` (and boot)
    #[command(alias = "dump")]
    Save {
        /// Overwrite a saved list that has apps with an empty one
        #[arg(short, long)]
        force: bool,
    },
    /// Start the saved apps that are not running
    Resurrect,
    /// Is the daemon alive? (starts it if needed)
    Ping,
    /// Serve the web dashboard, the HTTP API and Prometheus /metrics from the daemon (until it
    /// exits; `[web]` in kelpie.toml serves them at every start)
    Web(WebArgs),
    /// Stop every app and the daemon
    Kill,
    /// Replace the running daemon by this kelpie, in place: same pid, apps not restarted
    #[command(alias = "updatePM2")]
    Update,
    /// Write a commented example ecosystem.config.js
    #[command(alias = "ecosystem")]
    Init,
    /// Start the daemon at boot (systemd, openrc, launchd): written and enabled as root, else
    /// printed with the command to run
    Startup(StartupArgs),
    /// Remove the boot service written by `startup`
    Unstartup(StartupArgs),
    /// Run apps in the foreground as a container's main process (PID 1): output on stdout,
    /// orphans reaped, SIGTERM stops the apps and exits (PM2's pm2-runtime)
    #[command(alias = "pm2-runtime")]
    Runtime(Box<RuntimeArgs>),
    /// Turn the apps of an ecosystem file into systemd units, a Compose file or Kubernetes
    /// manifests (no daemon needed)
    Export(ExportArgs),
    /// Print a completion script for bash, zsh or fish, which also completes the names of the
    /// running daemon's apps (`source <(kelpie completions bash)`; docs/shell.md)
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: crate::commands::completions::Shell,
    },
    /// The names of the running daemon's apps, one per line, for the completion scripts; with
    /// the words typed after `kelpie`, only when the next word is an app. Never starts a daemon
    #[command(name = "complete-apps", hide = true)]
    CompleteApps {
        /// The words before the one being completed (`stop --only x`)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// Print the man page, kelpie(1), in roff (`kelpie man > kelpie.1`)
    #[command(hide = true)]
    Man,
    /// The configuration store (`set`, `get`, `unset`, `multiset`, `conf`) and PM2's module
    /// commands (`install`, `uninstall`)
    #[command(flatten)]
    Conf(crate::commands::conf::ConfCommand),
    /// Run the daemon in the foreground (started for you by any other command)
    #[command(hide = true)]
    Daemon {
        /// With no app left from the last daemon, bring back the saved list (boot services)
        #[arg(long)]
        resurrect_if_empty: bool,
        /// Go on from a daemon that re-executed itself (`kelpie update`)
        #[arg(long, hide = true)]
        handoff: Option<std::path::PathBuf>,
        /// Print the hand-off format this kelpie reads, and exit (asked by `kelpie update`)
        #[arg(long, hide = true)]
        handoff_format: bool,
        /// Be the keeper of the daemon that started this (holds the apps' pipes and sockets)
        #[arg(long, hide = true)]
        keeper: bool,
    },
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Name, id, namespace or `all` (default: every app)
    pub target: Option<String>,
    /// Print JSON (one array, oldest first, each with its last lines of stderr)
    #[arg(long)]
    pub json: bool,
    /// How many exits to show (the newest)
    #[arg(long, default_value_t = 20)]
    pub lines: usize,
    /// Also print the last lines each process wrote to stderr
    #[arg(long)]
    pub stderr: bool,
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// TCP port (default: `[web]`'s in kelpie.toml, else 9615)
    #[arg(short, long)]
    pub port: Option<u16>,
    /// Address to listen on (default: `[web]`'s, else 127.0.0.1); any address other than
    /// loopback needs a token
    #[arg(long)]
    pub host: Option<String>,
    /// Require `Authorization: Bearer <token>` for every call (default: `[web]`'s, else
    /// $KELPIE_WEB_TOKEN, which keeps it out of the process list). Without one, reading is open
    /// on loopback and changes need the token kept in <home>/web.token
    #[arg(long)]
    pub token: Option<String>,
    /// On loopback, answer changes (restart, stop, …) without a token too: any local user could
    /// then control your apps (`open_loopback` in `[web]`)
    #[arg(long, conflicts_with = "token")]
    pub open_loopback: bool,
    /// Stop serving
    #[arg(long, conflicts_with_all = ["port", "host", "token", "open_loopback"])]
    pub stop: bool,
    /// Print the token the running web server requires, and nothing else
    #[arg(long, conflicts_with_all = ["port", "host", "token", "open_loopback", "stop"])]
    pub show_token: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Directory to serve (default: the current one)
    pub path: Option<String>,
    /// TCP port (default 8080)
    #[arg(value_name = "PORT", conflicts_with = "port")]
    pub port_arg: Option<u16>,
    /// TCP port (default 8080)
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on (default 0.0.0.0: every interface)
    #[arg(long)]
    pub host: Option<String>,
    /// Single-page app: an unknown path gets the file of the same name at the root if there is
    /// one (`/deep/link/app.js`), else index.html, instead of a 404
    #[arg(long)]
    pub spa: bool,
    /// Page served for `/` (default /index.html)
    #[arg(long, value_name = "PATH")]
    pub homepage: Option<String>,
    /// Require this user name (HTTP basic authentication; with --basic-auth-password)
    #[arg(long, value_name = "USERNAME", requires = "basic_auth_password")]
    pub basic_auth_username: Option<String>,
    /// Require this password (with --basic-auth-username)
    #[arg(long, value_name = "PASSWORD", requires = "basic_auth_username")]
    pub basic_auth_password: Option<String>,
    /// App name (default: static-page-server-<port>)
    #[arg(short, long)]
    pub name: Option<String>,
    /// Namespace (default: `default`)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Register the app without starting it
    #[arg(long)]
    pub no_autostart: bool,
    /// Restart the server when it uses more memory than this (200M, 1G)
    #[arg(long, value_name = "SIZE")]
    pub max_memory_restart: Option<String>,
    /// stdout log file
    #[arg(short = 'o', long = "output")]
    pub out_file: Option<String>,
    /// stderr log file
    #[arg(short = 'e', long = "error")]
    pub error_file: Option<String>,
    /// Prefix each log line with the time (YYYY-MM-DDTHH:mm:ss)
    #[arg(long)]
    pub time: bool,
    /// Run the server as this user (name or uid); the daemon must run as root
    #[arg(long = "uid", visible_alias = "user", value_name = "USER")]
    pub user: Option<String>,
    /// Run the server with this group (name or gid; default: the user's group)
    #[arg(long = "gid", visible_alias = "group", value_name = "GROUP")]
    pub group: Option<String>,
    /// Start another copy of an app that already runs
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StartupArgs {
    /// systemd (ubuntu, debian, centos...), openrc or launchd (macos); detected when left out
    pub platform: Option<String>,
    /// The user the daemon runs as (default: you)
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Its Kelpie home (default: yours, or `~/.kelpie` of --user)
    #[arg(long = "hp", value_name = "DIR")]
    pub home: Option<String>,
    /// Name of the service (default: kelpie-<user>)
    #[arg(long)]
    pub service_name: Option<String>,
    /// Only print the file
    #[arg(long)]
    pub print: bool,
    /// Write the file into this directory instead of the init system's, and enable nothing
    #[arg(long, hide = true)]
    pub dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct RuntimeArgs {
    #[command(flatten)]
    pub start: StartArgs,
    /// The apps' lines alone: no `id|name |` prefix (stderr lines still on stderr)
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// One JSON object per line on stdout (the keys of `kelpie logs --json`)
    #[arg(long)]
    pub json: bool,
    /// Also write the usual log files in the home (by default the output only goes to
    /// stdout/stderr, the log of a container)
    #[arg(long)]
    pub log_files: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The engine to export to
    #[arg(value_enum)]
    pub target: crate::export::Target,
    /// The ecosystem file
    pub file: String,
    /// Use the file's `env_<profile>`
    #[arg(long = "env", value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Only these apps (comma separated)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Write one file per unit/manifest into this directory instead of printing them
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<std::path::PathBuf>,
    /// With -o: replace files that already exist
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Name, id, namespace, `all`, or a regular expression on names between slashes (`/^api/`)
    pub target: Option<String>,
    /// Lines of each stream to show first
    #[arg(long, default_value_t = 15)]
    pub lines: u32,
    /// Only stderr
    #[arg(long)]
    pub err: bool,
    /// Only stdout
    #[arg(long)]
    pub out: bool,
    /// The lines alone: no prefix, no colour, stderr lines on stderr
    #[arg(long)]
    pub raw: bool,
    /// One JSON object per line (PM2's keys: message, timestamp, type, process_id, app_name)
    #[arg(long)]
    pub json: bool,
    /// Prefix each line with the time it was read, in this format
    #[arg(long, num_args = 0..=1, default_missing_value = "YYYY-MM-DD-HH:mm:ss", value_name = "FORMAT")]
    pub timestamp: Option<String>,
    /// Print the last lines and exit instead of following
    #[arg(long)]
    pub nostream: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Redraw the table in place every --interval until q or Ctrl-C
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How often --watch refreshes (2s, 500ms; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

#[derive(Debug, Args)]
pub struct MonitArgs {
    /// How often the list is refreshed (2s, 500ms; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

/// A refresh interval: `2s`, `500ms`, or a bare number of seconds (like `watch -n`); at least
/// 100 ms.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let ms = match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => (seconds * 1000.0) as u64,
        _ => kelpie_config::parse_duration_ms(text)?,
    };
    if ms < 100 {
        return Err(format!("`{text}` is too short: at least 100ms"));
    }
    Ok(Duration::from_millis(ms))
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Names, ids, namespaces, `all`, /regex/ on names, script paths, an ecosystem file, or `-`
    /// (an ecosystem file on stdin)
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// With an ecosystem file: only these apps (comma separated)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Replace the apps' inherited environment with this shell's
    #[arg(short = 'a', long)]
    pub update_env: bool,
    /// With an ecosystem file: use its `env_<profile>`
    #[arg(long = "env", value_name = "PROFILE")]
    pub profile: Option<String>,
    /// Rename the app
    #[arg(short, long)]
    pub name: Option<String>,
    /// New arguments for the interpreter (`null` or "" for none)
    #[arg(long, visible_alias = "node-args", allow_hyphen_values = true)]
    pub interpreter_args: Option<String>,
    /// Watch the app's directory if it is not watched, else stop watching
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub ignored: IgnoredPm2Flags,
    #[command(flatten)]
    pub start_only: StartOnlyFlags,
}

/// Start flags that PM2's `restart` and `reload` accept without applying them (the app keeps
/// the setting it was started with): accepted with the same one-line note, not a usage error.
#[derive(Debug, Args, Default)]
pub struct StartOnlyFlags {
    #[arg(long, hide = true)]
    no_vizion: bool,
    #[arg(long, hide = true)]
    source_map_support: bool,
    #[arg(long, hide = true)]
    disable_source_map_support: bool,
}

impl StartOnlyFlags {
    /// Print the one-line note, if any of them was given.
    pub fn note(&self) {
        let given: Vec<&str> = [
            (self.no_vizion, "--no-vizion"),
            (self.source_map_support, "--source-map-support"),
            (
                self.disable_source_map_support,
                "--disable-source-map-support",
            ),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect();
        if !given.is_empty() {
            eprintln!(
                "[kelpie] a start setting, kept as the app was started: {} (delete and start again to change it)",
                given.join(", ")
            );
        }
    }
}

/// PM2 flags that change nothing in Kelpie, accepted so that PM2 command lines keep working;
/// naming them prints one line (docs/differences-from-pm2.md says why each has no effect).
#[derive(Debug, Args, Default)]
pub struct IgnoredPm2Flags {
    #[arg(short = 'x', long, hide = true)]
    execute_command: bool,
    #[arg(long, hide = true)]
    no_pmx: bool,
    #[arg(long, hide = true)]
    no_automation: bool,
    #[arg(long, hide = true)]
    no_treekill: bool,
    #[arg(long, hide = true)]
    trace: bool,
    #[arg(long, hide = true)]
    disable_trace: bool,
    #[arg(long, hide = true)]
    v8: bool,
    #[arg(long, hide = true)]
    event_loop_inspector: bool,
    #[arg(long, hide = true)]
    deep_monitoring: bool,
    #[arg(long, hide = true)]
    attach: bool,
    #[arg(long, hide = true)]
    no_daemon: bool,
    #[arg(short = 'p', long = "pid", hide = true, value_name = "FILE")]
    pid_file: Option<String>,
    #[arg(long, hide = true, value_name = "PREFIXES")]
    filter_env: Vec<String>,
    #[arg(long, hide = true, value_name = "EXTENSIONS")]
    ext: Option<String>,
    /// PM2's `--silent` and `--no-color`: Kelpie's messages are short and colourless already
    #[arg(short = 's', long, hide = true)]
    silent: bool,
    #[arg(long, hide = true)]
    no_color: bool,
}

impl IgnoredPm2Flags {
    /// The flags given that have no effect, as typed (`--silent` and `--no-color` are not
    /// worth a note).
    pub fn given(&self) -> Vec<&'static str> {
        [
            (self.execute_command, "-x"),
            (self.no_pmx, "--no-pmx"),
            (self.no_automation, "--no-automation"),
            (self.no_treekill, "--no-treekill"),
            (self.trace, "--trace"),
            (self.disable_trace, "--disable-trace"),
            (self.v8, "--v8"),
            (self.event_loop_inspector, "--event-loop-inspector"),
            (self.deep_monitoring, "--deep-monitoring"),
            (self.attach, "--attach"),
            (self.no_daemon, "--no-daemon"),
            (self.pid_file.is_some(), "--pid"),
            (!self.filter_env.is_empty(), "--filter-env"),
            (self.ext.is_some(), "--ext"),
        ]
        .into_iter()
        .filter_map(|(given, flag)| given.then_some(flag))
        .collect()
    }

    /// Print the one-line note, if any of them was given.
    pub fn note(&self) {
        let given = self.given();
        if !given.is_empty() {
            eprintln!(
                "[kelpie] no effect in Kelpie, ignored: {} (see docs/differences-from-pm2.md)",
                given.join(", ")
            );
        }
    }
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub restart: RestartArgs,
    /// Instances of one app replaced at once
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub parallel: u32,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Script, binary, "command line", ecosystem file, or names/ids of existing apps
    /// (default: the ecosystem file of the current directory)
    pub targets: Vec<String>,
    /// The app's settings (as a file's fields).
    #[command(flatten)]
    pub app: kelpie_config::ScriptOptions,
    /// With an ecosystem file: use its `env_<profile>`
    #[arg(long = "env", value_name = "PROFILE")]
    pub profile: Option<String>,
    /// With an ecosystem file: only these apps (comma separated)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// When restarting existing apps: refresh their environment from this shell
    #[arg(short = 'a', long)]
    pub update_env: bool,
    /// Start another copy of an app that already runs
    #[arg(short, long)]
    pub force: bool,
    /// Refuse the file on any warning (unknown or ineffective fields): start nothing and exit
    /// non-zero (also `strict = true` in kelpie.toml)
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub ignored: IgnoredPm2Flags,
}
