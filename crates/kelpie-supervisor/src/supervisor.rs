//! The supervisor actor: handles every request and every report of its instances. Its state
//! is in parts that each own theirs (and what the loop waits on for them): the app table
//! (`apps.rs`), the way to disk (`persistence.rs`), the apps' ports (`ports.rs`), their watches
//! (`watching.rs`), the settings (`conf.rs`), the actions waiting for other apps (`order.rs`),
//! the update in progress (`update.rs`), the runtime's (`foreground.rs`), the daemon's end
//! (`exit.rs`) and what the handlers wait for (`pending.rs`). This file is the loop: what wakes
//! the actor and where each wake goes.
//!
//! A request's path: the connection (`crate::server`) sends it as a [`Command`]; the loop hands
//! it to its handler, one module per kind in `requests/`, which checks it whole (a request that
//! fails changes nothing), acts on the parts, and gives what it must wait for to `pending.rs`.
//! What that task brings back ([`Back`]) comes to the loop like any other wake: `Settled` writes
//! the state, then `Answer` replies (`finishing.rs`). What touches several parts at once: what
//! the supervisor is built from and uses, and starting an instance task (`services.rs`), the
//! instances' reports (`reports.rs`), an instance into and out of the table (`entries.rs`) and
//! the daemon stopping (`shutdown.rs`). The daemon's start-up (`crate::startup`) builds it,
//! gives it its apps (`restore.rs`), runs it and finishes it (`lifetime.rs`).

mod apps;
mod conf;
mod entries;
mod exit;
mod failure;
mod finishing;
mod foreground;
mod lifetime;
mod listing;
mod log_selection;
mod order;
mod orphans;
mod pending;
mod persistence;
mod ports;
mod recovered;
mod refusal;
mod reports;
mod requests;
mod restore;
mod services;
mod shutdown;
mod signals;
mod targets;
mod unrecorded;
mod update;
mod watching;

use crate::supervisor_channel::{Command, Finish, Reply};
pub use conf::rotation as conf_rotation;
pub use foreground::{Foreground, ForegroundSetup};
#[allow(
    unreachable_pub,
    reason = "lib.rs exports them to the CLI's `kelpie runtime`"
)]
pub use foreground::{ForegroundOptions, OutputBatch, OUTPUT_QUEUE};
pub use services::Setup;
pub use update::Resumed;

use crate::instance::InstanceEvent;
use crate::monitor::Reading;
use crate::DaemonError;
use apps::Apps;
use conf::Settings;
use exit::Exit;
use order::Dependencies;
use pending::{Back, PendingWork};
use persistence::Persistence;
use ports::Ports;
use services::{NewInstance, Services};
use signals::{DaemonSignal, Signals};
use tokio::sync::mpsc;
use update::Updating;
use watching::Watches;

/// What woke the supervisor up.
enum Wake {
    Command(Command),
    Back(Back),
    Event(InstanceEvent),
    Readings(Vec<Reading>),
    PendingDeadline,
    Persist,
    Signal(DaemonSignal),
    UpdateLook,
    TaskEnded,
    Exit,
}

/// The receiving ends of the supervisor's channels, for [`Supervisor::run`].
pub struct Inboxes {
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedReceiver<InstanceEvent>,
    readings: mpsc::UnboundedReceiver<Vec<Reading>>,
}

/// The sending ends: requests, the instances' reports, the monitor's readings.
pub struct Outboxes {
    pub commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedSender<InstanceEvent>,
    pub readings: mpsc::UnboundedSender<Vec<Reading>>,
}

/// The supervisor's channels.
pub fn channels() -> (Outboxes, Inboxes) {
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

/// The actor: its parts, and the services it uses.
pub struct Supervisor {
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
    /// What the handlers wait for, off the loop (`pending.rs`).
    pending: PendingWork,
}

impl Supervisor {
    /// A supervisor with no app yet; its instances report on `events`, and it sends its own
    /// tasks' results to itself on `commands`.
    pub fn new(setup: Setup, outboxes: &Outboxes) -> Supervisor {
        let Setup {
            home,
            persister,
            logs,
            monitor,
            cgroups,
            bus,
            alerts,
            platform,
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
            pending: PendingWork::default(),
            services: Services {
                home,
                events: outboxes.events.clone(),
                logs,
                monitor,
                cgroups,
                platform,
                bus,
                alerts,
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
            // whose answer then comes back from `pending`, so answers show the settled state.
            let wake = tokio::select! {
                biased;
                Some(event) = events.recv() => Wake::Event(event),
                // Then what the handlers waited for: answers before new requests.
                back = self.pending.next() => Wake::Back(back),
                Some(command) = commands.recv() => Wake::Command(command),
                Some(batch) = readings.recv() => Wake::Readings(batch),
                () = self.persistence.due() => Wake::Persist,
                () = self.dependencies.deadline() => Wake::PendingDeadline,
                Some(signal) = signals.recv() => Wake::Signal(signal),
                () = self.update.look_due() => Wake::UpdateLook,
                () = self.exit.due() => Wake::Exit,
                () = self.apps.task_ended() => Wake::TaskEnded,
            };
            match wake {
                Wake::Command(command) => self.on_command(command),
                Wake::Back(back) => self.on_back(back),
                Wake::Event(event) => self.on_event(event),
                Wake::Readings(batch) => self.apps.on_readings(batch),
                Wake::PendingDeadline => self.run_pending(),
                Wake::Persist => self.persistence.write(&self.apps, None),
                Wake::Signal(signal) => self.on_signal(signal),
                Wake::UpdateLook => update::update_look(self, &mut events, &mut signals).await,
                Wake::TaskEnded => {}
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
                foreground::kill_now(&self.apps);
            }
            DaemonSignal::Term | DaemonSignal::Int => self.begin_shutdown(why, None),
            DaemonSignal::Hup if self.foreground.is_some() => self.begin_shutdown(why, None),
            DaemonSignal::Hup => crate::daemon_log!("SIGHUP received; nothing to reload yet"),
            DaemonSignal::Usr2 => requests::reload_logs((&self.services, &mut self.pending), None),
            DaemonSignal::Usr1 => crate::supervisor::update::update_asked(self),
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request { request, reply } => requests::handle(self, request, reply),
            Command::WatchStarted { name, key, result } => self.watches.started(name, key, result),
            Command::FilesChanged { name, burst } => {
                self.watches.files_changed(&name, burst, &self.apps)
            }
            Command::LogSelection { targets, reply } => {
                let selection = self.apps.log_selection(&targets, &self.services.home);
                let _ = reply.send(selection.map_err(kelpie_proto::WireError::from));
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
}

impl Supervisor {
    /// What a task of the supervisor's brought back (`pending.rs`).
    fn on_back(&mut self, back: Back) {
        match back {
            Back::Settled { finish, reply } => self.persist_then_finish(finish, reply),
            Back::Answer { finish, reply } => self.finish(finish, reply),
            Back::DumpLoaded { result, reply } => requests::resurrect_loaded(self, result, reply),
            Back::UpdateChecked(result) => {
                update::update_checked((&mut self.update, &self.services), result)
            }
            Back::ForegroundStarted(response) => {
                crate::supervisor::foreground::foreground_started(self, response)
            }
            Back::SettingsRead { settings, reply } => requests::logs_settings_read(
                (&mut self.settings, &self.services, &mut self.pending),
                settings,
                reply,
            ),
            Back::AppsStopped(reply) => self.apps_stopped(reply),
            Back::Nothing => {}
        }
    }
}

// What the in-process tests (`supervisor/tests/`) name through `use super::*`.
#[cfg(test)]
use {
    crate::instance,
    crate::logs::LogService,
    crate::monitor::Monitor,
    crate::persist::Persister,
    kelpie_core::AppSpec,
    kelpie_proto::{Home, Response},
    std::sync::Arc,
    tokio::sync::oneshot,
};
#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests drive time and tasks themselves"
)]
mod tests;
