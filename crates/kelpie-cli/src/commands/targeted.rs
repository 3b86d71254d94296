//! The commands that act on targets (names, ids, namespaces, `all`...): stop, restart, reload,
//! scale, delete, reset, signal.

use super::strict_mode;
use super::{call, is_ecosystem, load_context, load_ecosystem, resolve_targets, shell_env};
use crate::cli::{ReloadArgs, RestartArgs, TargetArgs};
use crate::render;
use anyhow::Result;
use kelpie_proto::{Home, Request, Response, ScaleCount, SpecChanges, Target};
use std::process::ExitCode;

/// A command that acts on targets and answers with the list.
pub(super) fn targeted(
    home: &Home,
    args: &TargetArgs,
    make: impl FnOnce(Vec<Target>) -> Request,
    done: &str,
) -> Result<ExitCode> {
    let targets = resolve_targets(&args.targets, &args.only)?;
    let response = call(home, &make(targets))?;
    outln!("[kelpie] {} {}", args.targets.join(" "), done);
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

/// `restart`: by name/id (environment kept unless `--update-env`), or by ecosystem file (the
/// file's current config is applied, as PM2 does).
pub(super) fn restart(home: &Home, args: RestartArgs) -> Result<ExitCode> {
    let files: Vec<&String> = args
        .targets
        .targets
        .iter()
        .filter(|a| is_ecosystem(a))
        .collect();
    if !files.is_empty() {
        let ctx = load_context(args.profile.clone(), args.targets.only.clone())?;
        let loads = files.iter().map(|file| (file.as_str(), ctx.clone()));
        render::print_response(&restart_files(home, loads)?)?;
    }
    let names: Vec<String> = args
        .targets
        .targets
        .iter()
        .filter(|a| !is_ecosystem(a))
        .cloned()
        .collect();
    if let (false, Some(profile)) = (names.is_empty(), &args.profile) {
        return restart_with_profile(home, &names, profile);
    }
    if !names.is_empty() {
        let targets = resolve_targets(&names, &[])?;
        apply_changes(home, &args, &targets)?;
        let update_env = args.update_env.then(shell_env);
        let response = call(
            home,
            &Request::Restart(kelpie_proto::RestartRequest {
                targets,
                update_env,
            }),
        )?;
        outln!("[kelpie] {} restarted", names.join(" "));
        render::print_response(&response)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `restart <app> --env <profile>` (seed 002's way to switch a running app): the apps named are
/// restarted with the `env_<profile>` of the ecosystem file each came from, read again now, as
/// `restart <file> --env <profile> --only <apps>` would.
fn restart_with_profile(home: &Home, names: &[String], profile: &str) -> Result<ExitCode> {
    let targets = resolve_targets(names, &[])?;
    let Response::Processes(list) = call(home, &Request::List)? else {
        anyhow::bail!("the daemon did not answer with the list of apps");
    };
    let instances: Vec<_> = list
        .iter()
        .map(kelpie_proto::ProcessInfo::targetable)
        .collect();
    let ids = kelpie_proto::resolve_targets(&targets, &instances).map_err(|unknown| {
        crate::exit::failed(
            crate::exit::Status::NotFound,
            format!("no app matches {unknown:?}"),
        )
    })?;
    // Each file, with the apps of it to restart.
    let mut files: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for info in list.iter().filter(|p| ids.contains(&p.pm_id)) {
        let Some(file) = &info.spec.source_file else {
            anyhow::bail!(
                "app `{}` was not started from an ecosystem file: --env {profile} selects the env_{profile} of one (start it from its file)",
                info.spec.name
            );
        };
        let apps = files.entry(file.clone()).or_default();
        if !apps.contains(&info.spec.name) {
            apps.push(info.spec.name.clone());
        }
    }
    let mut loads = Vec::new();
    for (file, only) in &files {
        loads.push((
            file.as_str(),
            load_context(Some(profile.to_string()), only.clone())?,
        ));
    }
    let response = restart_files(home, loads.into_iter())?;
    outln!(
        "[kelpie] {} restarted with env_{profile} of {}",
        names.join(" "),
        files.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

/// Restart the apps of ecosystem files with their current config (PM2's smart start of a
/// file), each file read in its context.
fn restart_files<'a>(
    home: &Home,
    loads: impl Iterator<Item = (&'a str, kelpie_config::LoadContext)>,
) -> Result<Response> {
    let strict = strict_mode(home, false);
    let mut apps = Vec::new();
    for (file, ctx) in loads {
        apps.extend(load_ecosystem(file, &ctx, strict)?);
    }
    call(
        home,
        &Request::Start(kelpie_proto::StartRequest {
            apps,
            force: false,
            from_file: true,
        }),
    )
}

/// `reload`: by name/id, or by ecosystem file (its current config is applied, then the apps
/// are reloaded). Exits non-zero, naming each instance, when a new process was not ready.
pub(super) fn reload(home: &Home, args: ReloadArgs) -> Result<ExitCode> {
    let restart = &args.restart;
    let (files, names): (Vec<&String>, Vec<&String>) = restart
        .targets
        .targets
        .iter()
        .partition(|a| is_ecosystem(a));
    let mut apps = Vec::new();
    if !files.is_empty() {
        let ctx = load_context(restart.profile.clone(), restart.targets.only.clone())?;
        let strict = strict_mode(home, false);
        for file in &files {
            apps.extend(load_ecosystem(file, &ctx, strict)?);
        }
    } else if restart.profile.is_some() {
        anyhow::bail!("--env selects a profile of an ecosystem file; reload the file itself (`kelpie reload ecosystem.config.js --env <profile>`)");
    }
    let names: Vec<String> = names.into_iter().cloned().collect();
    let targets = if names.is_empty() {
        Vec::new()
    } else {
        resolve_targets(&names, &[])?
    };
    apply_changes(home, restart, &targets)?;
    let response = call(
        home,
        &Request::Reload(kelpie_proto::ReloadRequest {
            targets,
            apps,
            update_env: restart.update_env.then(shell_env),
            parallel: args.parallel,
        }),
    )?;
    outln!("[kelpie] {} reloaded", restart.targets.targets.join(" "));
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

/// The settings `restart`/`reload` change before acting, as PM2's do (`--name`,
/// `--node-args`, `--watch`, `--no-autorestart`: the settings table's rows that say
/// `OnRestart::Applied`); with an ecosystem file its own settings apply instead.
fn apply_changes(home: &Home, args: &RestartArgs, targets: &[Target]) -> Result<()> {
    args.ignored.note();
    args.start_only.note();
    let changes = SpecChanges {
        name: args.name.clone(),
        interpreter_args: args.interpreter_args.as_deref().map(interpreter_args),
        toggle_watch: args.watch,
        autorestart: args.no_autorestart.then_some(false),
    };
    if changes.is_empty() {
        return Ok(());
    }
    if targets.is_empty() {
        anyhow::bail!("--name, --node-args, --watch and --no-autorestart change apps given by name or id, not an ecosystem file (edit the file)");
    }
    call(
        home,
        &Request::Change(kelpie_proto::ChangeRequest {
            targets: targets.to_vec(),
            changes,
        }),
    )?;
    Ok(())
}

/// `--node-args` of a restart: words, or none for `null` or "" (PM2 clears them so).
pub(super) fn interpreter_args(text: &str) -> Vec<String> {
    match text.trim() {
        "null" | "" => Vec::new(),
        words => words.split_whitespace().map(str::to_string).collect(),
    }
}

/// `scale <app> N|+N|-N`.
pub(super) fn scale(home: &Home, name: &str, count: &str) -> Result<ExitCode> {
    let count = ScaleCount::parse(count).map_err(anyhow::Error::msg)?;
    let response = call(
        home,
        &Request::Scale(kelpie_proto::ScaleRequest {
            name: name.to_string(),
            count,
        }),
    )?;
    outln!("[kelpie] {name} scaled");
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}

/// `signal <SIG> <targets>`.
pub(super) fn signal(home: &Home, signal: &str, args: &TargetArgs) -> Result<ExitCode> {
    let targets = resolve_targets(&args.targets, &args.only)?;
    let response = call(
        home,
        &Request::Signal(kelpie_proto::SignalRequest {
            signal: signal.to_string(),
            targets,
        }),
    )?;
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}
