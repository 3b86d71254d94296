//! The keeper: what lets the apps outlive the daemon.
//!
//! An app's stdout and stderr are pipes the daemon reads; the notify socket it sends to and
//! its Node IPC channel are sockets whose other end the daemon holds; an app with a Kelpie-owned port
//! accepts on a socket the daemon keeps open. If those ends closed with the daemon, a daemon
//! killed with `-9` would take the apps with it: their next write would get SIGPIPE.
//!
//! So the daemon starts a small process of its own program, the keeper (`kelpie daemon
//! --keeper`), and sends it a second descriptor of each of those ends as it appears
//! ([`hold`], by `SCM_RIGHTS`), and tells it when each is gone. The keeper does nothing else
//! while the daemon lives. When the daemon goes without saying goodbye, the keeper takes what
//! the pipes hold (no app blocks on a full pipe): raw output straight into the app's log file
//! (`splice`: it never sits in a memory or a spool a next daemon could lose), other output into
//! spool files; and it waits at `<home>/keeper.sock`.
//! The next daemon (started by the next command, or by the boot service) connects there first,
//! takes everything (the daemon's `reclaim.rs`, above this crate: it
//! builds the other modules' hand-over types), and adopts the processes that are still the ones its
//! `state.json` recorded (pid and start time, which the keeper read when given each), processing
//! the spooled output first.
//!
//! The keeper is told goodbye ([`dismiss`]) when the daemon exits on purpose, and before it
//! re-executes itself for `kelpie update` (which passes the same descriptors by itself).

mod client;
mod kept;
mod server;
pub mod wire;

pub use client::{dismiss, hold, hold_all_now, hold_now, restart, start, Held};
pub use server::run;
pub use wire::Holding;
