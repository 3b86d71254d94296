//! The last lines one process wrote to stderr, for the record of its exit (crash forensics).
//!
//! Kept by the reader of that process's stderr pipe rather than taken from the hub's ring: the
//! ring is per instance and holds both streams, so an app flooding stdout pushes its stderr out
//! of it, and after an immediate restart the new process's lines would mix with the old one's.
//! The reader keeps the chunks it published to the hub (shared, not copied) for the last
//! [`STDERR_TAIL_LINES`] lines, within [`KEPT_BYTES`]; it is done when the pipe reaches its end
//! (every process that held it has exited), which is what the instance waits for, briefly,
//! before it adds the lines to the exit's record.

use super::hub::{LogChunk, LogLine};
use kelpie_core::forensics::{stderr_tail, STDERR_TAIL_LINES};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Bytes of chunks kept beyond the newest one (a line is at most 64 KiB).
const KEPT_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Kept {
    chunks: VecDeque<Arc<LogChunk>>,
    lines: usize,
    bytes: usize,
}

/// The reader's side: chunks go in; dropped when the reader ends, which tells the other side.
pub struct TailWriter {
    kept: Arc<Mutex<Kept>>,
    _done: oneshot::Sender<()>,
}

/// The instance's side.
pub struct TailReader {
    kept: Arc<Mutex<Kept>>,
    done: oneshot::Receiver<()>,
}

/// A new, empty tail for one process's stderr.
pub fn exit_tail() -> (TailWriter, TailReader) {
    let kept = Arc::new(Mutex::new(Kept::default()));
    let (done_tx, done_rx) = oneshot::channel();
    (
        TailWriter {
            kept: kept.clone(),
            _done: done_tx,
        },
        TailReader {
            kept,
            done: done_rx,
        },
    )
}

impl TailWriter {
    /// Keep `chunk`, dropping the oldest chunks the last lines no longer need.
    pub fn push(&self, chunk: Arc<LogChunk>) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        kept.lines += chunk.len();
        kept.bytes += LogLine::all_of(&chunk)
            .map(|l| l.bytes().len())
            .sum::<usize>();
        kept.chunks.push_back(chunk);
        while let Some(oldest) = kept.chunks.front() {
            let oldest_lines = oldest.len();
            let enough_lines = kept.lines - oldest_lines >= STDERR_TAIL_LINES;
            let too_big = kept.bytes > KEPT_BYTES && kept.chunks.len() > 1;
            if !(enough_lines || too_big) {
                break;
            }
            let oldest_bytes = oldest.bytes();
            kept.lines -= oldest_lines;
            kept.bytes -= oldest_bytes;
            kept.chunks.pop_front();
        }
    }
}

impl TailReader {
    /// Wait until the reader has read the pipe to its end, at most `limit` (a process the app
    /// left running may hold the pipe open), then the lines, bounded for the exit's record.
    pub async fn finish(mut self, limit: std::time::Duration) -> Vec<String> {
        let _ = tokio::time::timeout(limit, &mut self.done).await;
        self.lines()
    }

    /// The lines now if the reader is done already (a crash loop's usual case: the pipe ends
    /// as the process does), else this reader back, to [`finish`](Self::finish).
    pub fn finished(mut self) -> Result<Vec<String>, TailReader> {
        match self.done.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => Err(self),
            _ => Ok(self.lines()),
        }
    }

    fn lines(&self) -> Vec<String> {
        let Ok(kept) = self.kept.lock() else {
            return Vec::new();
        };
        let lines: Vec<LogLine> = kept.chunks.iter().flat_map(LogLine::all_of).collect();
        stderr_tail(lines.iter().map(LogLine::bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::super::hub::{AppLabel, Hub, LogFilter, NewLines};
    use super::*;
    use kelpie_proto::LogStream;
    use std::time::Duration;

    fn chunk(hub: &mut Hub, lines: &[&str]) -> Arc<LogChunk> {
        let app = Arc::new(AppLabel {
            name: "api".into(),
            namespace: "default".into(),
        });
        let from = NewLines {
            pm_id: 0,
            app: &app,
            stream: LogStream::Err,
            at_ms: 0,
            prefix: None,
        };
        let raw: Vec<u8> = lines.iter().flat_map(|l| l.bytes()).collect();
        let ends: Vec<u32> = lines
            .iter()
            .scan(0u32, |end, l| {
                *end += l.len() as u32;
                Some(*end)
            })
            .collect();
        hub.publish(&from, &raw, &ends).expect("a chunk")
    }

    #[tokio::test]
    async fn the_last_lines_are_kept_and_given_once_the_reader_is_done() {
        let mut hub = Hub::default();
        let (writer, reader) = exit_tail();
        let many: Vec<String> = (0..30).map(|i| format!("e{i}")).collect();
        for pair in many.chunks(2) {
            let refs: Vec<&str> = pair.iter().map(String::as_str).collect();
            writer.push(chunk(&mut hub, &refs));
        }
        let kept = writer.kept.lock().expect("lock").chunks.len();
        assert!(kept <= STDERR_TAIL_LINES / 2 + 1, "{kept}");
        drop(writer);
        let started = std::time::Instant::now();
        let tail = reader.finish(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1), "done at once");
        assert_eq!(tail.len(), STDERR_TAIL_LINES);
        assert_eq!(tail.first().map(String::as_str), Some("e10"));
        assert_eq!(tail.last().map(String::as_str), Some("e29"));
        let _ = LogFilter::default();
    }

    #[tokio::test]
    async fn a_reader_still_going_gives_what_it_has_after_the_limit() {
        let mut hub = Hub::default();
        let (writer, reader) = exit_tail();
        writer.push(chunk(&mut hub, &["boom"]));
        let tail = reader.finish(Duration::from_millis(50)).await;
        assert_eq!(tail, ["boom"]);
        drop(writer);
    }

    #[test]
    fn the_lines_are_there_at_once_only_once_the_reader_is_done() {
        let mut hub = Hub::default();
        let (writer, reader) = exit_tail();
        writer.push(chunk(&mut hub, &["boom"]));
        let Err(reader) = reader.finished() else {
            panic!("the reader still goes: not finished");
        };
        writer.push(chunk(&mut hub, &["bang"]));
        drop(writer);
        let Ok(tail) = reader.finished() else {
            panic!("the reader is done: finished");
        };
        assert_eq!(tail, ["boom", "bang"]);
    }
}
