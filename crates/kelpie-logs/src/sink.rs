//! One log file as seen from both sides: readers append formatted lines to its pending buffer,
//! the writer thread drains that buffer into the file. A reader never blocks on the disk: when
//! the buffer is full it stops reading its pipe (an async wait, [`Sink::room`]) until the
//! writer takes the buffer, so the app's own writes wait instead of its lines being lost; lines
//! are dropped (and counted) only for a file that cannot be written or makes no progress.

use super::batch::Batch;
use super::cursor::PipeCursor;
use super::rotation::RotationPolicy;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Bytes a file may have waiting for the writer before its readers stop reading their pipes
/// (backpressure) until the writer takes them.
pub(super) const MAX_PENDING: usize = 4 * 1024 * 1024;
/// Bytes a file may have waiting at all. Readers check [`MAX_PENDING`] before each read, so
/// a healthy file only passes it by what one read of each of its readers formats to; this
/// bound is for a file that fails or makes no progress, whose readers no longer wait: beyond
/// it, lines are dropped at a line boundary and counted.
pub(super) const MAX_PENDING_HARD: usize = 4 * MAX_PENDING;
/// A reader waiting for room looks at the writer's progress this often.
pub(super) const PROGRESS_CHECK: Duration = Duration::from_millis(250);
/// Checks in a row without progress after which a file is taken as stuck (a hung disk, a FIFO
/// nobody reads): its readers stop waiting and drop its lines, so an app is never blocked
/// forever by its log. Counted in checks rather than by the clock, so a daemon that was
/// itself stopped (SIGSTOP) does not take its own pause for the writer's.
pub(super) const STALL_CHECKS: u32 = 20;

/// Lock a mutex even if a panicking thread poisoned it: the data (buffers, counters) stays
/// usable, and a log pipeline that stops working is worse than one that loses a line.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer's side of a file: only the writer thread touches it.
#[derive(Debug, Default)]
pub(super) struct FileSlot {
    /// The open file, `None` until opened or after opening failed.
    pub file: Option<File>,
    /// Bytes in the file (as far as we wrote them).
    pub size: u64,
    /// A regular file (only those rotate).
    pub regular: bool,
    /// Rotation period the file's content belongs to.
    pub period: i64,
    /// Earliest time to try opening again after a failure.
    pub retry_open_at: Option<Instant>,
    /// Lines dropped since the last write error started, for the "resumed" message.
    pub dropped_while_failing: u64,
    /// When it was last written, in the writer's count of writes: the least recently written
    /// files are closed first when too many are open.
    pub last_write: u64,
    /// A write was cut short in the middle of a line that could not be taken back (not a
    /// regular file, or truncating failed): the next write starts with a newline, so the next
    /// line does not continue the cut one.
    pub cut_line: bool,
    /// Timed attempts in a row at this file while it was full, with no progress on it since
    /// the attempt before (by that attempt or by any write in between).
    pub full_attempts: u32,
    /// The file's progress count at the last timed attempt.
    pub progress_at_attempt: u64,
    /// The last byte the file took ends no line: a write it took only part of (a FIFO read
    /// slowly) stopped in a line, whose rest is pending. Should that be dropped, the next write
    /// ends the half line first (`cut_line`).
    pub mid_line: bool,
    /// The file takes no spliced bytes (a terminal, say): raw lines are written from their
    /// copy, then taken out of their pipe.
    pub no_splice: bool,
}

/// A log file.
#[derive(Debug)]
pub(super) struct Sink {
    path: PathBuf,
    /// Set while a "please write me" message is queued for the writer, so readers send one
    /// message per batch, not one per chunk.
    pub queued: AtomicBool,
    /// Bytes waiting for the writer.
    pub pending: Mutex<Batch>,
    /// The writer's side.
    pub slot: Mutex<FileSlot>,
    /// Current rotation settings: the daemon's defaults under the overrides of the last app
    /// that registered the file.
    pub policy: Mutex<RotationPolicy>,
    /// That app's own rotation fields, to recompute `policy` when the defaults change.
    pub overrides: Mutex<kelpie_core::LogRotation>,
    dropped_lines: AtomicU64,
    error: Mutex<Option<String>>,
    /// Told when the writer took the pending bytes or wrote or dropped some: readers waiting
    /// for room look again.
    drained: tokio::sync::Notify,
    /// Bumped by the writer each time bytes reach the file (or are dropped for an error).
    progress: AtomicU64,
    /// `progress` when readers gave up waiting (the file made none): they do not wait again
    /// until it moves. `u64::MAX`: not stuck.
    stuck_at: AtomicU64,
    /// The count of dropped sinks of the registry this one is in, bumped when it is dropped
    /// (see `registry`).
    dropped: Option<Arc<AtomicUsize>>,
}

/// Whether a reader may go on reading into a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    /// Under the bound, or the file fails (its lines are dropped anyway): read.
    Free,
    /// The writer is behind: wait for [`Sink::drained`], then ask again.
    Behind,
}

/// What `describe` shows about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    /// Lines that never reached the file (disk full, file unwritable or stuck).
    pub dropped_lines: u64,
    /// The current problem writing it, if any.
    pub error: Option<String>,
}

impl Sink {
    /// A sink for `path`, nothing opened yet.
    pub(super) fn new(path: PathBuf, policy: RotationPolicy) -> Sink {
        Sink {
            path,
            queued: AtomicBool::new(false),
            pending: Mutex::default(),
            slot: Mutex::default(),
            policy: Mutex::new(policy),
            overrides: Mutex::default(),
            dropped_lines: AtomicU64::new(0),
            error: Mutex::new(None),
            drained: tokio::sync::Notify::new(),
            progress: AtomicU64::new(0),
            stuck_at: AtomicU64::new(u64::MAX),
            dropped: None,
        }
    }

    /// This sink, counting itself in `dropped` when it is dropped.
    pub(super) fn counted_in(mut self, dropped: Arc<AtomicUsize>) -> Sink {
        self.dropped = Some(dropped);
        self
    }

    /// The file's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a reader may read more for this file: only a file that is writable and behind
    /// makes its readers wait. One that fails (an error is shown) or is stuck (no progress
    /// for [`STALL_CHECKS`] checks) has its lines dropped instead, as before backpressure.
    pub(super) fn room(&self) -> Room {
        if lock(&self.pending).len() < MAX_PENDING
            || lock(&self.error).is_some()
            || self.stuck_at.load(Ordering::Acquire) == self.progress()
        {
            Room::Free
        } else {
            Room::Behind
        }
    }

    /// Resolves when the writer has taken, written or dropped something of this file. Create
    /// it before calling [`Sink::room`] and poll it after, or a wake-up in between is lost.
    pub(super) fn drained(&self) -> tokio::sync::futures::Notified<'_> {
        self.drained.notified()
    }

    /// The writer's progress count on this file.
    pub(super) fn progress(&self) -> u64 {
        self.progress.load(Ordering::Acquire)
    }

    /// The writer took, wrote or dropped bytes: wake the readers waiting for room. `moved`:
    /// bytes reached the file or were dropped (taking alone is not progress).
    pub(super) fn note_drained(&self, moved: bool) {
        if moved {
            self.progress.fetch_add(1, Ordering::AcqRel);
        }
        self.drained.notify_waiters();
    }

    /// The readers waited [`STALL_CHECKS`] checks and the writer made no progress on this
    /// file since `seen`: drop its lines (counted) until it moves again, and say so once.
    pub(super) fn give_up_waiting(&self, seen: u64) {
        if self.stuck_at.swap(seen, Ordering::AcqRel) == seen {
            return;
        }
        let waited = PROGRESS_CHECK * STALL_CHECKS;
        let message = format!(
            "cannot write {}: no progress in {} s",
            self.path.display(),
            waited.as_secs()
        );
        crate::daemon_log!("{message}; its lines are dropped until it moves again");
        self.set_error(Some(message));
    }

    /// Queue bytes that are in memory only (a second file's copy, what a keeper kept).
    /// Whatever does not fit under [`MAX_PENDING_HARD`] is dropped at a line boundary and
    /// counted. Returns true when the writer must be told (nothing queued yet).
    pub(super) fn append(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let mut pending = lock(&self.pending);
        let room = MAX_PENDING_HARD.saturating_sub(pending.len());
        let kept = if bytes.len() <= room {
            bytes.len()
        } else {
            // The largest prefix of whole lines that fits.
            memchr::memrchr(b'\n', &bytes[..room]).map_or(0, |nl| nl + 1)
        };
        pending.push(&bytes[..kept]);
        drop(pending);
        if kept < bytes.len() {
            self.count_dropped(&bytes[kept..]);
        }
        !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Queue bytes read from `cursor`'s pipe, which still holds `pipe_bytes` of theirs (the
    /// writer consumes them once these are written). Never dropped here: the pipe bounds them.
    /// Returns true when the writer must be told.
    pub(super) fn append_from(
        &self,
        bytes: &[u8],
        cursor: &Arc<PipeCursor>,
        pipe_bytes: u64,
        exact: bool,
    ) -> bool {
        if bytes.is_empty() && pipe_bytes == 0 {
            return false;
        }
        lock(&self.pending).push_from(bytes, cursor, pipe_bytes, exact);
        !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Count the lines in `bytes` as dropped.
    pub(super) fn count_dropped(&self, bytes: &[u8]) -> u64 {
        let lines = count_lines(bytes);
        self.dropped_lines.fetch_add(lines, Ordering::Relaxed);
        lines
    }

    /// Take everything pending. The buffer left behind starts empty (no capacity), so an idle
    /// file holds no memory after a burst.
    pub(super) fn take_pending(&self) -> Batch {
        self.queued.store(false, Ordering::Release);
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Put back at the head of the pending bytes what the file did not take yet (a FIFO or
    /// pipe that is full): written first at the next attempt.
    pub(super) fn put_back(&self, rest: Batch) {
        if rest.is_empty() {
            return;
        }
        lock(&self.pending).prepend(rest);
    }

    /// Record the current write problem (`None`: writing works).
    pub(super) fn set_error(&self, error: Option<String>) {
        *lock(&self.error) = error;
    }

    /// Dropped lines and current problem.
    pub(super) fn status(&self) -> SinkStatus {
        SinkStatus {
            dropped_lines: self.dropped_lines.load(Ordering::Relaxed),
            error: lock(&self.error).clone(),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Only counted: the registry may be locked by this very thread (a lookup that drops the
        // last `Arc` it upgraded), so it is pruned later, by whoever looks at the count.
        if let Some(dropped) = &self.dropped {
            dropped.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Lines in `bytes`: its newlines, plus one for an unfinished last line.
pub(super) fn count_lines(bytes: &[u8]) -> u64 {
    let newlines = memchr::memchr_iter(b'\n', bytes).count() as u64;
    newlines + u64::from(bytes.last().is_some_and(|&b| b != b'\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_drops_whole_lines_beyond_the_bound_and_counts_them() {
        let sink = Sink::new("/x.log".into(), RotationPolicy::default());
        let line = [b'a'; 99];
        let mut chunk = Vec::new();
        for _ in 0..1000 {
            chunk.extend_from_slice(&line);
            chunk.push(b'\n');
        }
        let mut notified = 0;
        for _ in 0..(MAX_PENDING_HARD / chunk.len() + 5) {
            notified += usize::from(sink.append(&chunk));
        }
        assert_eq!(notified, 1, "one wake-up until the writer takes the batch");
        let pending = sink.take_pending().bytes;
        assert!(pending.len() <= MAX_PENDING_HARD);
        assert!(pending.ends_with(b"\n"), "only whole lines are kept");
        let kept = count_lines(&pending);
        let sent = (MAX_PENDING_HARD / chunk.len() + 5) as u64 * 1000;
        assert_eq!(kept + sink.status().dropped_lines, sent);
        assert!(
            sink.append(b"again\n"),
            "the writer is told again after a take"
        );
    }

    #[test]
    fn a_writable_file_past_the_bound_makes_readers_wait_a_failing_or_stuck_one_does_not() {
        let sink = Sink::new("/x.log".into(), RotationPolicy::default());
        let line = [b'a'; 1023];
        for _ in 0..MAX_PENDING / 1024 {
            assert_eq!(sink.room(), Room::Free);
            sink.append(&[&line[..], b"\n"].concat());
        }
        assert_eq!(sink.room(), Room::Behind, "behind: readers wait");
        // No progress seen for long: given up on, its lines are dropped until it moves.
        sink.give_up_waiting(sink.progress());
        assert_eq!(sink.room(), Room::Free);
        assert!(sink.status().error.is_some(), "shown as failing");
        sink.set_error(None);
        assert_eq!(sink.room(), Room::Free, "still stuck: no progress since");
        sink.note_drained(true);
        assert_eq!(sink.room(), Room::Behind, "it moved: readers wait again");
        let taken = sink.take_pending().bytes;
        assert_eq!(sink.room(), Room::Free, "taken: room again");
        // What a full FIFO did not take goes back ahead of what came since.
        sink.append(b"later\n");
        let mut first = Batch::default();
        first.push(b"first\n");
        sink.put_back(first);
        assert_eq!(sink.take_pending().bytes, b"first\nlater\n");
        assert_eq!(sink.status().dropped_lines, 0);
        assert_eq!(count_lines(&taken), (MAX_PENDING / 1024) as u64);
    }

    #[test]
    fn lines_are_counted_with_an_unfinished_last_one() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a\nb\n"), 2);
        assert_eq!(count_lines(b"a\nb"), 2);
    }
}
