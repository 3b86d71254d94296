//! `kelpie serve-static [path] [port] [host]`: the built-in static file server that
//! `kelpie serve` (and `script: serve` in a file) starts as an app. Its settings are PM2's
//! `PM2_SERVE_*` variables, so an app written for `pm2 serve` runs unchanged.
//!
//! Run before the CLI's parser, like the daemon: a long-lived server keeps nothing of the other
//! commands resident.

mod auth;
mod content_type;
mod file_response;
mod http;
mod lookup;
mod server;
mod settings;

use settings::Settings;
use std::process::ExitCode;

/// Run the server when the command line is `kelpie serve-static …`; `None` otherwise.
pub fn run_directly() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != kelpie_config::STATIC_SERVER_COMMAND {
        return None;
    }
    let words: Result<Vec<String>, String> = args
        .map(|word| {
            word.into_string()
                .map_err(|word| format!("argument {word:?} is not UTF-8"))
        })
        .collect();
    Some(match words.and_then(|words| run(&words)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kelpie serve-static: error: {message}");
            ExitCode::FAILURE
        }
    })
}

fn run(words: &[String]) -> Result<(), String> {
    if let Some(option) = words.iter().find(|w| w.starts_with('-')) {
        return Err(format!(
            "unknown option `{option}`: the settings are [path] [port] [host], or PM2_SERVE_* variables"
        ));
    }
    let cwd = std::env::current_dir().map_err(|e| format!("no working directory: {e}"))?;
    let mut site = Settings::read(|name| std::env::var(name).ok(), words, &cwd)?;
    site.root = site
        .root
        .canonicalize()
        .map_err(|e| format!("cannot serve {}: {e}", site.root.display()))?;
    if !site.root.is_dir() {
        return Err(format!("{} is not a directory", site.root.display()));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(server::serve(site))
}
