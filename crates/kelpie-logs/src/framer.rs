//! Cutting a byte stream into records (lines), with a cap on the length of one record.
//!
//! Output is kept as bytes: nothing is decoded, so non-UTF-8, NUL, `\r` and escape sequences
//! pass through untouched. A record is a line without its `\n`. A line longer than
//! [`MAX_RECORD`] is cut into pieces of that size, so a 1 MB line without a newline never needs
//! more than [`MAX_RECORD`] bytes of memory. Written back to back (each complete record followed
//! by `\n`), the records reproduce the input exactly.

/// Longest record. Longer lines are cut into pieces of this many bytes.
pub(super) const MAX_RECORD: usize = 64 * 1024;

/// Records still waiting for their end: the start of a line whose `\n` has not arrived yet.
#[derive(Debug, Default)]
pub(super) struct Framer {
    partial: Vec<u8>,
}

impl Framer {
    /// Frame `chunk`, calling `emit(record, complete)` for each record it finishes, in order.
    /// `complete` is true when the record ended with a newline (which is not included).
    pub(super) fn push(&mut self, chunk: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(end) => {
                    let line = &rest[..end];
                    rest = &rest[end + 1..];
                    if self.partial.is_empty() {
                        emit_capped(line, emit);
                    } else {
                        let line = self.fill_partial(line, emit);
                        self.partial.extend_from_slice(line);
                        emit(&self.partial, true);
                        self.clear_partial();
                    }
                }
                None => {
                    let tail = self.fill_partial(rest, emit);
                    self.partial.extend_from_slice(tail);
                    rest = &[];
                }
            }
        }
    }

    /// Whether part of a line is waiting for its end.
    pub(super) fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Bytes of the line waiting for its end.
    pub(super) fn partial_len(&self) -> usize {
        self.partial.len()
    }

    /// Emit the waiting part of a line as an incomplete record (the pipe closed, or the app has
    /// been quiet for a while after printing a prompt).
    pub(super) fn flush(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.partial.is_empty() {
            emit(&self.partial, false);
            self.clear_partial();
        }
    }

    /// Append `bytes` to the partial line while it is shorter than the cap, emitting a full
    /// piece each time it reaches the cap; returns what is left (shorter than the room left).
    fn fill_partial<'a>(
        &mut self,
        mut bytes: &'a [u8],
        emit: &mut impl FnMut(&[u8], bool),
    ) -> &'a [u8] {
        loop {
            let room = MAX_RECORD - self.partial.len();
            if bytes.len() < room {
                return bytes;
            }
            if self.partial.is_empty() {
                emit(&bytes[..MAX_RECORD], false);
            } else {
                self.partial.extend_from_slice(&bytes[..room]);
                emit(&self.partial, false);
                self.partial.clear();
            }
            bytes = &bytes[room..];
        }
    }

    /// Forget the partial line, giving back memory a very long one used.
    fn clear_partial(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > 4096 {
            self.partial = Vec::new();
        }
    }
}

/// Emit a whole line, cut into pieces of at most [`MAX_RECORD`] bytes.
fn emit_capped(mut line: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
    while line.len() > MAX_RECORD {
        emit(&line[..MAX_RECORD], false);
        line = &line[MAX_RECORD..];
    }
    emit(line, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame `chunks` and return the records, then the bytes they reproduce.
    fn frame(chunks: &[&[u8]]) -> (Vec<(Vec<u8>, bool)>, Vec<u8>) {
        let mut framer = Framer::default();
        let mut records = Vec::new();
        let mut emit = |r: &[u8], complete: bool| records.push((r.to_vec(), complete));
        for chunk in chunks {
            framer.push(chunk, &mut emit);
        }
        framer.flush(&mut emit);
        let mut bytes = Vec::new();
        for (r, complete) in &records {
            bytes.extend_from_slice(r);
            if *complete {
                bytes.push(b'\n');
            }
        }
        (records, bytes)
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let (records, _) = frame(&[b"hel", b"lo\nwor", b"ld\n"]);
        assert_eq!(
            records,
            vec![(b"hello".to_vec(), true), (b"world".to_vec(), true)]
        );
    }

    #[test]
    fn bytes_are_kept_exactly() {
        let input: &[u8] = b"\xff\xfe bad utf8\n\0nul\r\n\x1b[31mred\x1b[0m\nno newline";
        let (records, bytes) = frame(&[input]);
        assert_eq!(bytes, input);
        assert_eq!(records.last(), Some(&(b"no newline".to_vec(), false)));
    }

    #[test]
    fn empty_lines_are_records() {
        let (records, _) = frame(&[b"\n\na\n"]);
        assert_eq!(records.len(), 3);
        assert!(records[0].0.is_empty() && records[0].1);
    }

    #[test]
    fn a_megabyte_line_is_cut_into_capped_pieces_and_reproduced() {
        let line = vec![b'x'; 1024 * 1024 + 7];
        let mut input = line.clone();
        input.push(b'\n');
        input.extend_from_slice(b"next\n");
        // Fed in odd-sized chunks, as a pipe would deliver it.
        let chunks: Vec<&[u8]> = input.chunks(10_007).collect();
        let (records, bytes) = frame(&chunks);
        assert_eq!(bytes, input);
        assert!(records.iter().all(|(r, _)| r.len() <= MAX_RECORD));
        let pieces = records.len() - 1;
        assert_eq!(pieces, line.len().div_ceil(MAX_RECORD));
        assert!(records[pieces - 1].1, "last piece ends the line");
        assert!(records[..pieces - 1].iter().all(|(_, complete)| !complete));
    }

    #[test]
    fn the_partial_line_never_grows_past_the_cap() {
        let mut framer = Framer::default();
        let mut count = 0;
        let mut emit = |r: &[u8], _| {
            assert!(r.len() <= MAX_RECORD);
            count += 1;
        };
        for _ in 0..100 {
            framer.push(&[b'y'; 50_000], &mut emit);
            assert!(framer.partial.len() < MAX_RECORD);
        }
        assert_eq!(count, 100 * 50_000 / MAX_RECORD);
    }
}
