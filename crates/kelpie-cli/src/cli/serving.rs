//! The arguments of the commands that serve over HTTP: `web` (the daemon's dashboard, API and
//! metrics) and `serve` (a directory's files, as an app).

use clap::Args;
use kelpie_config::ScriptOptions;

#[derive(Debug, Args)]
pub(crate) struct WebArgs {
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

/// `serve`'s own words and flags; the app's settings are `start`'s flags, declared once in
/// [`ScriptOptions`] (`--name`, `--port`, `--max-memory-restart`, `--watch`, the log flags, …),
/// as PM2's `serve` takes its start options.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Directory to serve (default: the current one)
    pub path: Option<String>,
    /// TCP port (default 8080; also --port)
    #[arg(value_name = "PORT", conflicts_with = "port")]
    pub port_arg: Option<u16>,
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
    /// Start another copy of an app that already runs
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub app: ScriptOptions,
}
