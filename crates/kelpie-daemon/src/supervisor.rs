//! The supervisor actor: owns the app table, handles every request, persists state.

mod cluster;
mod conf;
mod foreground;
mod handlers;
mod logs;
mod order;
mod orphans;
mod signals;
mod starting;
mod startup;
mod targets;
mod update;
mod watching;

pub use startup::run;

use crate::control::{Command, Finish, InstanceMetrics, Reply};
pub use foreground::{ForegroundOptions, ForegroundSetup, OutputBatch, OUTPUT_QUEUE};

use crate::clock;
use crate::instance::{self, InstanceEvent, InstanceMsg, InstanceSetup};
use crate::logs::LogService;
use crate::maybe::{until, when};
use crate::monitor::{Monitor, Reading, Target};
use crate::persist::{Ack, Persister};
use crate::sockets::{ClaimedSockets, ListenSocket, PortRegistry};
use crate::state::{PersistedInstance, StateFile, STATE_VERSION};
use crate::DaemonError;
use kelpie_core::limits::{LimitWatch, Usage};
use kelpie_core::{AppSpec, InstanceState};
use kelpie_proto::{Home, ProcessInfo, Response};
use signals::{DaemonSignal, Signals};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// At exit, how long the log pipeline may take to write what the stopping apps printed.
const LOGS_AT_EXIT: Duration = Duration::from_secs(3);

/// State changes not caused by a command (a crash, a restart) are written at most this often.
const PERSIST_DEBOUNCE: Duration = Duration::from_millis(100);

/// One instance in the table.
struct Entry {
    instance: u32,
    spec: Arc<AppSpec>,
    state: InstanceState,
    mailbox: mpsc::UnboundedSender<InstanceMsg>,
    /// The last reading of its process tree, with the main pid it was taken for.
    usage: Option<(u32, Usage)>,
    /// What its limits have seen.
    limits: LimitWatch,
    /// Its current process's cgroup, if any.
    cgroup: Option<std::path::PathBuf>,
    /// What its process published on its notify socket (`STATUS=`, metrics).
    published: kelpie_core::Published,
    /// CPU time its processes used since this daemon started (seconds), for `/metrics`.
    cpu_seconds: f64,
    /// Failed health-check probes that counted, for `/metrics`.
    health_failures: u64,
}

/// What woke the supervisor up.
enum Wake {
    Command(Command),
    Event(InstanceEvent),
    Readings(Vec<Reading>),
    PendingDeadline,
    Persist,
    Signal(DaemonSignal),
    UpdateLook,
    Exit,
}

/// The receiving ends of the supervisor's channels, for [`Supervisor::run`].
struct Inboxes {
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedReceiver<InstanceEvent>,
    readings: mpsc::UnboundedReceiver<Vec<Reading>>,
}

/// The sending ends: requests and the supervisor's own tasks' results, the instances' reports,
/// the monitor's readings.
struct Outboxes {
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedSender<InstanceEvent>,
    readings: mpsc::UnboundedSender<Vec<Reading>>,
}

/// The supervisor's channels.
fn channels() -> (Outboxes, Inboxes) {
    let (commands_tx, commands) = mpsc::channel(1024);
    let (events_tx, events) = mpsc::unbounded_channel();
    let (readings_tx, readings) = mpsc::unbounded_channel();
    let outboxes = Outboxes {
        commands: commands_tx,
        events: events_tx,
        readings: readings_tx,
    };
    (
        outboxes,
        Inboxes {
            commands,
            events,
            readings,
        },
    )
}

/// What the supervisor works with besides its own state. `startup.rs` starts the daemon's; the
/// in-process tests (`supervisor/tests.rs`) start theirs with fake processes and no monitor
/// thread.
struct Services {
    home: Home,
    /// Writes `state.json`, the dump and the configuration store.
    persister: Persister,
    logs: LogService,
    /// Samples the instances' processes (in the tests: not started, fed by the test).
    monitor: Monitor,
    /// One cgroup per app process, when the daemon can create them.
    cgroups: crate::cgroups::Cgroups,
    /// Starts and stops the web server (`kelpie web`, `[web]`).
    web: crate::web::WebControl,
    /// Where the instances' processes run.
    host: instance::Host,
    /// A second descriptor of the control socket, for `kelpie update`.
    control: std::os::fd::OwnedFd,
    /// The configuration store (`kelpie set`), as on disk.
    conf: kelpie_config::module_conf::ConfStore,
    /// The rotation defaults of `kelpie.toml` (`[logs]`).
    toml_logs: kelpie_config::LogDefaults,
    /// Under `kelpie runtime`: its apps' exit, output and orphans.
    foreground: Option<foreground::Foreground>,
}

struct Supervisor {
    home: Home,
    apps: BTreeMap<u32, Entry>,
    next_id: u32,
    events: mpsc::UnboundedSender<InstanceEvent>,
    commands: mpsc::Sender<Command>,
    persister: Persister,
    persist_at: Option<Instant>,
    /// Once shutting down, the state on disk is the one from before the apps were stopped.
    exiting: bool,
    exit_now: Option<oneshot::Receiver<()>>,
    /// Samples every instance's process tree.
    monitor: Monitor,
    /// One cgroup per app process, when the daemon can create them.
    cgroups: crate::cgroups::Cgroups,
    username: String,
    logs: LogService,
    /// Listening sockets of apps with a Kelpie-owned port, by app name.
    sockets: BTreeMap<String, Arc<ListenSocket>>,
    /// Sockets the code of cluster-mode Node apps asked for.
    ports: Arc<PortRegistry>,
    /// Actions waiting for other apps (`depends_on`).
    pending: Vec<order::Pending>,
    /// Instances deleted while their process was still stopping.
    leaving: std::collections::BTreeSet<u32>,
    /// The file watching thread, started with the first watched app.
    watch_service: Option<crate::watch::WatchService>,
    /// Watches of apps, by name.
    watchers: BTreeMap<String, watching::Watching>,
    /// Under `kelpie runtime`: its apps' exit, output and orphans.
    foreground: Option<foreground::Foreground>,
    /// A second descriptor of the control socket, for `kelpie update`.
    control: std::os::fd::OwnedFd,
    /// `kelpie update` asked for, waiting for the apps to settle.
    update: Option<update::PendingUpdate>,
    /// Starts and stops the web server (`kelpie web`, `[web]`).
    web: crate::web::WebControl,
    /// The inherited environment of the app created last, which the next ones share when
    /// they have the same (see `share_inherited_env`).
    shared_env: Option<Arc<BTreeMap<String, String>>>,
    /// The configuration store (`kelpie set`), as on disk.
    conf: kelpie_config::module_conf::ConfStore,
    /// The rotation defaults of `kelpie.toml` (`[logs]`), under the store's `pm2-logrotate`.
    toml_logs: kelpie_config::LogDefaults,
    /// What happens to the processes, for the clients following it (`Request::Events`).
    bus: crate::bus::Bus,
    /// Where the instances' processes run.
    host: instance::Host,
}

impl Supervisor {
    /// A supervisor with no app yet; its instances report on `events`, and it sends its own
    /// tasks' results to itself on `commands`.
    fn new(services: Services, outboxes: &Outboxes) -> Supervisor {
        let Services {
            home,
            persister,
            logs,
            monitor,
            cgroups,
            web,
            host,
            control,
            conf,
            toml_logs,
            foreground,
        } = services;
        Supervisor {
            home,
            apps: BTreeMap::new(),
            next_id: 0,
            events: outboxes.events.clone(),
            commands: outboxes.commands.clone(),
            persister,
            persist_at: None,
            exiting: false,
            exit_now: None,
            monitor,
            cgroups,
            username: kelpie_sys::username(kelpie_sys::current_uid()),
            logs,
            sockets: BTreeMap::new(),
            ports: Arc::default(),
            pending: Vec::new(),
            leaving: Default::default(),
            watch_service: None,
            watchers: BTreeMap::new(),
            foreground,
            control,
            update: None,
            web,
            shared_env: None,
            conf,
            toml_logs,
            bus: crate::bus::Bus::default(),
            host,
        }
    }

    /// Serve requests and supervise until told to exit.
    async fn run(&mut self, inboxes: Inboxes, mut signals: Signals) -> Result<(), DaemonError> {
        let Inboxes {
            mut commands,
            mut events,
            mut readings,
        } = inboxes;
        loop {
            let persist_at = self.persist_at;
            let pending_deadline = self.next_pending_deadline();
            let exit_now = self.exit_now.as_mut();
            let update_look = self.update.as_ref().map(|u| u.next_look);
            // Biased, events first: an instance reports its new state before it wakes the waiter
            // whose Finish then arrives on `commands`, so answers always show the settled state.
            let wake = tokio::select! {
                biased;
                Some(event) = events.recv() => Wake::Event(event),
                Some(command) = commands.recv() => Wake::Command(command),
                Some(batch) = readings.recv() => Wake::Readings(batch),
                () = until(persist_at) => Wake::Persist,
                () = until(pending_deadline) => Wake::PendingDeadline,
                Some(signal) = signals.recv() => Wake::Signal(signal),
                () = until(update_look) => Wake::UpdateLook,
                Ok(()) = when(exit_now, |rx| rx) => Wake::Exit,
            };
            match wake {
                Wake::Command(command) => self.on_command(command),
                Wake::Event(event) => self.on_event(event),
                Wake::Readings(batch) => self.on_readings(batch),
                Wake::PendingDeadline => self.run_pending(),
                Wake::Persist => self.persist(None),
                Wake::Signal(signal) => self.on_signal(signal),
                Wake::UpdateLook => self.update_look(&mut events, &mut signals).await,
                Wake::Exit => return Ok(()),
            }
        }
    }

    fn on_signal(&mut self, signal: DaemonSignal) {
        let why = signal.name();
        match signal {
            DaemonSignal::Term | DaemonSignal::Int if self.exiting && self.foreground.is_some() => {
                crate::daemon_log!("{why} again: killing every app now");
                self.kill_now();
            }
            DaemonSignal::Term | DaemonSignal::Int => self.begin_shutdown(why, None),
            DaemonSignal::Hup if self.foreground.is_some() => self.begin_shutdown(why, None),
            DaemonSignal::Hup => crate::daemon_log!("SIGHUP received; nothing to reload yet"),
            DaemonSignal::Usr2 => self.reload_logs(None),
            DaemonSignal::Usr1 => self.update_asked(),
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request { request, reply } => self.handle(request, reply),
            Command::Finish { finish, reply } => self.finish(finish, reply),
            Command::Settled { finish, reply } => self.persist_then_finish(finish, reply),
            Command::DumpLoaded { result, reply } => self.resurrect_loaded(result, reply),
            Command::TomlLogs(logs) => {
                self.toml_logs = logs;
                self.apply_rotation();
            }
            Command::UpdateChecked(result) => self.update_checked(result),
            Command::ForegroundStarted(response) => self.foreground_started(response),
            Command::WatchStarted { name, key, result } => self.watch_started(name, key, result),
            Command::FilesChanged { name, burst } => self.files_changed(&name, burst),
            Command::LogSelection { targets, reply } => {
                let _ = reply.send(self.log_selection(&targets));
            }
            Command::Metrics { reply } => {
                let _ = reply.send(self.instance_metrics());
            }
            Command::ControlSocket(control) => {
                self.control = control;
                // The home was made anew: put the state back on disk at once.
                self.persist(None);
            }
        }
    }

    fn on_event(&mut self, event: InstanceEvent) {
        let event = match event {
            InstanceEvent::State(report) => report,
            // Shown by `list`, never persisted: it changes as often as the app wants.
            InstanceEvent::Published { pm_id, published } => {
                if let Some(entry) = self.apps.get_mut(&pm_id) {
                    entry.published = published;
                }
                return;
            }
            InstanceEvent::Message {
                pm_id,
                pid,
                message,
            } => {
                if let Some(entry) = self.apps.get(&pm_id) {
                    let about = crate::bus::About::of(pm_id, &entry.spec);
                    let mut event = crate::bus::event("message", &about, &entry.state);
                    event.pid = pid;
                    event.data = Some(message);
                    self.bus.publish(event);
                }
                return;
            }
        };
        if !self.apps.contains_key(&event.pm_id) && !event.state.status.has_process() {
            // A deleted instance's process is gone: apps it depended on may now stop.
            if self.leaving.remove(&event.pm_id) {
                self.run_pending();
            }
            return;
        }
        if let Some(entry) = self.apps.get_mut(&event.pm_id) {
            let new_process = entry.state.pid != event.state.pid || entry.cgroup != event.cgroup;
            // Each counted failure of a health check reports a new detail (its count in a row,
            // or the final reason); a success or a new process clears it.
            if event.state.health_detail.is_some()
                && event.state.health_detail != entry.state.health_detail
            {
                entry.health_failures += 1;
            }
            let about = crate::bus::About::of(event.pm_id, &entry.spec);
            self.bus.publish_changes(&about, &entry.state, &event.state);
            entry.state = event.state;
            entry.cgroup = event.cgroup;
            if new_process {
                entry.limits.reset();
            }
            let name = entry.spec.name.clone();
            let watched = !entry.spec.watch.is_empty() || self.watchers.contains_key(&name);
            if new_process {
                self.sample_current_processes();
            }
            self.mark_dirty();
            if watched {
                self.sync_watch(&name);
            }
            self.note_reported(event.pm_id);
            self.run_pending();
            self.check_all_ended();
        }
    }

    /// Tell the monitor which processes are the instances' now.
    fn sample_current_processes(&self) {
        let targets = self
            .apps
            .iter()
            .filter_map(|(pm_id, entry)| {
                entry.state.pid.map(|pid| Target {
                    pm_id: *pm_id,
                    pid,
                    cgroup: entry.cgroup.clone(),
                })
            })
            .collect();
        self.monitor.set_targets(targets);
    }

    /// Keep the readings for `list`, and restart the instances over their limits.
    fn on_readings(&mut self, batch: Vec<Reading>) {
        let now = clock::now();
        for reading in batch {
            let Some(entry) = self.apps.get_mut(&reading.pm_id) else {
                continue;
            };
            // A reading of a process the instance no longer runs is stale.
            if entry.state.pid != Some(reading.pid) {
                continue;
            }
            entry.usage = Some((reading.pid, reading.usage));
            entry.cpu_seconds += reading.cpu_seconds;
            if !matches!(
                entry.state.status,
                kelpie_core::Status::Online | kelpie_core::Status::Launching
            ) {
                continue;
            }
            if let Some(why) = entry
                .limits
                .observe(&entry.spec, &reading.usage, now.mono_ms)
            {
                let _ = entry.mailbox.send(InstanceMsg::AutoRestart {
                    why,
                    reload: true,
                    of_pid: Some(reading.pid),
                });
            }
        }
    }

    fn mark_dirty(&mut self) {
        if !self.exiting && self.persist_at.is_none() {
            self.persist_at = Some(Instant::now() + PERSIST_DEBOUNCE);
        }
    }

    /// Write the state now; `ack` hears when it is on disk.
    fn persist(&mut self, ack: Option<Ack>) {
        self.persist_at = None;
        // The runtime's apps live as long as it does: nothing of them is kept on disk.
        if self.exiting || self.foreground.is_some() {
            if let Some(ack) = ack {
                let _ = ack.send(Ok(String::new()));
            }
            return;
        }
        let apps = self
            .apps
            .iter()
            .map(|(pm_id, entry)| PersistedInstance {
                pm_id: *pm_id,
                instance: entry.instance,
                spec: entry.spec.clone(),
                state: entry.state.clone(),
                run: entry.state.wants_to_run(),
                pid_start_ticks: None,
            })
            .collect();
        self.persister.write_state(
            StateFile {
                version: STATE_VERSION,
                next_id: self.next_id,
                apps,
            },
            ack,
        );
    }

    /// The apps of one `start` (or of one shell) have the same inherited environment: keep one
    /// copy of it for all, not one per app (it is most of a spec's size). `spec` must not be
    /// shared yet (it is not copied).
    fn share_inherited_env(&mut self, spec: &mut Arc<AppSpec>) {
        match &self.shared_env {
            Some(shared) if Arc::ptr_eq(shared, &spec.inherited_env) => {}
            Some(shared) if **shared == *spec.inherited_env => {
                Arc::make_mut(spec).inherited_env = shared.clone();
            }
            _ => self.shared_env = Some(spec.inherited_env.clone()),
        }
    }

    fn add_entry(
        &mut self,
        pm_id: u32,
        instance: u32,
        spec: Arc<AppSpec>,
        state: InstanceState,
        socket: Option<Arc<ListenSocket>>,
        inherited: update::Inherited,
    ) {
        let setup = InstanceSetup {
            pm_id,
            instance,
            spec: spec.clone(),
            state: state.clone(),
            home: self.home.clone(),
            orphan_group: inherited.orphan_group,
            logs: self.logs.clone(),
            socket,
            claims: self.claims_of(&spec.name),
            cgroups: self.cgroups.clone(),
            adopted: inherited.process,
            pipes: inherited.pipes,
            restart_in: inherited.restart_in,
            host: self.host.clone(),
        };
        self.logs.claim(pm_id, &spec);
        self.leaving.remove(&pm_id);
        let mailbox = instance::spawn(setup, self.events.clone());
        self.apps.insert(
            pm_id,
            Entry {
                instance,
                spec,
                state,
                mailbox,
                usage: None,
                limits: LimitWatch::default(),
                cgroup: None,
                published: Default::default(),
                cpu_seconds: 0.0,
                health_failures: 0,
            },
        );
        self.next_id = self.next_id.max(pm_id + 1);
    }

    /// The listening socket `spec` needs: the app's current one when the address is the same,
    /// else a new one (not yet registered: see [`Self::keep_socket`]). None when Kelpie owns no
    /// port for it.
    fn open_socket(&self, spec: &AppSpec) -> Result<Option<Arc<ListenSocket>>, String> {
        let Some(address) = spec.listen.as_ref().filter(|_| !spec.reuse_port) else {
            return Ok(None);
        };
        if let Some(socket) = self
            .sockets
            .get(&spec.name)
            .filter(|s| s.address() == address)
        {
            return Ok(Some(socket.clone()));
        }
        ListenSocket::open(address)
            .map(|socket| Some(Arc::new(socket.kept_for(&spec.name))))
            .map_err(|e| format!("app `{}`: {e}", spec.name))
    }

    /// Make `socket` the one of app `name` (or forget its socket with `None`).
    fn keep_socket(&mut self, name: &str, socket: Option<Arc<ListenSocket>>) {
        match socket {
            Some(socket) => {
                self.sockets.insert(name.to_string(), socket);
            }
            None => {
                self.sockets.remove(name);
            }
        }
    }

    /// App `name`'s view of the sockets cluster-mode Node apps' code asked for.
    fn claims_of(&self, name: &str) -> Arc<ClaimedSockets> {
        ClaimedSockets::of(name, &self.ports)
    }

    /// The socket of app `name`, if Kelpie owns one for it.
    fn socket_of(&self, name: &str) -> Option<Arc<ListenSocket>> {
        self.sockets.get(name).cloned()
    }

    fn send(&self, pm_id: u32, msg: InstanceMsg) {
        if let Some(entry) = self.apps.get(&pm_id) {
            let _ = entry.mailbox.send(msg);
        }
    }

    /// The list as shown to clients, with each instance's last reading.
    fn process_infos(&self) -> Vec<ProcessInfo> {
        let now = clock::now();
        self.apps
            .iter()
            .map(|(pm_id, entry)| {
                let paths = crate::launch::log_paths(&self.home, &entry.spec, *pm_id);
                let log_files = self.log_file_infos(&paths);
                // The inherited shell environment is never shown (it may hold secrets) and is
                // most of a spec's size: it stays in the daemon.
                let spec = AppSpec {
                    inherited_env: Default::default(),
                    ..(*entry.spec).clone()
                };
                let usage = entry
                    .usage
                    .filter(|(pid, _)| entry.state.pid == Some(*pid))
                    .map(|(_, usage)| usage)
                    .unwrap_or_default();
                ProcessInfo {
                    pm_id: *pm_id,
                    instance: entry.instance,
                    spec,
                    state: entry.state.clone(),
                    memory: usage.memory_bytes,
                    cpu: usage.cpu_percent,
                    uptime_ms: entry.state.uptime_ms(now),
                    out_log: paths.out,
                    err_log: paths.err,
                    username: self.username.clone(),
                    log_files,
                    status_text: entry.published.status_text.clone(),
                    metrics: entry.published.metrics.clone(),
                }
            })
            .collect()
    }

    /// What `/metrics` shows of each instance.
    fn instance_metrics(&self) -> Vec<InstanceMetrics> {
        self.process_infos()
            .into_iter()
            .map(|info| {
                let entry = self.apps.get(&info.pm_id);
                InstanceMetrics {
                    cpu_seconds: entry.map_or(0.0, |e| e.cpu_seconds),
                    processes: entry
                        .and_then(|e| e.usage.filter(|(pid, _)| e.state.pid == Some(*pid)))
                        .map_or(0, |(_, usage)| usage.processes),
                    health_failures: entry.map_or(0, |e| e.health_failures),
                    info,
                }
            })
            .collect()
    }

    /// Answer with the list (CPU and memory from the monitor's last readings).
    fn reply_with_list(
        &self,
        reply: oneshot::Sender<Reply>,
        wrap: impl FnOnce(Vec<ProcessInfo>) -> Response,
    ) {
        let _ = reply.send(Reply {
            response: wrap(self.process_infos()),
            written: None,
        });
    }

    fn finish(&mut self, finish: Finish, reply: oneshot::Sender<Reply>) {
        match finish {
            Finish::List => self.reply_with_list(reply, Response::Processes),
            Finish::Started(outcomes, notes, failures) => {
                self.reply_with_list(reply, move |processes| Response::Started {
                    outcomes,
                    processes,
                    notes,
                    failures,
                })
            }
            Finish::Done(message) => {
                let _ = reply.send(Reply {
                    response: Response::Done(message),
                    written: None,
                });
            }
            Finish::Reply(response) => {
                let _ = reply.send(Reply {
                    response,
                    written: None,
                });
            }
            Finish::Failed(error) => {
                let _ = reply.send(Reply {
                    response: Response::Error(error),
                    written: None,
                });
            }
            Finish::Exit(message) => {
                let (written_tx, written_rx) = oneshot::channel();
                let _ = reply.send(Reply {
                    response: Response::Done(message),
                    written: Some(written_tx),
                });
                self.exit_after(written_rx);
            }
        }
    }

    /// Exit once `written` fires (or after a short grace if the client went away).
    fn exit_after(&mut self, written: oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), written).await;
            let _ = tx.send(());
        });
        self.exit_now = Some(rx);
    }

    /// Stop every app and exit, keeping the state on disk as it is now, so the next daemon
    /// starts the same apps. Used for SIGTERM/SIGINT and `kelpie update`.
    fn begin_shutdown(&mut self, why: &str, reply: Option<oneshot::Sender<Reply>>) {
        if self.exiting {
            return;
        }
        if self.foreground.is_some() {
            crate::daemon_log!("{why}: stopping every app");
        } else {
            crate::daemon_log!("{why}: stopping every app, keeping the list");
        }
        self.persist(None);
        self.exiting = true;
        let waiters = self.shutdown_all();
        let commands = self.commands.clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            for waiter in waiters {
                let _ = waiter.await;
            }
            match reply {
                Some(reply) => {
                    let _ = commands
                        .send(Command::Finish {
                            finish: Finish::Exit(
                                "daemon stopped; the apps will start again with the next daemon"
                                    .into(),
                            ),
                            reply,
                        })
                        .await;
                }
                None => {
                    let _ = tx.send(());
                }
            }
        });
        self.exit_now = Some(rx);
    }

    /// Tell every instance task to stop its process and end.
    fn shutdown_all(&mut self) -> Vec<oneshot::Receiver<()>> {
        self.apps
            .values()
            .map(|entry| {
                let (tx, rx) = oneshot::channel();
                let _ = entry.mailbox.send(InstanceMsg::Shutdown(tx));
                rx
            })
            .collect()
    }

    /// Finish `finish` once every waiter has fired (the instances have settled) and then the
    /// settled state is on disk: when a command returns, a `kill -9` cannot undo it.
    fn finish_after(
        &mut self,
        waiters: Vec<oneshot::Receiver<()>>,
        finish: Finish,
        reply: oneshot::Sender<Reply>,
    ) {
        let commands = self.commands.clone();
        tokio::spawn(async move {
            for waiter in waiters {
                let _ = waiter.await;
            }
            let _ = commands.send(Command::Settled { finish, reply }).await;
        });
    }

    fn persist_then_finish(&mut self, finish: Finish, reply: oneshot::Sender<Reply>) {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.persist(Some(ack_tx));
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let finish = match (ack_rx.await, finish) {
                // `kill` ends the daemon whatever happens to the state (on a full disk, above
                // all): staying up would keep refusing the one command meant to stop it.
                (Ok(Err(e)), Finish::Exit(message)) => {
                    crate::daemon_log!("exiting without saving the state: {e}");
                    Finish::Exit(format!("{message} (the state could not be saved: {e})"))
                }
                (Ok(Err(e)), _) => Finish::Failed(kelpie_proto::WireError {
                    kind: kelpie_proto::ErrorKind::Internal,
                    message: format!("the change was made but could not be saved: {e}"),
                }),
                (_, finish) => finish,
            };
            let _ = commands.send(Command::Finish { finish, reply }).await;
        });
    }
}

#[cfg(test)]
mod tests;
