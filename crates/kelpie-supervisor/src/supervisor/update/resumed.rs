//! What a new daemon goes on with ([`Resumed`]): what its previous program handed over, or
//! what the keeper of a daemon that died kept (checked against the state first); given out
//! instance by instance, then reported.

use super::Inherited;
use crate::logs::HandedPipe;
use crate::update::{self, HandedProcess, Handoff};
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where what a daemon goes on with comes from.
enum Origin {
    /// The program this one replaced in place (`kelpie update`), of this version.
    Update { from_version: String },
    /// The keeper of a daemon that died, with that daemon's pid.
    Keeper { daemon_pid: u32, dropped: u64 },
}

/// What a new daemon goes on with (besides the control socket): what its previous program
/// handed over, or what the keeper of a daemon that died kept.
pub struct Resumed {
    origin: Origin,
    /// The cgroups (taken when the daemon sets its cgroups up).
    pub cgroups: Option<crate::cgroups::HandedCgroups>,
    sockets: BTreeMap<String, std::os::fd::OwnedFd>,
    claimed: Vec<crate::sockets::HandedSocket>,
    processes: BTreeMap<u32, HandedProcess>,
    pipes: Vec<HandedPipe>,
    restarts: BTreeMap<u32, Duration>,
    /// Pids of the processes given to their instances.
    kept: Vec<u32>,
    /// Processes a keeper kept that are not (or no longer) what the state says, by `pm_id`:
    /// stopped.
    strays: Vec<(u32, HandedProcess)>,
}

impl Resumed {
    /// The control socket, and the rest.
    pub fn split(handoff: Handoff) -> (std::os::fd::OwnedFd, Resumed) {
        crate::link::adopt_notify_sockets(handoff.notify);
        let resumed = Resumed {
            origin: Origin::Update {
                from_version: handoff.from_version,
            },
            cgroups: handoff.cgroups,
            sockets: handoff.sockets,
            claimed: handoff.claimed,
            processes: handoff.processes,
            pipes: handoff.pipes,
            restarts: handoff.restarts,
            kept: Vec::new(),
            strays: Vec::new(),
        };
        (handoff.control, resumed)
    }

    /// What the keeper of a daemon that died kept. Its processes are only candidates until
    /// [`Resumed::verify`] checked them against the state.
    pub fn from_keeper(reclaimed: crate::reclaim::Reclaimed) -> Resumed {
        crate::link::adopt_notify_sockets(reclaimed.notify);
        let mut processes = BTreeMap::new();
        let mut strays = Vec::new();
        for (pm_id, process) in reclaimed.processes {
            // A reload in progress has two: the state says which one is the instance's.
            match processes.remove(&pm_id) {
                None => {
                    processes.insert(pm_id, process);
                }
                Some(other) => {
                    strays.push((pm_id, other));
                    strays.push((pm_id, process));
                }
            }
        }
        Resumed {
            origin: Origin::Keeper {
                daemon_pid: reclaimed.daemon_pid,
                dropped: reclaimed.dropped,
            },
            cgroups: None,
            sockets: reclaimed.sockets,
            claimed: reclaimed.claimed,
            processes,
            pipes: reclaimed.pipes,
            restarts: BTreeMap::new(),
            kept: Vec::new(),
            strays,
        }
    }

    /// Keep only the processes that are still the very ones `state` records for their
    /// instance: same pid, alive (their pidfd, kept since they were known, is not readable),
    /// and the same start time. The others become strays. Blocking (/proc).
    pub(crate) fn verify(&mut self, state: &crate::state::StateFile) {
        if !matches!(self.origin, Origin::Keeper { .. }) {
            return;
        }
        for (pm_id, process) in std::mem::take(&mut self.processes) {
            let recorded = state.apps.iter().find(|app| app.pm_id == pm_id);
            let same = recorded.is_some_and(|app| {
                app.state.pid == Some(process.pid)
                    && app.pid_start_ticks.is_none_or(|ticks| {
                        kelpie_sys::sample_process(process.pid)
                            .is_some_and(|live| live.start_ticks == ticks)
                    })
            });
            let alive = process.pidfd.as_ref().is_some_and(|fd| {
                use std::os::fd::AsFd;
                !kelpie_sys::wait_readable(fd.as_fd(), Duration::ZERO).unwrap_or(true)
            });
            if same && alive {
                self.processes.insert(pm_id, process);
            } else if alive {
                self.strays.push((pm_id, process));
            }
        }
    }

    /// Take the processes of this home's apps found running that a keeper did not hold (spawned
    /// just before their daemon died) as candidates too, by the `pm_id` in their environment,
    /// when that instance has no other: their pipes, held since before their spawn, are the
    /// keeper's. Nothing after an update. Blocking (/proc).
    pub(in crate::supervisor) fn add_found(
        &mut self,
        found: &[crate::supervisor::unrecorded::Found],
    ) {
        if !matches!(self.origin, Origin::Keeper { .. }) {
            return;
        }
        let held: std::collections::BTreeSet<u32> = self
            .processes
            .values()
            .chain(self.strays.iter().map(|(_, p)| p))
            .map(|p| p.pid)
            .collect();
        for process in found {
            let Some(pm_id) = process.pm_id else { continue };
            if held.contains(&process.pid) || self.processes.contains_key(&pm_id) {
                continue;
            }
            // A pidfd now, if it is still that process (checked after the pidfd is open).
            let Ok(pidfd) = kelpie_sys::watch_exit(process.pid) else {
                continue;
            };
            if kelpie_sys::sample_process(process.pid)
                .is_none_or(|live| live.zombie || live.start_ticks != process.start_ticks)
            {
                continue;
            }
            crate::daemon_log!(
                "app `{}` (id {pm_id}): process {} was running but not yet held by the keeper (spawned just before its daemon died); taking it with the rest",
                process.name,
                process.pid
            );
            self.processes.insert(
                pm_id,
                HandedProcess {
                    pid: process.pid,
                    link: crate::link::LinkFds {
                        notify: None,
                        ipc: None,
                        sdk: Default::default(),
                    },
                    cgroup: crate::supervisor::unrecorded::kelpie_cgroup(process.pid),
                    pidfd: Some(pidfd),
                },
            );
        }
    }

    /// Processes kept by a keeper that are not an instance's: stopped before anything starts.
    pub(crate) fn take_strays(&mut self) -> Vec<(u32, HandedProcess)> {
        std::mem::take(&mut self.strays)
    }

    /// The processes a keeper kept (`pm_id` → pid), before [`Resumed::verify`]; none after an
    /// update (whose state is always written).
    pub(crate) fn candidates(&self) -> BTreeMap<u32, u32> {
        match self.origin {
            Origin::Keeper { .. } => self.processes.iter().map(|(id, p)| (*id, p.pid)).collect(),
            Origin::Update { .. } => BTreeMap::new(),
        }
    }

    /// The pids of the processes handed over.
    pub(crate) fn pids(&self) -> std::collections::BTreeSet<u32> {
        self.processes.values().map(|p| p.pid).collect()
    }

    /// What was handed over for instance `pm_id`.
    pub(in crate::supervisor) fn take(&mut self, pm_id: u32) -> Inherited {
        let process = self.processes.remove(&pm_id);
        self.kept.extend(process.as_ref().map(|p| p.pid));
        let (pipes, others) = std::mem::take(&mut self.pipes)
            .into_iter()
            .partition(|pipe| pipe.pm_id == pm_id);
        self.pipes = others;
        Inherited {
            orphan_group: None,
            process,
            pipes,
            restart_in: self.restarts.remove(&pm_id),
        }
    }
}

impl Resumed {
    /// The listening sockets handed over, and those cluster-mode Node apps' code had asked
    /// for (see [`super::ports::Ports::resume`]).
    pub(in crate::supervisor) fn take_sockets(
        &mut self,
    ) -> (
        Vec<crate::sockets::HandedSocket>,
        BTreeMap<String, std::os::fd::OwnedFd>,
    ) {
        (
            std::mem::take(&mut self.claimed),
            std::mem::take(&mut self.sockets),
        )
    }

    /// Tell `kelpie update` (and the log) how it went.
    pub fn report(self, home: &Home) {
        for (pm_id, process) in &self.processes {
            crate::daemon_log!(
                "update: process {} (id {pm_id}) was handed over for an instance that is not in the state; it is left running",
                process.pid
            );
        }
        let mut kept = self.kept;
        kept.sort_unstable();
        let pids: Vec<String> = kept.iter().map(u32::to_string).collect();
        let pids = match pids.len() {
            0 => String::new(),
            // A long list says nothing more than its count.
            1..=10 => format!(" (pids {})", pids.join(", ")),
            _ => String::new(),
        };
        match self.origin {
            Origin::Update { from_version } => update::report_later(
                home,
                update::Outcome::Updated(format!(
                    "daemon updated from v{from_version} to v{} (pid {}); {} processes kept running, none restarted{pids}",
                    env!("CARGO_PKG_VERSION"),
                    std::process::id(),
                    kept.len(),
                )),
            ),
            Origin::Keeper {
                daemon_pid,
                dropped,
            } => crate::daemon_log!(
                "adopted {} processes left running by daemon {daemon_pid}, none restarted{pids}{}",
                kept.len(),
                if dropped > 0 {
                    format!("; {dropped} bytes of their output could not be kept meanwhile")
                } else {
                    String::new()
                }
            ),
        }
    }
}
