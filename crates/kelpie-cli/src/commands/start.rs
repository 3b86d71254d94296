//! `start`: scripts, commands and ecosystem files become specs; names and ids of existing apps
//! are restarted (PM2's smart start).

use super::{call, is_ecosystem, load_context, load_ecosystem, shell_env, strict_mode};
use crate::cli::StartArgs;
use crate::render;
use anyhow::{bail, Result};
use kelpie_config::ScriptOptions;
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
pub enum Then {
    Restart,
    Reload,
}

/// `startOrRestart` / `startOrReload <ecosystem file>`: the file's apps not in the list are
/// started; the others are restarted (as `start <file>` does) or reloaded with the file's
/// config.
pub fn start_or(home: &Home, args: StartArgs, then: Then) -> Result<ExitCode> {
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
        Then::Reload => super::control::reload(
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
                    ignored: args.ignored,
                    start_only: Default::default(),
                },
                parallel: 1,
            },
        ),
    }
}

pub fn start(home: &Home, mut args: StartArgs) -> Result<ExitCode> {
    let argv: Vec<String> = std::env::args().collect();
    script_given_to_log(&mut args, &argv);
    args.ignored.note();
    let ctx = load_context(args.profile.clone(), args.only.clone())?;
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
    let mut file_apps: Vec<AppSpec> = Vec::new();
    let mut script_apps: Vec<AppSpec> = Vec::new();
    let mut restart_targets = Vec::new();
    let options = script_options(&args);
    let scripts = targets
        .iter()
        .filter(|t| !is_ecosystem(t) && !existing.contains(t))
        .count();
    if scripts > 1 && args.name.is_some() {
        bail!("--name applies to one script; start the scripts one at a time");
    }
    for target in &targets {
        if is_ecosystem(target) {
            file_apps.extend(load_ecosystem(target, &ctx, strict)?);
        } else if existing.contains(target) {
            restart_targets.push(super::parse_target(target)?);
        } else {
            if ctx.profile.is_some() {
                bail!("--env selects an env_<profile> of an ecosystem file and cannot be used with a script; put the app in an ecosystem file (`kelpie init`)");
            }
            if let Some(hint) = watch_path_read_as_script(&args, target, &ctx.cwd) {
                bail!(hint);
            }
            let loaded = kelpie_config::from_script(target, &options, &ctx)?;
            let loaded = if strict {
                loaded.strict()?
            } else {
                render::print_warnings(&loaded.warnings);
                loaded
            };
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
        // `start 0 --name new` renames, `start api --node-args ...` changes them, as in PM2.
        let changes = kelpie_proto::SpecChanges {
            name: args.name.clone(),
            interpreter_args: args
                .interpreter_args
                .as_deref()
                .map(super::control::interpreter_args),
            toggle_watch: false,
        };
        if !changes.is_empty() {
            call(
                home,
                &Request::Change {
                    targets: restart_targets.clone(),
                    changes,
                },
            )?;
        }
        let update_env = args.update_env.then(shell_env);
        last = Some(call(
            home,
            &Request::Restart {
                targets: restart_targets,
                update_env,
            },
        )?);
    }
    match last {
        Some(response) => report(&response),
        None => Ok(ExitCode::SUCCESS),
    }
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

pub(super) fn script_options(args: &StartArgs) -> ScriptOptions {
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
        log_file: args.log_file.clone(),
        log_date_format: args.log_date_format.clone(),
        time: args.time,
        log_type: args.log_type.clone(),
        disable_logs: args.disable_logs,
        log_max_size: args.log_max_size.clone(),
        log_retain: args.log_retain.clone(),
        log_compress: args.no_log_compress.then_some(false),
        log_rotate_interval: args.log_rotate_interval.clone(),
        port: args.port.clone(),
        reuse_port: args.reuse_port,
        wait_ready: args.wait_ready,
        listen_timeout: args.listen_timeout.clone(),
        ready_pattern: args.ready_pattern.clone(),
        shutdown_with_message: args.shutdown_with_message,
        no_vizion: args.no_vizion,
        // `--source-map-support` asks for the default, so only the other flag changes anything.
        disable_source_map_support: args.disable_source_map_support,
        instance_var: args.instance_var.clone(),
        max_cpu: args.max_cpu.clone(),
        max_cpu_window: args.max_cpu_window.clone(),
        max_processes: args.max_processes.clone(),
        nice: args.nice.clone(),
        user: args.user.clone(),
        group: args.group.clone(),
        cron_restart: args.cron_restart.clone(),
        cron_timezone: args.cron_timezone.clone(),
        watch: args.watch.clone(),
        // PM2 takes several globs in one word (`--ignore-watch="node_modules *.log"`).
        ignore_watch: args
            .ignore_watch
            .iter()
            .flat_map(|globs| globs.split_whitespace())
            .map(str::to_string)
            .collect(),
        watch_delay: args.watch_delay.clone(),
        health_http: args.health_http.clone(),
        health_tcp: args.health_tcp.clone(),
        health_exec: args.health_exec.clone(),
        health_status: args.health_status.clone(),
        health_interval: args.health_interval.clone(),
        health_timeout: args.health_timeout.clone(),
        health_failures: args.health_failures.clone(),
        health_start_period: args.health_start_period.clone(),
        watchdog: args.watchdog.clone(),
        depends_on: args
            .depends_on
            .iter()
            .map(|name| name.trim().to_string())
            .filter(|name| !name.is_empty())
            .collect(),
        env: Default::default(),
    }
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
    if args.watch.is_empty() {
        return None;
    }
    let base = match &args.cwd {
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
    let Some(value) = args.log_file.clone().filter(|v| !v.is_empty()) else {
        return;
    };
    let options = argv.iter().take_while(|a| a.as_str() != "--");
    let separate = options
        .zip(argv.iter().skip(1))
        .any(|(flag, next)| *next == value && takes_log_value_next(flag));
    if separate {
        args.targets.push(value);
        args.log_file = Some(String::new());
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

    #[test]
    fn log_without_a_path_is_the_default_file() {
        for words in [
            &["app.js", "-l"][..],
            &["app.js", "--log"],
            &["-l", "--", "x"],
            &["app.js", "-l", "--name", "api"],
        ] {
            let args = parse(words);
            assert_eq!(args.log_file.as_deref(), Some(""), "{words:?}");
        }
        assert_eq!(parse(&["app.js"]).log_file, None);
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
            assert_eq!(args.log_file.as_deref(), Some("all.log"), "{words:?}");
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
            assert_eq!(args.log_file.as_deref(), Some(""), "{words:?}");
        }
        // Attached to the flag, it is a path even without a script (the default file is started).
        for words in [&["--log=all.log"][..], &["-lall.log"]] {
            let args = parse(words);
            assert!(args.targets.is_empty(), "{words:?}");
            assert_eq!(args.log_file.as_deref(), Some("all.log"), "{words:?}");
        }
        // `-n` takes a value: `-nl` names the app `l`, it is not `-l`.
        let args = parse(&["-nl", "app.js"]);
        assert_eq!(args.targets, ["app.js"]);
        assert_eq!(args.log_file, None);
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
        let options = script_options(&args);
        assert_eq!(options.log_file, None);
        assert_eq!(options.log_type.as_deref(), Some("json"));
        assert_eq!(options.log_date_format.as_deref(), Some("HH:mm"));
        assert!(options.time);
        assert!(options.disable_logs);
        assert_eq!(options.log_max_size.as_deref(), Some("10M"));
        assert_eq!(options.log_retain.as_deref(), Some("3"));
        assert_eq!(options.log_compress, Some(false));
        assert_eq!(options.log_rotate_interval.as_deref(), Some("hourly"));
        let defaults = script_options(&parse(&["app.js"]));
        assert_eq!(defaults.log_compress, None);
        assert!(!defaults.time && !defaults.disable_logs);
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
            assert_eq!(script_options(&args).watch, ["."], "{words:?}");
        }
        let args = parse(&["--watch=src", "--watch=lib", "app.js", "--watch"]);
        assert_eq!(args.targets, ["app.js"]);
        assert_eq!(script_options(&args).watch, ["src", "lib", "."]);
        assert!(script_options(&parse(&["app.js"])).watch.is_empty());
        // The documented trap: without `=`, the next word is a second target.
        let args = parse(&["app.js", "--watch", "src"]);
        assert_eq!(args.targets, ["app.js", "src"]);
        assert_eq!(args.watch, ["."]);
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
        let o = script_options(&args);
        assert_eq!(o.max_memory_restart.as_deref(), Some("200M"));
        assert_eq!(o.max_cpu.as_deref(), Some("80%"));
        assert_eq!(o.max_cpu_window.as_deref(), Some("30s"));
        assert_eq!(o.nice.as_deref(), Some("-5"));
        assert_eq!(o.user.as_deref(), Some("www"));
        assert_eq!(o.group.as_deref(), Some("staff"));
        assert_eq!(o.cron_restart.as_deref(), Some("0 3 * * *"));
        assert_eq!(o.cron_timezone.as_deref(), Some("UTC"));
        assert_eq!(o.ignore_watch, ["node_modules", "*.log", "tmp/**"]);
        assert_eq!(o.watch_delay.as_deref(), Some("1s"));
        assert_eq!(o.health_http.as_deref(), Some("/health"));
        assert_eq!(o.health_status.as_deref(), Some("204"));
        assert_eq!(o.health_interval.as_deref(), Some("10s"));
        assert_eq!(o.health_timeout.as_deref(), Some("1s"));
        assert_eq!(o.health_failures.as_deref(), Some("5"));
        assert_eq!(o.health_start_period.as_deref(), Some("20s"));
        assert_eq!(o.watchdog.as_deref(), Some("30"));
        assert_eq!(o.depends_on, ["db", "cache", "queue"]);

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
        let o = script_options(&aliases);
        assert_eq!(o.user.as_deref(), Some("1000"));
        assert_eq!(o.group.as_deref(), Some("100"));
        assert_eq!(o.cron_restart.as_deref(), Some("0 * * * *"));
        assert_eq!(o.cron_timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(o.health_tcp.as_deref(), Some("6379"));
        let o = script_options(&parse(&["app.js", "--health-exec", "curl -f localhost"]));
        assert_eq!(o.health_exec.as_deref(), Some("curl -f localhost"));

        let defaults = script_options(&parse(&["app.js"]));
        assert_eq!(defaults.max_cpu, None);
        assert_eq!(defaults.nice, None);
        assert_eq!(defaults.user, None);
        assert_eq!(defaults.cron_restart, None);
        assert!(defaults.watch.is_empty() && defaults.ignore_watch.is_empty());
        assert_eq!(defaults.health_http, None);
        assert_eq!(defaults.watchdog, None);
        assert!(defaults.depends_on.is_empty());
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
        let options = script_options(&args);
        assert_eq!(options.instances.as_deref(), Some("-1"));
        assert_eq!(options.port.as_deref(), Some("127.0.0.1:3000"));
        assert!(options.reuse_port);
        assert!(options.wait_ready);
        assert_eq!(options.listen_timeout.as_deref(), Some("8s"));
        assert_eq!(options.ready_pattern.as_deref(), Some("^listening"));
        assert!(options.shutdown_with_message);
        assert_eq!(options.instance_var.as_deref(), Some("INSTANCE"));
        let defaults = script_options(&parse(&["app.js"]));
        assert_eq!(defaults.port, None);
        assert!(!defaults.reuse_port && !defaults.wait_ready && !defaults.shutdown_with_message);
        assert_eq!(defaults.listen_timeout, None);
        assert_eq!(defaults.ready_pattern, None);
        assert_eq!(defaults.instance_var, None);
    }
}
