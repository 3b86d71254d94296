//! The last lines of a log file, for `logs` when memory does not hold enough (after a daemon
//! restart, or `--lines` above what is kept). Reads backwards from the end, never the whole file.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Block read backwards at a time.
const BLOCK: u64 = 64 * 1024;
/// Never read more than this from the end of a file for a tail.
const MAX_TAIL_BYTES: u64 = 16 * 1024 * 1024;

/// The last `n` lines of `path` (without newlines) among its first `limit` bytes (all of it
/// when `None`); empty when it cannot be read or is not a regular file (a FIFO is never opened
/// in a way that could block).
pub fn last_lines(path: &Path, n: usize, limit: Option<u64>) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags(kelpie_sys::O_NONBLOCK)
        .open(path)
    else {
        return Vec::new();
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Vec::new();
    }
    let Ok(end) = file.seek(SeekFrom::End(0)) else {
        return Vec::new();
    };
    let len = limit.map_or(end, |limit| limit.min(end));
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
        let lines = last_lines(&path, 3, None);
        assert_eq!(
            lines,
            [
                b"line 49997".to_vec(),
                b"line 49998".to_vec(),
                b"line 49999".to_vec()
            ]
        );
        let many = last_lines(&path, 20_000, None);
        assert_eq!(many.len(), 20_000);
        assert_eq!(many[0], b"line 30000");
    }

    #[test]
    fn short_files_and_unfinished_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.log");
        std::fs::write(&path, "one\ntwo").expect("write");
        assert_eq!(
            last_lines(&path, 15, None),
            [b"one".to_vec(), b"two".to_vec()]
        );
        assert_eq!(
            last_lines(&path, 15, Some(4)),
            [b"one".to_vec()],
            "only what was written then"
        );
        std::fs::write(&path, "").expect("write");
        assert!(last_lines(&path, 15, None).is_empty());
        assert!(last_lines(&dir.path().join("missing.log"), 15, None).is_empty());
        let fifo = dir.path().join("f.fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success());
        assert!(
            last_lines(&fifo, 15, None).is_empty(),
            "a FIFO is not read (nor waited on)"
        );
    }
}
