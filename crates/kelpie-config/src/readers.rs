//! One raw app to one `AppSpec`: every field validated, every problem collected.
//!
//! Here: where an app comes from, its name, the field reader and the order fields are read
//! in. The readers by group of fields, in `readers/`: what the app runs and its name
//! (`program`), its environment (`environment`), how it runs and restarts (`policy`), its port
//! (`listen`), its logs (`logs`), and what it reacts to besides its exits (`triggers`).

mod environment;
mod listen;
mod log_files;
mod policy;
mod program;
mod triggers;

use crate::convert;
use crate::normalize::RawApp;
use crate::paths::{absolutize, expand_tilde};
use crate::script;
use crate::serve;
use crate::LoadContext;
use environment::read_env;
use kelpie_core::AppSpec;
use listen::{check_cluster_port, listen_from_env, read_listen};
use log_files::read_logs;
use policy::{read_account, read_instances, read_limits, read_policy, read_source_maps};
use program::{read_cwd, read_name, read_script};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use triggers::{read_cron, read_dependencies, read_health, read_watch};

/// Where an app comes from: decides defaults that differ between files and `kelpie start`.
pub(crate) struct Origin<'a> {
    /// Default working directory, and the base for a relative `cwd`.
    pub base_dir: &'a Path,
    /// Absolute path of the ecosystem file, if any.
    pub source_file: Option<String>,
    /// The `--env` profile, for file loads.
    pub profile: Option<&'a str>,
    /// The file's `deploy.<profile>.env` (already validated), over every app's `env`.
    pub deploy_env: Option<&'a BTreeMap<String, String>>,
    /// The CLI invocation.
    pub ctx: &'a LoadContext,
    /// `script: serve` is the built-in static server (files and `kelpie serve`; for
    /// `kelpie start serve` it is a file or command named `serve`, as in PM2).
    pub builtin_serve: bool,
}

/// The app's working directory as configured, without checking it exists.
fn configured_cwd(raw: &RawApp, origin: &Origin<'_>) -> PathBuf {
    match raw.get("cwd").and_then(|f| f.value.as_str()) {
        Some(cwd) => in_release(
            absolutize(
                origin.base_dir,
                Path::new(&expand_tilde(cwd, origin.ctx.home())),
            ),
            origin.ctx,
        ),
        None => origin.base_dir.to_path_buf(),
    }
}

/// While `kelpie deploy` activates a release (its post-deploy sets `KELPIE_DEPLOY_PATH` and
/// `KELPIE_DEPLOY_RELEASE`), a directory under the deploy path's `current` or `source` means
/// the same directory of the release being activated: `current` still points at the old one
/// until the new one is ready, and the apps must start from the new one (docs/deploy.md).
fn in_release(path: PathBuf, ctx: &LoadContext) -> PathBuf {
    let (Some(root), Some(release)) = (
        ctx.env.get("KELPIE_DEPLOY_PATH"),
        ctx.env.get("KELPIE_DEPLOY_RELEASE"),
    ) else {
        return path;
    };
    for live in ["current", "source"] {
        if let Ok(rest) = path.strip_prefix(Path::new(root).join(live)) {
            return Path::new(release).join(rest);
        }
    }
    path
}

/// The app's name: `name`, else derived from `script`; `None` when neither is usable.
pub(crate) fn app_name(raw: &RawApp, origin: &Origin<'_>) -> Option<String> {
    if let Some(name) = raw.explicit_name() {
        return Some(name.to_string());
    }
    let script = raw.get("script")?.value.as_str()?;
    let cwd = configured_cwd(raw, origin);
    Some(script::default_name(script, &cwd, origin.ctx.home())).filter(|n| !n.is_empty())
}

/// How apps are named in messages: by name, or by position when they have none.
pub(crate) fn label(raw: &RawApp, origin: &Origin<'_>) -> String {
    match app_name(raw, origin) {
        Some(name) => format!("app `{name}`"),
        None => format!("app #{}", raw.index + 1),
    }
}

/// Reads fields, recording "field `x`: …" errors instead of stopping at the first one, and
/// warnings about what PM2 runs but deserves a word.
struct Reader<'a> {
    raw: &'a RawApp,
    errors: Vec<String>,
    warnings: Vec<String>,
    /// Why this app cannot run as written, where PM2 would start it and let it crash-loop: the
    /// app is refused, the file's other apps start.
    refusals: Vec<String>,
}

impl Reader<'_> {
    /// `field` as the file spells it (a PM2 alias or another case), for messages.
    fn spelled<'f>(&'f self, field: &'f str) -> &'f str {
        self.raw.get(field).map_or(field, |f| f.key.as_str())
    }

    /// Like [`Reader::get`], but a value PM2 runs anyway is read as `fallback` with a warning
    /// (an error under `--strict`) instead of refused.
    fn get_or_warn<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        read: impl Fn(&Value) -> Result<T, E>,
        fallback: impl FnOnce(&Value) -> Option<(T, &'static str)>,
    ) -> Option<T> {
        let found = self.raw.get(field)?;
        match read(&found.value) {
            Ok(value) => Some(value),
            Err(message) => match fallback(&found.value) {
                Some((value, what)) => {
                    self.warnings
                        .push(format!("field `{}`: {message}; {what}", found.key));
                    Some(value)
                }
                None => {
                    self.errors
                        .push(format!("field `{}`: {message}", found.key));
                    None
                }
            },
        }
    }

    /// `read` the field's value, if set; an error is recorded as "field `x`: {error}" (any
    /// error that displays as the "expected …, got …" part: readers return [`ValueError`], a few
    /// fields their own).
    ///
    /// [`ValueError`]: crate::convert::ValueError
    fn get<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        read: impl Fn(&Value) -> Result<T, E>,
    ) -> Option<T> {
        let found = self.raw.get(field)?;
        match read(&found.value) {
            Ok(value) => Some(value),
            Err(message) => {
                self.errors
                    .push(format!("field `{}`: {message}", found.key));
                None
            }
        }
    }
}

/// One app's spec, and the warnings about it (each prefixed with the app's label).
pub(crate) struct Built {
    pub spec: AppSpec,
    /// What the entry wrote, for `kelpie export`.
    pub written: crate::Written,
    pub warnings: Vec<String>,
    /// Not to be started, and why (see `Reader::refusals`).
    pub refused: Vec<String>,
}

/// The spec of one app, or every problem found in it (each prefixed with the app's label).
pub(crate) fn read_app(raw: &RawApp, origin: &Origin<'_>) -> Result<Built, Vec<String>> {
    let ctx = origin.ctx;
    let mut r = Reader {
        raw,
        errors: raw.errors.clone(),
        warnings: raw.warnings.clone(),
        refusals: Vec::new(),
    };
    let mut spec = AppSpec {
        inherited_env: std::sync::Arc::new(ctx.env.clone()),
        env_profile: origin.profile.map(str::to_string),
        source_file: origin.source_file.clone(),
        ..AppSpec::default()
    };

    let (cwd, cwd_ok) = read_cwd(&mut r, &mut spec, origin);
    let mut node_options = Vec::new();
    let builtin_serve = read_script(&mut r, &mut spec, origin, (&cwd, cwd_ok), &mut node_options);
    read_name(&mut r, &mut spec, origin);
    if let Some(namespace) = r.get("namespace", convert::string) {
        if let Err(e) = kelpie_core::check_namespace(&namespace) {
            r.errors.push(format!(
                "field `namespace`: {}",
                e.to_string().replacen("app name", "namespace", 1)
            ));
        }
        spec.namespace = namespace;
    }
    spec.args = r.get("args", convert::words).unwrap_or_default();
    if builtin_serve {
        spec.args
            .insert(0, serve::STATIC_SERVER_COMMAND.to_string());
    }

    let env_from_files = read_env(&mut r, &mut spec, origin);
    program::node_options_of_command_line(&mut spec, node_options);
    read_policy(&mut r, &mut spec);
    read_instances(&mut r, &mut spec);
    read_source_maps(&mut r, &mut spec);
    read_listen(&mut r, &mut spec);
    listen_from_env(&mut spec);
    check_cluster_port(&mut r, &spec);
    read_logs(&mut r, &mut spec, &cwd, ctx.home());
    read_limits(&mut r, &mut spec);
    read_account(&mut r, &mut spec);
    read_cron(&mut r, &mut spec);
    read_watch(&mut r, &mut spec, &cwd, ctx.home());
    // After the port and environment: a health check given as a path is checked on the port.
    read_health(&mut r, &mut spec);
    read_dependencies(&mut r, &mut spec);
    if let Some(b) = r.get("vizion", convert::boolean) {
        spec.vizion = b;
    }
    if let Some(b) = r.get("pmx", convert::boolean) {
        spec.pmx = b;
    }

    let label = label(raw, origin);
    let labelled = |list: Vec<String>| list.into_iter().map(|e| format!("{label}: {e}")).collect();
    if r.errors.is_empty() {
        let written = crate::Written {
            fields: raw.fields.keys().copied().collect(),
            instances_cpu_relative: raw
                .get("instances")
                .and_then(|f| convert::instances_cpu_relative(&f.value)),
            env_from_files,
        };
        Ok(Built {
            spec,
            written,
            warnings: labelled(r.warnings),
            refused: labelled(r.refusals),
        })
    } else {
        Err(labelled(r.errors))
    }
}

/// CPUs available to us (cgroup quotas included), read once: it reads cgroup files, and a file
/// may have hundreds of apps.
pub(crate) fn cpu_count() -> u32 {
    static CPUS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_paths_current_means_the_release_being_activated() {
        let mut ctx = LoadContext::default();
        let path = PathBuf::from("/srv/api/current/web");
        assert_eq!(in_release(path.clone(), &ctx), path);
        ctx.env
            .insert("KELPIE_DEPLOY_PATH".into(), "/srv/api".into());
        ctx.env.insert(
            "KELPIE_DEPLOY_RELEASE".into(),
            "/srv/api/releases/20261125-abc1234".into(),
        );
        assert_eq!(
            in_release(path, &ctx),
            PathBuf::from("/srv/api/releases/20261125-abc1234/web")
        );
        assert_eq!(
            in_release(PathBuf::from("/srv/api/source"), &ctx),
            PathBuf::from("/srv/api/releases/20261125-abc1234")
        );
        let other = PathBuf::from("/srv/api/currently");
        assert_eq!(in_release(other.clone(), &ctx), other);
    }
}
