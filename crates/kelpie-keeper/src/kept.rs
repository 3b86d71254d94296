//! What the keeper holds of each entry, and where a pipe's output goes while no daemon runs:
//! into the app's log file, moved by `splice` (raw lines: the bytes as they are), else into a
//! spool file the next daemon writes.

use super::wire::Holding;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

/// Most bytes kept per pipe while no daemon runs; beyond that they are counted and dropped.
pub(super) const SPOOL_LIMIT: u64 = 64 * 1024 * 1024;
/// Most bytes moved from a pipe into its log file at once.
const SPLICE_STEP: usize = 1024 * 1024;
/// One held entry.
pub(super) struct Kept {
    pub(super) holding: Holding,
    /// Its descriptors; a pipe's is in `pipe` instead.
    pub(super) fds: Vec<OwnedFd>,
    pub(super) pipe: Option<std::fs::File>,
    /// A pipe that reached its end (every writer closed it), or a process that exited.
    pub(super) ended: bool,
    /// Where a pipe's bytes go while no daemon runs: its log file (raw lines), else a spool.
    pub(super) out: Out,
    pub(super) dropped: u64,
    /// The last byte put out (into the file or the spool) ended no line: a drop must take the
    /// line's start back first.
    pub(super) mid_line: bool,
    /// The start of the line the pipe's head continues was dropped: its rest is dropped too.
    pub(super) skip_line: bool,
}

/// Where the keeper puts what a pipe holds while no daemon runs.
pub(super) enum Out {
    /// Nothing yet.
    None,
    /// The app's own log file, the bytes moved there by `splice` (never in our memory), and
    /// how many so far.
    File(std::fs::File, u64),
    /// A spool file, for the next daemon to write (dated or JSON lines, several files, or a
    /// log file that could not be written).
    Spool(Spool),
}

pub(super) struct Spool {
    pub(super) path: PathBuf,
    pub(super) file: std::fs::File,
    pub(super) written: u64,
}

impl Kept {
    /// Move what the pipe holds into the app's log file, at its end. False when the file
    /// cannot be written (a full disk, say): the caller spools instead.
    pub(super) fn splice_to_file(&mut self) -> bool {
        let (Some(pipe), Out::File(file, written)) = (&self.pipe, &mut self.out) else {
            return false;
        };
        if *written >= SPOOL_LIMIT {
            // Without a daemon nothing rotates it: beyond the bound, counted and dropped.
            self.dropped += discard_some(pipe);
            return true;
        }
        // The daemon writes without appending too (a splice refuses that): its end, then.
        let Ok(end) = file.seek(SeekFrom::End(0)) else {
            return false;
        };
        // Room for what the pipe holds first: on a full disk nothing moves (rather than part of
        // a line), and it goes to the spool, or is dropped whole lines at a time.
        let holds = (kelpie_sys::pipe_bytes(pipe.as_fd()) as usize).min(SPLICE_STEP);
        if let Err(e) = kelpie_sys::reserve_space(file.as_fd(), end, holds as u64) {
            self.cannot_write(&e);
            return false;
        }
        let step = if holds > 0 { holds } else { SPLICE_STEP };
        match kelpie_sys::move_from_pipe(pipe.as_fd(), file.as_fd(), step) {
            Ok(0) => self.ended = true,
            Ok(n) => {
                *written += n as u64;
                self.mid_line = ends_mid_line(file, end + n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.cannot_write(&e);
                return false;
            }
        }
        true
    }

    /// Say (in the daemon's log) that the pipe's log file cannot be written.
    fn cannot_write(&self, e: &std::io::Error) {
        if let Holding::Pipe {
            pm_id,
            stream,
            file: Some(path),
        } = &self.holding
        {
            kelpie_base::daemon_log!(
                "keeper: cannot write the {} of id {pm_id} to {}: {e}; keeping it in a spool file instead",
                stream.pm2_name(),
                path.display()
            );
        }
    }

    /// The log file can no longer be written: the start of a line it holds without its end is
    /// taken back (its rest is dropped as it comes), so the file ends on a line boundary.
    pub(super) fn leave_file(&mut self) {
        if let Out::File(file, _) = &self.out {
            if self.mid_line {
                self.dropped += take_back_line(file);
                self.mid_line = false;
                self.skip_line = true;
            }
        }
        self.out = Out::None;
    }

    /// Read what the pipe holds into its spool file.
    pub(super) fn spool_some(&mut self, spool_dir: &std::path::Path, id: u64) {
        let Some(mut pipe) = self.pipe.as_ref() else {
            return;
        };
        let mut buf = [0u8; 64 * 1024];
        let n = match pipe.read(&mut buf) {
            Ok(0) => {
                self.ended = true;
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return,
            Err(_) => {
                self.ended = true;
                return;
            }
        };
        let mut bytes = &buf[..n];
        if self.skip_line {
            // The rest of a line whose start was dropped: dropped too, to its end.
            match memchr::memchr(b'\n', bytes) {
                Some(end) => {
                    self.dropped += (end + 1) as u64;
                    self.skip_line = false;
                    bytes = &bytes[end + 1..];
                }
                None => {
                    self.dropped += bytes.len() as u64;
                    return;
                }
            }
        }
        if bytes.is_empty() {
            return;
        }
        if matches!(self.out, Out::None) {
            self.out = open_spool(spool_dir, id).map_or(Out::None, Out::Spool);
        }
        let kept = match &mut self.out {
            Out::Spool(spool) if spool.written + bytes.len() as u64 <= SPOOL_LIMIT => {
                // Room first (a full disk takes nothing), then the bytes.
                let room = kelpie_sys::reserve_space(
                    spool.file.as_fd(),
                    spool.written,
                    bytes.len() as u64,
                );
                if room.is_ok() && spool.file.write_all(bytes).is_ok() {
                    spool.written += bytes.len() as u64;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if kept {
            self.mid_line = bytes.last() != Some(&b'\n');
            return;
        }
        // Dropped whole lines at a time: the start of a line the spool holds is taken back,
        // and the rest of one these bytes start goes with them.
        if self.mid_line {
            if let Out::Spool(spool) = &mut self.out {
                let taken = take_back_line(&spool.file);
                spool.written = spool.written.saturating_sub(taken);
                self.dropped += taken;
            }
            self.mid_line = false;
        }
        self.dropped += bytes.len() as u64;
        self.skip_line = bytes.last() != Some(&b'\n');
    }
}

/// Whether the file, `len` bytes long, ends in the middle of a line (its last byte is no
/// newline).
fn ends_mid_line(file: &std::fs::File, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    len > 0 && file.read_at(&mut last, len - 1).is_ok_and(|n| n == 1) && last[0] != b'\n'
}

/// Take back the last line of `file` that has no end (truncate it to after its last newline,
/// looked for in its last 1 MiB; truncating needs no room on a full disk): how many bytes went.
fn take_back_line(file: &std::fs::File) -> u64 {
    use std::os::unix::fs::FileExt;
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return 0;
    };
    let from = len.saturating_sub(1 << 20);
    let mut tail = vec![0u8; (len - from) as usize];
    if file.read_exact_at(&mut tail, from).is_err() {
        return 0;
    }
    let keep = memchr::memrchr(b'\n', &tail).map_or(from, |nl| from + nl as u64 + 1);
    match file.set_len(keep) {
        Ok(()) => len - keep,
        Err(_) => 0,
    }
}

/// Read and drop what a pipe holds now: how many bytes.
fn discard_some(mut pipe: &std::fs::File) -> u64 {
    let mut buf = [0u8; 64 * 1024];
    pipe.read(&mut buf).map_or(0, |n| n as u64)
}

/// Open an app's log file to write at its end (created if missing, 0640, as the daemon makes
/// it); only a regular file (a FIFO nobody reads, or a device, is left to the spool). Walked as
/// the daemon walks it (`kelpie_sys::GuardedDir`): the keeper runs with the daemon's rights,
/// and the app's user may control the directory.
pub(super) fn open_log_file(path: &std::path::Path) -> Option<std::fs::File> {
    let how = kelpie_sys::FileOpen {
        read: false,
        write: true,
        create: Some(0o640),
        nonblock: true,
    };
    let file = kelpie_sys::open_guarded(path, how, Some(0o755)).ok()?.file;
    file.metadata().is_ok_and(|m| m.is_file()).then_some(file)
}

fn open_spool(dir: &std::path::Path, id: u64) -> Option<Spool> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("{}-{id}.spool", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .inspect_err(|e| {
            kelpie_base::daemon_log!(
                "keeper: cannot keep output in {} ({e}); it is dropped until a daemon returns",
                path.display()
            )
        })
        .ok()?;
    Some(Spool {
        path,
        file,
        written: 0,
    })
}
