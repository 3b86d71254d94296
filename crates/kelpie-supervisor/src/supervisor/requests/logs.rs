//! `flush` and `reloadLogs` (which instances a `logs` client reads is in `log_selection.rs`).

use crate::config_load::{read_daemon_settings, ConfigLoadError};
use crate::supervisor::apps::Apps;
use crate::supervisor::conf::Settings;
use crate::supervisor::failure::Failure;
use crate::supervisor::pending::{Back, PendingWork};
use crate::supervisor::services::Services;
use crate::supervisor_channel::LogSelection;
use crate::supervisor_channel::{Finish, Reply};
use kelpie_proto::Target;
use std::path::PathBuf;
use tokio::sync::oneshot;

/// Empty the log files of `targets` (empty = all) and their recent lines. Everything also
/// empties the daemon's own log (as PM2 empties its `pm2.log`); the files of deleted apps
/// are kept unless named (a name no listed app has) or asked for with `deleted`: a user who
/// deleted an app to keep its logs does not lose them.
pub(in crate::supervisor) fn flush_logs(
    (apps, services, pending): (&Apps, &Services, &mut PendingWork),
    targets: &[Target],
    deleted: bool,
    reply: oneshot::Sender<Reply>,
) {
    let home = &services.home;
    // Names no listed app has: the files a deleted app of that name left.
    let (gone, listed): (Vec<&Target>, Vec<&Target>) = targets.iter().partition(|t| {
        matches!(t, Target::Name(name) if apps.ids_named(name).is_empty()
            && !apps.iter().any(|(_, e)| e.spec.namespace == *name))
    });
    let gone: Vec<String> = gone
        .into_iter()
        .filter_map(|t| match t {
            Target::Name(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let listed: Vec<Target> = listed.into_iter().cloned().collect();
    let selection = if listed.is_empty() && !gone.is_empty() {
        LogSelection::default()
    } else {
        match apps.log_selection(&listed, home) {
            Ok(selection) => selection,
            Err(refusal) => return crate::supervisor::requests::fail(reply, refusal),
        }
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
    let everything = targets.iter().all(|t| matches!(t, Target::All));
    let left = Left {
        dir: home.logs_dir(),
        names: gone,
        all: deleted,
        daemon_log: everything.then(|| home.daemon_log()),
    };
    let logs = services.logs.clone();
    pending.spawn(async move {
        logs.flush(&ids, &paths).await;
        let in_use = paths.clone();
        let count = paths.len();
        let finish = match crate::tasks::blocking(move || left.flush(&in_use)).await {
            Ok(Ok(said)) => Finish::Done(format!("flushed {count} log file(s){said}")),
            Ok(Err(e)) => Finish::Failed(Failure::FlushFailed(e.to_string()).into()),
            Err(e) => Finish::Done(format!("flushed {count} log file(s) ({e})")),
        };
        Back::Answer { finish, reply }
    });
}

/// Re-read `kelpie.toml` and reopen every log file (after an external logrotate moved
/// them). A `kelpie.toml` with errors is refused and changes nothing; the files are still
/// reopened. The configuration store's `pm2-logrotate` keys stay over `[logs]`.
pub(in crate::supervisor) fn reload_logs(
    (services, pending): (&Services, &mut PendingWork),
    reply: Option<oneshot::Sender<Reply>>,
) {
    let settings_path = services.home.settings_file();
    pending.spawn(async move {
        let settings = read_daemon_settings(settings_path).await;
        Back::SettingsRead { settings, reply }
    });
}

/// `kelpie.toml` was read again for `reloadLogs`: its rotation applied (under the
/// configuration store's keys), then every log file reopened.
pub(in crate::supervisor) fn logs_settings_read(
    (conf, services, pending): (&mut Settings, &Services, &mut PendingWork),
    settings: Result<kelpie_config::DaemonSettings, ConfigLoadError>,
    reply: Option<oneshot::Sender<Reply>>,
) {
    let problem = match settings {
        Ok(settings) => {
            let rotation = conf.set_toml_logs(settings.logs);
            services.logs.set_defaults(rotation);
            None
        }
        Err(e) => Some(format!("{e}; the previous rotation settings stay")),
    };
    let logs = services.logs.clone();
    pending.spawn(async move {
        let count = logs.reopen().await;
        crate::daemon_log!("reopened {count} log file(s)");
        if let Some(problem) = &problem {
            crate::daemon_log!("{problem}");
        }
        let Some(reply) = reply else {
            return Back::Nothing;
        };
        let finish = match problem {
            None => Finish::Done(format!("reopened {count} log file(s)")),
            Some(problem) => Finish::Failed(Failure::ReopenedBut { count, problem }.into()),
        };
        Back::Answer { finish, reply }
    });
}

/// What a flush empties besides the listed apps' files: the files deleted apps left in the logs
/// directory (by name, or all of them), and the daemon's own log.
struct Left {
    dir: PathBuf,
    /// Names of deleted apps whose files to empty.
    names: Vec<String>,
    /// Every file no listed app writes.
    all: bool,
    /// The daemon's log, when everything is flushed.
    daemon_log: Option<PathBuf>,
}

/// A name to flush that no listed app has, and no deleted app left files of.
#[derive(Debug, thiserror::Error)]
#[error("no app named `{name}`, and no log files of a deleted app of that name in {}", dir.display())]
struct NoLogFiles {
    name: String,
    dir: PathBuf,
}

impl Left {
    /// Empty what was asked for; what to add to the answer, or why a named app has no files.
    /// Blocking (files).
    fn flush(&self, in_use: &[PathBuf]) -> Result<String, NoLogFiles> {
        let mut said = String::new();
        if let Some(log) = &self.daemon_log {
            if empty(log) {
                said.push_str(" and the daemon's log");
            }
        }
        let left = left_files(&self.dir, in_use);
        let named: Vec<&PathBuf> = left
            .iter()
            .filter(|path| self.all || self.names.iter().any(|name| written_by(path, name)))
            .collect();
        for name in &self.names {
            if !named.iter().any(|path| written_by(path, name)) {
                return Err(NoLogFiles {
                    name: name.clone(),
                    dir: self.dir.clone(),
                });
            }
        }
        let emptied: Vec<String> = named
            .into_iter()
            .filter(|path| empty(path))
            .filter_map(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        if !emptied.is_empty() {
            said.push_str(&format!(
                "; emptied {} file(s) of apps no longer listed: {}",
                emptied.len(),
                emptied.join(", ")
            ));
        }
        let kept = left.len().saturating_sub(emptied.len());
        if kept > 0 && self.daemon_log.is_some() && !self.all {
            said.push_str(&format!(
                "; kept {kept} file(s) of apps no longer listed (`kelpie flush --deleted` empties them, or `kelpie flush <name>` one app's)"
            ));
        }
        Ok(said)
    }
}

/// The log files in `dir` that no listed app writes (`in_use`), not empty, sorted; rotated
/// archives are not log files (`.log` only).
fn left_files(dir: &std::path::Path, in_use: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut left: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .filter(|path| !in_use.contains(path))
        .filter(|path| std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
        .collect();
    left.sort();
    left
}

/// Whether `path` is one of the default log files of an app named `name` (`<stem>-out.log`,
/// `-error.log`, `.log`, with or without `-<pm_id>`).
fn written_by(path: &std::path::Path, name: &str) -> bool {
    let stem = kelpie_core::log_name(name);
    let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let Some(rest) = file
        .strip_prefix(stem.as_str())
        .and_then(|r| r.strip_suffix(".log"))
    else {
        return false;
    };
    let rest = rest.trim_start_matches("-out").trim_start_matches("-error");
    rest.is_empty()
        || rest
            .strip_prefix('-')
            .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Empty the file at `path`; whether it could be.
fn empty(path: &std::path::Path) -> bool {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .is_ok()
}
