//! Who wrote a line read back from a log file, and when. A file several instances share
//! (`merge_logs`: a cluster's instances write one file) does not say which instance wrote a
//! line, and a file without `log_date_format` holds no time; memory knows both for the lines it
//! still holds, so those lines are found in the file's tail and labelled from memory. Older
//! lines keep the file's first instance and the date their text starts with, if any. (The same
//! goes for a file both streams share, `-o x -e x`.)

/// A line memory holds: who wrote it (on which stream), when it arrived, and its text as
/// written to its file.
pub(super) struct Remembered {
    pub pm_id: u32,
    pub stream: kelpie_proto::LogStream,
    pub at_ms: i64,
    pub written: Vec<u8>,
}

/// How far before the memory line expected next a match is looked for: a line that is in
/// memory but not yet in the file (or the reverse: a write refused) does not cost the others
/// their match.
const WINDOW: usize = 16;

/// For each of `file_lines` (in file order), the memory line it is, if it is one. Both are in
/// the order the lines were written, so they are matched from the end, each memory line to one
/// file line at most, and a match is looked for only just before the previous one (linear,
/// and lines printed alike by two instances keep their order).
pub(super) fn match_lines<'a>(
    file_lines: &[Vec<u8>],
    memory: &'a [Remembered],
) -> Vec<Option<&'a Remembered>> {
    let mut found = vec![None; file_lines.len()];
    // memory[..next] are not matched yet.
    let mut next = memory.len();
    for (i, line) in file_lines.iter().enumerate().rev() {
        if next == 0 {
            break;
        }
        let lowest = next.saturating_sub(WINDOW);
        if let Some(k) = (lowest..next).rev().find(|&k| memory[k].written == *line) {
            found[i] = Some(&memory[k]);
            next = k;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remembered(pm_id: u32, at_ms: i64, text: &str) -> Remembered {
        Remembered {
            pm_id,
            stream: kelpie_proto::LogStream::Out,
            at_ms,
            written: text.as_bytes().to_vec(),
        }
    }

    fn lines(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|t| t.as_bytes().to_vec()).collect()
    }

    fn writers(file: &[&str], memory: &[Remembered]) -> Vec<Option<(u32, i64)>> {
        match_lines(&lines(file), memory)
            .into_iter()
            .map(|m| m.map(|r| (r.pm_id, r.at_ms)))
            .collect()
    }

    #[test]
    fn each_instance_s_lines_of_a_shared_file_are_its_own() {
        let memory = [
            remembered(1, 10, "hello"),
            remembered(0, 11, "hello"),
            remembered(1, 12, "bye"),
        ];
        // The first line is older than memory: nobody knows.
        let found = writers(&["before", "hello", "hello", "bye"], &memory);
        assert_eq!(found, [None, Some((1, 10)), Some((0, 11)), Some((1, 12))]);
    }

    #[test]
    fn a_line_memory_has_and_the_file_not_yet_does_not_stop_the_match() {
        let memory = [
            remembered(0, 10, "a"),
            remembered(1, 11, "b"),
            remembered(0, 12, "not written yet"),
        ];
        assert_eq!(
            writers(&["a", "b"], &memory),
            [Some((0, 10)), Some((1, 11))]
        );
        // A line the file has and memory not (dropped from memory) is nobody's.
        assert_eq!(
            writers(&["a", "x", "b"], &memory),
            [Some((0, 10)), None, Some((1, 11))]
        );
    }
}
