//! The arguments of the commands that start, stop, restart and reload apps.

use super::IgnoredPm2Flags;
use super::StartOnlyFlags;
use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    /// Names, ids, namespaces, `all`, /regex/ on names, script paths, an ecosystem file, or `-`
    /// (an ecosystem file on stdin)
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// With an ecosystem file: only these apps (comma separated)
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
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
    /// Do not restart the apps when they exit, from now on (kept by `save`)
    #[arg(long)]
    pub no_autorestart: bool,
    #[command(flatten)]
    pub ignored: IgnoredPm2Flags,
    #[command(flatten)]
    pub start_only: StartOnlyFlags,
}

#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    #[command(flatten)]
    pub restart: RestartArgs,
    /// Instances of one app replaced at once
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub parallel: u32,
}

#[derive(Debug, Args)]
pub(crate) struct StartArgs {
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
