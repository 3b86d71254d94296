//! `kelpie update` and a keeper: an instance hands its process over to the next daemon's
//! program, or takes one over (with the output it printed meanwhile).

// One part of the instance task (instance/mod.rs), which shares its types and imports.
use super::*;

impl Instance {
    /// Why the instance cannot be handed over right now, if it cannot.
    pub(super) fn hand_over_refusal(&mut self) -> Option<String> {
        self.retiring.retain(|task| !task.is_finished());
        if self.candidate.is_some() {
            return Some("it is being reloaded".into());
        }
        if !self.retiring.is_empty() {
            return Some("a process it replaced is still stopping".into());
        }
        if self.shutdown_waiter.is_some() {
            return Some("it is being deleted".into());
        }
        match self.state.status {
            Status::Launching | Status::Stopping => {
                Some(format!("it is {}", self.state.status.as_str()))
            }
            Status::Online
                if self.child.is_none() || self.link.is_none() || self.pgid.is_none() =>
            {
                Some("its process is not known".into())
            }
            _ => None,
        }
    }

    /// Give the process up for `kelpie update` (see [`InstanceMsg::HandOver`]).
    pub(super) fn hand_over(&mut self) -> Result<HandedOver, String> {
        if let Some(why) = self.hand_over_refusal() {
            return Err(why);
        }
        let process = match (self.state.status, self.pgid) {
            (Status::Online, Some(pid)) => {
                let (Some(child), Some(link)) = (self.child.take(), self.link.take()) else {
                    return Err("its process is not known".into());
                };
                let link = match link.into_fds() {
                    Ok(link) => link,
                    Err(e) => {
                        // The link is gone, the process is still ours: keep supervising it.
                        self.child = Some(child);
                        return Err(format!("cannot pass on its notify socket: {e}"));
                    }
                };
                child.hand_over();
                self.health = None;
                self.kept = None;
                Some(HandedProcess {
                    pid,
                    link,
                    cgroup: self.cgroup.take().map(ProcessCgroup::hand_over),
                    pidfd: None,
                })
            }
            _ => None,
        };
        let restart_in = (self.state.status == Status::WaitingRestart)
            .then(|| {
                self.timer
                    .map(|at| at.saturating_duration_since(Instant::now()))
            })
            .flatten();
        self.timer = None;
        Ok(HandedOver {
            state: self.state.clone(),
            process,
            restart_in,
        })
    }

    /// Go on with what the previous program handed over: its process becomes this instance's
    /// (waited for through a pidfd, its link and cgroup kept), and its pipes are read again.
    pub(super) async fn resume(&mut self, process: Option<HandedProcess>, pipes: Vec<HandedPipe>) {
        let files = launch::log_paths(&self.home, &self.spec, self.pm_id).files();
        let route = self
            .logs
            .route(&self.spec, self.pm_id, self.instance, &files);
        let mut stderr = None;
        if let Some(route) = &route {
            for pipe in pipes {
                // The lines read from now on go into the record of its exit.
                let tail = (pipe.stream == LogStream::Err).then(|| {
                    let (writer, reader) = crate::logs::exit_tail();
                    stderr = Some(reader);
                    writer
                });
                self.logs.attach_handed(route.clone(), pipe, tail);
            }
        }
        let Some(process) = process else {
            return;
        };
        let pid = process.pid;
        let child = match ProcessHandle::adopted(pid, process.pidfd) {
            Ok(child) => child,
            Err(e) => {
                crate::daemon_log!(
                    "app `{}` (id {}): cannot wait for its process {pid} any more ({e}); it counts as exited",
                    self.spec.name,
                    self.pm_id
                );
                self.pgid = Some(pid);
                self.feed(Input::Exited {
                    code: None,
                    signal: Some(format!("lost when it was handed over: {e}")),
                })
                .await;
                return;
            }
        };
        let link = match ProcessLink::resume(process.link, self.link_claims()).or_else(|e| {
            crate::daemon_log!(
                "app `{}` (id {}): its notify socket could not be kept ({e}); readiness and watchdog messages are not heard",
                self.spec.name,
                self.pm_id
            );
            ProcessLink::open(None, None).map(|(link, _)| link)
        }) {
            Ok(link) => link,
            Err(e) => {
                // Nothing to supervise it with: stop it, and the state machine restarts it.
                crate::daemon_log!(
                    "app `{}` (id {}): cannot supervise process {pid} ({e}); restarting it",
                    self.spec.name,
                    self.pm_id
                );
                self.pgid = Some(pid);
                self.child = Some(child);
                self.signal_group(kelpie_sys::SIGKILL);
                return;
            }
        };
        let spec = self.spec.clone();
        let identity = tokio::task::spawn_blocking(move || launch::identity(&spec).ok().flatten())
            .await
            .ok()
            .flatten();
        let cgroup = process.cgroup.and_then(|path| self.cgroups.adopt(path));
        let kept = keep_process(self.pm_id, &child, &link, cgroup.as_ref());
        self.adopt(Launched {
            child,
            pid,
            kept,
            link,
            cgroup,
            identity,
            route,
            awaits_ready: false,
            stderr,
            published: Published::default(),
        });
        self.publish();
    }
}
