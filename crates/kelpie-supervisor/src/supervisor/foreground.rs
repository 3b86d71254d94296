//! `kelpie runtime`: the supervisor in the foreground, as a container's init.
//!
//! The same actor as the daemon's, with these differences: it starts with the apps it was given
//! (no state is restored, none is written: the apps live as long as the runtime), every line the
//! apps print is handed to the caller (who prints it on stdout/stderr), orphans are reaped
//! ([`crate::reaper`]), and it exits by itself once every app has ended for good, with a code
//! saying whether they ended well.

use super::apps::Entry;
use super::{Reply, Supervisor};
use crate::logs::hub::{LogFilter, LogLine};
use crate::logs::LogService;
use crate::reaper::Reaper;
use kelpie_core::{AppSpec, Cause, Status};
use kelpie_proto::{Request, Response, WireLogLine};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Batches of output the printer may have queued before lines are dropped (and counted): a
/// stalled stdout must not hold up the supervisor, nor grow memory without bound.
pub const OUTPUT_QUEUE: usize = 1024;

/// At exit, how long the last lines may take to reach the printer.
const OUTPUT_AT_EXIT: Duration = Duration::from_secs(2);

/// Lines the apps printed, in arrival order.
#[derive(Debug)]
pub struct OutputBatch {
    /// The lines.
    pub lines: Vec<WireLogLine>,
    /// Lines dropped just before these because the printer was too slow.
    pub skipped: u64,
}

/// How `kelpie runtime` runs.
pub struct ForegroundOptions {
    /// Also write the usual log files (the output always goes to `output`).
    pub files: bool,
    /// Where the apps' output goes (bounded: see [`OUTPUT_QUEUE`]).
    pub output: SyncSender<OutputBatch>,
}

/// What the supervisor is started with in the foreground.
pub struct ForegroundSetup {
    /// The apps to run.
    pub apps: Vec<AppSpec>,
    /// How.
    pub options: ForegroundOptions,
}

/// The foreground mode's state in the supervisor.
pub struct Foreground {
    /// The apps' start was answered: from then on, every app ended means exit.
    pub started: bool,
    /// The code to exit with.
    pub exit_code: u8,
    /// Forwards the apps' output to the printer; ends when the hub closes its follow.
    pub forwarder: Option<crate::tasks::Owned<()>>,
    /// Wakes the reaper (which reaps orphans) on every SIGCHLD; the reaper's thread ends with
    /// this task, as the runtime does.
    _sigchld: crate::tasks::Owned<()>,
}

impl Foreground {
    /// Start reaping and forwarding output (before any app starts, so no line is missed).
    pub fn start(logs: &LogService, output: SyncSender<OutputBatch>) -> std::io::Result<Self> {
        let reaper = Reaper::start()?;
        let sigchld = wake_reaper_on_sigchld(reaper)?;
        let filter = LogFilter {
            all: true,
            out: true,
            err: true,
            ..LogFilter::default()
        };
        let following = logs.lock_hub().follow(filter);
        let forwarder = crate::tasks::spawn(forward(following, output));
        Ok(Foreground {
            started: false,
            exit_code: 0,
            forwarder: Some(forwarder),
            _sigchld: sigchld,
        })
    }
}

impl Foreground {
    /// At exit: let the last lines reach the printer, and tell it there are no more.
    pub(super) async fn finish_output(&mut self, logs: &LogService) {
        let Some(forwarder) = self.forwarder.take() else {
            return;
        };
        logs.lock_hub().close_followers();
        let _ = tokio::time::timeout(OUTPUT_AT_EXIT, forwarder).await;
    }
}

/// Hand each batch of new lines to the printer, without ever waiting for it.
async fn forward(mut following: crate::logs::hub::Following, output: SyncSender<OutputBatch>) {
    let mut dropped = 0;
    while let Some(batch) = following.recv().await {
        let lines = LogLine::all_of(&batch.chunk)
            .map(|line| line.to_wire())
            .collect();
        let batch = OutputBatch {
            lines,
            skipped: batch.skipped + dropped,
        };
        match output.try_send(batch) {
            Ok(()) => dropped = 0,
            Err(TrySendError::Full(batch)) => {
                dropped = batch.skipped + batch.lines.len() as u64;
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Wake the reaper on every SIGCHLD (tokio's own child handling gets them too: several
/// listeners of one signal are each told).
fn wake_reaper_on_sigchld(reaper: Reaper) -> std::io::Result<crate::tasks::Owned<()>> {
    let mut children = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    Ok(crate::tasks::spawn(async move {
        while children.recv().await.is_some() {
            reaper.wake();
        }
    }))
}

/// Did this instance end badly? (Only asked of instances that are down.)
fn failed(entry: &Entry) -> bool {
    if entry.state.status == Status::Errored {
        return true;
    }
    entry.state.exits.back().is_some_and(|exit| {
        exit.cause == Cause::Crash
            && !exit
                .code
                .is_some_and(|code| entry.spec.stop_exit_codes.contains(&code))
    })
}

impl Supervisor {
    /// Once every app has ended and none will run again by itself (a periodic job waiting for
    /// its schedule will), exit: 0 when they all ended well (one-shot jobs), 1 when any failed.
    pub(super) fn check_all_ended(&mut self) {
        let Some(foreground) = self.foreground.as_ref() else {
            return;
        };
        if !foreground.started || self.exit.exiting() || !self.dependencies.is_empty() {
            return;
        }
        // A periodic job between two runs will run again by itself: the container stays up.
        let ended = |e: &super::apps::Entry| {
            e.state.status.is_down() && !e.state.waits_for_schedule(&e.spec)
        };
        if !self.apps.iter().all(|(_, e)| ended(e)) {
            return;
        }
        let failures: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, e)| failed(e))
            .map(|(id, e)| {
                let why = e
                    .state
                    .exits
                    .back()
                    .map_or("errored", |exit| exit.reason.as_str());
                format!("{id}|{} ({why})", e.spec.name)
            })
            .collect();
        let why = if failures.is_empty() {
            "every app has ended".to_string()
        } else {
            format!("every app has ended; these failed: {}", failures.join(", "))
        };
        if let Some(foreground) = self.foreground.as_mut() {
            foreground.exit_code = u8::from(!failures.is_empty());
        }
        self.begin_shutdown(&why, None);
    }
}

/// A second SIGTERM/SIGINT (or an app that could not start): SIGKILL every app's process group
/// now, and as pid 1 every process of the namespace. The instance tasks then see their
/// processes gone and the stop in progress completes.
pub(super) fn kill_now(apps: &super::apps::Apps) {
    for (_, entry) in apps.iter() {
        if let Some(pid) = entry.state.pid {
            let _ = kelpie_sys::kill_group(pid, kelpie_sys::SIGKILL);
        }
    }
    if std::process::id() == 1 {
        if let Err(e) = kelpie_sys::kill_all_but_self() {
            crate::daemon_log!("cannot kill every process of the namespace: {e}");
        }
    }
}

/// Start the runtime's apps as one start request from a file would; the answer comes back
/// as [`super::Back::ForegroundStarted`].
pub(super) fn start_foreground_apps(sup: &mut Supervisor, apps: Vec<AppSpec>) {
    let (reply_tx, reply_rx) = oneshot::channel();
    super::requests::handle(
        sup,
        Request::Start(kelpie_proto::StartRequest {
            apps,
            force: false,
            from_file: true,
        }),
        reply_tx,
    );
    sup.pending.spawn(async move {
        let response = match reply_rx.await {
            Ok(Reply { response, .. }) => response,
            Err(_) => Response::Done(String::new()),
        };
        super::Back::ForegroundStarted(response)
    });
}

/// The apps' start was answered: a failure ends the runtime at once, with nothing left.
pub(super) fn foreground_started(sup: &mut Supervisor, response: Response) {
    let problems: Vec<String> = match &response {
        Response::Error(e) => vec![e.message.clone()],
        Response::Started { failures, .. } => failures.clone(),
        _ => Vec::new(),
    };
    let Some(foreground) = sup.foreground.as_mut() else {
        return;
    };
    foreground.started = true;
    if problems.is_empty() {
        sup.check_all_ended();
        return;
    }
    for problem in &problems {
        crate::daemon_log!("cannot start: {problem}");
    }
    foreground.exit_code = 1;
    sup.begin_shutdown("an app could not start", None);
    kill_now(&sup.apps);
}
