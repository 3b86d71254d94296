//! An app's output pipe that the log thread looks at without consuming it: no byte an app wrote
//! is lost when the daemon is killed (issue 51, finding 3).
//!
//! A `read(2)` takes bytes out of the pipe, and until the writer has put them in the file they
//! exist only in the daemon's memory: a SIGKILL in between lost them. Here the reader only
//! *looks*: it `tee(2)`s the pipe's head into a scratch pipe of its thread and reads that copy
//! (for framing, the recent lines, `ready_pattern`, the exit's last lines). The pipe is consumed
//! only by the writer thread, and only once the bytes are in the file: for raw lines (the
//! default) by `splice(2)`, which moves them from the pipe into the file in one step; for dated
//! or JSON lines by discarding them from the pipe right after their formatted copy is written.
//! At any instant of a SIGKILL, each byte is in the file or still in the pipe, which the keeper
//! holds and hands to the next daemon.
//!
//! `tee` always copies from the pipe's head, which holds bytes already seen until the writer
//! consumes them: the cursor counts what was seen and what was consumed, under a lock the reader
//! only tries (it never waits on the writer, which may be on a slow disk) and the writer holds
//! for each consumption, so the reader knows how many of the bytes it copies are old.

use super::sink::lock;
use kelpie_sys::ReadWatch;
use std::cell::RefCell;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError};

/// Capacity asked for the log thread's scratch pipe: as much as an app's enlarged pipe holds,
/// so one look can take all of it.
const SCRATCH_CAPACITY: usize = 1024 * 1024;
/// The kernel's default pipe capacity.
const DEFAULT_CAPACITY: usize = 64 * 1024;

/// An app's output pipe, shared by its reader (which looks) and the writer (which consumes).
#[derive(Debug)]
pub(super) struct PipeCursor {
    state: Mutex<CursorState>,
    /// Told when the writer has consumed every byte seen and the pipe still holds more: bytes
    /// the reader has not seen. The reader waits for the pipe with it registered (see
    /// `looking`), and a kernel that signals a pipe's writes only when they find it empty
    /// (Linux 5.5 to 5.13) would not signal what the app wrote while seen bytes were still in
    /// it: this tells the reader instead.
    unseen: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct CursorState {
    /// The pipe; out only once handed to another daemon or taken over by the reader.
    fd: Option<PipeEnd>,
    /// Bytes of the pipe the reader has seen, since it began.
    seen: u64,
    /// Bytes taken out of the pipe (into the file, or discarded), since the reader began.
    consumed: u64,
    /// The reader reads the pipe itself now (the writer made no progress for seconds): what the
    /// writer still has of it is written from memory, never consumed from the pipe again.
    read_by_reader: bool,
}

impl CursorState {
    /// Whether the pipe holds more than the bytes seen and not consumed yet (one `FIONREAD`).
    fn holds_unseen(&self) -> bool {
        self.fd
            .as_ref()
            .is_some_and(|end| kelpie_sys::pipe_bytes(end.as_fd()) > self.seen - self.consumed)
    }
}

/// What a look at the pipe found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Look {
    /// This many new bytes, handed to the caller.
    New(usize),
    /// Nothing new now (the pipe is empty, or holds only bytes already seen).
    Nothing,
    /// The pipe is empty and every writer has closed it.
    Ended,
    /// The writer is consuming the pipe this instant: look again once it says it moved.
    Busy,
    /// The bytes already seen fill the scratch pipe: nothing more can be seen until the writer
    /// consumes some.
    Full,
}

/// What one consumption did.
#[derive(Debug)]
pub(super) struct Moved {
    /// Bytes taken out of the pipe (into the destination).
    pub bytes: usize,
    /// Why it stopped short, if it did.
    pub error: Option<std::io::Error>,
}

impl PipeCursor {
    pub(super) fn new(fd: OwnedFd) -> PipeCursor {
        PipeCursor {
            state: Mutex::new(CursorState {
                fd: Some(PipeEnd::Plain(fd)),
                ..CursorState::default()
            }),
            unseen: tokio::sync::Notify::new(),
        }
    }

    /// The cursor's state, unless the writer holds it this instant (consuming the pipe, which
    /// may take as long as a slow disk does): the reader never waits for it.
    fn try_state(&self) -> Option<MutexGuard<'_, CursorState>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(TryLockError::WouldBlock) => None,
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        }
    }

    /// The pipe, to hand it to another daemon: only when every byte seen has been consumed
    /// (the writer has nothing of it to do), and not while the writer is consuming it.
    pub(super) fn lend(&self) -> Option<OwnedFd> {
        let mut state = self.try_state()?;
        if state.seen != state.consumed {
            return None;
        }
        let end = state.fd.take()?;
        end.into_plain(&mut state.fd)
    }

    /// The pipe, registered with the (log thread's) event loop, to wait for the app's next
    /// write while the writer may still consume it: it stays registered, and the cursor's,
    /// until [`PipeCursor::unwatch`]. `None` while the writer is consuming it this instant, or
    /// when it cannot be registered. Must be called on the runtime.
    pub(super) fn watch(&self) -> Option<Arc<ReadWatch>> {
        let mut state = self.try_state()?;
        if let Some(PipeEnd::Plain(_)) = &state.fd {
            let Some(PipeEnd::Plain(fd)) = state.fd.take() else {
                return None;
            };
            // The descriptor itself is registered: the keeper's client knows the pipe by its
            // number (it gives a new keeper a copy of it).
            match ReadWatch::register(fd) {
                Ok(registered) => state.fd = Some(PipeEnd::Watched(Arc::new(registered))),
                Err((fd, _)) => {
                    state.fd = Some(PipeEnd::Plain(fd));
                    return None;
                }
            }
        }
        match &state.fd {
            Some(PipeEnd::Watched(registered)) => Some(registered.clone()),
            _ => None,
        }
    }

    /// Out of the event loop again (the app's writes no longer wake the log thread), unless
    /// the writer is consuming the pipe this instant. The caller has let go of what
    /// [`PipeCursor::watch`] gave it.
    pub(super) fn unwatch(&self) {
        let Some(mut state) = self.try_state() else {
            return;
        };
        if !matches!(state.fd, Some(PipeEnd::Watched(_))) {
            return;
        }
        if let Some(fd) = state
            .fd
            .take()
            .and_then(|end| end.into_plain(&mut state.fd))
        {
            state.fd = Some(PipeEnd::Plain(fd));
        }
    }

    /// Whether the pipe holds bytes the reader has not seen (a look takes at most what the
    /// scratch pipe holds): false while the writer is consuming it this instant (it tells
    /// the reader of any once done, see [`PipeCursor::unseen`]).
    pub(super) fn holds_unseen(&self) -> bool {
        self.try_state().is_some_and(|state| state.holds_unseen())
    }

    /// Resolves once the writer has said the pipe holds bytes the reader has not seen (see
    /// the field); at once if it said so since the last time.
    pub(super) async fn unseen(&self) {
        self.unseen.notified().await;
    }

    /// After a consumption: when it took every byte seen and the pipe holds more, tell the
    /// reader (one `FIONREAD`, only then).
    fn tell_if_unseen(&self, state: &CursorState) {
        if state.consumed == state.seen && !state.read_by_reader && state.holds_unseen() {
            self.unseen.notify_one();
        }
    }

    /// Whether every writer of the pipe has closed it (it may still hold bytes); false while
    /// the writer is consuming it (asked again later).
    pub(super) fn hung_up(&self) -> bool {
        self.try_state().is_some_and(|state| {
            state
                .fd
                .as_ref()
                .is_none_or(|end| kelpie_sys::pipe_hung_up(end.as_fd()))
        })
    }

    /// Bytes seen and not yet consumed: they are at the pipe's head. `None` while the writer
    /// is consuming the pipe this instant.
    pub(super) fn unconsumed(&self) -> Option<u64> {
        self.try_state().map(|state| state.seen - state.consumed)
    }

    /// Look at the bytes the pipe holds past those already seen, handing them to `each` in
    /// pieces of at most `buf`'s length (the log thread's read buffer). Never blocks: the pipe
    /// is only copied (`tee`), and a writer consuming it at this instant makes it `Busy`.
    pub(super) fn look(&self, buf: &mut [u8], each: impl FnMut(&[u8])) -> Look {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let Some(scratch) = scratch.get_or_insert_with(Scratch::open).as_mut() else {
                return Look::Ended;
            };
            let (old, new) = match self.copy_head(scratch) {
                Ok(counts) => counts,
                Err(look) => return look,
            };
            // The copy is the thread's own: the pipe needs no lock while it is read.
            discard(scratch.reader.as_fd(), old);
            read_exactly(&mut scratch.reader, new, buf, each);
            if new == 0 {
                Look::Nothing
            } else {
                Look::New(new)
            }
        })
    }

    /// Copy the pipe's head into the scratch pipe: how many of the bytes copied were seen
    /// before, and how many are new (now counted as seen).
    fn copy_head(&self, scratch: &Scratch) -> Result<(usize, usize), Look> {
        let mut state = self.try_state().ok_or(Look::Busy)?;
        let old = (state.seen - state.consumed) as usize;
        if old >= scratch.capacity {
            return Err(Look::Full);
        }
        let Some(fd) = state.fd.as_ref().map(PipeEnd::as_fd) else {
            return Err(Look::Busy);
        };
        match kelpie_sys::peek_pipe(fd, scratch.writer.as_fd(), scratch.capacity) {
            Ok(0) => Err(Look::Ended),
            Ok(copied) => {
                let new = copied.saturating_sub(old);
                state.seen += new as u64;
                Ok((copied - new, new))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(Look::Nothing),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(Look::Nothing),
            // Not a pipe any more, or closed under us: nothing more will come.
            Err(_) => Err(Look::Ended),
        }
    }

    /// Move `len` bytes from the pipe's head into `to` (the file, at its position). `Err` when
    /// the reader reads the pipe itself now: the caller writes its copy instead.
    pub(super) fn splice_into(&self, to: BorrowedFd<'_>, len: usize) -> Result<Moved, TakenOver> {
        let mut state = lock(&self.state);
        if state.read_by_reader {
            return Err(TakenOver);
        }
        let mut moved = Moved {
            bytes: 0,
            error: None,
        };
        // Lent only while nothing is left to consume: cannot be out now.
        let Some(fd) = state.fd.as_ref().map(PipeEnd::as_fd) else {
            return Ok(moved);
        };
        while moved.bytes < len {
            match kelpie_sys::move_from_pipe(fd, to, len - moved.bytes) {
                // The pipe holds fewer bytes than were seen: cannot be, but never spin on it.
                Ok(0) => break,
                Ok(n) => moved.bytes += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    moved.error = Some(e);
                    break;
                }
            }
        }
        state.consumed += moved.bytes as u64;
        self.tell_if_unseen(&state);
        Ok(moved)
    }

    /// Take `len` bytes out of the pipe without writing them anywhere: their copy was written
    /// (dated and JSON lines), or they are dropped (a file that fails, `flush`). Nothing when
    /// the reader reads the pipe itself now (it consumed them already).
    pub(super) fn consume(&self, len: u64) {
        let mut state = lock(&self.state);
        if state.read_by_reader || len == 0 {
            return;
        }
        let len = len.min(state.seen - state.consumed);
        if let Some(end) = &state.fd {
            discard(end.as_fd(), len as usize);
        }
        state.consumed += len;
        self.tell_if_unseen(&state);
    }

    /// The writer made no progress for seconds: the reader reads the pipe itself from now on,
    /// and gets it back. What the writer still has of it (seen, not consumed) is taken out of
    /// the pipe now; the writer writes those bytes from its copy. `None` when the writer is
    /// consuming this pipe at this instant (stuck in it): then nothing changes.
    pub(super) fn take_over(&self) -> Option<OwnedFd> {
        let mut state = self.try_state()?;
        let end = state.fd.take()?;
        let fd = end.into_plain(&mut state.fd)?;
        if !state.read_by_reader {
            discard(fd.as_fd(), (state.seen - state.consumed) as usize);
            state.consumed = state.seen;
            state.read_by_reader = true;
        }
        Some(fd)
    }

    /// A second descriptor of the pipe, for a daemon that takes over (`kelpie update`): the
    /// writer may still use this one for what it has not written yet.
    pub(super) fn dup(&self) -> Option<OwnedFd> {
        lock(&self.state)
            .fd
            .as_ref()
            .and_then(|end| end.as_fd().try_clone_to_owned().ok())
    }
}

/// The pipe, as the cursor holds it.
#[derive(Debug)]
enum PipeEnd {
    Plain(OwnedFd),
    /// Registered with the log thread's event loop ([`PipeCursor::watch`]), and shared with
    /// the reader waiting on it.
    Watched(Arc<ReadWatch>),
}

impl PipeEnd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            PipeEnd::Plain(fd) => fd.as_fd(),
            PipeEnd::Watched(registered) => registered.as_fd(),
        }
    }

    /// The pipe as a plain descriptor, out of the event loop (the same descriptor). `None`,
    /// the pipe put back in `place` as it was, while the reader still holds the registration.
    fn into_plain(self, place: &mut Option<PipeEnd>) -> Option<OwnedFd> {
        let registered = match self {
            PipeEnd::Plain(fd) => return Some(fd),
            PipeEnd::Watched(registered) => registered,
        };
        match Arc::try_unwrap(registered) {
            Ok(registered) => Some(registered.into_fd()),
            Err(shared) => {
                *place = Some(PipeEnd::Watched(shared));
                None
            }
        }
    }
}

/// The reader took the pipe over: the writer writes its copy instead.
#[derive(Debug)]
pub(super) struct TakenOver;

/// The log thread's scratch pipe, where it copies an app's pipe to read it; `None` when it
/// could not be made.
struct Scratch {
    reader: std::fs::File,
    writer: OwnedFd,
    capacity: usize,
}

thread_local! {
    static SCRATCH: RefCell<Option<Option<Scratch>>> = const { RefCell::new(None) };
}

impl Scratch {
    fn open() -> Option<Scratch> {
        let made = kelpie_sys::nonblocking_pipe().map(|(reader, writer)| {
            // A pipe that cannot be enlarged keeps the kernel's default capacity.
            let capacity = kelpie_sys::set_pipe_capacity(writer.as_fd(), SCRATCH_CAPACITY)
                .unwrap_or(DEFAULT_CAPACITY);
            Scratch {
                reader: std::fs::File::from(reader),
                writer,
                capacity,
            }
        });
        match made {
            Ok(scratch) => Some(scratch),
            Err(e) => {
                crate::daemon_log!("logs: cannot make the log thread's scratch pipe: {e}");
                None
            }
        }
    }
}

/// Read `len` bytes from the scratch pipe, handing them to `each` in pieces of `buf`'s size.
fn read_exactly(
    reader: &mut std::fs::File,
    mut len: usize,
    buf: &mut [u8],
    mut each: impl FnMut(&[u8]),
) {
    while len > 0 {
        let want = len.min(buf.len());
        match reader.read(&mut buf[..want]) {
            Ok(0) => return,
            Ok(n) => {
                each(&buf[..n]);
                len -= n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Cannot be (tee put them there); never leave the loop spinning.
            Err(_) => return,
        }
    }
}

/// Take `len` bytes out of pipe `fd` and drop them: spliced into /dev/null (no copy), else read
/// into a buffer.
fn discard(fd: BorrowedFd<'_>, mut len: usize) {
    while len > 0 {
        let moved = match dev_null() {
            Some(null) => kelpie_sys::move_from_pipe(fd, null.as_fd(), len),
            None => {
                let mut buf = [0u8; 4096];
                fd.try_clone_to_owned()
                    .and_then(|fd| std::fs::File::from(fd).read(&mut buf[..len.min(4096)]))
            }
        };
        match moved {
            Ok(0) => return,
            Ok(n) => len -= n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// `/dev/null`, open once for the daemon's life.
fn dev_null() -> Option<&'static std::fs::File> {
    static NULL: OnceLock<Option<std::fs::File>> = OnceLock::new();
    NULL.get_or_init(|| {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::{Duration, Instant};

    #[test]
    fn the_reader_never_waits_while_the_writer_is_consuming_the_pipe() {
        let (reader, mut app) = std::io::pipe().expect("pipe");
        app.write_all(b"one\ntwo\n").expect("write");
        let cursor = std::sync::Arc::new(PipeCursor::new(OwnedFd::from(reader)));
        let mut buf = vec![0; 4096];
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::New(8));
        // The writer moving bytes into a file holds the cursor for as long as the disk takes:
        // here, until told to let go (or 5 s).
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn({
            let cursor = cursor.clone();
            move || {
                let _consuming = lock(&cursor.state);
                held_tx.send(()).expect("tell");
                let _ = released.recv_timeout(Duration::from_secs(5));
            }
        });
        held.recv().expect("the writer holds the cursor");
        let started = Instant::now();
        assert_eq!(cursor.unconsumed(), None, "busy, not waited for");
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::Busy);
        assert!(cursor.lend().is_none(), "not lent while consumed");
        assert!(!cursor.hung_up());
        assert!(cursor.take_over().is_none(), "nothing taken over mid-write");
        let took = started.elapsed();
        release.send(()).expect("let go");
        writer.join().expect("writer");
        assert!(took < Duration::from_secs(2), "the reader waited {took:?}");
        // Once it let go, all is as it was: the bytes seen are still the writer's to consume.
        assert_eq!(cursor.unconsumed(), Some(8));
        drop(app);
        assert!(cursor.hung_up(), "the app's end is closed");
        let fd = cursor.take_over().expect("taken over");
        assert_eq!(cursor.unconsumed(), Some(0), "what was seen left the pipe");
        assert!(cursor.take_over().is_none(), "the pipe is the reader's now");
        let mut rest = Vec::new();
        std::fs::File::from(fd)
            .read_to_end(&mut rest)
            .expect("read");
        assert!(
            rest.is_empty(),
            "the seen bytes are the writer's copy, not read twice"
        );
    }

    /// Registered with the event loop, the pipe keeps its descriptor (the keeper's client knows
    /// it by its number), the writer consumes it meanwhile, and it leaves the event loop as
    /// the same descriptor.
    #[tokio::test]
    async fn a_watched_pipe_is_the_same_descriptor_and_is_consumed_while_watched() {
        use std::os::fd::AsRawFd;
        let (reader, mut app) = std::io::pipe().expect("pipe");
        let reader = kelpie_sys::PipeReader::checked(reader.into())
            .expect("a pipe")
            .into_fd();
        let number = reader.as_raw_fd();
        let cursor = PipeCursor::new(reader);
        let watched = cursor.watch().expect("registered");
        assert_eq!(watched.as_fd().as_raw_fd(), number, "the same descriptor");
        app.write_all(b"one\n").expect("write");
        tokio::time::timeout(Duration::from_secs(5), watched.next_readable())
            .await
            .expect("the write is signalled")
            .expect("readable");
        let mut buf = vec![0; 4096];
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::New(4));
        cursor.consume(4);
        assert_eq!(cursor.unconsumed(), Some(0), "consumed while watched");
        cursor.unwatch();
        assert!(
            matches!(lock(&cursor.state).fd, Some(PipeEnd::Watched(_))),
            "not taken out while the reader holds the registration"
        );
        drop(watched);
        cursor.unwatch();
        let fd = cursor.lend().expect("out of the event loop");
        assert_eq!(fd.as_raw_fd(), number, "still the same descriptor");
    }

    /// The writer consumed everything the reader saw and the pipe holds more: the reader is
    /// told (a kernel may signal a write to a pipe only when it found the pipe empty). Nothing
    /// is said when nothing more is there.
    #[tokio::test]
    async fn the_writer_tells_the_reader_of_bytes_it_has_not_seen() {
        let (reader, mut app) = std::io::pipe().expect("pipe");
        let cursor = PipeCursor::new(OwnedFd::from(reader));
        let mut buf = vec![0; 4096];
        app.write_all(b"one\n").expect("write");
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::New(4));
        assert!(!cursor.holds_unseen());
        cursor.consume(4);
        let told = tokio::time::timeout(Duration::from_millis(50), cursor.unseen()).await;
        assert!(told.is_err(), "nothing unseen, nothing said");
        app.write_all(b"two\n").expect("write");
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::New(4));
        app.write_all(b"three\n").expect("write");
        assert!(cursor.holds_unseen(), "three is not seen yet");
        cursor.consume(4);
        tokio::time::timeout(Duration::from_secs(1), cursor.unseen())
            .await
            .expect("told of three");
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::New(6));
        assert!(!cursor.holds_unseen());
    }
}
