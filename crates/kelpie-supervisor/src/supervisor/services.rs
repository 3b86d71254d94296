//! What the supervisor is built from ([`Setup`]), the handles it uses without owning them
//! ([`Services`]), and how it starts an instance task ([`NewInstance`]).

use super::apps::Apps;
use super::{foreground, update};
use crate::instance::{self, InstanceEvent, InstanceMsg, InstanceSetup};
use crate::logs::LogService;
use crate::monitor::Monitor;
use crate::persist::Persister;
use crate::sockets::{ClaimedSockets, ListenSocket};
use kelpie_core::{AppSpec, InstanceState};
use kelpie_proto::Home;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a supervisor is built from. `crate::startup` starts the daemon's services; the in-process
/// tests (`supervisor/tests/`) start theirs with fake processes and no monitor thread.
pub struct Setup {
    pub home: Home,
    /// Writes `state.json`, the dump and the configuration store.
    pub persister: Persister,
    pub logs: LogService,
    /// Samples the instances' processes (in the tests: not started, fed by the test).
    pub monitor: Monitor,
    /// One cgroup per app process, when the daemon can create them.
    pub cgroups: crate::cgroups::Cgroups,
    /// The event bus (the web server has it too).
    pub bus: crate::bus::Bus,
    /// The notifications (`[[notify]]`; the control socket's server has them too).
    pub alerts: crate::alerts::Alerts,
    /// Where the instances' processes run.
    pub platform: instance::Platform,
    /// A second descriptor of the control socket, for `kelpie update`.
    pub control: std::os::fd::OwnedFd,
    /// The configuration store (`kelpie set`), as on disk.
    pub conf: kelpie_config::module_conf::ConfStore,
    /// The rotation defaults of `kelpie.toml` (`[logs]`).
    pub toml_logs: kelpie_config::LogDefaults,
    /// Under `kelpie runtime`: its apps' exit, output and orphans.
    pub foreground: Option<foreground::Foreground>,
}

/// Handles on what the supervisor uses and does not own: none of them is its state.
pub(super) struct Services {
    pub(super) home: Home,
    /// Where its instances report.
    pub(super) events: mpsc::UnboundedSender<InstanceEvent>,
    pub(super) logs: LogService,
    pub(super) monitor: Monitor,
    pub(super) cgroups: crate::cgroups::Cgroups,
    /// Where the instances' processes run.
    pub(super) platform: instance::Platform,
    /// What happens to the processes, for the clients following it (`Request::Events`).
    pub(super) bus: crate::bus::Bus,
    /// Where what went wrong is told (`[[notify]]`).
    pub(super) alerts: crate::alerts::Alerts,
    /// The user the apps run as by default, for `list`.
    pub(super) username: String,
}

/// An instance task to start: who it is and what it starts with.
pub(super) struct NewInstance {
    pub(super) pm_id: u32,
    pub(super) instance: u32,
    pub(super) spec: Arc<AppSpec>,
    pub(super) state: InstanceState,
    pub(super) socket: Option<Arc<ListenSocket>>,
    pub(super) claims: Arc<ClaimedSockets>,
}

impl Services {
    /// Start an instance task, owned by the app table; its mailbox.
    pub(super) fn spawn_instance(
        &self,
        new: NewInstance,
        inherited: update::Inherited,
        apps: &mut Apps,
    ) -> crate::mailbox::Sender<InstanceMsg> {
        let setup = InstanceSetup {
            pm_id: new.pm_id,
            instance: new.instance,
            spec: new.spec,
            state: new.state,
            home: self.home.clone(),
            orphan_group: inherited.orphan_group,
            logs: self.logs.clone(),
            socket: new.socket,
            claims: new.claims,
            cgroups: self.cgroups.clone(),
            adopted: inherited.process,
            pipes: inherited.pipes,
            restart_in: inherited.restart_in,
            platform: self.platform.clone(),
        };
        instance::spawn(setup, self.events.clone(), apps.tasks())
    }

    /// Tell the monitor which process is instance `pm_id`'s now (none once deleted), to be
    /// read at once (for the next `list`).
    pub(super) fn sample(&self, apps: &Apps, pm_id: u32) {
        self.monitor.set_target(pm_id, apps.sampled(pm_id), true);
    }

    /// The same for a process that replaced one that ended on its own (a crash loop): read at
    /// the monitor's next period. Nobody waits to see it, and reading every instance early
    /// for each restart was ten readings a second of a crash-looping fleet.
    pub(super) fn sample_later(&self, apps: &Apps, pm_id: u32) {
        self.monitor.set_target(pm_id, apps.sampled(pm_id), false);
    }
}
