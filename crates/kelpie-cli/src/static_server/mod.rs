//! `kelpie serve-static [path] [port] [host]`: the built-in static file server that
//! `kelpie serve` (and `script: serve` in a file) starts as an app. Its settings are PM2's
//! `PM2_SERVE_*` variables, so an app written for `pm2 serve` runs unchanged.
//!
//! Run before the CLI's parser, like the daemon: a long-lived server keeps nothing of the other
//! commands resident.

mod auth;
mod content_type;
mod error;
mod file_response;
mod http;
mod lookup;
mod server;
mod settings;

use error::ServeError;
use settings::Settings;
use std::process::ExitCode;

/// Run the server when the command line is `kelpie serve-static …`; `None` otherwise.
pub(crate) fn run_directly() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != kelpie_config::STATIC_SERVER_COMMAND {
        return None;
    }
    let words: Result<Vec<String>, ServeError> = args
        .map(|word| word.into_string().map_err(ServeError::NotUtf8))
        .collect();
    Some(match words.and_then(|words| run(&words)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kelpie serve-static: error: {error}");
            ExitCode::from(error.status() as u8)
        }
    })
}

fn run(words: &[String]) -> Result<(), ServeError> {
    if let Some(option) = words.iter().find(|w| w.starts_with('-')) {
        return Err(ServeError::UnknownOption(option.clone()));
    }
    let cwd = std::env::current_dir().map_err(ServeError::NoWorkingDirectory)?;
    let mut site = Settings::read(|name| std::env::var(name).ok(), words, &cwd)?;
    site.root = site
        .root
        .canonicalize()
        .map_err(|source| ServeError::Root {
            path: site.root.display().to_string(),
            cause: source,
        })?;
    if !site.root.is_dir() {
        return Err(ServeError::NotDirectory(site.root.display().to_string()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(server::serve(site))
}
