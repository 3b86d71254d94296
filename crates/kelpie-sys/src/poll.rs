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
}
