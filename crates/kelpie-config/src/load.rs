//! The public entry points: read a file (or take flags), select apps, build specs, gather
//! warnings and errors.

use crate::dependencies::Graph;
use crate::errors::ConfigError;
use crate::formats::{self, Format};
use crate::normalize::{self, RawApp};
use crate::paths::absolutize;
use crate::readers::{self, Origin};
use crate::{LoadContext, Loaded, ScriptOptions};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod checks;
mod selected;

use checks::{
    counted, rename_dependencies, renamed_duplicates, unknown_warnings, unsupported_warnings,
};
use selected::{build_selected, in_start_order, sort_refusals, Selected};

/// Label used for `kelpie start <script>` errors, where there is no file.
const COMMAND_LINE: &str = "command line";

/// How an ecosystem file piped to `kelpie start -` is named in messages.
pub const STDIN: &str = "<stdin>";

/// A file read and split into raw apps.
struct Document {
    /// The file as the user named it, for messages.
    file: String,
    /// Absolute path.
    abs: PathBuf,
    /// Directory of the file: the default `cwd` of its apps.
    dir: PathBuf,
    /// Raw apps in file order.
    apps: Vec<RawApp>,
    /// Warnings about ignored top-level sections.
    notes: Vec<String>,
    /// The top-level `deploy` section.
    deploy: Option<Value>,
}

fn read_document(path: &Path, ctx: &LoadContext) -> Result<Document, ConfigError> {
    let file = path.display().to_string();
    let abs = absolutize(&ctx.cwd, path);
    let (value, notes) = read_value(&abs, &file, ctx)?;
    let dir = abs
        .parent()
        .map_or_else(|| ctx.cwd.clone(), Path::to_path_buf);
    let mut doc = document(file, abs, dir, &value)?;
    doc.notes.extend(notes);
    Ok(doc)
}

/// The document an ecosystem file holds, whatever its format, with the JSON reader's notes.
fn read_value(
    abs: &Path,
    file: &str,
    ctx: &LoadContext,
) -> Result<(Value, Vec<String>), ConfigError> {
    let file = file.to_string();
    let format =
        formats::format_of(abs).ok_or_else(|| ConfigError::UnknownFormat { file: file.clone() })?;
    let mut notes = Vec::new();
    let value: Value = match format {
        Format::JavaScript => {
            // Checked first so a typo in the name is "not found", not a Node stack trace.
            std::fs::metadata(abs).map_err(|source| ConfigError::Read {
                file: file.clone(),
                cause: source,
            })?;
            crate::node::evaluate(abs, &file, ctx)?
        }
        _ => {
            let text = std::fs::read_to_string(abs).map_err(|source| ConfigError::Read {
                file: file.clone(),
                cause: source,
            })?;
            let parsed = match format {
                Format::Json => formats::parse_json_noting(&text, &file).map(|(value, noted)| {
                    notes = noted;
                    value
                }),
                _ => formats::parse_text(format, &text, &file),
            };
            match parsed {
                Ok(value) => value,
                // PM2 evaluates a `.json` file as JavaScript: one with expressions that JSON5
                // cannot read goes to Node; if Node cannot read it either, the JSON5 error
                // (with its line and column) is the one shown.
                Err(json5_error) if format == Format::Json => {
                    match crate::node::evaluate_expression(abs, &file, ctx) {
                        Some(Ok(value)) => value,
                        _ => return Err(json5_error),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    };
    Ok((value, notes))
}

/// An ecosystem file read from standard input (`kelpie start -`): JSON5, like a `.json` file,
/// with relative paths resolved against the current directory.
fn stdin_document(text: &str, ctx: &LoadContext) -> Result<Document, ConfigError> {
    let (value, notes) = formats::parse_json_noting(text, STDIN)?;
    let mut doc = document(STDIN.to_string(), ctx.cwd.clone(), ctx.cwd.clone(), &value)?;
    doc.notes.extend(notes);
    Ok(doc)
}

fn document(
    file: String,
    abs: PathBuf,
    dir: PathBuf,
    value: &Value,
) -> Result<Document, ConfigError> {
    let top = normalize::top_level(value).map_err(|problem| ConfigError::Shape {
        file: file.clone(),
        problem,
    })?;
    let apps = top
        .apps
        .iter()
        .enumerate()
        .map(|(index, app)| RawApp::from_value(index, app))
        .collect();
    Ok(Document {
        file,
        abs,
        dir,
        apps,
        notes: top.notes,
        deploy: top.deploy,
    })
}

/// Indices of the apps `--only` selects (all when it is empty).
fn select(
    names: &[Option<String>],
    only: &[String],
    file: &str,
) -> Result<Vec<usize>, ConfigError> {
    let wanted: Vec<&str> = only
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok((0..names.len()).collect());
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !names.iter().any(|n| n.as_deref() == Some(**w)))
        .map(|w| w.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError::UnknownOnly {
            file: file.to_string(),
            missing,
            available: names.iter().flatten().cloned().collect(),
        });
    }
    Ok(names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.as_deref().is_some_and(|n| wanted.contains(&n)))
        .map(|(i, _)| i)
        .collect())
}

/// Each app's name (declared, or derived from its script), `None` when it has neither.
fn app_names_of(doc: &Document, origin: &Origin<'_>) -> Vec<Option<String>> {
    doc.apps
        .iter()
        .map(|raw| readers::app_name(raw, origin))
        .collect()
}

/// Load an ecosystem file into specs.
///
/// Only the apps selected by `--only` are validated in depth, so a broken app does not stop
/// its neighbours from being started one by one.
pub fn load_file(path: &Path, ctx: &LoadContext) -> Result<Loaded, ConfigError> {
    load_document(read_document(path, ctx)?, ctx)
}

/// The file's top-level `deploy` section as written (`kelpie deploy` reads and checks it), or
/// `None` when the file has none. JavaScript files are evaluated as for `start`.
/// A file with only a `deploy` section is read too (PM2's deployer needs no apps).
pub fn deploy_section(path: &Path, ctx: &LoadContext) -> Result<Option<Value>, ConfigError> {
    let file = path.display().to_string();
    let (value, _) = read_value(&absolutize(&ctx.cwd, path), &file, ctx)?;
    Ok(value.get("deploy").cloned())
}

/// Load an ecosystem file given as text on standard input (`kelpie start -`), as PM2 reads a
/// piped one: JSON5, named `<stdin>` in messages; relative `script` and `cwd` are resolved
/// against the current directory (`ctx.cwd`).
pub fn load_stdin(text: &str, ctx: &LoadContext) -> Result<Loaded, ConfigError> {
    load_document(stdin_document(text, ctx)?, ctx)
}

/// `deploy.<profile>.env`, when `--env <profile>` is given and the file has one.
fn deploy_env(
    doc: &Document,
    profile: Option<&str>,
) -> Result<Option<std::collections::BTreeMap<String, String>>, DeployEnvError> {
    let Some(profile) = profile else {
        return Ok(None);
    };
    let Some(env) = doc
        .deploy
        .as_ref()
        .and_then(|deploy| deploy.get(profile))
        .and_then(|target| target.get("env"))
    else {
        return Ok(None);
    };
    crate::env::variables(env)
        .map(Some)
        .map_err(|source| DeployEnvError {
            file: doc.file.clone(),
            profile: profile.to_string(),
            cause: source,
        })
}

/// A `deploy.<profile>.env` that is not an object of variables; `Display` is a complete
/// message, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: `deploy.{profile}.env`: {cause}")]
struct DeployEnvError {
    /// The file as the user named it.
    file: String,
    /// The profile (`--env`).
    profile: String,
    /// What is wrong with the section.
    cause: crate::env::EnvError,
}

fn load_document(doc: Document, ctx: &LoadContext) -> Result<Loaded, ConfigError> {
    let file = doc.file.as_str();
    let mut errors = Vec::new();
    let deploy_env = deploy_env(&doc, ctx.profile.as_deref()).unwrap_or_else(|e| {
        errors.push(e.to_string());
        None
    });
    // Apps default to the file's directory, not the CLI's (PM2 uses the CLI's): a file then
    // behaves the same wherever `kelpie` is run from, and `script: './app.js'` means the file
    // next to it, which is what users expect.
    let origin = Origin {
        base_dir: &doc.dir,
        source_file: (file != STDIN).then(|| doc.abs.display().to_string()),
        profile: ctx.profile.as_deref(),
        deploy_env: deploy_env.as_ref(),
        ctx,
        builtin_serve: true,
    };
    let names = app_names_of(&doc, &origin);

    for (name, count) in counted(names.iter().flatten()) {
        if count > 1 {
            errors.push(format!(
                "{file}: app name `{name}` is used by {count} apps; names must be unique within a file (set `name` on each)"
            ));
        }
    }

    let selected = select(&names, &ctx.only, file)?;
    let mut warnings: Vec<String> = doc.notes.iter().map(|n| format!("{file}: {n}")).collect();
    let Selected {
        mut apps,
        written,
        refused,
        kept,
    } = build_selected(&doc, &selected, &origin, &mut warnings, &mut errors);
    let depends_on: Vec<Vec<String>> = doc
        .apps
        .iter()
        .map(|raw| {
            // Leniently: an invalid value is reported with its app's fields.
            raw.get("depends_on")
                .and_then(|f| crate::convert::app_names(&f.value).ok())
                .unwrap_or_default()
        })
        .collect();
    let graph = Graph::new(&names, &depends_on);
    errors.extend(
        graph
            .cycles(&selected)
            .into_iter()
            .map(|cycle| format!("{file}: depends_on has a cycle: {cycle}")),
    );
    warnings.extend(unknown_warnings(&doc, &selected, &origin));
    warnings.extend(unsupported_warnings(&doc, &selected, &origin));
    if let Some(profile) = ctx.profile.as_deref() {
        for &i in &selected {
            let raw = &doc.apps[i];
            if !raw.profiles.contains_key(profile) && deploy_env.is_none() {
                warnings.push(format!(
                    "{file}: {}: no `env_{profile}` section; `--env {profile}` applies only its `env`",
                    readers::label(raw, &origin)
                ));
            }
        }
    }
    let refused_apps = sort_refusals(refused, &names, &apps, file, &mut errors);
    let selected = kept;
    if errors.is_empty() {
        errors.extend(renamed_duplicates(&apps, file));
    }
    if !errors.is_empty() {
        return Err(ConfigError::Invalid {
            file: file.to_string(),
            errors,
        });
    }
    rename_dependencies(&mut apps, &selected, &names);
    let apps = in_start_order(apps, &selected, &graph);
    Ok(Loaded {
        apps,
        warnings,
        refused: refused_apps,
        written,
    })
}

/// Names of the apps declared in a file, honouring `ctx.only` (used by `stop`/`delete <file>`).
/// Apps are not validated: stopping must work even when a script has since been deleted.
pub fn app_names(path: &Path, ctx: &LoadContext) -> Result<Vec<String>, ConfigError> {
    names_in(&read_document(path, ctx)?, ctx)
}

/// [`app_names`] of an ecosystem file given on standard input (`kelpie delete -`).
pub fn app_names_in_stdin(text: &str, ctx: &LoadContext) -> Result<Vec<String>, ConfigError> {
    names_in(&stdin_document(text, ctx)?, ctx)
}

fn names_in(doc: &Document, ctx: &LoadContext) -> Result<Vec<String>, ConfigError> {
    let origin = Origin {
        base_dir: &doc.dir,
        source_file: None,
        profile: None,
        deploy_env: None,
        ctx,
        builtin_serve: true,
    };
    let names = app_names_of(doc, &origin);
    let selected = select(&names, &ctx.only, &doc.file)?;
    Ok(selected
        .into_iter()
        .filter_map(|i| names[i].clone())
        .collect())
}

/// Build the spec of `kelpie start <script> [flags] [-- args]`, with the same validation as
/// files. The working directory is `--cwd` (relative to the CLI's) or the CLI's own.
pub fn from_script(
    script: &str,
    opts: &ScriptOptions,
    ctx: &LoadContext,
) -> Result<Loaded, ConfigError> {
    from_options(script, opts, ctx, false)
}

/// Build the spec of `kelpie serve`: the built-in static file server (`script: serve`), set up
/// by `opts` (its `env` carries the server's `PM2_SERVE_*` settings).
pub fn serve_app(opts: &ScriptOptions, ctx: &LoadContext) -> Result<Loaded, ConfigError> {
    from_options(crate::SERVE_SCRIPT, opts, ctx, true)
}

fn from_options(
    script: &str,
    opts: &ScriptOptions,
    ctx: &LoadContext,
    builtin_serve: bool,
) -> Result<Loaded, ConfigError> {
    let raw = raw_from_options(script, opts);
    let origin = Origin {
        base_dir: &ctx.cwd,
        source_file: None,
        profile: None,
        deploy_env: None,
        ctx,
        builtin_serve,
    };
    match readers::read_app(&raw, &origin) {
        // One app that cannot run as asked: nothing else to start.
        Ok(built) if !built.refused.is_empty() => Err(ConfigError::Invalid {
            file: COMMAND_LINE.to_string(),
            errors: built.refused,
        }),
        Ok(built) => Ok(Loaded {
            warnings: built.warnings,
            apps: vec![built.spec],
            refused: Vec::new(),
            written: BTreeMap::new(),
        }),
        Err(errors) => Err(ConfigError::Invalid {
            file: COMMAND_LINE.to_string(),
            errors,
        }),
    }
}

/// Flags become the same fields a file would have, so both share one validator.
fn raw_from_options(script: &str, opts: &ScriptOptions) -> RawApp {
    let mut raw = RawApp::default();
    raw.add("script", Value::from(script));
    for (key, value) in opts.fields() {
        raw.add(&key, value);
    }
    if let Some(error) = opts.health.missing_probe() {
        raw.errors.push(error);
    }
    raw
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
