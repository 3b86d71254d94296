//! Kelpie's notifications and exception inbox, below the supervisor: telling people that
//! something went wrong (`[[notify]]` in kelpie.toml), and keeping every uncaught exception,
//! grouped (`kelpie errors`).
//!
//! The supervisor hands what it sees ([`Observation`]: an exit and its record, an instance
//! online, an app given up on, an OOM kill found, the daemon back after a crash) to
//! [`Alerts::observe`], which only queues it: nothing here can slow the supervisor down. One
//! task turns observations into incidents (`incidents.rs`: a crash loop of 200 restarts is one
//! "crash_loop" message and one "recovered"), and each target has a task of its own
//! (`deliver.rs`) with a bounded queue, a rate limit, retries and a timeout. A target that hangs
//! costs its own queue, whose overflow is counted as dropped, and nothing else. The same task
//! feeds the inbox (`exceptions.rs`, `inbox.rs`, `traces.rs`) and writes it to the home.

// The crates below, by the names the modules use (`crate::tasks`, `crate::reaper`).
use kelpie_base::{clock, daemon_log, reaper, tasks};

mod deliver;
mod exceptions;
mod inbox;
mod incidents;
mod payload;
mod traces;
mod transport;

use kelpie_config::NotifyTarget;
use kelpie_core::ExitRecord;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub use deliver::TargetStatus;
pub use inbox::{Group, Inbox};
pub use payload::Notice;
pub use transport::DeliveryError;

/// Observations waiting for the incidents task; beyond that they are dropped and counted. The
/// channel keeps the blocks of its busiest moment: small, with small observations (the big
/// ones boxed), so that a burst costs the daemon little memory after it.
const OBSERVATIONS_QUEUE: usize = 1024;

/// What the supervisor saw, for the notifications.
#[derive(Debug, Clone)]
pub enum Observation {
    /// A process of `app` ended; its record (the cause says whether it crashed).
    Exit {
        app: String,
        pm_id: u32,
        record: Arc<ExitRecord>,
    },
    /// The record of a process's exit got its stderr tail or its OOM evidence.
    ExitDetail {
        app: String,
        pm_id: u32,
        record: Arc<ExitRecord>,
    },
    /// A process of `app` reported an exception (a Node app: `process:exception`, from the
    /// shim, `@pm2/io` or its `notifyError`).
    Exception {
        app: String,
        pm_id: u32,
        pid: Option<u32>,
        exception: Box<kelpie_core::AppException>,
    },
    /// An instance's health check failed (`healthy: false`, with what it found) or passed
    /// again.
    Health {
        app: String,
        pm_id: u32,
        healthy: bool,
        detail: Option<String>,
    },
    /// An instance of `app` runs.
    Online { app: String, pm_id: u32 },
    /// Kelpie gave up restarting an instance of `app` (`errored`).
    Errored { app: String, pm_id: u32 },
    /// A `kelpie deploy` run on this machine ended (a host at a time).
    Deploy(Box<kelpie_proto::DeployOutcome>),
    /// The daemon started again after the previous one died.
    DaemonRestart { apps: usize },
}

/// Why kelpie.toml's targets could not be read again.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is wrong: the user's to fix.
    #[error(transparent)]
    Config(#[from] kelpie_config::ConfigError),
    /// The blocking work reading it ended without a result (the daemon's end).
    #[error(transparent)]
    Interrupted(#[from] kelpie_base::tasks::Interrupted),
}

/// The handle: cheap to clone; does nothing without targets.
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Arc<Mutex<Running>>,
    /// The exception inbox, kept across a reload of the targets.
    inbox: Arc<Mutex<Inbox>>,
}

#[derive(Default)]
struct Running {
    /// The home: its kelpie.toml, and where deliveries keep their private files.
    home: Option<kelpie_proto::Home>,
    /// Where observations go; `None` without targets.
    observations: Option<mpsc::Sender<Observation>>,
    /// Each target's counters, in the order of kelpie.toml.
    targets: Vec<Arc<deliver::Counters>>,
    /// Observations dropped because the incidents task was behind.
    dropped: u64,
    /// The targets' senders, for `kelpie notify test`.
    senders: Vec<deliver::TargetSender>,
    /// The tasks: the incidents' and each target's, ended when replaced.
    tasks: Vec<crate::tasks::Owned<()>>,
}

impl Alerts {
    /// Start notifying `targets` (replacing any earlier ones): one incidents task, one task per
    /// target. `home` holds the private files a delivery needs. Call within the runtime.
    pub fn start(&self, targets: Vec<NotifyTarget>, home: &kelpie_proto::Home) {
        let mut running = self.lock();
        *running = Running {
            home: Some(home.clone()),
            ..Running::default()
        };
        if !targets.is_empty() {
            let shown: Vec<String> = targets.iter().map(NotifyTarget::shown).collect();
            crate::daemon_log!("notify: {} targets: {}", shown.len(), shown.join("; "));
        }
        let (senders, mut tasks): (Vec<deliver::TargetSender>, Vec<_>) = targets
            .into_iter()
            .map(|target| deliver::start(target, home.root().to_path_buf()))
            .unzip();
        running.targets = senders.iter().map(|s| s.counters.clone()).collect();
        let (tx, rx) = mpsc::channel(OBSERVATIONS_QUEUE);
        tasks.push(crate::tasks::spawn(incidents::run(
            rx,
            senders.clone(),
            self.inbox.clone(),
            home.exceptions_file(),
        )));
        running.tasks = tasks;
        running.observations = Some(tx);
        running.senders = senders;
    }

    /// Read the inbox kept in the home (at start, before [`Self::start`]).
    pub async fn load_inbox(&self, home: &kelpie_proto::Home) {
        let file = home.exceptions_file();
        let loaded = crate::tasks::blocking(move || Inbox::load(&file)).await;
        if let Ok(loaded) = loaded {
            *self.inbox.lock().unwrap_or_else(|p| p.into_inner()) = loaded;
        }
    }

    /// The inbox's groups (of `app`'s), the one seen last first; with `clear`, then forgotten
    /// (and the file written at once).
    pub async fn errors(&self, app: Option<&str>, clear: bool) -> (Vec<Group>, usize) {
        let (groups, cleared) = {
            let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
            let groups = inbox.list(app);
            let cleared = if clear { inbox.clear(app) } else { 0 };
            (groups, cleared)
        };
        let home = self.lock().home.clone();
        if let (true, Some(home)) = (clear, home) {
            incidents::save(&self.inbox, &home.exceptions_file()).await;
        }
        (groups, cleared)
    }

    /// Write the inbox now if it changed (the daemon's exit; otherwise every 2 s).
    pub async fn save_now(&self) {
        let home = self.lock().home.clone();
        if let Some(home) = home {
            incidents::save(&self.inbox, &home.exceptions_file()).await;
        }
    }

    /// Each app's count of each exception group, for `/metrics`: (app, group, type, count).
    pub fn exception_counts(&self) -> Vec<(String, String, String, u64)> {
        self.inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counts()
    }

    /// Whether observations are taken (once started).
    pub fn enabled(&self) -> bool {
        self.lock().observations.is_some()
    }

    /// Queue what the supervisor saw; never waits.
    pub fn observe(&self, observation: Observation) {
        let mut running = self.lock();
        let Some(tx) = &running.observations else {
            return;
        };
        if tx.try_send(observation).is_err() {
            running.dropped += 1;
        }
    }

    /// Each target as it may be shown, with its counters.
    pub fn status(&self) -> (Vec<TargetStatus>, u64) {
        let running = self.lock();
        (
            running.targets.iter().map(|c| c.status()).collect(),
            running.dropped,
        )
    }

    /// Send a test message to every target now (past their rate limits), and how each went.
    pub async fn test(&self) -> Vec<(String, Result<String, DeliveryError>)> {
        let senders = self.lock().senders.clone();
        let mut results = Vec::new();
        for sender in senders {
            let shown = sender.counters.shown.clone();
            results.push((shown, sender.test().await));
        }
        results
    }

    /// Read kelpie.toml's targets again and notify them from now on.
    pub async fn reload(&self) -> Result<usize, ReloadError> {
        let Some(home) = self.lock().home.clone() else {
            return Ok(0);
        };
        let path = home.settings_file();
        let settings =
            crate::tasks::blocking(move || kelpie_config::DaemonSettings::load(&path)).await??;
        let count = settings.notify.len();
        self.start(settings.notify, &home);
        Ok(count)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `kelpie notify` (the control socket's server answers it): the targets and their counters,
/// or, for `test`, kelpie.toml's targets read again and a test message sent to each.
pub async fn answer(
    alerts: &Alerts,
    request: kelpie_proto::NotifyRequest,
) -> kelpie_proto::Response {
    use kelpie_proto::{ErrorKind, NotifyRequest, Response, WireError};
    if let NotifyRequest::Deploy(outcome) = request {
        alerts.observe(Observation::Deploy(Box::new(outcome)));
        return Response::Done(String::new());
    }
    let mut tests = Vec::new();
    if request == NotifyRequest::Test {
        if let Err(e) = alerts.reload().await {
            return Response::Error(WireError {
                kind: ErrorKind::Invalid,
                message: e.to_string(),
            });
        }
        tests = alerts.test().await;
    }
    let (targets, dropped) = alerts.status();
    let targets: Vec<serde_json::Value> = targets
        .into_iter()
        .enumerate()
        .map(|(at, status)| {
            let mut shown = serde_json::to_value(&status).unwrap_or_default();
            if let Some((_, result)) = tests.get(at) {
                shown["test"] = match result {
                    Ok(answer) => serde_json::json!({"ok": true, "answer": answer}),
                    Err(why) => serde_json::json!({"ok": false, "error": why.to_string()}),
                };
            }
            shown
        })
        .collect();
    Response::Json(serde_json::json!({"targets": targets, "dropped": dropped}))
}

/// What a change of an instance's state means for the notifications: a new exit, more detail
/// on the last one (its stderr tail, OOM evidence), the instance online, or given up on.
pub fn observe_change(
    alerts: &Alerts,
    (app, pm_id): (&str, u32),
    old: &kelpie_core::InstanceState,
    new: &kelpie_core::InstanceState,
) {
    use kelpie_core::Status;
    // Only the exits the incidents and the inbox look at: those that end on their own or a
    // limit ended (not a stop, a reload, a schedule or a watch).
    let telling = |record: &ExitRecord| {
        use kelpie_core::Cause::{Cpu, Crash, Health, Memory, Watchdog};
        matches!(record.cause, Crash | Memory | Health | Watchdog | Cpu) || record.oom.is_some()
    };
    if let Some(record) = new.exits.back().filter(|r| telling(r)) {
        let before = old
            .exits
            .back()
            .filter(|o| o.pid == record.pid && o.at_ms == record.at_ms);
        let app = app.to_string();
        let record = record.clone();
        match before {
            None => alerts.observe(Observation::Exit { app, pm_id, record }),
            Some(before) if **before != *record => {
                alerts.observe(Observation::ExitDetail { app, pm_id, record })
            }
            Some(_) => {}
        }
    }
    let online = new.status == Status::Online;
    if online && (old.status != Status::Online || old.pid != new.pid) {
        alerts.observe(Observation::Online {
            app: app.to_string(),
            pm_id,
        });
    }
    // Failing: its first failed probe in a row (the restart comes after `failures` of them);
    // recovered: healthy again (the incidents say it only after a failure).
    use kelpie_core::Health;
    let failing = old.health_detail.is_none() && new.health_detail.is_some();
    let healthy = new.health == Some(Health::Healthy)
        && new.health_detail.is_none()
        && (old.health != Some(Health::Healthy) || old.health_detail.is_some());
    if failing || healthy {
        alerts.observe(Observation::Health {
            app: app.to_string(),
            pm_id,
            healthy: !failing,
            detail: new.health_detail.clone(),
        });
    }
    if new.status == Status::Errored && old.status != Status::Errored {
        alerts.observe(Observation::Errored {
            app: app.to_string(),
            pm_id,
        });
    }
}

/// `kelpie errors` (the control socket's server answers it): the inbox's groups.
pub async fn errors_answer(
    alerts: &Alerts,
    request: kelpie_proto::ErrorsRequest,
) -> kelpie_proto::Response {
    let (groups, cleared) = alerts.errors(request.app.as_deref(), request.clear).await;
    kelpie_proto::Response::Json(serde_json::json!({"groups": groups, "cleared": cleared}))
}
