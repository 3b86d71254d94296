//! What waits for a log file: its formatted bytes, and for the runs of them that came from a
//! pipe still holding them (see `cursor`), which pipe to consume once they are written and how
//! many of its bytes.

use super::cursor::PipeCursor;
use std::ops::Range;
use std::sync::Arc;

/// Bytes waiting for the writer, with the pipes they are still in.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The bytes, whole lines except for an unfinished raw record.
    pub bytes: Vec<u8>,
    /// The runs of `bytes` still in a pipe, in order, not overlapping. Bytes outside every run
    /// are in memory only (a second file's copy, what a keeper kept while no daemon ran).
    pub marks: Vec<Mark>,
}

/// A run of a batch's bytes whose source is still in a pipe.
#[derive(Debug)]
pub(super) struct Mark {
    /// Where the run is in the batch.
    pub run: Range<usize>,
    /// The pipe.
    pub cursor: Arc<PipeCursor>,
    /// Bytes to take out of the pipe once the run is written (or dropped).
    pub pipe_bytes: u64,
    /// The run is the pipe's bytes themselves (raw lines): the writer can splice them out of
    /// the pipe into the file instead of writing its copy.
    pub exact: bool,
}

/// One run of a batch: in memory only, or still in a pipe (its mark).
pub(super) struct Segment<'a> {
    pub bytes: &'a [u8],
    pub mark: Option<&'a Mark>,
    /// Where it is in the batch.
    pub run: Range<usize>,
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Add bytes that are in memory only.
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Add bytes read from `cursor`'s pipe, which still holds `pipe_bytes` of theirs. Joins
    /// the last run when it is of the same pipe and ends where these begin.
    pub(super) fn push_from(
        &mut self,
        bytes: &[u8],
        cursor: &Arc<PipeCursor>,
        pipe_bytes: u64,
        exact: bool,
    ) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        let end = self.bytes.len();
        if let Some(last) = self.marks.last_mut() {
            if last.run.end == start && last.exact == exact && Arc::ptr_eq(&last.cursor, cursor) {
                last.run.end = end;
                last.pipe_bytes += pipe_bytes;
                return;
            }
        }
        self.marks.push(Mark {
            run: start..end,
            cursor: cursor.clone(),
            pipe_bytes,
            exact,
        });
    }

    /// Its runs, in order.
    pub(super) fn segments<'a>(&'a self) -> Vec<Segment<'a>> {
        let mut segments = Vec::with_capacity(self.marks.len() * 2 + 1);
        let mut at = 0;
        let plain = |segments: &mut Vec<Segment<'a>>, run: Range<usize>| {
            if !run.is_empty() {
                segments.push(Segment {
                    bytes: &self.bytes[run.clone()],
                    mark: None,
                    run,
                });
            }
        };
        for mark in &self.marks {
            plain(&mut segments, at..mark.run.start);
            segments.push(Segment {
                bytes: &self.bytes[mark.run.clone()],
                mark: Some(mark),
                run: mark.run.clone(),
            });
            at = mark.run.end;
        }
        plain(&mut segments, at..self.bytes.len());
        segments
    }

    /// What is left from byte `at` on, once everything before it is done with. A raw run cut
    /// at `at` keeps in its pipe only the bytes not spliced yet; a formatted run keeps all of
    /// its pipe's bytes (they are consumed once the whole run is written).
    pub(super) fn rest_from(mut self, at: usize) -> Batch {
        let bytes = self.bytes.split_off(at.min(self.bytes.len()));
        let marks = self
            .marks
            .into_iter()
            .filter(|mark| mark.run.end > at)
            .map(|mut mark| {
                if mark.run.start < at && mark.exact {
                    mark.pipe_bytes -= (at - mark.run.start) as u64;
                }
                mark.run = mark.run.start.saturating_sub(at)..mark.run.end - at;
                mark
            })
            .collect();
        Batch { bytes, marks }
    }

    /// Put `head` before this batch's bytes (what a full file did not take, written first).
    pub(super) fn prepend(&mut self, mut head: Batch) {
        let shift = head.bytes.len();
        for mark in &mut self.marks {
            mark.run = mark.run.start + shift..mark.run.end + shift;
        }
        head.bytes.append(&mut self.bytes);
        head.marks.append(&mut self.marks);
        *self = head;
    }

    /// Drop it: its pipes' bytes are taken out of them (nothing is left to write them).
    pub(super) fn consume_pipes(&self) {
        for mark in &self.marks {
            mark.cursor.consume(mark.pipe_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cursor() -> (Arc<PipeCursor>, std::io::PipeWriter) {
        let (reader, writer) = std::io::pipe().expect("pipe");
        (
            Arc::new(PipeCursor::new(std::os::fd::OwnedFd::from(reader))),
            writer,
        )
    }

    #[test]
    fn runs_of_one_pipe_join_and_the_rest_keeps_what_is_still_in_the_pipes() {
        let (a, mut app) = cursor();
        app.write_all(b"x").expect("write");
        let (b, _) = cursor();
        let mut batch = Batch::default();
        batch.push_from(b"one\n", &a, 4, true);
        batch.push_from(b"two\n", &a, 4, true);
        batch.push(b"copy\n");
        batch.push_from(b"{\"m\":\"3\"}\n", &b, 2, false);
        assert_eq!(batch.marks.len(), 2, "a's two runs are one");
        let kinds: Vec<(&[u8], bool)> = batch
            .segments()
            .iter()
            .map(|s| (s.bytes, s.mark.is_some()))
            .collect();
        assert_eq!(
            kinds,
            [
                (&b"one\ntwo\n"[..], true),
                (&b"copy\n"[..], false),
                (&b"{\"m\":\"3\"}\n"[..], true)
            ]
        );
        // Cut inside a's run (6 bytes spliced), and inside b's formatted one.
        let rest = batch.rest_from(6);
        assert_eq!(rest.bytes, b"o\ncopy\n{\"m\":\"3\"}\n");
        assert_eq!(rest.marks[0].run, 0..2);
        assert_eq!(rest.marks[0].pipe_bytes, 2);
        assert_eq!(rest.marks[1].run, 7..17);
        let rest = rest.rest_from(9);
        assert_eq!(rest.marks[0].run, 0..8);
        assert_eq!(
            rest.marks[0].pipe_bytes, 2,
            "formatted: all its pipe bytes wait"
        );

        let mut later = Batch::default();
        later.push_from(b"three\n", &a, 6, true);
        later.prepend(rest);
        assert_eq!(later.bytes, b"m\":\"3\"}\nthree\n");
        assert_eq!(later.marks[1].run, 8..14);
    }
}
