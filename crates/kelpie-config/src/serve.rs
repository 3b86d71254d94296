//! `script: serve`: Kelpie's built-in static file server (PM2's `pm2 serve`), run as the kelpie
//! binary itself with a hidden command, so serving a directory needs no Node.

use crate::script::Resolved;
use serde_json::{Map, Value};

/// The path of this kelpie binary, which `script: serve` runs, cannot be found.
#[derive(Debug, thiserror::Error)]
#[error("`script: serve` runs this kelpie binary, whose path cannot be found: {cause}")]
pub(crate) struct NoServeBinary {
    /// What the OS said.
    pub cause: std::io::Error,
}

/// Why PM2's top-level `static` section cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticError {
    /// Neither a list nor one object.
    #[error("`static` must be a list of {{path, port, ...}} objects, got {kind}")]
    NotAList {
        /// The JSON type found, in words.
        kind: &'static str,
    },
    /// One entry is wrong.
    #[error("`static` entry #{number}: {problem}")]
    Entry {
        /// 1-based position of the entry.
        number: usize,
        /// What is wrong with it.
        problem: StaticEntryError,
    },
}

/// What is wrong with one entry of `static`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticEntryError {
    /// Not an object.
    #[error("expected an object, got {got}")]
    NotAnObject {
        /// The entry as written.
        got: String,
    },
    /// `basic_auth` without both `username` and `password`.
    #[error("`basic_auth` needs `username` and `password`")]
    BasicAuth,
    /// A key the built-in server has no setting for.
    #[error(
        "`{key}` is not supported by kelpie's static server (expected path, port, host, spa, homepage, basic_auth or name)"
    )]
    UnsupportedKey {
        /// The key as written.
        key: String,
    },
}

/// The `script` that names the built-in server in an ecosystem file, as in PM2.
pub const SERVE_SCRIPT: &str = "serve";

/// The hidden `kelpie` command that is the server (`kelpie serve-static [path] [port] [host]`);
/// it reads its settings from PM2's `PM2_SERVE_*` variables first.
pub const STATIC_SERVER_COMMAND: &str = "serve-static";

/// Whether `script` names the built-in server (`serve`; `./serve` is a file).
pub(crate) fn is_builtin(script: &str) -> bool {
    script.trim() == SERVE_SCRIPT
}

/// The program and first argument that run the built-in server: this kelpie binary.
pub(crate) fn resolve() -> Result<Resolved, NoServeBinary> {
    let exe = std::env::current_exe().map_err(|source| NoServeBinary { cause: source })?;
    Ok(Resolved {
        script: exe.display().to_string(),
        interpreter: None,
        shell_args: Vec::new(),
        shebang_args: Vec::new(),
    })
}

/// The port the built-in server listens on when none is given, as in PM2.
pub const DEFAULT_PORT: u16 = 8080;

/// Set to `1` in the environment of every app `kelpie runtime` starts (a container's PID 1).
pub const RUNTIME_VARIABLE: &str = "KELPIE_RUNTIME";

/// The address the built-in server listens on when none is given: loopback, so files put in a
/// directory for a local reverse proxy or a developer's browser are not handed to the network
/// (PM2 binds every interface; Vite and `python -m http.server --bind` show the other way).
/// Under `kelpie runtime` (a container's PID 1, `pm2-runtime`'s place), where the published
/// ports are the boundary and loopback reaches nothing, every interface, as PM2.
pub fn default_host(env: impl Fn(&str) -> Option<String>) -> &'static str {
    if env(RUNTIME_VARIABLE).is_some_and(|v| v == "1") {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    }
}

/// The name PM2 gives a static server that has none.
pub fn default_name(port: impl std::fmt::Display) -> String {
    format!("static-page-server-{port}")
}

/// PM2's top-level `static: [{path, port, host, spa, homepage, basic_auth: {username,
/// password}, name}]`: each entry becomes an app running the built-in server, with its settings
/// in the `PM2_SERVE_*` variables the server reads.
pub(crate) fn static_section(value: &Value) -> Result<Vec<Value>, StaticError> {
    let entries = match value {
        Value::Array(items) => items.as_slice(),
        Value::Object(_) => std::slice::from_ref(value),
        other => {
            return Err(StaticError::NotAList {
                kind: crate::convert::kind_of(other),
            })
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            static_app(entry).map_err(|problem| StaticError::Entry {
                number: i + 1,
                problem,
            })
        })
        .collect()
}

fn static_app(entry: &Value) -> Result<Value, StaticEntryError> {
    let Value::Object(entry) = entry else {
        return Err(StaticEntryError::NotAnObject {
            got: crate::convert::describe(entry),
        });
    };
    let mut env = Map::new();
    let mut name = None;
    for (key, value) in entry {
        // PM2's directory listing, off: nothing to do.
        if value.is_null() || (key == "ftp" && value == &Value::Bool(false)) {
            continue;
        }
        let variable = match key.as_str() {
            "name" => {
                name = Some(value.clone());
                continue;
            }
            "basic_auth" => {
                let (Some(username), Some(password)) =
                    (value.get("username"), value.get("password"))
                else {
                    return Err(StaticEntryError::BasicAuth);
                };
                env.insert("PM2_SERVE_BASIC_AUTH".into(), Value::from("true"));
                env.insert("PM2_SERVE_BASIC_AUTH_USERNAME".into(), username.clone());
                env.insert("PM2_SERVE_BASIC_AUTH_PASSWORD".into(), password.clone());
                continue;
            }
            "path" => "PM2_SERVE_PATH",
            "port" => "PM2_SERVE_PORT",
            "host" => "PM2_SERVE_HOST",
            "spa" => "PM2_SERVE_SPA",
            "homepage" => "PM2_SERVE_HOMEPAGE",
            other => {
                return Err(StaticEntryError::UnsupportedKey {
                    key: other.to_string(),
                })
            }
        };
        env.insert(variable.to_string(), value.clone());
    }
    let name = name.unwrap_or_else(|| {
        let port = match env.get("PM2_SERVE_PORT") {
            Some(Value::String(port)) => port.clone(),
            Some(port) => port.to_string(),
            None => DEFAULT_PORT.to_string(),
        };
        Value::from(default_name(port))
    });
    Ok(serde_json::json!({"name": name, "script": SERVE_SCRIPT, "env": env}))
}
