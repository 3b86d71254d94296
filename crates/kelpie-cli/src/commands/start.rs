//! `start`: scripts, commands and ecosystem files become specs; names and ids of existing apps
//! are restarted (PM2's smart start).

use super::{call, load_context, shell_env};
use crate::cli::StartArgs;
use crate::render;
use anyhow::{bail, Result};
use kelpie_config::ScriptOptions;
use kelpie_core::AppSpec;
use kelpie_proto::{resolve_targets, Home, ProcessInfo, Request, Response, Target, Targetable};
use std::path::Path;
use std::process::ExitCode;

/// Files `kelpie start` looks for when given nothing, in this order.
const DEFAULT_FILES: &[&str] = &[
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.json",
    "ecosystem.yaml",
    "ecosystem.yml",
    "ecosystem.toml",
];

pub fn start(home: &Home, args: StartArgs) -> Result<ExitCode> {
    let ctx = load_context(args.profile.clone(), args.only.clone())?;
    let targets = if args.targets.is_empty() {
        match DEFAULT_FILES.iter().find(|f| Path::new(f).exists()) {
            Some(file) => vec![(*file).to_string()],
            None => bail!("nothing to start: give a script, a command or an ecosystem file (`kelpie init` writes an example)"),
        }
    } else {
        args.targets.clone()
    };

    let existing = existing_names(home, &targets)?;
    let mut file_apps: Vec<AppSpec> = Vec::new();
    let mut script_apps: Vec<AppSpec> = Vec::new();
    let mut restart_targets = Vec::new();
    let options = script_options(&args);
    let scripts = targets
        .iter()
        .filter(|t| !kelpie_config::is_ecosystem_file(t) && !existing.contains(t))
        .count();
    if scripts > 1 && args.name.is_some() {
        bail!("--name applies to one script; start the scripts one at a time");
    }
    for target in &targets {
        if kelpie_config::is_ecosystem_file(target) {
            let loaded = kelpie_config::load_file(Path::new(target), &ctx)?;
            render::print_warnings(&loaded.warnings);
            file_apps.extend(loaded.apps);
        } else if existing.contains(target) {
            restart_targets.push(Target::parse(target));
        } else {
            if ctx.profile.is_some() {
                bail!("--env selects an env_<profile> of an ecosystem file and cannot be used with a script; put the app in an ecosystem file (`kelpie init`)");
            }
            let loaded = kelpie_config::from_script(target, &options, &ctx)?;
            render::print_warnings(&loaded.warnings);
            script_apps.extend(loaded.apps);
        }
    }

    let mut last = None;
    if !file_apps.is_empty() {
        last = Some(call(
            home,
            &Request::Start {
                apps: file_apps,
                force: args.force,
                from_file: true,
            },
        )?);
    }
    if !script_apps.is_empty() {
        last = Some(call(
            home,
            &Request::Start {
                apps: script_apps,
                force: args.force,
                from_file: false,
            },
        )?);
    }
    if !restart_targets.is_empty() {
        let update_env = args.update_env.then(shell_env);
        last = Some(call(
            home,
            &Request::Restart {
                targets: restart_targets,
                update_env,
            },
        )?);
    }
    if let Some(response) = last {
        if let Response::Started { outcomes, .. } = &response {
            render::print_start_outcomes(outcomes);
        }
        render::print_response(&response)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Which of `targets` name existing apps (by name, namespace or id), or are `all`. Only asks
/// the daemon when some target is neither a file nor a command line.
fn existing_names(home: &Home, targets: &[String]) -> Result<Vec<String>> {
    let ambiguous: Vec<&String> = targets
        .iter()
        .filter(|t| !kelpie_config::is_ecosystem_file(t) && !t.contains(' ') && !t.contains('/'))
        .collect();
    if ambiguous.is_empty() {
        return Ok(Vec::new());
    }
    let Response::Processes(list) = call(home, &kelpie_proto::Request::List)? else {
        return Ok(Vec::new());
    };
    let instances: Vec<Targetable<'_>> = list.iter().map(ProcessInfo::targetable).collect();
    Ok(ambiguous
        .into_iter()
        .filter(|t| resolve_targets(&[Target::parse(t)], &instances).is_ok())
        .cloned()
        .collect())
}

fn script_options(args: &StartArgs) -> ScriptOptions {
    ScriptOptions {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        cwd: args.cwd.clone(),
        interpreter: args.interpreter.clone(),
        interpreter_args: args.interpreter_args.clone(),
        args: args.args.clone(),
        instances: args.instances.clone(),
        autorestart: args.no_autorestart.then_some(false),
        autostart: args.no_autostart.then_some(false),
        kill_timeout: args.kill_timeout.clone(),
        restart_delay: args.restart_delay.clone(),
        exp_backoff_restart_delay: args.exp_backoff_restart_delay.clone(),
        max_restarts: args.max_restarts.clone(),
        min_uptime: args.min_uptime.clone(),
        stop_exit_codes: args.stop_exit_codes.clone(),
        max_memory_restart: args.max_memory_restart.clone(),
        kill_signal: args.kill_signal.clone(),
        out_file: args.out_file.clone(),
        error_file: args.error_file.clone(),
        merge_logs: args.merge_logs,
    }
}
