//! The configuration store (`kelpie set`, `get`, `unset`, `multiset`, `conf`): kept in memory,
//! written through the persister (in order, atomically), its `pm2-logrotate` keys applied to the
//! log rotation at once, and the apps named by a section that was set restarted with the section
//! in their environment (as PM2 does).

use super::handlers::fail;
use super::{Finish, Reply, Supervisor};
use crate::instance::InstanceMsg;
use kelpie_config::module_conf::{self, ConfStore, LOGROTATE};
use kelpie_config::LogDefaults;
use kelpie_core::{AppSpec, Control};
use kelpie_proto::{ConfRequest, ErrorKind, Home, Response, WireError};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The rotation defaults: `kelpie.toml`'s `[logs]` with the store's `pm2-logrotate` keys over
/// them. Keys that cannot be used (a hand-edited file) are skipped and said in the daemon log.
pub(super) fn rotation(home: &Home, conf: &ConfStore, toml: LogDefaults) -> LogDefaults {
    let (logs, problems) = module_conf::log_rotation(conf, toml);
    for problem in problems {
        crate::daemon_log!("{}: {problem}; ignored", home.conf_file().display());
    }
    logs
}

/// The rotation in words, for the answer to a change of `pm2-logrotate`.
fn describe_rotation(logs: &LogDefaults) -> String {
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

impl Supervisor {
    /// Give the log writer the rotation defaults of `kelpie.toml` and the store.
    pub(super) fn apply_rotation(&self) {
        self.logs
            .set_defaults(rotation(&self.home, &self.conf, self.toml_logs));
    }

    /// A spec about to be started, with the store's section of its name in its environment
    /// (over its own `env`, as PM2 does).
    pub(super) fn with_conf_env(&self, mut spec: AppSpec) -> AppSpec {
        spec.env
            .extend(module_conf::app_env(&self.conf, &spec.name));
        spec
    }

    /// `kelpie set` / `get` / `unset` / `multiset`. A bad key or value changes nothing.
    pub(super) fn conf_request(&mut self, request: ConfRequest, reply: oneshot::Sender<Reply>) {
        let mut store = self.conf.clone();
        let mut sections: Vec<String> = Vec::new();
        match request {
            ConfRequest::Get => {
                let _ = reply.send(Reply {
                    response: Response::Conf {
                        store: serde_json::Value::Object(store),
                        restarted: Vec::new(),
                        notes: Vec::new(),
                    },
                    written: None,
                });
                return;
            }
            ConfRequest::Set { pairs } => {
                if pairs.is_empty() {
                    return fail(reply, ErrorKind::Invalid, "nothing to set".into());
                }
                for (key, value) in &pairs {
                    if let Err(e) = module_conf::set(&mut store, key, value) {
                        return fail(reply, ErrorKind::Invalid, e);
                    }
                    if let Ok(parts) = module_conf::split_key(key) {
                        if parts.len() > 1 && !sections.contains(&parts[0]) {
                            sections.push(parts[0].clone());
                        }
                    }
                }
            }
            ConfRequest::Unset { key } => {
                if let Err(e) = module_conf::unset(&mut store, &key) {
                    return fail(reply, ErrorKind::Invalid, e);
                }
            }
        }
        let rotation_changed = store.get(LOGROTATE) != self.conf.get(LOGROTATE);
        let changed = store != self.conf;
        self.conf = store;
        let mut notes = Vec::new();
        if rotation_changed {
            let logs = rotation(&self.home, &self.conf, self.toml_logs);
            self.logs.set_defaults(logs);
            notes.push(describe_rotation(&logs));
        }
        let (written_tx, written) = oneshot::channel();
        if changed {
            self.persister
                .write_conf(module_conf::to_text(&self.conf), written_tx);
        } else {
            let _ = written_tx.send(Ok(String::new()));
        }
        // The apps named by a section that was set: the section in their environment, restarted.
        let mut waiters = Vec::new();
        let mut restarted = Vec::new();
        for name in sections.iter().filter(|name| name.as_str() != LOGROTATE) {
            let ids = self.ids_named(name);
            if ids.is_empty() {
                continue;
            }
            let env = module_conf::app_env(&self.conf, name);
            for id in &ids {
                let Some(entry) = self.apps.get_mut(id) else {
                    continue;
                };
                let mut spec = (*entry.spec).clone();
                spec.env.extend(env.iter().cloned());
                entry.spec = Arc::new(spec);
                let socket = self.sockets.get(&entry.spec.name).cloned();
                let _ = entry
                    .mailbox
                    .send(InstanceMsg::UpdateSpec(entry.spec.clone(), socket));
                self.drop_pending_of(*id);
                waiters.push(self.command(*id, Control::Restart));
                restarted.push(*id);
            }
        }
        let response = Response::Conf {
            store: serde_json::Value::Object(self.conf.clone()),
            restarted,
            notes,
        };
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let written = written
                .await
                .unwrap_or_else(|_| Err("the daemon is exiting".to_string()));
            for waiter in waiters {
                let _ = waiter.await;
            }
            let finish = match written {
                Ok(_) => Finish::Reply(response),
                Err(e) => Finish::Failed(WireError {
                    kind: ErrorKind::Internal,
                    message: format!(
                        "{e}: the change is in force but will be lost when the daemon stops"
                    ),
                }),
            };
            let _ = commands
                .send(super::Command::Settled { finish, reply })
                .await;
        });
    }
}
