//! One log file as seen from both sides: readers append formatted lines to its pending buffer
//! (never waiting on the disk), the writer thread drains that buffer into the file.

use super::rotation::RotationPolicy;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Bytes a file may have waiting for the writer. Beyond this, new lines are dropped (and
/// counted) instead of waiting: the app's pipe must always be drained.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;

/// Lock a mutex even if a panicking thread poisoned it: the data (buffers, counters) stays
/// usable, and a log pipeline that stops working is worse than one that loses a line.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Formatted bytes waiting to be written.
#[derive(Debug, Default)]
pub struct Pending {
    /// The bytes, whole lines except for an unfinished raw record.
    pub bytes: Vec<u8>,
}

/// The writer's side of a file: only the writer thread touches it.
#[derive(Debug, Default)]
pub struct FileSlot {
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
}

/// A log file.
#[derive(Debug)]
pub struct Sink {
    path: PathBuf,
    /// Set while a "please write me" message is queued for the writer, so readers send one
    /// message per batch, not one per chunk.
    pub queued: AtomicBool,
    /// Bytes waiting for the writer.
    pub pending: Mutex<Pending>,
    /// The writer's side.
    pub slot: Mutex<FileSlot>,
    /// Current rotation settings: the daemon's defaults under the overrides of the last app
    /// that registered the file.
    pub policy: Mutex<RotationPolicy>,
    /// That app's own rotation fields, to recompute `policy` when the defaults change.
    pub overrides: Mutex<kelpie_core::LogRotation>,
    dropped_lines: AtomicU64,
    error: Mutex<Option<String>>,
}

/// What `describe` shows about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStatus {
    /// Lines that never reached the file (writer behind, disk full, file unwritable).
    pub dropped_lines: u64,
    /// The current problem writing it, if any.
    pub error: Option<String>,
}

impl Sink {
    /// A sink for `path`, nothing opened yet.
    pub fn new(path: PathBuf, policy: RotationPolicy) -> Sink {
        Sink {
            path,
            queued: AtomicBool::new(false),
            pending: Mutex::default(),
            slot: Mutex::default(),
            policy: Mutex::new(policy),
            overrides: Mutex::default(),
            dropped_lines: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queue formatted bytes. Whatever does not fit under [`MAX_PENDING`] is dropped at a line
    /// boundary and counted. Returns true when the writer must be told (nothing queued yet).
    pub fn append(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let mut pending = lock(&self.pending);
        let room = MAX_PENDING.saturating_sub(pending.bytes.len());
        let kept = if bytes.len() <= room {
            bytes.len()
        } else {
            // The largest prefix of whole lines that fits.
            memchr::memrchr(b'\n', &bytes[..room]).map_or(0, |nl| nl + 1)
        };
        pending.bytes.extend_from_slice(&bytes[..kept]);
        drop(pending);
        if kept < bytes.len() {
            self.count_dropped(&bytes[kept..]);
        }
        !self.queued.swap(true, Ordering::AcqRel)
    }

    /// Count the lines in `bytes` as dropped.
    pub fn count_dropped(&self, bytes: &[u8]) -> u64 {
        let lines = count_lines(bytes);
        self.dropped_lines.fetch_add(lines, Ordering::Relaxed);
        lines
    }

    /// Take everything pending. The buffer left behind starts empty (no capacity), so an idle
    /// file holds no memory after a burst.
    pub fn take_pending(&self) -> Vec<u8> {
        self.queued.store(false, Ordering::Release);
        std::mem::take(&mut lock(&self.pending).bytes)
    }

    /// Forget everything pending (flush).
    pub fn discard_pending(&self) {
        lock(&self.pending).bytes.clear();
    }

    /// Record the current write problem (`None`: writing works).
    pub fn set_error(&self, error: Option<String>) {
        *lock(&self.error) = error;
    }

    /// Dropped lines and current problem.
    pub fn status(&self) -> SinkStatus {
        SinkStatus {
            dropped_lines: self.dropped_lines.load(Ordering::Relaxed),
            error: lock(&self.error).clone(),
        }
    }
}

/// Lines in `bytes`: its newlines, plus one for an unfinished last line.
pub fn count_lines(bytes: &[u8]) -> u64 {
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
        for _ in 0..(MAX_PENDING / chunk.len() + 5) {
            notified += usize::from(sink.append(&chunk));
        }
        assert_eq!(notified, 1, "one wake-up until the writer takes the batch");
        let pending = sink.take_pending();
        assert!(pending.len() <= MAX_PENDING);
        assert!(pending.ends_with(b"\n"), "only whole lines are kept");
        let kept = count_lines(&pending);
        let sent = (MAX_PENDING / chunk.len() + 5) as u64 * 1000;
        assert_eq!(kept + sink.status().dropped_lines, sent);
        assert!(
            sink.append(b"again\n"),
            "the writer is told again after a take"
        );
    }

    #[test]
    fn lines_are_counted_with_an_unfinished_last_one() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a\nb\n"), 2);
        assert_eq!(count_lines(b"a\nb"), 2);
    }
}
