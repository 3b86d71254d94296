//! What macOS alone has, for the portable backend there: libproc for what a process is
//! (memory, CPU, children, start time: what Linux reads in /proc), and kqueue's `EVFILT_PROC`
//! to know when a process that is not a child exits. Type-checked and linted in CI for both
//! darwin targets; no Mac runs these tests (docs/platforms.md).

pub(crate) mod exit_event;
pub(crate) mod libproc;
