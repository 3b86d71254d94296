//! The supervisor actor: handles every request and every report of its instances. Its state
//! is in parts that each own theirs (and what the loop waits on for them): the app table
//! (`apps.rs`), the way to disk (`persistence.rs`), the apps' ports (`ports.rs`), their watches
//! (`watching.rs`), the settings (`conf.rs`), the actions waiting for other apps (`order.rs`),
//! the update in progress (`update.rs`), the runtime's (`foreground.rs`) and the daemon's end
//! (`exit.rs`). This file is the loop and what touches several parts at once; the requests'
//! handlers are in `handlers.rs`, `starting.rs` and `cluster.rs`.

mod apps;
mod cluster;
mod conf;
mod exit;
mod foreground;
mod handlers;
mod listing;
mod logs;
mod order;
mod orphans;
mod persistence;
mod ports;
mod signals;
mod starting;
mod startup;
mod targets;
mod update;
mod watching;

pub use startup::run;

use crate::control::{Command, Finish, Reply};
pub use foreground::{ForegroundOptions, ForegroundSetup, OutputBatch, OUTPUT_QUEUE};

use crate::instance::{self, InstanceEvent, InstanceMsg, InstanceSetup};
use crate::logs::LogService;
use crate::monitor::{Monitor, Reading};
use crate::persist::Persister;
use crate::sockets::{ClaimedSockets, ListenSocket};
use crate::DaemonError;
use apps::{Apps, Entry};
use conf::Settings;
use exit::Exit;
use kelpie_core::{AppSpec, InstanceState};
use kelpie_proto::{Home, ProcessInfo, Response};
use order::Dependencies;
use persistence::Persistence;
use ports::Ports;
use signals::{DaemonSignal, Signals};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use update::Updating;
use watching::Watches;

/// At exit, how long the log pipeline may take to write what the stopping apps printed.
const LOGS_AT_EXIT: Duration = Duration::from_secs(3);

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

/// What a supervisor is built from. `startup.rs` starts the daemon's services; the in-process
/// tests (`supervisor/tests.rs`) start theirs with fake processes and no monitor thread.
struct Setup {
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

/// Handles on what the supervisor uses and does not own: none of them is its state.
struct Services {
    home: Home,
    /// Its own channel, for the tasks it spawns to send their results back.
    commands: mpsc::Sender<Command>,
    /// Where its instances report.
    events: mpsc::UnboundedSender<InstanceEvent>,
    logs: LogService,
    monitor: Monitor,
    cgroups: crate::cgroups::Cgroups,
    web: crate::web::WebControl,
    /// Where the instances' processes run.
    host: instance::Host,
    /// What happens to the processes, for the clients following it (`Request::Events`).
    bus: crate::bus::Bus,
    /// The user the apps run as by default, for `list`.
    username: String,
}

/// An instance task to start: who it is and what it starts with.
struct NewInstance {
    pm_id: u32,
    instance: u32,
    spec: Arc<AppSpec>,
    state: InstanceState,
    socket: Option<Arc<ListenSocket>>,
    claims: Arc<ClaimedSockets>,
}

impl Services {
    /// Start an instance task; its mailbox.
    fn spawn_instance(
        &self,
        new: NewInstance,
        inherited: update::Inherited,
    ) -> mpsc::UnboundedSender<InstanceMsg> {
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
            host: self.host.clone(),
        };
        instance::spawn(setup, self.events.clone())
    }

    /// Tell the monitor which processes are the instances' now.
    fn sample(&self, apps: &Apps) {
        self.monitor.set_targets(apps.sampled());
    }
}

/// The actor: its parts, and the services it uses.
struct Supervisor {
    services: Services,
    apps: Apps,
    persistence: Persistence,
    ports: Ports,
    watches: Watches,
    settings: Settings,
    /// Actions waiting for other apps (`depends_on`).
    dependencies: Dependencies,
    /// `kelpie update` in progress.
    update: Updating,
    /// Under `kelpie runtime`: its apps' exit, output and orphans.
    foreground: Option<foreground::Foreground>,
    exit: Exit,
}

impl Supervisor {
    /// A supervisor with no app yet; its instances report on `events`, and it sends its own
    /// tasks' results to itself on `commands`.
    fn new(setup: Setup, outboxes: &Outboxes) -> Supervisor {
        let Setup {
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
        } = setup;
        let commands = outboxes.commands.clone();
        Supervisor {
            apps: Apps::default(),
            // The runtime's apps live as long as it does: nothing of them is kept on disk.
            persistence: Persistence::new(persister, foreground.is_none()),
            ports: Ports::default(),
            watches: Watches::new(home.clone(), commands.clone()),
            settings: Settings::new(home.clone(), conf, toml_logs),
            dependencies: Dependencies::default(),
            update: Updating::new(control),
            foreground,
            exit: Exit::default(),
            services: Services {
                home,
                commands,
                events: outboxes.events.clone(),
                logs,
                monitor,
                cgroups,
                web,
                host,
                bus: crate::bus::Bus::default(),
                username: kelpie_sys::username(kelpie_sys::current_uid()),
            },
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
            // Biased, events first: an instance reports its new state before it wakes the waiter
            // whose Finish then arrives on `commands`, so answers always show the settled state.
            let wake = tokio::select! {
                biased;
                Some(event) = events.recv() => Wake::Event(event),
                Some(command) = commands.recv() => Wake::Command(command),
                Some(batch) = readings.recv() => Wake::Readings(batch),
                () = self.persistence.due() => Wake::Persist,
                () = self.dependencies.deadline() => Wake::PendingDeadline,
                Some(signal) = signals.recv() => Wake::Signal(signal),
                () = self.update.look_due() => Wake::UpdateLook,
                Ok(()) = self.exit.due() => Wake::Exit,
            };
            match wake {
                Wake::Command(command) => self.on_command(command),
                Wake::Event(event) => self.on_event(event),
                Wake::Readings(batch) => self.apps.on_readings(batch),
                Wake::PendingDeadline => self.run_pending(),
                Wake::Persist => self.persistence.write(&self.apps, None),
                Wake::Signal(signal) => self.on_signal(signal),
                Wake::UpdateLook => self.update_look(&mut events, &mut signals).await,
                Wake::Exit => return Ok(()),
            }
        }
    }

    fn on_signal(&mut self, signal: DaemonSignal) {
        let why = signal.name();
        match signal {
            DaemonSignal::Term | DaemonSignal::Int
                if self.exit.exiting() && self.foreground.is_some() =>
            {
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
                let rotation = self.settings.set_toml_logs(logs);
                self.services.logs.set_defaults(rotation);
            }
            Command::UpdateChecked(result) => self.update_checked(result),
            Command::ForegroundStarted(response) => self.foreground_started(response),
            Command::WatchStarted { name, key, result } => self.watches.started(name, key, result),
            Command::FilesChanged { name, burst } => {
                self.watches.files_changed(&name, burst, &self.apps)
            }
            Command::LogSelection { targets, reply } => {
                let _ = reply.send(self.apps.log_selection(&targets, &self.services.home));
            }
            Command::Metrics { reply } => {
                let _ = reply.send(listing::instance_metrics(&self.apps, &self.services));
            }
            Command::ControlSocket(control) => {
                self.update.set_control(control);
                // The home was made anew: put the state back on disk at once.
                self.persistence.write(&self.apps, None);
            }
        }
    }

    fn on_event(&mut self, event: InstanceEvent) {
        let event = match event {
            InstanceEvent::State(report) => report,
            // Shown by `list`, never persisted: it changes as often as the app wants.
            InstanceEvent::Published { pm_id, published } => {
                if let Some(entry) = self.apps.get_mut(pm_id) {
                    entry.published = published;
                }
                return;
            }
            InstanceEvent::Message {
                pm_id,
                pid,
                message,
            } => {
                if let Some(entry) = self.apps.get(pm_id) {
                    let about = crate::bus::About::of(pm_id, &entry.spec);
                    let mut event = crate::bus::event("message", &about, &entry.state);
                    event.pid = pid;
                    event.data = Some(message);
                    self.services.bus.publish(event);
                }
                return;
            }
        };
        let Some(entry) = self.apps.get_mut(event.pm_id) else {
            // A deleted instance's process is gone: apps it depended on may now stop.
            if !event.state.status.has_process() && self.apps.left(event.pm_id) {
                self.run_pending();
            }
            return;
        };
        let new_process = entry.state.pid != event.state.pid || entry.cgroup != event.cgroup;
        // Each counted failure of a health check reports a new detail (its count in a row, or
        // the final reason); a success or a new process clears it.
        if event.state.health_detail.is_some()
            && event.state.health_detail != entry.state.health_detail
        {
            entry.health_failures += 1;
        }
        let about = crate::bus::About::of(event.pm_id, &entry.spec);
        self.services
            .bus
            .publish_changes(&about, &entry.state, &event.state);
        entry.state = event.state;
        entry.cgroup = event.cgroup;
        if new_process {
            entry.limits.reset();
        }
        let name = entry.spec.name.clone();
        let watched = !entry.spec.watch.is_empty() || self.watches.has(&name);
        if new_process {
            self.services.sample(&self.apps);
        }
        self.persistence.changed();
        if watched {
            self.watches.sync(&name, &self.apps);
        }
        self.dependencies.note_reported(event.pm_id);
        self.run_pending();
        self.check_all_ended();
    }

    /// Register instance `pm_id` and start its task (which starts no process by itself).
    fn add_entry(
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
        let mailbox = self.services.spawn_instance(new, inherited);
        self.apps
            .insert(pm_id, Entry::new(instance, spec, state, mailbox));
    }

    /// Take an instance out of the table and tell its task to stop and end.
    fn remove(&mut self, pm_id: u32) -> oneshot::Receiver<()> {
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
            self.services.sample(&self.apps);
            let _ = mailbox.send(InstanceMsg::Shutdown(tx));
            self.services.logs.forget(pm_id);
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
    fn change_specs(&mut self, ids: &[u32], edit: impl Fn(&mut AppSpec)) {
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

    /// Answer with the list (CPU and memory from the monitor's last readings).
    fn reply_with_list(
        &self,
        reply: oneshot::Sender<Reply>,
        wrap: impl FnOnce(Vec<ProcessInfo>) -> Response,
    ) {
        let _ = reply.send(Reply {
            response: wrap(listing::process_infos(&self.apps, &self.services)),
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
                self.exit.after_written(written_rx);
            }
        }
    }

    /// Stop every app and exit, keeping the state on disk as it is now, so the next daemon
    /// starts the same apps. Used for SIGTERM/SIGINT and `kelpie update`.
    fn begin_shutdown(&mut self, why: &str, reply: Option<oneshot::Sender<Reply>>) {
        if !self.exit.begin() {
            return;
        }
        if self.foreground.is_some() {
            crate::daemon_log!("{why}: stopping every app");
        } else {
            crate::daemon_log!("{why}: stopping every app, keeping the list");
        }
        self.persistence.write(&self.apps, None);
        self.persistence.keep_what_is_on_disk();
        let waiters = self.apps.shut_down_all();
        let commands = self.services.commands.clone();
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
        self.exit.when(rx);
    }

    /// Finish `finish` once every waiter has fired (the instances have settled) and then the
    /// settled state is on disk: when a command returns, a `kill -9` cannot undo it.
    fn finish_after(
        &self,
        waiters: Vec<oneshot::Receiver<()>>,
        finish: Finish,
        reply: oneshot::Sender<Reply>,
    ) {
        let commands = self.services.commands.clone();
        tokio::spawn(async move {
            for waiter in waiters {
                let _ = waiter.await;
            }
            let _ = commands.send(Command::Settled { finish, reply }).await;
        });
    }

    fn persist_then_finish(&mut self, finish: Finish, reply: oneshot::Sender<Reply>) {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.persistence.write(&self.apps, Some(ack_tx));
        let commands = self.services.commands.clone();
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
