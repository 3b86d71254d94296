//! Reloads and restarts the instance decides or is asked for: a candidate process started
//! beside the current one, promoted once ready or abandoned.

// One part of the instance task (instance/mod.rs), which shares its types and imports.
use super::*;

impl Instance {
    /// Start a reload of this instance: see [`InstanceMsg::Reload`].
    pub(super) async fn begin_reload(
        &mut self,
        reply: oneshot::Sender<Result<(), String>>,
        why: Option<Why>,
    ) {
        if self.candidate.is_some() {
            let _ = reply.send(Err(
                "a reload of this instance is already in progress".into()
            ));
            return;
        }
        let reloadable = self.shares_socket() || self.spec.reuse_port;
        if !reloadable || self.state.status != Status::Online || self.child.is_none() {
            // Nothing serves a port that the new process could share: restart, as PM2 does.
            let (done, settled) = oneshot::channel();
            self.settle_waiters.push(done);
            self.feed(Input::Control(Control::Restart)).await;
            tokio::spawn(async move {
                let _ = settled.await;
                let _ = reply.send(Ok(()));
            });
            return;
        }
        match self.launch().await {
            Ok(launched) => {
                let ready_now = !launched.awaits_ready;
                self.candidate = Some(Candidate {
                    launched,
                    deadline: Instant::now() + Duration::from_millis(self.spec.listen_timeout_ms),
                    reply,
                    why,
                });
                if ready_now {
                    self.promote_candidate().await;
                }
            }
            Err(error) => {
                let _ = reply.send(Err(format!("the new process could not start: {error}")));
            }
        }
    }

    /// The reload's new process is ready: it becomes the instance's process, and the old one is
    /// stopped gracefully on the side; the reload is answered once it is gone.
    pub(super) async fn promote_candidate(&mut self) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        // The old process goes: what was asked for it is done.
        self.deferred_restart = None;
        let old = Retiring {
            host: self.host.clone(),
            child: self.child.take(),
            pgid: self.pgid,
            link: self.link.take(),
            cgroup: self.cgroup.take(),
        };
        let pid = candidate.launched.pid;
        self.adopt(candidate.launched);
        self.feed(Input::Replaced {
            pid,
            why: candidate.why,
        })
        .await;
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
    pub(super) async fn auto_restart(&mut self, why: Why, reload: bool) {
        let running = matches!(self.state.status, Status::Online | Status::Launching);
        if !running {
            return;
        }
        if self.candidate.is_some() {
            // A reload is under way: if it fails, the old process stays and this still holds.
            self.deferred_restart = Some(why);
            return;
        }
        crate::daemon_log!(
            "app `{}` (id {}): restarting ({}): {}",
            self.spec.name,
            self.pm_id,
            why.cause.as_str(),
            why.detail
        );
        let reloadable = self.shares_socket() || self.spec.reuse_port;
        if !(reload && reloadable && self.state.status == Status::Online) {
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
                let why = Why {
                    cause: fallback.cause,
                    detail: format!("{}; the reload failed ({error})", fallback.detail),
                };
                if let Some(mailbox) = myself.upgrade() {
                    let _ = mailbox.send(InstanceMsg::AutoRestart {
                        why,
                        reload: false,
                        of_pid: old_pid,
                    });
                }
            }
        });
    }

    /// The reload failed: stop its new process, keep the old one, say why.
    pub(super) fn abandon_candidate(&mut self, why: String) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        // An automatic restart asked for during the reload applies to the old process.
        if let (Some(deferred), Some(mailbox)) =
            (self.deferred_restart.take(), self.myself.upgrade())
        {
            let _ = mailbox.send(InstanceMsg::AutoRestart {
                why: deferred,
                reload: false,
                of_pid: self.state.pid,
            });
        }
        crate::daemon_log!(
            "app `{}` (id {}): reload failed: {why}; the old process keeps running",
            self.spec.name,
            self.pm_id
        );
        let message = format!(
            "{why}; it was stopped and the old process (pid {}) keeps running",
            self.state
                .pid
                .map_or_else(|| "-".to_string(), |p| p.to_string())
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
        // Answered once it is gone: until then it may still take connections.
        self.retiring.retain(|task| !task.is_finished());
        self.retiring.push(tokio::spawn(async move {
            failed.stop(&spec).await;
            let _ = reply.send(Err(message));
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
