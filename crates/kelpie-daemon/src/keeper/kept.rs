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
        if file.seek(SeekFrom::End(0)).is_err() {
            return false;
        }
        match kelpie_sys::splice(pipe.as_fd(), file.as_fd(), SPLICE_STEP) {
            Ok(0) => self.ended = true,
            Ok(n) => *written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                if let Holding::Pipe {
                    pm_id,
                    stream,
                    file: Some(path),
                } = &self.holding
                {
                    crate::daemon_log!(
                        "keeper: cannot write the {} of id {pm_id} to {}: {e}; keeping it in a spool file instead",
                        stream.pm2_name(),
                        path.display()
                    );
                }
                return false;
            }
        }
        true
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
        if matches!(self.out, Out::None) {
            self.out = open_spool(spool_dir, id).map_or(Out::None, Out::Spool);
        }
        match &mut self.out {
            Out::Spool(spool) if spool.written + n as u64 <= SPOOL_LIMIT => {
                if spool.file.write_all(&buf[..n]).is_ok() {
                    spool.written += n as u64;
                } else {
                    self.dropped += n as u64;
                }
            }
            _ => self.dropped += n as u64,
        }
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
            crate::daemon_log!(
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
