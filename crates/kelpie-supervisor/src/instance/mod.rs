//! One task per instance: it owns the child process, waits on it, signals it and arms its
//! timers. Decisions come from `kelpie_core` (`InstanceState` for the process's life,
//! `reload::ReloadState` for reloads and automatic restarts); this module only carries them out.
//!
//! The task is made of parts that each own their state and what wakes the task about it:
//! what it is given (`given.rs`), its current process (`current.rs`), the reload in progress
//! (`reload.rs`), its timers (`timers.rs`), the checks of a stop's process group
//! (`stopping.rs`) and those waiting on it (`waiters.rs`). The task (here) selects over their
//! wakes and hands each to its handler (`wakes.rs`, `messages.rs`), which the parts' methods
//! and `replacing.rs` (starting, adopting and replacing processes) carry out.

use crate::cgroups::Cgroups;
use crate::clock;
use crate::logs::{HandedPipe, LogService};
use crate::maybe::when;
use crate::sockets::{ClaimedSockets, ListenSocket};
use crate::update::HandedProcess;
use kelpie_core::{AppSpec, Effect, Input, InstanceState, Lifecycle, Published, Status, Why};
use kelpie_proto::Home;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

mod current;
#[cfg(test)]
pub mod fake;
mod given;
mod handover;
mod launching;
mod messages;
mod platform;
pub(crate) mod refusal;
mod reload;
mod replacing;
mod stopping;
#[cfg(test)]
mod tests;
mod timers;
mod waiters;
mod wakes;

use current::{Current, ProcessWake};
use given::Given;
pub use platform::Platform;
use reload::{CandidateWake, Reloading};
use stopping::GroupWatch;
use timers::{TimerWake, Timers};
use waiters::Waiters;

// The in-process tests and their fakes take these from here.
#[cfg(test)]
use crate::link::{ProcessLink, ProcessSignal};
#[cfg(test)]
use kelpie_core::Cause;
#[cfg(test)]
use launching::Launched;
#[cfg(test)]
use tokio::time::Instant;

/// Messages from the supervisor to an instance task.
pub(crate) enum InstanceMsg {
    /// A user command; `done` is answered once the instance has settled (online, stopped or errored).
    Lifecycle(Lifecycle, Option<oneshot::Sender<()>>),
    /// Use this spec (and this shared socket) for the next process it starts.
    UpdateSpec(Arc<AppSpec>, Option<Arc<ListenSocket>>),
    /// Replace the process by a new one without a gap: start it, wait until it is ready, then
    /// stop the old one. Answered once the old one is gone, or with why the new one failed
    /// (the old one then keeps running). Without a shared socket this is a restart.
    Reload(oneshot::Sender<Result<(), refusal::ReloadFailed>>),
    /// Restart the process by itself because of `why`: a reload when the app shares a socket
    /// (and `reload` is true), else a restart. Ignored unless a process runs, and, with `of_pid`,
    /// unless that process is still the instance's.
    AutoRestart {
        /// The cause and its detail (boxed, as are the stderr lines: a queued message takes
        /// the room of the largest variant, so a big one would cost every message its size).
        why: Box<Why>,
        /// Reload when the app shares a socket.
        reload: bool,
        /// Only if this is still the current process.
        of_pid: Option<u32>,
    },
    /// Zero the counters; `done` is answered once the new state is reported.
    Reset(oneshot::Sender<()>),
    /// Send a signal to the main process.
    Signal(i32, oneshot::Sender<Result<(), refusal::NotDelivered>>),
    /// Send a JSON message to the process over its Node IPC channel (PM2's
    /// `sendDataToProcessId`).
    SendMessage(
        Arc<serde_json::Value>,
        oneshot::Sender<Result<(), refusal::NotDelivered>>,
    ),
    /// Write text to the process's stdin (`kelpie send`, `attach`): fork mode only.
    SendLine(
        Arc<String>,
        oneshot::Sender<Result<(), refusal::NotDelivered>>,
    ),
    /// Stop the process and end the task (delete, daemon exit).
    Shutdown(oneshot::Sender<()>),
    /// The last lines process `pid` wrote to stderr, read once its pipe reached its end: added
    /// to the record of its exit.
    StderrTail {
        /// The process that ended.
        pid: u32,
        /// Its lines, bounded.
        lines: Box<[String]>,
    },
    /// `kelpie update`: end the task without touching the process, and give the process (if
    /// one runs) and the instance's state to the supervisor. Refused while the instance is in
    /// the middle of something (launching, stopping, reloading).
    HandOver(oneshot::Sender<Result<HandedOver, refusal::HandOverRefused>>),
    /// Whether [`InstanceMsg::HandOver`] would be accepted now (nothing changes).
    CanHandOver(oneshot::Sender<Result<(), refusal::HandOverRefused>>),
}

impl InstanceMsg {
    /// A user's command (start, restart, reload, a new spec) rather than what the instance
    /// does by itself: the next process's program is looked for in PATH again.
    fn starts_afresh(&self) -> bool {
        matches!(
            self,
            InstanceMsg::Lifecycle(..) | InstanceMsg::UpdateSpec(..) | InstanceMsg::Reload(_)
        )
    }
}

/// What an instance task gave up for `kelpie update`.
pub(crate) struct HandedOver {
    /// Its state at that moment.
    pub state: InstanceState,
    /// Its running process, if one runs.
    pub process: Option<HandedProcess>,
    /// When it was waiting to restart: how long it had left to wait.
    pub restart_in: Option<Duration>,
}

/// A report from an instance task to the supervisor.
pub(crate) enum InstanceEvent {
    /// Its new state.
    State(StateReport),
    /// What its process published on its notify socket changed (not persisted).
    Published {
        /// Which instance.
        pm_id: u32,
        /// Its status text and metrics now.
        published: Published,
    },
    /// A process became its current one: what its PM2 SDK says is in `sdk` from now on.
    Sdk {
        /// Which instance.
        pm_id: u32,
        /// Kept up to date by the process's link.
        sdk: crate::link::SharedSdk,
    },
    /// Its process sent a message for the event bus (`process:msg`).
    Message {
        /// Which instance.
        pm_id: u32,
        /// Its process.
        pid: Option<u32>,
        /// What it sent.
        message: serde_json::Value,
    },
}

/// An instance's new state.
pub(crate) struct StateReport {
    /// Which instance.
    pub pm_id: u32,
    /// Its new state.
    pub state: InstanceState,
    /// The cgroup of its current process, if it has one (for the monitor).
    pub cgroup: Option<std::path::PathBuf>,
}

/// What an instance task is started with.
pub(crate) struct InstanceSetup {
    /// Its id.
    pub pm_id: u32,
    /// Its index among its app's instances.
    pub instance: u32,
    /// Its app's spec.
    pub spec: Arc<AppSpec>,
    /// Its state (new, or restored from an earlier daemon).
    pub state: InstanceState,
    /// The daemon's home.
    pub home: Home,
    /// A process group left running by a daemon that died, to be stopped before anything else.
    pub orphan_group: Option<u32>,
    /// The log pipeline its output goes to.
    pub logs: LogService,
    /// Its app's Kelpie-owned listening socket, if it has one.
    pub socket: Option<Arc<ListenSocket>>,
    /// The sockets its app's code asked for (cluster-mode Node apps).
    pub claims: Arc<ClaimedSockets>,
    /// The daemon's cgroups.
    pub cgroups: Cgroups,
    /// A process handed over by the daemon this one replaced (`kelpie update`): the instance
    /// goes on with it (its state says online with this pid).
    pub adopted: Option<HandedProcess>,
    /// Output pipes handed over with it (or left by an earlier process), read from now on.
    pub pipes: Vec<HandedPipe>,
    /// Handed over waiting to restart: the wait left.
    pub restart_in: Option<Duration>,
    /// Where its processes run: the system, but for the in-process tests.
    pub platform: Platform,
}

/// Start the task, owned by `tasks` (whose owner lets go of it once it ended); returns its
/// mailbox. The task ends by itself once its mailbox is dropped and its process stopped (or
/// handed over).
pub(crate) fn spawn(
    setup: InstanceSetup,
    events: mpsc::UnboundedSender<InstanceEvent>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> crate::mailbox::Sender<InstanceMsg> {
    let (tx, rx) = crate::mailbox::channel();
    let (given, state, inherited) = Given::new(setup, events, tx.downgrade());
    tasks.spawn(Instance::new(given, state, rx).run(inherited));
    tx
}

/// What the task inherits and deals with first, before its loop.
struct Inherited {
    /// A process group left running by a daemon that died, to be stopped first.
    orphan_group: Option<u32>,
    /// A process handed over by the daemon this one replaced.
    process: Option<HandedProcess>,
    /// Output pipes handed over with it (or left by an earlier process).
    pipes: Vec<HandedPipe>,
    /// Handed over waiting to restart: the wait left.
    restart_in: Option<Duration>,
}

/// What woke the task up, by part.
enum Wake {
    /// A message, or `None` once the supervisor dropped the mailbox.
    Msg(Option<InstanceMsg>),
    /// The current process.
    Process(ProcessWake),
    /// A timer.
    Timer(TimerWake),
    /// Time to look whether the group of a stopping process is gone.
    GroupPoll,
    /// The reload's new process.
    Candidate(CandidateWake),
}

/// The instance task: its state, and its parts.
struct Instance {
    given: Given,
    state: InstanceState,
    current: Current,
    reload: Reloading,
    timers: Timers,
    group: GroupWatch,
    waiters: Waiters,
    /// Its mailbox; `None` once the supervisor dropped it.
    mailbox: Option<crate::mailbox::Receiver<InstanceMsg>>,
    /// The process was given to the supervisor for `kelpie update`: end without a stop.
    handed_over: bool,
    /// Its own tasks that wait apart (a reload's answer, an exited process's last stderr
    /// lines); they end with it.
    helpers: crate::tasks::Helpers,
    /// Where its program was found in PATH for its last process: its automatic restarts use
    /// it again; forgotten at every command (see [`crate::spawn_plan::FoundProgram`]).
    found_program: Option<Box<crate::spawn_plan::FoundProgram>>,
}

impl Instance {
    fn new(
        given: Given,
        state: InstanceState,
        mailbox: crate::mailbox::Receiver<InstanceMsg>,
    ) -> Self {
        Instance {
            timers: Timers::new(&given.spec),
            given,
            state,
            current: Current::default(),
            reload: Reloading::default(),
            group: GroupWatch::default(),
            waiters: Waiters::default(),
            mailbox: Some(mailbox),
            handed_over: false,
            helpers: crate::tasks::Helpers::default(),
            found_program: None,
        }
    }

    async fn run(mut self, inherited: Inherited) {
        // What a wake does (and the start's work) is boxed for its duration: the task's future
        // is then the size of its wait, not of its largest handler, in every idle instance.
        if let Some(pgid) = inherited.orphan_group {
            Box::pin(stopping::stop_orphan_group(&self.given, pgid)).await;
        }
        Box::pin(self.resume(inherited.process, inherited.pipes)).await;
        if self.given.spec.is_scheduled() {
            // Its next run is shown from the start (a job restored between two runs, too).
            self.publish();
        }
        if self.state.status == Status::WaitingRestart && !self.timers.armed() {
            // A restart that was waiting when the instance was handed over goes on waiting.
            self.timers.arm_in(inherited.restart_in.unwrap_or_default());
        }
        loop {
            if self.handed_over {
                // The process lives on under the next program.
                return;
            }
            let wake = self.next_wake().await;
            Box::pin(self.on_wake(wake)).await;
            if self.waiters.shutting_down() && !self.state.status.has_process() {
                break;
            }
        }
        self.cancel_pending_restart();
        Box::pin(self.reload.retired()).await;
        self.waiters.ended();
    }

    /// Wait until one of the parts (or the mailbox) has something.
    async fn next_wake(&mut self) -> Wake {
        // A reload's candidate is rare: its wait is made (boxed) only while there is one, so
        // that every idle instance's task does not hold room for it.
        let candidate = self
            .reload
            .under_way()
            .then(|| Box::pin(self.reload.wake()));
        tokio::select! {
            msg = when(self.mailbox.as_mut(), |rx| rx.recv()) => Wake::Msg(msg),
            wake = self.current.wake() => Wake::Process(wake),
            wake = self.timers.wake() => Wake::Timer(wake),
            () = self.group.wake() => Wake::GroupPoll,
            wake = when(candidate, |wait| wait) => Wake::Candidate(wake),
        }
    }

    /// A restart still waiting when the task ends does not happen: the instance is stopped.
    fn cancel_pending_restart(&mut self) {
        self.timers.cancel();
        if self.state.status == Status::WaitingRestart {
            let stop = Input::Lifecycle(Lifecycle::Stop);
            self.state.handle(&self.given.spec, stop, clock::now());
        }
    }

    /// Apply an input to the state machine and carry out its effects, which may produce further
    /// inputs (a spawn reports its result at once).
    async fn feed(&mut self, input: Input) {
        self.feed_then(input, |_| {}).await;
    }

    /// [`feed`](Self::feed), with `then` done once every effect is carried out, before the
    /// state is published.
    async fn feed_then(&mut self, input: Input, then: impl FnOnce(&mut Instance)) {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            let effects = self.state.handle(&self.given.spec, input, clock::now());
            for effect in effects {
                if let Some(next) = self.apply(effect).await {
                    pending.push(next);
                }
            }
        }
        then(self);
        self.publish();
    }

    async fn apply(&mut self, effect: Effect) -> Option<Input> {
        let platform = &self.given.platform;
        match effect {
            Effect::Spawn => return Some(self.spawn_process().await),
            Effect::SignalGroup(_) => self.current.ask_to_stop(&self.given),
            Effect::KillGroup => self.current.kill(platform),
            Effect::WatchGroup => {
                let (pgid, cgroup) = (self.current.pgid(), self.current.cgroup());
                if !self.group.start(platform, pgid, cgroup) {
                    return Some(Input::GroupGone);
                }
            }
            Effect::ArmTimer(ms) => self.timers.arm(ms),
            Effect::CancelTimer => self.timers.cancel(),
        }
        None
    }

    /// Report the state to the supervisor, and answer those waiting for it to settle.
    /// When the schedule runs the app next, as shown: none while a user's stop pauses it.
    fn next_run_ms(&self) -> Option<u64> {
        self.timers
            .next_run_ms()
            .filter(|_| !self.state.stopped_by_user)
    }

    fn publish(&mut self) {
        self.state.next_run_ms = self.next_run_ms();
        self.given.report(InstanceEvent::State(StateReport {
            pm_id: self.given.pm_id,
            state: self.state.clone(),
            cgroup: self.current.cgroup_path(),
        }));
        if self.state.status.is_settled() {
            self.waiters.settled();
        }
    }
}
