//! From observations to incidents: what is worth a message, once.
//!
//! - A crash is one message, sent once its stderr tail is in (or after [`DETAIL_WAIT`]).
//! - [`LOOP_CRASHES`] crashes of an app within [`LOOP_WINDOW`] open a crash loop: one
//!   `crash_loop` message; the crashes after it are only counted. It ends with one `recovered`
//!   once an instance of the app has run for [`RECOVERED_AFTER`] with no crash since.
//! - Giving up (`errored`), a memory-limit restart and an OOM kill are a message each.
//!
//! [`Incidents`] is plain state fed with times, tested without a clock; [`run`] is its task.

use super::deliver::TargetSender;
pub(super) use super::exceptions::save;
use super::exceptions::Exceptions;
use super::inbox::Inbox;
use super::payload::{how_it_ended, Notice};
use super::Observation;
use kelpie_core::{Cause, ExitRecord};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Crashes within [`LOOP_WINDOW`] that make a crash loop.
pub(super) const LOOP_CRASHES: usize = 3;
/// The window of a crash loop.
pub(super) const LOOP_WINDOW: Duration = Duration::from_secs(60);
/// How long an app runs without a crash before its crash loop is over.
pub(super) const RECOVERED_AFTER: Duration = Duration::from_secs(10);
/// How long a crash's message waits for its stderr tail.
pub(super) const DETAIL_WAIT: Duration = Duration::from_millis(400);

/// One app's incidents.
#[derive(Default)]
struct AppIncidents {
    /// When its recent crashes were (ms), within [`LOOP_WINDOW`].
    crashes: VecDeque<u64>,
    /// The crash loop under way: when it began and the crashes in it.
    looping: Option<(u64, u32)>,
    /// Since when an instance has run with no crash after it (ms).
    online_since: Option<u64>,
    /// The last crash's record.
    last: Option<Arc<ExitRecord>>,
}

/// A crash message waiting for its details.
struct Waiting {
    due_ms: u64,
    notice: Notice,
}

/// Every app's incidents, the crash messages waiting for their details, and the exceptions.
#[derive(Default)]
pub(super) struct Incidents {
    apps: BTreeMap<String, AppIncidents>,
    waiting: BTreeMap<u32, Waiting>,
    /// Instances whose health check failed and was said, until it passes again.
    unhealthy: std::collections::BTreeSet<u32>,
    /// The exceptions, into the inbox.
    pub(super) exceptions: Exceptions,
}

impl Incidents {
    /// What `observation`, seen at `now_ms`, is worth saying.
    pub(super) fn observe(&mut self, observation: Observation, now_ms: u64) -> Vec<Notice> {
        match observation {
            Observation::Exit { app, pm_id, record } => {
                let mut said = self.exceptions.exit_seen(&app, pm_id, &record, now_ms);
                said.extend(self.exit(app, pm_id, record, now_ms));
                said
            }
            Observation::Exception {
                app,
                pm_id,
                pid,
                exception,
            } => self
                .exceptions
                .reported(&app, pm_id, pid, &exception, now_ms),
            Observation::ExitDetail { app, pm_id, record } => {
                let mut said = self.exceptions.exit_seen(&app, pm_id, &record, now_ms);
                if record.oom.is_some() {
                    let mut notice = Notice::new(
                        "oom",
                        Some(&app),
                        Some(pm_id),
                        format!("{app} (id {pm_id}) was killed by the kernel's OOM killer"),
                    );
                    notice.exit = Some(record.clone());
                    said.push(notice);
                }
                if let Some(waiting) = self.waiting.get_mut(&pm_id) {
                    let same = waiting
                        .notice
                        .exit
                        .as_ref()
                        .is_some_and(|e| e.pid == record.pid);
                    if same {
                        waiting.notice.exit = Some(record.clone());
                        if complete(&record) {
                            waiting.due_ms = now_ms;
                        }
                    }
                }
                said.extend(self.due(now_ms));
                said
            }
            Observation::Health {
                app,
                pm_id,
                healthy,
                detail,
            } => self.health(&app, pm_id, healthy, detail),
            Observation::Online { app, .. } => {
                // Only an app with an incident under way is followed.
                if let Some(incidents) = self.apps.get_mut(&app) {
                    incidents.online_since.get_or_insert(now_ms);
                }
                Vec::new()
            }
            Observation::Errored { app, pm_id } => {
                let incidents = self.apps.entry(app.clone()).or_default();
                let count = incidents
                    .looping
                    .map_or(incidents.crashes.len() as u32, |l| l.1);
                let mut notice = Notice::new(
                    "errored",
                    Some(&app),
                    Some(pm_id),
                    format!("{app} (id {pm_id}) is errored: Kelpie stopped restarting it"),
                );
                notice.text = format!(
                    "It crashed {count} times in a row. Start it again with `kelpie restart {app}` once it is fixed."
                );
                notice.count = Some(count);
                notice.exit = incidents.last.clone();
                vec![notice]
            }
            Observation::Deploy(outcome) => {
                let outcome = *outcome;
                outcome
                    .hosts
                    .into_iter()
                    .map(|(host, live, detail)| {
                        let (env, action) = (&outcome.env, &outcome.action);
                        let mut notice = Notice::new(
                            "deploy",
                            None,
                            None,
                            match live {
                                true => format!("{action} to {env} is live on {host}"),
                                false => format!("{action} to {env} failed on {host}"),
                            },
                        );
                        notice.text = detail;
                        notice
                    })
                    .collect()
            }
            Observation::DaemonRestart { apps } => {
                let mut notice = Notice::new(
                    "daemon_restart",
                    None,
                    None,
                    "the Kelpie daemon restarted after the previous one died".to_string(),
                );
                notice.text = format!("{apps} apps were taken over or started again.");
                vec![notice]
            }
        }
    }

    /// A health check failing (said once), then passing again (said once, after a failure).
    fn health(
        &mut self,
        app: &str,
        pm_id: u32,
        healthy: bool,
        detail: Option<String>,
    ) -> Vec<Notice> {
        let mut notice = match healthy {
            false if self.unhealthy.insert(pm_id) => Notice::new(
                "health_failed",
                Some(app),
                Some(pm_id),
                format!("{app} (id {pm_id}) fails its health check"),
            ),
            true if self.unhealthy.remove(&pm_id) => Notice::new(
                "health_recovered",
                Some(app),
                Some(pm_id),
                format!("{app} (id {pm_id}) passes its health check again"),
            ),
            _ => return Vec::new(),
        };
        notice.text = detail.unwrap_or_default();
        vec![notice]
    }

    fn exit(
        &mut self,
        app: String,
        pm_id: u32,
        record: Arc<ExitRecord>,
        now_ms: u64,
    ) -> Vec<Notice> {
        // The instance's previous crash goes as it is: its process has ended twice since.
        let mut said: Vec<Notice> = self
            .waiting
            .remove(&pm_id)
            .map(|w| w.notice)
            .into_iter()
            .collect();
        said.extend(self.incident(app, pm_id, record, now_ms));
        said
    }

    fn incident(
        &mut self,
        app: String,
        pm_id: u32,
        record: Arc<ExitRecord>,
        now_ms: u64,
    ) -> Vec<Notice> {
        match record.cause {
            Cause::Memory => {
                let mut notice = Notice::new(
                    "memory_restart",
                    Some(&app),
                    Some(pm_id),
                    format!("{app} (id {pm_id}) was restarted over its memory limit"),
                );
                notice.text = record.reason.clone();
                notice.exit = Some(record);
                return vec![notice];
            }
            Cause::Crash | Cause::Health | Cause::Watchdog | Cause::Cpu => {}
            // Ended with code 0, or by a command, a reload, a schedule, a watch: no incident.
            _ => return Vec::new(),
        }
        let incidents = self.apps.entry(app.clone()).or_default();
        incidents.online_since = None;
        incidents.last = Some(record.clone());
        incidents.crashes.push_back(now_ms);
        let window = LOOP_WINDOW.as_millis() as u64;
        while incidents
            .crashes
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) > window)
        {
            incidents.crashes.pop_front();
        }
        if let Some((_, count)) = incidents.looping.as_mut() {
            *count += 1;
            return Vec::new();
        }
        if incidents.crashes.len() >= LOOP_CRASHES {
            let count = incidents.crashes.len() as u32;
            incidents.looping = Some((now_ms, count));
            // The single crashes' messages still waiting go into this one.
            self.waiting
                .retain(|_, w| w.notice.app.as_deref() != Some(&app));
            let mut notice = Notice::new(
                "crash_loop",
                Some(&app),
                Some(pm_id),
                format!(
                    "{app} is crash-looping: {count} crashes within {} s",
                    LOOP_WINDOW.as_secs()
                ),
            );
            notice.text = format!(
                "Last: {} after {} ms ({}). Kelpie keeps restarting it and says nothing more until it recovers.",
                how_it_ended(&record),
                record.uptime_ms,
                record.reason
            );
            notice.count = Some(count);
            return self.wait_for_detail(pm_id, notice, record, now_ms);
        }
        let mut notice = Notice::new(
            "crash",
            Some(&app),
            Some(pm_id),
            match record.cause {
                Cause::Crash => format!("{app} (id {pm_id}) crashed: {}", how_it_ended(&record)),
                // Health, watchdog, CPU: Kelpie ended it.
                _ => format!("{app} (id {pm_id}) was restarted: {}", record.reason),
            },
        );
        notice.text = format!(
            "It ran {} ms; {}. Kelpie: {}.",
            record.uptime_ms, record.reason, record.action
        );
        self.wait_for_detail(pm_id, notice, record, now_ms)
    }

    /// Hold `notice` about the exit `record` until its stderr tail is in, or [`DETAIL_WAIT`].
    fn wait_for_detail(
        &mut self,
        pm_id: u32,
        mut notice: Notice,
        record: Arc<ExitRecord>,
        now_ms: u64,
    ) -> Vec<Notice> {
        let due_ms = if complete(&record) {
            now_ms
        } else {
            now_ms + DETAIL_WAIT.as_millis() as u64
        };
        notice.exit = Some(record);
        self.waiting.insert(pm_id, Waiting { due_ms, notice });
        self.due(now_ms)
    }

    /// The crash messages whose wait is over, and the crash loops that ended.
    pub(super) fn due(&mut self, now_ms: u64) -> Vec<Notice> {
        let ready: Vec<u32> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.due_ms <= now_ms)
            .map(|(pm_id, _)| *pm_id)
            .collect();
        let mut said: Vec<Notice> = ready
            .into_iter()
            .filter_map(|pm_id| self.waiting.remove(&pm_id))
            .map(|w| w.notice)
            .collect();
        said.extend(self.exceptions.due(now_ms));
        let after = RECOVERED_AFTER.as_millis() as u64;
        for (app, incidents) in &mut self.apps {
            let Some((began, count)) = incidents.looping else {
                continue;
            };
            if incidents
                .online_since
                .is_some_and(|since| now_ms.saturating_sub(since) >= after)
            {
                incidents.looping = None;
                incidents.crashes.clear();
                let mut notice = Notice::new(
                    "recovered",
                    Some(app),
                    None,
                    format!(
                        "{app} recovered: it has run for {} s without crashing",
                        after / 1000
                    ),
                );
                notice.text = format!(
                    "The crash loop lasted {} s, with {count} crashes.",
                    now_ms.saturating_sub(began) / 1000
                );
                notice.count = Some(count);
                said.push(notice);
            }
        }
        // An app with no loop and no crash within the window is followed no more.
        let window = LOOP_WINDOW.as_millis() as u64;
        self.apps.retain(|_, incidents| {
            incidents.looping.is_some()
                || incidents
                    .crashes
                    .back()
                    .is_some_and(|t| now_ms.saturating_sub(*t) <= window)
        });
        said
    }

    /// When [`Self::due`] should be asked next, if anything waits.
    fn next_due(&self) -> Option<Duration> {
        let waiting = !self.waiting.is_empty() || self.exceptions.waiting();
        if waiting || self.apps.values().any(|a| a.looping.is_some()) {
            return Some(Duration::from_millis(100));
        }
        // Apps with recent crashes only: to forget them once their window has passed.
        (!self.apps.is_empty()).then_some(Duration::from_secs(1))
    }
}

/// Whether an exit's record has every detail it may get: its stderr tail, and the exception
/// a Node app reported (read after the exit; other apps report none, and wait the whole
/// [`DETAIL_WAIT`]).
fn complete(record: &ExitRecord) -> bool {
    !record.stderr_tail.is_empty() && record.exception.is_some()
}

/// How often a changed inbox is written.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// The incidents task: observations in, notices out to every target that wants them, and the
/// inbox written to `inbox_file` when it changed (at most every [`SAVE_EVERY`]).
pub(super) async fn run(
    mut observations: mpsc::Receiver<Observation>,
    targets: Vec<TargetSender>,
    inbox: Arc<Mutex<Inbox>>,
    inbox_file: PathBuf,
) {
    let mut incidents = Incidents {
        exceptions: Exceptions::new(inbox),
        ..Incidents::default()
    };
    let mut saves = tokio::time::interval(SAVE_EVERY);
    saves.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let tick = incidents.next_due();
        let said = tokio::select! {
            observation = observations.recv() => match observation {
                Some(observation) => incidents.observe(observation, crate::clock::now().wall_ms),
                None => return,
            },
            () = sleep_or_never(tick) => incidents.due(crate::clock::now().wall_ms),
            _ = saves.tick() => {
                save(&incidents.exceptions.inbox, &inbox_file).await;
                Vec::new()
            }
        };
        for notice in said {
            for target in &targets {
                target.offer(&notice);
            }
        }
    }
}

async fn sleep_or_never(after: Option<Duration>) {
    match after {
        Some(after) => tokio::time::sleep(after).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(pid: u32) -> Arc<ExitRecord> {
        Arc::new(ExitRecord {
            code: Some(1),
            pid: Some(pid),
            cause: Cause::Crash,
            reason: "crashed".into(),
            action: "restart".into(),
            ..ExitRecord::default()
        })
    }

    fn exit(app: &str, pid: u32) -> Observation {
        Observation::Exit {
            app: app.into(),
            pm_id: 0,
            record: crash(pid),
        }
    }

    fn events(notices: &[Notice]) -> Vec<&'static str> {
        notices.iter().map(|n| n.event).collect()
    }

    /// A crash waits for its stderr tail, then goes as one message with it.
    #[test]
    fn a_crash_is_one_message_with_its_tail() {
        let mut incidents = Incidents::default();
        assert!(
            incidents.observe(exit("api", 10), 1_000).is_empty(),
            "waits for the tail"
        );
        let mut tailed = (*crash(10)).clone();
        tailed.stderr_tail = vec!["Error: boom".into()];
        tailed.exception = Some(kelpie_core::AppException {
            message: "boom".into(),
            ..kelpie_core::AppException::default()
        });
        let said = incidents.observe(
            Observation::ExitDetail {
                app: "api".into(),
                pm_id: 0,
                record: Arc::new(tailed),
            },
            1_100,
        );
        assert_eq!(events(&said), ["crash"]);
        assert_eq!(said[0].exit.as_ref().map(|e| e.stderr_tail.len()), Some(1));
        // Without a tail, the wait ends by itself.
        assert!(incidents.observe(exit("web", 11), 2_000).is_empty());
        assert_eq!(
            events(&incidents.due(2_000 + DETAIL_WAIT.as_millis() as u64)),
            ["crash"]
        );
    }

    /// 200 crashes in a loop are one `crash_loop`, then one `recovered` once it has run long
    /// enough; an instance online between crashes is not a recovery.
    #[test]
    fn a_crash_loop_is_one_message_and_one_recovered() {
        let mut incidents = Incidents::default();
        let mut said = Vec::new();
        let mut now = 0;
        for pid in 0..200 {
            now += 100;
            said.extend(incidents.observe(exit("api", pid), now));
            said.extend(incidents.observe(
                Observation::Online {
                    app: "api".into(),
                    pm_id: 0,
                },
                now + 50,
            ));
            said.extend(incidents.due(now + 60));
        }
        assert_eq!(events(&said), ["crash", "crash", "crash_loop"]);
        // Fixed: online, and no crash for RECOVERED_AFTER.
        let since = now + 50;
        assert!(incidents.due(since + 5_000).is_empty());
        let recovered = incidents.due(since + RECOVERED_AFTER.as_millis() as u64);
        assert_eq!(events(&recovered), ["recovered"]);
        assert_eq!(recovered[0].count, Some(200));
        assert!(incidents.due(since + 60_000).is_empty(), "once");
    }
}
