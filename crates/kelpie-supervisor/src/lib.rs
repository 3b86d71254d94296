//! Kelpie's supervisor: the apps and their processes, below the daemon's faces.
//!
//! # Theory of operation
//!
//! One **supervisor actor** ([`supervisor`]) owns the table of apps. The daemon's faces (the
//! control socket's server, the web server, in the `kelpie-daemon` crate above this one) turn
//! each request into a message to it ([`supervisor_channel`]); nothing else touches the table,
//! so there is no lock to hold. Each instance (one `pm_id`) has its own **instance task**
//! ([`instance`]) that owns the child process, waits on it, signals it and arms its timers. The
//! task feeds what happens into the pure state machine of `kelpie-core` and carries out the
//! effects it returns, then reports the new state to the supervisor. A crash is therefore seen
//! when the child exits (no polling) and acted on at once.
//!
//! State is written by a **persister thread** ([`persist`]): atomically (temp file, fsync,
//! rename, fsync of the directory), after every command before its reply, and shortly after
//! every state change otherwise. A daemon killed with `kill -9` loses no configuration.
//!
//! An app's stdout and stderr are pipes read by the **log pipeline** (the `kelpie-logs` crate,
//! below this one): its own threads read, frame, format and write them, rotate the files, and
//! keep recent lines for `kelpie logs`. The supervisor is never in the output path.
//!
//! This crate does not depend on the daemon's: that the supervisor knows none of its faces is a
//! fact of the crate graph.

// The crates below, by the names the modules have always used (`crate::tasks`, `crate::logs`).
/// The notifications and the exception inbox, which the supervisor feeds (the daemon's faces
/// answer `notify` and `errors` from the same handle).
pub use kelpie_alerts as alerts;
use kelpie_base::{clock, daemon_log, descriptors, mailbox, reaper, room, tasks};
use kelpie_keeper as keeper;
use kelpie_link as link;
use kelpie_link::{readiness, sockets};
use kelpie_logs as logs;
use kelpie_watch as watch;

mod atomic;
pub mod bus;
pub mod cgroups;
pub mod config_load;
mod daemon_error;
mod dump;
mod forensics;
#[cfg(test)]
mod format_fixtures_tests;
pub mod health;
pub mod hello;
pub mod home_setup;
pub mod host;
pub mod instance;
mod maybe;
pub mod monitor;
mod notices;
pub mod persist;
mod pid_files;
mod process;

pub mod reclaim;
mod runtime_shim;
mod shims;
mod spawn_error;
pub mod spawn_plan;
mod state;
pub mod supervisor;
pub mod supervisor_channel;
pub mod update;

pub use daemon_error::DaemonError;
pub use supervisor::{ForegroundOptions, OutputBatch, OUTPUT_QUEUE};
pub use update::{handoff_format, handoff_formats};
