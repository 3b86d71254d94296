//! The bottom of the daemon's crates: what every one of them uses and that uses none of them.
//! The daemon's own log lines ([`daemon_log!`]), written by the daemon and by its keeper alike;
//! its tasks and their owners ([`tasks`]), the instances' mailbox ([`mailbox`]), its clock
//! ([`clock`]), and the small rules about memory and descriptors that every layer keeps
//! ([`room`], [`descriptors`]).

pub mod clock;
pub mod daemon_log;
pub mod descriptors;
pub mod mailbox;
pub mod reaper;
pub mod room;
pub mod tasks;
