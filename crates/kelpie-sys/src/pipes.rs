//! Pipes and non-blocking opens.

/// `O_NONBLOCK` for `OpenOptionsExt::custom_flags`: opening a FIFO nobody reads, or a device,
/// must never hang the caller.
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;

use std::os::fd::{AsRawFd, BorrowedFd};

/// Ask the kernel for a pipe buffer of `bytes` (Linux `F_SETPIPE_SZ`); returns the capacity it
/// gave. An unprivileged process may get at most `/proc/sys/fs/pipe-max-size` (1 MiB by default).
pub fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> std::io::Result<usize> {
    let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: fcntl(F_SETPIPE_SZ) on a descriptor the caller keeps open for the duration of the
    // call (the BorrowedFd guarantees it); it takes and returns plain integers.
    let got = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
    if got < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(got as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_can_be_enlarged() {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let got = set_pipe_capacity(reader.as_fd(), 256 * 1024).expect("F_SETPIPE_SZ");
        assert!(got >= 256 * 1024);
    }
}
