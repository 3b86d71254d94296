//! The thread apps are spawned from: one with a descriptor table of its own, nearly empty.
//!
//! Why: a new process starts with a copy of its parent's descriptor table, and `execve` then
//! closes each close-on-exec descriptor one by one (a flush and a lock release each, in the
//! kernel). The daemon holds descriptors for every app it runs, so a spawn from its table costs
//! time in proportion to the number of apps, and starting N apps costs N²: measured at 1 500
//! `sleep` apps, 1.17 ms of daemon CPU per app against 0.73 ms at 300, the largest part in the
//! kernel's exec closing the daemon's descriptors in each child.
//!
//! This thread unshares its table (`unshare(CLONE_FILES)`) and keeps only stdio and its end of
//! a socket pair: a spawn from it copies and closes a handful of descriptors, whatever the
//! number of apps. A spawn's descriptors reach it over the pair (SCM_RIGHTS) and the child's
//! pidfd comes back the same way; the rest of the spawn (memory is shared by every thread)
//! goes through a channel. The child is still the daemon's: a child belongs to the whole
//! thread group, so `waitpid` and its pidfd work from any thread.
//!
//! The thread never touches a descriptor of the shared table (no logging, no global file):
//! the same number means another file there.
//!
//! While the daemon's table is small, a spawn is made from the calling thread instead: copying
//! a few hundred descriptors costs less than the hand-over (the spawner thread woken and the
//! caller woken back, the descriptors sent and the pidfd received: about 0.1 ms of CPU per
//! spawn, measured in a crash loop of 30 apps). The child marks every descriptor above its own
//! close-on-exec (see `exec.rs`), so nothing the daemon holds reaches the app either way.

use crate::spawn::{Spawn, Spawned};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

/// What the spawner thread needs besides the descriptors: the spawn with its descriptors
/// taken out (see [`Spawn::into_parts`]).
struct Job {
    parts: crate::spawn::Parts,
    reply: mpsc::SyncSender<io::Result<(u32, bool)>>,
}

/// The daemon side of the spawner: its end of the pair and the job channel, one spawn at a
/// time (so a message on the pair always belongs to the job sent with it).
struct Spawner {
    socket: OwnedFd,
    jobs: mpsc::Sender<Job>,
}

static SPAWNER: OnceLock<Option<Mutex<Spawner>>> = OnceLock::new();

/// A spawn whose descriptors all have lower numbers is made from the calling thread. The
/// spawn's descriptors were just made (its pipes, its link's ends): the kernel gave them the
/// lowest free numbers, so they say about how many the table holds. At 512 a spawn from the
/// daemon's table costs about as much as the hand-over to the spawner thread (its cost grows
/// by roughly 60 ns per descriptor: 1 500 apps made a spawn 0.44 ms dearer than 300 did).
const SPAWN_HERE_BELOW: RawFd = 512;

/// Start `spawn`: from this thread while the caller's table is small (see
/// [`SPAWN_HERE_BELOW`]), else from the spawner thread (started on first use), or from this
/// thread if the spawner cannot run.
pub(crate) fn spawn(spawn: Spawn) -> io::Result<Spawned> {
    if spawn.highest_fd() < SPAWN_HERE_BELOW {
        return spawn.spawn_here();
    }
    from_the_spawner(spawn)
}

/// Start `spawn` from the spawner thread (started on first use); directly from this thread if
/// the spawner cannot run.
pub(crate) fn from_the_spawner(spawn: Spawn) -> io::Result<Spawned> {
    let Some(spawner) = SPAWNER.get_or_init(start).as_ref() else {
        return spawn.spawn_here();
    };
    let spawner = spawner.lock().unwrap_or_else(|p| p.into_inner());
    let (fds, parts) = spawn.into_parts();
    let borrowed: Vec<BorrowedFd<'_>> = fds
        .owned
        .iter()
        .map(AsFd::as_fd)
        .chain(
            fds.borrowed
                .iter()
                // SAFETY: the caller of `Spawn::new` keeps these open until the spawn returns
                // (see `Spawn::new`'s `fds`).
                .map(|fd| unsafe { BorrowedFd::borrow_raw(*fd) }),
        )
        .collect();
    if crate::send_with_fds(spawner.socket.as_fd(), b"spawn", &borrowed).is_err() {
        // The pair is broken: spawn from here.
        drop(borrowed);
        return Spawn::from_parts(parts, fds)?.spawn_here();
    }
    let (reply, answer) = mpsc::sync_channel(1);
    if let Err(mpsc::SendError(job)) = spawner.jobs.send(Job { parts, reply }) {
        // The thread is gone: its end of the pair too, with what was sent.
        return Spawn::from_parts(job.parts, fds)?.spawn_here();
    }
    let (pid, into_cgroup) = answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread ended during a spawn"))??;
    let mut buf = [0u8; 8];
    let (_, mut received) = crate::recv_with_fds(spawner.socket.as_fd(), &mut buf)?;
    let pidfd = received
        .pop()
        .ok_or_else(|| io::Error::other("the spawner sent no pidfd"))?;
    Ok(Spawned {
        pid,
        pidfd,
        into_cgroup,
    })
}

/// The spawner thread, with its table of its own; `None` if it cannot be set up.
fn start() -> Option<Mutex<Spawner>> {
    let (ours, theirs) = crate::message_socket_pair().ok()?;
    let (jobs, received) = mpsc::channel::<Job>();
    let (ready, is_ready) = mpsc::sync_channel(1);
    // The thread takes its end by number into a table of its own; this table's copy stays
    // `theirs`, closed below once the thread is set up (or failed to be).
    let theirs_raw = theirs.as_raw_fd();
    std::thread::Builder::new()
        .name("kelpie-spawner".into())
        .spawn(move || {
            let socket = match own_table(theirs_raw) {
                Ok(socket) => socket,
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            serve(&socket, &received);
        })
        .ok()?;
    let set_up = matches!(is_ready.recv(), Ok(Ok(())));
    drop(theirs);
    set_up.then(|| Mutex::new(Spawner { socket: ours, jobs }))
}

/// In the spawner thread: a table of its own holding stdio and `socket` (moved to descriptor
/// 3), which is returned.
fn own_table(socket: RawFd) -> io::Result<OwnedFd> {
    const KEEP: RawFd = 3;
    // SAFETY: unshare(CLONE_FILES) gives this thread a private copy of the descriptor table;
    // no other thread is affected, and this thread only uses the descriptors set up below.
    if unsafe { libc::unshare(libc::CLONE_FILES) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if socket != KEEP {
        // SAFETY: dup3 within this thread's private table; whatever it held at 3 was a copy
        // of a shared-table entry, dropped from this table only.
        if unsafe { libc::dup3(socket, KEEP, libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: close_range(2) on this thread's private table: every copy above the socket.
    if unsafe { libc::syscall(libc::SYS_close_range, KEEP + 1, libc::c_uint::MAX, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: descriptor 3 of this private table is the socket, and nothing else owns it.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(KEEP) })
}

/// In the spawner thread: each job's descriptors from the pair, the spawn, the pidfd back.
fn serve(socket: &OwnedFd, jobs: &mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        let mut buf = [0u8; 8];
        let result = crate::recv_with_fds(socket.as_fd(), &mut buf)
            .and_then(|(_, fds)| crate::spawn::Descriptors::from_received(fds, &job.parts))
            .and_then(|fds| Spawn::from_parts(job.parts, fds))
            .and_then(Spawn::spawn_here)
            .and_then(|spawned| {
                crate::send_with_fds(socket.as_fd(), b"pidfd", &[spawned.pidfd.as_fd()])?;
                Ok((spawned.pid, spawned.into_cgroup))
            });
        let _ = job.reply.send(result);
    }
}
