//! Writing a file: opening it (again after a failure), writing its pending bytes up to its size
//! limit, saying once when writing fails and when it works again; and emptying it (`flush`).

use super::super::rotation::{period_of, RotationPolicy};
use super::super::sink::{lock, FileSlot, Sink};
use super::rotate::slot_is_regular;
use super::{now_ms, system_time_ms, Writer};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// Wait between attempts to open a file that could not be opened.
const RETRY_OPEN: Duration = Duration::from_secs(1);
/// Timed attempts in a row that write nothing to a full file (a FIFO nobody reads) after which
/// it is taken as failing: its pending lines are dropped and counted. With the writer's
/// growing wait between attempts (5 ms doubling, up to 1 s), about 5 s. Counted in attempts
/// rather than by the clock, so a daemon stopped meanwhile does not count its own pause.
const FULL_GIVE_UP: u32 = 12;

impl Writer {
    /// Write everything pending for `sink`. True when the file is full for now (a FIFO or pipe
    /// read slowly): what it did not take is pending again, to retry soon.
    pub(super) fn drain(&mut self, sink: &Sink) -> bool {
        let batch = sink.take_pending();
        let mut slot = lock(&sink.slot);
        let policy = *lock(&sink.policy);
        let mut put_back = 0;
        if self.ensure_open(sink, &mut slot) {
            self.rotate_if_period_ended(sink, &mut slot, &policy);
            put_back = self.write_batch(sink, &mut slot, &policy, &batch);
            self.writes.set(self.writes.get() + 1);
            slot.last_write = self.writes.get();
        } else {
            slot.dropped_while_failing += sink.count_dropped(&batch);
        }
        self.note(sink, &slot, &policy);
        drop(slot);
        // Readers waiting for room look again; some bytes written or dropped is progress.
        sink.note_drained(put_back < batch.len());
        put_back > 0
    }

    /// Write `batch`, rotating whenever the next line would take the file past its size limit.
    /// Returns how many of its bytes were put back pending because the file is full for now.
    fn write_batch(
        &self,
        sink: &Sink,
        slot: &mut FileSlot,
        policy: &RotationPolicy,
        batch: &[u8],
    ) -> usize {
        if slot.cut_line && !batch.is_empty() {
            // End the half line a cut write left before anything else goes in.
            let ended = write_some(sink, slot, b"\n");
            slot.size += ended.bytes as u64;
            if ended.full {
                sink.put_back(batch);
                return batch.len();
            }
            if ended.bytes == 0 {
                slot.dropped_while_failing += sink.count_dropped(batch);
                return 0;
            }
            slot.cut_line = false;
        }
        let mut rest = batch;
        while !rest.is_empty() {
            let take = match size_room(slot, policy) {
                Some(room) if rest.len() > room => match memchr::memrchr(b'\n', &rest[..room]) {
                    Some(newline) => newline + 1,
                    // Not one whole line fits: into a new file. In an empty file, write the
                    // whole (long) line anyway, or it would never be written.
                    None if slot.size > 0 => {
                        self.rotate(sink, slot, policy);
                        continue;
                    }
                    None => {
                        memchr::memchr(b'\n', &rest[room..]).map_or(rest.len(), |nl| room + nl + 1)
                    }
                },
                _ => rest.len(),
            };
            let Written {
                bytes: written,
                full,
            } = write_some(sink, slot, &rest[..take]);
            if full {
                // Writable, only behind (a FIFO read slowly): the rest waits, from the exact
                // byte the file stopped at, so nothing is cut.
                slot.size += written as u64;
                sink.put_back(&rest[written..]);
                return rest.len() - written;
            }
            if written < take {
                // Cut short (a full disk): the part of a line written is taken back, so the
                // file ends on a line boundary and the next line, once writing works again,
                // starts on its own instead of continuing this one. The cut line is counted
                // as dropped with the rest.
                let whole = memchr::memrchr(b'\n', &rest[..written]).map_or(0, |nl| nl + 1);
                slot.size += whole as u64;
                if !take_back(sink, slot, (written - whole) as u64) {
                    slot.size += (written - whole) as u64;
                    slot.cut_line = true;
                }
                slot.dropped_while_failing += sink.count_dropped(&rest[whole..]);
                return 0;
            }
            slot.size += written as u64;
            rest = &rest[take..];
            if policy.max_size > 0 && slot.size >= policy.max_size && slot_is_regular(slot) {
                self.rotate(sink, slot, policy);
            }
        }
        0
    }

    /// Open the file if it is not open (and a retry is due). True when it is open.
    pub(super) fn ensure_open(&self, sink: &Sink, slot: &mut FileSlot) -> bool {
        if slot.file.is_some() {
            return true;
        }
        if slot.retry_open_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match open_append(sink) {
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

/// After a timed attempt at a full file: whether it has been full without taking anything for
/// [`FULL_GIVE_UP`] attempts, in which case it now fails (said once) and what waited for it is
/// dropped and counted, so its readers stop waiting on it.
pub(super) fn still_stuck(sink: &Sink, progressed: bool) -> bool {
    let mut slot = lock(&sink.slot);
    if progressed {
        slot.full_attempts = 0;
        return false;
    }
    slot.full_attempts += 1;
    if slot.full_attempts < FULL_GIVE_UP {
        return false;
    }
    slot.full_attempts = 0;
    // Counted before the failure is shown, so whoever sees the one sees the other.
    let dropped = sink.take_pending();
    slot.dropped_while_failing += sink.count_dropped(&dropped);
    failed(
        sink,
        format!(
            "cannot write {}: it takes nothing (full, nobody reads it?)",
            sink.path().display()
        ),
    );
    drop(slot);
    sink.note_drained(true);
    true
}

/// Bytes that still fit under the size limit (`None`: no limit applies).
fn size_room(slot: &FileSlot, policy: &RotationPolicy) -> Option<usize> {
    if policy.max_size == 0 || !slot_is_regular(slot) {
        return None;
    }
    Some(policy.max_size.saturating_sub(slot.size) as usize)
}

/// Open for appending, creating the file and its directory. Non-blocking, so a FIFO nobody
/// reads cannot hang the writer.
fn open_append(sink: &Sink) -> std::io::Result<File> {
    if let Some(dir) = sink.path().parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(kelpie_sys::O_NONBLOCK)
        .open(sink.path())
}

/// What a write did.
struct Written {
    /// Bytes the file took.
    bytes: usize,
    /// It stopped because the file is full for now (`EAGAIN`: a FIFO or pipe not read fast
    /// enough), not failing: the rest is to be retried, not dropped.
    full: bool,
}

/// Write as much of `bytes` as the file takes. A failure marks the sink as failing (once) until
/// a later write succeeds. A full FIFO is a failure only while the sink already fails (its
/// readers gave up waiting on it): otherwise it is a file that is behind.
fn write_some(sink: &Sink, slot: &mut FileSlot, bytes: &[u8]) -> Written {
    let Some(file) = slot.file.as_mut() else {
        return Written {
            bytes: 0,
            full: false,
        };
    };
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => {
                failed(
                    sink,
                    format!("cannot write {}: no space written", sink.path().display()),
                );
                return Written {
                    bytes: written,
                    full: false,
                };
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Full for now. After some bytes went in it is moving (a FIFO read again after
            // its readers gave up on it): behind, not failing.
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && (written > 0 || sink.status().error.is_none()) =>
            {
                if written > 0 {
                    resumed(sink, slot);
                }
                return Written {
                    bytes: written,
                    full: true,
                };
            }
            Err(e) => {
                failed(sink, format!("cannot write {}: {e}", sink.path().display()));
                return Written {
                    bytes: written,
                    full: false,
                };
            }
        }
    }
    resumed(sink, slot);
    Written {
        bytes: written,
        full: false,
    }
}

/// Remove the last `bytes` bytes of a regular file (a line cut by a failed write); truncating
/// needs no room on a full disk. False when they stay: not a regular file, or it failed.
fn take_back(sink: &Sink, slot: &FileSlot, bytes: u64) -> bool {
    if bytes == 0 {
        return true;
    }
    let Some(file) = slot.file.as_ref().filter(|_| slot.regular) else {
        return false;
    };
    // From the file's real end, where an append put them (not from our count of its size).
    let result = file
        .metadata()
        .and_then(|meta| file.set_len(meta.len().saturating_sub(bytes)));
    match result {
        Ok(()) => true,
        Err(e) => {
            crate::daemon_log!(
                "cannot take back a cut line at the end of {}: {e}; the next line starts on a new line",
                sink.path().display()
            );
            false
        }
    }
}

/// Record a failure; said in the daemon log only when it starts or changes.
fn failed(sink: &Sink, message: String) {
    if sink.status().error.as_deref() != Some(message.as_str()) {
        crate::daemon_log!("{message}; its lines are dropped until it works again");
        sink.set_error(Some(message));
    }
}

/// Clear a failure once writing works again.
fn resumed(sink: &Sink, slot: &mut FileSlot) {
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
    sink.discard_pending();
    let mut slot = lock(&sink.slot);
    let result = match &slot.file {
        Some(file) if slot.regular => file.set_len(0),
        Some(_) => Ok(()),
        None => match OpenOptions::new()
            .write(true)
            .custom_flags(kelpie_sys::O_NONBLOCK)
            .open(sink.path())
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
        }
        Err(e) => crate::daemon_log!("cannot flush {}: {e}", sink.path().display()),
    }
}
