//! `watch`: each app with watched paths has one watch (not one per instance) while any of its
//! instances is meant to run; a burst of changes restarts its instances (a reload when they
//! share a socket). A stopped app is not watched until it is started again.

use super::apps::Apps;
use super::Command;
use crate::instance::InstanceMsg;
use crate::watch::{WatchBurst, WatchHandle, WatchService, WatchSettings};
use kelpie_core::{AppSpec, Cause, Lifecycle, Status, Why};
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// Editors' scratch files, never worth a restart (vim's swap and its `4913` probe, backups).
const EDITOR_FILES: &[&str] = &["*.swp", "*.swx", "*~", "4913", ".#*"];

/// What an app's watch was set up from: other settings (a new spec, new instances with their
/// own log files) need a new watch.
pub(super) type WatchKey = WatchSettings;

/// One app's watch.
pub(super) enum Watching {
    /// Being set up on the blocking pool (walking the trees).
    Starting(WatchKey),
    /// In place (dropping the handle ends it).
    Active(WatchKey, #[allow(dead_code)] WatchHandle),
}

impl Watching {
    fn key(&self) -> &WatchKey {
        match self {
            Watching::Starting(key) | Watching::Active(key, _) => key,
        }
    }
}

/// The apps' watches, and the thread that watches for them all.
pub(super) struct Watches {
    home: Home,
    /// Where a watch's set-up and its bursts are sent, as commands.
    commands: mpsc::Sender<Command>,
    /// The file watching thread, started with the first watched app.
    service: Option<WatchService>,
    /// Watches of apps, by name.
    watchers: BTreeMap<String, Watching>,
    /// Each watch's task: set up, then its bursts passed on until the watch is dropped. Ended
    /// ones are reaped as new ones start; the rest are aborted with the supervisor.
    tasks: JoinSet<()>,
}

impl Watches {
    /// No watch yet; what they set up and see goes to `commands`.
    pub(super) fn new(home: Home, commands: mpsc::Sender<Command>) -> Watches {
        Watches {
            home,
            commands,
            service: None,
            watchers: BTreeMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Whether app `name` has a watch (set up or being set up).
    pub(super) fn has(&self, name: &str) -> bool {
        self.watchers.contains_key(name)
    }

    /// End app `name`'s watch (stopped, renamed, deleted).
    pub(super) fn forget(&mut self, name: &str) {
        self.watchers.remove(name);
    }

    /// Watch app `name` if it has watched paths and is not watched with these settings yet.
    /// The receiver fires once the watch is in place (or failed: logged), so that a start
    /// answers only when a change made right after it will be seen.
    pub(super) fn ensure(&mut self, name: &str, apps: &Apps) -> Option<oneshot::Receiver<()>> {
        let spec = apps.spec_of(name)?;
        if spec.watch.is_empty() {
            self.watchers.remove(name);
            return None;
        }
        let key = self.settings(&spec, apps);
        if self.watchers.get(name).is_some_and(|w| *w.key() == key) {
            return None;
        }
        let service = match &self.service {
            Some(service) => service.clone(),
            None => match WatchService::start() {
                Ok(service) => {
                    self.service = Some(service.clone());
                    service
                }
                Err(e) => {
                    crate::daemon_log!("app `{name}`: not watched: {e}");
                    return None;
                }
            },
        };
        self.watchers
            .insert(name.to_string(), Watching::Starting(key.clone()));
        let settings = key.clone();
        let (bursts, mut heard) = mpsc::unbounded_channel();
        let (done, set_up) = oneshot::channel();
        let commands = self.commands.clone();
        let app = name.to_string();
        crate::tasks::spawn_into(&mut self.tasks, async move {
            // Walking the trees blocks: on the blocking pool.
            let result = crate::tasks::blocking(move || service.watch(settings, bursts))
                .await
                .unwrap_or_else(|e| Err(e.into()));
            let _ = commands
                .send(Command::WatchStarted {
                    name: app.clone(),
                    key,
                    result,
                })
                .await;
            let _ = done.send(());
            // Bursts go to the supervisor until the watch is dropped (the channel then ends).
            while let Some(burst) = heard.recv().await {
                let changed = Command::FilesChanged {
                    name: app.clone(),
                    burst,
                };
                if commands.send(changed).await.is_err() {
                    return;
                }
            }
        });
        Some(set_up)
    }

    /// The watch of app `name` is set up (or failed).
    pub(super) fn started(
        &mut self,
        name: String,
        key: WatchKey,
        result: Result<WatchHandle, crate::watch::WatchError>,
    ) {
        let wanted = matches!(self.watchers.get(&name), Some(Watching::Starting(k)) if *k == key);
        match result {
            Ok(handle) if wanted => {
                let paths: Vec<String> =
                    key.paths.iter().map(|p| p.display().to_string()).collect();
                crate::daemon_log!("app `{name}`: watching {}", paths.join(", "));
                self.watchers.insert(name, Watching::Active(key, handle));
            }
            // Stopped or changed meanwhile: the handle is dropped, and with it the watch.
            Ok(_) => {}
            Err(e) => {
                crate::daemon_log!("app `{name}`: not watched: {e}");
                if wanted {
                    self.watchers.remove(&name);
                }
            }
        }
    }

    /// Start or end app `name`'s watch after a state change: watched while any instance is
    /// meant to run (errored counts: fixing the file that made it crash starts it again).
    pub(super) fn sync(&mut self, name: &str, apps: &Apps) {
        let Some(spec) = apps.spec_of(name) else {
            self.watchers.remove(name);
            return;
        };
        if spec.watch.is_empty() && !self.watchers.contains_key(name) {
            return;
        }
        let all_stopped = apps
            .iter()
            .filter(|(_, e)| e.spec.name == name)
            .all(|(_, e)| e.state.status == Status::Stopped);
        if all_stopped {
            if self.watchers.remove(name).is_some() {
                crate::daemon_log!("app `{name}`: stopped, no longer watched");
            }
        } else {
            drop(self.ensure(name, apps));
        }
    }

    /// Files of app `name` changed: restart its instances.
    pub(super) fn files_changed(&self, name: &str, burst: WatchBurst, apps: &Apps) {
        if !matches!(self.watchers.get(name), Some(Watching::Active(..))) {
            return;
        }
        let detail = match burst.changes {
            0 | 1 => format!("{} changed", burst.first_path.display()),
            n => format!("{} and {} more changed", burst.first_path.display(), n - 1),
        };
        for (_, entry) in apps.iter().filter(|(_, e)| e.spec.name == name) {
            let msg = match entry.state.status {
                Status::Stopped => continue,
                Status::Errored => InstanceMsg::Lifecycle(Lifecycle::Restart, None),
                _ => InstanceMsg::AutoRestart {
                    why: Box::new(Why {
                        cause: Cause::Watch,
                        detail: detail.clone(),
                        from_start: false,
                    }),
                    reload: true,
                    of_pid: None,
                },
            };
            let _ = entry.mailbox.send(msg);
        }
    }

    /// The settings of an app's watch: its paths and globs, and what is never watched: what the
    /// daemon writes (the log files and pid files of every app known when the watch is set up,
    /// the temporary files pid files are written through, the daemon's home).
    fn settings(&self, spec: &AppSpec, apps: &Apps) -> WatchSettings {
        let root = self.home.root().to_path_buf();
        let mut never: Vec<PathBuf> = vec![root.clone(), self.home.logs_dir()];
        for (pm_id, entry) in apps.iter() {
            let paths = crate::spawn_plan::log_paths(&self.home, &entry.spec, pm_id);
            let mut written: Vec<PathBuf> = [Some(paths.out), Some(paths.err), paths.combined]
                .into_iter()
                .flatten()
                .filter(|p| !kelpie_core::files::is_discard(p))
                .map(PathBuf::from)
                .collect();
            // A pid file naming a directory is not written, and not ignored whole.
            if let Some(pid_file) = kelpie_core::files::pid_file(&entry.spec, pm_id) {
                let pid_file = PathBuf::from(&entry.spec.cwd).join(pid_file);
                if !pid_file.is_dir() {
                    written.push(pid_file);
                }
            }
            never.extend(written.into_iter().filter(|p| !p.starts_with(&root)));
        }
        let mut ignore: Vec<String> = EDITOR_FILES.iter().map(|g| g.to_string()).collect();
        // The temporary files the daemon writes files through (pid files), whoever's they are.
        ignore.push(crate::atomic::temp_names_glob());
        ignore.extend(spec.ignore_watch.iter().cloned());
        WatchSettings {
            paths: spec.watch.iter().map(PathBuf::from).collect(),
            cwd: PathBuf::from(&spec.cwd),
            ignore,
            never,
            delay: Duration::from_millis(spec.watch_delay_ms),
        }
    }
}
