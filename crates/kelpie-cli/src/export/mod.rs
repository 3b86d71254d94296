//! `kelpie export`: the apps of an ecosystem file as the files of another engine (systemd units,
//! a Compose file, Kubernetes manifests). Everything here is pure: specs in, file texts and
//! warnings out; the command (`commands/export.rs`) loads the file and writes the result.

mod compose;
mod cron;
mod image;
mod kubernetes;
mod secrets;
mod settings;
mod systemd;
mod yaml;

use anyhow::{bail, Result};
use kelpie_config::Written;
use kelpie_core::AppSpec;
use std::collections::BTreeMap;

pub(crate) use image::{dockerfile_workdir, ImagePlan, DEFAULT_WORKDIR};
pub(crate) use systemd::PathLookup;

/// The engine to export to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
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
pub(crate) struct Export {
    pub files: Vec<(String, String)>,
    pub warnings: Vec<String>,
    /// The files among them that hold secrets: written readable by their owner alone (0600).
    pub private: std::collections::BTreeSet<String>,
}

/// What the pure exporters need besides the apps: what the file wrote, and where the apps are
/// on this machine (systemd) or in their image (Compose, Kubernetes).
pub(crate) struct Context<'a> {
    /// Finds a program in `PATH` (systemd wants absolute paths in `ExecStart=`).
    pub lookup: &'a PathLookup,
    /// What each app's entry wrote, by app name: only what was written is exported.
    pub written: &'a BTreeMap<String, Written>,
    /// Where the apps are in their image.
    pub image: ImagePlan<'a>,
    /// `--secret-ref NAME`: secret values come from a Secret the user manages (Kubernetes) or
    /// from the environment (Compose); none is written.
    pub secret_ref: Option<&'a str>,
    /// This program's path: the systemd units that run `kelpie runtime` start it.
    pub kelpie: &'a str,
    /// Where the units' `EnvironmentFile=`s (their secrets) are: the output directory, or
    /// `/etc/kelpie` when the units go to stdout.
    pub env_dir: &'a str,
}

impl Context<'_> {
    /// What `app`'s entry wrote (nothing for an app not from a file).
    fn written(&self, app: &AppSpec) -> &Written {
        static NOTHING: std::sync::LazyLock<Written> = std::sync::LazyLock::new(Written::default);
        self.written.get(&app.name).unwrap_or(&NOTHING)
    }
}

/// Export `apps` to `target`.
pub(crate) fn export(target: Target, apps: &[AppSpec], ctx: &Context<'_>) -> Result<Export> {
    if apps.is_empty() {
        bail!("no app to export (check --only)");
    }
    match target {
        Target::Systemd => systemd::export(apps, ctx.lookup, ctx.kelpie, ctx.env_dir),
        Target::Compose => compose::export(apps, ctx),
        Target::Kubernetes => kubernetes::export(apps, ctx),
    }
}

/// The files as one stream for stdout. YAML files are already one document (compose) or a
/// `---`-separated stream (kubernetes, a single file); systemd units get a comment naming each
/// file so the stream can be split by hand.
pub(crate) fn as_stream(target: Target, export: &Export) -> String {
    match target {
        Target::Systemd => export
            .files
            .iter()
            .map(|(name, text)| format!("# ==> {name} <==\n{text}"))
            .collect::<Vec<_>>()
            .join("\n"),
        // The kustomization only lists the other files; a `.env` is not YAML (Compose's
        // secrets, written with `-o` only).
        Target::Compose | Target::Kubernetes => export
            .files
            .iter()
            .filter(|(name, _)| name.ends_with(".yaml") && name != kubernetes::KUSTOMIZATION)
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

/// The TCP port the app serves: Kelpie's `port`, else a numeric `PORT` of its config `env`.
fn tcp_port(app: &AppSpec) -> Option<u16> {
    app.listen.as_ref().and_then(|l| l.port()).or_else(|| {
        app.env
            .get("PORT")
            .and_then(|p| p.trim().parse::<u16>().ok())
            .filter(|p| *p > 0)
    })
}

/// Runs `f` with the context of a file in `/srv` exported to an image's `/app`, no program in
/// `PATH`.
#[cfg(test)]
fn with_context<T>(written: &BTreeMap<String, Written>, f: impl FnOnce(&Context<'_>) -> T) -> T {
    let lookup = |_: &str| None;
    let ctx = Context {
        lookup: &lookup,
        written,
        image: ImagePlan {
            image: None,
            workdir: "/app",
            project_dir: "/srv",
            lookup: &lookup,
        },
        secret_ref: None,
        kelpie: "/usr/bin/kelpie",
        env_dir: "/etc/kelpie",
    };
    f(&ctx)
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
}
