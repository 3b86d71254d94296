//! What the task does when one of its parts wakes it: the current process exited or said
//! something, a timer fired, a stopping group may be gone, the reload's new process said
//! something, exited or is late.

use super::current::{stderr_tail, ProcessWake};
use super::launching::accepts;
use super::reload::CandidateWake;
use super::stopping::describe_status;
use super::timers::{watchdog_late, TimerWake};
use super::{Instance, InstanceEvent, Wake};
use crate::clock;
use crate::health::HealthReport;
use crate::link::ProcessSignal;
use kelpie_core::reload::GiveUp;
use kelpie_core::{Cause, Health, Input, Lifecycle, Status, Why};
use std::os::unix::process::ExitStatusExt;
use tokio::sync::oneshot;

/// How long before its exit an exception a process reported is taken as what it died of.
const EXCEPTION_BEFORE_EXIT_MS: u64 = 10_000;

impl Instance {
    /// Act on what woke the task up.
    pub(super) async fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Msg(None) => self.on_mailbox_closed().await,
            Wake::Msg(Some(msg)) => {
                if msg.starts_afresh() {
                    self.found_program = None;
                }
                self.on_message(msg).await;
            }
            Wake::Process(ProcessWake::Exited(result)) => self.on_exited(result).await,
            Wake::Process(ProcessWake::Signal(signal)) => self.on_signal(signal).await,
            Wake::Process(ProcessWake::Health(report)) => self.on_health(report).await,
            Wake::Timer(TimerWake::Machine) => self.feed(Input::TimerFired).await,
            Wake::Timer(TimerWake::Cron) => self.on_schedule().await,
            Wake::Timer(TimerWake::WatchdogLate) => {
                let why = watchdog_late(&self.given.spec);
                self.auto_restart(why, true, None).await;
            }
            Wake::GroupPoll => self.on_group_poll().await,
            Wake::Candidate(CandidateWake::Signal(signal)) => {
                self.on_candidate_signal(signal).await;
            }
            Wake::Candidate(CandidateWake::Exited(status)) => {
                let how = match status {
                    Ok(status) => describe_status(status),
                    Err(e) => format!("wait failed: {e}"),
                };
                self.give_up_reload(GiveUp::Exited(how));
            }
            Wake::Candidate(CandidateWake::Late) => self.give_up_reload(GiveUp::Late),
        }
    }

    /// The app's schedule (`cron_restart`) fired: a running process is restarted (reloaded
    /// when it shares a socket); an app that ended on its own, a periodic job, is started; one a
    /// user stopped stays stopped. The next run moved: published when nothing else did (a paused
    /// schedule publishes nothing, so no state is written at its ticks).
    async fn on_schedule(&mut self) {
        let Some(why) = self.timers.cron_fired(&self.given.spec) else {
            return;
        };
        if !self.state.status.is_down() {
            self.auto_restart(why, true, None).await;
        } else if self.state.waits_for_schedule(&self.given.spec) {
            crate::daemon_log!(
                "app `{}` (id {}): starting ({}): {}",
                self.given.spec.name,
                self.given.pm_id,
                why.cause.as_str(),
                why.detail
            );
            self.feed(Input::ScheduledStart).await;
        }
        if self.state.next_run_ms != self.next_run_ms() {
            self.publish();
        }
    }

    /// The supervisor dropped this instance (`kill` clears the table right after telling each
    /// instance to shut down): finish stopping the process first, so the daemon does not exit
    /// while the app still runs and prints.
    async fn on_mailbox_closed(&mut self) {
        self.mailbox = None;
        if !self.waiters.shutting_down() {
            let (done, _) = oneshot::channel();
            self.waiters.shut_down(done);
            self.feed(Input::Lifecycle(Lifecycle::Stop)).await;
        }
    }

    /// The current process exited: record how (with the end of its stderr, and whether the
    /// kernel killed it for memory) and let the state machine decide what comes next.
    async fn on_exited(&mut self, result: std::io::Result<std::process::ExitStatus>) {
        // What it said before it ended (an uncaught exception) comes first, for the bus and
        // the record of its exit; readiness it may have said is past.
        for said in self.current.last_words().await {
            if let ProcessSignal::Message(_) = said {
                self.on_signal(said).await;
            }
        }
        // Taken now: an immediate restart adopts the next process within `feed`.
        let died_of = self.current.take_exception();
        self.current.exited(&self.given);
        self.give_up_reload(GiveUp::OldExited);
        let pid = self.state.pid;
        // Read beside the restart rather than before it, to not delay it. The read is queued
        // first and takes microseconds, where the restart's spawn takes hundreds before the
        // old cgroup is removed; were the cgroup gone first, the machine's counter would
        // still tell.
        // Only a SIGKILL can be the kernel's OOM killer: any other end needs no look (a read of
        // /proc/vmstat per restart was a tenth of a crash loop's cost).
        let killed = matches!(&result, Ok(status) if status.signal() == Some(kelpie_sys::SIGKILL));
        let oom = match (pid, self.state.status) {
            (Some(_), Status::Online | Status::Launching) if killed => {
                let cgroup = self.current.cgroup_to_examine();
                Some(crate::tasks::blocking(move || {
                    crate::forensics::oom_evidence(cgroup.as_ref())
                }))
            }
            _ => None,
        };
        let tail = self.current.take_stderr_tail().zip(pid);
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
        let was_launching = self.state.status == Status::Launching;
        // Its stderr's last lines go in the record of its exit as late as can be (after an
        // immediate restart's spawn), so they are most often at hand before the state is
        // published: not published again for them.
        self.feed_then(input, |instance| {
            let Some((tail, pid)) = tail else {
                return;
            };
            let lines = stderr_tail(&instance.given, tail, pid, &mut instance.helpers);
            if let Some(lines) = lines.filter(|lines| !lines.is_empty()) {
                instance.state.record_stderr_tail(pid, lines);
            }
        })
        .await;
        // What it died of, if it said (a Node app's uncaught exception, just before its end).
        if let (Some(pid), Some(exception)) = (pid, died_of) {
            self.record_exception(pid, exception);
        }
        // A process that ended before it was ready answers who waited for it (`start` of an
        // app that crashes at once returns, as under PM2, rather than wait out its crash loop).
        if was_launching {
            self.waiters.settled();
        }
        self.log_exit(pid);
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

    /// The daemon log's line for an exit, as PM2's log has one for each (`kelpie logs` without
    /// a name shows them): which app, how it ended, why, and what comes next. A user's `stop`
    /// writes one line per process, where PM2 writes four.
    fn log_exit(&self, pid: Option<u32>) {
        let Some(exit) = self.state.exits.back().filter(|e| e.pid == pid) else {
            return;
        };
        let how = match (&exit.code, &exit.signal) {
            (Some(code), _) => format!("with code {code}"),
            (None, Some(signal)) => format!("via signal {signal}"),
            (None, None) => "(how is unknown)".to_string(),
        };
        crate::daemon_log!(
            "app `{}` (id {}, pid {}) exited {how} after {} ms: {} ({}); {}",
            self.given.spec.name,
            self.given.pm_id,
            pid.map_or_else(|| "?".to_string(), |p| p.to_string()),
            exit.uptime_ms,
            exit.reason,
            exit.cause.as_str(),
            exit.action
        );
    }

    /// Keep `exception` with the record of process `pid`'s exit, if it came shortly before it:
    /// an app that reports an error and goes on (`@pm2/io`'s `notifyError`) did not die of it.
    fn record_exception(&mut self, pid: u32, exception: kelpie_core::AppException) {
        let Some(exit) = self.state.exits.iter().rev().find(|e| e.pid == Some(pid)) else {
            return;
        };
        if exit.at_ms.saturating_sub(exception.at_ms) > EXCEPTION_BEFORE_EXIT_MS {
            return;
        }
        if self.state.record_exception(pid, exception) {
            self.publish();
        }
    }

    /// A stopping instance looks whether its process group (and cgroup) is empty yet.
    async fn on_group_poll(&mut self) {
        let (pgid, cgroup) = (self.current.pgid(), self.current.cgroup());
        if self.group.gone(&self.given.platform, pgid, cgroup).await {
            self.feed(Input::GroupGone).await;
        }
    }

    /// The current process said something on its link: fed the watchdog, published a status
    /// or metric, sent a message for the bus, or said it is ready.
    async fn on_signal(&mut self, signal: ProcessSignal) {
        match signal {
            ProcessSignal::Watchdog => self.timers.watchdog_fed(&self.given.spec),
            ProcessSignal::Published(line) => self.current.on_published(&self.given, &line),
            ProcessSignal::Message(message) => {
                let exception =
                    kelpie_core::AppException::from_message(&message, clock::now().wall_ms);
                if let Some(exception) = exception {
                    match (self.current.runs(), self.state.pid) {
                        (true, _) => self.current.reported_exception(exception),
                        // Read after the end it caused (both are reported at once).
                        (false, Some(pid)) => self.record_exception(pid, exception),
                        (false, None) => {}
                    }
                }
                self.given.report(InstanceEvent::Message {
                    pm_id: self.given.pm_id,
                    pid: self.state.pid,
                    message: *message,
                });
            }
            signal => {
                if accepts(&self.given.spec, self.given.shares_socket(), &signal) {
                    self.feed(Input::Ready).await;
                }
            }
        }
    }

    /// What the health check found: shown by `describe` and `list`; once it has failed
    /// `failures` times in a row, the process is restarted.
    async fn on_health(&mut self, report: HealthReport) {
        match report {
            HealthReport::Healthy => {
                self.state.health = Some(Health::Healthy);
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
                self.current.stop_health_checks();
                self.state.health = Some(Health::Unhealthy);
                let spec = &self.given.spec;
                let failures = spec.health_check.as_ref().map_or(1, |c| c.failures);
                self.state.health_detail = Some(reason.clone());
                self.publish();
                let why = Why {
                    cause: Cause::Health,
                    detail: format!("health check failed {failures} times in a row: {reason}"),
                    from_start: false,
                };
                self.auto_restart(why, true, None).await;
            }
        }
    }

    /// The reload's new process said something: what it published is kept for when it takes
    /// over, and once it is ready it replaces the current one.
    async fn on_candidate_signal(&mut self, signal: ProcessSignal) {
        match signal {
            // Only the process serving the instance speaks for it on the bus.
            ProcessSignal::Message(_) => {}
            ProcessSignal::Published(line) => self.reload.candidate_published(&line),
            signal => {
                if accepts(&self.given.spec, self.given.shares_socket(), &signal) {
                    self.promote_candidate().await;
                }
            }
        }
    }
}
