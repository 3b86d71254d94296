//! A new daemon takes what the keeper of a daemon that died kept: the apps' sockets, pipes
//! (and what they printed meanwhile) and processes, so it adopts them instead of restarting them.

use crate::keeper::wire::{self, FromKeeper, Holding, ToKeeper};
use crate::link::LinkFds;
use crate::logs::HandedPipe;
use crate::update::HandedProcess;
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

/// How long the keeper may take to answer each message.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Most spooled output read back, for all pipes together (the keeper writes at most 64 MiB per
/// pipe): the rest is counted as dropped, so a thousand chatty apps cannot exhaust memory.
const SPOOL_BUDGET: u64 = 256 * 1024 * 1024;

/// Everything a keeper handed over.
#[derive(Default)]
pub struct Reclaimed {
    /// The pid of the daemon that died.
    pub daemon_pid: u32,
    /// Listening sockets, by app name.
    pub sockets: BTreeMap<String, OwnedFd>,
    /// Sockets cluster-mode Node apps asked for.
    pub claimed: Vec<crate::sockets::HandedSocket>,
    /// Running processes, by `pm_id` (a reload in progress has two of one instance).
    pub processes: Vec<(u32, HandedProcess)>,
    /// Output pipes, with what was read from them meanwhile.
    pub pipes: Vec<HandedPipe>,
    /// Output bytes the keeper could not keep.
    pub dropped: u64,
    /// The dead daemon's shared notify socket(s): its processes keep sending there.
    pub notify: Vec<OwnedFd>,
}

/// Why what a keeper kept could not be taken over (the new daemon then starts the apps anew).
#[derive(Debug, thiserror::Error)]
enum ReclaimError {
    /// Talking to the keeper failed (a timeout, a broken connection, a bad message).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The keeper hung up before it was done.
    #[error("the keeper closed the connection")]
    Closed,
    /// The keeper would not hand over what it kept.
    #[error("the keeper refused: {0}")]
    Refused(String),
}

/// Take everything from the keeper of a daemon that died, if one waits for us. Blocking: call
/// it off the async thread, once the control socket is ours (so no other daemon takes it too).
pub fn reclaim(home: &Home) -> Option<Reclaimed> {
    let socket = kelpie_sys::message_socket_connect(&home.keeper_socket()).ok()?;
    match take_all(home, &socket) {
        Ok(reclaimed) => {
            let _ = wire::send(socket.as_fd(), &ToKeeper::Taken, &[]);
            Some(reclaimed)
        }
        Err(e) => {
            crate::daemon_log!("keeper: could not take over what it kept: {e}");
            None
        }
    }
}

fn take_all(home: &Home, socket: &OwnedFd) -> Result<Reclaimed, ReclaimError> {
    kelpie_sys::set_receive_timeout(socket.as_fd(), ANSWER_WITHIN)?;
    wire::send(socket.as_fd(), &ToKeeper::Take, &[])?;
    let mut reclaimed = Reclaimed::default();
    let mut spools = Vec::new();
    let mut budget = SPOOL_BUDGET;
    loop {
        let (message, fds) =
            wire::recv::<FromKeeper>(socket.as_fd())?.ok_or(ReclaimError::Closed)?;
        match message {
            FromKeeper::Done { daemon_pid } => {
                reclaimed.daemon_pid = daemon_pid;
                break;
            }
            FromKeeper::Refused { why } => return Err(ReclaimError::Refused(why)),
            FromKeeper::Entry {
                holding,
                spool,
                dropped,
                skip_line,
            } => {
                reclaimed.dropped += dropped;
                let mut backlog = match &spool {
                    Some(path) => {
                        spools.push(path.clone());
                        let (backlog, left) = read_spool(path, budget);
                        budget -= backlog.len() as u64;
                        reclaimed.dropped += left;
                        backlog
                    }
                    None => Vec::new(),
                };
                if let (true, Some(pipe)) = (skip_line, fds.first()) {
                    let (skipped, rest) = drop_line_head(pipe);
                    reclaimed.dropped += skipped;
                    backlog.extend_from_slice(&rest);
                }
                add_entry(&mut reclaimed, holding, fds, backlog);
            }
        }
    }
    for path in spools {
        // Only files of the keeper's spool directory are removed.
        if path.parent() == Some(home.keeper_spool_dir().as_path()) {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(reclaimed)
}

/// The rest of a line whose start a full disk dropped, at the head of `pipe`: read and dropped
/// to its end (what was read after it is returned, to be written first). As much as the pipe
/// holds now: a line whose end has not come yet keeps its tail.
fn drop_line_head(pipe: &OwnedFd) -> (u64, Vec<u8>) {
    let mut file = std::fs::File::from(match pipe.try_clone() {
        Ok(fd) => fd,
        Err(_) => return (0, Vec::new()),
    });
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Only what it holds now: never a wait for the app.
        if !kelpie_sys::wait_readable(pipe.as_fd(), Duration::ZERO).unwrap_or(false) {
            return (dropped, Vec::new());
        }
        match file.read(&mut buf) {
            Ok(0) | Err(_) => return (dropped, Vec::new()),
            Ok(n) => match memchr::memchr(b'\n', &buf[..n]) {
                Some(end) => return (dropped + end as u64 + 1, buf[end + 1..n].to_vec()),
                None => dropped += n as u64,
            },
        }
    }
}

fn add_entry(reclaimed: &mut Reclaimed, holding: Holding, fds: Vec<OwnedFd>, backlog: Vec<u8>) {
    let mut fds = fds.into_iter();
    match holding {
        Holding::Pipe { pm_id, stream, .. } => reclaimed.pipes.push(HandedPipe {
            pm_id,
            stream,
            fd: fds.next(),
            backlog,
        }),
        Holding::Socket { app } => {
            if let Some(fd) = fds.next() {
                reclaimed.sockets.insert(app, fd);
            }
        }
        Holding::Claimed { app, address } => {
            if let Some(fd) = fds.next() {
                reclaimed
                    .claimed
                    .push(crate::sockets::HandedSocket { app, address, fd });
            }
        }
        Holding::Notify => reclaimed.notify.extend(fds.next()),
        Holding::Process {
            pm_id,
            pid,
            cgroup,
            pidfd,
            notify,
            ipc,
            started,
        } => {
            let mut next_if = |comes: bool| if comes { fds.next() } else { None };
            let pidfd = next_if(pidfd);
            let notify = next_if(notify);
            let ipc = next_if(ipc);
            // Held by pid and start time: a pidfd now, if it is still that process (checked
            // after the pidfd is open, so a process that ended meanwhile is not mistaken).
            let pidfd = pidfd.or_else(|| {
                let pidfd = kelpie_sys::watch_exit(pid).ok()?;
                let live = kelpie_sys::sample_process(pid)?;
                (!live.zombie && Some(live.start_ticks) == started).then_some(pidfd)
            });
            let Some(pidfd) = pidfd else {
                return;
            };
            reclaimed.processes.push((
                pm_id,
                HandedProcess {
                    pid,
                    link: LinkFds {
                        notify,
                        ipc,
                        // What the SDK said died with the daemon: actions come back when
                        // the app restarts.
                        sdk: Default::default(),
                    },
                    cgroup,
                    pidfd: Some(pidfd),
                },
            ));
        }
    }
}

/// At most `limit` bytes of a spool file, and how many were left out.
fn read_spool(path: &std::path::Path, limit: u64) -> (Vec<u8>, u64) {
    let mut bytes = Vec::new();
    let Ok(file) = std::fs::File::open(path) else {
        return (bytes, 0);
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.take(limit).read_to_end(&mut bytes);
    let left = size.saturating_sub(bytes.len() as u64);
    (bytes, left)
}
