//! `start`: scripts, commands and ecosystem files become specs; names and ids of existing apps
//! are restarted (PM2's smart start).

use super::{
    call, is_ecosystem, load_context, load_ecosystem_noting_refusals, shell_env, strict_mode,
};
use crate::cli::StartArgs;
use crate::render;
use anyhow::{bail, Context, Result};
use kelpie_core::AppSpec;
use kelpie_proto::{resolve_targets, Home, ProcessInfo, Request, Response, Target, Targetable};
use std::path::Path;
use std::process::ExitCode;

/// Files `kelpie start` looks for when given nothing, in this order.
pub(super) const DEFAULT_FILES: &[&str] = &[
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.json",
    "ecosystem.yaml",
    "ecosystem.yml",
    "ecosystem.toml",
];

/// What `startOrRestart` / `startOrReload` do with the apps already in the list.
pub(super) enum Then {
    Restart,
    Reload,
}

/// `startOrRestart` / `startOrReload <ecosystem file>`: the file's apps not in the list are
/// started; the others are restarted (as `start <file>` does) or reloaded with the file's
/// config.
pub(super) fn start_or(home: &Home, args: StartArgs, then: Then) -> Result<ExitCode> {
    if args.targets.is_empty()
        || !args
            .targets
            .iter()
            .all(|t| kelpie_config::is_ecosystem_file(t))
    {
        bail!("give an ecosystem file (ecosystem.config.js, .json, .yaml, .toml)");
    }
    match then {
        Then::Restart => start(home, args),
        Then::Reload => super::targeted::reload(
            home,
            crate::cli::ReloadArgs {
                restart: crate::cli::RestartArgs {
                    targets: crate::cli::TargetArgs {
                        targets: args.targets,
                        only: args.only,
                    },
                    update_env: args.update_env,
                    profile: args.profile,
                    name: None,
                    interpreter_args: None,
                    watch: false,
                    no_autorestart: false,
                    ignored: args.ignored,
                    start_only: Default::default(),
                },
                parallel: 1,
            },
        ),
    }
}

pub(super) fn start(home: &Home, mut args: StartArgs) -> Result<ExitCode> {
    let argv: Vec<String> = std::env::args().collect();
    script_given_to_log(&mut args, &argv);
    args.ignored.note();
    // `--env NODE_ENV=development,PORT=3000` (seed 001) sets variables; a bare word is a profile.
    let variables = env_variables(args.profile.as_deref())?;
    let profile = args.profile.clone().filter(|_| variables.is_empty());
    let ctx = load_context(profile, args.only.clone())?;
    let targets = if args.targets.is_empty() {
        match DEFAULT_FILES.iter().find(|f| Path::new(f).exists()) {
            Some(file) => vec![(*file).to_string()],
            None => bail!("nothing to start: give a script, a command or an ecosystem file (`kelpie init` writes an example)"),
        }
    } else {
        args.targets.clone()
    };

    let strict = strict_mode(home, args.strict);
    let existing = existing_names(home, &targets)?;
    let Gathered {
        mut file_apps,
        mut script_apps,
        restart_targets,
        some_refused,
    } = gather(&args, &targets, &ctx, strict, &existing)?;
    for spec in file_apps.iter_mut().chain(script_apps.iter_mut()) {
        spec.env.extend(variables.clone());
    }
    let mut last = None;
    if !file_apps.is_empty() {
        // A refusal of the whole file (too many apps for the open-files limit, a conflict)
        // names it.
        let files: Vec<&str> = targets
            .iter()
            .filter(|t| is_ecosystem(t))
            .map(String::as_str)
            .collect();
        let started = call(
            home,
            &Request::Start(kelpie_proto::StartRequest {
                apps: file_apps,
                force: args.force,
                from_file: true,
            }),
        );
        last = Some(started.with_context(|| files.join(", "))?);
    }
    if !script_apps.is_empty() {
        last = Some(call(
            home,
            &Request::Start(kelpie_proto::StartRequest {
                apps: script_apps,
                force: args.force,
                from_file: false,
            }),
        )?);
    }
    if !restart_targets.is_empty() {
        last = Some(restart_running(home, &args, restart_targets)?);
    }
    let code = match last {
        Some(response) => report(&response)?,
        None => ExitCode::SUCCESS,
    };
    Ok(if some_refused {
        ExitCode::FAILURE
    } else {
        code
    })
}

/// What `start`'s words are: apps of ecosystem files, apps of scripts, and running apps
/// (`start <name>` restarts them, as in PM2).
struct Gathered {
    file_apps: Vec<AppSpec>,
    script_apps: Vec<AppSpec>,
    restart_targets: Vec<kelpie_proto::Target>,
    /// Apps of a file refused on their own (the others start): the command then fails.
    some_refused: bool,
}

/// Read each word of the command line: a file's apps, a script's app, or a running app.
fn gather(
    args: &StartArgs,
    targets: &[String],
    ctx: &kelpie_config::LoadContext,
    strict: bool,
    existing: &[String],
) -> Result<Gathered> {
    let mut gathered = Gathered {
        file_apps: Vec::new(),
        script_apps: Vec::new(),
        restart_targets: Vec::new(),
        some_refused: false,
    };
    let scripts = targets
        .iter()
        .filter(|t| !is_ecosystem(t) && !existing.contains(t))
        .count();
    if scripts > 1 && args.app.name.is_some() {
        bail!("--name applies to one script; start the scripts one at a time");
    }
    for target in targets {
        if is_ecosystem(target) {
            let (apps, refused) = load_ecosystem_noting_refusals(target, ctx, strict)?;
            gathered.file_apps.extend(apps);
            gathered.some_refused |= refused;
        } else if existing.contains(target) {
            gathered.restart_targets.push(super::parse_target(target)?);
        } else {
            if ctx.profile.is_some() {
                bail!("--env selects an env_<profile> of an ecosystem file and cannot be used with a script; put the app in an ecosystem file (`kelpie init`)");
            }
            if let Some(hint) = watch_path_read_as_script(args, target, &ctx.cwd) {
                bail!(hint);
            }
            let loaded = kelpie_config::from_script(target, &args.app, ctx)?;
            let loaded = if strict {
                loaded.strict()?
            } else {
                render::print_warnings(&loaded.warnings);
                loaded
            };
            gathered.script_apps.extend(loaded.apps);
        }
    }

    Ok(gathered)
}

/// `start` of running apps: their restart, after the changes the flags ask for.
fn restart_running(
    home: &Home,
    args: &StartArgs,
    restart_targets: Vec<kelpie_proto::Target>,
) -> Result<Response> {
    // `start 0 --name new` renames, `start api --node-args ...` changes them, and
    // `start api --no-autorestart` turns it off, as in PM2.
    let changes = kelpie_proto::SpecChanges {
        name: args.app.name.clone(),
        interpreter_args: args
            .app
            .interpreter_args
            .as_deref()
            .map(super::targeted::interpreter_args),
        toggle_watch: false,
        autorestart: args.app.no_autorestart.then_some(false),
    };
    if !changes.is_empty() {
        call(
            home,
            &Request::Change(kelpie_proto::ChangeRequest {
                targets: restart_targets.clone(),
                changes,
            }),
        )?;
    }
    let update_env = args.update_env.then(shell_env);
    call(
        home,
        &Request::Restart(kelpie_proto::RestartRequest {
            targets: restart_targets,
            update_env,
        }),
    )
}

/// The variables of `--env K=V[,K=V...]`, empty when the value is a profile's name (no `=`).
fn env_variables(value: Option<&str>) -> Result<std::collections::BTreeMap<String, String>> {
    let mut variables = std::collections::BTreeMap::new();
    let Some(value) = value.filter(|v| v.contains('=')) else {
        return Ok(variables);
    };
    for pair in value.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((name, text)) = pair.split_once('=') else {
            bail!("--env {value}: `{pair}` is not NAME=value (variables are NAME=value, separated by commas)");
        };
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            bail!("--env {value}: `{name}` is not a variable name");
        }
        variables.insert(name.to_string(), text.to_string());
    }
    Ok(variables)
}

/// Print what a start did (and the list); failure when some app could not be started.
pub(super) fn report(response: &Response) -> Result<ExitCode> {
    let mut failed = false;
    if let Response::Started {
        outcomes, failures, ..
    } = response
    {
        render::print_start_outcomes(outcomes);
        render::print_log_problems(outcomes, response);
        for failure in failures {
            eprintln!("[kelpie] {failure}");
        }
        failed = !failures.is_empty();
    }
    render::print_response(response)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Which of `targets` name existing apps (by name, namespace or id), or are `all`. Only asks
/// the daemon when some target is neither a file nor a command line.
fn existing_names(home: &Home, targets: &[String]) -> Result<Vec<String>> {
    let ambiguous: Vec<&String> = targets
        .iter()
        .filter(|t| !is_ecosystem(t) && !t.contains(' ') && !t.contains('/'))
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

/// A bare `--watch` takes no value (its paths are written `--watch=PATH`), so in
/// `kelpie start app.js --watch src` the word `src` is a second script. When such a script is a
/// directory, the user almost certainly meant to watch it: say how, instead of "script is a
/// directory".
pub(super) fn watch_path_read_as_script(
    args: &StartArgs,
    target: &str,
    cwd: &Path,
) -> Option<String> {
    if args.app.watch.is_empty() {
        return None;
    }
    let base = match &args.app.cwd {
        Some(dir) => cwd.join(dir),
        None => cwd.to_path_buf(),
    };
    if !base.join(target).is_dir() {
        return None;
    }
    Some(format!(
        "`{target}` is a directory, not a script: to watch it, write --watch={target} (a bare --watch watches the app's directory, and the word after it is read as the script)"
    ))
}

/// `-l`/`--log` take an optional path, as in PM2, so in `kelpie start -l app.js` the parser
/// hands `app.js` to `-l` and leaves nothing to start. When no target was given and the path was
/// a separate word after `-l`/`--log` (not `--log=PATH` or `-lPATH`), that word is the script
/// and the combined log goes to its default file.
pub(super) fn script_given_to_log(args: &mut StartArgs, argv: &[String]) {
    if !args.targets.is_empty() {
        return;
    }
    let Some(value) = args.app.log_file.clone().filter(|v| !v.is_empty()) else {
        return;
    };
    let options = argv.iter().take_while(|a| a.as_str() != "--");
    let separate = options
        .zip(argv.iter().skip(1))
        .any(|(flag, next)| *next == value && takes_log_value_next(flag));
    if separate {
        args.targets.push(value);
        args.app.log_file = Some(String::new());
    }
}

/// `-l`, `--log`, or a cluster of `start`'s short switches ending in `l` (`-fl`).
fn takes_log_value_next(word: &str) -> bool {
    if word == "--log" {
        return true;
    }
    match word.strip_prefix('-').and_then(|w| w.strip_suffix('l')) {
        Some(switches) => !switches.starts_with('-') && switches.chars().all(|c| "af".contains(c)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    /// `kelpie start <words>` parsed, with the `-l` fix applied, as the options sent to config.
    fn parse(words: &[&str]) -> StartArgs {
        let argv: Vec<String> = ["kelpie", "start"]
            .iter()
            .chain(words)
            .map(|w| w.to_string())
            .collect();
        let Command::Start(args) = Cli::try_parse_from(&argv).expect("parses").command else {
            panic!("not start");
        };
        let mut args = *args;
        script_given_to_log(&mut args, &argv);
        args
    }

    /// The app fields the flags become, as a file would write them.
    fn fields(args: &StartArgs) -> serde_json::Value {
        serde_json::Value::Object(args.app.fields())
    }

    #[test]
    fn log_without_a_path_is_the_default_file() {
        for words in [
            &["app.js", "-l"][..],
            &["app.js", "--log"],
            &["-l", "--", "x"],
            &["app.js", "-l", "--name", "api"],
        ] {
            let args = parse(words);
            assert_eq!(args.app.log_file.as_deref(), Some(""), "{words:?}");
        }
        assert_eq!(parse(&["app.js"]).app.log_file, None);
    }

    #[test]
    fn log_takes_a_path_after_the_script_or_with_equals() {
        for words in [
            &["app.js", "-l", "all.log"][..],
            &["app.js", "--log", "all.log"],
            &["--log=all.log", "app.js"],
            &["-l", "all.log", "app.js"],
            &["app.js", "-lall.log"],
        ] {
            let args = parse(words);
            assert_eq!(args.targets, ["app.js"], "{words:?}");
            assert_eq!(args.app.log_file.as_deref(), Some("all.log"), "{words:?}");
        }
    }

    #[test]
    fn a_lone_word_after_l_is_the_script() {
        for words in [
            &["-l", "app.js"][..],
            &["--log", "app.js"],
            &["-fl", "app.js"],
            &["-l", "app.js", "--", "--port", "80"],
        ] {
            let args = parse(words);
            assert_eq!(args.targets, ["app.js"], "{words:?}");
            assert_eq!(args.app.log_file.as_deref(), Some(""), "{words:?}");
        }
        // Attached to the flag, it is a path even without a script (the default file is started).
        for words in [&["--log=all.log"][..], &["-lall.log"]] {
            let args = parse(words);
            assert!(args.targets.is_empty(), "{words:?}");
            assert_eq!(args.app.log_file.as_deref(), Some("all.log"), "{words:?}");
        }
        // `-n` takes a value: `-nl` names the app `l`, it is not `-l`.
        let args = parse(&["-nl", "app.js"]);
        assert_eq!(args.targets, ["app.js"]);
        assert_eq!(args.app.log_file, None);
    }

    #[test]
    fn log_flags_become_script_options() {
        let args = parse(&[
            "app.js",
            "--log-type",
            "json",
            "--log-date-format",
            "HH:mm",
            "--time",
            "--disable-logs",
            "--log-max-size",
            "10M",
            "--log-retain",
            "3",
            "--no-log-compress",
            "--log-rotate-interval",
            "hourly",
        ]);
        assert_eq!(
            fields(&args),
            json!({
                "log_type": "json",
                "log_date_format": "HH:mm",
                "time": true,
                "disable_logs": true,
                "log_max_size": "10M",
                "log_retain": "3",
                "log_compress": false,
                "log_rotate_interval": "hourly",
            })
        );
        assert_eq!(fields(&parse(&["app.js"])), json!({}));
    }

    #[test]
    fn a_bare_watch_does_not_take_the_script() {
        for words in [
            &["--watch", "app.js"][..],
            &["app.js", "--watch"],
            &["--watch", "--name", "api", "app.js"],
            &["--watch", "app.js", "--", "--port", "80"],
        ] {
            let args = parse(words);
            assert_eq!(args.targets, ["app.js"], "{words:?}");
            assert_eq!(args.app.watch, ["."], "{words:?}");
        }
        let args = parse(&["--watch=src", "--watch=lib", "app.js", "--watch"]);
        assert_eq!(args.targets, ["app.js"]);
        assert_eq!(args.app.watch, ["src", "lib", "."]);
        assert!(parse(&["app.js"]).app.watch.is_empty());
        // The documented trap: without `=`, the next word is a second target.
        let args = parse(&["app.js", "--watch", "src"]);
        assert_eq!(args.targets, ["app.js", "src"]);
        assert_eq!(args.app.watch, ["."]);
    }

    #[test]
    fn a_directory_after_a_bare_watch_gets_a_hint() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("src")).expect("mkdir");
        std::fs::write(dir.path().join("app.js"), "").expect("write");
        let args = parse(&["app.js", "--watch", "src"]);
        assert_eq!(watch_path_read_as_script(&args, "app.js", dir.path()), None);
        assert_eq!(
            watch_path_read_as_script(&args, "src", dir.path()).as_deref(),
            Some("`src` is a directory, not a script: to watch it, write --watch=src (a bare --watch watches the app's directory, and the word after it is read as the script)")
        );
        let unwatched = parse(&["app.js", "src"]);
        assert_eq!(
            watch_path_read_as_script(&unwatched, "src", dir.path()),
            None
        );
        let elsewhere = parse(&["--cwd", "src", "app.js", "--watch", "src"]);
        assert_eq!(
            watch_path_read_as_script(&elsewhere, "src", dir.path()),
            None
        );
    }

    #[test]
    fn health_issue_flags_become_script_options() {
        let args = parse(&[
            "--max-memory-restart",
            "200M",
            "--max-cpu",
            "80%",
            "--max-cpu-window",
            "30s",
            "--nice",
            "-5",
            "--uid",
            "www",
            "--gid",
            "staff",
            "--cron",
            "0 3 * * *",
            "--cron-timezone",
            "UTC",
            "--ignore-watch",
            "node_modules *.log",
            "--ignore-watch",
            "tmp/**",
            "--watch-delay",
            "1s",
            "--health-http",
            "/health",
            "--health-status",
            "204",
            "--health-interval",
            "10s",
            "--health-timeout",
            "1s",
            "--health-failures",
            "5",
            "--health-start-period",
            "20s",
            "--watchdog",
            "30",
            "--depends-on",
            "db,cache",
            "--depends-on",
            "queue",
            "app.js",
        ]);
        assert_eq!(args.targets, ["app.js"]);
        // As a file writes them: the globs split, `--uid` as `uid`, the health flags as one
        // object.
        assert_eq!(
            fields(&args),
            json!({
                "max_memory_restart": "200M",
                "max_cpu": "80%",
                "max_cpu_window": "30s",
                "nice": "-5",
                "uid": "www",
                "gid": "staff",
                "cron_restart": "0 3 * * *",
                "cron_timezone": "UTC",
                "ignore_watch": ["node_modules", "*.log", "tmp/**"],
                "watch_delay": "1s",
                "health_check": {
                    "http": "/health",
                    "status": "204",
                    "interval": "10s",
                    "timeout": "1s",
                    "failures": "5",
                    "start_period": "20s",
                },
                "watchdog": "30",
                "depends_on": ["db", "cache", "queue"],
            })
        );

        let aliases = parse(&[
            "app.js",
            "--user",
            "1000",
            "--group",
            "100",
            "--cron-restart",
            "0 * * * *",
            "--cron-tz",
            "Europe/Paris",
            "--health-tcp",
            "6379",
        ]);
        assert_eq!(
            fields(&aliases),
            json!({
                "uid": "1000",
                "gid": "100",
                "cron_restart": "0 * * * *",
                "cron_timezone": "Europe/Paris",
                "health_check": {"tcp": "6379"},
            })
        );
        let exec = parse(&["app.js", "--health-exec", "curl -f localhost"]);
        assert_eq!(
            fields(&exec),
            json!({"health_check": {"exec": "curl -f localhost"}})
        );
    }

    #[test]
    fn one_health_probe_flag_at_most() {
        for words in [
            &["app.js", "--health-http", "/h", "--health-tcp", "80"][..],
            &["app.js", "--health-tcp", "80", "--health-exec", "true"],
            &["app.js", "--health-http", "/h", "--health-exec", "true"],
        ] {
            let argv: Vec<&str> = ["kelpie", "start"].iter().chain(words).copied().collect();
            let err = Cli::try_parse_from(&argv).expect_err("conflict");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{words:?}"
            );
        }
    }

    #[test]
    fn port_readiness_and_instance_flags_become_script_options() {
        let args = parse(&[
            "app.js",
            "-i",
            "-1",
            "--port",
            "127.0.0.1:3000",
            "--reuse-port",
            "--wait-ready",
            "--listen-timeout",
            "8s",
            "--ready-pattern",
            "^listening",
            "--shutdown-with-message",
            "--instance-var",
            "INSTANCE",
        ]);
        assert_eq!(
            fields(&args),
            json!({
                "instances": "-1",
                "port": "127.0.0.1:3000",
                "reuse_port": true,
                "wait_ready": true,
                "listen_timeout": "8s",
                "ready_pattern": "^listening",
                "shutdown_with_message": true,
                "instance_var": "INSTANCE",
            })
        );
    }
}
