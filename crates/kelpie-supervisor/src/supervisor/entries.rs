//! An instance into and out of the app table, with what goes with it (its task, its logs, its
//! app's port and watches): new instances of a spec, a change of the spec of instances, and an
//! app's instances re-specced to a new count.

use super::apps::Entry;
use super::{update, NewInstance, Supervisor};
use crate::instance::InstanceMsg;
use crate::sockets::ListenSocket;
use kelpie_core::{AppSpec, InstanceState, Lifecycle};
use std::sync::Arc;
use tokio::sync::oneshot;

impl Supervisor {
    /// Register instance `pm_id` and start its task (which starts no process by itself).
    pub(super) fn add_entry(
        &mut self,
        pm_id: u32,
        instance: u32,
        spec: Arc<AppSpec>,
        state: InstanceState,
        socket: Option<Arc<ListenSocket>>,
        inherited: update::Inherited,
    ) {
        self.services.logs.claim(pm_id, &spec);
        let new = NewInstance {
            pm_id,
            instance,
            claims: self.ports.claims_of(&spec.name),
            spec: spec.clone(),
            state: state.clone(),
            socket,
        };
        let mailbox = self.services.spawn_instance(new, inherited, &mut self.apps);
        self.apps
            .insert(pm_id, Entry::new(instance, spec, state, mailbox));
        // A process it already runs (handed over by an earlier daemon) is sampled at once.
        self.services.sample(&self.apps, pm_id);
    }

    /// Take an instance out of the table and tell its task to stop and end.
    pub(super) fn remove(&mut self, pm_id: u32) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.dependencies.forget(pm_id);
        if let Some(Entry {
            mailbox,
            spec,
            state,
            ..
        }) = self.apps.take(pm_id)
        {
            let about = crate::bus::About::of(pm_id, &spec);
            self.services
                .bus
                .publish(crate::bus::event("delete", &about, &state));
            self.services.sample(&self.apps, pm_id);
            let _ = mailbox.send(InstanceMsg::Shutdown(tx));
            self.services.logs.forget(pm_id);
            // Its stdin FIFO (a process still stopping keeps its own descriptor); the id's
            // next app gets a new one.
            let _ = std::fs::remove_file(self.services.home.stdin_fifo(pm_id));
            // The port is closed with the app's last instance (the processes still stopping
            // hold their own copies until they exit).
            if self.apps.ids_named(&spec.name).is_empty() {
                self.ports.forget(&spec.name);
                self.watches.forget(&spec.name);
            }
        }
        rx
    }

    /// Change the spec of each of `ids` with `edit`, and tell its instance (it applies the
    /// new spec at its next start).
    pub(super) fn change_specs(&mut self, ids: &[u32], edit: impl Fn(&mut AppSpec)) {
        for id in ids {
            if let Some(spec) = self.apps.edit_spec(*id, &edit) {
                let socket = self.ports.socket_of(&spec.name);
                self.apps.send(*id, InstanceMsg::UpdateSpec(spec, socket));
            }
        }
        if !ids.is_empty() {
            self.persistence.changed();
        }
    }

    /// Register `spec.instances` new instances, and start them if `start` (and `autostart`).
    pub(super) fn create(
        &mut self,
        spec: AppSpec,
        socket: Option<Arc<ListenSocket>>,
        start: bool,
        waiters: &mut Vec<oneshot::Receiver<()>>,
    ) -> Vec<u32> {
        let first = self.apps.next_id();
        let ids: Vec<u32> = (first..first + spec.instances.max(1)).collect();
        self.create_as(spec, &ids, socket, start, waiters)
    }

    /// [`Supervisor::create`] with the ids the instances get (free ones, one per instance:
    /// a file's start gives them in PM2's order).
    pub(super) fn create_as(
        &mut self,
        spec: AppSpec,
        ids: &[u32],
        socket: Option<Arc<ListenSocket>>,
        start: bool,
        waiters: &mut Vec<oneshot::Receiver<()>>,
    ) -> Vec<u32> {
        if socket.is_some() {
            self.ports.keep(&spec.name, socket);
        }
        let mut spec = Arc::new(spec);
        self.apps.share_inherited_env(&mut spec);
        let run = start && spec.autostart;
        ids.iter()
            .map(|pm_id| self.create_with_id(*pm_id, spec.clone(), run, waiters))
            .collect()
    }

    pub(super) fn create_one(
        &mut self,
        spec: Arc<AppSpec>,
        run: bool,
        waiters: &mut Vec<oneshot::Receiver<()>>,
    ) -> u32 {
        let pm_id = self.apps.next_id();
        self.create_with_id(pm_id, spec, run, waiters)
    }

    fn create_with_id(
        &mut self,
        pm_id: u32,
        spec: Arc<AppSpec>,
        run: bool,
        waiters: &mut Vec<oneshot::Receiver<()>>,
    ) -> u32 {
        let instance = self.apps.lowest_free_instance(&spec.name);
        let socket = self.ports.socket_of(&spec.name);
        self.add_entry(
            pm_id,
            instance,
            spec,
            InstanceState::new(crate::clock::now()),
            socket,
            update::Inherited::default(),
        );
        if run {
            waiters.push(self.apps.command(pm_id, Lifecycle::Start));
        }
        pm_id
    }

    /// Give existing instances a new spec (and socket) without restarting them, adding (and
    /// starting) or removing instances to match `spec.instances`; returns the ids of the app
    /// after it, existing ones first.
    pub(super) fn update_instances(
        &mut self,
        ids: Vec<u32>,
        spec: AppSpec,
        socket: Option<Arc<crate::sockets::ListenSocket>>,
        start_new: bool,
        waiters: &mut Vec<oneshot::Receiver<()>>,
    ) -> Vec<u32> {
        let wanted = spec.instances.max(1) as usize;
        self.ports.keep(&spec.name, socket.clone());
        let spec = Arc::new(spec);
        let mut kept = Vec::new();
        for (n, id) in ids.into_iter().enumerate() {
            if n >= wanted {
                waiters.push(self.remove(id));
                continue;
            }
            if let Some(entry) = self.apps.get_mut(id) {
                entry.spec = spec.clone();
            }
            self.apps
                .send(id, InstanceMsg::UpdateSpec(spec.clone(), socket.clone()));
            kept.push(id);
        }
        while kept.len() < wanted {
            kept.push(self.create_one(spec.clone(), start_new, waiters));
        }
        kept
    }
}
