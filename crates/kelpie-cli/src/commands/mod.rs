//! One module per group of commands; `run` dispatches.

pub(crate) mod completions;
pub(crate) mod conf;
mod daemon;
mod dump;
mod export;
mod inspect;
mod logs;
mod man;
mod monit;
mod notify;
mod profile;
mod runtime;
mod serve;
mod start;
mod startup;
mod stdin;
mod targeted;
mod trigger;

use crate::cli::{Cli, Command};
use crate::client::Client;
use anyhow::Result;
use kelpie_config::LoadContext;
use kelpie_proto::{Home, Request, Response, Target};
use std::collections::BTreeMap;
use std::process::ExitCode;

/// The daemon and its keeper as the CLI starts them (`kelpie daemon`, `kelpie daemon
/// --keeper`), run without going through the CLI's parser: a long-lived process then never
/// touches (nor keeps resident) the code and tables of every other command. Any other form of
/// `daemon` goes through the parser as usual.
pub(crate) fn run_daemon_directly() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    let first = args.next()?;
    let second = args.next();
    if first != "daemon" || args.next().is_some() {
        return None;
    }
    let home = Home::from_env();
    match second {
        None => Some(
            match daemon::daemon(home, kelpie_daemon::DaemonOptions::default()) {
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
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let home = Home::from_env();
    match cli.command {
        Command::Daemon(args) => daemon_command(home, args),
        Command::Startup(args) => startup::startup(&home, &args),
        Command::Unstartup(args) => startup::unstartup(&home, &args),
        Command::Start(args) => start::start(&home, *args),
        Command::StartOrRestart(args) => start::start_or(&home, *args, start::Then::Restart),
        Command::StartOrReload(args) => start::start_or(&home, *args, start::Then::Reload),
        Command::Stop(args) => targeted::targeted(
            &home,
            &args,
            |targets| Request::Stop(kelpie_proto::Targets { targets }),
            "stopped",
        ),
        Command::Restart(args) => targeted::restart(&home, args),
        Command::Reload(args) => targeted::reload(&home, args),
        Command::Scale { name, count } => targeted::scale(&home, &name, &count),
        Command::Delete(args) => targeted::targeted(
            &home,
            &args,
            |targets| Request::Delete(kelpie_proto::Targets { targets }),
            "deleted",
        ),
        Command::Reset(args) => targeted::targeted(
            &home,
            &args,
            |targets| Request::Reset(kelpie_proto::Targets { targets }),
            "reset",
        ),
        Command::Signal { signal, targets } => targeted::signal(&home, &signal, &targets),
        Command::Profile { kind } => profile::profile(&home, kind),
        Command::Inspect {
            target,
            port,
            open_for,
            close,
        } => profile::inspect(&home, &target, port, open_for, close),
        Command::Send { target, line } => stdin::send(&home, &target, &line),
        Command::Attach { target, separator } => {
            stdin::attach(&home, &target, separator.as_deref())
        }
        Command::Pid { target } => inspect::pid(&home, target.as_deref()),
        Command::Trigger {
            target,
            action,
            param,
            timeout,
        } => trigger::trigger(
            &home,
            &target,
            &action,
            param.as_deref(),
            std::time::Duration::from_secs(timeout),
        ),
        Command::List(args) => inspect::list(&home, &args),
        Command::Monit(args) => monit::monit(&home, args.interval),
        Command::Jlist { show_secrets } => inspect::jlist(&home, show_secrets),
        Command::Prettylist { show_secrets } => inspect::prettylist(&home, show_secrets),
        Command::Env {
            target,
            show_secrets,
        } => inspect::env(&home, &target, show_secrets),
        Command::Id { name } => inspect::ids(&home, &name),
        Command::Describe {
            target,
            json,
            show_secrets,
        } => inspect::describe(&home, &target, json, show_secrets),
        Command::Events(args) => inspect::events(&home, &args),
        Command::Logs(args) => logs::logs(&home, args),
        Command::Flush { targets, deleted } => logs::flush(&home, &targets, deleted),
        Command::ReloadLogs => logs::reload(&home),
        Command::Serve(args) => serve::serve(&home, *args),
        Command::Save { force } => dump::save(&home, force),
        Command::Resurrect => dump::resurrect(&home),
        Command::Ping => daemon::ping(&home),
        Command::Report => daemon::report(&home),
        command @ (Command::ProfileDaemon { .. } | Command::DeepUpdate | Command::Plus { .. }) => {
            pm2_only(&command)
        }
        Command::Web(args) => daemon::web(&home, args),
        Command::Notify { action, json } => notify::notify(&home, action.is_some(), json),
        Command::Errors { app, json, clear } => notify::errors(&home, app, json, clear),
        Command::Kill => daemon::kill(&home),
        Command::Update => daemon::update(&home),
        // PM2's `init simple` and `init` write its two templates; Kelpie's one example serves both.
        Command::Init { mode: _ } => daemon::init(),
        Command::Runtime(args) => runtime::runtime(home, *args),
        Command::Export(args) => export::export(args),
        Command::Deploy(args) => crate::deploy::deploy(args),
        Command::Fleet(args) => crate::deploy::fleet(args),
        Command::Completions { shell } => completions::completions(shell),
        Command::CompleteApps { words } => completions::complete_apps(&home, &words),
        Command::Man => man::man(),
        Command::Conf(command) => conf::run(&home, command),
    }
}

/// `kelpie daemon`'s forms that went through the parser (see [`run_daemon_directly`]).
fn daemon_command(home: Home, args: crate::cli::DaemonArgs) -> Result<ExitCode> {
    if args.handoff_format {
        outln!("{}", kelpie_daemon::handoff_format());
        return Ok(ExitCode::SUCCESS);
    }
    if args.handoff_formats {
        let formats: Vec<String> = kelpie_daemon::handoff_formats()
            .iter()
            .map(u32::to_string)
            .collect();
        outln!("{}", formats.join(" "));
        return Ok(ExitCode::SUCCESS);
    }
    if args.keeper {
        let code = kelpie_daemon::run_keeper(home);
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    daemon::daemon(
        home,
        kelpie_daemon::DaemonOptions {
            resurrect_if_empty: args.resurrect_if_empty,
            handoff: args.handoff,
        },
    )
}

/// PM2's verbs Kelpie answers with what to use instead (they work with PM2's own services).
fn pm2_only(command: &Command) -> Result<ExitCode> {
    match command {
        Command::ProfileDaemon { .. } => outln!("[kelpie] PM2's profile:cpu and profile:mem profile the PM2 daemon itself. To profile a running Node app, without a restart: `kelpie profile cpu <app>` (a .cpuprofile; Node's `--cpu-prof` does it from the start) or `kelpie profile heap <app>` (a .heapsnapshot). Kelpie's daemon is native code: profile it with `perf record -g -p <pid>` (`kelpie ping` prints its pid)"),
        Command::DeepUpdate => outln!("[kelpie] PM2's deepUpdate reinstalls PM2 from npm, then updates its daemon. With Kelpie, install the new version the way you installed this one (`cargo install --locked --path crates/kelpie-cli`, or `npm install -g kelpie`), then `kelpie update`: the daemon becomes the new binary in place, no app restarted (docs/startup.md)"),
        _ => outln!("[kelpie] PM2 Plus (`pm2 plus`, `pm2 link`) is PM2's hosted dashboard; Kelpie's is on this machine, no account needed: `kelpie web` serves a page, an HTTP API and Prometheus /metrics (docs/web.md, docs/observability.md), `kelpie monit` is the terminal dashboard, `[[notify]]` in kelpie.toml sends crashes, crash loops and new exceptions to Slack, Discord, email or a webhook, and `kelpie errors` is the exception inbox (docs/notifications.md)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Send one request to the daemon (starting it if needed) and turn an error answer into an error.
fn call(home: &Home, request: &Request) -> Result<Response> {
    let mut client = Client::connect_or_start(home)?;
    match client.request(request)? {
        Response::Error(e) => Err(crate::exit::from_wire(&e)),
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

/// This shell's environment (variables that are not UTF-8 cannot be stored and are skipped), but
/// Kelpie's own control secrets (`KELPIE_WEB_TOKEN`): they are the user's, not the apps'.
fn shell_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(name, _)| !kelpie_view::secrets::is_control_secret(name))
        .collect()
}

/// The target that stands for an ecosystem file piped to standard input (PM2's `-`).
const STDIN_TARGET: &str = "-";

/// True when `target` is an ecosystem file: by its name, or `-` for one on standard input.
fn is_ecosystem(target: &str) -> bool {
    target == STDIN_TARGET || kelpie_config::is_ecosystem_file(target)
}

/// Standard input, read once (`kelpie start - -` reads the same file twice, not an empty one).
fn stdin_text() -> Result<String> {
    static TEXT: std::sync::OnceLock<Result<String, UnreadableStdin>> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map(|_| text)
            .map_err(|e| UnreadableStdin(std::sync::Arc::new(e)))
    })
    .clone()
    .map_err(anyhow::Error::new)
}

/// Standard input could not be read; kept (hence shared) for a second `-` of the same command.
/// The I/O error is part of the message, not a source: `{:#}` would show it twice.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read an ecosystem file from standard input: {0}")]
struct UnreadableStdin(std::sync::Arc<std::io::Error>);

/// Strict mode: `--strict`, or `strict = true` in `<home>/kelpie.toml`. A kelpie.toml that
/// cannot be read is the daemon's to report, not a reason to refuse a start here.
fn strict_mode(home: &Home, flag: bool) -> bool {
    flag || kelpie_config::DaemonSettings::load(&home.settings_file()).is_ok_and(|s| s.strict)
}

/// The apps of an ecosystem file (`-`: the one on standard input). Its warnings are printed,
/// one line each; in strict mode they are an error instead.
fn load_ecosystem(
    target: &str,
    ctx: &LoadContext,
    strict: bool,
) -> Result<Vec<kelpie_core::AppSpec>> {
    Ok(load_ecosystem_noting_refusals(target, ctx, strict)?.0)
}

/// [`load_ecosystem`], and whether some of the file's apps were refused (each said on stderr;
/// the others are returned to be started).
fn load_ecosystem_noting_refusals(
    target: &str,
    ctx: &LoadContext,
    strict: bool,
) -> Result<(Vec<kelpie_core::AppSpec>, bool)> {
    let loaded = if target == STDIN_TARGET {
        kelpie_config::load_stdin(&stdin_text()?, ctx)?
    } else {
        kelpie_config::load_file(std::path::Path::new(target), ctx)?
    };
    if strict {
        return Ok((loaded.strict()?.apps, false));
    }
    crate::render::print_warnings(&loaded.warnings);
    for refusal in &loaded.refused {
        eprintln!("kelpie: error: {refusal} (not started; the file's other apps are)");
    }
    Ok((loaded.apps, !loaded.refused.is_empty()))
}

/// Targets from the command line; an ecosystem file (or `-`, one on standard input) stands for
/// the names of its apps.
fn resolve_targets(args: &[String], only: &[String]) -> Result<Vec<Target>> {
    let mut targets = Vec::new();
    for arg in args {
        if arg == STDIN_TARGET {
            let ctx = load_context(None, only.to_vec())?;
            let names = kelpie_config::app_names_in_stdin(&stdin_text()?, &ctx)?;
            targets.extend(names.into_iter().map(Target::Name));
        } else if kelpie_config::is_ecosystem_file(arg) {
            let ctx = load_context(None, only.to_vec())?;
            let names = kelpie_config::app_names(std::path::Path::new(arg), &ctx)?;
            targets.extend(names.into_iter().map(Target::Name));
        } else {
            targets.push(parse_target(arg)?);
        }
    }
    Ok(targets)
}

/// One target as typed: `all`, an id, `/regex/`, a name, or a word that may be a script's path
/// (it has a `/` or a `.`: `app.js`, `./bin/server`), which PM2 also matches against the apps'
/// scripts, resolved in this directory.
fn parse_target(arg: &str) -> Result<Target> {
    let target = Target::parse(arg);
    match &target {
        Target::Pattern(pattern) => {
            kelpie_proto::check_pattern(pattern).map_err(anyhow::Error::msg)?;
        }
        Target::Name(name) if name.contains(['/', '.']) => {
            let script =
                kelpie_config::absolutize(&std::env::current_dir()?, std::path::Path::new(name));
            return Ok(Target::NameOrScript {
                name: name.clone(),
                script: script.to_string_lossy().into_owned(),
            });
        }
        _ => {}
    }
    Ok(target)
}
