//! Knowing when any process exits, child or not, without polling: a kqueue of its own per
//! watched process, with `EVFILT_PROC`/`NOTE_EXIT` on it. A kqueue is readable once one of its
//! events has fired, so it is what a pidfd is on Linux: the caller waits on it the same way.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// A descriptor readable once `pid` has exited; `None` when no such process exists (it has
/// exited already: the caller treats it as ended).
pub(crate) fn watch(pid: u32) -> io::Result<Option<OwnedFd>> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // kqueue(2) makes no descriptor a child inherits across fork, so none reaches an app.
    // SAFETY: kqueue() makes a new descriptor, owned from here.
    let queue = unsafe { libc::kqueue() };
    if queue < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    let queue = unsafe { OwnedFd::from_raw_fd(queue) };
    crate::portable::set_flags(std::os::fd::AsFd::as_fd(&queue), false)?;
    // SAFETY: a zeroed kevent is a valid value (integers and a null pointer).
    let mut change: libc::kevent = unsafe { std::mem::zeroed() };
    change.ident = pid as libc::uintptr_t;
    change.filter = libc::EVFILT_PROC;
    change.flags = libc::EV_ADD | libc::EV_ONESHOT;
    change.fflags = libc::NOTE_EXIT;
    // SAFETY: one change in, no event out, no timeout needed (registration does not wait).
    let registered = unsafe {
        libc::kevent(
            std::os::fd::AsRawFd::as_raw_fd(&queue),
            &change,
            1,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    };
    if registered < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ESRCH) {
            return Ok(None);
        }
        return Err(error);
    }
    Ok(Some(queue))
}
