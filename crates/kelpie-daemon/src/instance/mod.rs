//! One task per instance: it owns the child process, waits on it, signals it and arms its
//! timers. Decisions come from `kelpie_core::InstanceState`; this module only carries them out.

use crate::cgroups::{Cgroups, ProcessCgroup};
use crate::clock;
use crate::health::{ExecContext, HealthReport};
use crate::launch::{self, Extras, InstanceIdentity, OutputPipes};
use crate::link::{ProcessLink, ProcessSignal};
use crate::logs::{HandedPipe, LineWatch, LogService, TailReader};
use crate::maybe::{until, when};
use crate::process::ProcessHandle;
use crate::sockets::{ClaimedSockets, ListenSocket};
use crate::update::HandedProcess;
use kelpie_core::cron::CronSchedule;
use kelpie_core::forensics::NotifyLine;
use kelpie_core::{AppSpec, Cause, Control, Effect, Input, InstanceState, Published, Status, Why};
use kelpie_proto::{Home, LogStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, Instant};

#[cfg(test)]
pub(crate) mod fake;
mod handover;
mod host;
mod launching;
mod reload;
mod stopping;
#[cfg(test)]
mod tests;
mod timers;

pub(crate) use host::Host;
use launching::{accepts, keep_process};
use stopping::{ask_to_stop, describe_status, GroupChecks, Retiring};
use timers::{cron_timer, seconds};

/// How often a stopping instance checks whether its process group is empty.
const GROUP_POLL: Duration = Duration::from_millis(10);
/// How long a process stopped apart may take to disappear after SIGKILL.
const AFTER_SIGKILL: Duration = Duration::from_secs(5);
/// After a process exits, how long its stderr reader may take to reach the end of the pipe
/// before the lines read so far go into the exit's record (a process the app left running
/// outside its group and cgroup may keep the pipe open).
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// Messages from the supervisor to an instance task.
pub enum InstanceMsg {
    /// A user command; `done` is answered once the instance has settled (online, stopped or errored).
    Control(Control, Option<oneshot::Sender<()>>),
    /// Use this spec (and this shared socket) for the next process it starts.
    UpdateSpec(Arc<AppSpec>, Option<Arc<ListenSocket>>),
    /// Replace the process by a new one without a gap: start it, wait until it is ready, then
    /// stop the old one. Answered once the old one is gone, or with why the new one failed
    /// (the old one then keeps running). Without a shared socket this is a restart.
    Reload(oneshot::Sender<Result<(), String>>),
    /// Restart the process by itself because of `why`: a reload when the app shares a socket
    /// (and `reload` is true), else a restart. Ignored unless a process runs, and, with `of_pid`,
    /// unless that process is still the instance's.
    AutoRestart {
        /// The cause and its detail.
        why: Why,
        /// Reload when the app shares a socket.
        reload: bool,
        /// Only if this is still the current process.
        of_pid: Option<u32>,
    },
    /// Zero the counters; `done` is answered once the new state is reported.
    Reset(oneshot::Sender<()>),
    /// Send a signal to the main process.
    Signal(i32, oneshot::Sender<Result<(), String>>),
    /// Send a JSON message to the process over its Node IPC channel (PM2's
    /// `sendDataToProcessId`).
    SendMessage(Arc<serde_json::Value>, oneshot::Sender<Result<(), String>>),
    /// Stop the process and end the task (delete, daemon exit).
    Shutdown(oneshot::Sender<()>),
    /// The last lines process `pid` wrote to stderr, read once its pipe reached its end: added
    /// to the record of its exit.
    StderrTail {
        /// The process that ended.
        pid: u32,
        /// Its lines, bounded.
        lines: Vec<String>,
    },
    /// `kelpie update`: end the task without touching the process, and give the process (if
    /// one runs) and the instance's state to the supervisor. Refused while the instance is in
    /// the middle of something (launching, stopping, reloading).
    HandOver(oneshot::Sender<Result<HandedOver, String>>),
    /// Whether [`InstanceMsg::HandOver`] would be accepted now (nothing changes).
    CanHandOver(oneshot::Sender<Result<(), String>>),
}

/// What an instance task gave up for `kelpie update`.
pub struct HandedOver {
    /// Its state at that moment.
    pub state: InstanceState,
    /// Its running process, if one runs.
    pub process: Option<HandedProcess>,
    /// When it was waiting to restart: how long it had left to wait.
    pub restart_in: Option<Duration>,
}

/// A report from an instance task to the supervisor.
pub enum InstanceEvent {
    /// Its new state.
    State(StateReport),
    /// What its process published on its notify socket changed (not persisted).
    Published {
        /// Which instance.
        pm_id: u32,
        /// Its status text and metrics now.
        published: Published,
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
pub struct StateReport {
    /// Which instance.
    pub pm_id: u32,
    /// Its new state.
    pub state: InstanceState,
    /// The cgroup of its current process, if it has one (for the monitor).
    pub cgroup: Option<std::path::PathBuf>,
}

/// What an instance task is started with.
pub struct InstanceSetup {
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
    pub host: Host,
}

/// Start the task; returns its mailbox.
pub fn spawn(
    setup: InstanceSetup,
    events: mpsc::UnboundedSender<InstanceEvent>,
) -> mpsc::UnboundedSender<InstanceMsg> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(Instance::new(setup, events, tx.downgrade()).run(rx));
    tx
}

/// What woke the task up.
enum Wake {
    Msg(Option<InstanceMsg>),
    Exited(std::io::Result<std::process::ExitStatus>),
    Timer,
    GroupPoll,
    /// The current process said something.
    Signal(ProcessSignal),
    /// The reload's new process said something.
    CandidateSignal(ProcessSignal),
    /// The reload's new process exited before it was ready.
    CandidateExited(std::io::Result<std::process::ExitStatus>),
    /// The reload's new process was not ready in time.
    CandidateLate,
    /// The `cron_restart` schedule fired.
    Cron,
    /// The process stopped sending `WATCHDOG=1`.
    WatchdogLate,
    /// The current process's health check said something.
    Health(HealthReport),
}

/// The health check loop of the current process; stopped when dropped.
struct HealthChecks {
    task: tokio::task::JoinHandle<()>,
    reports: mpsc::UnboundedReceiver<HealthReport>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A process started by the instance, with what it can tell us.
struct Launched {
    child: ProcessHandle,
    pid: u32,
    link: ProcessLink,
    /// Its cgroup, when the daemon uses cgroups.
    cgroup: Option<ProcessCgroup>,
    /// The user and groups it runs as, when not the daemon's (its exec health checks too).
    identity: Option<kelpie_sys::Identity>,
    route: Option<Arc<crate::logs::Route>>,
    /// It must say it is ready before it counts as online.
    awaits_ready: bool,
    /// Its last lines of stderr, for the record of its exit.
    stderr: Option<TailReader>,
    /// What it published on its notify socket.
    published: Published,
    /// The keeper's copy of its link and a pidfd, so a next daemon can adopt it.
    kept: Option<crate::keeper::Held>,
}

/// The new process of a reload in progress.
struct Candidate {
    launched: Launched,
    deadline: Instant,
    reply: oneshot::Sender<Result<(), String>>,
    /// Why the daemon reloads by itself, if it does.
    why: Option<Why>,
}

/// The `cron_restart` schedule and its next firing.
struct CronTimer {
    schedule: CronSchedule,
    zone: jiff::tz::TimeZone,
    /// When the timer wakes the task (monotonic).
    next: Option<Instant>,
    /// The wall-clock time it stands for: the timer may wake early if the clock was set back.
    target: Option<jiff::Timestamp>,
}

struct Instance {
    host: Host,
    pm_id: u32,
    instance: u32,
    spec: Arc<AppSpec>,
    state: InstanceState,
    home: Home,
    events: mpsc::UnboundedSender<InstanceEvent>,
    logs: LogService,
    child: Option<ProcessHandle>,
    /// Process group of the current or last process (its leader's pid).
    pgid: Option<u32>,
    timer: Option<Instant>,
    watching_group: bool,
    /// How the stop in progress checks its process group.
    group_checks: GroupChecks,
    /// The daemon's cgroups, and the current (or last) process's.
    cgroups: Cgroups,
    cgroup: Option<ProcessCgroup>,
    settle_waiters: Vec<oneshot::Sender<()>>,
    shutdown_waiter: Option<oneshot::Sender<()>>,
    orphan_group: Option<u32>,
    /// False once the supervisor dropped the mailbox.
    mailbox_open: bool,
    /// The process was given to the supervisor for `kelpie update`: end without a stop.
    handed_over: bool,
    /// What the daemon this one replaced handed over, taken at the task's start.
    adopted: Option<(Option<HandedProcess>, Vec<HandedPipe>)>,
    /// Handed over waiting to restart: the wait left, armed at the task's start.
    restart_in: Option<Duration>,
    /// Where the last process's output went.
    route: Option<Arc<crate::logs::Route>>,
    /// Its app's shared listening socket.
    socket: Option<Arc<ListenSocket>>,
    /// The sockets its app's code asked for (cluster-mode Node apps).
    claims: Arc<ClaimedSockets>,
    /// The current process's link (notify socket, Node IPC).
    link: Option<ProcessLink>,
    /// The new process of a reload in progress.
    candidate: Option<Candidate>,
    /// Processes being stopped apart (replaced, or failed reloads): waited for before the task
    /// ends, so a daemon exiting right after a reload leaves no process behind.
    retiring: Vec<tokio::task::JoinHandle<()>>,
    /// The app's `cron_restart`, if it has one.
    cron: Option<CronTimer>,
    /// When the current process must have sent `WATCHDOG=1` again.
    watchdog_at: Option<Instant>,
    /// The current process's health checks.
    health: Option<HealthChecks>,
    /// An automatic restart asked for while a reload was under way.
    deferred_restart: Option<Why>,
    /// The task's own mailbox, to fall back to a restart when an automatic reload fails (weak:
    /// the task ends once the supervisor drops its sender).
    myself: mpsc::WeakUnboundedSender<InstanceMsg>,
    /// The current process's last lines of stderr, for the record of its exit.
    stderr: Option<TailReader>,
    /// What the current (or last) process published on its notify socket.
    published: Published,
    /// A bad metric line of the current process was logged (once per process).
    bad_metric_logged: bool,
    /// The keeper's copy of the current process's link.
    kept: Option<crate::keeper::Held>,
}

impl Instance {
    fn new(
        setup: InstanceSetup,
        events: mpsc::UnboundedSender<InstanceEvent>,
        myself: mpsc::WeakUnboundedSender<InstanceMsg>,
    ) -> Self {
        let cron = cron_timer(&setup.spec);
        Instance {
            host: setup.host,
            pm_id: setup.pm_id,
            instance: setup.instance,
            spec: setup.spec,
            state: setup.state,
            home: setup.home,
            events,
            logs: setup.logs,
            child: None,
            pgid: None,
            timer: None,
            watching_group: false,
            group_checks: GroupChecks::default(),
            cgroups: setup.cgroups,
            cgroup: None,
            settle_waiters: Vec::new(),
            shutdown_waiter: None,
            orphan_group: setup.orphan_group,
            mailbox_open: true,
            handed_over: false,
            adopted: Some((setup.adopted, setup.pipes)),
            restart_in: setup.restart_in,
            route: None,
            socket: setup.socket,
            claims: setup.claims,
            link: None,
            candidate: None,
            retiring: Vec::new(),
            cron,
            watchdog_at: None,
            health: None,
            deferred_restart: None,
            myself,
            stderr: None,
            published: Published::default(),
            bad_metric_logged: false,
            kept: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<InstanceMsg>) {
        if let Some(pgid) = self.orphan_group.take() {
            self.stop_orphan_group(pgid).await;
        }
        if let Some((process, pipes)) = self.adopted.take() {
            self.resume(process, pipes).await;
        }
        if self.state.status == Status::WaitingRestart && self.timer.is_none() {
            // A restart that was waiting when the instance was handed over goes on waiting.
            let left = self.restart_in.take().unwrap_or_default();
            self.timer = Some(Instant::now() + left);
        }
        loop {
            if self.handed_over {
                // The process lives on under the next program.
                return;
            }
            let wake = self.next_wake(&mut rx).await;
            self.on_wake(wake).await;
            if self.shutdown_waiter.is_some() && !self.state.status.has_process() {
                break;
            }
        }
        self.cancel_pending_restart();
        for retiring in self.retiring.drain(..) {
            let _ = retiring.await;
        }
        if let Some(waiter) = self.shutdown_waiter.take() {
            let _ = waiter.send(());
        }
    }

    /// Act on what woke the task up.
    async fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Msg(None) => self.on_mailbox_closed().await,
            Wake::Msg(Some(msg)) => self.on_message(msg).await,
            Wake::Exited(result) => self.on_exited(result).await,
            Wake::Timer => {
                self.timer = None;
                self.feed(Input::TimerFired).await;
            }
            Wake::GroupPoll => self.on_group_poll().await,
            Wake::Signal(signal) => self.on_signal(signal).await,
            Wake::Cron => self.on_cron().await,
            Wake::Health(report) => self.on_health(report).await,
            Wake::WatchdogLate => self.on_watchdog_late().await,
            Wake::CandidateSignal(signal) => self.on_candidate_signal(signal).await,
            Wake::CandidateExited(status) => {
                let how = match status {
                    Ok(status) => describe_status(status),
                    Err(e) => format!("wait failed: {e}"),
                };
                self.abandon_candidate(format!(
                    "the new process exited ({how}) before it was ready"
                ));
            }
            Wake::CandidateLate => {
                let limit = self.spec.listen_timeout_ms;
                self.abandon_candidate(format!(
                    "the new process was not ready within listen_timeout ({limit} ms)"
                ));
            }
        }
    }

    /// The supervisor dropped this instance (`kill` clears the table right after telling each
    /// instance to shut down): finish stopping the process first, so the daemon does not exit
    /// while the app still runs and prints.
    async fn on_mailbox_closed(&mut self) {
        self.mailbox_open = false;
        if self.shutdown_waiter.is_none() {
            let (done, _) = oneshot::channel();
            self.shutdown_waiter = Some(done);
            self.feed(Input::Control(Control::Stop)).await;
        }
    }

    /// The current process exited: record how (with the end of its stderr, and whether the
    /// kernel killed it for memory) and let the state machine decide what comes next.
    async fn on_exited(&mut self, result: std::io::Result<std::process::ExitStatus>) {
        self.child = None;
        self.kept = None;
        self.health = None;
        self.abandon_candidate("the running process exited during the reload".into());
        let pid = self.state.pid;
        // Read beside the restart rather than before it, to not delay it. The read is queued
        // first and takes microseconds, where the restart's spawn takes hundreds before the
        // old cgroup is removed; were the cgroup gone first, the machine's counter would
        // still tell.
        let oom = match (pid, self.state.status) {
            (Some(_), Status::Online | Status::Launching) => {
                let cgroup = self.cgroup.as_ref().map(|c| c.cgroup().clone());
                Some(tokio::task::spawn_blocking(move || {
                    crate::forensics::oom_evidence(cgroup.as_ref())
                }))
            }
            _ => None,
        };
        self.collect_stderr_tail(pid);
        // Metrics are live values of a running process; its status text stays until the next
        // process starts.
        if !self.published.metrics.is_empty() {
            self.published.metrics.clear();
            self.send_published();
        }
        let input = match result {
            Ok(status) => Input::Exited {
                code: status.code(),
                signal: status.signal().map(kelpie_sys::signal_name),
            },
            // It ended; nobody can say how.
            Err(e) if crate::process::status_unknown(&e) => Input::Exited {
                code: None,
                signal: None,
            },
            Err(e) => Input::Exited {
                code: None,
                signal: Some(format!("wait failed: {e}")),
            },
        };
        self.feed(input).await;
        let seen = match oom {
            Some(reading) => reading.await.ok(),
            None => None,
        };
        if let (Some(pid), Some(seen)) = (pid, seen) {
            if self.state.record_oom(pid, seen) {
                self.publish();
            }
        }
    }

    /// A stopping instance looks whether its process group (and cgroup) is empty yet.
    async fn on_group_poll(&mut self) {
        let cgroup = self.cgroup.as_ref().map(ProcessCgroup::cgroup);
        let running = match self.pgid {
            Some(pgid) => self.group_checks.running(&self.host, pgid, cgroup).await,
            None => false,
        };
        if !running {
            self.watching_group = false;
            self.feed(Input::GroupGone).await;
        }
    }

    /// The current process said something on its link: fed the watchdog, published a status
    /// or metric, sent a message for the bus, or said it is ready.
    async fn on_signal(&mut self, signal: ProcessSignal) {
        match signal {
            ProcessSignal::Watchdog => {
                if let Some(ms) = self.spec.watchdog_ms {
                    self.watchdog_at = Some(Instant::now() + Duration::from_millis(ms));
                }
            }
            ProcessSignal::Published(line) => self.on_published(&line),
            ProcessSignal::Message(message) => {
                let _ = self.events.send(InstanceEvent::Message {
                    pm_id: self.pm_id,
                    pid: self.state.pid,
                    message,
                });
            }
            signal => {
                if accepts(&self.spec, self.shares_socket(), &signal) {
                    self.feed(Input::Ready).await;
                }
            }
        }
    }

    /// The process stopped sending `WATCHDOG=1`: restart it.
    async fn on_watchdog_late(&mut self) {
        self.watchdog_at = None;
        let limit = self.spec.watchdog_ms.unwrap_or_default();
        let why = Why {
            cause: Cause::Watchdog,
            detail: format!("no WATCHDOG=1 within watchdog ({})", seconds(limit)),
        };
        self.auto_restart(why, true).await;
    }

    /// The reload's new process said something: what it published is kept for when it takes
    /// over, and once it is ready it replaces the current one.
    async fn on_candidate_signal(&mut self, signal: ProcessSignal) {
        match signal {
            // Only the process serving the instance speaks for it on the bus.
            ProcessSignal::Message(_) => {}
            ProcessSignal::Published(line) => {
                // Kept with the new process: its own once it takes over.
                if let Some(candidate) = self.candidate.as_mut() {
                    let _ = candidate.launched.published.apply(&line);
                }
            }
            signal => {
                if accepts(&self.spec, self.shares_socket(), &signal) {
                    self.promote_candidate().await;
                }
            }
        }
    }

    async fn next_wake(&mut self, rx: &mut mpsc::UnboundedReceiver<InstanceMsg>) -> Wake {
        let timer = self.timer;
        let cron_at = self.cron.as_ref().and_then(|c| c.next);
        let watchdog_at = self.watchdog_at;
        let health = self.health.as_mut().map(|h| &mut h.reports);
        let watching = self.watching_group;
        let mailbox_open = self.mailbox_open;
        let child = self.child.as_mut();
        let link = self.link.as_mut();
        let (candidate_child, candidate_link, candidate_deadline) = match self.candidate.as_mut() {
            Some(c) => (
                Some(&mut c.launched.child),
                Some(&mut c.launched.link),
                Some(c.deadline),
            ),
            None => (None, None, None),
        };
        tokio::select! {
            msg = when(mailbox_open.then_some(rx), |rx| rx.recv()) => Wake::Msg(msg),
            status = when(child, |c| c.wait()) => Wake::Exited(status),
            () = until(timer) => Wake::Timer,
            () = when(watching.then_some(GROUP_POLL), sleep) => Wake::GroupPoll,
            Some(signal) = when(link, |l| l.recv()) => Wake::Signal(signal),
            Some(signal) = when(candidate_link, |l| l.recv()) => Wake::CandidateSignal(signal),
            status = when(candidate_child, |c| c.wait()) => Wake::CandidateExited(status),
            () = until(candidate_deadline) => Wake::CandidateLate,
            () = until(cron_at) => Wake::Cron,
            () = until(watchdog_at) => Wake::WatchdogLate,
            Some(report) = when(health, |r| r.recv()) => Wake::Health(report),
        }
    }

    async fn on_message(&mut self, msg: InstanceMsg) {
        match msg {
            InstanceMsg::Control(control, done) => {
                self.abandon_candidate(
                    format!("interrupted by a {control:?} command").to_lowercase(),
                );
                self.settle_waiters.extend(done);
                self.feed(Input::Control(control)).await;
            }
            InstanceMsg::UpdateSpec(spec, socket) => {
                if spec.cron_restart != self.spec.cron_restart
                    || spec.cron_timezone != self.spec.cron_timezone
                {
                    self.cron = cron_timer(&spec);
                }
                self.spec = spec;
                self.socket = socket;
            }
            InstanceMsg::AutoRestart {
                why,
                reload,
                of_pid,
            } => {
                if of_pid.is_none_or(|pid| self.state.pid == Some(pid)) {
                    self.auto_restart(why, reload).await;
                }
            }
            InstanceMsg::Reload(reply) => self.begin_reload(reply, None).await,
            InstanceMsg::StderrTail { pid, lines } => {
                if !lines.is_empty() && self.state.record_stderr_tail(pid, lines) {
                    self.publish();
                }
            }
            InstanceMsg::Reset(done) => {
                self.state.reset_counters(clock::now());
                self.publish();
                let _ = done.send(());
            }
            InstanceMsg::Signal(signal, reply) => {
                let result = match (&self.child, self.state.pid) {
                    (Some(_), Some(pid)) => self.host.send_signal(pid, signal),
                    _ => Err(format!(
                        "`{}` (id {}) is not running",
                        self.spec.name, self.pm_id
                    )),
                };
                let _ = reply.send(result);
            }
            InstanceMsg::SendMessage(message, reply) => {
                let result = match (&self.child, &self.link) {
                    (Some(_), Some(link)) if link.send_message(&message) => Ok(()),
                    (Some(_), _) => Err(format!(
                        "`{}` (id {}) has no IPC channel (only Node.js apps have one)",
                        self.spec.name, self.pm_id
                    )),
                    _ => Err(format!(
                        "`{}` (id {}) is not running",
                        self.spec.name, self.pm_id
                    )),
                };
                let _ = reply.send(result);
            }
            InstanceMsg::Shutdown(done) => {
                self.abandon_candidate("the app is being deleted or the daemon is stopping".into());
                self.shutdown_waiter = Some(done);
                self.feed(Input::Control(Control::Stop)).await;
            }
            InstanceMsg::HandOver(reply) => {
                let handed = self.hand_over();
                self.handed_over = handed.is_ok();
                let _ = reply.send(handed);
            }
            InstanceMsg::CanHandOver(reply) => {
                let _ = reply.send(match self.hand_over_refusal() {
                    Some(why) => Err(why),
                    None => Ok(()),
                });
            }
        }
    }

    /// Apply an input to the state machine and carry out its effects, which may produce further
    /// inputs (a spawn reports its result at once).
    async fn feed(&mut self, input: Input) {
        let mut pending = vec![input];
        while let Some(input) = pending.pop() {
            let effects = self.state.handle(&self.spec, input, clock::now());
            for effect in effects {
                if let Some(next) = self.apply(effect).await {
                    pending.push(next);
                }
            }
        }
        self.publish();
    }

    async fn apply(&mut self, effect: Effect) -> Option<Input> {
        match effect {
            Effect::Spawn => Some(self.spawn_process().await),
            Effect::SignalGroup(_) => {
                if let Some(pgid) = self.pgid {
                    let (link, cgroup) = (self.link.as_ref(), self.cgroup.as_ref());
                    ask_to_stop(&self.host, &self.spec, pgid, link, cgroup);
                }
                None
            }
            Effect::KillGroup => {
                self.signal_group(kelpie_sys::SIGKILL);
                // What left the group (setsid) is still in the cgroup.
                if let Some(cgroup) = &self.cgroup {
                    cgroup.cgroup().kill();
                }
                None
            }
            Effect::WatchGroup => {
                self.group_checks = GroupChecks::default();
                let escaped = self.cgroup.as_ref().is_some_and(|c| c.cgroup().populated());
                if escaped || self.pgid.is_some_and(|pgid| self.host.group_alive(pgid)) {
                    self.watching_group = true;
                    None
                } else {
                    Some(Input::GroupGone)
                }
            }
            Effect::ArmTimer(ms) => {
                self.timer = Some(Instant::now() + Duration::from_millis(ms));
                None
            }
            Effect::CancelTimer => {
                self.timer = None;
                None
            }
        }
    }

    fn publish(&mut self) {
        let _ = self.events.send(InstanceEvent::State(StateReport {
            pm_id: self.pm_id,
            state: self.state.clone(),
            cgroup: self
                .cgroup
                .as_ref()
                .map(|c| c.cgroup().path().to_path_buf()),
        }));
        if self.state.status.is_settled() {
            for waiter in self.settle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}
