//! `kelpie`: the CLI, and (hidden) the daemon itself.
#![recursion_limit = "256"]

/// `println!` for the CLI's output, which a closed pipe (`kelpie jlist | head -c 10`) does not
/// turn into a panic: see [`output::write`].
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI's output; see [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

mod cli;
mod client;
mod commands;
mod deploy;
mod exit;
mod export;
mod output;
mod render;
mod static_server;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = commands::run_daemon_directly() {
        return code;
    }
    if let Some(code) = static_server::run_directly() {
        return code;
    }
    let cli = match std::env::args_os()
        .map(|a| a.into_string())
        .collect::<Result<Vec<String>, _>>()
    {
        Ok(mut args) => {
            // The bare version, as `pm2 --version` prints it: scripts read it as it is.
            if matches!(
                args.get(1).map(String::as_str),
                Some("-v" | "-V" | "--version")
            ) {
                outln!("{}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            // A link named `pm2-runtime` (as Dockerfiles written for PM2 run it) is `kelpie
            // runtime`, which pm2-runtime's `start <file>` form means too; its home has PM2's
            // names, as a link named `pm2` does (see `Home`).
            if args.first().is_some_and(|program| {
                std::path::Path::new(program).file_name() == Some("pm2-runtime".as_ref())
            }) {
                if args.get(1).map(String::as_str) == Some("start") {
                    args.remove(1);
                }
                args.insert(1, "runtime".to_string());
            }
            // PM2 takes any of its options on any verb: one the verb does not use is named
            // and left out, not a usage error.
            let removed = cli::other_verbs::remove_foreign_options(&mut args);
            if !removed.is_empty() {
                let verb = args.iter().skip(1).find(|a| !a.starts_with('-'));
                eprintln!(
                    "[kelpie] `{}` does not use {}: ignored",
                    verb.map_or("kelpie", String::as_str),
                    removed.join(", ")
                );
            }
            cli::Cli::parse_from(args)
        }
        // A word that is not UTF-8 (a file name): clap says what it makes of it.
        Err(_) => cli::Cli::parse(),
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // `kelpie jlist | head` closing stdout is not an error. Only a bare I/O error is a
            // stdout write: socket errors always carry context saying what failed.
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("kelpie: error: {error:#}");
            ExitCode::from(exit::status_of(&error) as u8)
        }
    }
}
