//! The daemon's notify socket: one for every app (`NOTIFY_SOCKET=@kelpie/<pid>-<tag>/notify`),
//! read by one thread (`kelpie-notify`), each datagram given to the process that sent it.
//!
//! One socket per process would cost a descriptor per app in the daemon and another in its
//! keeper, and a task per process; the sender is told apart instead by its pid, which the
//! kernel attaches to each datagram (`SO_PASSCRED`). A datagram goes to the link registered
//! for that pid, else for its process group or one of its ancestors (an app's child, or
//! `systemd-notify` run from an app's shell script, which also names its parent as sender).
//! `systemd-notify` waits (`BARRIER=1`) until its message is read, so it is still alive to be
//! looked up; descriptors sent with a datagram are closed at once, which ends that wait.
//!
//! A datagram may come before its process is registered (an app that says `READY=1` as soon
//! as it runs, before its spawn has returned): it waits here, a few seconds at most.
//!
//! Sockets handed over by the daemon this one replaced are read too: its own shared socket
//! (its apps keep its name), and the one-per-process sockets of a daemon from before this
//! design ("dedicated": whatever comes on one is its process's, whoever sends it).

use super::ProcessSignal;
use kelpie_core::forensics::{parse_notify_line, NotifyLine};
use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Longest notify datagram read (systemd's limit is the same order).
const NOTIFY_MAX: usize = 4096;

/// How long a datagram from a process not (yet) registered is kept for it.
const UNROUTED_KEPT: Duration = Duration::from_secs(5);

/// How many such datagrams are kept at most (the oldest go first): enough for thousands of
/// apps started at once that each say `READY=1` before their spawn has returned.
const UNROUTED_MAX: usize = 16_384;

/// How far up a sender's ancestors a registered process is looked for.
const ANCESTORS_LOOKED_UP: usize = 8;

/// Where a process's signals go.
type Route = crate::mailbox::Sender<ProcessSignal>;

/// One socket read by the thread.
struct Listened {
    socket: Arc<OwnedFd>,
    /// A dedicated socket's process; `None` for a shared one.
    owner: Option<u32>,
    /// The keeper's copy of a shared socket (a dedicated one the keeper holds with its
    /// process, `instance/launching.rs`).
    kept: Option<crate::keeper::Held>,
}

/// What came from a sender no link was registered for yet.
struct Unrouted {
    /// The sender, its process group and its ancestors: any of them may be registered later.
    candidates: Vec<u32>,
    at: Instant,
    signals: Vec<ProcessSignal>,
}

#[derive(Default)]
struct Hub {
    /// The name of the socket this daemon gives its new processes (bound on first use).
    own: Option<String>,
    sockets: Vec<Listened>,
    /// Each registered process's route, with the number of its registration.
    routes: HashMap<u32, (u64, Route)>,
    registrations: u64,
    unrouted: VecDeque<Unrouted>,
    /// Written to when `sockets` changed, so the thread waits on the new list.
    wake: Option<Arc<std::os::unix::net::UnixDatagram>>,
}

static HUB: OnceLock<Mutex<Hub>> = OnceLock::new();

/// Whether the socket bound by [`socket_name`] was offered to the keeper yet (by
/// [`keep_own_now`]): read by every spawn without taking the table's lock, which the notify
/// thread takes for each datagram.
static OWN_OFFERED: AtomicBool = AtomicBool::new(false);

fn hub() -> MutexGuard<'static, Hub> {
    // A poisoned lock only means a thread panicked while holding it; the table is still sound.
    HUB.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a new process's `NOTIFY_SOCKET` is (with its `@`): the daemon's shared socket, bound
/// the first time (and given to the keeper by the spawn, [`keep_own_now`]).
pub(super) fn socket_name() -> std::io::Result<String> {
    let mut hub = hub();
    if let Some(name) = &hub.own {
        return Ok(kelpie_sys::notify_socket_address(name));
    }
    let name = own_socket_name()?;
    let socket = kelpie_sys::bind_notify_socket(&name)?;
    hub.add(socket)?;
    hub.own = Some(name.clone());
    Ok(kelpie_sys::notify_socket_address(&name))
}

/// The name this daemon's socket is bound to. Abstract names are per network namespace, pids
/// per pid namespace: several runtimes that are each pid 1 of their own namespace share the
/// network's names, hence the daemon's random tag next to its pid. The portable backend's
/// socket is a file, in a directory of its own under the system's temporary directory (made
/// here, so no other user's file is ever bound over; others may only pass through it).
fn own_socket_name() -> std::io::Result<String> {
    if !kelpie_sys::platform::portable() {
        let tag = format!("{}-{:x}", std::process::id(), crate::clock::daemon_tag());
        return Ok(format!("kelpie/{tag}/notify"));
    }
    socket_path("notify")
}

/// The directory [`socket_dir`] made, once made.
static SOCKET_DIR: OnceLock<Result<std::path::PathBuf, Arc<std::io::Error>>> = OnceLock::new();

/// At the daemon's exit, its apps stopped: remove the portable backend's directory of notify
/// sockets, if this daemon made one and it is empty (each process's socket file went with its
/// link; one still there belongs to a process that outlives the daemon).
pub fn remove_socket_dir() {
    if let Some(Ok(dir)) = SOCKET_DIR.get() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// The portable backend's directory of notify sockets: under the system's temporary directory,
/// made by this daemon (so no other user's file is ever bound over; others may only pass
/// through it to send).
fn socket_dir() -> std::io::Result<&'static std::path::Path> {
    let made = SOCKET_DIR.get_or_init(|| {
        use std::os::unix::fs::DirBuilderExt;
        let tag = format!("{}-{:x}", std::process::id(), crate::clock::daemon_tag());
        let dir = std::env::temp_dir().join(format!("kelpie-{tag}"));
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map(|()| dir)
            .map_err(Arc::new)
    });
    made.as_deref().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot make the notify sockets' directory: {e}"),
        )
    })
}

fn socket_path(name: &str) -> std::io::Result<String> {
    socket_dir()?
        .join(name)
        .into_os_string()
        .into_string()
        .map_err(|_| std::io::Error::other("the temporary directory's path is not UTF-8"))
}

/// A notify socket of one process's own, for the portable backend (whose shared socket cannot
/// tell senders apart): bound at a new path, which the returned [`SocketFile`] removes when
/// dropped. Read once the process is registered ([`register`], as a dedicated socket).
pub(super) fn dedicated_socket() -> std::io::Result<(String, OwnedFd, SocketFile)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = socket_path(&format!("{n}.sock"))?;
    let socket = kelpie_sys::bind_notify_socket(&path)?;
    Ok((path.clone(), socket, SocketFile(Some(path.into()))))
}

/// Make a dedicated socket's `file` sendable by `uid` (or the daemon's user) alone: its
/// datagrams tell no sender, so another local user who could reach it could say `READY=1` or
/// `WATCHDOG=1` for the app. (Anyone may send to an abstract socket, but the kernel names each
/// sender there.)
pub(super) fn only_for(file: &str, uid: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))?;
    if uid.is_some() {
        std::os::unix::fs::chown(file, uid, None)?;
    }
    Ok(())
}

/// A dedicated notify socket's file, removed when dropped (the process has ended) unless
/// [`SocketFile::keep`] handed it on to the next daemon.
#[derive(Debug)]
pub(super) struct SocketFile(Option<std::path::PathBuf>);

impl SocketFile {
    /// Leave the file in place: the socket goes to the next daemon, with the process.
    pub(super) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Read the shared sockets the daemon this one replaced handed over (its processes keep
/// their names); the first becomes this daemon's own when it has none yet.
pub fn adopt_shared(sockets: Vec<OwnedFd>) {
    let mut hub = hub();
    for socket in sockets {
        let name = kelpie_sys::notify_socket_name(socket.as_fd()).ok();
        let added = kelpie_sys::learn_sender_pids(socket.as_fd()).and_then(|()| hub.add(socket));
        match added {
            Ok(()) => {
                if hub.own.is_none() {
                    hub.own = name;
                }
            }
            Err(e) => crate::daemon_log!(
                "a notify socket handed over cannot be read ({e}); its apps' readiness and watchdog messages are not heard"
            ),
        }
    }
}

/// Have the keeper hold the socket [`socket_name`] bound, the first time only; from the
/// blocking pool, before a spawn: once it returns the keeper has it, so a daemon killed right
/// after leaves the processes that carry its name to a daemon that still hears them. (Sent
/// under the table's lock so that a second spawn does not go ahead of the first one's send;
/// this happens once in a daemon's life.)
pub fn keep_own_now() {
    if OWN_OFFERED.load(Ordering::Acquire) {
        return;
    }
    let mut hub = hub();
    // Set only once the send is done: a spawn that saw it unset waited here, for the lock.
    if hub.own.is_none() || OWN_OFFERED.load(Ordering::Acquire) {
        return;
    }
    for listened in &mut hub.sockets {
        if listened.owner.is_none() && listened.kept.is_none() {
            listened.kept =
                crate::keeper::hold_now(crate::keeper::Holding::Notify, &[listened.socket.as_fd()]);
        }
    }
    OWN_OFFERED.store(true, Ordering::Release);
}

/// Have the keeper hold the shared sockets it does not hold yet (those adopted before it ran).
pub fn keep_in_keeper() {
    let mut hub = hub();
    for listened in &mut hub.sockets {
        if listened.owner.is_none() && listened.kept.is_none() {
            listened.kept =
                crate::keeper::hold(crate::keeper::Holding::Notify, &[listened.socket.as_fd()]);
        }
    }
}

/// Second descriptors of the shared sockets, for `kelpie update`'s hand-off.
pub fn shared_sockets() -> std::io::Result<Vec<OwnedFd>> {
    hub()
        .sockets
        .iter()
        .filter(|listened| listened.owner.is_none())
        .map(|listened| listened.socket.as_fd().try_clone_to_owned())
        .collect()
}

/// Process `pid`'s link from now on, until the returned registration is dropped; with its
/// own `dedicated` socket (handed over by a daemon from before the shared one), read too.
pub(super) fn register(pid: u32, route: Route, dedicated: Option<Arc<OwnedFd>>) -> Registration {
    let mut hub = hub();
    if let Some(socket) = dedicated {
        hub.add_dedicated(socket, pid);
    }
    let now = Instant::now();
    let mut waiting = std::mem::take(&mut hub.unrouted);
    waiting.retain(|unrouted| {
        if now.duration_since(unrouted.at) > UNROUTED_KEPT {
            return false;
        }
        if !unrouted.candidates.contains(&pid) {
            return true;
        }
        for signal in &unrouted.signals {
            let _ = route.send(signal.clone());
        }
        false
    });
    hub.unrouted = waiting;
    hub.registrations += 1;
    let number = hub.registrations;
    hub.routes.insert(pid, (number, route));
    Registration { pid, number }
}

/// A process's place in the table: left when dropped.
#[derive(Debug)]
pub(super) struct Registration {
    pid: u32,
    /// Which registration of `pid` this is: a later one (the pid reused) is not removed.
    number: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut hub = hub();
        let ours = hub
            .routes
            .get(&self.pid)
            .is_some_and(|(number, _)| *number == self.number);
        if !ours {
            return;
        }
        hub.routes.remove(&self.pid);
        crate::room::shrink_if_sparse(&mut hub.routes);
        let before = hub.sockets.len();
        hub.sockets
            .retain(|listened| listened.owner != Some(self.pid));
        if hub.sockets.len() != before {
            hub.wake_thread();
        }
    }
}

impl Hub {
    /// Read the shared `socket` too (the keeper is given it by [`keep_in_keeper`] or
    /// [`keep_own_now`]).
    fn add(&mut self, socket: OwnedFd) -> std::io::Result<()> {
        self.start_thread()?;
        self.sockets.push(Listened {
            socket: Arc::new(socket),
            owner: None,
            kept: None,
        });
        self.wake_thread();
        Ok(())
    }

    /// Read process `pid`'s own `socket` too (its link gives it to the keeper with the process).
    fn add_dedicated(&mut self, socket: Arc<OwnedFd>, pid: u32) {
        if let Err(e) = self.start_thread() {
            crate::daemon_log!(
                "process {pid}: its notify socket cannot be read ({e}); its readiness and watchdog messages are not heard"
            );
            return;
        }
        self.sockets.retain(|listened| listened.owner != Some(pid));
        self.sockets.push(Listened {
            socket,
            owner: Some(pid),
            kept: None,
        });
        self.wake_thread();
    }

    /// The thread, started with the first socket.
    fn start_thread(&mut self) -> std::io::Result<()> {
        if self.wake.is_none() {
            let (wake, woken) = std::os::unix::net::UnixDatagram::pair()?;
            woken.set_nonblocking(true)?;
            // Never blocks while the hub is locked: a wake already queued is enough.
            wake.set_nonblocking(true)?;
            std::thread::Builder::new()
                .name("kelpie-notify".into())
                .spawn(move || read_sockets(woken))?;
            self.wake = Some(Arc::new(wake));
        }
        Ok(())
    }

    fn wake_thread(&self) {
        if let Some(wake) = &self.wake {
            let _ = wake.send(&[0]);
        }
    }
}

/// Give what `sender` said to its process: a dedicated socket's `owner`, else the link
/// registered for the sender or, looked up in /proc, for its group or an ancestor; kept a
/// while for a process not registered yet.
fn deliver(owner: Option<u32>, sender: Option<u32>, signals: Vec<ProcessSignal>) {
    let Some(pid) = owner.or(sender) else {
        return;
    };
    let send_all = |route: &Route, signals: Vec<ProcessSignal>| {
        for signal in signals {
            let _ = route.send(signal);
        }
    };
    if let Some((_, route)) = hub().routes.get(&pid) {
        return send_all(route, signals);
    }
    // Not locked while /proc is read.
    let candidates = related_processes(pid);
    let mut table = hub();
    if let Some((_, route)) = candidates.iter().find_map(|p| table.routes.get(p)) {
        return send_all(route, signals);
    }
    let now = Instant::now();
    while table
        .unrouted
        .front()
        .is_some_and(|u| now.duration_since(u.at) > UNROUTED_KEPT)
        || table.unrouted.len() >= UNROUTED_MAX
    {
        table.unrouted.pop_front();
    }
    table.unrouted.push_back(Unrouted {
        candidates,
        at: now,
        signals,
    });
}

/// `pid`, its process group and its ancestors (up to [`ANCESTORS_LOOKED_UP`]), as far as
/// /proc still shows them.
fn related_processes(pid: u32) -> Vec<u32> {
    let mut related = vec![pid];
    let mut next = pid;
    for _ in 0..ANCESTORS_LOOKED_UP {
        let Some(sample) = kelpie_sys::sample_process(next) else {
            break;
        };
        if related.len() == 1 && sample.pgrp != pid {
            related.push(sample.pgrp);
        }
        if sample.ppid <= 1 || related.contains(&sample.ppid) {
            break;
        }
        related.push(sample.ppid);
        next = sample.ppid;
    }
    related
}

/// The thread: wait on every socket, read what came, deliver it; again.
fn read_sockets(woken: std::os::unix::net::UnixDatagram) {
    let mut buf = [0u8; NOTIFY_MAX];
    loop {
        let listened: Vec<(Arc<OwnedFd>, Option<u32>)> = hub()
            .sockets
            .iter()
            .map(|l| (l.socket.clone(), l.owner))
            .collect();
        let mut fds = vec![woken.as_fd()];
        fds.extend(listened.iter().map(|(socket, _)| socket.as_fd()));
        let Ok(ready) = kelpie_sys::wait_readable_many(&fds, Some(UNROUTED_KEPT)) else {
            #[expect(
                clippy::disallowed_methods,
                reason = "the notify thread's own loop: a pause before it polls again"
            )]
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        if ready[0] {
            while woken.recv(&mut buf).is_ok() {}
        }
        for ((socket, owner), ready) in listened.iter().zip(&ready[1..]) {
            if !ready {
                continue;
            }
            // At most a bounded batch per socket and turn, so one chatty app cannot starve
            // the others.
            for _ in 0..64 {
                // Nothing more queued (interruptions are retried there), or an error.
                let Ok((n, sender)) = kelpie_sys::recv_notify(socket.as_fd(), &mut buf) else {
                    break;
                };
                let signals = signals_of(&buf[..n]);
                if !signals.is_empty() {
                    deliver(*owner, sender, signals);
                }
            }
        }
    }
}

/// One assignment per line, as sd_notify sends them: `READY=1` becomes [`ProcessSignal::Ready`],
/// `WATCHDOG=1` [`ProcessSignal::Watchdog`], `STATUS=` and `X_KELPIE_METRIC=`
/// [`ProcessSignal::Published`]; other assignments (`MAINPID=`, `BARRIER=1`...) are ignored.
fn signals_of(datagram: &[u8]) -> Vec<ProcessSignal> {
    datagram
        .split(|b| *b == b'\n')
        .filter_map(|line| match parse_notify_line(line)? {
            NotifyLine::Ready => Some(ProcessSignal::Ready),
            NotifyLine::Watchdog => Some(ProcessSignal::Watchdog),
            published => Some(ProcessSignal::Published(Box::new(published))),
        })
        .collect()
}
