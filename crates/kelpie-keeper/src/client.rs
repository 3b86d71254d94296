//! The daemon's side: one thread that starts the keeper, sends it a second descriptor of
//! everything the apps are connected to as it appears, and what is gone as it goes. The
//! blocking pool sends a spawn's holds itself ([`hold_now`]), under the same lock: a restart
//! then wakes no other thread for them (it was two round trips to this thread per spawn). A keeper
//! that dies (or is dismissed for an update that then fails) is replaced and given everything
//! again: the thread remembers each held descriptor by its number in the daemon and the file
//! it is (device and inode), and copies it again from its owner's descriptor then. It keeps no
//! copy of its own: that was 4 more descriptors per app in the daemon, for a rare event.

use super::server::KEEPER_FD;
use super::wire::{self, HoldEntry, Holding, ToKeeper};
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// How often the thread looks whether the keeper still lives when nothing else happens.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How long a keeper told goodbye may take to exit.
const BYE_WITHIN: Duration = Duration::from_secs(2);
/// How long a send may wait for the keeper to take what is queued on its socket (a full socket
/// buffer: some 250 messages): a keeper stopped for that long is replaced, so a hung keeper
/// never holds a spawn (or the daemon's exit) for longer.
const SEND_WITHIN: Duration = Duration::from_secs(2);

enum Order {
    Hold {
        id: u64,
        holding: Holding,
        fds: Vec<OwnedFd>,
        owners: Vec<Owner>,
    },
    /// Say goodbye to the keeper (daemon exit, or the exec of an update); answered once it
    /// has exited. Holds are kept, not sent, until [`Order::Start`].
    Dismiss(tokio::sync::oneshot::Sender<()>),
    /// Start a keeper again and give it everything held.
    Start,
    /// Send the releases let go of now, not at the next wake: a listening socket's (see
    /// [`Held`]).
    ReleaseNow,
}

struct Client {
    orders: mpsc::Sender<Order>,
    /// The keeper and what it holds: whoever sends to it (the thread, or a spawn's
    /// [`hold_now`]) holds this lock, so messages never interleave and a replaced keeper is
    /// given everything exactly once.
    link: Mutex<Link>,
    /// Holds let go of, for the keeper to be told at the next send (a hold, or the thread's
    /// look at the keeper every [`LOOK_EVERY`]): an order each woke the thread, three times for
    /// each process that ended (its two pipes and itself), the most of its work in a crash loop.
    /// A release is never late for the hold after it: these are sent first.
    released: Mutex<Vec<u64>>,
    next_id: AtomicU64,
}

static CLIENT: OnceLock<Client> = OnceLock::new();

/// Start the keeper for this daemon (once; not under `kelpie runtime`, whose container ends
/// with it anyway).
pub fn start(home: &Home) {
    let (orders, received) = mpsc::channel();
    let client = Client {
        orders,
        link: Mutex::new(Link::new(home.clone())),
        released: Mutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
    };
    if CLIENT.set(client).is_err() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("kelpie-keeper".into())
        .spawn(move || run(received));
    if let Err(e) = spawned {
        kelpie_base::daemon_log!(
            "keeper: cannot start its thread ({e}); apps will not outlive a daemon crash"
        );
    }
}

/// A held descriptor's owner in the daemon: its number and the file it is.
#[derive(Debug, Clone, Copy)]
struct Owner {
    fd: std::os::fd::RawFd,
    identity: kelpie_sys::FileIdentity,
}

/// Something held by the keeper until this is dropped. A pipe's or a process's release waits
/// for the keeper thread's next wake; a listening socket's is sent at once (`urgent`): the
/// keeper's copy would keep the port open after its last app is gone.
pub struct Held {
    id: u64,
    urgent: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(client) = CLIENT.get() {
            if let Ok(mut released) = client.released.lock() {
                released.push(self.id);
            }
            if self.urgent {
                let _ = client.orders.send(Order::ReleaseNow);
            }
        }
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.id)
    }
}

/// Have the keeper hold a second descriptor of each of `fds` (see [`Holding`] for which, in
/// which order), sent by the keeper thread: it never waits for the keeper (for async code).
/// `None` without a keeper, or when a descriptor cannot be duplicated.
pub fn hold(holding: Holding, fds: &[BorrowedFd<'_>]) -> Option<Held> {
    let client = CLIENT.get()?;
    let owned = || -> std::io::Result<(Vec<OwnedFd>, Vec<Owner>)> {
        let copies = fds
            .iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect::<std::io::Result<_>>()?;
        Ok((copies, owners_of(fds)?))
    };
    let (fds, owners) = owned()
        .inspect_err(|e| kelpie_base::daemon_log!("keeper: cannot pass on {holding:?}: {e}"))
        .ok()?;
    let held = client.new_held(&holding);
    client
        .orders
        .send(Order::Hold {
            id: held.id,
            holding,
            fds,
            owners,
        })
        .ok()?;
    Some(held)
}

/// [`hold`], sent from this thread: once it returns the keeper has the descriptors (they are
/// in its socket's queue: a daemon killed right after does not take them with it). Blocking
/// (for the blocking pool, around a spawn, so that a process is never without its keeper): a
/// keeper that takes nothing for [`SEND_WITHIN`] is replaced.
pub fn hold_now(holding: Holding, fds: &[BorrowedFd<'_>]) -> Option<Held> {
    let [held] = hold_all_now([(holding, fds)]);
    held
}

/// [`hold_now`] for each of `holds`, in one message to the keeper (with what was let go of
/// since the last): a spawn's two pipes, after its last process's three releases, cost one
/// `sendmsg` and one wake-up of the keeper, not five. At most
/// [`kelpie_sys::MAX_FDS_PER_MESSAGE`] descriptors in all.
pub fn hold_all_now<const N: usize>(holds: [(Holding, &[BorrowedFd<'_>]); N]) -> [Option<Held>; N] {
    let Some(client) = CLIENT.get() else {
        return [const { None }; N];
    };
    let mut entries = Vec::with_capacity(N);
    let mut fds = Vec::new();
    let held = holds.map(|(holding, these)| {
        let owners = owners_of(these)
            .inspect_err(|e| kelpie_base::daemon_log!("keeper: cannot pass on {holding:?}: {e}"))
            .ok()?;
        let held = client.new_held(&holding);
        entries.push((
            HoldEntry {
                id: held.id,
                holding,
            },
            owners,
        ));
        fds.extend_from_slice(these);
        Some(held)
    });
    client.link().change(client, entries, fds);
    held
}

/// The daemon's number and file of each of `fds`.
fn owners_of(fds: &[BorrowedFd<'_>]) -> std::io::Result<Vec<Owner>> {
    fds.iter()
        .map(|fd| {
            Ok(Owner {
                fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                identity: kelpie_sys::file_identity(*fd)?,
            })
        })
        .collect()
}

impl Client {
    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn new_held(&self, holding: &Holding) -> Held {
        Held {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            urgent: matches!(holding, Holding::Socket { .. } | Holding::Claimed { .. }),
        }
    }
}

/// Tell the keeper goodbye and wait until it has exited: the daemon ends on purpose (or
/// re-executes itself), so nothing must be drained from the pipes behind its back.
pub async fn dismiss() {
    let Some(client) = CLIENT.get() else {
        return;
    };
    let (done, exited) = tokio::sync::oneshot::channel();
    if client.orders.send(Order::Dismiss(done)).is_ok() {
        let _ = exited.await;
    }
}

/// Start a keeper again after [`dismiss`] (an update whose exec failed).
pub fn restart() {
    if let Some(client) = CLIENT.get() {
        let _ = client.orders.send(Order::Start);
    }
}

/// The keeper thread: the holds of async code, goodbyes and restarts, and a look every
/// [`LOOK_EVERY`] whether the keeper still lives (and at what was let go of since).
fn run(orders: mpsc::Receiver<Order>) {
    let Some(client) = CLIENT.get() else { return };
    // Given anything a spawn held before this thread ran.
    client.link().replace_keeper();
    loop {
        let order = orders.recv_timeout(LOOK_EVERY);
        let mut link = client.link();
        if !matches!(order, Ok(Order::Hold { .. })) {
            // What was let go of goes first, whatever comes next (a hold carries it along).
            link.change(client, Vec::new(), Vec::new());
        }
        match order {
            Ok(Order::Hold {
                id,
                holding,
                fds,
                owners,
            }) => {
                let entry = (HoldEntry { id, holding }, owners);
                link.change(client, vec![entry], fds.iter().map(AsFd::as_fd).collect());
            }
            Ok(Order::Dismiss(done)) => {
                link.say_goodbye();
                link.dismissed = true;
                let _ = done.send(());
            }
            Ok(Order::Start) => {
                link.dismissed = false;
                link.replace_keeper();
            }
            // Its releases were sent above.
            Ok(Order::ReleaseNow) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !link.dismissed && !link.keeper_alive() {
                    kelpie_base::daemon_log!("keeper: it exited; starting another");
                    link.replace_keeper();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The keeper, and what it holds.
struct Link {
    home: Home,
    /// What the keeper holds, and where its descriptors are in the daemon.
    held: BTreeMap<u64, (Holding, Vec<Owner>)>,
    keeper: Option<Running>,
    dismissed: bool,
}

struct Running {
    child: std::process::Child,
    socket: OwnedFd,
}

impl Link {
    fn new(home: Home) -> Link {
        Link {
            home,
            held: BTreeMap::new(),
            keeper: None,
            dismissed: false,
        }
    }

    /// Tell the keeper what the daemon let go of since the last message (see
    /// [`Client::released`]), and have it hold `hold` (with `fds`, in their order), in one
    /// message; the holds are remembered for a keeper that replaces it. A keeper that does not
    /// take it is replaced, and given everything held.
    fn change(
        &mut self,
        client: &Client,
        hold: Vec<(HoldEntry, Vec<Owner>)>,
        fds: Vec<BorrowedFd<'_>>,
    ) {
        let mut release = self.let_go(client);
        // More than a message's worth (a `delete all`): the first ones on their own.
        while release.len() > wire::MAX_RELEASES {
            let rest = release.split_off(wire::MAX_RELEASES);
            let message = ToKeeper::Change {
                release,
                hold: Vec::new(),
            };
            self.send_or_replace(&message, Vec::new());
            release = rest;
        }
        if release.is_empty() && hold.is_empty() {
            return;
        }
        let hold = hold
            .into_iter()
            .map(|(entry, owners)| {
                self.held.insert(entry.id, (entry.holding.clone(), owners));
                entry
            })
            .collect();
        self.send_or_replace(&ToKeeper::Change { release, hold }, fds);
    }

    /// The ids let go of (see [`Client::released`]) that the keeper was sent, taken out of
    /// what it holds. An id whose hold is still in the queue of orders stays for the next
    /// message.
    fn let_go(&mut self, client: &Client) -> Vec<u64> {
        let let_go = match client.released.lock() {
            Ok(mut released) if !released.is_empty() => std::mem::take(&mut *released),
            _ => return Vec::new(),
        };
        let (sent, not_yet): (Vec<u64>, Vec<u64>) = let_go
            .into_iter()
            .partition(|id| self.held.remove(id).is_some());
        if !not_yet.is_empty() {
            if let Ok(mut released) = client.released.lock() {
                released.extend(not_yet);
            }
        }
        sent
    }

    /// New descriptors of what is held under `id`, from their owners': `None` when one is
    /// gone (its owner closed it; its release is on its way).
    fn held_fds(&self, id: u64) -> Option<Vec<OwnedFd>> {
        let (_, owners) = self.held.get(&id)?;
        owners
            .iter()
            .map(|owner| kelpie_sys::dup_if_still(owner.fd, owner.identity))
            .collect()
    }

    /// Send the keeper `message` with `fds`; a keeper that does not take it (gone, or stopped
    /// for [`SEND_WITHIN`]) is replaced, and given everything held.
    fn send_or_replace(&mut self, message: &ToKeeper, fds: Vec<BorrowedFd<'_>>) {
        if self.send(message, fds) || self.dismissed {
            return;
        }
        kelpie_base::daemon_log!("keeper: it does not take what it is sent; starting another");
        self.replace_keeper();
    }

    /// Send the keeper `message` with `fds`; false if it did not take it (true with no keeper:
    /// there is nobody to replace).
    fn send(&self, message: &ToKeeper, fds: Vec<BorrowedFd<'_>>) -> bool {
        self.keeper
            .as_ref()
            .is_none_or(|keeper| wire::send(keeper.socket.as_fd(), message, &fds).is_ok())
    }

    /// Whether the keeper still lives (its end of the pair is not closed).
    fn keeper_alive(&mut self) -> bool {
        let Some(keeper) = &mut self.keeper else {
            return false;
        };
        // Readable means closed: the keeper never sends its daemon anything.
        let closed =
            kelpie_sys::wait_readable(keeper.socket.as_fd(), Duration::ZERO).unwrap_or(true);
        !closed && matches!(keeper.child.try_wait(), Ok(None))
    }

    /// A new keeper, given everything held.
    fn replace_keeper(&mut self) {
        if let Some(mut old) = self.keeper.take() {
            let _ = old.child.kill();
            let _ = old.child.wait();
        }
        self.keeper = self.spawn();
        for (id, (holding, _)) in &self.held {
            let message = ToKeeper::Change {
                release: Vec::new(),
                hold: vec![HoldEntry {
                    id: *id,
                    holding: holding.clone(),
                }],
            };
            let Some(fds) = self.held_fds(*id) else {
                continue;
            };
            if !self.send(&message, fds.iter().map(AsFd::as_fd).collect()) {
                kelpie_base::daemon_log!("keeper: the new keeper does not take what it is given");
                break;
            }
        }
    }

    fn say_goodbye(&mut self) {
        let Some(mut keeper) = self.keeper.take() else {
            return;
        };
        let _ = wire::send(keeper.socket.as_fd(), &ToKeeper::Bye, &[]);
        // It closes its end when it exits.
        let _ = kelpie_sys::wait_readable(keeper.socket.as_fd(), BYE_WITHIN);
        if !matches!(keeper.child.try_wait(), Ok(Some(_))) {
            #[expect(
                clippy::disallowed_methods,
                reason = "the daemon's last act: nothing else is served any more"
            )]
            std::thread::sleep(Duration::from_millis(20));
            if !matches!(keeper.child.try_wait(), Ok(Some(_))) {
                let _ = keeper.child.kill();
            }
        }
        let _ = keeper.child.wait();
    }

    /// Start `kelpie daemon --keeper` with our end of a new pair at [`KEEPER_FD`].
    fn spawn(&self) -> Option<Running> {
        let started = (|| -> std::io::Result<Running> {
            let (ours, theirs) = kelpie_sys::message_socket_pair()?;
            kelpie_sys::set_send_timeout(ours.as_fd(), SEND_WITHIN)?;
            let program = kelpie_sys::own_program();
            let argv = vec![
                "kelpie".to_string(),
                "daemon".to_string(),
                "--keeper".to_string(),
            ];
            let mut env: Vec<(String, String)> = self
                .home
                .environment()
                .into_iter()
                .map(|(name, value)| (name.to_string(), value.to_string_lossy().into_owned()))
                .collect();
            // The keeper speaks over the pair as the daemon does: the same backend.
            env.push((
                kelpie_sys::platform::PLATFORM_VARIABLE.to_string(),
                kelpie_sys::platform::backend().name().to_string(),
            ));
            let mut command = std::process::Command::new(&program);
            command
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null());
            kelpie_sys::exec_with_fds(
                &mut command,
                &program,
                &argv,
                &env,
                false,
                vec![(std::os::fd::AsRawFd::as_raw_fd(&theirs), KEEPER_FD)],
            )?;
            let child = command.spawn()?;
            drop(theirs);
            Ok(Running {
                child,
                socket: ours,
            })
        })();
        started
            .inspect_err(|e| {
                kelpie_base::daemon_log!(
                    "keeper: cannot start it ({e}); apps will not outlive a daemon crash"
                )
            })
            .ok()
    }
}
