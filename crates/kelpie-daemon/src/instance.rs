//! One task per instance: it owns the child process, waits on it, signals it and arms its
//! timers. Decisions come from `kelpie_core::InstanceState`; this module only carries them out.

use crate::cgroups::{Cgroups, ProcessCgroup};
use crate::clock;
use crate::health::{ExecContext, HealthReport};
use crate::launch::{self, Extras, InstanceIdentity, OutputPipes};
use crate::link::{ProcessLink, ProcessSignal};
use crate::logs::{HandedPipe, LineWatch, LogService, TailReader};
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
use tokio::time::{sleep, sleep_until, Instant};

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
            match wake {
                // The supervisor dropped this instance (`kill` clears the table right after
                // telling each instance to shut down): finish stopping the process first, so
                // the daemon does not exit while the app still runs and prints.
                Wake::Msg(None) => {
                    self.mailbox_open = false;
                    if self.shutdown_waiter.is_none() {
                        let (done, _) = oneshot::channel();
                        self.shutdown_waiter = Some(done);
                        self.feed(Input::Control(Control::Stop)).await;
                    }
                }
                Wake::Msg(Some(msg)) => self.on_message(msg).await,
                Wake::Exited(result) => {
                    self.child = None;
                    self.kept = None;
                    self.health = None;
                    self.abandon_candidate("the running process exited during the reload".into());
                    let pid = self.state.pid;
                    // Read beside the restart rather than before it, to not delay it. The
                    // read is queued first and takes microseconds, where the restart's spawn
                    // takes hundreds before the old cgroup is removed; were the cgroup gone
                    // first, the machine's counter would still tell.
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
                    // Metrics are live values of a running process; its status text stays
                    // until the next process starts.
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
                Wake::Timer => {
                    self.timer = None;
                    self.feed(Input::TimerFired).await;
                }
                Wake::GroupPoll => {
                    let cgroup = self.cgroup.as_ref().map(ProcessCgroup::cgroup);
                    let running = match self.pgid {
                        Some(pgid) => self.group_checks.running(pgid, cgroup).await,
                        None => false,
                    };
                    if !running {
                        self.watching_group = false;
                        self.feed(Input::GroupGone).await;
                    }
                }
                Wake::Signal(ProcessSignal::Watchdog) => {
                    if let Some(ms) = self.spec.watchdog_ms {
                        self.watchdog_at = Some(Instant::now() + Duration::from_millis(ms));
                    }
                }
                Wake::Signal(ProcessSignal::Published(line)) => self.on_published(&line),
                Wake::Signal(ProcessSignal::Message(message)) => {
                    let _ = self.events.send(InstanceEvent::Message {
                        pm_id: self.pm_id,
                        pid: self.state.pid,
                        message,
                    });
                }
                Wake::Signal(signal) => {
                    if accepts(&self.spec, self.shares_socket(), &signal) {
                        self.feed(Input::Ready).await;
                    }
                }
                Wake::Cron => self.on_cron().await,
                Wake::Health(report) => self.on_health(report).await,
                Wake::WatchdogLate => {
                    self.watchdog_at = None;
                    let limit = self.spec.watchdog_ms.unwrap_or_default();
                    let why = Why {
                        cause: Cause::Watchdog,
                        detail: format!("no WATCHDOG=1 within watchdog ({})", seconds(limit)),
                    };
                    self.auto_restart(why, true).await;
                }
                // Only the process serving the instance speaks for it on the bus.
                Wake::CandidateSignal(ProcessSignal::Message(_)) => {}
                Wake::CandidateSignal(ProcessSignal::Published(line)) => {
                    // Kept with the new process: its own once it takes over.
                    if let Some(candidate) = self.candidate.as_mut() {
                        let _ = candidate.launched.published.apply(&line);
                    }
                }
                Wake::CandidateSignal(signal) => {
                    if accepts(&self.spec, self.shares_socket(), &signal) {
                        self.promote_candidate().await;
                    }
                }
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
            msg = async { if mailbox_open { rx.recv().await } else { std::future::pending().await } } => Wake::Msg(msg),
            status = async { match child { Some(c) => c.wait().await, None => std::future::pending().await } } => Wake::Exited(status),
            () = async { match timer { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => Wake::Timer,
            () = async { if watching { sleep(GROUP_POLL).await } else { std::future::pending().await } } => Wake::GroupPoll,
            Some(signal) = async { match link { Some(l) => l.recv().await, None => std::future::pending().await } } => Wake::Signal(signal),
            Some(signal) = async { match candidate_link { Some(l) => l.recv().await, None => std::future::pending().await } } => Wake::CandidateSignal(signal),
            status = async { match candidate_child { Some(c) => c.wait().await, None => std::future::pending().await } } => Wake::CandidateExited(status),
            () = async { match candidate_deadline { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => Wake::CandidateLate,
            () = async { match cron_at { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => Wake::Cron,
            () = async { match watchdog_at { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => Wake::WatchdogLate,
            Some(report) = async { match health { Some(r) => r.recv().await, None => std::future::pending().await } } => Wake::Health(report),
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
                    (Some(_), Some(pid)) => {
                        kelpie_sys::send_signal(pid, signal).map_err(|e| e.to_string())
                    }
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

    /// Why the instance cannot be handed over right now, if it cannot.
    fn hand_over_refusal(&mut self) -> Option<String> {
        self.retiring.retain(|task| !task.is_finished());
        if self.candidate.is_some() {
            return Some("it is being reloaded".into());
        }
        if !self.retiring.is_empty() {
            return Some("a process it replaced is still stopping".into());
        }
        if self.shutdown_waiter.is_some() {
            return Some("it is being deleted".into());
        }
        match self.state.status {
            Status::Launching | Status::Stopping => {
                Some(format!("it is {}", self.state.status.as_str()))
            }
            Status::Online
                if self.child.is_none() || self.link.is_none() || self.pgid.is_none() =>
            {
                Some("its process is not known".into())
            }
            _ => None,
        }
    }

    /// Give the process up for `kelpie update` (see [`InstanceMsg::HandOver`]).
    fn hand_over(&mut self) -> Result<HandedOver, String> {
        if let Some(why) = self.hand_over_refusal() {
            return Err(why);
        }
        let process = match (self.state.status, self.pgid) {
            (Status::Online, Some(pid)) => {
                let (Some(child), Some(link)) = (self.child.take(), self.link.take()) else {
                    return Err("its process is not known".into());
                };
                let link = match link.into_fds() {
                    Ok(link) => link,
                    Err(e) => {
                        // The link is gone, the process is still ours: keep supervising it.
                        self.child = Some(child);
                        return Err(format!("cannot pass on its notify socket: {e}"));
                    }
                };
                child.hand_over();
                self.health = None;
                self.kept = None;
                Some(HandedProcess {
                    pid,
                    link,
                    cgroup: self.cgroup.take().map(ProcessCgroup::hand_over),
                    pidfd: None,
                })
            }
            _ => None,
        };
        let restart_in = (self.state.status == Status::WaitingRestart)
            .then(|| {
                self.timer
                    .map(|at| at.saturating_duration_since(Instant::now()))
            })
            .flatten();
        self.timer = None;
        Ok(HandedOver {
            state: self.state.clone(),
            process,
            restart_in,
        })
    }

    /// Go on with what the previous program handed over: its process becomes this instance's
    /// (waited for through a pidfd, its link and cgroup kept), and its pipes are read again.
    async fn resume(&mut self, process: Option<HandedProcess>, pipes: Vec<HandedPipe>) {
        let files = launch::log_paths(&self.home, &self.spec, self.pm_id).files();
        let route = self
            .logs
            .route(&self.spec, self.pm_id, self.instance, &files);
        let mut stderr = None;
        if let Some(route) = &route {
            for pipe in pipes {
                // The lines read from now on go into the record of its exit.
                let tail = (pipe.stream == LogStream::Err).then(|| {
                    let (writer, reader) = crate::logs::exit_tail();
                    stderr = Some(reader);
                    writer
                });
                self.logs.attach_handed(route.clone(), pipe, tail);
            }
        }
        let Some(process) = process else {
            return;
        };
        let pid = process.pid;
        let child = match ProcessHandle::adopted(pid, process.pidfd) {
            Ok(child) => child,
            Err(e) => {
                crate::daemon_log!(
                    "app `{}` (id {}): cannot wait for its process {pid} any more ({e}); it counts as exited",
                    self.spec.name,
                    self.pm_id
                );
                self.pgid = Some(pid);
                self.feed(Input::Exited {
                    code: None,
                    signal: Some(format!("lost when it was handed over: {e}")),
                })
                .await;
                return;
            }
        };
        let link = match ProcessLink::resume(process.link, self.link_claims()).or_else(|e| {
            crate::daemon_log!(
                "app `{}` (id {}): its notify socket could not be kept ({e}); readiness and watchdog messages are not heard",
                self.spec.name,
                self.pm_id
            );
            ProcessLink::open(None, None).map(|(link, _)| link)
        }) {
            Ok(link) => link,
            Err(e) => {
                // Nothing to supervise it with: stop it, and the state machine restarts it.
                crate::daemon_log!(
                    "app `{}` (id {}): cannot supervise process {pid} ({e}); restarting it",
                    self.spec.name,
                    self.pm_id
                );
                self.pgid = Some(pid);
                self.child = Some(child);
                self.signal_group(kelpie_sys::SIGKILL);
                return;
            }
        };
        let spec = self.spec.clone();
        let identity = tokio::task::spawn_blocking(move || launch::identity(&spec).ok().flatten())
            .await
            .ok()
            .flatten();
        let cgroup = process.cgroup.and_then(|path| self.cgroups.adopt(path));
        let kept = keep_process(self.pm_id, &child, &link, cgroup.as_ref());
        self.adopt(Launched {
            child,
            pid,
            kept,
            link,
            cgroup,
            identity,
            route,
            awaits_ready: false,
            stderr,
            published: Published::default(),
        });
        self.publish();
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
                    ask_to_stop(&self.spec, pgid, self.link.as_ref(), self.cgroup.as_ref());
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
                if escaped || self.pgid.is_some_and(kelpie_sys::group_alive) {
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

    /// Start the instance's process and make it the current one.
    async fn spawn_process(&mut self) -> Input {
        if self.shutdown_waiter.is_some() {
            return Input::SpawnFailed {
                error: "the app is being deleted".into(),
            };
        }
        match self.launch().await {
            Ok(launched) => {
                let pid = launched.pid;
                let awaits_ready = launched.awaits_ready;
                self.adopt(launched);
                if awaits_ready {
                    Input::Started { pid }
                } else {
                    Input::Spawned { pid }
                }
            }
            Err(error) => Input::SpawnFailed { error },
        }
    }

    /// Make `launched` the instance's process (its group is the one stops signal).
    fn adopt(&mut self, launched: Launched) {
        // The watchdog is armed by the process's first WATCHDOG=1.
        self.watchdog_at = None;
        self.health = self.spec.health_check.clone().map(|check| {
            let exec = ExecContext {
                cwd: self.spec.cwd.clone().into(),
                env: self.spec.merged_env().into_iter().collect(),
                identity: launched.identity.clone(),
            };
            let (tx, reports) = mpsc::unbounded_channel();
            HealthChecks {
                task: tokio::spawn(crate::health::run_checks(check, exec, tx)),
                reports,
            }
        });
        // Held while the instance exists, so its files (and their dropped-line counts and
        // errors) stay open across restarts and stops.
        self.route = launched.route;
        self.cgroup = launched.cgroup;
        self.pgid = Some(launched.pid);
        self.child = Some(launched.child);
        self.link = Some(launched.link);
        self.kept = launched.kept;
        self.stderr = launched.stderr;
        self.bad_metric_logged = false;
        if self.published != launched.published {
            self.published = launched.published;
            self.send_published();
        }
    }

    /// What the current process published (`STATUS=`, a metric): kept and shown by `list`.
    fn on_published(&mut self, line: &NotifyLine) {
        match self.published.apply(line) {
            Ok(true) => self.send_published(),
            Ok(false) => {}
            Err(why) if !self.bad_metric_logged => {
                self.bad_metric_logged = true;
                crate::daemon_log!(
                    "app `{}` (id {}): {why} (said once per process)",
                    self.spec.name,
                    self.pm_id
                );
            }
            Err(_) => {}
        }
    }

    fn send_published(&self) {
        let _ = self.events.send(InstanceEvent::Published {
            pm_id: self.pm_id,
            published: self.published.clone(),
        });
    }

    /// Once the stderr reader of process `pid` (which just exited) has read its pipe to the
    /// end, or after [`STDERR_DRAIN`], its last lines go into the record of its exit. Waited
    /// for apart, so the restart is not delayed.
    fn collect_stderr_tail(&mut self, pid: Option<u32>) {
        let (Some(tail), Some(pid)) = (self.stderr.take(), pid) else {
            return;
        };
        let myself = self.myself.clone();
        tokio::spawn(async move {
            let lines = tail.finish(STDERR_DRAIN).await;
            if let Some(mailbox) = myself.upgrade() {
                let _ = mailbox.send(InstanceMsg::StderrTail { pid, lines });
            }
        });
    }

    /// Start a process of the instance. The fork/exec runs on the blocking pool: it blocks its
    /// thread until the child has exec'd, and doing it there lets several instances start in
    /// parallel (200 apps start in about half the time on two cores) without stalling the
    /// supervisor.
    async fn launch(&mut self) -> Result<Launched, String> {
        let files = launch::log_paths(&self.home, &self.spec, self.pm_id).files();
        let route = self
            .logs
            .route(&self.spec, self.pm_id, self.instance, &files);
        let (pipes, readers) = match route.as_ref().map(|_| output_pipes()).transpose() {
            Ok(Some((pipes, readers))) => (Some(pipes), Some(readers)),
            Ok(None) => (None, None),
            Err(e) => return Err(format!("cannot create the output pipes: {e}")),
        };
        let node = self.spec.runs_on_node();
        let ipc_fd = node.then_some(if self.socket.is_some() {
            launch::LISTEN_FD + 1
        } else {
            launch::LISTEN_FD
        });
        let (mut link, ends) = ProcessLink::open(ipc_fd, self.link_claims())
            .map_err(|e| format!("cannot create its notify socket: {e}"))?;
        // The command is built and spawned on the blocking pool (finding the program in PATH
        // reads directories). Its pipes' write ends and the child's ends of the link are
        // dropped there right after the spawn, so the reader sees end-of-file when the app's
        // processes exit; the socket's Arc keeps it open until then.
        let spec = self.spec.clone();
        let home = self.home.clone();
        let (pm_id, instance) = (self.pm_id, self.instance);
        let socket = self.socket.clone();
        let cgroups = self.cgroups.clone();
        let (spawned, cgroup, identity) = tokio::task::spawn_blocking(move || {
            let who = InstanceIdentity {
                home: &home,
                pm_id,
                instance,
            };
            // Its own cgroup (a directory to create: blocking too), joined before it execs.
            let cgroup = cgroups.for_process(pm_id, spec.max_processes);
            let (cgroup_dir, cgroup_procs) = cgroup
                .as_ref()
                .map(ProcessCgroup::placement)
                .unwrap_or_default();
            let extras = Extras {
                socket: socket.as_deref(),
                env: ends.env,
                fds: ends
                    .fds
                    .iter()
                    .map(|(fd, at)| (fd.as_raw_fd(), *at))
                    .collect(),
                cgroup_dir,
                cgroup_procs,
            };
            // Recorded as ours before anyone can reap it: under `kelpie runtime` the orphan
            // reaper must leave this child's exit status to its wait below.
            let spawning = crate::reaper::spawning();
            let spawned = launch::command(&spec, &who, pipes, extras).and_then(|c| c.spawn());
            spawning.record(spawned.as_ref().ok().map(|c| c.pid));
            drop(ends.fds);
            // Read here (/etc/passwd) rather than on the async thread; it was just used.
            let identity = launch::identity(&spec).ok().flatten();
            (spawned, cgroup, identity)
        })
        .await
        .unwrap_or_else(|e| (Err(std::io::Error::other(e.to_string())), None, None));
        let spawned = spawned.map_err(|e| format!("{}: {e}", self.spec.command_line()[0]))?;
        let pid = spawned.pid;
        // Registering the pidfd only fails if the runtime is shutting down.
        let child = ProcessHandle::spawned(spawned)
            .map_err(|e| format!("cannot wait for process {pid}: {e}"))?;
        let mut stderr = None;
        if let (Some(route), Some((out, err))) = (route.clone(), readers) {
            let watch = |stream| {
                self.ready_pattern()
                    .map(|pattern| LineWatch {
                        pattern,
                        matched: link.sender(),
                    })
                    .filter(|_| stream == LogStream::Out || stream == LogStream::Err)
            };
            let (tail, reader) = crate::logs::exit_tail();
            stderr = Some(reader);
            self.logs.attach(
                route.clone(),
                LogStream::Out,
                out,
                watch(LogStream::Out),
                None,
            );
            self.logs.attach(
                route,
                LogStream::Err,
                err,
                watch(LogStream::Err),
                Some(tail),
            );
        }
        if let (true, Some(port)) = (self.spec.reuse_port, self.reuse_port_number()) {
            link.hold(tokio::spawn(crate::readiness::watch_port(
                pid,
                port,
                link.sender(),
            )));
        }
        let kept = keep_process(self.pm_id, &child, &link, cgroup.as_ref());
        Ok(Launched {
            child,
            pid,
            kept,
            link,
            cgroup,
            identity,
            route,
            awaits_ready: awaits_ready(&self.spec, self.shares_socket()),
            stderr,
            published: Published::default(),
        })
    }

    /// What a process's link may hand out: the app's claimed sockets, for a cluster-mode Node
    /// app (its shim asks for them).
    fn link_claims(&self) -> Option<Arc<ClaimedSockets>> {
        self.spec.shares_node_ports().then(|| self.claims.clone())
    }

    /// Whether its processes take their listening socket from Kelpie: the app's own (`port`),
    /// or the ones its code asked for (cluster-mode Node apps, once one did). A new process is
    /// then ready once it listens, and a reload keeps the port served throughout.
    fn shares_socket(&self) -> bool {
        self.socket.is_some() || (self.spec.shares_node_ports() && self.claims.any())
    }

    /// The compiled ready pattern (validated when the app was configured).
    fn ready_pattern(&self) -> Option<Arc<regex::bytes::Regex>> {
        let pattern = self.spec.ready_pattern.as_deref()?;
        regex::bytes::Regex::new(pattern).ok().map(Arc::new)
    }

    /// The port an app binding it itself (`reuse_port`) is expected to listen on.
    fn reuse_port_number(&self) -> Option<u16> {
        if let Some(port) = self.spec.listen.as_ref().and_then(|l| l.port()) {
            return Some(port);
        }
        self.spec.env_port()
    }

    /// Start a reload of this instance: see [`InstanceMsg::Reload`].
    async fn begin_reload(&mut self, reply: oneshot::Sender<Result<(), String>>, why: Option<Why>) {
        if self.candidate.is_some() {
            let _ = reply.send(Err(
                "a reload of this instance is already in progress".into()
            ));
            return;
        }
        let reloadable = self.shares_socket() || self.spec.reuse_port;
        if !reloadable || self.state.status != Status::Online || self.child.is_none() {
            // Nothing serves a port that the new process could share: restart, as PM2 does.
            let (done, settled) = oneshot::channel();
            self.settle_waiters.push(done);
            self.feed(Input::Control(Control::Restart)).await;
            tokio::spawn(async move {
                let _ = settled.await;
                let _ = reply.send(Ok(()));
            });
            return;
        }
        match self.launch().await {
            Ok(launched) => {
                let ready_now = !launched.awaits_ready;
                self.candidate = Some(Candidate {
                    launched,
                    deadline: Instant::now() + Duration::from_millis(self.spec.listen_timeout_ms),
                    reply,
                    why,
                });
                if ready_now {
                    self.promote_candidate().await;
                }
            }
            Err(error) => {
                let _ = reply.send(Err(format!("the new process could not start: {error}")));
            }
        }
    }

    /// The reload's new process is ready: it becomes the instance's process, and the old one is
    /// stopped gracefully on the side; the reload is answered once it is gone.
    async fn promote_candidate(&mut self) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        // The old process goes: what was asked for it is done.
        self.deferred_restart = None;
        let old = Retiring {
            child: self.child.take(),
            pgid: self.pgid,
            link: self.link.take(),
            cgroup: self.cgroup.take(),
        };
        let pid = candidate.launched.pid;
        self.adopt(candidate.launched);
        self.feed(Input::Replaced {
            pid,
            why: candidate.why,
        })
        .await;
        let spec = self.spec.clone();
        let reply = candidate.reply;
        self.retiring.retain(|task| !task.is_finished());
        self.retiring.push(tokio::spawn(async move {
            old.stop(&spec).await;
            let _ = reply.send(Ok(()));
        }));
    }

    /// Restart the process because of `why` (see [`InstanceMsg::AutoRestart`]). An automatic
    /// reload whose new process fails falls back to a restart: the limit or the failed check
    /// still holds for the old process.
    async fn auto_restart(&mut self, why: Why, reload: bool) {
        let running = matches!(self.state.status, Status::Online | Status::Launching);
        if !running {
            return;
        }
        if self.candidate.is_some() {
            // A reload is under way: if it fails, the old process stays and this still holds.
            self.deferred_restart = Some(why);
            return;
        }
        crate::daemon_log!(
            "app `{}` (id {}): restarting ({}): {}",
            self.spec.name,
            self.pm_id,
            why.cause.as_str(),
            why.detail
        );
        let reloadable = self.shares_socket() || self.spec.reuse_port;
        if !(reload && reloadable && self.state.status == Status::Online) {
            self.feed(Input::AutoRestart(why)).await;
            return;
        }
        let (reply, outcome) = oneshot::channel();
        let myself = self.myself.clone();
        let fallback = why.clone();
        // Restarted only if the old process is still the current one by then (a user's
        // restart or a crash meanwhile already replaced it).
        let old_pid = self.state.pid;
        self.begin_reload(reply, Some(why)).await;
        tokio::spawn(async move {
            if let Ok(Err(error)) = outcome.await {
                let why = Why {
                    cause: fallback.cause,
                    detail: format!("{}; the reload failed ({error})", fallback.detail),
                };
                if let Some(mailbox) = myself.upgrade() {
                    let _ = mailbox.send(InstanceMsg::AutoRestart {
                        why,
                        reload: false,
                        of_pid: old_pid,
                    });
                }
            }
        });
    }

    /// What the health check found: shown by `describe` and `list`; once it has failed
    /// `failures` times in a row, the process is restarted.
    async fn on_health(&mut self, report: HealthReport) {
        match report {
            HealthReport::Healthy => {
                self.state.health = Some(kelpie_core::Health::Healthy);
                self.state.health_detail = None;
                self.publish();
            }
            HealthReport::Failing {
                consecutive,
                reason,
            } => {
                self.state.health_detail =
                    Some(format!("{consecutive} failed in a row, the last: {reason}"));
                self.publish();
            }
            HealthReport::Unhealthy { reason } => {
                self.health = None;
                self.state.health = Some(kelpie_core::Health::Unhealthy);
                let failures = self.spec.health_check.as_ref().map_or(1, |c| c.failures);
                self.state.health_detail = Some(reason.clone());
                self.publish();
                let why = Why {
                    cause: Cause::Health,
                    detail: format!("health check failed {failures} times in a row: {reason}"),
                };
                self.auto_restart(why, true).await;
            }
        }
    }

    /// The cron schedule fired: restart a running process (a stopped app stays stopped), and
    /// arm the next firing.
    async fn on_cron(&mut self) {
        let Some(cron) = self.cron.as_mut() else {
            return;
        };
        let now = jiff::Timestamp::now();
        if let Some(target) = cron.target.filter(|target| now < *target) {
            // The wall clock went back since the timer was armed: wait for the real time.
            let left = Duration::try_from(now.duration_until(target)).unwrap_or_default();
            cron.next = Some(Instant::now() + left);
            return;
        }
        let after = cron.target.map_or(now, |target| target.max(now));
        (cron.next, cron.target) = next_firing(&cron.schedule, &cron.zone, after);
        let detail = format!(
            "cron_restart `{}` ({})",
            self.spec.cron_restart.as_deref().unwrap_or_default(),
            zone_name(&cron.zone)
        );
        let why = Why {
            cause: Cause::Cron,
            detail,
        };
        self.auto_restart(why, true).await;
    }

    /// The reload failed: stop its new process, keep the old one, say why.
    fn abandon_candidate(&mut self, why: String) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        // An automatic restart asked for during the reload applies to the old process.
        if let (Some(deferred), Some(mailbox)) =
            (self.deferred_restart.take(), self.myself.upgrade())
        {
            let _ = mailbox.send(InstanceMsg::AutoRestart {
                why: deferred,
                reload: false,
                of_pid: self.state.pid,
            });
        }
        crate::daemon_log!(
            "app `{}` (id {}): reload failed: {why}; the old process keeps running",
            self.spec.name,
            self.pm_id
        );
        let message = format!(
            "{why}; it was stopped and the old process (pid {}) keeps running",
            self.state
                .pid
                .map_or_else(|| "-".to_string(), |p| p.to_string())
        );
        let failed = Retiring {
            pgid: Some(candidate.launched.pid),
            child: Some(candidate.launched.child),
            link: Some(candidate.launched.link),
            cgroup: candidate.launched.cgroup,
        };
        let spec = self.spec.clone();
        let reply = candidate.reply;
        // Answered once it is gone: until then it may still take connections.
        self.retiring.retain(|task| !task.is_finished());
        self.retiring.push(tokio::spawn(async move {
            failed.stop(&spec).await;
            let _ = reply.send(Err(message));
        }));
    }

    fn signal_group(&self, signal: i32) {
        if let Some(pgid) = self.pgid {
            // ESRCH only means the group is already gone, which is what we want.
            let _ = kelpie_sys::kill_group(pgid, signal);
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

    fn cancel_pending_restart(&mut self) {
        self.timer = None;
        if self.state.status == Status::WaitingRestart {
            self.state
                .handle(&self.spec, Input::Control(Control::Stop), clock::now());
        }
    }

    /// A process group that an earlier daemon started and could not stop (it was killed): stop
    /// it the way a stop would, so the app does not run twice.
    async fn stop_orphan_group(&mut self, pgid: u32) {
        crate::daemon_log!(
            "app `{}` (id {}): stopping process group {pgid} left by a previous daemon",
            self.spec.name,
            self.pm_id
        );
        let orphan = Retiring {
            child: None,
            pgid: Some(pgid),
            link: None,
            cgroup: None,
        };
        orphan.stop(&self.spec).await;
    }
}

/// A process on its way out (replaced by a reload, a reload's failed new process, or left by a
/// daemon that died), stopped apart from the instance's current process: its stop signal (or
/// the `shutdown` message), `kill_timeout`, then SIGKILL to whatever is left of its group.
struct Retiring {
    child: Option<ProcessHandle>,
    pgid: Option<u32>,
    link: Option<ProcessLink>,
    cgroup: Option<ProcessCgroup>,
}

impl Retiring {
    async fn stop(mut self, spec: &AppSpec) {
        let Some(pgid) = self.pgid else {
            return;
        };
        ask_to_stop(spec, pgid, self.link.as_ref(), self.cgroup.as_ref());
        let deadline = Instant::now() + Duration::from_millis(spec.kill_timeout_ms);
        if let Some(child) = self.child.as_mut() {
            let _ = tokio::time::timeout_at(deadline, child.wait()).await;
        }
        let cgroup = self.cgroup.as_ref().map(ProcessCgroup::cgroup);
        let mut checks = GroupChecks::default();
        while checks.running(pgid, cgroup).await && Instant::now() < deadline {
            sleep(GROUP_POLL).await;
        }
        let _ = kelpie_sys::kill_group(pgid, kelpie_sys::SIGKILL);
        if let Some(cgroup) = cgroup {
            cgroup.kill();
        }
        // SIGKILL is not refused, but a process stuck in the kernel (D state) dies late: bounded,
        // so that an instance (and the daemon's exit) never waits on it forever.
        let killed_by = Instant::now() + AFTER_SIGKILL;
        if let Some(child) = self.child.as_mut() {
            let _ = tokio::time::timeout_at(killed_by, child.wait()).await;
        }
        while checks.running(pgid, cgroup).await && Instant::now() < killed_by {
            sleep(GROUP_POLL).await;
        }
    }
}

/// How often (in group polls) a group that still exists is scanned for live members.
const SCAN_EVERY: u32 = 10;

/// Checks whether a process group being stopped still has a running process.
#[derive(Default)]
struct GroupChecks {
    polls: u32,
}

impl GroupChecks {
    /// kill(2) says whether the group exists (one system call, every poll). Exited members
    /// waiting for init to reap them keep it existing, so while it does, every tenth poll
    /// scans /proc (off the async thread) for a member that has not exited.
    ///
    /// With a cgroup, the answer is exact and cheap: whether it holds a process that has not
    /// exited (a read of `cgroup.events`, a small in-kernel file), group or not.
    async fn running(&mut self, pgid: u32, cgroup: Option<&kelpie_sys::cgroup::Cgroup>) -> bool {
        if let Some(cgroup) = cgroup {
            return cgroup.populated();
        }
        if !kelpie_sys::group_alive(pgid) {
            return false;
        }
        self.polls += 1;
        if !self.polls.is_multiple_of(SCAN_EVERY) {
            return true;
        }
        tokio::task::spawn_blocking(move || kelpie_sys::group_has_live_members(pgid))
            .await
            .unwrap_or(true)
    }
}

/// The polite part of a stop: PM2's `shutdown` message when the app asks for it and has a Node
/// IPC channel, else its kill signal to the whole group.
fn ask_to_stop(
    spec: &AppSpec,
    pgid: u32,
    link: Option<&ProcessLink>,
    cgroup: Option<&ProcessCgroup>,
) {
    let by_message = (spec.shutdown_with_message || kill_use_message())
        && link.is_some_and(|l| l.send_message(&serde_json::json!("shutdown")));
    if !by_message {
        let signal = kelpie_sys::signal_number(&spec.kill_signal).unwrap_or(libc_sigint());
        // ESRCH only means the group is already gone, which is what we want.
        let _ = kelpie_sys::kill_group(pgid, signal);
        // Processes that left the group are still in the cgroup: told too, as systemd does.
        // Only those: a second signal to a process that is draining means "now" (Node's shim).
        if let Some(cgroup) = cgroup {
            for pid in cgroup.cgroup().pids() {
                if kelpie_sys::sample_process(pid).is_some_and(|p| p.pgrp != pgid) {
                    let _ = kelpie_sys::send_signal(pid, signal);
                }
            }
        }
    }
}

/// PM2's `PM2_KILL_USE_MESSAGE=true` in the daemon's environment: every app with an IPC channel
/// is stopped with the `shutdown` message, as if it had `shutdown_with_message`.
fn kill_use_message() -> bool {
    static USE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *USE.get_or_init(|| std::env::var("PM2_KILL_USE_MESSAGE").is_ok_and(|v| v == "true"))
}

/// Whether the process must say it is ready before it counts as online.
fn awaits_ready(spec: &AppSpec, shared_socket: bool) -> bool {
    spec.wait_ready
        || spec.ready_pattern.is_some()
        || spec.reuse_port
        || (shared_socket && spec.runs_on_node())
}

/// Whether `signal` means ready for this app: an explicit signal always; with `wait_ready`
/// only that (as in PM2, the server listening is not enough then); a Node app on a shared socket is ready when
/// its server listens; a ready pattern, or the port open for `reuse_port` apps.
fn accepts(spec: &AppSpec, shared_socket: bool, signal: &ProcessSignal) -> bool {
    match signal {
        // A process that says READY=1 is ready, whatever else was expected.
        ProcessSignal::Ready => true,
        ProcessSignal::Listening => !spec.wait_ready && shared_socket && spec.runs_on_node(),
        ProcessSignal::ReadyLine => spec.ready_pattern.is_some(),
        ProcessSignal::PortOpen => spec.reuse_port,
        ProcessSignal::Watchdog | ProcessSignal::Published(_) | ProcessSignal::Message(_) => false,
    }
}

/// Have the keeper hold a pidfd of process `pid` and a copy of its link, so a daemon started
/// after this one died can adopt it. `None` without a keeper or once the process is gone.
fn keep_process(
    pm_id: u32,
    child: &ProcessHandle,
    link: &ProcessLink,
    cgroup: Option<&ProcessCgroup>,
) -> Option<crate::keeper::Held> {
    let pid = child.pid();
    let (notify, ipc) = link.fds();
    let mut fds = vec![child.pidfd(), notify];
    fds.extend(ipc);
    crate::keeper::hold(
        crate::keeper::Holding::Process {
            pm_id,
            pid,
            cgroup: cgroup.map(|c| c.cgroup().path().to_path_buf()),
            ipc: ipc.is_some(),
        },
        &fds,
    )
}

fn describe_status(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (_, Some(signal)) => format!("killed by {}", kelpie_sys::signal_name(signal)),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "exited".into(),
    }
}

/// Two pipes for a process's stdout and stderr: the write ends for the child, the read ends
/// for the log thread.
fn output_pipes() -> std::io::Result<(OutputPipes, (OwnedFd, OwnedFd))> {
    let (out_read, out_write) = std::io::pipe()?;
    let (err_read, err_write) = std::io::pipe()?;
    Ok((
        OutputPipes {
            out: out_write,
            err: err_write,
        },
        (out_read.into(), err_read.into()),
    ))
}

fn libc_sigint() -> i32 {
    kelpie_sys::signal_number("SIGINT").unwrap_or(2)
}

/// The app's cron schedule, armed for its next firing; `None` without one (a schedule that
/// does not parse was refused when the app was configured, and is logged here).
fn cron_timer(spec: &AppSpec) -> Option<CronTimer> {
    let expression = spec.cron_restart.as_deref()?;
    let parsed = CronSchedule::parse(expression).and_then(|schedule| {
        let zone = kelpie_core::cron::time_zone(spec.cron_timezone.as_deref())?;
        Ok((schedule, zone))
    });
    match parsed {
        Ok((schedule, zone)) => {
            let (next, target) = next_firing(&schedule, &zone, jiff::Timestamp::now());
            Some(CronTimer {
                schedule,
                zone,
                next,
                target,
            })
        }
        Err(e) => {
            crate::daemon_log!("app `{}`: cron_restart ignored: {e}", spec.name);
            None
        }
    }
}

/// When `schedule` fires next after `after`: as an instant of the daemon's monotonic clock (to
/// sleep until), and as the wall-clock time it stands for.
fn next_firing(
    schedule: &CronSchedule,
    zone: &jiff::tz::TimeZone,
    after: jiff::Timestamp,
) -> (Option<Instant>, Option<jiff::Timestamp>) {
    let Some(next) = schedule.next_after(&after.to_zoned(zone.clone())) else {
        return (None, None);
    };
    let wait = jiff::Timestamp::now().duration_until(next.timestamp());
    let wait = Duration::try_from(wait).unwrap_or_default();
    (Some(Instant::now() + wait), Some(next.timestamp()))
}

/// A zone's name for people (`Europe/Paris`, `UTC`), or its current offset.
pub fn zone_name(zone: &jiff::tz::TimeZone) -> String {
    match zone.iana_name() {
        Some(name) => name.to_string(),
        None => zone.to_offset(jiff::Timestamp::now()).to_string(),
    }
}

/// `1500` → `1.5 s`.
fn seconds(ms: u64) -> String {
    format!("{} s", ms as f64 / 1000.0)
}
