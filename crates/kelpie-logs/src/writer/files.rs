//! Writing a file: opening it (again after a failure), writing its pending bytes up to its size
//! limit, saying once when writing fails and when it works again; and emptying it (`flush`).

use super::super::rotation::{period_of, RotationPolicy};
use super::super::sink::{lock, FileSlot, Sink};
use super::rotate::slot_is_regular;
use super::{now_ms, system_time_ms, Writer};
use std::fs::File;
use std::time::{Duration, Instant};

/// Wait between attempts to open a file that could not be opened.
const RETRY_OPEN: Duration = Duration::from_secs(1);
/// Timed attempts in a row at a full file that find it took nothing since the attempt before
/// (a FIFO nobody reads) after which it is taken as failing: its pending lines are dropped and counted. With the writer's
/// growing wait between attempts (5 ms doubling, up to 1 s), about 5 s. Counted in attempts
/// rather than by the clock, so a daemon stopped meanwhile does not count its own pause.
pub(super) const FULL_GIVE_UP: u32 = 12;

impl Writer {
    /// Open the file if it is not open (and a retry is due). True when it is open.
    pub(super) fn ensure_open(&self, sink: &Sink, slot: &mut FileSlot) -> bool {
        if slot.file.is_some() {
            return true;
        }
        if slot.retry_open_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match open_for_writing(sink) {
            Ok(file) => {
                let meta = file.metadata().ok();
                slot.size = meta.as_ref().map_or(0, |m| m.len());
                slot.regular = meta.as_ref().is_some_and(|m| m.is_file());
                let policy = *lock(&sink.policy);
                // A file left by an earlier run belongs to the period it was last written in,
                // so yesterday's lines rotate out at the first check of today.
                let written_at = meta
                    .and_then(|m| m.modified().ok())
                    .filter(|_| slot.size > 0)
                    .map_or_else(now_ms, system_time_ms);
                slot.period = period_of(&policy, written_at, self.offset);
                slot.file = Some(file);
                slot.retry_open_at = None;
                resumed(sink, slot);
                self.opened(sink);
                true
            }
            Err(e) => {
                failed(sink, format!("cannot open {}: {e}", sink.path().display()));
                slot.retry_open_at = Some(Instant::now() + RETRY_OPEN);
                false
            }
        }
    }
}

impl Writer {
    /// A file was opened. Past [`crate::descriptors::cache_size`] open files, the least
    /// recently written others are closed (down to three quarters of it) and opened again at
    /// their next line, so the daemon's descriptors do not grow with the number of apps (10 000
    /// apps would hold 20 000 files open). A closed file's time rotation happens at its next
    /// line, as for a file left by an earlier run.
    fn opened(&self, current: &Sink) {
        self.open_files.set(self.open_files.get() + 1);
        let max_open = crate::descriptors::cache_size_now();
        if self.open_files.get() > max_open {
            self.close_least_written(current, max_open);
        }
    }

    /// Close the least recently written open files but `current` (whose slot the caller
    /// holds), leaving three quarters of `max_open` open.
    pub(super) fn close_least_written(&self, current: &Sink, max_open: usize) {
        // `current`'s slot is locked by the caller: it is left alone.
        let mut open: Vec<(u64, std::sync::Arc<Sink>)> = Vec::new();
        for sink in self.live_sinks() {
            if std::ptr::eq(std::sync::Arc::as_ptr(&sink), current) {
                continue;
            }
            let last_write = {
                let slot = lock(&sink.slot);
                slot.file.as_ref().map(|_| slot.last_write)
            };
            if let Some(last_write) = last_write {
                open.push((last_write, sink));
            }
        }
        open.sort_by_key(|(last_write, _)| *last_write);
        let keep = max_open * 3 / 4;
        let close = (open.len() + 1).saturating_sub(keep);
        for (_, sink) in &open[..close.min(open.len())] {
            lock(&sink.slot).file = None;
        }
        self.open_files.set(open.len() + 1 - close.min(open.len()));
    }
}

/// What a timed attempt at a full file found.
pub(super) struct FullAttempt {
    /// The file took bytes since the attempt before: by this one, or by a write in between.
    pub moved: bool,
    /// It has been full without taking anything for [`FULL_GIVE_UP`] attempts in a row: it
    /// now fails (said once) and what waited for it is dropped and counted, so its readers
    /// stop waiting on it.
    pub given_up: bool,
}

/// After a timed attempt at `sink`, which was full: whether it moved since the last attempt,
/// and whether it is given up on now.
pub(super) fn after_full_attempt(sink: &Sink, still_full: bool) -> FullAttempt {
    let mut slot = lock(&sink.slot);
    let progress = sink.progress();
    let moved = progress != slot.progress_at_attempt;
    slot.progress_at_attempt = progress;
    if moved || !still_full {
        slot.full_attempts = 0;
        return FullAttempt {
            moved,
            given_up: false,
        };
    }
    slot.full_attempts += 1;
    if slot.full_attempts < FULL_GIVE_UP {
        return FullAttempt {
            moved,
            given_up: false,
        };
    }
    slot.full_attempts = 0;
    // The rest of a line the file took part of is dropped with the others: the next write
    // ends it first, so the next line does not continue it.
    slot.cut_line |= std::mem::take(&mut slot.mid_line);
    // Counted before the failure is shown, so whoever sees the one sees the other.
    slot.dropped_while_failing += super::writing::drop_batch(sink, &sink.take_pending());
    failed(
        sink,
        format!(
            "cannot write {}: it takes nothing (full, nobody reads it?)",
            sink.path().display()
        ),
    );
    drop(slot);
    sink.note_drained(true);
    FullAttempt {
        moved,
        given_up: true,
    }
}

/// Bytes that still fit under the size limit (`None`: no limit applies).
pub(super) fn size_room(slot: &FileSlot, policy: &RotationPolicy) -> Option<usize> {
    if policy.max_size == 0 || !slot_is_regular(slot) {
        return None;
    }
    Some(policy.max_size.saturating_sub(slot.size) as usize)
}

/// Open for writing at its end (positioned there before each batch), creating the file (mode
/// 0640, with its directory's group) and its directory. Not for appending: a splice refuses a
/// file opened so. Non-blocking, so a FIFO nobody reads cannot hang the writer. The path is
/// walked without following a link another user could have placed
/// ([`kelpie_sys::GuardedDir`]): an app's user who can write the directory of its log cannot make
/// the daemon write elsewhere with the daemon's rights.
fn open_for_writing(sink: &Sink) -> std::io::Result<File> {
    LOG_DIRS.with(|dirs| {
        dirs.borrow_mut()
            .open_file(sink.path(), LOG_FILE, Some(0o755))
            .map(|opened| opened.file)
    })
}

thread_local! {
    /// The log directories the writer opened files in lately: starting 3 000 apps opens 6 000
    /// files, mostly in one directory, walked once instead of 6 000 times.
    static LOG_DIRS: std::cell::RefCell<kelpie_sys::DirCache> =
        std::cell::RefCell::new(kelpie_sys::DirCache::new(LOG_DIRS_KEPT));
}

/// Log directories kept open by the writer (one descriptor each).
const LOG_DIRS_KEPT: usize = 16;

/// How a log file is opened for writing: made 0640 when missing (read by its owner and the
/// directory's group: the lines may hold what the app printed of its secrets).
const LOG_FILE: kelpie_sys::FileOpen = kelpie_sys::FileOpen {
    read: false,
    write: true,
    create: Some(0o640),
    nonblock: true,
};

/// Record a failure; said in the daemon log only when it starts or changes.
pub(super) fn failed(sink: &Sink, message: String) {
    if sink.status().error.as_deref() != Some(message.as_str()) {
        crate::daemon_log!("{message}; its lines are dropped until it works again");
        sink.set_error(Some(message));
    }
}

/// Clear a failure once writing works again.
pub(super) fn resumed(sink: &Sink, slot: &mut FileSlot) {
    if sink.status().error.is_some() {
        crate::daemon_log!(
            "writing {} again ({} lines were dropped meanwhile)",
            sink.path().display(),
            slot.dropped_while_failing
        );
        sink.set_error(None);
        slot.dropped_while_failing = 0;
    }
}

/// Empty a file and what is waiting for it. Only regular files: a FIFO or a device has nothing
/// to empty (and opening one must not block).
pub(super) fn truncate(sink: &Sink) {
    // What waited is emptied too: its pipes' bytes leave them unwritten.
    sink.take_pending().consume_pipes();
    let mut slot = lock(&sink.slot);
    let result = match &slot.file {
        Some(file) if slot.regular => file.set_len(0),
        Some(_) => Ok(()),
        None => match kelpie_sys::open_guarded(
            sink.path(),
            kelpie_sys::FileOpen {
                create: None,
                ..LOG_FILE
            },
            None,
        )
        .map(|opened| opened.file)
        {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => file.set_len(0),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => {
            slot.size = 0;
            // Nothing is left of a cut line to end (a FIFO or device had none to take back).
            slot.cut_line = false;
            slot.mid_line = false;
        }
        Err(e) => crate::daemon_log!("cannot flush {}: {e}", sink.path().display()),
    }
}
