//! `depends_on`: an app starts once the apps it depends on are online (healthy, when they have
//! a health check), and is stopped before them.
//!
//! An action whose turn has not come is kept as a [`Pending`] and looked at again after every
//! state change of an instance.

use super::apps::{Apps, Entry};
use super::Supervisor;
use crate::maybe::until;
use kelpie_core::{Health, Lifecycle, Status};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long a start waits for the apps it depends on.
pub(super) const DEPENDENCY_WAIT: Duration = Duration::from_secs(120);
/// How long a stop waits for the apps that depend on it to stop (then it goes ahead anyway).
const DEPENDENTS_WAIT: Duration = Duration::from_secs(60);

/// An action on some instances that waits for other instances.
pub(super) struct Pending {
    /// The instances to act on.
    pub ids: Vec<u32>,
    /// What to do with them.
    pub action: PendingAction,
    /// What must be true first.
    wait: Wait,
    /// Hears `None` once the action is done and its instances have settled, or why it was not
    /// done.
    pub done: oneshot::Sender<Option<String>>,
}

/// What a pending action does.
#[derive(Clone, Copy)]
pub(super) enum PendingAction {
    /// Send this command.
    Lifecycle(Lifecycle),
    /// Take the instances out of the table (delete).
    Remove,
}

/// What a pending action waits for.
enum Wait {
    /// These instances (the apps depended on) to be up.
    Up {
        /// The app that waits, for messages.
        app: String,
        /// The instances of the apps it depends on.
        deps: Vec<u32>,
        /// Those acted on by the same request: their current state is not yet the result of
        /// that action until they report again.
        unsettled: BTreeSet<u32>,
        /// When to give up.
        deadline: Instant,
    },
    /// These instances (the apps that depend on them) to be stopped or gone.
    Down {
        dependents: Vec<u32>,
        /// When to go ahead anyway (a stop must end).
        deadline: Instant,
    },
}

/// Why a start that waited for its dependencies is given up.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotStarted {
    #[error("app `{app}` was not started: an app it depends on was deleted")]
    DependencyDeleted { app: String },
    #[error(
        "app `{app}` was not started: `{dependency}` (id {id}), which it depends on, is {status}"
    )]
    DependencyDown {
        app: String,
        dependency: String,
        id: u32,
        status: &'static str,
    },
    #[error(
        "app `{app}` was not started: the apps it depends on were not up within {} s",
        DEPENDENCY_WAIT.as_secs()
    )]
    DependenciesLate { app: String },
}

/// Where a pending action stands.
enum Turn {
    Wait,
    Go,
    Fail(NotStarted),
}

/// The actions waiting for other apps.
#[derive(Default)]
pub(super) struct Dependencies {
    pending: Vec<Pending>,
}

impl Dependencies {
    /// Whether no action waits.
    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Send `lifecycle` to `ids` (of app `app`) once `deps`, the instances of the apps it depends
    /// on, are up; `in_flight` are the instances the same request has just acted on. The
    /// receiver hears how it went.
    pub(super) fn once_up(
        &mut self,
        ids: Vec<u32>,
        lifecycle: Lifecycle,
        app: String,
        deps: Vec<u32>,
        in_flight: &BTreeSet<u32>,
    ) -> oneshot::Receiver<Option<String>> {
        let (done, heard) = oneshot::channel();
        let unsettled = deps
            .iter()
            .copied()
            .filter(|d| in_flight.contains(d))
            .collect();
        self.pending.push(Pending {
            ids,
            action: PendingAction::Lifecycle(lifecycle),
            wait: Wait::Up {
                app,
                deps,
                unsettled,
                deadline: Instant::now() + DEPENDENCY_WAIT,
            },
            done,
        });
        heard
    }

    /// Stop (or remove) `ids` in reverse dependency order: the instances of the targeted apps
    /// that depend on another targeted app go first. Returns what to wait for.
    pub(super) fn stop_in_order(
        &mut self,
        ids: &[u32],
        action: PendingAction,
        apps: &Apps,
    ) -> Vec<oneshot::Receiver<Option<String>>> {
        let mut by_app: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for id in ids {
            if let Some(entry) = apps.get(*id) {
                by_app.entry(entry.spec.name.clone()).or_default().push(*id);
            }
        }
        // The targeted apps that depend on each one, from each app's own list: in one pass
        // (comparing every pair cost seconds of CPU for a `stop all` of thousands of apps).
        let mut dependents_of: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (name, app_ids) in &by_app {
            let depends_on = app_ids
                .first()
                .and_then(|id| apps.get(*id))
                .map(|e| e.spec.depends_on.as_slice())
                .unwrap_or_default();
            for dependency in depends_on {
                if dependency != name && by_app.contains_key(dependency) {
                    dependents_of
                        .entry(dependency.as_str())
                        .or_default()
                        .extend(app_ids.iter().copied());
                }
            }
        }
        let mut heard = Vec::new();
        for (name, app_ids) in &by_app {
            let dependents = dependents_of.remove(name.as_str()).unwrap_or_default();
            let (done, rx) = oneshot::channel();
            self.pending.push(Pending {
                ids: app_ids.clone(),
                action,
                wait: Wait::Down {
                    dependents,
                    deadline: Instant::now() + DEPENDENTS_WAIT,
                },
                done,
            });
            heard.push(rx);
        }
        heard
    }

    /// The first pending action whose turn has come, taken out: `Ok` to carry it out, `Err`
    /// with why it is given up.
    pub(super) fn next_turn(
        &mut self,
        apps: &Apps,
        now: Instant,
    ) -> Option<(Pending, Result<(), NotStarted>)> {
        let (index, turn) = self
            .pending
            .iter()
            .enumerate()
            .find_map(|(index, pending)| match turn_of(pending, apps, now) {
                Turn::Wait => None,
                Turn::Go => Some((index, Ok(()))),
                Turn::Fail(why) => Some((index, Err(why))),
            })?;
        Some((self.pending.swap_remove(index), turn))
    }

    /// An instance reported: its state is now the result of what was asked of it.
    pub(super) fn note_reported(&mut self, pm_id: u32) {
        for pending in &mut self.pending {
            if let Wait::Up { unsettled, .. } = &mut pending.wait {
                unsettled.remove(&pm_id);
            }
        }
    }

    /// Ready when the first pending action gives up waiting; never without one.
    pub(super) fn deadline(&self) -> impl Future<Output = ()> + 'static {
        let first = self
            .pending
            .iter()
            .map(|p| match &p.wait {
                Wait::Up { deadline, .. } | Wait::Down { deadline, .. } => *deadline,
            })
            .min();
        until(first)
    }

    /// Forget the pending actions on `pm_id` (its app was deleted, or a user's command
    /// superseded them).
    pub(super) fn forget(&mut self, pm_id: u32) {
        for pending in &mut self.pending {
            pending.ids.retain(|id| *id != pm_id);
        }
    }
}

fn turn_of(pending: &Pending, apps: &Apps, now: Instant) -> Turn {
    match &pending.wait {
        Wait::Down {
            dependents,
            deadline,
        } => {
            let stopped = |id: &u32| {
                !apps.is_leaving(*id) && apps.get(*id).is_none_or(|e| e.state.status.is_down())
            };
            if dependents.iter().all(stopped) || now >= *deadline {
                Turn::Go
            } else {
                Turn::Wait
            }
        }
        Wait::Up {
            app,
            deps,
            unsettled,
            deadline,
        } => {
            let mut all_up = true;
            for id in deps {
                let Some(entry) = apps.get(*id) else {
                    return Turn::Fail(NotStarted::DependencyDeleted { app: app.clone() });
                };
                if unsettled.contains(id) {
                    all_up = false;
                    continue;
                }
                if entry.state.status.is_down() {
                    return Turn::Fail(NotStarted::DependencyDown {
                        app: app.clone(),
                        dependency: entry.spec.name.clone(),
                        id: *id,
                        status: entry.state.status.as_str(),
                    });
                }
                all_up &= is_up(entry);
            }
            if all_up {
                Turn::Go
            } else if now >= *deadline {
                Turn::Fail(NotStarted::DependenciesLate { app: app.clone() })
            } else {
                Turn::Wait
            }
        }
    }
}

/// Online, and healthy when it has a health check.
fn is_up(entry: &Entry) -> bool {
    entry.state.status == Status::Online
        && entry
            .state
            .health
            .is_none_or(|health| health == Health::Healthy)
}

impl Supervisor {
    /// Act on `ids` once the apps their app depends on are up; `in_flight` are the instances
    /// that the same request has just acted on. The receiver hears how it went.
    pub(super) fn after_dependencies(
        &mut self,
        ids: Vec<u32>,
        lifecycle: Lifecycle,
        in_flight: &BTreeSet<u32>,
    ) -> oneshot::Receiver<Option<String>> {
        let Some(spec) = ids
            .first()
            .and_then(|id| self.apps.get(*id))
            .map(|e| e.spec.clone())
        else {
            let (done, heard) = oneshot::channel();
            let _ = done.send(None);
            return heard;
        };
        let deps = self.apps.instances_of(&spec.depends_on);
        let heard = self
            .dependencies
            .once_up(ids, lifecycle, spec.name.clone(), deps, in_flight);
        self.run_pending();
        heard
    }

    /// Stop (or remove) `ids` in reverse dependency order (see [`Dependencies::stop_in_order`]).
    pub(super) fn stop_in_order(
        &mut self,
        ids: &[u32],
        action: PendingAction,
    ) -> Vec<oneshot::Receiver<Option<String>>> {
        let heard = self.dependencies.stop_in_order(ids, action, &self.apps);
        self.run_pending();
        heard
    }

    /// Carry out the pending actions whose turn has come (called after every state change).
    pub(super) fn run_pending(&mut self) {
        let now = Instant::now();
        // Acting may change what other pending actions wait for: each turn is looked for anew.
        while let Some((pending, turn)) = self.dependencies.next_turn(&self.apps, now) {
            match turn {
                Err(why) => {
                    crate::daemon_log!("{why}");
                    let _ = pending.done.send(Some(why.to_string()));
                    // Its instances will not be acted on: what they are now is final, and the
                    // apps waiting for them must see it (and fail too, not wait).
                    for id in &pending.ids {
                        self.dependencies.note_reported(*id);
                    }
                    if let Some(name) = pending
                        .ids
                        .first()
                        .and_then(|id| self.apps.get(*id))
                        .map(|e| e.spec.name.clone())
                    {
                        self.watches.sync(&name, &self.apps);
                    }
                }
                Ok(()) => {
                    let waiters: Vec<oneshot::Receiver<()>> = match pending.action {
                        PendingAction::Lifecycle(lifecycle) => pending
                            .ids
                            .iter()
                            .map(|id| self.apps.command(*id, lifecycle))
                            .collect(),
                        PendingAction::Remove => {
                            pending.ids.iter().map(|id| self.remove(*id)).collect()
                        }
                    };
                    let done = pending.done;
                    self.pending.after(waiters, move || {
                        let _ = done.send(None);
                        super::Back::Nothing
                    });
                }
            }
        }
    }
}
