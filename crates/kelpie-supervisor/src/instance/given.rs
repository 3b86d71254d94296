//! What an instance task is given when it starts and keeps throughout: where its processes
//! run, its ids, its app's spec and sockets, the daemon's home, logs and cgroups, and whom it
//! reports to (the supervisor, and its own mailbox for what it tells itself later).

use super::refusal::NotDelivered;
use super::{Inherited, InstanceEvent, InstanceMsg, InstanceSetup, Platform};
use crate::cgroups::Cgroups;
use crate::logs::LogService;
use crate::sockets::{ClaimedSockets, ListenSocket};
use kelpie_core::{AppSpec, InstanceState, Published};
use kelpie_proto::Home;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the task is given. Read by every part; only the spec and the socket change
/// ([`Given::update`]).
pub(super) struct Given {
    /// Where its processes run.
    pub(super) platform: Platform,
    /// Its id.
    pub(super) pm_id: u32,
    /// Its index among its app's instances.
    pub(super) instance: u32,
    /// Its app's spec, for the next process it starts.
    pub(super) spec: Arc<AppSpec>,
    /// The daemon's home.
    pub(super) home: Home,
    /// The log pipeline its processes' output goes to.
    pub(super) logs: LogService,
    /// The daemon's cgroups.
    pub(super) cgroups: Cgroups,
    /// Its app's shared listening socket.
    pub(super) socket: Option<Arc<ListenSocket>>,
    /// The sockets its app's code asked for (cluster-mode Node apps).
    claims: Arc<ClaimedSockets>,
    /// Where it reports to the supervisor.
    events: mpsc::UnboundedSender<InstanceEvent>,
    /// Its own mailbox, for what it tells itself later (a stderr tail read, a restart after a
    /// failed reload); weak: the task ends once the supervisor drops its sender.
    myself: crate::mailbox::WeakSender<InstanceMsg>,
}

impl Given {
    /// What the task keeps of its setup, and the rest: the state and what it inherits, which
    /// it starts from.
    pub(super) fn new(
        setup: InstanceSetup,
        events: mpsc::UnboundedSender<InstanceEvent>,
        myself: crate::mailbox::WeakSender<InstanceMsg>,
    ) -> (Self, InstanceState, Inherited) {
        let inherited = Inherited {
            orphan_group: setup.orphan_group,
            process: setup.adopted,
            pipes: setup.pipes,
            restart_in: setup.restart_in,
        };
        let given = Given {
            platform: setup.platform,
            pm_id: setup.pm_id,
            instance: setup.instance,
            spec: setup.spec,
            home: setup.home,
            logs: setup.logs,
            cgroups: setup.cgroups,
            socket: setup.socket,
            claims: setup.claims,
            events,
            myself,
        };
        (given, setup.state, inherited)
    }

    /// Use `spec` and `socket` from now on; true when its `cron_restart` schedule changed.
    pub(super) fn update(&mut self, spec: Arc<AppSpec>, socket: Option<Arc<ListenSocket>>) -> bool {
        let schedule_changed = spec.cron_restart != self.spec.cron_restart
            || spec.cron_timezone != self.spec.cron_timezone;
        self.spec = spec;
        self.socket = socket;
        schedule_changed
    }

    /// Tell the supervisor (it may be gone when the daemon exits: nothing to do then).
    pub(super) fn report(&self, event: InstanceEvent) {
        let _ = self.events.send(event);
    }

    /// Tell the supervisor what the current process published.
    pub(super) fn send_published(&self, published: &Published) {
        self.report(InstanceEvent::Published {
            pm_id: self.pm_id,
            published: published.clone(),
        });
    }

    /// The task's own mailbox, for a task spawned apart to write to later.
    pub(super) fn myself(&self) -> crate::mailbox::WeakSender<InstanceMsg> {
        self.myself.clone()
    }

    /// Put `msg` in the task's own mailbox, after what is already there.
    pub(super) fn mail_myself(&self, msg: InstanceMsg) {
        if let Some(mailbox) = self.myself.upgrade() {
            let _ = mailbox.send(msg);
        }
    }

    /// Whether its processes take their listening socket from Kelpie: the app's own (`port`),
    /// or the ones its code asked for (cluster-mode Node apps, once one did). A new process is
    /// then ready once it listens, and a reload keeps the port served throughout.
    pub(super) fn shares_socket(&self) -> bool {
        self.socket.is_some() || (self.spec.shares_node_ports() && self.claims.any())
    }

    /// Whether a new process can serve the port beside the old one (see
    /// [`kelpie_core::reload::Serving::reloadable`]).
    pub(super) fn reloadable(&self) -> bool {
        self.shares_socket() || self.spec.reuse_port || self.spec.shares_reused_ports()
    }

    /// What a process's link may hand out: the app's claimed sockets, for a cluster-mode Node
    /// app (its shim asks for them).
    pub(super) fn link_claims(&self) -> Option<Arc<ClaimedSockets>> {
        self.spec.shares_node_ports().then(|| self.claims.clone())
    }

    /// The compiled ready pattern (validated when the app was configured).
    pub(super) fn ready_pattern(&self) -> Option<Arc<regex::bytes::Regex>> {
        let pattern = self.spec.ready_pattern.as_deref()?;
        regex::bytes::Regex::new(pattern).ok().map(Arc::new)
    }

    /// The port an app binding it itself (`reuse_port`) is expected to listen on.
    pub(super) fn reuse_port_number(&self) -> Option<u16> {
        if let Some(port) = self.spec.listen.as_ref().and_then(|l| l.port()) {
            return Some(port);
        }
        self.spec.env_port()
    }

    /// The answer to what needs a running process when none runs.
    pub(super) fn not_running(&self) -> NotDelivered {
        NotDelivered::NotRunning {
            name: self.spec.name.clone(),
            pm_id: self.pm_id,
        }
    }
}
