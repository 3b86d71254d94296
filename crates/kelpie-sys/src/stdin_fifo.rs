//! An app's stdin: a FIFO in the daemon's home, one per process id, that `kelpie send` writes
//! lines into.
//!
//! PM2 gives a fork-mode app a pipe whose other end its daemon holds. A FIFO does the same with
//! nothing held by the daemon: the app's process opens it (its stdin is the FIFO opened for
//! reading and writing, so it never reads an end of file, as PM2's app never does while PM2
//! runs), and a writer opens it by name when it has a line to send. So the pipe outlives a
//! daemon restart or `kelpie update` with no hand-over, and costs the daemon no descriptor per
//! app. What the app has not read when its process ends is dropped with the pipe.

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use std::ffi::CString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The FIFO at `path`, made (mode 0600) if missing, or made again if something else is there,
/// opened for a new process's stdin: readable, and writable so that it never reads an end of
/// file; blocking, as a pipe given to a program is; close-on-exec (the spawn places it at 0).
/// The directory is the daemon's own home: nobody else may change its entries.
pub fn open_stdin_fifo(path: &Path) -> io::Result<OwnedFd> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    for _ in 0..2 {
        match rfs::open(path, flags | OFlags::NONBLOCK, Mode::empty()) {
            Ok(fd) => {
                let stat = rfs::fstat(&fd)?;
                if FileType::from_raw_mode(stat.st_mode) == FileType::Fifo {
                    // Opened without waiting (a regular file left there is not written to
                    // by this open); the app reads it blocking, as any pipe.
                    rfs::fcntl_setfl(&fd, OFlags::empty())?;
                    return Ok(fd);
                }
                rfs::unlink(path)?;
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(rustix::io::Errno::LOOP) => rfs::unlink(path)?,
            Err(e) => return Err(e.into()),
        }
        make_fifo(path)?;
    }
    Err(io::Error::other(format!(
        "{} is made again and again by another process",
        path.display()
    )))
}

fn make_fifo(path: &Path) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    // SAFETY: `c_path` is a valid NUL-terminated string that lives across the call; mkfifo
    // reads it and keeps nothing.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    if made == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::AlreadyExists {
        return Ok(());
    }
    Err(error)
}

/// What writing to an app's stdin came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinWrite {
    /// All of it is in the pipe.
    Written,
    /// No process has the FIFO open (none runs, or it closed its stdin): nothing written.
    NoReader,
    /// The app has not read what was sent before, and this would not fit: nothing written.
    Full {
        /// Bytes in the pipe the app has not read.
        unread: u64,
        /// What the pipe holds at most.
        capacity: u64,
    },
}

/// Write `bytes` to the FIFO at `path` without ever waiting: all of them if the pipe has room,
/// none if it has not (an app that does not read its stdin is never blocked, nor is the
/// writer).
pub fn write_stdin_fifo(path: &Path, bytes: &[u8]) -> io::Result<StdinWrite> {
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rfs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NXIO) | Err(rustix::io::Errno::NOENT) => {
            return Ok(StdinWrite::NoReader)
        }
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::Fifo {
        return Err(io::Error::other(format!(
            "{} is not a FIFO",
            path.display()
        )));
    }
    let capacity = pipe_capacity(&fd);
    let unread = rustix::io::ioctl_fionread(&fd).unwrap_or(0);
    if unread + bytes.len() as u64 > capacity {
        return Ok(StdinWrite::Full { unread, capacity });
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        match rustix::io::write(&fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => continue,
            // Another writer filled it meanwhile: what is written stays (a line cut short
            // is said so by the caller's count).
            Err(rustix::io::Errno::AGAIN) => {
                return Ok(StdinWrite::Full {
                    unread: rustix::io::ioctl_fionread(&fd).unwrap_or(capacity),
                    capacity,
                })
            }
            Err(rustix::io::Errno::PIPE) => return Ok(StdinWrite::NoReader),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(StdinWrite::Written)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn pipe_capacity(fd: &OwnedFd) -> u64 {
    rustix::pipe::fcntl_getpipe_size(fd).map_or(PIPE_DEFAULT, |n| n as u64)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pipe_capacity(_fd: &OwnedFd) -> u64 {
    // macOS grows a pipe to 64 KiB; what it holds at first is less, and a write that does
    // not fit fails without waiting (the `AGAIN` above).
    PIPE_DEFAULT
}

/// A pipe's capacity where the system cannot say (Linux's and macOS's default).
const PIPE_DEFAULT: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn lines_reach_the_reader_and_a_full_pipe_refuses_without_waiting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0");
        assert_eq!(
            write_stdin_fifo(&path, b"x\n").expect("write"),
            StdinWrite::NoReader
        );
        let stdin = open_stdin_fifo(&path).expect("fifo");
        assert_eq!(
            write_stdin_fifo(&path, b"hello\n").expect("write"),
            StdinWrite::Written
        );
        let mut reader = std::fs::File::from(stdin.try_clone().expect("dup"));
        let mut got = [0u8; 6];
        reader.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"hello\n");
        // Nobody reads: the pipe fills, and the line that does not fit is refused whole.
        let line = vec![b'a'; 4096];
        let mut sent = 0u64;
        let full = loop {
            match write_stdin_fifo(&path, &line).expect("write") {
                StdinWrite::Written => sent += line.len() as u64,
                other => break other,
            }
        };
        match full {
            StdinWrite::Full { unread, capacity } => {
                assert_eq!(unread, sent);
                assert!(unread + line.len() as u64 > capacity);
            }
            other => panic!("{other:?}"),
        }
        // A process's new stdin is the same FIFO (what was unread is still there while one
        // holds it open).
        drop(open_stdin_fifo(&path).expect("again"));
        drop(reader);
        drop(stdin);
        assert_eq!(
            write_stdin_fifo(&path, b"x\n").expect("write"),
            StdinWrite::NoReader
        );
    }

    #[test]
    fn something_else_at_the_path_is_replaced_by_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1");
        std::fs::write(&path, "a file").expect("write");
        let fd = open_stdin_fifo(&path).expect("fifo");
        assert_eq!(
            FileType::from_raw_mode(rfs::fstat(&fd).expect("stat").st_mode),
            FileType::Fifo
        );
    }
}
