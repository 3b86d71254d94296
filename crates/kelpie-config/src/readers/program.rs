//! What the app runs and what it is called: `cwd`, `script` (or the built-in static server),
//! `interpreter` and its arguments, and `name`.

use super::{app_name, configured_cwd, Origin, Reader};
use crate::convert;
use crate::script::{self, Choice, Lookup};
use crate::serve;
use kelpie_core::AppSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `cwd`: the app's working directory (the origin's directory when not given), which must
/// exist. Returned as a path for the fields relative to it, with whether it exists.
pub(super) fn read_cwd(
    r: &mut Reader<'_>,
    spec: &mut AppSpec,
    origin: &Origin<'_>,
) -> (PathBuf, bool) {
    let cwd = match r.get("cwd", convert::string) {
        Some(_) => configured_cwd(r.raw, origin),
        None => origin.base_dir.to_path_buf(),
    };
    let cwd_ok = cwd.is_dir();
    if !cwd_ok {
        let key = r.spelled("cwd");
        r.errors.push(format!(
            "field `{key}`: working directory `{}` not found",
            cwd.display()
        ));
    }
    spec.cwd = cwd.display().to_string();
    (cwd, cwd_ok)
}

/// `script`, `interpreter` and `interpreter_args`: what the app runs, resolved in its working
/// directory (only when that exists), or Kelpie's built-in static server. Returns whether it
/// is the built-in server; `node_options` gets the `node_args` of a command line (for
/// [`node_options_of_command_line`], once the environment is read).
pub(super) fn read_script(
    r: &mut Reader<'_>,
    spec: &mut AppSpec,
    origin: &Origin<'_>,
    (cwd, cwd_ok): (&Path, bool),
    node_options: &mut Vec<String>,
) -> bool {
    let ctx = origin.ctx;
    let user_interpreter_args = r
        .get("interpreter_args", convert::words)
        .unwrap_or_default();
    let interpreter = r.get("interpreter", interpreter_field);
    let script = r.get("script", convert::string);
    let builtin_serve = origin.builtin_serve && script.as_deref().is_some_and(serve::is_builtin);
    match script {
        Some(_) if builtin_serve => {
            if let Some(Some(given)) = &interpreter {
                r.errors.push(format!(
                    "`script: serve` is Kelpie's built-in static file server and runs without an interpreter (remove `interpreter: {given}`)"
                ));
            }
            match serve::resolve() {
                Ok(resolved) => {
                    spec.script = resolved.script;
                    spec.interpreter = resolved.interpreter;
                }
                Err(e) => r.errors.push(e.to_string()),
            }
        }
        Some(script) if cwd_ok => {
            let path_var = ctx.path_var();
            let lookup = Lookup {
                path_var: &path_var,
                home: ctx.home(),
            };
            let choice = match &interpreter {
                Some(given) => Choice::Explicit(given.as_deref()),
                None => Choice::Auto,
            };
            match script::resolve(&script, cwd, choice, &lookup) {
                Ok(resolved) if !resolved.shell_args.is_empty() => {
                    // A command line runs in a shell: `node_args` are for the Node processes it
                    // starts (`npm start`, `node server.js`), not for bash.
                    spec.script = resolved.script;
                    spec.interpreter = resolved.interpreter;
                    spec.interpreter_args = resolved.shell_args;
                    if !user_interpreter_args.is_empty() {
                        let field = r.spelled("interpreter_args").to_string();
                        let (kept, dropped) = allowed_in_node_options(user_interpreter_args, ctx);
                        if let Some(why) = dropped {
                            r.warnings.push(format!(
                                "field `{field}`: {why} (PM2 drops a command line's node options)"
                            ));
                        }
                        if !kept.is_empty() {
                            r.warnings.push(format!(
                                "field `{field}`: the script is a command line run by a shell, not by node: these options reach the Node processes it starts through NODE_OPTIONS"
                            ));
                        }
                        *node_options = kept;
                    }
                }
                Ok(resolved) => {
                    spec.script = resolved.script;
                    spec.interpreter = resolved.interpreter;
                    spec.interpreter_auto = interpreter.is_none();
                    spec.interpreter_args = if user_interpreter_args.is_empty() {
                        resolved.shebang_args
                    } else {
                        user_interpreter_args
                    };
                    if spec.interpreter_auto && crate::typescript::is_typescript(Path::new(&script))
                    {
                        // PM2 7 changed `.ts` to Bun when installed, in a patch release (#5751):
                        // Kelpie keeps Node, and says so at each start.
                        r.warnings.push(format!(
                            "`{script}` runs with node (Kelpie's runtime for .ts, whatever else is installed; Node 22.6 or later runs TypeScript): set `interpreter: bun` or `interpreter: deno` to run it with those"
                        ));
                    }
                }
                Err(e) => r.errors.push(e.to_string()),
            }
        }
        Some(_) => {}
        None if r.raw.get("script").is_none() => r
            .errors
            .push("missing `script` (the file or command to run)".to_string()),
        None => {}
    }
    builtin_serve
}

/// `name` (else one derived from `script`), checked, with the env profile appended when
/// `append_env_to_name` asks for it.
pub(super) fn read_name(r: &mut Reader<'_>, spec: &mut AppSpec, origin: &Origin<'_>) {
    let raw = r.raw;
    spec.name = app_name(raw, origin).unwrap_or_default();
    if let Some(name) = r.get("name", convert::string) {
        spec.name = name;
    }
    if !spec.name.is_empty() {
        if let Err(e) = kelpie_core::check_app_name(&spec.name) {
            r.errors.push(format!("field `name`: {e}"));
        }
    }
    // A command line whose first word is empty or whose quotes do not close names nothing; an
    // app named "" could not be told apart or targeted.
    if spec.name.is_empty() && raw.get("name").is_none() {
        if let Some(field) = raw.get("script") {
            if field.value.as_str().is_some_and(|s| !s.trim().is_empty()) {
                r.errors.push(format!(
                    "field `{}`: no app name can be taken from {}; set `name`",
                    field.key,
                    convert::describe(&field.value)
                ));
            }
        }
    }
    // PM2: with `--env dev`, `append_env_to_name: true` names the app `<name>-dev`.
    if r.get("append_env_to_name", convert::boolean) == Some(true) {
        if let Some(profile) = origin.profile {
            if !spec.name.is_empty() {
                spec.name = format!("{}-{profile}", spec.name);
            }
        }
    }
}

/// A command line's node options split into those `NODE_OPTIONS` takes and what was dropped
/// and why: those it does not take, which Node would refuse to start with (`--harmony`: every
/// start of the app would fail). The local `node` says which (see
/// [`crate::node::refused_in_node_options`]); without one to ask, none is kept. A word that is
/// not an option is the value of the option before it and goes with it.
fn allowed_in_node_options(
    options: Vec<String>,
    ctx: &crate::LoadContext,
) -> (Vec<String>, Option<String>) {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for word in options {
        match groups.last_mut() {
            Some(group) if !word.starts_with('-') => group.push(word),
            _ => groups.push(vec![word]),
        }
    }
    let heads: Vec<&str> = groups.iter().map(|g| g[0].as_str()).collect();
    let Some(refused) = crate::node::refused_in_node_options(&heads, ctx) else {
        let all: Vec<String> = groups.iter().map(|g| g.join(" ")).collect();
        return (
            Vec::new(),
            Some(format!(
                "no `node` on PATH to ask which options NODE_OPTIONS allows (the only way a command line's Node processes get node options): {} dropped",
                all.join(", ")
            )),
        );
    };
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    for (i, group) in groups.into_iter().enumerate() {
        if refused.contains(&i) {
            dropped.push(group.join(" "));
        } else {
            kept.extend(group);
        }
    }
    let why = (!dropped.is_empty()).then(|| {
        format!(
            "Node does not allow {} in NODE_OPTIONS (the only way a command line's Node processes get node options): dropped",
            dropped.join(", ")
        )
    });
    (kept, why)
}

/// `Some(None)` for `interpreter: none` (or empty), which means "execute the script itself", as
/// in PM2; `Some(Some(name))` for an interpreter.
fn interpreter_field(value: &Value) -> Result<Option<String>, convert::ValueError> {
    match value {
        Value::String(s) if s.trim().is_empty() || s.trim() == "none" => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        other => Err(convert::expected(
            "an interpreter name, path or \"none\"",
            other,
        )),
    }
}

/// A command line's `node_args` go to `NODE_OPTIONS`, after what the app's environment sets
/// there, so the Node processes behind it (`npm start`) get them.
pub(super) fn node_options_of_command_line(spec: &mut AppSpec, node_options: Vec<String>) {
    if node_options.is_empty() {
        return;
    }
    let given = spec
        .env
        .get("NODE_OPTIONS")
        .or_else(|| spec.inherited_env.get("NODE_OPTIONS"))
        .cloned();
    // NODE_OPTIONS splits on spaces, but keeps what is in double quotes together.
    let quoted = node_options.into_iter().map(|o| {
        if o.contains(char::is_whitespace) {
            format!("\"{}\"", o.replace('"', "\\\""))
        } else {
            o
        }
    });
    let joined = given
        .into_iter()
        .chain(quoted)
        .filter(|o| !o.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    spec.env.insert("NODE_OPTIONS".to_string(), joined);
}
