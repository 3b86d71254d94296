//! Reloads and restarts the instance decides or is asked for: a candidate process started
//! beside the current one, promoted once ready or abandoned.

// One part of the instance task (instance/mod.rs), which shares its types and imports.
use super::*;
use kelpie_core::reload::{self, AutoRestartPlan, GiveUp, ReloadPlan, Serving};

impl Instance {
    /// What the reload decisions need to know of the current process.
    pub(super) fn serving(&self) -> Serving {
        Serving {
            status: self.state.status,
            pid: self.state.pid,
            has_process: self.child.is_some(),
            reloadable: self.shares_socket() || self.spec.reuse_port,
        }
    }

    /// Start a reload of this instance: see [`InstanceMsg::Reload`].
    pub(super) async fn begin_reload(
        &mut self,
        reply: oneshot::Sender<Result<(), String>>,
        why: Option<Why>,
    ) {
        let ready_within_ms = match self.reload.ask(&self.spec, self.serving(), why) {
            ReloadPlan::Refuse(error) => {
                let _ = reply.send(Err(error));
                return;
            }
            ReloadPlan::Restart => {
                let (done, settled) = oneshot::channel();
                self.settle_waiters.push(done);
                self.feed(Input::Control(Control::Restart)).await;
                tokio::spawn(async move {
                    let _ = settled.await;
                    let _ = reply.send(Ok(()));
                });
                return;
            }
            ReloadPlan::StartCandidate { ready_within_ms } => ready_within_ms,
        };
        match self.launch().await {
            Ok(launched) => {
                let ready_now = !launched.awaits_ready;
                self.candidate = Some(Candidate {
                    launched,
                    deadline: Instant::now() + Duration::from_millis(ready_within_ms),
                    reply,
                });
                if ready_now {
                    self.promote_candidate().await;
                }
            }
            Err(error) => {
                let _ = reply.send(Err(self.reload.launch_failed(&error)));
            }
        }
    }

    /// The reload's new process is ready: it becomes the instance's process, and the old one is
    /// stopped gracefully on the side; the reload is answered once it is gone.
    pub(super) async fn promote_candidate(&mut self) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        let pid = candidate.launched.pid;
        let Some(replaced) = self.reload.promoted(pid) else {
            return;
        };
        let old = Retiring {
            host: self.host.clone(),
            child: self.child.take(),
            pgid: self.pgid,
            link: self.link.take(),
            cgroup: self.cgroup.take(),
        };
        self.adopt(candidate.launched);
        self.feed(replaced).await;
        let spec = self.spec.clone();
        let reply = candidate.reply;
        self.retiring.retain(|task| !task.is_finished());
        self.retiring.push(tokio::spawn(async move {
            old.stop(&spec).await;
            let _ = reply.send(Ok(()));
        }));
    }

    /// Restart the process because of `why` (see [`InstanceMsg::AutoRestart`]). An automatic
    /// reload whose new process fails falls back to a restart: the limit or the failed check
    /// still holds for the old process.
    pub(super) async fn auto_restart(&mut self, why: Why, reload: bool, of_pid: Option<u32>) {
        let (why, reloading) = match self
            .reload
            .auto_restart(self.serving(), why, reload, of_pid)
        {
            AutoRestartPlan::Ignore | AutoRestartPlan::Defer => return,
            AutoRestartPlan::Reload(why) => (why, true),
            AutoRestartPlan::Restart(why) => (why, false),
        };
        crate::daemon_log!(
            "app `{}` (id {}): restarting ({}): {}",
            self.spec.name,
            self.pm_id,
            why.cause.as_str(),
            why.detail
        );
        if !reloading {
            self.feed(Input::AutoRestart(why)).await;
            return;
        }
        let (reply, outcome) = oneshot::channel();
        let myself = self.myself.clone();
        let fallback = why.clone();
        // Restarted only if the old process is still the current one by then (a user's
        // restart or a crash meanwhile already replaced it).
        let old_pid = self.state.pid;
        self.begin_reload(reply, Some(why)).await;
        tokio::spawn(async move {
            if let Ok(Err(error)) = outcome.await {
                if let Some(mailbox) = myself.upgrade() {
                    let _ = mailbox.send(InstanceMsg::AutoRestart {
                        why: reload::after_failed_reload(fallback, &error),
                        reload: false,
                        of_pid: old_pid,
                    });
                }
            }
        });
    }

    /// The reload failed: stop its new process, keep the old one, say why.
    pub(super) fn abandon_candidate(&mut self, reason: GiveUp) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        let Some(abandoned) = self.reload.give_up(&self.spec, reason, self.state.pid) else {
            return;
        };
        if let (Some(restart), Some(mailbox)) = (abandoned.restart, self.myself.upgrade()) {
            let _ = mailbox.send(InstanceMsg::AutoRestart {
                why: restart,
                reload: false,
                of_pid: self.state.pid,
            });
        }
        crate::daemon_log!(
            "app `{}` (id {}): reload failed: {}; the old process keeps running",
            self.spec.name,
            self.pm_id,
            abandoned.why
        );
        let failed = Retiring {
            host: self.host.clone(),
            pgid: Some(candidate.launched.pid),
            child: Some(candidate.launched.child),
            link: Some(candidate.launched.link),
            cgroup: candidate.launched.cgroup,
        };
        let spec = self.spec.clone();
        let reply = candidate.reply;
        let answer = abandoned.answer;
        // Answered once it is gone: until then it may still take connections.
        self.retiring.retain(|task| !task.is_finished());
        self.retiring.push(tokio::spawn(async move {
            failed.stop(&spec).await;
            let _ = reply.send(Err(answer));
        }));
    }

    pub(super) fn cancel_pending_restart(&mut self) {
        self.timer = None;
        if self.state.status == Status::WaitingRestart {
            self.state
                .handle(&self.spec, Input::Control(Control::Stop), clock::now());
        }
    }
}
