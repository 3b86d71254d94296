//! Requests about logs: which instances a `logs` client reads, `flush`, `reloadLogs`.

use super::apps::Apps;
use super::Supervisor;
use crate::control::{Finish, LogSelection, Reply, SelectedInstance};
use crate::launch::LogPaths;
use crate::logs::hub::LogFilter;
use crate::logs::LogService;
use kelpie_proto::{Home, LogFileInfo, Target, WireError};
use std::path::PathBuf;
use tokio::sync::oneshot;

impl Apps {
    /// The instances and follow filter for `targets` (empty = all).
    pub(super) fn log_selection(
        &self,
        targets: &[Target],
        home: &Home,
    ) -> Result<LogSelection, WireError> {
        let targets = if targets.is_empty() {
            vec![Target::All]
        } else {
            targets.to_vec()
        };
        let ids = self.resolve(&targets)?;
        let mut filter = LogFilter::default();
        for target in &targets {
            match target {
                Target::All => filter.all = true,
                Target::Id(_) => {
                    // A number may be an app's name (`--name 455`): the ids it selects.
                    filter
                        .ids
                        .extend(self.resolve(std::slice::from_ref(target))?);
                }
                Target::Name(name) if !self.ids_named(name).is_empty() => {
                    filter.names.insert(name.clone());
                }
                Target::Name(namespace) => {
                    filter.namespaces.insert(namespace.clone());
                }
                // A pattern or a script path follows the apps it matches now.
                Target::Pattern(_) | Target::NameOrScript { .. } => {
                    for id in self.resolve(std::slice::from_ref(target))? {
                        if let Some(entry) = self.get(id) {
                            filter.names.insert(entry.spec.name.clone());
                        }
                    }
                }
            }
        }
        let instances = ids
            .into_iter()
            .filter_map(|id| {
                let entry = self.get(id)?;
                Some(SelectedInstance {
                    pm_id: id,
                    name: entry.spec.name.clone(),
                    paths: crate::launch::log_paths(home, &entry.spec, id),
                })
            })
            .collect();
        Ok(LogSelection { instances, filter })
    }
}

impl Supervisor {
    /// Empty the log files of `targets` (empty = all) and their recent lines.
    pub(super) fn flush_logs(&self, targets: &[Target], reply: oneshot::Sender<Reply>) {
        let home = &self.services.home;
        let selection = match self.apps.log_selection(targets, home) {
            Ok(selection) => selection,
            Err(e) => return super::handlers::fail(reply, e.kind, e.message),
        };
        let ids: Vec<u32> = selection.instances.iter().map(|i| i.pm_id).collect();
        let mut paths: Vec<PathBuf> = Vec::new();
        for selected in &selection.instances {
            let files = selected.paths.files();
            for path in [files.out, files.err, files.combined].into_iter().flatten() {
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        // `flush` of everything also empties what deleted apps left in the logs directory:
        // the first thing a user tries when the disk is full.
        let everything = targets.iter().all(|t| matches!(t, Target::All));
        let logs_dir = everything.then(|| home.logs_dir());
        let logs = self.services.logs.clone();
        let commands = self.services.commands.clone();
        tokio::spawn(async move {
            logs.flush(&ids, &paths).await;
            let mut message = format!("flushed {} log file(s)", paths.len());
            if let Some(dir) = logs_dir {
                let in_use = paths.clone();
                let left = tokio::task::spawn_blocking(move || empty_left_logs(&dir, &in_use))
                    .await
                    .unwrap_or_default();
                if !left.is_empty() {
                    message.push_str(&format!(
                        "; emptied {} file(s) of apps no longer listed: {}",
                        left.len(),
                        left.join(", ")
                    ));
                }
            }
            let _ = commands
                .send(super::Command::Finish {
                    finish: Finish::Done(message),
                    reply,
                })
                .await;
        });
    }

    /// Re-read `kelpie.toml` and reopen every log file (after an external logrotate moved
    /// them). A `kelpie.toml` with errors is refused and changes nothing; the files are still
    /// reopened. The configuration store's `pm2-logrotate` keys stay over `[logs]`.
    pub(super) fn reload_logs(&self, reply: Option<oneshot::Sender<Reply>>) {
        let logs = self.services.logs.clone();
        let commands = self.services.commands.clone();
        let settings_path = self.services.home.settings_file();
        tokio::spawn(async move {
            let settings = read_settings(settings_path).await;
            let problem = match settings {
                Ok(settings) => {
                    // Applied by the supervisor, under the configuration store's keys.
                    let _ = commands.send(super::Command::TomlLogs(settings.logs)).await;
                    None
                }
                Err(e) => Some(format!("{e}; the previous rotation settings stay")),
            };
            let count = logs.reopen().await;
            crate::daemon_log!("reopened {count} log file(s)");
            if let Some(problem) = &problem {
                crate::daemon_log!("{problem}");
            }
            let Some(reply) = reply else { return };
            let finish = match problem {
                None => Finish::Done(format!("reopened {count} log file(s)")),
                Some(problem) => Finish::Failed(kelpie_proto::WireError {
                    kind: kelpie_proto::ErrorKind::Invalid,
                    message: format!("reopened {count} log file(s), but {problem}"),
                }),
            };
            let _ = commands
                .send(super::Command::Finish { finish, reply })
                .await;
        });
    }
}

/// The log files of an instance with their state, for `describe`.
pub(super) fn log_file_infos(logs: &LogService, paths: &LogPaths) -> Vec<LogFileInfo> {
    let files = paths.files();
    [
        ("out", files.out),
        ("err", files.err),
        ("combined", files.combined),
    ]
    .into_iter()
    .filter_map(|(kind, path)| {
        let path = path?;
        let status = logs.status(&path);
        Some(LogFileInfo {
            kind: kind.to_string(),
            path: path.display().to_string(),
            dropped_lines: status.as_ref().map_or(0, |s| s.dropped_lines),
            error: status.and_then(|s| s.error),
        })
    })
    .collect()
}

/// Read `kelpie.toml` off the async thread.
pub(super) async fn read_settings(path: PathBuf) -> Result<kelpie_config::DaemonSettings, String> {
    tokio::task::spawn_blocking(move || kelpie_config::DaemonSettings::load(&path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Empty the log files in `dir` that no app uses (`in_use`): what deleted apps left. Only
/// `*.log` files directly in `dir`; rotated archives are kept (retention prunes them). Returns
/// the names of the files emptied (those that held something).
fn empty_left_logs(dir: &std::path::Path, in_use: &[PathBuf]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut emptied: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .filter(|path| !in_use.contains(path))
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
        .filter(|path| {
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(path)
                .is_ok()
        })
        .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    emptied.sort();
    emptied
}
