//! The command line, with PM2's verbs, aliases and flag spellings.
//!
//! Here: the program and its commands. The arguments of commands, by group, in `cli/`: the
//! apps' lifecycle (`lifecycle`), PM2's flags that are accepted and noted (`pm2_flags`), the
//! views of apps (`views`), serving over HTTP (`serving`), and running apps elsewhere: at
//! boot, in a container, exported (`deploy`).

mod deploy;
mod lifecycle;
pub(crate) mod other_verbs;
mod pm2_flags;
mod serving;
mod views;

pub(crate) use deploy::{DeployArgs, ExportArgs, FleetArgs, RuntimeArgs, StartupArgs};
pub(crate) use lifecycle::{ReloadArgs, RestartArgs, StartArgs, TargetArgs};
pub(crate) use pm2_flags::{IgnoredPm2Flags, StartOnlyFlags};
pub(crate) use serving::{ServeArgs, WebArgs};
pub(crate) use views::{parse_duration, EventsArgs, ListArgs, LogsArgs, MonitArgs, ProfileKind};

use clap::{Parser, Subcommand};

/// Kelpie: a production process manager for any language. PM2's commands, one small binary.
#[derive(Debug, Parser)]
#[command(
    name = "kelpie",
    version,
    about,
    propagate_version = true,
    disable_version_flag = true
)]
pub(crate) struct Cli {
    /// Print the version (`-v` as in PM2, or `-V`)
    #[arg(short = 'v', visible_short_alias = 'V', long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Write a line to the stdin of apps in fork mode (`kelpie send api "reload config"`)
    Send {
        /// Name, id, namespace or `all`
        target: String,
        /// The line (several words are joined with spaces; a newline ends it)
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        line: Vec<String>,
    },
    /// Show an app's output and send each line you type to its stdin, until Ctrl-C or Ctrl-D
    Attach {
        /// An id, or the name of an app with one process
        target: String,
        /// What ends each line sent (a newline by default)
        separator: Option<String>,
    },
    /// Run an action that apps registered with @pm2/io (`io.action('name', fn)`) in every
    /// running instance of the target, and print each instance's reply
    Trigger {
        /// Name, id, namespace or `all`
        target: String,
        /// The action's name
        action: String,
        /// A parameter for the action (given to handlers that take one, as a string)
        param: Option<String>,
        /// How long to wait for the replies, in seconds (PM2 waits forever)
        #[arg(long, default_value_t = 10)]
        timeout: u64,
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
    /// Empty the log files of apps (every listed app and the daemon's log without a target; the
    /// files of a deleted app when named, or all of them with --deleted)
    Flush {
        /// Names, ids, namespaces, /regex/, script paths or `all`; the name of a deleted app
        targets: Vec<String>,
        /// Also empty the files deleted apps left in the logs directory
        #[arg(long)]
        deleted: bool,
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
    /// What a bug report needs (PM2's `report`): versions, the daemon, the system, the list
    /// and the daemon's last log lines
    Report,
    /// A CPU profile or a heap snapshot of a running Node app, written to a file (no restart)
    Profile {
        #[command(subcommand)]
        kind: ProfileKind,
    },
    /// Open the Node inspector of a running app on 127.0.0.1 and print its address
    Inspect {
        /// An id, or an app (its lowest id)
        target: String,
        /// The port (0: a free one)
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// How long it stays open (10m, 90s; a bare number is seconds)
        #[arg(long = "for", value_name = "DURATION", default_value = "10m", value_parser = views::parse_duration)]
        open_for: std::time::Duration,
        /// Close the inspector `kelpie inspect` opened, now
        #[arg(long)]
        close: bool,
    },
    /// PM2's `profile:cpu` and `profile:mem`, which profile PM2's own daemon: says what to use
    #[command(name = "profile:cpu", hide = true, alias = "profile:mem")]
    ProfileDaemon {
        /// What PM2 takes (a duration): not used
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// PM2's `deepUpdate` (reinstall PM2 from npm and update its daemon): says how Kelpie does it
    #[command(name = "deepUpdate", hide = true, alias = "deep-update")]
    DeepUpdate,
    /// Serve the web dashboard, the HTTP API and Prometheus /metrics from the daemon (until it
    /// exits; `[web]` in kelpie.toml serves them at every start)
    Web(WebArgs),
    /// The exception inbox: uncaught exceptions of every app grouped by type and the app's own
    /// frames, with counts, first and last seen, the apps hit and the last stack
    Errors {
        /// Only this app's
        app: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Empty the inbox (or this app's part of it) after printing it
        #[arg(long)]
        clear: bool,
    },
    /// The notification targets of kelpie.toml (`[[notify]]`) with what each was sent, failed
    /// and dropped; `notify test` reads kelpie.toml again and sends each a test message
    Notify {
        /// `test`: send a test message to every target and print how each went
        #[arg(value_parser = ["test"])]
        action: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Stop every app and the daemon
    Kill,
    /// Replace the running daemon by this kelpie, in place: same pid, apps not restarted
    #[command(alias = "updatePM2")]
    Update,
    /// Write a commented example ecosystem.config.js (never over an existing one)
    #[command(alias = "ecosystem")]
    Init {
        /// PM2's template name (`simple` or none); Kelpie has one example, written for both
        mode: Option<String>,
    },
    /// Start the daemon at boot (systemd, openrc, launchd): written and enabled as root, else
    /// printed with the command to run
    Startup(StartupArgs),
    /// Remove the boot service written by `startup`
    Unstartup(StartupArgs),
    /// Run apps in the foreground as a container's main process (PID 1): output on stdout,
    /// orphans reaped, SIGTERM stops the apps and exits (PM2's pm2-runtime)
    #[command(alias = "pm2-runtime")]
    Runtime(Box<RuntimeArgs>),
    /// Ship an ecosystem file's apps to servers over SSH (PM2's `deploy` sections): releases
    /// built on every host, live only once their apps are ready (docs/deploy.md)
    Deploy(DeployArgs),
    /// Run `list`, `jlist`, `describe`, `logs` or `start|stop|restart|reload` on every host of a
    /// deploy section, over its SSH, and show the answers together (`kelpie fleet production list`)
    Fleet(FleetArgs),
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
    /// PM2's hosted dashboard (`pm2 plus`, `pm2 link`): says what Kelpie offers locally
    #[command(hide = true, alias = "link")]
    Plus {
        /// What PM2 takes (keys, `delete`...): not used
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
    /// The configuration store (`set`, `get`, `unset`, `multiset`, `conf`) and PM2's module
    /// commands (`install`, `uninstall`)
    #[command(flatten)]
    Conf(crate::commands::conf::ConfCommand),
    /// Run the daemon in the foreground (started for you by any other command)
    #[command(hide = true)]
    Daemon(DaemonArgs),
}

/// `kelpie daemon`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct DaemonArgs {
    /// With no app left from the last daemon, bring back the saved list (boot services)
    #[arg(long)]
    pub(crate) resurrect_if_empty: bool,
    /// Go on from a daemon that re-executed itself (`kelpie update`)
    #[arg(long, hide = true)]
    pub(crate) handoff: Option<std::path::PathBuf>,
    /// Print hand-off format 1, which this kelpie reads, and exit (asked by the `kelpie
    /// update` of daemons that know one format)
    #[arg(long, hide = true)]
    pub(crate) handoff_format: bool,
    /// Print every hand-off format this kelpie reads, and exit (asked by `kelpie update`)
    #[arg(long, hide = true)]
    pub(crate) handoff_formats: bool,
    /// Be the keeper of the daemon that started this (holds the apps' pipes and sockets)
    #[arg(long, hide = true)]
    pub(crate) keeper: bool,
}
