//! `kelpie update` and a keeper: what an instance takes over from the daemon it replaces (or
//! from a keeper, after a daemon died): its process and the output it printed meanwhile.

use super::given::Given;
use super::launching::{keep_process, Launched};
use crate::link::ProcessLink;
use crate::logs::HandedPipe;
use crate::process::ProcessHandle;
use crate::spawn_plan;
use crate::update::HandedProcess;
use kelpie_core::Published;
use kelpie_proto::LogStream;

/// What became of a process handed over.
pub(super) enum Resumed {
    /// None was handed over (only its pipes, if any, are read again).
    Nothing,
    /// It is the instance's process from now on.
    Process(Box<Launched>),
    /// It cannot be waited for any more: it counts as exited, with this reason.
    Lost {
        /// Its pid (and process group).
        pid: u32,
        /// What failed.
        error: String,
    },
    /// It cannot be supervised (no link could be made for it): to be killed, so that the
    /// state machine restarts it.
    Unsupervised {
        /// Its pid (and process group).
        pid: u32,
        /// Its handle, to wait for its exit.
        child: ProcessHandle,
    },
}

/// Go on with what the previous program handed over: its pipes are read again, and its
/// process (waited for through a pidfd, its link and cgroup kept) is made ready to become
/// this instance's.
pub(super) async fn resume(
    given: &Given,
    process: Option<HandedProcess>,
    pipes: Vec<HandedPipe>,
) -> Resumed {
    let files = spawn_plan::log_paths(&given.home, &given.spec, given.pm_id).files();
    let route = given
        .logs
        .route(&given.spec, given.pm_id, given.instance, &files);
    let mut stderr = None;
    if let Some(route) = &route {
        for pipe in pipes {
            // The lines read from now on go into the record of its exit.
            let tail = (pipe.stream == LogStream::Err).then(|| {
                let (writer, reader) = crate::logs::exit_tail();
                stderr = Some(reader);
                writer
            });
            given.logs.attach_handed(route.clone(), pipe, tail);
        }
    }
    let Some(process) = process else {
        return Resumed::Nothing;
    };
    let pid = process.pid;
    let child = match ProcessHandle::adopted(pid, process.pidfd) {
        Ok(child) => child,
        Err(e) => {
            crate::daemon_log!(
                "app `{}` (id {}): cannot wait for its process {pid} any more ({e}); it counts as exited",
                given.spec.name,
                given.pm_id
            );
            let error = format!("lost when it was handed over: {e}");
            return Resumed::Lost { pid, error };
        }
    };
    let link = match ProcessLink::resume(process.link, given.link_claims()).or_else(|e| {
        crate::daemon_log!(
            "app `{}` (id {}): its link could not be kept ({e}); its IPC messages are not heard",
            given.spec.name,
            given.pm_id
        );
        ProcessLink::open(None, None).map(|(link, _)| link)
    }) {
        Ok(mut link) => {
            link.attach(pid);
            link
        }
        Err(e) => {
            // Nothing to supervise it with: stop it, and the state machine restarts it.
            crate::daemon_log!(
                "app `{}` (id {}): cannot supervise process {pid} ({e}); restarting it",
                given.spec.name,
                given.pm_id
            );
            return Resumed::Unsupervised { pid, child };
        }
    };
    let spec = given.spec.clone();
    let identity = crate::tasks::blocking(move || spawn_plan::identity(&spec).ok().flatten())
        .await
        .ok()
        .flatten();
    let cgroup = process.cgroup.and_then(|path| given.cgroups.adopt(path));
    let kept = keep_process(given.pm_id, &child, &link, cgroup.as_ref());
    Resumed::Process(Box::new(Launched {
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
    }))
}
