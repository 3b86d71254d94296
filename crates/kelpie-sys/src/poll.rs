//! Waiting, with a timeout, for a descriptor to become readable: a thread that accepts
//! connections can then look at a stop flag now and then instead of blocking in accept().

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Wait up to `timeout` (rounded up to whole milliseconds) until `fd` is readable (for a
/// listening socket: a connection is queued) or in error. False when the time ran out or a
/// signal interrupted the wait. Readable does not mean a read will not block: with a socket
/// shared between processes, another may have taken the connection first.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut entry = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll reads and writes exactly the one pollfd we pass, which lives on our
    // stack; the BorrowedFd keeps the descriptor open during the call.
    let ready = unsafe { libc::poll(&mut entry, 1, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(error);
    }
    Ok(ready > 0)
}

/// Wait until at least one of `fds` is readable, in error or hung up (a pipe or socket whose
/// other end is closed), for at most `timeout` (rounded up to whole milliseconds; `None`: no
/// limit). Says which are; none when the time ran out or a signal interrupted the wait. For a
/// thread that waits on its work and on a wake-up descriptor at once.
pub fn wait_readable_any<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut entries = fds.map(|fd| libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    });
    let millis = match timeout {
        Some(timeout) => timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        None => -1,
    };
    // SAFETY: poll reads and writes exactly the N pollfds of `entries`, which lives on our
    // stack for the whole call; the BorrowedFds keep the descriptors open during it.
    let ready = unsafe { libc::poll(entries.as_mut_ptr(), N as libc::nfds_t, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok([false; N]);
        }
        return Err(error);
    }
    Ok(entries.map(|entry| entry.revents != 0))
}

/// [`wait_readable_any`] for a number of descriptors known only at run time (a keeper's pipes).
pub fn wait_readable_many(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut entries: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let millis = match timeout {
        Some(timeout) => timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        None => -1,
    };
    // SAFETY: poll reads and writes exactly `entries.len()` pollfds of the vector, which lives
    // for the whole call; the BorrowedFds keep the descriptors open during it.
    let ready = unsafe { libc::poll(entries.as_mut_ptr(), entries.len() as libc::nfds_t, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(error);
    }
    Ok(entries.iter().map(|entry| entry.revents != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_becomes_readable_when_written() {
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        let began = std::time::Instant::now();
        assert!(!wait_readable(reader.as_fd(), Duration::from_millis(30)).expect("poll"));
        assert!(began.elapsed() >= Duration::from_millis(30));
        writer.write_all(b"x").expect("write");
        assert!(wait_readable(reader.as_fd(), Duration::from_secs(5)).expect("poll"));
    }

    #[test]
    fn any_tells_which_descriptor_is_readable() {
        let (first, _first_writer) = std::io::pipe().expect("pipe");
        let (second, mut second_writer) = std::io::pipe().expect("pipe");
        let fds = || [first.as_fd(), second.as_fd()];
        let began = std::time::Instant::now();
        let ready = wait_readable_any(fds(), Some(Duration::from_millis(30))).expect("poll");
        assert_eq!(ready, [false, false]);
        assert!(began.elapsed() >= Duration::from_millis(30));
        second_writer.write_all(b"x").expect("write");
        assert_eq!(wait_readable_any(fds(), None).expect("poll"), [false, true]);
        drop(second_writer);
        let mut byte = [0u8; 1];
        std::io::Read::read(&mut &second, &mut byte).expect("read");
        // Hung up: still reported, so a reader learns that every writer is gone.
        assert_eq!(wait_readable_any(fds(), None).expect("poll"), [false, true]);
    }
}
