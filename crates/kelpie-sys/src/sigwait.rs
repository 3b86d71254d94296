//! Taking signals synchronously: block them in every thread, then wait for them in one thread
//! of our choosing (`sigwait`), instead of running a handler at an arbitrary point of the
//! program. Used by the test app's graceful stop.

use std::io;
use std::mem::MaybeUninit;

/// Signals blocked by [`block_signals`], to be taken with [`BlockedSignals::wait`].
#[derive(Clone, Copy)]
pub struct BlockedSignals {
    set: libc::sigset_t,
}

/// Block `signals` in the calling thread. Threads it spawns afterwards inherit the mask, so
/// call it before spawning any: the signals are then delivered to no thread and stay pending
/// until [`BlockedSignals::wait`] takes them. (std's `Command` clears the mask in children.)
pub fn block_signals(signals: &[i32]) -> io::Result<BlockedSignals> {
    change_mask(libc::SIG_BLOCK, signals)
}

/// Unblock `signals` in the calling thread: those pending are delivered now (to the handlers
/// installed meanwhile). A daemon re-executed by `kelpie update` starts with its signals blocked
/// and calls this once its handlers are in place.
pub fn unblock_signals(signals: &[i32]) -> io::Result<()> {
    change_mask(libc::SIG_UNBLOCK, signals).map(|_| ())
}

fn change_mask(how: libc::c_int, signals: &[i32]) -> io::Result<BlockedSignals> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set behind the pointer, which points at
    // writable memory of the right size.
    if unsafe { libc::sigemptyset(set.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigemptyset succeeded, so the set is initialised.
    let mut set = unsafe { set.assume_init() };
    for &signal in signals {
        // SAFETY: sigaddset updates an initialised set we own; a bad number is refused with
        // EINVAL, nothing else is touched.
        if unsafe { libc::sigaddset(&mut set, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: pthread_sigmask reads the initialised set and changes only this thread's mask
    // (`how` is SIG_BLOCK or SIG_UNBLOCK);
    // the previous mask is not asked for (null pointer).
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(BlockedSignals { set })
}

impl BlockedSignals {
    /// Wait until one of the signals is pending, take it and return its number. Any thread
    /// may wait, as long as every thread has them blocked.
    pub fn wait(&self) -> io::Result<i32> {
        let mut signal: libc::c_int = 0;
        // SAFETY: sigwait reads the initialised set and writes one integer we own.
        let rc = unsafe { libc::sigwait(&self.set, &mut signal) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_taken_by_wait() {
        // The test's own thread: the mask only affects it (and it spawns nothing).
        let blocked = block_signals(&[libc::SIGUSR2]).expect("block");
        // SAFETY: raise() sends SIGUSR2 to this thread, which has it blocked: it stays
        // pending instead of running the default action (terminating the test process).
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        assert_eq!(blocked.wait().expect("wait"), libc::SIGUSR2);
    }

    #[test]
    fn an_invalid_signal_is_refused() {
        assert!(block_signals(&[0x7fff]).is_err());
    }
}
