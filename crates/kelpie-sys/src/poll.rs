//! Waiting, with a timeout, for a descriptor to become readable: a thread that accepts
//! connections can then look at a stop flag now and then instead of blocking in accept().

use rustix::event::{PollFd, PollFlags, Timespec};
use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

/// `timeout` rounded up to whole milliseconds (as poll(2) counts them), capped like its
/// `int` argument; `None`: no limit.
fn poll_timeout(timeout: Option<Duration>) -> Option<Timespec> {
    let millis = timeout?.as_micros().div_ceil(1000).min(i32::MAX as u128) as i64;
    Some(Timespec {
        tv_sec: millis / 1000,
        tv_nsec: (millis % 1000) * 1_000_000,
    })
}

/// poll(2) on `entries`: how many are ready, 0 when the time ran out or a signal interrupted
/// the wait.
fn poll(entries: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    match rustix::event::poll(entries, poll_timeout(timeout).as_ref()) {
        Ok(ready) => Ok(ready),
        Err(rustix::io::Errno::INTR) => Ok(0),
        Err(error) => Err(error.into()),
    }
}

/// Wait up to `timeout` (rounded up to whole milliseconds) until `fd` is readable (for a
/// listening socket: a connection is queued) or in error. False when the time ran out or a
/// signal interrupted the wait. Readable does not mean a read will not block: with a socket
/// shared between processes, another may have taken the connection first.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut entries = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    Ok(poll(&mut entries, Some(timeout))? > 0)
}

/// For tests: whether `fd` becomes readable within `limit`, waiting again after a signal cut
/// the wait short (the portable backend's SIGCHLD handler, once any test started its exit
/// watcher, interrupts the waits of every thread).
#[cfg(test)]
pub(crate) fn readable_within(fd: BorrowedFd<'_>, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if wait_readable(fd, left).expect("poll") {
            return true;
        }
        if left.is_zero() {
            return false;
        }
    }
}

/// Wait until at least one of `fds` is readable, in error or hung up (a pipe or socket whose
/// other end is closed), for at most `timeout` (rounded up to whole milliseconds; `None`: no
/// limit). Says which are; none when the time ran out or a signal interrupted the wait. For a
/// thread that waits on its work and on a wake-up descriptor at once.
pub fn wait_readable_any<const N: usize>(
    fds: [BorrowedFd<'_>; N],
    timeout: Option<Duration>,
) -> io::Result<[bool; N]> {
    let mut entries = fds.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN));
    if poll(&mut entries, timeout)? == 0 {
        return Ok([false; N]);
    }
    Ok(entries.map(|entry| !entry.revents().is_empty()))
}

/// [`wait_readable_any`] for a number of descriptors known only at run time (a keeper's pipes).
pub fn wait_readable_many(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut entries: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    if poll(&mut entries, timeout)? == 0 {
        return Ok(vec![false; fds.len()]);
    }
    Ok(entries
        .iter()
        .map(|entry| !entry.revents().is_empty())
        .collect())
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
        assert!(readable_within(reader.as_fd(), Duration::from_secs(5)));
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
