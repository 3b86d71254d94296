//! The arguments of the commands that run apps elsewhere: at boot (`startup`), in a container
//! (`runtime`), under other tools (`export`), or on other machines (`deploy`).

use super::StartArgs;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct StartupArgs {
    /// systemd (ubuntu, debian, centos...), openrc or launchd (macos); detected when left out
    pub platform: Option<String>,
    /// The user the daemon runs as (default: you)
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// The user's home directory, as PM2's --hp: the Kelpie home is its `.kelpie` (`.pm2` run
    /// as pm2); a directory named `.kelpie` (`.pm2`) is the home itself (default: yours, or that
    /// of --user)
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
pub(crate) struct RuntimeArgs {
    #[command(flatten)]
    pub start: StartArgs,
    /// Each line after an `id|name |` prefix (pm2-runtime's --format); by default the apps'
    /// lines are printed as they are, so JSON lines stay JSON for the container's collector
    #[arg(long, conflicts_with_all = ["json", "raw"])]
    pub format: bool,
    /// The apps' lines as they are (the default; stderr lines on stderr)
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// One JSON object per line on stdout (the keys of `kelpie logs --json`)
    #[arg(long)]
    pub json: bool,
    /// Also write the usual log files in the home (by default only the files an app names, its
    /// out_file, error_file and log_file, are written, as pm2-runtime does; the output goes to
    /// stdout/stderr, the log of a container)
    #[arg(long)]
    pub log_files: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
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
    /// Compose, Kubernetes: the image that holds the project (default: a placeholder)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// Compose, Kubernetes: where the project directory is in the image (default: the WORKDIR
    /// of a Dockerfile beside the file, else /app)
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Kubernetes: secrets come from this Secret, which you manage (none is written); Compose:
    /// from the environment (no .env is needed)
    #[arg(long, value_name = "NAME")]
    pub secret_ref: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// `[file] <env> <command>`: `list`, `jlist`, `describe <app>`, `logs [app] [--lines N]`,
    /// `start|stop|restart|reload <app>`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "WORDS",
        required = true
    )]
    pub words: Vec<String>,
    /// One JSON document on stdout: the hosts' `jlist`s merged (each process with its `host`),
    /// or each host's output and status
    #[arg(long)]
    pub json: bool,
    /// How long a host may take to answer (20s, 1m; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = super::views::parse_duration)]
    pub timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// `[file] <env> [setup | update | revert [n] | curr | prev | list | exec <cmd> | ref <ref> |
    /// <ref> | unlock]`, as PM2's deploy takes them
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "WORDS"
    )]
    pub words: Vec<String>,
    /// Deploy even with uncommitted or unpushed changes here (PM2's --force; never breaks a lock)
    #[arg(short, long, visible_short_alias = 'F')]
    pub force: bool,
    /// One JSON report on stdout (progress and hooks' output on stderr), for CI
    #[arg(long)]
    pub json: bool,
}
