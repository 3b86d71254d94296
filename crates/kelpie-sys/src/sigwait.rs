//! Taking signals synchronously: block them in every thread, then wait for them in one thread
//! of our choosing (`sigwait`), instead of running a handler at an arbitrary point of the
//! program. Used by the test app's graceful stop and by the daemon around its re-exec.

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};
use std::io;

/// Signals blocked by [`block_signals`], to be taken with [`BlockedSignals::wait`].
#[derive(Clone, Copy)]
pub struct BlockedSignals {
    set: SigSet,
}

/// Block `signals` in the calling thread. Threads it spawns afterwards inherit the mask, so
/// call it before spawning any: the signals are then delivered to no thread and stay pending
/// until [`BlockedSignals::wait`] takes them. (std's `Command` clears the mask in children.)
///
/// Only named signals (`SIGTERM`...): a number that is not one, such as a real-time signal,
/// is refused with `EINVAL` and nothing is blocked.
pub fn block_signals(signals: &[i32]) -> io::Result<BlockedSignals> {
    change_mask(SigmaskHow::SIG_BLOCK, signals)
}

/// Unblock `signals` in the calling thread: those pending are delivered now (to the handlers
/// installed meanwhile). A daemon re-executed by `kelpie update` starts with its signals blocked
/// and calls this once its handlers are in place. Same signals as [`block_signals`].
pub fn unblock_signals(signals: &[i32]) -> io::Result<()> {
    change_mask(SigmaskHow::SIG_UNBLOCK, signals).map(|_| ())
}

fn change_mask(how: SigmaskHow, signals: &[i32]) -> io::Result<BlockedSignals> {
    let mut set = SigSet::empty();
    for &signal in signals {
        // Fails with EINVAL for a number that is not a signal nix names.
        set.add(Signal::try_from(signal)?);
    }
    // Only this thread's mask changes; the previous mask is not asked for.
    pthread_sigmask(how, Some(&set), None)?;
    Ok(BlockedSignals { set })
}

impl BlockedSignals {
    /// Wait until one of the signals is pending, take it and return its number. Any thread
    /// may wait, as long as every thread has them blocked.
    pub fn wait(&self) -> io::Result<i32> {
        Ok(self.set.wait()? as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_taken_by_wait() {
        // The test's own thread: the mask only affects it (and it spawns nothing).
        let blocked = block_signals(&[libc::SIGUSR2]).expect("block");
        // To this thread, which has it blocked: it stays pending instead of running the
        // default action (terminating the test process).
        nix::sys::signal::raise(Signal::SIGUSR2).expect("raise");
        assert_eq!(blocked.wait().expect("wait"), libc::SIGUSR2);
    }

    #[test]
    fn an_invalid_signal_is_refused() {
        assert!(block_signals(&[0x7fff]).is_err());
        assert!(block_signals(&[0]).is_err());
    }
}
