//! `kelpie export`: the apps of an ecosystem file as the files of another engine (systemd units,
//! a Compose file, Kubernetes manifests). Everything here is pure: specs in, file texts and
//! warnings out; the command (`commands/export.rs`) loads the file and writes the result.

mod compose;
mod cron;
mod kubernetes;
mod systemd;
mod yaml;

use anyhow::{bail, Result};
use kelpie_core::AppSpec;
use std::collections::BTreeMap;

pub use systemd::PathLookup;

/// The engine to export to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// One unit per app (plus sockets, timers and targets when needed).
    Systemd,
    /// One `compose.yaml` with a service per app.
    Compose,
    /// A Deployment per app, a Service per app with a port, CronJobs for `cron_restart`.
    Kubernetes,
}

/// What an export produced: files (name, text) in a stable order, and the values that could
/// not be carried over, each naming its app and field.
#[derive(Debug, Default)]
pub struct Export {
    pub files: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// Facts about this machine that the pure exporters need.
pub struct Context<'a> {
    /// Finds a program in `PATH` (systemd wants absolute paths in `ExecStart=`).
    pub lookup: &'a PathLookup,
    /// Major version of the local `node`, for the `node:<major>` image placeholder.
    pub node_major: Option<String>,
}

/// Export `apps` to `target`.
pub fn export(target: Target, apps: &[AppSpec], ctx: &Context<'_>) -> Result<Export> {
    if apps.is_empty() {
        bail!("no app to export (check --only)");
    }
    match target {
        Target::Systemd => systemd::export(apps, ctx.lookup),
        Target::Compose => compose::export(apps, ctx.node_major.as_deref()),
        Target::Kubernetes => kubernetes::export(apps, ctx.node_major.as_deref()),
    }
}

/// The files as one stream for stdout. YAML files are already one document (compose) or a
/// `---`-separated stream (kubernetes, a single file); systemd units get a comment naming each
/// file so the stream can be split by hand.
pub fn as_stream(target: Target, export: &Export) -> String {
    match target {
        Target::Systemd => export
            .files
            .iter()
            .map(|(name, text)| format!("# ==> {name} <==\n{text}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Target::Compose | Target::Kubernetes => export
            .files
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("---\n"),
    }
}

/// A name for `app` made of `allowed` characters only (others become `-`). Distinct apps must
/// keep distinct names, or two files/objects would silently replace each other.
fn unique_names(
    apps: &[AppSpec],
    what: &str,
    convert: impl Fn(&str) -> String,
) -> Result<Vec<String>> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    let mut names = Vec::new();
    for app in apps {
        let name = convert(&app.name);
        if name.is_empty() {
            bail!("app `{}`: name cannot be turned into a {what}", app.name);
        }
        if let Some(other) = seen.insert(name.clone(), &app.name) {
            bail!(
                "apps `{other}` and `{}` both become the {what} `{name}`: rename one",
                app.name
            );
        }
        names.push(name);
    }
    Ok(names)
}

/// A duration in the `5s` / `1500ms` form Compose and systemd both read.
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Whole seconds, rounded up (a timeout must never get shorter), at least `min`.
fn seconds_up(ms: u64, min: u64) -> u64 {
    ms.div_ceil(1000).max(min)
}

/// The file name of an interpreter (`/usr/bin/python3` -> `python3`): containers have their own
/// paths.
fn program_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// An image that can run the app, as a placeholder to replace with the project's own image
/// (built from its Dockerfile). The app's directory is mounted at the same path, so the
/// absolute paths of the command stay valid.
fn image_for(app: &AppSpec, node_major: Option<&str>) -> String {
    let interpreter = app.interpreter.as_deref().map(program_name);
    match interpreter {
        Some("node" | "nodejs") => format!("node:{}", node_major.unwrap_or("lts")),
        Some("bun") => "oven/bun:1".to_string(),
        Some(p) if p.starts_with("python") => "python:3".to_string(),
        Some("ruby") => "ruby:3".to_string(),
        Some("php") => "php:cli".to_string(),
        Some("perl") => "perl:5".to_string(),
        _ => "debian:stable-slim".to_string(),
    }
}

/// The command a container runs: like `command_line`, with the interpreter by name (the image
/// puts it in its own `PATH`).
fn container_command(app: &AppSpec) -> Vec<String> {
    let mut argv = app.command_line();
    if app.interpreter.is_some() {
        if let Some(first) = argv.first_mut() {
            *first = program_name(first).to_string();
        }
    }
    argv
}

/// The TCP port the app serves: Kelpie's `port`, else a numeric `PORT` of its config `env`.
fn tcp_port(app: &AppSpec) -> Option<u16> {
    app.listen.as_ref().and_then(|l| l.port()).or_else(|| {
        app.env
            .get("PORT")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0)
    })
}

/// Warnings shared by the exporters: values that no target engine expresses, so they are never
/// dropped without a word.
fn common_warnings(app: &AppSpec, warnings: &mut Vec<String>) {
    let name = &app.name;
    if !app.watch.is_empty() {
        warnings.push(format!(
            "app `{name}`: field `watch` is not exported: restarting on file changes is a development feature with no equivalent"
        ));
    }
    if let Some(pattern) = &app.ready_pattern {
        warnings.push(format!(
            "app `{name}`: field `ready_pattern` (`{pattern}`) is not exported: readiness from an output line has no equivalent"
        ));
    }
    if app.shutdown_with_message {
        warnings.push(format!(
            "app `{name}`: field `shutdown_with_message` is not exported: there is no Node IPC channel; the app gets `kill_signal`"
        ));
    }
    if app.exp_backoff_restart_delay_ms.is_some() {
        warnings.push(format!(
            "app `{name}`: field `exp_backoff_restart_delay` is not exported: the engine's own restart backoff applies"
        ));
    }
    if app.log_date_format.is_some() || app.log_type != kelpie_core::LogType::Raw {
        warnings.push(format!(
            "app `{name}`: fields `log_date_format`/`log_type` are not exported: the engine's log collector stamps and formats lines"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_shortest_exact_unit() {
        assert_eq!(duration(5000), "5s");
        assert_eq!(duration(1600), "1600ms");
        assert_eq!(seconds_up(1600, 1), 2);
        assert_eq!(seconds_up(0, 1), 1);
    }

    #[test]
    fn names_that_collide_after_conversion_are_an_error() {
        let apps = [
            AppSpec {
                name: "a b".into(),
                ..AppSpec::default()
            },
            AppSpec {
                name: "a_b".into(),
                ..AppSpec::default()
            },
        ];
        let err = unique_names(&apps, "unit name", kelpie_core::sanitize_log_name)
            .expect_err("collision");
        assert!(err.to_string().contains("`a b` and `a_b`"), "{err}");
    }

    #[test]
    fn images_follow_the_interpreter() {
        let with = |i: Option<&str>| AppSpec {
            interpreter: i.map(str::to_string),
            ..AppSpec::default()
        };
        assert_eq!(
            image_for(&with(Some("/usr/bin/node")), Some("20")),
            "node:20"
        );
        assert_eq!(image_for(&with(Some("node")), None), "node:lts");
        assert_eq!(image_for(&with(Some("python3")), None), "python:3");
        assert_eq!(image_for(&with(None), None), "debian:stable-slim");
    }
}
