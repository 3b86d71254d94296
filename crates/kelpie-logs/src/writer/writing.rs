//! Writing a file's pending batch: run by run, rotating at a line boundary when the size limit
//! is reached, splicing raw lines straight from their pipe (they leave the pipe only by going
//! into the file), writing formatted ones and then taking their source out of the pipe, and
//! keeping a file that a full disk cut short on a line boundary.

use super::super::batch::{Batch, Mark};
use super::super::cursor::PipeCursor;
use super::super::rotation::RotationPolicy;
use super::super::sink::{FileSlot, Sink};
use super::files::{failed, resumed, size_room};
use super::rotate::slot_is_regular;
use super::Writer;
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsFd;

/// How a run reaches the file.
#[derive(Clone, Copy)]
enum Mover<'a> {
    /// Written from the copy in memory.
    Memory,
    /// Spliced from the pipe that still holds it (its bytes are the pipe's own).
    Splice(&'a PipeCursor),
}

/// How a run ended.
enum RunEnd {
    /// All of it is in the file.
    Written,
    /// The file is full for now (a FIFO read slowly) after this many of its bytes: the rest
    /// waits for the next attempt.
    Full(usize),
    /// Writing failed (a full disk, an error): what was not written is dropped and counted.
    Failed,
}

/// What one write or splice did.
struct Written {
    /// Bytes the file took.
    bytes: usize,
    /// Why it stopped before the end, if it did.
    stop: Option<Stop>,
}

/// Why a write or splice stopped short.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The file is full for now (`EAGAIN`: a FIFO or pipe not read fast enough), not failing:
    /// the rest is to be retried, not dropped.
    Full,
    /// Writing failed (said and shown): the rest is dropped.
    Failed,
    /// The file cannot take spliced bytes (a terminal, say): write the copy instead.
    NoSplice,
    /// The reader reads that pipe itself now: write the copy instead.
    TakenOver,
}

impl Writer {
    /// Write everything pending for `sink`. True when the file is full for now (a FIFO or pipe
    /// read slowly): what it did not take is pending again, to retry soon.
    pub(super) fn drain(&mut self, sink: &Sink) -> bool {
        let batch = sink.take_pending();
        let total = batch.len();
        let mut slot = super::super::sink::lock(&sink.slot);
        let policy = *super::super::sink::lock(&sink.policy);
        let mut rest = None;
        if self.ensure_open(sink, &mut slot) {
            self.rotate_if_period_ended(sink, &mut slot, &policy);
            rest = self.write_batch(sink, &mut slot, &policy, batch);
            self.writes.set(self.writes.get() + 1);
            slot.last_write = self.writes.get();
        } else {
            slot.dropped_while_failing += drop_batch(sink, &batch);
        }
        self.note(sink, &slot, &policy);
        drop(slot);
        let put_back = rest.as_ref().map_or(0, Batch::len);
        if let Some(rest) = rest {
            sink.put_back(rest);
        }
        // Readers waiting for room look again; some bytes written or dropped is progress.
        sink.note_drained(put_back < total);
        put_back > 0
    }

    /// Write `batch`. Returns what a full file did not take (to put back pending).
    fn write_batch(
        &self,
        sink: &Sink,
        slot: &mut FileSlot,
        policy: &RotationPolicy,
        batch: Batch,
    ) -> Option<Batch> {
        if batch.is_empty() {
            return None;
        }
        go_to_end(slot);
        if slot.cut_line {
            // End the half line a cut write left before anything else goes in.
            let ended = write_some(sink, slot, b"\n", Mover::Memory);
            slot.size += ended.bytes as u64;
            if ended.stop == Some(Stop::Full) {
                return Some(batch);
            }
            if ended.bytes == 0 {
                slot.dropped_while_failing += drop_batch(sink, &batch);
                return None;
            }
            slot.cut_line = false;
            slot.mid_line = false;
        }
        // Where the batch stopped: (offset, whether what is left waits or is dropped).
        let mut stopped = None;
        for segment in batch.segments() {
            match self.write_run(sink, slot, policy, segment.bytes, segment.mark) {
                RunEnd::Written => {}
                RunEnd::Full(done) => {
                    stopped = Some((segment.run.start + done, true));
                    break;
                }
                RunEnd::Failed => {
                    stopped = Some((segment.run.end, false));
                    break;
                }
            }
        }
        let (at, waits) = stopped?;
        let rest = batch.rest_from(at);
        if waits {
            return Some(rest);
        }
        slot.dropped_while_failing += drop_batch(sink, &rest);
        None
    }

    /// Write one run, rotating whenever its next line would take the file past its size limit.
    fn write_run(
        &self,
        sink: &Sink,
        slot: &mut FileSlot,
        policy: &RotationPolicy,
        bytes: &[u8],
        mark: Option<&Mark>,
    ) -> RunEnd {
        let mut mover = match mark {
            Some(mark) if mark.exact && !slot.no_splice => Mover::Splice(&mark.cursor),
            _ => Mover::Memory,
        };
        // A raw run's bytes written from memory (the file took no splice) leave its pipe after.
        let mut from_memory = 0u64;
        let mut rest = bytes;
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
            // Room first, for whole lines: a full disk then takes the lines that fit and no part
            // of the next one, which only a later truncation (that a SIGKILL can prevent) would
            // take back.
            let room = match room_for(slot, &rest[..take]) {
                Ok(room) => room,
                Err(e) => {
                    failed(sink, format!("cannot write {}: {e}", sink.path().display()));
                    0
                }
            };
            let mut written = match room {
                0 => Written {
                    bytes: 0,
                    stop: None,
                },
                room => write_some(sink, slot, &rest[..room], mover),
            };
            if written.stop.is_none() && room < take {
                let full = std::io::Error::from_raw_os_error(libc_enospc());
                failed(
                    sink,
                    format!("cannot write {}: {full}", sink.path().display()),
                );
                written.stop = Some(Stop::Failed);
            }
            if written.bytes > 0 {
                slot.mid_line = rest[written.bytes - 1] != b'\n';
            }
            if matches!(mover, Mover::Memory) {
                from_memory += written.bytes as u64;
            }
            let done = bytes.len() - rest.len() + written.bytes;
            match written.stop {
                None => {}
                Some(stop @ (Stop::NoSplice | Stop::TakenOver)) => {
                    // Written from memory from here on (for this file, or this pipe).
                    slot.no_splice |= stop == Stop::NoSplice;
                    mover = Mover::Memory;
                    slot.size += written.bytes as u64;
                    rest = &rest[written.bytes..];
                    continue;
                }
                Some(Stop::Full) => {
                    // Writable, only behind (a FIFO read slowly): the rest waits, from the
                    // exact byte the file stopped at, so nothing is cut.
                    slot.size += written.bytes as u64;
                    settle_raw(mark, from_memory);
                    return RunEnd::Full(done);
                }
                Some(Stop::Failed) => {
                    self.cut_short(sink, slot, &rest[..take], written.bytes);
                    slot.dropped_while_failing += sink.count_dropped(&rest[take..]);
                    match mark {
                        // What was not spliced leaves the pipe: written from memory, or dropped.
                        Some(mark) if mark.exact => mark
                            .cursor
                            .consume((bytes.len() - done) as u64 + from_memory),
                        Some(mark) => mark.cursor.consume(mark.pipe_bytes),
                        None => {}
                    }
                    return RunEnd::Failed;
                }
            }
            slot.size += written.bytes as u64;
            rest = &rest[take..];
            if policy.max_size > 0 && slot.size >= policy.max_size && slot_is_regular(slot) {
                self.rotate(sink, slot, policy);
            }
        }
        match mark {
            Some(mark) if mark.exact => settle_raw(Some(mark), from_memory),
            // Its formatted copy is in the file: its source leaves the pipe.
            Some(mark) => mark.cursor.consume(mark.pipe_bytes),
            None => {}
        }
        RunEnd::Written
    }

    /// A write of `part` (whole lines) stopped after `written` bytes (a full disk): the part of
    /// a line written is taken back, so the file ends on a line boundary and the next line,
    /// once writing works again, starts on its own instead of continuing this one. The cut
    /// line is counted as dropped with the rest of `part`.
    fn cut_short(&self, sink: &Sink, slot: &mut FileSlot, part: &[u8], written: usize) {
        let whole = memchr::memrchr(b'\n', &part[..written]).map_or(0, |nl| nl + 1);
        slot.size += whole as u64;
        if !take_back(sink, slot, (written - whole) as u64) {
            slot.size += (written - whole) as u64;
            slot.cut_line = true;
        }
        slot.dropped_while_failing += sink.count_dropped(&part[whole..]);
    }
}

/// A raw run's bytes written from memory (not spliced) leave its pipe now.
fn settle_raw(mark: Option<&Mark>, from_memory: u64) {
    if let Some(mark) = mark.filter(|mark| mark.exact) {
        mark.cursor.consume(from_memory);
    }
}

/// Drop a batch that cannot be written: its lines are counted, its pipes' bytes taken out.
pub(super) fn drop_batch(sink: &Sink, batch: &Batch) -> u64 {
    batch.consume_pipes();
    sink.count_dropped(&batch.bytes)
}

/// Write at the file's end: the file is not opened for appending (a splice refuses such a
/// file), so its position is put at its end before each batch, where someone else's writes or
/// a truncation (`flush`, a copy-and-truncate rotation) left it.
fn go_to_end(slot: &mut FileSlot) {
    if !slot.regular {
        return;
    }
    if let Some(end) = slot
        .file
        .as_mut()
        .and_then(|f| f.seek(SeekFrom::End(0)).ok())
    {
        slot.size = end;
    }
}

/// Write (or splice) as much of `bytes` as the file takes. A failure marks the sink as failing
/// (once) until a later write succeeds. A full FIFO is a failure only while the sink already
/// fails (its readers gave up waiting on it): otherwise it is a file that is behind.
fn write_some(sink: &Sink, slot: &mut FileSlot, bytes: &[u8], mover: Mover<'_>) -> Written {
    let mut written = Written {
        bytes: 0,
        stop: None,
    };
    let Some(file) = slot.file.as_mut() else {
        written.stop = Some(Stop::Failed);
        return written;
    };
    while written.bytes < bytes.len() {
        let step = match mover {
            Mover::Memory => file.write(&bytes[written.bytes..]),
            Mover::Splice(cursor) => {
                match cursor.splice_into(file.as_fd(), bytes.len() - written.bytes) {
                    Ok(moved) => match moved.error {
                        None => Ok(moved.bytes),
                        Some(e) => {
                            written.bytes += moved.bytes;
                            Err(e)
                        }
                    },
                    Err(_taken_over) => {
                        written.stop = Some(Stop::TakenOver);
                        return written;
                    }
                }
            }
        };
        match step {
            Ok(0) => {
                failed(
                    sink,
                    format!("cannot write {}: no space written", sink.path().display()),
                );
                written.stop = Some(Stop::Failed);
                return written;
            }
            Ok(n) => written.bytes += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A destination that takes no spliced bytes (`EINVAL`).
            Err(e)
                if e.kind() == std::io::ErrorKind::InvalidInput
                    && matches!(mover, Mover::Splice(_)) =>
            {
                written.stop = Some(Stop::NoSplice);
                return written;
            }
            // Full for now. After some bytes went in it is moving (a FIFO read again after
            // its readers gave up on it): behind, not failing.
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    && (written.bytes > 0 || sink.status().error.is_none()) =>
            {
                if written.bytes > 0 {
                    resumed(sink, slot);
                }
                written.stop = Some(Stop::Full);
                return written;
            }
            Err(e) => {
                failed(sink, format!("cannot write {}: {e}", sink.path().display()));
                written.stop = Some(Stop::Failed);
                return written;
            }
        }
    }
    resumed(sink, slot);
    written
}

/// How much of `part` (whole lines) the file has room for, set aside at its end
/// (`kelpie_sys::reserve_space`): all of it, or on a full disk the whole lines that fit (0 when
/// not one does). A FIFO or a device takes what it takes.
fn room_for(slot: &FileSlot, part: &[u8]) -> std::io::Result<usize> {
    let Some(file) = slot.file.as_ref().filter(|_| slot.regular) else {
        return Ok(part.len());
    };
    let fd = file.as_fd();
    match kelpie_sys::reserve_space(fd, slot.size, part.len() as u64) {
        Ok(()) => return Ok(part.len()),
        Err(e) if e.raw_os_error() != Some(libc_enospc()) => return Err(e),
        Err(_) => {}
    }
    let free = kelpie_sys::free_space(fd)
        .unwrap_or(0)
        .min(part.len() as u64) as usize;
    let Some(fits) = memchr::memrchr(b'\n', &part[..free]).map(|newline| newline + 1) else {
        return Ok(0);
    };
    match kelpie_sys::reserve_space(fd, slot.size, fits as u64) {
        Ok(()) => Ok(fits),
        Err(_) => Ok(0),
    }
}

/// ENOSPC's number (a full disk).
const fn libc_enospc() -> i32 {
    28
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
    // From the file's real end, where the write put them (not from our count of its size).
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
