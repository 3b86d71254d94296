//! An instance's last lines, kept compactly: their bytes back to back in one buffer and a
//! 24-byte record per line, so a line costs its bytes and 24 more whatever the chunk it came in.
//!
//! Keeping the chunks themselves (as the followers get them) cost about 500 bytes per line for
//! the one-line chunks of an app that prints a line and crashes: 30 such apps grew the daemon
//! by 7 MB until their rings were full. Reading (`kelpie logs`) is rare: the lines it asks for
//! are copied out then.

use super::hub::{AppLabel, LogChunk, LogLine};
use kelpie_proto::LogStream;
use std::collections::VecDeque;
use std::sync::Arc;

/// Lines kept per instance.
pub(super) const RING_LINES: usize = 500;
/// Bytes kept per instance (lines, their date prefixes and their records).
pub(super) const RING_BYTES: usize = 128 * 1024;

/// One line kept: where its bytes are is the sum of the lengths after it.
#[derive(Debug, Clone, Copy)]
struct Kept {
    seq: u64,
    at_ms: i64,
    /// Its bytes, the prefix's included.
    len: u32,
    /// Its date prefix's bytes (the first of `len`).
    prefix_len: u16,
    stream: LogStream,
}

/// Bookkeeping counted per line against [`RING_BYTES`].
const RECORD_BYTES: usize = std::mem::size_of::<Kept>();

/// The last lines of one instance, bounded by [`RING_LINES`] and [`RING_BYTES`].
#[derive(Default)]
pub(super) struct Ring {
    kept: VecDeque<Kept>,
    bytes: VecDeque<u8>,
    /// The app the lines are of (the latest label seen).
    app: Option<Arc<AppLabel>>,
    pm_id: u32,
}

impl Ring {
    /// An empty ring for instance `pm_id`.
    pub(super) fn new(pm_id: u32) -> Ring {
        Ring {
            pm_id,
            ..Ring::default()
        }
    }

    /// Lines kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }

    /// Keep the lines of `chunk`, dropping the oldest beyond the bounds.
    pub(super) fn push(&mut self, chunk: &LogChunk) {
        let prefix = chunk.prefix.as_deref().unwrap_or_default();
        let prefix = &prefix[..prefix.len().min(usize::from(u16::MAX))];
        // Of a big chunk (a flood), only the lines the ring can keep are copied.
        for index in chunk.len().saturating_sub(RING_LINES)..chunk.len() {
            let line = chunk.line(index);
            // A line longer than the whole ring is kept cut (the file has it whole).
            let line = &line[..line.len().min(RING_BYTES)];
            self.bytes.extend(prefix);
            self.bytes.extend(line);
            self.kept.push_back(Kept {
                seq: chunk.first_seq + index as u64,
                at_ms: chunk.at_ms,
                len: u32::try_from(prefix.len() + line.len()).unwrap_or(u32::MAX),
                prefix_len: prefix.len() as u16,
                stream: chunk.stream,
            });
        }
        self.app = Some(chunk.app.clone());
        while self.kept.len() > 1
            && (self.kept.len() > RING_LINES
                || self.bytes.len() + self.kept.len() * RECORD_BYTES > RING_BYTES)
        {
            let Some(oldest) = self.kept.pop_front() else {
                break;
            };
            self.bytes.drain(..oldest.len as usize);
        }
    }

    /// Forget every line.
    pub(super) fn clear(&mut self) {
        self.kept.clear();
        self.bytes.clear();
    }

    /// Lines from newest to oldest, copied out.
    pub(super) fn newest_first(&self) -> impl Iterator<Item = LogLine> + '_ {
        let mut end = self.bytes.len();
        self.kept.iter().rev().filter_map(move |kept| {
            let start = end - kept.len as usize;
            let range = start..end;
            end = start;
            let app = self.app.clone()?;
            let prefix_end = start + usize::from(kept.prefix_len);
            let prefix: Option<Arc<[u8]>> = (kept.prefix_len > 0)
                .then(|| self.bytes.range(start..prefix_end).copied().collect());
            let raw: Vec<u8> = self.bytes.range(prefix_end..range.end).copied().collect();
            Some(LogLine::single(LogChunk::new(
                kept.seq,
                kept.at_ms,
                self.pm_id,
                app,
                kept.stream,
                prefix,
                raw,
            )))
        })
    }

    /// Bytes of memory the kept lines take (their buffers' capacity).
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
        self.bytes.capacity() + self.kept.capacity() * RECORD_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: u64, stream: LogStream, prefix: Option<&str>, lines: &[&str]) -> LogChunk {
        let mut chunk = LogChunk::new(
            seq,
            7,
            3,
            Arc::new(AppLabel {
                name: "api".into(),
                namespace: "default".into(),
            }),
            stream,
            prefix.map(|p| Arc::from(p.as_bytes())),
            lines.concat().into_bytes(),
        );
        chunk.set_ends(
            lines
                .iter()
                .scan(0u32, |end, l| {
                    *end += l.len() as u32;
                    Some(*end)
                })
                .collect(),
        );
        chunk
    }

    fn texts(ring: &Ring) -> Vec<String> {
        let mut lines: Vec<String> = ring
            .newest_first()
            .map(|l| String::from_utf8_lossy(&l.as_written()).into_owned())
            .collect();
        lines.reverse();
        lines
    }

    #[test]
    fn lines_come_back_with_their_prefix_stream_and_order() {
        let mut ring = Ring::new(3);
        ring.push(&chunk(1, LogStream::Out, None, &["a", "bb"]));
        ring.push(&chunk(3, LogStream::Err, Some("12:00: "), &["ccc"]));
        assert_eq!(texts(&ring), ["a", "bb", "12:00: ccc"]);
        let newest = ring.newest_first().next().expect("a line");
        assert_eq!(newest.seq(), 3);
        assert_eq!(newest.bytes(), b"ccc");
        assert_eq!(newest.chunk().stream, LogStream::Err);
        assert_eq!(newest.chunk().pm_id, 3);
    }

    #[test]
    fn one_line_chunks_cost_their_bytes_and_a_record() {
        let mut ring = Ring::new(0);
        for seq in 0..(RING_LINES as u64 * 3) {
            ring.push(&chunk(seq, LogStream::Out, None, &["out line"]));
        }
        assert_eq!(ring.len(), RING_LINES);
        // 500 lines of 8 bytes and their records, with the buffers' doubling: under 32 KB.
        assert!(ring.memory() < 32 * 1024, "{}", ring.memory());
        assert_eq!(texts(&ring).len(), RING_LINES);
    }

    #[test]
    fn the_bytes_bound_keeps_at_least_the_newest_line() {
        let mut ring = Ring::new(0);
        ring.push(&chunk(1, LogStream::Out, None, &["small"]));
        let big = "x".repeat(RING_BYTES * 2);
        ring.push(&chunk(2, LogStream::Out, None, &[&big]));
        assert_eq!(ring.len(), 1);
        assert_eq!(
            ring.newest_first().next().expect("kept").bytes().len(),
            RING_BYTES
        );
    }
}
