//! One task per instance: it owns the child process, waits on it, signals it and arms its
//! timers. Decisions come from `kelpie_core::InstanceState`; this module only carries them out.

use crate::clock;
use crate::launch::{self, InstanceIdentity, OutputPipes};
use crate::logs::LogService;
use kelpie_core::{AppSpec, Control, Effect, Input, InstanceState, Status};
use kelpie_proto::{Home, LogStream};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, sleep_until, Instant};

/// How often a stopping instance checks whether its process group is empty.
const GROUP_POLL: Duration = Duration::from_millis(10);

/// Messages from the supervisor to an instance task.
pub enum InstanceMsg {
    /// A user command; `done` is answered once the instance has settled (online, stopped or errored).
    Control(Control, Option<oneshot::Sender<()>>),
    /// Use this spec for the next process it starts.
    UpdateSpec(Arc<AppSpec>),
    /// Zero the counters; `done` is answered once the new state is reported.
    Reset(oneshot::Sender<()>),
    /// Send a signal to the main process.
    Signal(i32, oneshot::Sender<Result<(), String>>),
    /// Stop the process and end the task (delete, daemon exit).
    Shutdown(oneshot::Sender<()>),
}

/// A report from an instance task to the supervisor.
pub struct InstanceEvent {
    /// Which instance.
    pub pm_id: u32,
    /// Its new state.
    pub state: InstanceState,
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
}

/// Start the task; returns its mailbox.
pub fn spawn(
    setup: InstanceSetup,
    events: mpsc::UnboundedSender<InstanceEvent>,
) -> mpsc::UnboundedSender<InstanceMsg> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(Instance::new(setup, events).run(rx));
    tx
}

/// What woke the task up.
enum Wake {
    Msg(Option<InstanceMsg>),
    Exited(std::io::Result<std::process::ExitStatus>),
    Timer,
    GroupPoll,
}

struct Instance {
    pm_id: u32,
    instance: u32,
    spec: Arc<AppSpec>,
    state: InstanceState,
    home: Home,
    events: mpsc::UnboundedSender<InstanceEvent>,
    logs: LogService,
    child: Option<Child>,
    /// Process group of the current or last process (its leader's pid).
    pgid: Option<u32>,
    timer: Option<Instant>,
    watching_group: bool,
    settle_waiters: Vec<oneshot::Sender<()>>,
    shutdown_waiter: Option<oneshot::Sender<()>>,
    orphan_group: Option<u32>,
    /// False once the supervisor dropped the mailbox.
    mailbox_open: bool,
    /// Where the last process's output went.
    route: Option<Arc<crate::logs::Route>>,
}

impl Instance {
    fn new(setup: InstanceSetup, events: mpsc::UnboundedSender<InstanceEvent>) -> Self {
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
            settle_waiters: Vec::new(),
            shutdown_waiter: None,
            orphan_group: setup.orphan_group,
            mailbox_open: true,
            route: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<InstanceMsg>) {
        if let Some(pgid) = self.orphan_group.take() {
            self.stop_orphan_group(pgid).await;
        }
        loop {
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
                    let input = match result {
                        Ok(status) => Input::Exited {
                            code: status.code(),
                            signal: status.signal().map(kelpie_sys::signal_name),
                        },
                        Err(e) => Input::Exited {
                            code: None,
                            signal: Some(format!("wait failed: {e}")),
                        },
                    };
                    self.feed(input).await;
                }
                Wake::Timer => {
                    self.timer = None;
                    self.feed(Input::TimerFired).await;
                }
                Wake::GroupPoll => {
                    if !self.pgid.is_some_and(kelpie_sys::group_alive) {
                        self.watching_group = false;
                        self.feed(Input::GroupGone).await;
                    }
                }
            }
            if self.shutdown_waiter.is_some() && !self.state.status.has_process() {
                break;
            }
        }
        self.cancel_pending_restart();
        if let Some(waiter) = self.shutdown_waiter.take() {
            let _ = waiter.send(());
        }
    }

    async fn next_wake(&mut self, rx: &mut mpsc::UnboundedReceiver<InstanceMsg>) -> Wake {
        let timer = self.timer;
        let watching = self.watching_group;
        let mailbox_open = self.mailbox_open;
        let child = self.child.as_mut();
        tokio::select! {
            msg = async { if mailbox_open { rx.recv().await } else { std::future::pending().await } } => Wake::Msg(msg),
            status = async { match child { Some(c) => c.wait().await, None => std::future::pending().await } } => Wake::Exited(status),
            () = async { match timer { Some(t) => sleep_until(t).await, None => std::future::pending().await } } => Wake::Timer,
            () = async { if watching { sleep(GROUP_POLL).await } else { std::future::pending().await } } => Wake::GroupPoll,
        }
    }

    async fn on_message(&mut self, msg: InstanceMsg) {
        match msg {
            InstanceMsg::Control(control, done) => {
                self.settle_waiters.extend(done);
                self.feed(Input::Control(control)).await;
            }
            InstanceMsg::UpdateSpec(spec) => self.spec = spec,
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
            InstanceMsg::Shutdown(done) => {
                self.shutdown_waiter = Some(done);
                self.feed(Input::Control(Control::Stop)).await;
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
            Effect::SignalGroup(name) => {
                let signal = kelpie_sys::signal_number(&name).unwrap_or(libc_sigint());
                self.signal_group(signal);
                None
            }
            Effect::KillGroup => {
                self.signal_group(kelpie_sys::SIGKILL);
                None
            }
            Effect::WatchGroup => {
                if self.pgid.is_some_and(kelpie_sys::group_alive) {
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

    /// Start the process. The fork/exec runs on the blocking pool: it blocks its thread until
    /// the child has exec'd, and doing it there lets several instances start in parallel (200
    /// apps start in about half the time on two cores) without stalling the supervisor.
    async fn spawn_process(&mut self) -> Input {
        if self.shutdown_waiter.is_some() {
            return Input::SpawnFailed {
                error: "the app is being deleted".into(),
            };
        }
        let who = InstanceIdentity {
            home: &self.home,
            pm_id: self.pm_id,
            instance: self.instance,
        };
        let files = launch::log_paths(&self.home, &self.spec, self.pm_id).files();
        let route = self
            .logs
            .route(&self.spec, self.pm_id, self.instance, &files);
        let (pipes, readers) = match route.as_ref().map(|_| output_pipes()).transpose() {
            Ok(Some((pipes, readers))) => (Some(pipes), Some(readers)),
            Ok(None) => (None, None),
            Err(e) => {
                return Input::SpawnFailed {
                    error: format!("cannot create the output pipes: {e}"),
                }
            }
        };
        // The command (and with it the pipes' write ends) is dropped on the blocking thread
        // right after the spawn, so the reader sees end-of-file when the app's processes exit.
        let mut command = launch::command(&self.spec, &who, pipes);
        let spawned = tokio::task::spawn_blocking(move || command.spawn())
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match spawned {
            Ok(child) => match child.id() {
                Some(pid) => {
                    if let (Some(route), Some((out, err))) = (route.clone(), readers) {
                        self.logs.attach(route.clone(), LogStream::Out, out);
                        self.logs.attach(route, LogStream::Err, err);
                    }
                    // Held while the instance exists, so its files (and their dropped-line
                    // counts and errors) stay open across restarts and stops.
                    self.route = route;
                    self.pgid = Some(pid);
                    self.child = Some(child);
                    Input::Spawned { pid }
                }
                None => Input::SpawnFailed {
                    error: "the process exited before its pid was known".into(),
                },
            },
            Err(e) => Input::SpawnFailed {
                error: format!("{}: {e}", self.spec.command_line()[0]),
            },
        }
    }

    fn signal_group(&self, signal: i32) {
        if let Some(pgid) = self.pgid {
            // ESRCH only means the group is already gone, which is what we want.
            let _ = kelpie_sys::kill_group(pgid, signal);
        }
    }

    fn publish(&mut self) {
        let _ = self.events.send(InstanceEvent {
            pm_id: self.pm_id,
            state: self.state.clone(),
        });
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
        let signal = kelpie_sys::signal_number(&self.spec.kill_signal).unwrap_or(libc_sigint());
        let _ = kelpie_sys::kill_group(pgid, signal);
        let deadline = Instant::now() + Duration::from_millis(self.spec.kill_timeout_ms);
        while kelpie_sys::group_alive(pgid) && Instant::now() < deadline {
            sleep(GROUP_POLL).await;
        }
        let _ = kelpie_sys::kill_group(pgid, kelpie_sys::SIGKILL);
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
