//! One module per group of commands; `run` dispatches.

pub mod conf;
mod control;
mod export;
mod inspect;
mod lifecycle;
mod logs;
mod monit;
mod runtime;
mod start;
mod startup;

use crate::cli::{Cli, Command};
use crate::client::Client;
use anyhow::{anyhow, Result};
use kelpie_config::LoadContext;
use kelpie_proto::{Home, Request, Response, Target};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The daemon and its keeper as the CLI starts them (`kelpie daemon`, `kelpie daemon
/// --keeper`), run without going through the CLI's parser: a long-lived process then never
/// touches (nor keeps resident) the code and tables of every other command. Any other form of
/// `daemon` goes through the parser as usual.
pub fn run_daemon_directly() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    let second = args.next();
    if first != "daemon" || args.next().is_some() {
        return None;
    }
    let home = Home::from_env();
    match second {
        None => Some(
            match lifecycle::daemon(home, kelpie_daemon::DaemonOptions::default()) {
                Ok(code) => code,
                Err(error) => {
                    eprintln!("kelpie: error: {error:#}");
                    ExitCode::FAILURE
                }
            },
        ),
        Some(flag) if flag == "--keeper" => {
            let code = kelpie_daemon::run_keeper(home);
            Some(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Some(_) => None,
    }
}

/// Run one command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let home = Home::from_env();
    match cli.command {
        Command::Daemon {
            handoff_format: true,
            ..
        } => {
            println!("{}", kelpie_daemon::handoff_format());
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon { keeper: true, .. } => {
            let code = kelpie_daemon::run_keeper(home);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Daemon {
            resurrect_if_empty,
            handoff,
            ..
        } => lifecycle::daemon(
            home,
            kelpie_daemon::DaemonOptions {
                resurrect_if_empty,
                handoff,
            },
        ),
        Command::Startup(args) => startup::startup(&home, &args),
        Command::Unstartup(args) => startup::unstartup(&home, &args),
        Command::Start(args) => start::start(&home, *args),
        Command::Stop(args) => {
            control::targeted(&home, &args, |targets| Request::Stop { targets }, "stopped")
        }
        Command::Restart(args) => control::restart(&home, args),
        Command::Reload(args) => control::reload(&home, args),
        Command::Scale { name, count } => control::scale(&home, &name, &count),
        Command::Delete(args) => control::targeted(
            &home,
            &args,
            |targets| Request::Delete { targets },
            "deleted",
        ),
        Command::Reset(args) => {
            control::targeted(&home, &args, |targets| Request::Reset { targets }, "reset")
        }
        Command::Signal { signal, targets } => control::signal(&home, &signal, &targets),
        Command::Pid { target } => inspect::pid(&home, target.as_deref()),
        Command::List(args) => inspect::list(&home, &args),
        Command::Monit(args) => monit::monit(&home, args.interval),
        Command::Jlist { show_secrets } => inspect::jlist(&home, show_secrets),
        Command::Describe {
            target,
            show_secrets,
        } => inspect::describe(&home, &target, show_secrets),
        Command::Events(args) => inspect::events(&home, &args),
        Command::Logs(args) => logs::logs(&home, args),
        Command::Flush { targets } => logs::flush(&home, &targets),
        Command::ReloadLogs => logs::reload(&home),
        Command::Save { force } => lifecycle::save(&home, force),
        Command::Resurrect => lifecycle::resurrect(&home),
        Command::Ping => lifecycle::ping(&home),
        Command::Web(args) => lifecycle::web(&home, args),
        Command::Kill => lifecycle::kill(&home),
        Command::Update => lifecycle::update(&home),
        Command::Init => lifecycle::init(),
        Command::Runtime(args) => runtime::runtime(home, *args),
        Command::Export(args) => export::export(args),
        Command::Conf(command) => conf::run(&home, command),
    }
}

/// Send one request to the daemon (starting it if needed) and turn an error answer into an error.
fn call(home: &Home, request: &Request) -> Result<Response> {
    let mut client = Client::connect_or_start(home)?;
    match client.request(request)? {
        Response::Error(e) => Err(anyhow!(e.message)),
        response => Ok(response),
    }
}

/// The context ecosystem files and scripts are resolved in: this shell's directory and
/// environment.
fn load_context(profile: Option<String>, only: Vec<String>) -> Result<LoadContext> {
    Ok(LoadContext {
        cwd: std::env::current_dir()?,
        env: shell_env(),
        profile,
        only,
    })
}

/// This shell's environment (variables that are not UTF-8 cannot be stored and are skipped).
fn shell_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Targets from the command line; an ecosystem file stands for the names of its apps.
fn resolve_targets(args: &[String], only: &[String]) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for arg in args {
        if kelpie_config::is_ecosystem_file(arg) {
            let ctx = load_context(None, only.to_vec())?;
            let names = kelpie_config::app_names(std::path::Path::new(arg), &ctx)?;
            targets.extend(names.into_iter().map(Target::Name));
        } else {
            targets.push(Target::parse(arg));
        }
    }
    Ok(targets)
}
