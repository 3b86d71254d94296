//! Pipes and non-blocking opens.

/// `O_NONBLOCK` for `OpenOptionsExt::custom_flags`: opening a FIFO nobody reads, or a device,
/// must never hang the caller.
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;

use std::os::fd::BorrowedFd;

/// Ask the kernel for a pipe buffer of `bytes` (Linux `F_SETPIPE_SZ`); returns the capacity it
/// gave. An unprivileged process may get at most `/proc/sys/fs/pipe-max-size` (1 MiB by default).
pub fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> std::io::Result<usize> {
    // The kernel takes an int: ask for the most it can be told.
    let wanted = bytes.min(libc::c_int::MAX as usize);
    Ok(rustix::pipe::fcntl_setpipe_size(fd, wanted)?)
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
