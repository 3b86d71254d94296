//! Starting the instance's process: its pipes, link, cgroup and identity, and what it
//! publishes on its notify socket once it runs.

use super::given::Given;
use super::Platform;
use crate::cgroups::ProcessCgroup;
use crate::link::{ProcessLink, ProcessSignal};
use crate::logs::{LineWatch, NewPipe, TailReader};
use crate::process::ProcessHandle;
use crate::spawn_error::SpawnError;
use crate::spawn_plan::{self, Extras, FoundProgram, InstanceIdentity, OutputPipes};
use kelpie_core::{AppSpec, Published};
use kelpie_proto::LogStream;
use kelpie_sys::PipeReader;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

/// A process started by the instance, with what it can tell us.
pub(super) struct Launched {
    pub(super) child: ProcessHandle,
    pub(super) pid: u32,
    pub(super) link: ProcessLink,
    /// Its cgroup, when the daemon uses cgroups.
    pub(super) cgroup: Option<ProcessCgroup>,
    /// The user and groups it runs as, when not the daemon's (its exec health checks too).
    pub(super) identity: Option<kelpie_sys::Identity>,
    pub(super) route: Option<Arc<crate::logs::Route>>,
    /// It must say it is ready before it counts as online.
    pub(super) awaits_ready: bool,
    /// Its last lines of stderr, for the record of its exit.
    pub(super) stderr: Option<TailReader>,
    /// What it published on its notify socket.
    pub(super) published: Published,
    /// The keeper's copy of its link and a pidfd, so a next daemon can adopt it.
    pub(super) kept: Option<crate::keeper::Held>,
}

/// Start a process of the instance, where its processes run.
/// `found`: where its program was found for the last process (see [`FoundProgram`]); where it
/// was found for this one once it started, else `None`.
pub(super) async fn launch(
    given: &Given,
    found: &mut Option<Box<FoundProgram>>,
) -> Result<Launched, SpawnError> {
    match &given.platform {
        Platform::System => {
            let launched = launch_on_system(given, found).await;
            if launched.is_err() {
                *found = None;
            }
            launched
        }
        #[cfg(test)]
        Platform::Fake(fake) => {
            let awaits_ready = awaits_ready(&given.spec);
            fake.clone().launch(awaits_ready)
        }
    }
}

/// The app's identity (read on the blocking pool: /etc/passwd), and its notify socket, when it
/// has one of its own, made its user's alone (see `ChildEnds::notify_socket_for`).
fn identity_and_notify_socket(
    spec: &AppSpec,
    ends: &kelpie_link::ChildEnds,
) -> (Option<kelpie_sys::Identity>, std::io::Result<()>) {
    let identity = spawn_plan::identity(spec).ok().flatten();
    let restricted = ends.notify_socket_for(identity.as_ref().and_then(|i| i.uid));
    (identity, restricted)
}

/// The descriptor of a Node, Bun or Deno process's IPC channel (`process.send`), after the
/// shared socket when it has one; none for other apps.
fn ipc_channel_fd(given: &Given) -> Option<std::os::fd::RawFd> {
    given
        .spec
        .js_runtime()
        .is_some()
        .then_some(if given.socket.is_some() {
            spawn_plan::LISTEN_FD + 1
        } else {
            spawn_plan::LISTEN_FD
        })
}

/// Start a real process. The fork/exec runs on the blocking pool: it blocks its thread
/// until the child has exec'd, and doing it there lets several instances start in parallel
/// (200 apps start in about half the time on two cores) without stalling the supervisor.
async fn launch_on_system(
    given: &Given,
    found: &mut Option<Box<FoundProgram>>,
) -> Result<Launched, SpawnError> {
    let Output {
        route,
        route_files,
        pipes,
        readers,
    } = Output::of(given)?;
    let (mut link, ends) = ProcessLink::open(ipc_channel_fd(given), given.link_claims())
        .map_err(SpawnError::NotifySocket)?;
    // The command is built and spawned on the blocking pool (finding the program in PATH
    // reads directories). Its pipes' write ends and the child's ends of the link are
    // dropped there right after the spawn, so the reader sees end-of-file when the app's
    // processes exit; the socket's Arc keeps it open until then.
    let spec = given.spec.clone();
    let home = given.home.clone();
    let (pm_id, instance) = (given.pm_id, given.instance);
    let socket = given.socket.clone();
    let cgroups = given.cgroups.clone();
    // The keeper's copies of the link's ends, given with the process right after its spawn.
    let link_ends = LinkEnds::of(&link);
    let mut found_before = found.take();
    let (spawned, cgroup, identity, readers, kept, found_now) = crate::tasks::blocking(move || {
        let who = InstanceIdentity {
            home: &home,
            pm_id,
            instance,
        };
        crate::runtime_shim::migrate_queued_connections(&spec);
        let (identity, notify_for) = identity_and_notify_socket(&spec, &ends);
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
        // The keeper holds the pipes (and the notify socket the process is told of) before
        // the process exists, and the process as soon as it does: a daemon killed in between
        // leaves nothing the next one cannot find.
        crate::link::keep_own_notify_socket_now();
        let kept_pipes = hold_pipes(pm_id, readers.as_ref(), route_files);
        // Recorded as ours before anyone can reap it: under `kelpie runtime` the orphan
        // reaper must leave this child's exit status to its wait below.
        let spawning = crate::reaper::spawning();
        let spawned = notify_for
            .map_err(SpawnError::NotifySocket)
            .and_then(|()| spawn_plan::command(&spec, &who, pipes, extras, &mut found_before))
            .and_then(|c| {
                c.spawn().map_err(|source| SpawnError::Exec {
                    program: spec.command_line()[0].clone(),
                    cause: source,
                })
            });
        spawning.record(spawned.as_ref().ok().map(|c| c.pid));
        let kept = spawned
            .as_ref()
            .ok()
            .and_then(|c| link_ends.hold(pm_id, c.pid, cgroup.as_ref()));
        drop(ends.fds);
        let readers = readers.map(|fds| (fds, kept_pipes));
        (spawned, cgroup, identity, readers, kept, found_before)
    })
    .await
    .unwrap_or_else(|e| {
        let failed = SpawnError::Exec {
            program: given.spec.command_line()[0].clone(),
            cause: std::io::Error::other(e.to_string()),
        };
        (Err(failed), None, None, None, None, None)
    });
    *found = found_now;
    let spawned = spawned?;
    let pid = spawned.pid;
    link.attach(pid);
    // Registering the pidfd only fails if the runtime is shutting down.
    let child = ProcessHandle::spawned(spawned)
        .map_err(|source| SpawnError::Wait { pid, cause: source })?;
    let stderr = match (route.clone(), readers) {
        (Some(route), Some((fds, kept_pipes))) => {
            Some(read_output(given, &link, route, fds, kept_pipes))
        }
        _ => None,
    };
    if let (true, Some(port)) = (given.spec.reuse_port, given.reuse_port_number()) {
        link.hold(crate::readiness::watch_port(pid, port, link.sender()));
    }
    // Held at the spawn, unless the keeper could not be reached then.
    let kept = kept.or_else(|| keep_process(given.pm_id, &child, &link, cgroup.as_ref()));
    Ok(Launched {
        child,
        pid,
        kept,
        link,
        cgroup,
        identity,
        route,
        awaits_ready: awaits_ready(&given.spec),
        stderr,
        published: Published::default(),
    })
}

/// Where a new process's output goes: none of it without a log route (`disable_logs`).
struct Output {
    route: Option<Arc<crate::logs::Route>>,
    /// Where the keeper writes each stream itself while no daemon runs.
    route_files: Option<[Option<std::path::PathBuf>; 2]>,
    /// The process's ends of its output pipes, and the daemon's.
    pipes: Option<OutputPipes>,
    readers: Option<(PipeReader, PipeReader)>,
}

impl Output {
    fn of(given: &Given) -> Result<Output, SpawnError> {
        let files = spawn_plan::log_paths(&given.home, &given.spec, given.pm_id).files();
        let route = given
            .logs
            .route(&given.spec, given.pm_id, given.instance, &files);
        let route_files = route.as_ref().map(|route| {
            [
                route.keeper_file(LogStream::Out),
                route.keeper_file(LogStream::Err),
            ]
        });
        let (pipes, readers) = match route.as_ref().map(|_| output_pipes()).transpose() {
            Ok(Some((pipes, readers))) => (Some(pipes), Some(readers)),
            Ok(None) => (None, None),
            Err(e) => return Err(SpawnError::OutputPipes(e)),
        };
        Ok(Output {
            route,
            route_files,
            pipes,
            readers,
        })
    }
}

/// Read a new process's stdout and stderr on the log thread (what the keeper holds of them
/// given along); gives back the reader of its last lines of stderr.
fn read_output(
    given: &Given,
    link: &ProcessLink,
    route: Arc<crate::logs::Route>,
    (out, err): (PipeReader, PipeReader),
    [kept_out, kept_err]: [Option<crate::keeper::Held>; 2],
) -> TailReader {
    let watch = |stream| {
        given
            .ready_pattern()
            .map(|pattern| {
                let signals = link.sender();
                LineWatch {
                    pattern,
                    matched: Box::new(move || {
                        let _ = signals.send(ProcessSignal::ReadyLine);
                    }),
                }
            })
            .filter(|_| stream == LogStream::Out || stream == LogStream::Err)
    };
    let (tail, reader) = crate::logs::exit_tail();
    given.logs.attach(
        route,
        NewPipe {
            fd: out,
            watch: watch(LogStream::Out),
            tail: None,
            kept: kept_out,
        },
        NewPipe {
            fd: err,
            watch: watch(LogStream::Err),
            tail: Some(tail),
            kept: kept_err,
        },
    );
    reader
}

/// Have the keeper hold a new process's output pipes before the process is spawned: its
/// output outlives a daemon killed at any moment after (blocking).
fn hold_pipes(
    pm_id: u32,
    readers: Option<&(PipeReader, PipeReader)>,
    files: Option<[Option<std::path::PathBuf>; 2]>,
) -> [Option<crate::keeper::Held>; 2] {
    let Some((out, err)) = readers else {
        return [None, None];
    };
    let [out_file, err_file] = files.unwrap_or_default();
    // Both sent from here, in one message, before the spawn (nothing waits on another thread).
    crate::keeper::hold_all_now([
        (
            crate::keeper::Holding::Pipe {
                pm_id,
                stream: LogStream::Out,
                file: out_file,
            },
            &[out.as_fd()],
        ),
        (
            crate::keeper::Holding::Pipe {
                pm_id,
                stream: LogStream::Err,
                file: err_file,
            },
            &[err.as_fd()],
        ),
    ])
}

/// A process's link ends (its own notify socket from an old daemon, its Node IPC end), shared
/// with the link before the spawn so that the keeper can be given them on the blocking pool
/// right after it. Shared, not copied: the keeper's client knows them by their numbers, which
/// stay theirs while the link lives (a copy closed after the message left it a number that
/// no longer was the channel's).
struct LinkEnds {
    notify: Option<Arc<OwnedFd>>,
    ipc: Option<Arc<OwnedFd>>,
}

impl LinkEnds {
    fn of(link: &ProcessLink) -> LinkEnds {
        LinkEnds {
            notify: link.dedicated_fd(),
            ipc: link.ipc_fd(),
        }
    }

    /// Have the keeper hold process `pid` now, with these ends (blocking; see [`keep_process`]).
    fn hold(
        &self,
        pm_id: u32,
        pid: u32,
        cgroup: Option<&ProcessCgroup>,
    ) -> Option<crate::keeper::Held> {
        let fds: Vec<BorrowedFd<'_>> = self
            .notify
            .iter()
            .chain(&self.ipc)
            .map(|end| end.as_fd())
            .collect();
        crate::keeper::hold_now(
            crate::keeper::Holding::Process {
                pm_id,
                pid,
                cgroup: cgroup.map(|c| c.cgroup().path().to_path_buf()),
                pidfd: false,
                notify: self.notify.is_some(),
                ipc: self.ipc.is_some(),
                started: None,
            },
            &fds,
        )
    }
}

/// Two pipes for a process's stdout and stderr: the write ends for the child, the read ends
/// for the log thread.
pub(super) fn output_pipes() -> std::io::Result<(OutputPipes, (PipeReader, PipeReader))> {
    let (out_read, out_write) = kelpie_sys::output_pipe()?;
    let (err_read, err_write) = kelpie_sys::output_pipe()?;
    Ok((
        OutputPipes {
            out: out_write.into(),
            err: err_write.into(),
        },
        (out_read, err_read),
    ))
}

/// Whether the process must say it is ready before it counts as online. A Node app always
/// does: at least that its main module ran (the shim says so), so that `start` answers once
/// the app's code has installed its handlers (`start app.js && sendSignal SIGUSR2 app`). A Bun
/// or Deno app in cluster mode does once its server listens.
pub(super) fn awaits_ready(spec: &AppSpec) -> bool {
    spec.wait_ready
        || spec.ready_pattern.is_some()
        || spec.reuse_port
        || spec.runs_on_node()
        || spec.shares_reused_ports()
}

/// Whether `signal` means ready for this app: an explicit signal always; with `wait_ready`
/// only that (as in PM2, the server listening is not enough then); a Node app on a shared socket is ready when
/// its server listens; a ready pattern, or the port open for `reuse_port` apps; any other Node
/// app once its main module ran.
pub(super) fn accepts(spec: &AppSpec, shared_socket: bool, signal: &ProcessSignal) -> bool {
    match signal {
        // A process that says READY=1 is ready, whatever else was expected.
        ProcessSignal::Ready => true,
        ProcessSignal::Listening => {
            !spec.wait_ready
                && ((shared_socket && spec.runs_on_node()) || spec.shares_reused_ports())
        }
        // Only when nothing more was asked for: the main module running is the least of it.
        ProcessSignal::MainRan => {
            spec.runs_on_node()
                && !spec.wait_ready
                && !shared_socket
                && spec.ready_pattern.is_none()
                && !spec.reuse_port
        }
        ProcessSignal::ReadyLine => spec.ready_pattern.is_some(),
        ProcessSignal::PortOpen => spec.reuse_port,
        ProcessSignal::Watchdog | ProcessSignal::Published(_) | ProcessSignal::Message(_) => false,
    }
}

/// Have the keeper hold process `pid` (by its pid and start time, which the keeper reads) and a
/// copy of its IPC channel (the shared notify socket it holds once), so a daemon started after
/// this one died can adopt it. `None` without a keeper.
pub(super) fn keep_process(
    pm_id: u32,
    child: &ProcessHandle,
    link: &ProcessLink,
    cgroup: Option<&ProcessCgroup>,
) -> Option<crate::keeper::Held> {
    let pid = child.pid();
    // A scripted process (the in-process tests') is not the keeper's to hold.
    child.pidfd()?;
    let (notify, ipc) = (link.dedicated_fd(), link.ipc_fd());
    let fds: Vec<std::os::fd::BorrowedFd<'_>> =
        notify.iter().chain(&ipc).map(|end| end.as_fd()).collect();
    crate::keeper::hold(
        crate::keeper::Holding::Process {
            pm_id,
            pid,
            cgroup: cgroup.map(|c| c.cgroup().path().to_path_buf()),
            pidfd: false,
            notify: notify.is_some(),
            ipc: ipc.is_some(),
            started: None,
        },
        &fds,
    )
}
