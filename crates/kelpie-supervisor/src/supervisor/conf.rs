//! The configuration store (`kelpie set`, `get`, `unset`, `multiset`, `conf`): kept in memory,
//! written through the persister (in order, atomically), its `pm2-logrotate` keys applied to the
//! log rotation at once, and the apps named by a section that was set restarted with the section
//! in their environment (as PM2 does).

use kelpie_config::module_conf::{self, ConfStore, LOGROTATE};
use kelpie_config::LogDefaults;
use kelpie_core::AppSpec;
use kelpie_proto::{ConfRequest, Home};

/// The rotation defaults: `kelpie.toml`'s `[logs]` with the store's `pm2-logrotate` keys over
/// them. Keys that cannot be used (a hand-edited file) are skipped and said in the daemon log.
pub fn rotation(home: &Home, conf: &ConfStore, toml: LogDefaults) -> LogDefaults {
    let (logs, problems) = module_conf::log_rotation(conf, toml);
    for problem in problems {
        crate::daemon_log!("{}: {problem}; ignored", home.conf_file().display());
    }
    logs
}

/// The rotation in words, for the answer to a change of `pm2-logrotate`.
pub(super) fn describe_rotation(logs: &LogDefaults) -> String {
    let size = match logs.max_size {
        0 => "never by size".to_string(),
        n if n % (1 << 30) == 0 => format!("at {}G", n >> 30),
        n if n % (1 << 20) == 0 => format!("at {}M", n >> 20),
        n if n % (1 << 10) == 0 => format!("at {}K", n >> 10),
        n => format!("at {n} bytes"),
    };
    let time = match logs.interval_ms {
        0 => "never by time".to_string(),
        86_400_000 => "daily at midnight".to_string(),
        ms if ms % 3_600_000 == 0 => format!("every {}h", ms / 3_600_000),
        ms => format!("every {}m", ms / 60_000),
    };
    let kept = match logs.retain {
        u32::MAX => "all rotated files kept".to_string(),
        n => format!("{n} rotated files kept"),
    };
    let gzip = if logs.compress { ", gzip" } else { "" };
    format!("log rotation for apps without their own: {size}, {time}, {kept}{gzip} (in force now)")
}

/// The daemon's settings: the configuration store and the `[logs]` of `kelpie.toml`.
pub(super) struct Settings {
    home: Home,
    /// The configuration store (`kelpie set`), as on disk.
    conf: ConfStore,
    /// The rotation defaults of `kelpie.toml` (`[logs]`), under the store's `pm2-logrotate`.
    toml_logs: LogDefaults,
}

/// Why a `set` or `unset` changed nothing.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfChangeError {
    #[error("nothing to set")]
    NothingToSet,
    #[error(transparent)]
    Key(#[from] module_conf::ConfKeyError),
}

/// What a `set` or `unset` changed.
pub(super) struct ConfChange {
    /// The store's text, to write. Written even unchanged, as PM2 writes it at each `set` and
    /// `unset`: `unset all` on an empty store leaves a `module_conf.json` behind, which
    /// scripts written for PM2 look for.
    pub text: String,
    /// The new rotation defaults, when `pm2-logrotate` changed.
    pub rotation: Option<LogDefaults>,
    /// The apps named by a section that was set (`pm2-logrotate` left out).
    pub apps: Vec<String>,
}

impl Settings {
    pub(super) fn new(home: Home, conf: ConfStore, toml_logs: LogDefaults) -> Settings {
        Settings {
            home,
            conf,
            toml_logs,
        }
    }

    /// The rotation defaults: `[logs]` with the store's `pm2-logrotate` keys over them.
    pub(super) fn rotation(&self) -> LogDefaults {
        rotation(&self.home, &self.conf, self.toml_logs)
    }

    /// `kelpie.toml` was read again: its `[logs]`. The rotation defaults now.
    pub(super) fn set_toml_logs(&mut self, logs: LogDefaults) -> LogDefaults {
        self.toml_logs = logs;
        self.rotation()
    }

    /// The store, as `kelpie get` shows it.
    pub(super) fn store(&self) -> serde_json::Value {
        serde_json::Value::Object(self.conf.clone())
    }

    /// The store's section of app `name`, as environment variables.
    pub(super) fn app_env(&self, name: &str) -> Vec<(String, String)> {
        module_conf::app_env(&self.conf, name)
    }

    /// A spec about to be started, with the store's section of its name in its environment
    /// (over its own `env`, as PM2 does).
    pub(super) fn with_conf_env(&self, mut spec: AppSpec) -> AppSpec {
        spec.env
            .extend(module_conf::app_env(&self.conf, &spec.name));
        spec
    }

    /// `kelpie set` / `unset` / `multiset` (not `get`): the store changed in memory, or why
    /// not (a bad key or value changes nothing).
    pub(super) fn change(&mut self, request: ConfRequest) -> Result<ConfChange, ConfChangeError> {
        let mut store = self.conf.clone();
        let mut sections: Vec<String> = Vec::new();
        match request {
            ConfRequest::Get => {}
            ConfRequest::Set { pairs } => {
                if pairs.is_empty() {
                    return Err(ConfChangeError::NothingToSet);
                }
                for (key, value) in &pairs {
                    module_conf::set(&mut store, key, value)?;
                    if let Ok(parts) = module_conf::split_key(key) {
                        if parts.len() > 1 && !sections.contains(&parts[0]) {
                            sections.push(parts[0].clone());
                        }
                    }
                }
            }
            ConfRequest::Unset { key } => {
                module_conf::unset(&mut store, &key)?;
            }
        }
        let rotation_changed = store.get(LOGROTATE) != self.conf.get(LOGROTATE);
        self.conf = store;
        sections.retain(|name| name.as_str() != LOGROTATE);
        Ok(ConfChange {
            text: module_conf::to_text(&self.conf),
            rotation: rotation_changed.then(|| self.rotation()),
            apps: sections,
        })
    }
}
