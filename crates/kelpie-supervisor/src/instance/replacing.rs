//! Giving the instance a process: starting one ([`kelpie_core::Effect::Spawn`]), taking over a
//! handed-over one, and replacing it by a reload or an automatic restart, as
//! `kelpie_core::reload` decides.

use super::handover::{self, Resumed};
use super::launching::{self, Launched};
use super::refusal::ReloadFailed;
use super::reload::ReloadReply;
use super::{Instance, InstanceMsg};
use crate::logs::HandedPipe;
use crate::update::HandedProcess;
use kelpie_core::reload::{self, AutoRestartPlan, GiveUp, ReloadPlan, Serving};
use kelpie_core::{Input, Lifecycle, Why};
use tokio::sync::oneshot;

impl Instance {
    /// Start the instance's process and make it the current one.
    pub(super) async fn spawn_process(&mut self) -> Input {
        if self.waiters.shutting_down() {
            return Input::SpawnFailed {
                error: "the app is being deleted".into(),
            };
        }
        match launching::launch(&self.given, &mut self.found_program).await {
            Ok(launched) => {
                let pid = launched.pid;
                log_start(&self.given, pid, "");
                let awaits_ready = launched.awaits_ready;
                self.adopt(launched);
                if awaits_ready {
                    Input::Started { pid }
                } else {
                    Input::Spawned { pid }
                }
            }
            // The state machine keeps only its text, which is what the client shows.
            Err(error) => Input::SpawnFailed {
                error: error.to_string(),
            },
        }
    }

    /// Make `launched` the instance's process.
    fn adopt(&mut self, launched: Launched) {
        // The watchdog is armed by the process's first WATCHDOG=1.
        self.timers.new_process();
        self.current.adopt(&self.given, launched);
    }

    /// Go on with what the previous program handed over (see [`handover::resume`]).
    pub(super) async fn resume(&mut self, process: Option<HandedProcess>, pipes: Vec<HandedPipe>) {
        match handover::resume(&self.given, process, pipes).await {
            Resumed::Nothing => {}
            Resumed::Process(launched) => {
                self.adopt(*launched);
                self.publish();
            }
            Resumed::Lost { pid, error } => {
                self.current.lost(pid);
                let exited = Input::Exited {
                    code: None,
                    signal: Some(error),
                };
                self.feed(exited).await;
            }
            Resumed::Unsupervised { pid, child } => {
                self.current
                    .kill_unsupervised(&self.given.platform, pid, child);
            }
        }
    }

    /// What the reload decisions need to know of the current process.
    fn serving(&self) -> Serving {
        Serving {
            status: self.state.status,
            pid: self.state.pid,
            has_process: self.current.runs(),
            reloadable: self.given.reloadable(),
        }
    }

    /// Start a reload of this instance: see [`InstanceMsg::Reload`].
    pub(super) async fn begin_reload(&mut self, reply: ReloadReply, why: Option<Why>) {
        let serving = self.serving();
        let ready_within_ms = match self.reload.ask(&self.given.spec, serving, why) {
            ReloadPlan::Refuse(error) => {
                let _ = reply.send(Err(ReloadFailed(error)));
                return;
            }
            ReloadPlan::Restart => {
                let (done, settled) = oneshot::channel();
                self.waiters.on_settled(done);
                self.feed(Input::Lifecycle(Lifecycle::Restart)).await;
                self.helpers.spawn(async move {
                    let _ = settled.await;
                    let _ = reply.send(Ok(()));
                });
                return;
            }
            ReloadPlan::StartCandidate { ready_within_ms } => ready_within_ms,
        };
        match launching::launch(&self.given, &mut self.found_program).await {
            Ok(launched) => {
                log_start(&self.given, launched.pid, " for a reload");
                let ready_now = !launched.awaits_ready;
                self.reload.started(launched, reply, ready_within_ms);
                if ready_now {
                    self.promote_candidate().await;
                }
            }
            Err(error) => self.reload.launch_failed(reply, &error.to_string()),
        }
    }

    /// The reload's new process is ready: it becomes the instance's process, and the old one is
    /// stopped gracefully on the side; the reload is answered once it is gone.
    pub(super) async fn promote_candidate(&mut self) {
        let Some(promoted) = self.reload.promote() else {
            return;
        };
        let old = self.current.retire(&self.given.platform);
        self.adopt(promoted.launched);
        self.feed(promoted.replaced).await;
        self.reload
            .retire(old, &self.given.spec, promoted.reply, Ok(()));
    }

    /// The reload in progress, if one is, fails because of `reason`; the old process stays.
    pub(super) fn give_up_reload(&mut self, reason: GiveUp) {
        self.reload.give_up(&self.given, reason, self.state.pid);
    }

    /// Restart the process because of `why` (see [`InstanceMsg::AutoRestart`]). An automatic
    /// reload whose new process fails falls back to a restart: the limit or the failed check
    /// still holds for the old process.
    pub(super) async fn auto_restart(&mut self, why: Why, reload: bool, of_pid: Option<u32>) {
        let serving = self.serving();
        let (why, reloading) = match self.reload.auto_restart(serving, why, reload, of_pid) {
            AutoRestartPlan::Ignore | AutoRestartPlan::Defer => return,
            AutoRestartPlan::Reload(why) => (why, true),
            AutoRestartPlan::Restart(why) => (why, false),
        };
        crate::daemon_log!(
            "app `{}` (id {}): restarting ({}): {}",
            self.given.spec.name,
            self.given.pm_id,
            why.cause.as_str(),
            why.detail
        );
        if !reloading {
            self.feed(Input::AutoRestart(why)).await;
            return;
        }
        let (reply, outcome) = oneshot::channel();
        let myself = self.given.myself();
        let fallback = why.clone();
        // Restarted only if the old process is still the current one by then (a user's
        // restart or a crash meanwhile already replaced it).
        let old_pid = self.state.pid;
        self.begin_reload(reply, Some(why)).await;
        self.helpers.spawn(async move {
            if let Ok(Err(error)) = outcome.await {
                if let Some(mailbox) = myself.upgrade() {
                    let _ = mailbox.send(InstanceMsg::AutoRestart {
                        why: Box::new(reload::after_failed_reload(fallback, &error.0)),
                        reload: false,
                        of_pid: old_pid,
                    });
                }
            }
        });
    }
}

/// The daemon log's line for a process started, as PM2's log has one for each start (`kelpie
/// logs` without a name shows them). One line per start: an app in a crash loop writes two
/// per restart with its exit's, where PM2 writes three.
fn log_start(given: &super::given::Given, pid: u32, why: &str) {
    crate::daemon_log!(
        "app `{}` (id {}): started in {} mode{why} (pid {pid})",
        given.spec.name,
        given.pm_id,
        given.spec.exec_mode.pm2_name().trim_end_matches("_mode"),
    );
}
