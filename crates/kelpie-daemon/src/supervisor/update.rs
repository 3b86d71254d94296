//! `kelpie update` on the supervisor's side (the exec itself is in `crate::update`): wait until
//! no instance is in the middle of something, take every process from its task, every pipe from
//! the log readers, write the state, then become the new program. If the exec fails, the same
//! program takes everything back the way a new one would, and goes on.

use super::signals::Signals;
use super::{Command, Supervisor};
use crate::instance::{InstanceEvent, InstanceMsg};
use crate::logs::HandedPipe;
use crate::maybe::until;
use crate::update::{self, HandedProcess, Handoff};
use kelpie_core::Status;
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How long an update waits for every instance to settle (a start, stop or reload to finish).
const SETTLE_WITHIN: Duration = Duration::from_secs(10);
/// How often it looks again meanwhile.
const LOOK_AGAIN: Duration = Duration::from_millis(50);
/// How long the log readers may take to give their pipes back.
const PIPES_WITHIN: Duration = Duration::from_secs(2);

/// An update asked for and not done yet.
struct PendingUpdate {
    program: PathBuf,
    deadline: Instant,
    /// When to look again whether everything has settled.
    next_look: Instant,
    /// Why the last look found it could not go ahead.
    busy: String,
}

/// `kelpie update`'s part of the supervisor: the update in progress, and the second
/// descriptor of the control socket it passes on.
pub(super) struct Updating {
    pending: Option<PendingUpdate>,
    /// A second descriptor of the control socket.
    control: OwnedFd,
}

impl Updating {
    pub(super) fn new(control: OwnedFd) -> Updating {
        Updating {
            pending: None,
            control,
        }
    }

    /// The control socket was made anew (the home had been removed): its second descriptor.
    pub(super) fn set_control(&mut self, control: OwnedFd) {
        self.control = control;
    }

    /// Whether an update is in progress.
    pub(super) fn in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// Ready when it is time to look again whether the update can go ahead; never without an
    /// update.
    pub(super) fn look_due(&self) -> impl Future<Output = ()> + 'static {
        until(self.pending.as_ref().map(|u| u.next_look))
    }
}

/// What an instance task starts with from an earlier daemon besides its spec and state: a
/// process group that a daemon killed with -9 left running (to stop first), or what this
/// daemon's previous program handed over (to go on with).
#[derive(Default)]
pub struct Inherited {
    /// A process group left by a daemon that died.
    pub orphan_group: Option<u32>,
    /// Its running process, handed over.
    pub process: Option<HandedProcess>,
    /// Output pipes of its processes, handed over.
    pub pipes: Vec<HandedPipe>,
    /// Waiting to restart when handed over: the wait left.
    pub restart_in: Option<Duration>,
}

impl Supervisor {
    /// `UPDATE_SIGNAL` arrived: find and check the program (off the async thread), then
    /// [`Self::update_checked`].
    pub(super) fn update_asked(&mut self) {
        let home = &self.services.home;
        if self.foreground.is_some() {
            update::report_later(
                home,
                Err("`kelpie runtime` is not updated in place: start a container of the new image instead".into()),
            );
            return;
        }
        if self.exit.exiting() {
            update::report_later(home, Err("the daemon is stopping".into()));
            return;
        }
        if self.update.in_progress() {
            return;
        }
        let home = home.clone();
        let commands = self.services.commands.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || update::requested_program(&home))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let _ = commands.send(Command::UpdateChecked(result)).await;
        });
    }

    /// The program to become is known (or why not).
    pub(super) fn update_checked(&mut self, program: Result<PathBuf, String>) {
        match program {
            Ok(program) => {
                crate::daemon_log!(
                    "update: asked to become {}; waiting until every app has settled",
                    program.display()
                );
                let now = Instant::now();
                self.update.pending = Some(PendingUpdate {
                    program,
                    deadline: now + SETTLE_WITHIN,
                    next_look: now,
                    busy: String::new(),
                });
            }
            Err(e) => update::report_later(&self.services.home, Err(format!("not updated: {e}"))),
        }
    }

    /// Why the daemon cannot hand over right now, if it cannot.
    fn busy(&self) -> Option<String> {
        if self.exit.exiting() {
            return Some("the daemon is stopping".into());
        }
        if !self.dependencies.is_empty() {
            return Some("apps are waiting for their dependencies".into());
        }
        if self.apps.any_leaving() {
            return Some("deleted apps are still stopping".into());
        }
        self.apps.iter().find_map(|(pm_id, entry)| {
            matches!(entry.state.status, Status::Launching | Status::Stopping).then(|| {
                format!(
                    "app `{}` (id {pm_id}) is {}",
                    entry.spec.name,
                    entry.state.status.as_str()
                )
            })
        })
    }

    /// Time to look again: hand over if everything has settled, give up past the deadline.
    pub(super) async fn update_look(
        &mut self,
        events: &mut mpsc::UnboundedReceiver<InstanceEvent>,
        signals: &mut Signals,
    ) {
        let Some(pending) = self.update.pending.as_mut() else {
            return;
        };
        let now = Instant::now();
        pending.next_look = now + LOOK_AGAIN;
        let program = pending.program.clone();
        let attempt = match self.busy() {
            Some(why) => Err(why),
            None => self.hand_over_and_exec(program, events, signals).await,
        };
        let Err(why) = attempt else { return };
        let Some(pending) = self.update.pending.as_mut() else {
            return;
        };
        if now < pending.deadline {
            pending.busy = why;
            return;
        }
        let why = if pending.busy.is_empty() {
            why
        } else {
            pending.busy.clone()
        };
        self.update.pending = None;
        update::report_later(
            &self.services.home,
            Err(format!(
                "not updated: the apps did not settle within {} s ({why}); try again",
                SETTLE_WITHIN.as_secs()
            )),
        );
    }

    /// Ask every instance whether it could hand over now; the first refusal, named.
    async fn refusal(&self) -> Option<String> {
        let asked: Vec<(u32, oneshot::Receiver<Result<(), String>>)> = self
            .apps
            .iter()
            .map(|(pm_id, entry)| {
                let (tx, rx) = oneshot::channel();
                let _ = entry.mailbox.send(InstanceMsg::CanHandOver(tx));
                (pm_id, rx)
            })
            .collect();
        for (pm_id, answer) in asked {
            let why = match answer.await {
                Ok(Ok(())) => continue,
                Ok(Err(why)) => why,
                Err(_) => "it did not answer".to_string(),
            };
            let name = self.apps.get(pm_id).map(|e| e.spec.name.clone());
            return Some(format!(
                "app `{}` (id {pm_id}): {why}",
                name.unwrap_or_default()
            ));
        }
        None
    }

    /// Take everything from the instance tasks and the log readers, write the state, exec.
    /// Returns only if it could not: `Err` when something was busy (nothing changed; try again
    /// later); `Ok` when the update is over (failed, taken back, and reported, or abandoned for
    /// a stop signal).
    async fn hand_over_and_exec(
        &mut self,
        program: PathBuf,
        events: &mut mpsc::UnboundedReceiver<InstanceEvent>,
        signals: &mut Signals,
    ) -> Result<(), String> {
        // Asked first, so that an instance that cannot go does not make the others go and
        // come back (their health checks and timers would start again every time).
        if let Some(why) = self.refusal().await {
            return Err(why);
        }
        // Reports sent before a task handed over are older than what it hands over.
        while let Ok(event) = events.try_recv() {
            self.on_event(event);
        }
        let handed = self.take_instances().await?;
        let handed = self.take_pipes(handed).await?;
        let parts = match self.write_for_handoff().await {
            Ok(parts) => parts,
            Err(why) => {
                self.resume_instances(handed);
                self.update.pending = None;
                update::report_later(&self.services.home, Err(format!("not updated: {why}")));
                return Ok(());
            }
        };
        // A stop asked for meanwhile wins over the update.
        if let Some(stop) = signals.stop_pending() {
            self.resume_instances(handed);
            self.update.pending = None;
            update::report_later(
                &self.services.home,
                Err(format!("not updated: the daemon received {stop}")),
            );
            self.begin_shutdown(stop, None);
            return Ok(());
        }
        let handoff = self.handoff(parts, handed);
        crate::daemon_log!(
            "update: handing {} running processes over to {}",
            handoff.processes.len(),
            program.display()
        );
        // The exec passes everything on by itself; a keeper left running would read the pipes.
        crate::keeper::dismiss().await;
        let (handoff, error) = handoff.exec(&self.services.home, &program);
        // Still this program: take everything back.
        crate::keeper::restart();
        self.take_back(handoff);
        self.update.pending = None;
        update::report_later(
            &self.services.home,
            Err(format!(
                "not updated: cannot execute {}: {error}; the daemon goes on with v{}",
                program.display(),
                env!("CARGO_PKG_VERSION")
            )),
        );
        Ok(())
    }

    /// Every instance task hands over its state and process, and ends; `Err` when one refused
    /// (the others then go on).
    async fn take_instances(&mut self) -> Result<BTreeMap<u32, Inherited>, String> {
        let asked: Vec<(u32, oneshot::Receiver<_>)> = self
            .apps
            .iter()
            .map(|(pm_id, entry)| {
                let (tx, rx) = oneshot::channel();
                let _ = entry.mailbox.send(InstanceMsg::HandOver(tx));
                (pm_id, rx)
            })
            .collect();
        let mut handed: BTreeMap<u32, Inherited> = BTreeMap::new();
        let mut refused = None;
        for (pm_id, answer) in asked {
            match answer.await {
                Ok(Ok(over)) => {
                    if let Some(entry) = self.apps.get_mut(pm_id) {
                        entry.state = over.state;
                    }
                    handed.insert(
                        pm_id,
                        Inherited {
                            process: over.process,
                            restart_in: over.restart_in,
                            ..Inherited::default()
                        },
                    );
                }
                Ok(Err(why)) => {
                    let name = self.apps.get(pm_id).map(|e| e.spec.name.clone());
                    refused = Some(format!(
                        "app `{}` (id {pm_id}): {why}",
                        name.unwrap_or_default()
                    ));
                }
                Err(_) => refused = Some(format!("instance {pm_id} did not answer")),
            }
        }
        if let Some(why) = refused {
            // Changed in the meantime: those that handed over go on at once, in this program
            // (their pipes were never taken: their readers still run).
            self.resume_instances(handed);
            return Err(why);
        }
        Ok(handed)
    }

    /// The log readers give back the output pipes, each added to what its instance handed
    /// over. If one did not in time, the instances go on at once, in this program, with the
    /// pipes that came back.
    async fn take_pipes(
        &mut self,
        mut handed: BTreeMap<u32, Inherited>,
    ) -> Result<BTreeMap<u32, Inherited>, String> {
        let (pipes, complete) = match self.services.logs.take_pipes(PIPES_WITHIN).await {
            Ok(pipes) => (pipes, true),
            // A reader still holds its pipe: going on would close it under its app.
            Err(returned) => (returned, false),
        };
        for pipe in pipes {
            if let Some(entry) = handed.get_mut(&pipe.pm_id) {
                entry.pipes.push(pipe);
            }
        }
        if !complete {
            self.resume_instances(handed);
            return Err("the log readers did not give their pipes back in time".into());
        }
        Ok(handed)
    }

    /// Write the state (waiting until it is on disk) and take second descriptors of the
    /// sockets to pass on; `Err` says which failed.
    async fn write_for_handoff(&mut self) -> Result<HandoffSockets, String> {
        let (ack, written) = oneshot::channel();
        self.persistence.write(&self.apps, Some(ack));
        let saved = written.await;
        match (saved, self.handoff_parts()) {
            (Ok(Ok(_)), Ok(parts)) => Ok(parts),
            (Ok(Err(e)), _) => Err(format!("the state could not be written: {e}")),
            (_, Err(e)) => Err(format!("cannot pass on the sockets: {e}")),
            (Err(_), _) => Err("the state could not be written".to_string()),
        }
    }

    /// What the next program gets: the sockets, the cgroups, and what the instances and log
    /// readers handed over.
    fn handoff(&self, parts: HandoffSockets, handed: BTreeMap<u32, Inherited>) -> Handoff {
        let HandoffSockets {
            control,
            sockets,
            claimed,
        } = parts;
        let mut handoff = Handoff {
            from_version: update::daemon_hello().version,
            mono_ms: crate::clock::now().mono_ms,
            control,
            cgroups: self.services.cgroups.hand_over(),
            sockets,
            claimed,
            processes: BTreeMap::new(),
            pipes: Vec::new(),
            restarts: BTreeMap::new(),
        };
        for (pm_id, parts) in handed {
            if let Some(process) = parts.process {
                handoff.processes.insert(pm_id, process);
            }
            if let Some(left) = parts.restart_in {
                handoff.restarts.insert(pm_id, left);
            }
            handoff.pipes.extend(parts.pipes);
        }
        handoff
    }

    /// The exec failed: new instance tasks go on with the processes, pending restarts and
    /// pipes of the hand-off that came back.
    fn take_back(&mut self, handoff: Handoff) {
        let mut handed: BTreeMap<u32, Inherited> = self
            .apps
            .iter()
            .map(|(id, _)| (id, Inherited::default()))
            .collect();
        for (pm_id, process) in handoff.processes {
            handed.entry(pm_id).or_default().process = Some(process);
        }
        for (pm_id, left) in handoff.restarts {
            handed.entry(pm_id).or_default().restart_in = Some(left);
        }
        for pipe in handoff.pipes {
            handed.entry(pipe.pm_id).or_default().pipes.push(pipe);
        }
        self.resume_instances(handed);
    }

    /// Second descriptors of the control socket and of every app's listening sockets.
    fn handoff_parts(&self) -> std::io::Result<HandoffSockets> {
        let control = self.update.control.try_clone()?;
        let (sockets, claimed) = self.ports.hand_over()?;
        Ok(HandoffSockets {
            control,
            sockets,
            claimed,
        })
    }

    /// New tasks for instances whose task handed over, going on with what it handed.
    fn resume_instances(&mut self, handed: BTreeMap<u32, Inherited>) {
        for (pm_id, parts) in handed {
            let Some(entry) = self.apps.get(pm_id) else {
                continue;
            };
            let spec = entry.spec.clone();
            let mailbox = self.services.spawn_instance(
                super::NewInstance {
                    pm_id,
                    instance: entry.instance,
                    state: entry.state.clone(),
                    socket: self.ports.socket_of(&spec.name),
                    claims: self.ports.claims_of(&spec.name),
                    spec,
                },
                Inherited {
                    orphan_group: None,
                    ..parts
                },
            );
            if let Some(entry) = self.apps.get_mut(pm_id) {
                entry.mailbox = mailbox;
            }
        }
    }
}

/// The control socket and the apps' listening sockets, as handed to the next program.
struct HandoffSockets {
    control: std::os::fd::OwnedFd,
    sockets: BTreeMap<String, std::os::fd::OwnedFd>,
    claimed: Vec<crate::sockets::HandedSocket>,
}

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
    pub fn verify(&mut self, state: &crate::state::StateFile) {
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

    /// Processes kept by a keeper that are not an instance's: stopped before anything starts.
    pub fn take_strays(&mut self) -> Vec<(u32, HandedProcess)> {
        std::mem::take(&mut self.strays)
    }

    /// The pids of the processes handed over.
    pub fn pids(&self) -> std::collections::BTreeSet<u32> {
        self.processes.values().map(|p| p.pid).collect()
    }

    /// What was handed over for instance `pm_id`.
    pub fn take(&mut self, pm_id: u32) -> Inherited {
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
    pub fn take_sockets(
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
                Ok(format!(
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
