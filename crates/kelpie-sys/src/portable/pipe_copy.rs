//! Looking at a pipe's head without consuming it, without `tee(2)`: what the portable backend
//! does for [`crate::peek_pipe`] and [`crate::move_from_pipe`].
//!
//! A look reads the bytes out of the pipe into this process, where they are kept (per pipe)
//! until a move writes them to their destination; a move writes what is kept first, then reads
//! and writes on. Read/write copies cost what splice saves (two copies of each byte through
//! this process), and bytes looked at but not yet written are in the daemon's memory, not in
//! the pipe: a daemon killed with SIGKILL loses them (at most one pipe's capacity per app;
//! Linux's backend loses nothing there, as the bytes stay in the pipe the keeper holds).

use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Mutex, MutexGuard};

/// A pipe, by its identity (device and inode): every descriptor of it, a `dup` handed to the
/// next daemon or the one its writer still uses, shares what was looked at.
type PipeKey = (u64, u64);

/// Bytes read out of each pipe by a look and not yet moved: only pipes that have some.
type Taken = Option<HashMap<PipeKey, Vec<u8>>>;
static TAKEN: Mutex<Taken> = Mutex::new(None);

fn key(fd: BorrowedFd<'_>) -> io::Result<PipeKey> {
    let stat = rustix::fs::fstat(fd)?;
    #[allow(clippy::unnecessary_cast)]
    Ok((stat.st_dev as u64, stat.st_ino as u64))
}

fn lock() -> MutexGuard<'static, Taken> {
    TAKEN.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_taken<R>(fd: BorrowedFd<'_>, work: impl FnOnce(&mut Vec<u8>) -> R) -> io::Result<R> {
    let key = key(fd)?;
    let mut taken = lock();
    let map = taken.get_or_insert_with(HashMap::new);
    let bytes = map.entry(key).or_default();
    let result = work(bytes);
    if bytes.is_empty() {
        map.remove(&key);
    }
    Ok(result)
}

/// Read from `from` (non-blocking) until `kept` holds `len` bytes: `Ok(true)` at its end (every
/// writer closed), `WouldBlock` only when nothing is kept and nothing came.
fn top_up(from: BorrowedFd<'_>, kept: &mut Vec<u8>, len: usize) -> io::Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    while kept.len() < len {
        let want = (len - kept.len()).min(buf.len());
        match rustix::io::read(from, &mut buf[..want]) {
            Ok(0) => return Ok(true),
            Ok(n) => kept.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) if !kept.is_empty() => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
}

/// Write the head of `kept` (at most `len` bytes) to `to`, dropping what was written.
fn write_out(kept: &mut Vec<u8>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    let n = rustix::io::retry_on_intr(|| rustix::io::write(to, &kept[..len.min(kept.len())]))?;
    kept.drain(..n);
    Ok(n)
}

/// What a look or a move that found nothing says: the pipe's end (`Ok(0)`), or nothing yet.
fn nothing(ended: bool) -> io::Result<usize> {
    if ended {
        Ok(0)
    } else {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

/// [`crate::peek_pipe`]: copy up to `len` bytes of `from`'s head into `to`, keeping them as
/// `from`'s.
pub(crate) fn peek(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    with_taken(from, |kept| {
        let ended = top_up(from, kept, len)?;
        if kept.is_empty() {
            return nothing(ended);
        }
        // A copy: what is kept stays kept.
        let head = &kept[..len.min(kept.len())];
        Ok(rustix::io::retry_on_intr(|| rustix::io::write(to, head))?)
    })?
}

/// [`crate::move_from_pipe`]: move up to `len` bytes of `from`'s head into `to`.
pub(crate) fn take(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    with_taken(from, |kept| {
        if kept.is_empty() {
            let ended = top_up(from, kept, len)?;
            if kept.is_empty() {
                return nothing(ended);
            }
        }
        write_out(kept, to, len)
    })?
}

/// Bytes kept from `fd`'s head by looks, not yet moved: part of what the pipe holds.
pub(crate) fn kept_bytes(fd: BorrowedFd<'_>) -> u64 {
    let Ok(key) = key(fd) else { return 0 };
    let taken = lock();
    taken
        .as_ref()
        .and_then(|map| map.get(&key))
        .map_or(0, |kept| kept.len() as u64)
}

/// Every pipe's kept bytes, held still: no look or move changes them while this lives (an exec
/// carries them, and nothing may be written of them meanwhile).
pub(crate) struct Hold(MutexGuard<'static, Taken>);

impl Hold {
    pub(crate) fn new() -> Hold {
        Hold(lock())
    }

    /// A copy of the bytes kept from `fd`'s head: what an exec must carry to the next
    /// program, which gives them back with [`give_back`].
    pub(crate) fn kept(&self, fd: BorrowedFd<'_>) -> Vec<u8> {
        let Ok(key) = key(fd) else {
            return Vec::new();
        };
        self.0
            .as_ref()
            .and_then(|map| map.get(&key))
            .cloned()
            .unwrap_or_default()
    }
}

/// [`Hold::kept`] of one pipe.
#[cfg(test)]
fn kept_copy(fd: BorrowedFd<'_>) -> Vec<u8> {
    Hold::new().kept(fd)
}

/// Bytes of `fd`'s head that a previous program had read out by looks (carried across its
/// exec): they go before anything read from the pipe since.
pub(crate) fn give_back(fd: BorrowedFd<'_>, mut bytes: Vec<u8>) -> io::Result<()> {
    with_taken(fd, |kept| {
        bytes.append(kept);
        *kept = bytes;
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_look_keeps_the_bytes_and_a_move_takes_exactly_what_it_wrote() {
        let (app_reader, mut app_writer) = std::io::pipe().expect("pipe");
        let (scratch_reader, scratch_writer) = crate::nonblocking_pipe().expect("pipe");
        let app_reader = crate::PipeReader::checked(app_reader.into()).expect("pipe");
        let from = app_reader.as_fd();
        let empty = peek(from, scratch_writer.as_fd(), 64).expect_err("nothing yet");
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
        app_writer.write_all(b"one\ntwo\n").expect("write");
        assert_eq!(peek(from, scratch_writer.as_fd(), 64).expect("look"), 8);
        assert_eq!(peek(from, scratch_writer.as_fd(), 4).expect("again"), 4);
        assert_eq!(kept_bytes(from), 8, "looked at, still the pipe's");
        let mut seen = String::new();
        let mut scratch = std::fs::File::from(scratch_reader);
        let mut buf = [0u8; 64];
        let n = scratch.read(&mut buf).expect("read");
        seen.push_str(std::str::from_utf8(&buf[..n]).expect("utf-8"));
        assert_eq!(seen, "one\ntwo\none\n");
        let mut file = tempfile::tempfile().expect("file");
        assert_eq!(take(from, file.as_fd(), 4).expect("move"), 4);
        assert_eq!(kept_bytes(from), 4);
        app_writer.write_all(b"three\n").expect("write");
        drop(app_writer);
        assert_eq!(take(from, file.as_fd(), 64).expect("the kept rest"), 4);
        assert_eq!(take(from, file.as_fd(), 64).expect("then the pipe"), 6);
        // The end: once no copy of the write end is left (a child another test forks holds
        // one until its exec).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let end = loop {
            match take(from, file.as_fd(), 64) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "no end");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => break other.expect("its end"),
            }
        };
        assert_eq!(end, 0);
        assert_eq!(kept_bytes(from), 0);
        let mut written = String::new();
        use std::io::Seek;
        file.rewind().expect("rewind");
        file.read_to_string(&mut written).expect("read");
        assert_eq!(written, "one\ntwo\nthree\n");
    }

    /// What an exec carries (`kelpie update`): the bytes a look kept, given back to the same
    /// pipe, come before what it holds, as if they had never left it.
    #[test]
    fn kept_bytes_given_back_come_before_the_pipes_own() {
        let (app_reader, mut app_writer) = std::io::pipe().expect("pipe");
        let (_scratch_reader, scratch_writer) = crate::nonblocking_pipe().expect("pipe");
        let app_reader = crate::PipeReader::checked(app_reader.into()).expect("pipe");
        let from = app_reader.as_fd();
        app_writer.write_all(b"li").expect("write");
        assert_eq!(peek(from, scratch_writer.as_fd(), 64).expect("look"), 2);
        let carried = kept_copy(from);
        assert_eq!(carried, b"li");
        // The next program starts with nothing kept, and is given the carried bytes back.
        let _ = with_taken(from, std::mem::take);
        assert_eq!(kept_bytes(from), 0);
        app_writer.write_all(b"ne 1\n").expect("write");
        give_back(from, carried).expect("given back");
        let mut file = tempfile::tempfile().expect("file");
        while take(from, file.as_fd(), 64).is_ok_and(|n| n > 0) && kept_bytes(from) > 0 {}
        assert_eq!(take(from, file.as_fd(), 64).expect("the pipe's own"), 5);
        let mut written = String::new();
        use std::io::Seek;
        file.rewind().expect("rewind");
        file.read_to_string(&mut written).expect("read");
        assert_eq!(written, "line 1\n");
    }
}
