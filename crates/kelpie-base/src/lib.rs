//! The bottom of the daemon's crates: what every one of them uses and that uses none of them.
//! For now the daemon's own log lines ([`daemon_log!`]), written by the daemon and by its keeper
//! alike; the daemon's tasks, mailbox and clock are to follow (the clock's paused-time hooks for
//! the in-process tests need a feature first).

pub mod daemon_log;
