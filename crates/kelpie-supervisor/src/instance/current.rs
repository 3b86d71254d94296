//! The instance's current process (or the last one, once it exited): its handle, group, link,
//! cgroup, health checks, stderr tail reader and what it published. What wakes the task about
//! it: its exit, what it says on its link, what its health checks find.

use super::given::Given;
use super::launching::Launched;
use super::refusal::HandOverRefused;
use super::stopping::{ask_to_stop, Retiring};
use super::{InstanceEvent, InstanceMsg, Platform};
use crate::cgroups::ProcessCgroup;
use crate::health::{ExecContext, HealthReport};
use crate::link::{ProcessLink, ProcessSignal};
use crate::logs::TailReader;
use crate::maybe::when;
use crate::process::ProcessHandle;
use crate::update::HandedProcess;
use kelpie_core::forensics::NotifyLine;
use kelpie_core::Published;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// After a process exits, how long its stderr reader may take to reach the end of the pipe
/// before the lines read so far go into the exit's record (a process the app left running
/// outside its group and cgroup may keep the pipe open).
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// The current process, if one runs, and what is kept of the last one.
#[derive(Default)]
pub(super) struct Current {
    child: Option<ProcessHandle>,
    /// Process group of the current or last process (its leader's pid).
    pgid: Option<u32>,
    /// Its link (notify socket, Node IPC).
    link: Option<ProcessLink>,
    /// Its cgroup (the last one's until the next process starts), when the daemon uses them.
    cgroup: Option<ProcessCgroup>,
    /// The last process's cgroup is being read for evidence of an OOM kill: it stays until the
    /// next process starts.
    cgroup_examined: bool,
    /// Its health checks.
    health: Option<HealthChecks>,
    /// Its last lines of stderr, for the record of its exit.
    stderr: Option<TailReader>,
    /// What the current (or last) process published on its notify socket.
    published: Published,
    /// A bad metric line of the current process was logged (once per process).
    bad_metric_logged: bool,
    /// The last exception the current process reported, for the record of its exit.
    exception: Option<kelpie_core::AppException>,
    /// The keeper's copy of its link and a pidfd.
    kept: Option<crate::keeper::Held>,
    /// Where the last process's output went: held while the instance exists, so its files
    /// (and their dropped-line counts and errors) stay open across restarts and stops.
    route: Option<Arc<crate::logs::Route>>,
}

/// What the current process did.
pub(super) enum ProcessWake {
    /// It exited.
    Exited(std::io::Result<ExitStatus>),
    /// It said something on its link.
    Signal(ProcessSignal),
    /// Its health check said something.
    Health(HealthReport),
}

/// The health check loop of the current process; stopped when dropped.
struct HealthChecks {
    _task: crate::tasks::Owned<()>,
    reports: mpsc::UnboundedReceiver<HealthReport>,
}

impl HealthChecks {
    /// The app's health checks of `launched`, if it has some, where its processes run.
    fn start(given: &Given, launched: &Launched) -> Option<Self> {
        let check = given.spec.health_check.clone()?;
        let exec = ExecContext {
            cwd: given.spec.cwd.clone().into(),
            env: given.spec.merged_env().into_iter().collect(),
            identity: launched.identity.clone(),
        };
        let (tx, reports) = mpsc::unbounded_channel();
        let task = match &given.platform {
            Platform::System => crate::tasks::spawn(crate::health::run_checks(check, exec, tx)),
            #[cfg(test)]
            Platform::Fake(fake) => {
                let (fake, pid) = (fake.clone(), launched.pid);
                let probe_once = move || std::future::ready(fake.probe(pid));
                crate::tasks::spawn(async move {
                    crate::health::run_checks_with(&check, probe_once, tx).await;
                })
            }
        };
        Some(HealthChecks {
            _task: task,
            reports,
        })
    }
}

impl Current {
    /// Wait until the process exits, says something, or its health check does.
    pub(super) async fn wake(&mut self) -> ProcessWake {
        let health = self.health.as_mut().map(|h| &mut h.reports);
        tokio::select! {
            status = when(self.child.as_mut(), |c| c.wait()) => ProcessWake::Exited(status),
            Some(signal) = when(self.link.as_mut(), |l| l.recv()) => ProcessWake::Signal(signal),
            Some(report) = when(health, |r| r.recv()) => ProcessWake::Health(report),
        }
    }

    /// Make `launched` the current process (its group is the one stops signal).
    pub(super) fn adopt(&mut self, given: &Given, launched: Launched) {
        if let Some(path) = kelpie_core::files::pid_file(&given.spec, given.pm_id) {
            crate::pid_files::running(path, launched.pid);
        }
        self.health = HealthChecks::start(given, &launched);
        self.route = launched.route;
        self.cgroup = launched.cgroup;
        self.cgroup_examined = false;
        self.pgid = Some(launched.pid);
        self.child = Some(launched.child);
        // What its PM2 SDK says is read from its link from now on.
        given.report(InstanceEvent::Sdk {
            pm_id: given.pm_id,
            sdk: launched.link.sdk(),
        });
        self.link = Some(launched.link);
        self.kept = launched.kept;
        self.stderr = launched.stderr;
        self.bad_metric_logged = false;
        self.exception = None;
        if self.published != launched.published {
            self.published = launched.published;
            given.send_published(&self.published);
        }
    }

    /// Process `pid` was handed over but cannot be waited for: what is left of its group is
    /// what a stop or a restart deals with.
    pub(super) fn lost(&mut self, pid: u32) {
        self.pgid = Some(pid);
    }

    /// Process `pid` was handed over but cannot be supervised: killed, so that the state
    /// machine restarts it once it has exited.
    pub(super) fn kill_unsupervised(
        &mut self,
        platform: &Platform,
        pid: u32,
        child: ProcessHandle,
    ) {
        self.pgid = Some(pid);
        self.child = Some(child);
        platform.kill_group(pid, kelpie_sys::SIGKILL);
    }

    /// A process runs (the task can wait on it).
    pub(super) fn runs(&self) -> bool {
        self.child.is_some()
    }

    /// Its process group, if it had one.
    pub(super) fn pgid(&self) -> Option<u32> {
        self.pgid
    }

    /// Its cgroup, if it has one.
    pub(super) fn cgroup(&self) -> Option<&kelpie_sys::cgroup::Cgroup> {
        self.cgroup.as_ref().map(ProcessCgroup::cgroup)
    }

    /// The last process's cgroup, to read for evidence of an OOM kill: kept until the next
    /// process starts (not removed when what is left of it is killed).
    pub(super) fn cgroup_to_examine(&mut self) -> Option<kelpie_sys::cgroup::Cgroup> {
        self.cgroup_examined = true;
        self.cgroup().cloned()
    }

    /// Where its cgroup is, for the monitor.
    pub(super) fn cgroup_path(&self) -> Option<std::path::PathBuf> {
        self.cgroup().map(|c| c.path().to_path_buf())
    }

    /// The process exited: its handle, the keeper's copy and its health checks go. Its
    /// metrics are live values of a running process and go too (said to the supervisor); its
    /// status text stays until the next process starts.
    pub(super) fn exited(&mut self, given: &Given) {
        // The group's leader is the process that ran (see `adopt`).
        if let (Some(path), Some(pid), true) = (
            kelpie_core::files::pid_file(&given.spec, given.pm_id),
            self.pgid,
            self.child.is_some(),
        ) {
            crate::pid_files::ended(path, pid);
        }
        self.child = None;
        self.kept = None;
        self.health = None;
        if !self.published.metrics.is_empty() {
            self.published.metrics.clear();
            given.send_published(&self.published);
        }
        // As PM2: its SDK's metrics and actions go with it, its options stay.
        if let Some(link) = &self.link {
            if let Ok(mut sdk) = link.sdk().lock() {
                sdk.process_ended();
            }
        }
    }

    /// What the process that exited said last on its link and was not received yet.
    pub(super) async fn last_words(&mut self) -> Vec<ProcessSignal> {
        match self.link.as_mut() {
            Some(link) => link.last_words().await,
            None => Vec::new(),
        }
    }

    /// The process reported an exception: kept for the record of its exit, if it ends of it.
    pub(super) fn reported_exception(&mut self, exception: kelpie_core::AppException) {
        self.exception = Some(exception);
    }

    /// The exception the process reported last, taken (once it exited).
    pub(super) fn take_exception(&mut self) -> Option<kelpie_core::AppException> {
        self.exception.take()
    }

    /// Its health checks found it unhealthy: they stop (the process is restarted).
    pub(super) fn stop_health_checks(&mut self) {
        self.health = None;
    }

    /// The reader of the last lines the process that just exited wrote to stderr, for the
    /// record of its exit (see [`stderr_tail`]).
    pub(super) fn take_stderr_tail(&mut self) -> Option<TailReader> {
        self.stderr.take()
    }

    /// What it published (`STATUS=`, a metric): kept and shown by `list`.
    pub(super) fn on_published(&mut self, given: &Given, line: &NotifyLine) {
        match self.published.apply(line) {
            Ok(true) => given.send_published(&self.published),
            Ok(false) => {}
            Err(why) if !self.bad_metric_logged => {
                self.bad_metric_logged = true;
                crate::daemon_log!(
                    "app `{}` (id {}): {why} (said once per process)",
                    given.spec.name,
                    given.pm_id
                );
            }
            Err(_) => {}
        }
    }

    /// Send it a JSON message over its Node IPC channel: `None` when no process runs, else
    /// whether it has a channel that took it.
    pub(super) fn send_message(&self, message: &serde_json::Value) -> Option<bool> {
        self.child.as_ref()?;
        Some(self.link.as_ref().is_some_and(|l| l.send_message(message)))
    }

    /// The polite part of a stop (see [`ask_to_stop`]).
    pub(super) fn ask_to_stop(&self, given: &Given) {
        if let Some(pgid) = self.pgid {
            let link = self.link.as_ref();
            ask_to_stop(
                &given.platform,
                &given.spec,
                pgid,
                link,
                self.cgroup.as_ref(),
            );
        }
    }

    /// SIGKILL to its group, and to what left the group (setsid) but is still in its cgroup.
    /// Once the process exited, its cgroup is let go at once if nothing is left in it (a crash
    /// loop's usual case): there is nothing to kill there then, and its release was due anyway
    /// (the kill's write cost a crash loop a thirtieth of its CPU). It is kept as a spare for
    /// the next process then (see `cgroups.rs`).
    pub(super) fn kill(&mut self, platform: &Platform) {
        if let Some(pgid) = self.pgid {
            platform.kill_group(pgid, kelpie_sys::SIGKILL);
        }
        let emptied = self.child.is_none()
            && !self.cgroup_examined
            && self
                .cgroup
                .as_mut()
                .is_some_and(ProcessCgroup::release_if_empty);
        if let (false, Some(cgroup)) = (emptied, self.cgroup()) {
            cgroup.kill();
        }
    }

    /// It is replaced (a reload's new process is ready): what is needed to stop it apart.
    pub(super) fn retire(&mut self, platform: &Platform) -> Retiring {
        Retiring {
            platform: platform.clone(),
            child: self.child.take(),
            pgid: self.pgid,
            link: self.link.take(),
            cgroup: self.cgroup.take(),
        }
    }

    /// Why it cannot be handed over (`kelpie update`) while online, if it cannot.
    pub(super) fn hand_over_refusal(&self) -> Option<HandOverRefused> {
        let known = self.child.is_some() && self.link.is_some() && self.pgid.is_some();
        (!known).then_some(HandOverRefused::Unknown)
    }

    /// Give the running process up for `kelpie update`: the task stops supervising it. Its
    /// link is passed on as file descriptors; if that fails it stays the task's.
    pub(super) fn hand_over(&mut self) -> Result<HandedProcess, HandOverRefused> {
        if let Some(why) = self.hand_over_refusal() {
            return Err(why);
        }
        let (Some(pid), Some(child), Some(link)) = (self.pgid, self.child.take(), self.link.take())
        else {
            return Err(HandOverRefused::Unknown);
        };
        let link = match link.into_fds() {
            Ok(link) => link,
            Err(e) => {
                // The link is gone, the process is still ours: keep supervising it.
                self.child = Some(child);
                return Err(HandOverRefused::Link(e));
            }
        };
        child.hand_over();
        self.health = None;
        self.kept = None;
        Ok(HandedProcess {
            pid,
            link,
            cgroup: self.cgroup.take().map(ProcessCgroup::hand_over),
            pidfd: None,
        })
    }
}

/// The last lines process `pid` (which just exited) wrote to stderr, for the record of its exit:
/// now if its reader has read the pipe to the end already (a crash loop's usual case, once the
/// next process is spawned: the pipe ends as the process does), so they go in the record before
/// it is published. Else they go in once the reader is done, or after [`STDERR_DRAIN`] (the task
/// mails them to itself), waited for apart so that nothing waits for them.
pub(super) fn stderr_tail(
    given: &Given,
    tail: TailReader,
    pid: u32,
    helpers: &mut crate::tasks::Helpers,
) -> Option<Vec<String>> {
    let tail = match tail.finished() {
        Ok(lines) => return Some(lines),
        Err(tail) => tail,
    };
    let myself = given.myself();
    helpers.spawn(async move {
        let lines = tail.finish(STDERR_DRAIN).await;
        if let Some(mailbox) = myself.upgrade() {
            let lines = lines.into_boxed_slice();
            let _ = mailbox.send(InstanceMsg::StderrTail { pid, lines });
        }
    });
    None
}
