//! The app's environment: `env_file`, `env`, the file's deploy env and `env_<profile>`, merged
//! in PM2's order; Python's unbuffered output.

use super::{Origin, Reader};
use crate::convert;
use crate::paths::{absolutize, expand_tilde};
use crate::ValueError;
use kelpie_core::{AppSpec, EnvFilter};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `env_file`, `env`, every `env_<profile>` (all validated, the selected one merged) and Python's
/// unbuffered output. As PM2 7 does: the app's `env`, the file's `deploy.<profile>.env` over
/// it, and the app's `env_<profile>` over both. (PM2's `mergeEnvironmentVariables` says the
/// deploy env has the least priority, but it writes it into the app's own `env` object, so it
/// wins over `env`; this is what PM2 users' apps get, checked with PM2 7.0.4.)
///
/// Returns the names whose value comes from `env_file` (none of the later sections replaced
/// it): `kelpie export` keeps them out of the files it writes in clear.
pub(super) fn read_env(
    r: &mut Reader<'_>,
    spec: &mut AppSpec,
    origin: &Origin<'_>,
) -> BTreeSet<String> {
    let profile = origin.profile;
    spec.filter_env = r.get("filter_env", env_filter).unwrap_or_default();
    let cwd = PathBuf::from(&spec.cwd);
    let home = origin.ctx.home();
    spec.env = r
        .get("env_file", |value| env_files(value, &cwd, home))
        .unwrap_or_default();
    let from_files = spec.env.clone();
    if let Some(env) = r.get("env", crate::env::variables) {
        spec.env.extend(env);
        if let Some(field) = r.raw.fields.get("env") {
            spec.env_typed
                .extend(crate::env::typed_names(&field.value).cloned());
        }
    }
    if let Some(deploy) = origin.deploy_env {
        spec.env
            .extend(deploy.iter().map(|(k, v)| (k.clone(), v.clone())));
        spec.env_typed.retain(|name| !deploy.contains_key(name));
    }
    for (name, field) in &r.raw.profiles {
        match crate::env::variables(&field.value) {
            Ok(vars) if Some(name.as_str()) == profile => {
                // The profile's values win, with their own types.
                spec.env_typed.retain(|name| !vars.contains_key(name));
                spec.env_typed
                    .extend(crate::env::typed_names(&field.value).cloned());
                spec.env.extend(vars);
            }
            Ok(_) => {}
            Err(message) => r.errors.push(format!("field `{}`: {message}", field.key)),
        }
    }
    let python = spec
        .interpreter
        .as_deref()
        .is_some_and(crate::interpreter::is_python);
    let already_set = spec.env.contains_key("PYTHONUNBUFFERED")
        || spec.inherited_env.contains_key("PYTHONUNBUFFERED");
    if python && !already_set {
        spec.env
            .insert("PYTHONUNBUFFERED".to_string(), "1".to_string());
    }
    from_files
        .into_iter()
        .filter(|(name, value)| spec.env.get(name) == Some(value))
        .map(|(name, _)| name)
        .collect()
}

/// `filter_env`: `true` (no inherited variable), `false`, one variable's exact name, or a list of
/// texts (variables whose name contains one are left out), as PM2 reads it.
fn env_filter(value: &Value) -> Result<EnvFilter, ValueError> {
    match value {
        Value::Bool(true) => Ok(EnvFilter::DropAll),
        Value::Bool(false) => Ok(EnvFilter::KeepAll),
        Value::String(name) if !name.trim().is_empty() => Ok(EnvFilter::Named(name.clone())),
        Value::Array(_) => match convert::words(value)? {
            texts if texts.is_empty() => Ok(EnvFilter::KeepAll),
            texts => Ok(EnvFilter::Containing(texts)),
        },
        other => Err(ValueError::Expected {
            what: "true, a variable's name or a list of texts".into(),
            got: convert::describe(other),
        }),
    }
}

/// `env_file`: one dotenv file or a list of them, relative to the app's directory, read now (a
/// later `kelpie start` of the app reads them again); later files win.
fn env_files(
    value: &Value,
    cwd: &Path,
    home: Option<&str>,
) -> Result<BTreeMap<String, String>, EnvFileError> {
    let paths = match value {
        Value::Array(_) => convert::words(value)?,
        other => vec![convert::string(other)?],
    };
    let mut variables = BTreeMap::new();
    for path in paths {
        let path = absolutize(cwd, Path::new(&expand_tilde(&path, home)));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(source) => {
                return Err(EnvFileError::Read {
                    path,
                    cause: source,
                })
            }
        };
        match crate::env::dotenv(&text) {
            Ok(read) => variables.extend(read),
            Err(source) => {
                return Err(EnvFileError::Dotenv {
                    path,
                    cause: source,
                })
            }
        }
    }
    Ok(variables)
}

/// Why `env_file` could not be read. `Display` is the message after "field `env_file`: ";
/// like [`crate::env::dotenv`]'s, it names files and lines, never a value.
#[derive(Debug, thiserror::Error)]
enum EnvFileError {
    /// Not a path or a list of paths.
    #[error(transparent)]
    Value(#[from] convert::ValueError),
    /// A file that cannot be read.
    #[error("cannot read `{}`: {cause}", path.display())]
    Read {
        /// The file, resolved.
        path: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// A line of a file that is not `NAME=value`.
    #[error("`{}` {cause}", path.display())]
    Dotenv {
        /// The file, resolved.
        path: PathBuf,
        /// The line and what is wrong with it.
        cause: crate::env::DotenvError,
    },
}
