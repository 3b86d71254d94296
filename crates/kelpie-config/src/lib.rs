//! Kelpie's configuration: ecosystem files (JSON, YAML, TOML, JavaScript) and `kelpie start`
//! flags, validated and resolved into [`kelpie_core::AppSpec`]s.
//!
//! Everything wrong with a file is reported at once ([`ConfigError::Invalid`]). Keys PM2 would
//! ignore (unknown fields, PM2 fields Kelpie does not implement) are accepted with a warning so
//! existing files keep working; [`Loaded::strict`] turns those warnings into an error.
#![warn(missing_docs)]

mod convert;
mod daemon_settings;
mod dependencies;
mod env;
mod errors;
#[cfg(test)]
mod field_names;
mod fields;
mod formats;
mod health;
mod interpreter;
mod json5;
#[cfg(test)]
mod json5_oracle;
mod load;
pub mod module_conf;
mod node;
mod normalize;
mod notify_targets;
mod options;
mod paths;
mod readers;
mod script;
mod serve;
pub mod settings;
mod template;
mod typescript;
mod units;
mod web_hosts;
mod words;

pub use convert::ValueError;
pub use daemon_settings::{
    check_token, stored_web_token, BadToken, DaemonSettings, LogDefaults, WebSettings,
    WebSettingsError, DEFAULT_WEB_PORT,
};
pub use dependencies::in_start_order;
pub use errors::ConfigError;
pub use formats::is_ecosystem_file;
pub use load::{
    app_names, app_names_in_stdin, deploy_section, from_script, load_file, load_stdin, serve_app,
    STDIN,
};
pub use normalize::ShapeError;
pub use notify_targets::{mask_url, NotifyKind, NotifyTarget, DEFAULT_PER_MINUTE, NOTIFY_EVENTS};
pub use options::{HealthFlags, ScriptOptions};
pub use paths::{absolutize, which};
pub use serve::{
    default_host as serve_default_host, default_name as serve_default_name, StaticEntryError,
    StaticError, DEFAULT_PORT as SERVE_DEFAULT_PORT, RUNTIME_VARIABLE, SERVE_SCRIPT,
    STATIC_SERVER_COMMAND,
};
pub use template::{example_app, example_ecosystem};
pub use units::{parse_bytes, parse_duration_ms, AmountError};
pub use web_hosts::WebHost;
pub use words::UnterminatedQuote;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// Context of one CLI invocation.
#[derive(Debug, Clone, Default)]
pub struct LoadContext {
    /// The CLI's working directory, for relative paths.
    pub cwd: PathBuf,
    /// The CLI's environment (becomes `AppSpec::inherited_env`; its `PATH` and `HOME` are used
    /// for lookups).
    pub env: BTreeMap<String, String>,
    /// `--env <profile>`: selects `env_<profile>`.
    pub profile: Option<String>,
    /// `--only api,worker`, already split on commas.
    pub only: Vec<String>,
}

impl LoadContext {
    /// `$PATH` for command lookups: the CLI's, else this process's, else a conventional one.
    pub(crate) fn path_var(&self) -> OsString {
        match self.env.get("PATH") {
            Some(path) => OsString::from(path),
            None => std::env::var_os("PATH")
                .unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin")),
        }
    }

    /// `$HOME`, for `~` in paths.
    pub(crate) fn home(&self) -> Option<&str> {
        self.env.get("HOME").map(String::as_str)
    }
}

/// The apps of one file or command, and what the user should know about them.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Resolved specs: in file order, except that an app's dependencies (`depends_on`, among
    /// the apps of the same file) come before it.
    pub apps: Vec<kelpie_core::AppSpec>,
    /// Complete messages (ignored fields, missing profiles), to print before starting.
    pub warnings: Vec<String>,
    /// Apps of the file that are not started, and why (complete messages): what PM2 would
    /// start only to see it crash-loop. The others start; the command then fails.
    pub refused: Vec<String>,
    /// What each app's entry wrote, by app name (files only).
    pub written: BTreeMap<String, Written>,
}

/// What an app's entry in its file wrote, beyond the resolved spec: `kelpie export` describes
/// the app as written, not as resolved on this machine (its CPU count, Kelpie's defaults, the
/// values read from `env_file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The fields the entry sets, by canonical name (PM2's aliases folded); `env_<profile>`
    /// sections are not fields.
    pub fields: std::collections::BTreeSet<&'static str>,
    /// `instances` relative to the machine's CPUs: `Some(n)` for "all CPUs but n" (`"max"` and
    /// `0` are `Some(0)`, `-1` is `Some(1)`).
    pub instances_cpu_relative: Option<u32>,
    /// Names in `env` whose value comes from an `env_file` (no later section replaced it).
    pub env_from_files: std::collections::BTreeSet<String>,
}

impl Loaded {
    /// Strict mode (`kelpie start --strict`, or `strict = true` in `kelpie.toml`): any warning
    /// is an error ([`ConfigError::Strict`]), so nothing is started from a file Kelpie would
    /// read differently from what its author meant.
    pub fn strict(self) -> Result<Loaded, ConfigError> {
        if self.warnings.is_empty() && self.refused.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Strict {
                warnings: self.warnings.into_iter().chain(self.refused).collect(),
            })
        }
    }
}

/// Every app field Kelpie reads from a file, by canonical (snake_case) name.
pub fn supported_fields() -> &'static [&'static str] {
    fields::supported()
}
