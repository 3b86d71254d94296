//! `depends_on`: an app starts once the apps it depends on are online (healthy, when they have
//! a health check), and is stopped before them.
//!
//! An action whose turn has not come is kept as a [`Pending`] and looked at again after every
//! state change of an instance.

use super::{Entry, Supervisor};
use kelpie_core::{Control, Health, Status};
use std::collections::{BTreeMap, BTreeSet};
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
    ids: Vec<u32>,
    /// What to do with them.
    action: PendingAction,
    /// What must be true first.
    wait: Wait,
    /// Hears `None` once the action is done and its instances have settled, or why it was not
    /// done.
    done: oneshot::Sender<Option<String>>,
}

/// What a pending action does.
#[derive(Clone, Copy)]
pub(super) enum PendingAction {
    /// Send this command.
    Control(Control),
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

/// Where a pending action stands.
enum Turn {
    Wait,
    Go,
    Fail(String),
}

impl Supervisor {
    /// Instances of the apps `names` depends on, by the apps' names.
    pub(super) fn instances_of(&self, names: &[String]) -> Vec<u32> {
        self.apps
            .iter()
            .filter(|(_, entry)| names.contains(&entry.spec.name))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Act on `ids` once the apps their app depends on are up; `in_flight` are the instances
    /// that the same request has just acted on. The receiver hears how it went.
    pub(super) fn after_dependencies(
        &mut self,
        ids: Vec<u32>,
        control: Control,
        in_flight: &BTreeSet<u32>,
    ) -> oneshot::Receiver<Option<String>> {
        let (done, heard) = oneshot::channel();
        let Some(spec) = ids
            .first()
            .and_then(|id| self.apps.get(id))
            .map(|e| e.spec.clone())
        else {
            let _ = done.send(None);
            return heard;
        };
        let deps = self.instances_of(&spec.depends_on);
        let unsettled = deps
            .iter()
            .copied()
            .filter(|d| in_flight.contains(d))
            .collect();
        self.pending.push(Pending {
            ids,
            action: PendingAction::Control(control),
            wait: Wait::Up {
                app: spec.name.clone(),
                deps,
                unsettled,
                deadline: Instant::now() + DEPENDENCY_WAIT,
            },
            done,
        });
        self.run_pending();
        heard
    }

    /// Stop (or remove) `ids` in reverse dependency order: the instances of the targeted apps
    /// that depend on another targeted app go first. Returns what to wait for.
    pub(super) fn stop_in_order(
        &mut self,
        ids: &[u32],
        action: PendingAction,
    ) -> Vec<oneshot::Receiver<Option<String>>> {
        let mut by_app: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for id in ids {
            if let Some(entry) = self.apps.get(id) {
                by_app.entry(entry.spec.name.clone()).or_default().push(*id);
            }
        }
        let mut heard = Vec::new();
        for (name, app_ids) in &by_app {
            // The targeted apps that depend on this one.
            let dependents: Vec<u32> = by_app
                .iter()
                .filter(|(other, other_ids)| {
                    *other != name
                        && other_ids.first().is_some_and(|id| {
                            self.apps
                                .get(id)
                                .is_some_and(|e| e.spec.depends_on.contains(name))
                        })
                })
                .flat_map(|(_, other_ids)| other_ids.iter().copied())
                .collect();
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
        self.run_pending();
        heard
    }

    /// Carry out the pending actions whose turn has come (called after every state change).
    pub(super) fn run_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut index = 0;
        while index < self.pending.len() {
            match self.turn_of(&self.pending[index], now) {
                Turn::Wait => index += 1,
                Turn::Fail(why) => {
                    let pending = self.pending.swap_remove(index);
                    crate::daemon_log!("{why}");
                    let _ = pending.done.send(Some(why));
                    // Its instances will not be acted on: what they are now is final, and the
                    // apps waiting for them must see it (and fail too, not wait).
                    for id in &pending.ids {
                        self.note_reported(*id);
                    }
                    if let Some(name) = pending
                        .ids
                        .first()
                        .and_then(|id| self.apps.get(id))
                        .map(|e| e.spec.name.clone())
                    {
                        self.sync_watch(&name);
                    }
                    index = 0;
                }
                Turn::Go => {
                    let pending = self.pending.swap_remove(index);
                    let waiters: Vec<oneshot::Receiver<()>> = match pending.action {
                        PendingAction::Control(control) => pending
                            .ids
                            .iter()
                            .map(|id| self.command(*id, control))
                            .collect(),
                        PendingAction::Remove => {
                            pending.ids.iter().map(|id| self.remove(*id)).collect()
                        }
                    };
                    tokio::spawn(async move {
                        for waiter in waiters {
                            let _ = waiter.await;
                        }
                        let _ = pending.done.send(None);
                    });
                    // Acting may change what other pending actions wait for: look again.
                    index = 0;
                }
            }
        }
    }

    /// An instance reported: its state is now the result of what was asked of it.
    pub(super) fn note_reported(&mut self, pm_id: u32) {
        for pending in &mut self.pending {
            if let Wait::Up { unsettled, .. } = &mut pending.wait {
                unsettled.remove(&pm_id);
            }
        }
    }

    fn turn_of(&self, pending: &Pending, now: Instant) -> Turn {
        match &pending.wait {
            Wait::Down {
                dependents,
                deadline,
            } => {
                let stopped = |id: &u32| {
                    !self.leaving.contains(id)
                        && self.apps.get(id).is_none_or(|e| e.state.status.is_down())
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
                    let Some(entry) = self.apps.get(id) else {
                        return Turn::Fail(format!(
                            "app `{app}` was not started: an app it depends on was deleted"
                        ));
                    };
                    if unsettled.contains(id) {
                        all_up = false;
                        continue;
                    }
                    if entry.state.status.is_down() {
                        return Turn::Fail(format!(
                            "app `{app}` was not started: `{}` (id {id}), which it depends on, is {}",
                            entry.spec.name,
                            entry.state.status.as_str()
                        ));
                    }
                    all_up &= is_up(entry);
                }
                if all_up {
                    Turn::Go
                } else if now >= *deadline {
                    Turn::Fail(format!(
                        "app `{app}` was not started: the apps it depends on were not up within {} s",
                        DEPENDENCY_WAIT.as_secs()
                    ))
                } else {
                    Turn::Wait
                }
            }
        }
    }

    /// When the first pending action gives up waiting, if any.
    pub(super) fn next_pending_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|p| match &p.wait {
                Wait::Up { deadline, .. } | Wait::Down { deadline, .. } => *deadline,
            })
            .min()
    }

    /// An app that would depend on itself through the registered apps and `apps` (the specs of
    /// a start, which replace registered ones of the same name): the cycle, for an error.
    pub(super) fn dependency_cycle(&self, apps: &[kelpie_core::AppSpec]) -> Option<String> {
        let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for entry in self.apps.values() {
            graph.insert(entry.spec.name.clone(), entry.spec.depends_on.clone());
        }
        for spec in apps {
            graph.insert(spec.name.clone(), spec.depends_on.clone());
        }
        for spec in apps {
            let mut path = vec![spec.name.clone()];
            if let Some(cycle) = find_cycle(&graph, &mut path) {
                return Some(cycle.join(" -> "));
            }
        }
        None
    }

    /// Forget the pending actions on `pm_id` (its app was deleted, or a user's command
    /// superseded them).
    pub(super) fn drop_pending_of(&mut self, pm_id: u32) {
        for pending in &mut self.pending {
            pending.ids.retain(|id| *id != pm_id);
        }
    }
}

/// A path from `path`'s last app back to one already on it, depth first.
fn find_cycle(
    graph: &BTreeMap<String, Vec<String>>,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let last = path.last()?.clone();
    for next in graph.get(&last).into_iter().flatten() {
        if let Some(start) = path.iter().position(|name| name == next) {
            let mut cycle = path[start..].to_vec();
            cycle.push(next.clone());
            return Some(cycle);
        }
        // Bounded by the number of apps: a path never repeats a name.
        path.push(next.clone());
        if let Some(cycle) = find_cycle(graph, path) {
            return Some(cycle);
        }
        path.pop();
    }
    None
}

/// Online, and healthy when it has a health check.
fn is_up(entry: &Entry) -> bool {
    entry.state.status == Status::Online
        && entry
            .state
            .health
            .is_none_or(|health| health == Health::Healthy)
}
