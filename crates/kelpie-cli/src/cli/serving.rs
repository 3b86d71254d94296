//! The arguments of the commands that serve over HTTP: `web` (the daemon's dashboard, API and
//! metrics) and `serve` (a directory's files, as an app).

use clap::Args;

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
