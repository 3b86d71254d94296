//! What the daemon, its keeper and the next daemon say to each other: one JSON message per
//! sequenced packet, with the descriptors it is about attached.

use kelpie_proto::LogStream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// Longest message (a process's entry is a few hundred bytes).
const MAX_MESSAGE: usize = 64 * 1024;

/// What a held entry is, and which descriptors come with it (in this order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holding {
    /// A process's stdout or stderr pipe: `[read end]`.
    Pipe {
        /// Whose.
        pm_id: u32,
        /// Which stream.
        stream: LogStream,
        /// The one log file its bytes go to as they are (raw lines): while no daemon runs, the
        /// keeper moves them there itself (`splice`), so they never sit in a spool that a
        /// daemon killed again right after taking it over would lose. `None`: into a spool.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
    },
    /// A running process: `[pidfd (when `pidfd`), its own notify socket (when `notify`), IPC
    /// end (when `ipc`)]`. A daemon gives neither a pidfd nor a notify socket now: the keeper
    /// tells the process by its pid and start time, and holds the shared socket once.
    Process {
        /// Its instance.
        pm_id: u32,
        /// Its pid (and process group).
        pid: u32,
        /// Its cgroup, when it has one.
        cgroup: Option<PathBuf>,
        /// Its pidfd comes with it (a keeper of an earlier Kelpie always sent one).
        #[serde(default = "yes")]
        pidfd: bool,
        /// A notify socket of its own comes with it (a keeper of a Kelpie from before the
        /// shared socket always sent one; now only processes handed over from such a daemon).
        #[serde(default = "yes")]
        notify: bool,
        /// A Node IPC channel comes with it.
        ipc: bool,
        /// Its start time (clock ticks after boot), read by the keeper when given a process
        /// without a pidfd: with the pid, it tells the process from a later one that reused
        /// its pid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started: Option<u64>,
    },
    /// The daemon's shared notify socket (its processes keep its name): `[socket]`.
    Notify,
    /// An app's listening socket: `[socket]`.
    Socket {
        /// The app's name.
        app: String,
    },
    /// A socket a cluster-mode Node app's code asked for (`app.listen(3000)`): `[socket]`.
    Claimed {
        /// The app's name.
        app: String,
        /// The address it is bound to.
        address: kelpie_core::ListenAddress,
    },
}

impl Holding {
    /// How many descriptors come with it.
    pub(crate) fn fd_count(&self) -> usize {
        match self {
            Holding::Pipe { .. }
            | Holding::Socket { .. }
            | Holding::Claimed { .. }
            | Holding::Notify => 1,
            Holding::Process {
                pidfd, notify, ipc, ..
            } => usize::from(*pidfd) + usize::from(*notify) + usize::from(*ipc),
        }
    }
}

fn yes() -> bool {
    true
}

/// Ids a daemon releases in one message at most: its JSON stays far below [`MAX_MESSAGE`]
/// (`delete all` of thousands of apps lets go of three entries each at once).
pub const MAX_RELEASES: usize = 1000;

/// One entry for the keeper to hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldEntry {
    /// The daemon's number for it.
    pub(crate) id: u64,
    /// What it is.
    pub(crate) holding: Holding,
}

/// From a daemon to a keeper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToKeeper {
    /// Close what was held under each of `release`, then hold the descriptors of each of
    /// `hold` until released (they come in its order, [`Holding::fd_count`] each). One message
    /// for what a spawn has the keeper do (the last process's releases, the new pipes): each
    /// message is a wake-up of the keeper and a `sendmsg` of the daemon's. Only the daemon that
    /// started the keeper sends it (a keeper of the same program).
    Change {
        /// Ids let go of (at most [`MAX_RELEASES`]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        release: Vec<u64>,
        /// What to hold (at most [`kelpie_sys::MAX_FDS_PER_MESSAGE`] descriptors in all).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        hold: Vec<HoldEntry>,
    },
    /// The daemon ends on purpose (its apps are stopped, or it re-executes itself): exit.
    Bye,
    /// A new daemon asks for everything (only once the daemon that started the keeper is gone).
    Take,
    /// The new daemon has everything: the keeper may exit.
    Taken,
}

/// From a keeper to the daemon taking over.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromKeeper {
    /// One held entry, with its descriptors (a pipe that reached its end comes without).
    Entry {
        /// What it is.
        holding: Holding,
        /// What was read from it meanwhile (a pipe), in a file.
        spool: Option<PathBuf>,
        /// Bytes read from it meanwhile that could not be kept.
        dropped: u64,
        /// The pipe's head continues a line whose start was dropped (a full disk): the next
        /// daemon drops it to that line's end, so no line is written cut short.
        #[serde(default)]
        skip_line: bool,
    },
    /// That was everything.
    Done {
        /// The pid of the daemon that started the keeper.
        daemon_pid: u32,
    },
    /// The keeper will not hand over.
    Refused {
        /// Why.
        why: String,
    },
}

/// Send `message` with `fds` as one packet.
pub fn send<T: Serialize>(
    socket: BorrowedFd<'_>,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    kelpie_sys::send_with_fds(socket, &bytes, fds)
}

/// Receive one packet: `None` when the peer closed.
pub fn recv<T: DeserializeOwned>(socket: BorrowedFd<'_>) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    recv_with(socket, &mut Vec::new())
}

/// [`recv`] into `buf`, kept by a caller that receives many (the keeper: a message per
/// spawn, where 64 KiB allocated, zeroed and freed each time was a tenth of its CPU).
pub fn recv_with<T: DeserializeOwned>(
    socket: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    buf.resize(MAX_MESSAGE, 0);
    let (n, fds) = kelpie_sys::recv_with_fds(socket, buf)?;
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    let message = serde_json::from_slice(&buf[..n]).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unreadable message: {e}"),
        )
    })?;
    Ok(Some((message, fds)))
}
