//! The apps a daemon starts with: `state.json`'s, restored (adopting what `kelpie update` or the
//! keeper handed over, stopping orphans that hold a port first), or, when none was left, the
//! dump's (`resurrect_if_empty`).

use super::orphans::load_with_orphans;
use super::{update, Supervisor};
use crate::clock;
use crate::instance::InstanceMsg;
use crate::state::StateFile;
use kelpie_core::Lifecycle;
use kelpie_proto::Response;
use std::collections::BTreeMap;
use tokio::sync::oneshot;

impl Supervisor {
    /// Restore `state.json`'s apps, adopting what was `resumed` and stopping orphans that hold a
    /// port first (blocking work, on the pool). Gives back what is left of `resumed`.
    pub async fn restore_state(
        &mut self,
        mut resumed: Option<update::Resumed>,
        crashed: bool,
    ) -> Option<update::Resumed> {
        let restore_home = self.services.home.clone();
        let loaded = crate::tasks::blocking(move || {
            let loaded = load_with_orphans(&restore_home, resumed.as_mut(), crashed);
            (loaded, resumed)
        })
        .await;
        let (loaded, mut resumed) = loaded.unwrap_or((None, None));
        if let Some((state, orphans)) = loaded {
            self.restore(state, &orphans, resumed.as_mut());
        }
        resumed
    }

    /// Bring back the saved list through the same path as `kelpie resurrect`, and log how it went.
    pub fn resurrect_at_start(&mut self) {
        let (reply, answer) = oneshot::channel();
        super::requests::handle(self, kelpie_proto::Request::Resurrect, reply);
        self.pending.spawn(async move {
            match answer.await.map(|r| r.response) {
                Ok(Response::Started { outcomes, .. }) => crate::daemon_log!(
                    "no app was left from the last daemon: brought back the {} saved in the dump",
                    outcomes.len()
                ),
                Ok(Response::Error(e)) => {
                    crate::daemon_log!("no app was left from the last daemon, and {}", e.message)
                }
                _ => {}
            }
            super::Back::Nothing
        });
    }

    fn restore(
        &mut self,
        state: StateFile,
        orphans: &BTreeMap<u32, u32>,
        mut resumed: Option<&mut update::Resumed>,
    ) {
        self.apps.number_from(state.next_id);
        if let Some(resumed) = resumed.as_deref_mut() {
            let (claimed, sockets) = resumed.take_sockets();
            self.ports.resume(&state, claimed, sockets);
        }
        let now = clock::now();
        let mut to_start = Vec::new();
        let mut adopted = Vec::new();
        for app in state.apps {
            let run = app.run;
            let pm_id = app.pm_id;
            let handed = resumed
                .as_deref_mut()
                .map(|r| r.take(pm_id))
                .unwrap_or_default();
            let socket = match self.ports.open(&app.spec) {
                Ok(socket) => socket,
                Err(e) => {
                    crate::daemon_log!("{e}; its instances start without it");
                    None
                }
            };
            if let Some(socket) = &socket {
                self.ports.keep(&app.spec.name, Some(socket.clone()));
            }
            let mut app = app;
            self.apps.share_inherited_env(&mut app.spec);
            if let Some(state) = handed
                .process
                .as_ref()
                .and_then(|_| app.state.clone().adopted(now))
            {
                // Handed over running: it goes on, nothing is started.
                adopted.push(app.spec.name.clone());
                self.add_entry(pm_id, app.instance, app.spec, state, socket, handed);
                continue;
            }
            // Handed over but not online in the state (which should not happen): stopped before
            // anything else, never run twice.
            let orphan_group = match &handed.process {
                Some(process) => {
                    crate::daemon_log!(
                        "update: process {} of id {pm_id} was handed over but its state is not online; stopping it",
                        process.pid
                    );
                    Some(process.pid)
                }
                None => orphans.get(&pm_id).copied(),
            };
            // After an update, an errored app stays errored, and a restart that was waiting goes
            // on from where it was (its backoff kept).
            use kelpie_core::Status;
            let keep = matches!(app.state.status, Status::WaitingRestart | Status::Errored);
            let state = if resumed.is_some() && keep {
                let mut state = app.state;
                state.pid = None;
                state
            } else {
                app.state.restored()
            };
            let waiting = state.status == Status::WaitingRestart;
            let inherited = update::Inherited {
                orphan_group,
                process: None,
                pipes: handed.pipes,
                restart_in: handed.restart_in,
            };
            self.add_entry(pm_id, app.instance, app.spec, state, socket, inherited);
            // A waiting restart happens when its wait ends (its task arms the timer).
            if run && !waiting {
                to_start.push(pm_id);
            }
        }
        // Apps that depend on others start once those are up, as at `start`.
        let in_flight: std::collections::BTreeSet<u32> = to_start.iter().copied().collect();
        let mut gated: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for pm_id in to_start {
            match self.apps.get(pm_id) {
                Some(entry) if !entry.spec.depends_on.is_empty() => {
                    gated
                        .entry(entry.spec.name.clone())
                        .or_default()
                        .push(pm_id);
                }
                _ => self
                    .apps
                    .send(pm_id, InstanceMsg::Lifecycle(Lifecycle::Start, None)),
            }
        }
        for ids in gated.into_values() {
            drop(self.after_dependencies(ids, Lifecycle::Start, &in_flight));
        }
        let started: std::collections::BTreeSet<String> = in_flight
            .iter()
            .filter_map(|id| self.apps.get(*id).map(|e| e.spec.name.clone()))
            .chain(adopted)
            .collect();
        for name in started {
            drop(self.watches.ensure(&name, &self.apps));
        }
        crate::daemon_log!(
            "restored {} instances from {}",
            self.apps.len(),
            self.services.home.state_file().display()
        );
    }
}
