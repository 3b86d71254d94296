//! The daemon's own lines in `kelpie logs` without a name, as PM2 shows its `pm2.log` there:
//! which app exited and how, daemon starts, updates, problems. Read from the daemon log file by
//! the CLI itself (the same user's home): its last lines first, then, when following, what is
//! added to it (a file the daemon rotated or emptied is read again from its start).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How they are marked, in PM2's place of its `PM2 |`.
const PREFIX: &str = "kelpie | ";

/// How often a follower looks for new lines.
const POLL: Duration = Duration::from_millis(250);

/// Print the last `lines` lines of the daemon log (read as the daemon reads the apps' files
/// back) under PM2's header for a file (`<path> last 15 lines:`), and a blank line after them
/// (nothing for none); where they ended (the file's identity and size), for [`follow`].
pub(super) fn print_tail(path: &Path, lines: usize, color: bool) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    if lines == 0 {
        return Some((meta.ino(), meta.len()));
    }
    let mut out = std::io::stdout().lock();
    let header = format!("{} last {lines} lines:", path.display());
    match color {
        true => writeln!(out, "\x1b[90m{header}\x1b[39m").ok()?,
        false => writeln!(out, "{header}").ok()?,
    }
    for line in kelpie_view::tail::last_lines(path, lines, Some(meta.len())) {
        write_line(&mut out, &String::from_utf8_lossy(&line), color).ok()?;
    }
    writeln!(out).ok()?;
    Some((meta.ino(), meta.len()))
}

/// Print the lines added to the daemon log from `from` (identity, size) on, every [`POLL`], on
/// a thread of its own, until the process ends.
pub(super) fn follow(path: PathBuf, from: Option<(u64, u64)>, color: bool) {
    std::thread::spawn(move || {
        let (mut inode, mut offset) = from.unwrap_or((0, 0));
        let mut partial = Vec::new();
        loop {
            std::thread::sleep(POLL);
            let Ok(mut file) = std::fs::File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else { continue };
            if meta.ino() != inode || meta.len() < offset {
                // Rotated or emptied: the new file from its start.
                (inode, offset) = (meta.ino(), 0);
                partial.clear();
            }
            if meta.len() == offset || file.seek(SeekFrom::Start(offset)).is_err() {
                continue;
            }
            let mut bytes = Vec::new();
            if file
                .take(meta.len() - offset)
                .read_to_end(&mut bytes)
                .is_err()
            {
                continue;
            }
            offset += bytes.len() as u64;
            partial.extend_from_slice(&bytes);
            let Some(end) = partial.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let complete: Vec<u8> = partial.drain(..=end).collect();
            let mut out = std::io::stdout().lock();
            for line in String::from_utf8_lossy(&complete).lines() {
                if write_line(&mut out, line, color).is_err() {
                    return;
                }
            }
            if out.flush().is_err() {
                return;
            }
        }
    });
}

fn write_line(out: &mut impl Write, line: &str, color: bool) -> std::io::Result<()> {
    if color {
        writeln!(out, "\x1b[34m{PREFIX}\x1b[39m{line}")
    } else {
        writeln!(out, "{PREFIX}{line}")
    }
}
