//! Pipes and non-blocking opens, and moving a pipe's bytes without consuming them (`tee`) or
//! consuming them only into their destination (`splice`): what lets the daemon look at an app's
//! output without taking it out of the pipe until it is in the log file.

/// `O_NONBLOCK` for `OpenOptionsExt::custom_flags`: opening a FIFO nobody reads, or a device,
/// must never hang the caller.
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;

use crate::portable::pipe_copy;
use std::os::fd::BorrowedFd;

/// Ask the kernel for a pipe buffer of `bytes` (Linux `F_SETPIPE_SZ`); returns the capacity it
/// gave. An unprivileged process may get at most `/proc/sys/fs/pipe-max-size` (1 MiB by default).
/// The portable backend cannot (macOS sizes its pipes itself, up to 64 KiB): `Unsupported`.
pub fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        // The kernel takes an int: ask for the most it can be told.
        let wanted = bytes.min(libc::c_int::MAX as usize);
        return Ok(rustix::pipe::fcntl_setpipe_size(fd, wanted)?);
    }
    let _ = (fd, bytes);
    Err(std::io::ErrorKind::Unsupported.into())
}

/// A pipe whose both ends are non-blocking and close-on-exec: `(read end, write end)`.
pub fn nonblocking_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    crate::portable::pipe_pair(true)
}

/// The read end of a pipe (or FIFO), non-blocking: ready for an event loop, not registered with
/// any (tokio's pipe type registers it, which a caller that only wants the check pays two
/// `epoll_ctl` for).
#[derive(Debug)]
pub struct PipeReader(std::os::fd::OwnedFd);

impl PipeReader {
    /// `fd`, checked to be a pipe (or FIFO), made non-blocking if it was not: a descriptor
    /// this process did not make itself (a pipe handed over by an earlier daemon).
    pub fn checked(fd: std::os::fd::OwnedFd) -> std::io::Result<PipeReader> {
        use rustix::fs::{fcntl_getfl, fcntl_setfl, fstat, FileType, OFlags};
        if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::Fifo {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a pipe",
            ));
        }
        let flags = fcntl_getfl(&fd)?;
        if !flags.contains(OFlags::NONBLOCK) {
            fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
        }
        Ok(PipeReader(fd))
    }

    /// The descriptor.
    pub fn into_fd(self) -> std::os::fd::OwnedFd {
        self.0
    }
}

impl std::os::fd::AsFd for PipeReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A new pipe for a process's output, both ends close-on-exec: `(read end, write end)`. The
/// read end is non-blocking, for the daemon's event loop; the write end blocking, as programs
/// expect of their stdout. Made so from the start, the read end needs no check (two system
/// calls for each of a process's two pipes).
pub fn output_pipe() -> std::io::Result<(PipeReader, std::os::fd::OwnedFd)> {
    let (reader, writer) = crate::portable::pipe_pair(true)?;
    // Each end is an open file of its own, with its own flags: the write end's is cleared.
    rustix::fs::fcntl_setfl(&writer, rustix::fs::OFlags::empty())?;
    Ok((PipeReader(reader), writer))
}

/// Copy up to `len` bytes from the head of pipe `from` into pipe `to` without consuming them
/// (`tee(2)`, non-blocking): the bytes stay in `from` for whoever consumes it. Ok(0): `from` is
/// empty and every writer has closed it. `WouldBlock`: `from` is empty (writers remain) or `to`
/// is full. The portable backend reads the bytes out and keeps them in this process until
/// they are moved (see `portable/pipe_copy.rs`).
pub fn peek_pipe(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        use rustix::pipe::SpliceFlags;
        return Ok(rustix::pipe::tee(from, to, len, SpliceFlags::NONBLOCK)?);
    }
    pipe_copy::peek(from, to, len)
}

/// Move up to `len` bytes from the head of pipe `from` into `to` (`splice(2)`: a file at its
/// current position, a pipe or FIFO, a socket), consuming exactly what it moved. Non-blocking
/// on the pipe; on `to` as its own flags say. A file opened with `O_APPEND` is refused
/// (`EINVAL`), as is a destination that cannot take spliced bytes (a terminal).
pub fn move_from_pipe(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    len: usize,
) -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        use rustix::pipe::SpliceFlags;
        return Ok(rustix::pipe::splice(
            from,
            None,
            to,
            None,
            len,
            SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
        )?);
    }
    pipe_copy::take(from, to, len)
}

/// Set aside room for `len` bytes of the file `fd` from `offset` (`fallocate` with
/// `FALLOC_FL_KEEP_SIZE`: its size does not change), so that writing them cannot fail for want
/// of space: on a full disk the reservation fails (`ENOSPC`) and nothing is written, where a
/// write would take part of a line and stop. A file system that cannot reserve (it does not
/// support it) is `Ok`: nothing is promised there.
pub fn reserve_space(fd: BorrowedFd<'_>, offset: u64, len: u64) -> std::io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::io::Errno;
        match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len) {
            Ok(()) => Ok(()),
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL | Errno::NODEV | Errno::SPIPE) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (fd, offset, len);
        Ok(())
    }
}

/// Bytes the file `fd` can still grow by: what its file system has left (those reserved for
/// root included: what a root daemon can take), and what its last block has beyond its end;
/// `None` when it cannot say.
pub fn free_space(fd: BorrowedFd<'_>) -> Option<u64> {
    let fs = rustix::fs::fstatvfs(fd).ok()?;
    let file = rustix::fs::fstat(fd).ok()?;
    let allocated = (file.st_blocks as u64).saturating_mul(512);
    let slack = allocated.saturating_sub(file.st_size as u64);
    Some(fs.f_bfree.saturating_mul(fs.f_frsize).saturating_add(slack))
}

/// How many bytes pipe `fd` holds (`FIONREAD`); 0 when it cannot be asked.
pub fn pipe_bytes(fd: BorrowedFd<'_>) -> u64 {
    let queued = rustix::io::ioctl_fionread(fd).unwrap_or(0);
    if crate::platform::portable() {
        // Those a look took out are still the pipe's.
        return queued + pipe_copy::kept_bytes(fd);
    }
    queued
}

/// What this process holds of its pipes' heads: the bytes the portable backend's looks read
/// out and no move has written yet, part of what each pipe holds. An exec that passes the
/// pipes on must carry them too (`kelpie update`): take a hold, read each pipe's with
/// [`LookedBytes::of`], and keep the hold until the exec, so that nothing of them is written
/// meanwhile; the next program gives them back with [`give_back_looked_bytes`]. Empty on
/// Linux's backend, where they stay in the pipe (and nothing is held).
pub struct LookedBytes(Option<pipe_copy::Hold>);

impl LookedBytes {
    /// Hold every pipe's looked bytes still until dropped.
    pub fn hold() -> LookedBytes {
        LookedBytes(crate::platform::portable().then(pipe_copy::Hold::new))
    }

    /// The bytes held of pipe `fd`'s head (any descriptor of the pipe).
    pub fn of(&self, fd: BorrowedFd<'_>) -> Vec<u8> {
        self.0
            .as_ref()
            .map(|hold| hold.kept(fd))
            .unwrap_or_default()
    }
}

/// Give back bytes of pipe `fd`'s head that the previous program held (see [`LookedBytes`]):
/// they come before anything read from the pipe since.
pub fn give_back_looked_bytes(fd: BorrowedFd<'_>, bytes: Vec<u8>) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    pipe_copy::give_back(fd, bytes)
}

/// Whether every writer of pipe `fd` has closed it (`POLLHUP`), even while it still holds
/// bytes.
pub fn pipe_hung_up(fd: BorrowedFd<'_>) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    poll(&mut fds, Some(&Timespec::default()))
        .is_ok_and(|n| n > 0 && fds[0].revents().contains(PollFlags::HUP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_reader_is_made_non_blocking_and_anything_else_refused() {
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        let reader = PipeReader::checked(reader.into()).expect("a pipe");
        let mut buf = [0u8; 4];
        let empty = rustix::io::read(&reader, &mut buf).expect_err("nothing to read");
        assert_eq!(empty, rustix::io::Errno::AGAIN);
        writer.write_all(b"hi").expect("write");
        assert_eq!(rustix::io::read(&reader, &mut buf).expect("read"), 2);
        // Already non-blocking: kept as it is.
        let reader = PipeReader::checked(reader.into_fd()).expect("still a pipe");
        drop(writer);
        assert_eq!(rustix::io::read(&reader, &mut buf).expect("end"), 0);
        let file = tempfile::tempfile().expect("a file");
        let refused = PipeReader::checked(file.into()).expect_err("a file is no pipe");
        assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn an_output_pipe_is_read_without_blocking_and_written_blocking() {
        use rustix::fs::{fcntl_getfl, OFlags};
        let (reader, writer) = output_pipe().expect("pipe");
        let mut buf = [0u8; 4];
        let empty = rustix::io::read(&reader, &mut buf).expect_err("nothing to read");
        assert_eq!(empty, rustix::io::Errno::AGAIN);
        assert!(!fcntl_getfl(&writer)
            .expect("flags")
            .contains(OFlags::NONBLOCK));
        for end in [reader.as_fd(), writer.as_fd()] {
            let flags = rustix::io::fcntl_getfd(end).expect("fd flags");
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
        }
        rustix::io::write(&writer, b"hi").expect("write");
        assert_eq!(rustix::io::read(&reader, &mut buf).expect("read"), 2);
    }

    #[test]
    fn tee_looks_without_consuming_and_splice_consumes_exactly_what_it_moved() {
        let (app_reader, mut app_writer) = std::io::pipe().expect("pipe");
        let (mut scratch_reader, scratch_writer) = std::io::pipe().expect("pipe");
        app_writer.write_all(b"one\ntwo\n").expect("write");
        assert_eq!(
            peek_pipe(app_reader.as_fd(), scratch_writer.as_fd(), 64).expect("peek_pipe"),
            8
        );
        let mut seen = [0u8; 8];
        scratch_reader.read_exact(&mut seen).expect("read");
        assert_eq!(&seen, b"one\ntwo\n");
        // Still all there: a second look sees the same bytes.
        assert_eq!(
            peek_pipe(app_reader.as_fd(), scratch_writer.as_fd(), 64).expect("peek_pipe"),
            8
        );
        scratch_reader.read_exact(&mut seen).expect("read");

        let dir = tempfile::tempdir().expect("dir");
        let file = std::fs::File::create(dir.path().join("log")).expect("file");
        assert_eq!(
            move_from_pipe(app_reader.as_fd(), file.as_fd(), 4).expect("move_from_pipe"),
            4
        );
        assert_eq!(
            std::fs::read(dir.path().join("log")).expect("log"),
            b"one\n"
        );
        assert_eq!(
            peek_pipe(app_reader.as_fd(), scratch_writer.as_fd(), 64).expect("peek_pipe"),
            4
        );
        scratch_reader.read_exact(&mut seen[..4]).expect("read");
        assert_eq!(&seen[..4], b"two\n");

        assert!(!pipe_hung_up(app_reader.as_fd()));
        drop(app_writer);
        // A child another test of this binary spawns at this moment holds a copy of the write
        // end (close-on-exec) until it execs: wait for that, not for anything of ours.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !pipe_hung_up(app_reader.as_fd()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(
            pipe_hung_up(app_reader.as_fd()),
            "hung up, bytes still in it"
        );
        assert_eq!(
            move_from_pipe(app_reader.as_fd(), file.as_fd(), 64).expect("move_from_pipe"),
            4
        );
        assert_eq!(
            peek_pipe(app_reader.as_fd(), scratch_writer.as_fd(), 64).expect("peek_pipe"),
            0
        );
        let empty = std::io::pipe().expect("pipe");
        let err = peek_pipe(empty.0.as_fd(), scratch_writer.as_fd(), 64).expect_err("empty");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    fn splice_refuses_a_file_opened_for_appending() {
        let (app_reader, mut app_writer) = std::io::pipe().expect("pipe");
        app_writer.write_all(b"x\n").expect("write");
        let dir = tempfile::tempdir().expect("dir");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("log"))
            .expect("file");
        let err = move_from_pipe(app_reader.as_fd(), file.as_fd(), 2).expect_err("append");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn a_pipe_can_be_enlarged() {
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let got = set_pipe_capacity(reader.as_fd(), 256 * 1024).expect("F_SETPIPE_SZ");
        assert!(got >= 256 * 1024);
    }
}
