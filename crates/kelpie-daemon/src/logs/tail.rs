//! The last lines of a log file, for `logs` when memory does not hold enough (after a daemon
//! restart, or `--lines` above what is kept). Reads backwards from the end, never the whole file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Block read backwards at a time.
const BLOCK: u64 = 64 * 1024;
/// Never read more than this from the end of a file for a tail.
const MAX_TAIL_BYTES: u64 = 16 * 1024 * 1024;

/// The last `n` lines of `path` (without newlines); empty when it cannot be read.
pub fn last_lines(path: &Path, n: usize) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let Ok(len) = file.seek(SeekFrom::End(0)) else {
        return Vec::new();
    };
    let floor = len.saturating_sub(MAX_TAIL_BYTES);
    let mut start = len;
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0;
    // Enough newlines for n lines (plus the one ending the last line)?
    while newlines <= n && start > floor {
        let from = start.saturating_sub(BLOCK).max(floor);
        let mut block = vec![0; (start - from) as usize];
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_exact(&mut block).is_err() {
            break;
        }
        newlines += memchr::memchr_iter(b'\n', &block).count();
        blocks.push(block);
        start = from;
    }
    let buf: Vec<u8> = blocks.into_iter().rev().flatten().collect();
    if buf.is_empty() {
        return Vec::new();
    }
    let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // Reading started mid-file: the first piece is the end of a line cut short.
    if start > 0 {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    lines[skip..].iter().map(|line| line.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_lines_across_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let text: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).expect("write");
        let lines = last_lines(&path, 3);
        assert_eq!(
            lines,
            [
                b"line 49997".to_vec(),
                b"line 49998".to_vec(),
                b"line 49999".to_vec()
            ]
        );
        let many = last_lines(&path, 20_000);
        assert_eq!(many.len(), 20_000);
        assert_eq!(many[0], b"line 30000");
    }

    #[test]
    fn short_files_and_unfinished_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.log");
        std::fs::write(&path, "one\ntwo").expect("write");
        assert_eq!(last_lines(&path, 15), [b"one".to_vec(), b"two".to_vec()]);
        std::fs::write(&path, "").expect("write");
        assert!(last_lines(&path, 15).is_empty());
        assert!(last_lines(&dir.path().join("missing.log"), 15).is_empty());
    }
}
