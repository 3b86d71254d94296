//! Starting the instance's process: its pipes, link, cgroup and identity, and what it
//! publishes on its notify socket once it runs.

// One part of the instance task (instance/mod.rs), which shares its types and imports.
use super::*;

impl Instance {
    /// Start the instance's process and make it the current one.
    pub(super) async fn spawn_process(&mut self) -> Input {
        if self.shutdown_waiter.is_some() {
            return Input::SpawnFailed {
                error: "the app is being deleted".into(),
            };
        }
        match self.launch().await {
            Ok(launched) => {
                let pid = launched.pid;
                let awaits_ready = launched.awaits_ready;
                self.adopt(launched);
                if awaits_ready {
                    Input::Started { pid }
                } else {
                    Input::Spawned { pid }
                }
            }
            Err(error) => Input::SpawnFailed { error },
        }
    }

    /// Make `launched` the instance's process (its group is the one stops signal).
    pub(super) fn adopt(&mut self, launched: Launched) {
        // The watchdog is armed by the process's first WATCHDOG=1.
        self.watchdog_at = None;
        self.health = self.spec.health_check.clone().map(|check| {
            let exec = ExecContext {
                cwd: self.spec.cwd.clone().into(),
                env: self.spec.merged_env().into_iter().collect(),
                identity: launched.identity.clone(),
            };
            let (tx, reports) = mpsc::unbounded_channel();
            let task = match &self.host {
                Host::System => tokio::spawn(crate::health::run_checks(check, exec, tx)),
                #[cfg(test)]
                Host::Fake(fake) => {
                    let (fake, pid) = (fake.clone(), launched.pid);
                    let probe_once = move || std::future::ready(fake.probe(pid));
                    tokio::spawn(async move {
                        crate::health::run_checks_with(&check, probe_once, tx).await;
                    })
                }
            };
            HealthChecks { task, reports }
        });
        // Held while the instance exists, so its files (and their dropped-line counts and
        // errors) stay open across restarts and stops.
        self.route = launched.route;
        self.cgroup = launched.cgroup;
        self.pgid = Some(launched.pid);
        self.child = Some(launched.child);
        self.link = Some(launched.link);
        self.kept = launched.kept;
        self.stderr = launched.stderr;
        self.bad_metric_logged = false;
        if self.published != launched.published {
            self.published = launched.published;
            self.send_published();
        }
    }

    /// What the current process published (`STATUS=`, a metric): kept and shown by `list`.
    pub(super) fn on_published(&mut self, line: &NotifyLine) {
        match self.published.apply(line) {
            Ok(true) => self.send_published(),
            Ok(false) => {}
            Err(why) if !self.bad_metric_logged => {
                self.bad_metric_logged = true;
                crate::daemon_log!(
                    "app `{}` (id {}): {why} (said once per process)",
                    self.spec.name,
                    self.pm_id
                );
            }
            Err(_) => {}
        }
    }

    pub(super) fn send_published(&self) {
        let _ = self.events.send(InstanceEvent::Published {
            pm_id: self.pm_id,
            published: self.published.clone(),
        });
    }

    /// Once the stderr reader of process `pid` (which just exited) has read its pipe to the
    /// end, or after [`STDERR_DRAIN`], its last lines go into the record of its exit. Waited
    /// for apart, so the restart is not delayed.
    pub(super) fn collect_stderr_tail(&mut self, pid: Option<u32>) {
        let (Some(tail), Some(pid)) = (self.stderr.take(), pid) else {
            return;
        };
        let myself = self.myself.clone();
        tokio::spawn(async move {
            let lines = tail.finish(STDERR_DRAIN).await;
            if let Some(mailbox) = myself.upgrade() {
                let _ = mailbox.send(InstanceMsg::StderrTail { pid, lines });
            }
        });
    }

    /// Start a process of the instance, where its processes run.
    pub(super) async fn launch(&mut self) -> Result<Launched, String> {
        match &self.host {
            Host::System => self.launch_on_system().await,
            #[cfg(test)]
            Host::Fake(fake) => {
                let awaits_ready = awaits_ready(&self.spec, self.shares_socket());
                fake.clone().launch(awaits_ready)
            }
        }
    }

    /// Start a real process. The fork/exec runs on the blocking pool: it blocks its thread
    /// until the child has exec'd, and doing it there lets several instances start in parallel
    /// (200 apps start in about half the time on two cores) without stalling the supervisor.
    async fn launch_on_system(&mut self) -> Result<Launched, String> {
        let files = launch::log_paths(&self.home, &self.spec, self.pm_id).files();
        let route = self
            .logs
            .route(&self.spec, self.pm_id, self.instance, &files);
        let (pipes, readers) = match route.as_ref().map(|_| output_pipes()).transpose() {
            Ok(Some((pipes, readers))) => (Some(pipes), Some(readers)),
            Ok(None) => (None, None),
            Err(e) => return Err(format!("cannot create the output pipes: {e}")),
        };
        let node = self.spec.runs_on_node();
        let ipc_fd = node.then_some(if self.socket.is_some() {
            launch::LISTEN_FD + 1
        } else {
            launch::LISTEN_FD
        });
        let (mut link, ends) = ProcessLink::open(ipc_fd, self.link_claims())
            .map_err(|e| format!("cannot create its notify socket: {e}"))?;
        // The command is built and spawned on the blocking pool (finding the program in PATH
        // reads directories). Its pipes' write ends and the child's ends of the link are
        // dropped there right after the spawn, so the reader sees end-of-file when the app's
        // processes exit; the socket's Arc keeps it open until then.
        let spec = self.spec.clone();
        let home = self.home.clone();
        let (pm_id, instance) = (self.pm_id, self.instance);
        let socket = self.socket.clone();
        let cgroups = self.cgroups.clone();
        let (spawned, cgroup, identity) = tokio::task::spawn_blocking(move || {
            let who = InstanceIdentity {
                home: &home,
                pm_id,
                instance,
            };
            // Its own cgroup (a directory to create: blocking too), joined before it execs.
            let cgroup = cgroups.for_process(pm_id, spec.max_processes);
            let (cgroup_dir, cgroup_procs) = cgroup
                .as_ref()
                .map(ProcessCgroup::placement)
                .unwrap_or_default();
            let extras = Extras {
                socket: socket.as_deref(),
                env: ends.env,
                fds: ends
                    .fds
                    .iter()
                    .map(|(fd, at)| (fd.as_raw_fd(), *at))
                    .collect(),
                cgroup_dir,
                cgroup_procs,
            };
            // Recorded as ours before anyone can reap it: under `kelpie runtime` the orphan
            // reaper must leave this child's exit status to its wait below.
            let spawning = crate::reaper::spawning();
            let spawned = launch::command(&spec, &who, pipes, extras).and_then(|c| c.spawn());
            spawning.record(spawned.as_ref().ok().map(|c| c.pid));
            drop(ends.fds);
            // Read here (/etc/passwd) rather than on the async thread; it was just used.
            let identity = launch::identity(&spec).ok().flatten();
            (spawned, cgroup, identity)
        })
        .await
        .unwrap_or_else(|e| (Err(std::io::Error::other(e.to_string())), None, None));
        let spawned = spawned.map_err(|e| format!("{}: {e}", self.spec.command_line()[0]))?;
        let pid = spawned.pid;
        // Registering the pidfd only fails if the runtime is shutting down.
        let child = ProcessHandle::spawned(spawned)
            .map_err(|e| format!("cannot wait for process {pid}: {e}"))?;
        let mut stderr = None;
        if let (Some(route), Some((out, err))) = (route.clone(), readers) {
            let watch = |stream| {
                self.ready_pattern()
                    .map(|pattern| LineWatch {
                        pattern,
                        matched: link.sender(),
                    })
                    .filter(|_| stream == LogStream::Out || stream == LogStream::Err)
            };
            let (tail, reader) = crate::logs::exit_tail();
            stderr = Some(reader);
            self.logs.attach(
                route.clone(),
                LogStream::Out,
                out,
                watch(LogStream::Out),
                None,
            );
            self.logs.attach(
                route,
                LogStream::Err,
                err,
                watch(LogStream::Err),
                Some(tail),
            );
        }
        if let (true, Some(port)) = (self.spec.reuse_port, self.reuse_port_number()) {
            link.hold(tokio::spawn(crate::readiness::watch_port(
                pid,
                port,
                link.sender(),
            )));
        }
        let kept = keep_process(self.pm_id, &child, &link, cgroup.as_ref());
        Ok(Launched {
            child,
            pid,
            kept,
            link,
            cgroup,
            identity,
            route,
            awaits_ready: awaits_ready(&self.spec, self.shares_socket()),
            stderr,
            published: Published::default(),
        })
    }

    /// What a process's link may hand out: the app's claimed sockets, for a cluster-mode Node
    /// app (its shim asks for them).
    pub(super) fn link_claims(&self) -> Option<Arc<ClaimedSockets>> {
        self.spec.shares_node_ports().then(|| self.claims.clone())
    }

    /// Whether its processes take their listening socket from Kelpie: the app's own (`port`),
    /// or the ones its code asked for (cluster-mode Node apps, once one did). A new process is
    /// then ready once it listens, and a reload keeps the port served throughout.
    pub(super) fn shares_socket(&self) -> bool {
        self.socket.is_some() || (self.spec.shares_node_ports() && self.claims.any())
    }

    /// The compiled ready pattern (validated when the app was configured).
    pub(super) fn ready_pattern(&self) -> Option<Arc<regex::bytes::Regex>> {
        let pattern = self.spec.ready_pattern.as_deref()?;
        regex::bytes::Regex::new(pattern).ok().map(Arc::new)
    }

    /// The port an app binding it itself (`reuse_port`) is expected to listen on.
    pub(super) fn reuse_port_number(&self) -> Option<u16> {
        if let Some(port) = self.spec.listen.as_ref().and_then(|l| l.port()) {
            return Some(port);
        }
        self.spec.env_port()
    }
}

/// Two pipes for a process's stdout and stderr: the write ends for the child, the read ends
/// for the log thread.
pub(super) fn output_pipes() -> std::io::Result<(OutputPipes, (OwnedFd, OwnedFd))> {
    let (out_read, out_write) = std::io::pipe()?;
    let (err_read, err_write) = std::io::pipe()?;
    Ok((
        OutputPipes {
            out: out_write,
            err: err_write,
        },
        (out_read.into(), err_read.into()),
    ))
}

/// Whether the process must say it is ready before it counts as online.
pub(super) fn awaits_ready(spec: &AppSpec, shared_socket: bool) -> bool {
    spec.wait_ready
        || spec.ready_pattern.is_some()
        || spec.reuse_port
        || (shared_socket && spec.runs_on_node())
}

/// Whether `signal` means ready for this app: an explicit signal always; with `wait_ready`
/// only that (as in PM2, the server listening is not enough then); a Node app on a shared socket is ready when
/// its server listens; a ready pattern, or the port open for `reuse_port` apps.
pub(super) fn accepts(spec: &AppSpec, shared_socket: bool, signal: &ProcessSignal) -> bool {
    match signal {
        // A process that says READY=1 is ready, whatever else was expected.
        ProcessSignal::Ready => true,
        ProcessSignal::Listening => !spec.wait_ready && shared_socket && spec.runs_on_node(),
        ProcessSignal::ReadyLine => spec.ready_pattern.is_some(),
        ProcessSignal::PortOpen => spec.reuse_port,
        ProcessSignal::Watchdog | ProcessSignal::Published(_) | ProcessSignal::Message(_) => false,
    }
}

/// Have the keeper hold a pidfd of process `pid` and a copy of its link, so a daemon started
/// after this one died can adopt it. `None` without a keeper or once the process is gone.
pub(super) fn keep_process(
    pm_id: u32,
    child: &ProcessHandle,
    link: &ProcessLink,
    cgroup: Option<&ProcessCgroup>,
) -> Option<crate::keeper::Held> {
    let pid = child.pid();
    let (notify, ipc) = link.fds();
    let mut fds = vec![child.pidfd()?, notify];
    fds.extend(ipc);
    crate::keeper::hold(
        crate::keeper::Holding::Process {
            pm_id,
            pid,
            cgroup: cgroup.map(|c| c.cgroup().path().to_path_buf()),
            ipc: ipc.is_some(),
        },
        &fds,
    )
}
