//! PM2's `pid_file`: each instance's pid written to a file while it runs, for the monitoring
//! tools and scripts that read them. The writes and removals are file system calls, so they
//! run on a thread of their own, in the order the instances asked (a removal never overtakes
//! the write it undoes); a removal only takes a file that still holds the pid it was written
//! with, so a next process's file is never removed by the last one's exit.

use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, OnceLock};

enum Op {
    Write(PathBuf, u32),
    Remove(PathBuf, u32),
}

/// The writer thread's mailbox, started at the first use.
fn writer() -> Option<Sender<Op>> {
    static WRITER: OnceLock<Mutex<Option<Sender<Op>>>> = OnceLock::new();
    let slot = WRITER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Op>();
        let started = std::thread::Builder::new()
            .name("kelpie-pid-files".into())
            .spawn(move || {
                for op in rx {
                    match op {
                        Op::Write(path, pid) => write(&path, pid),
                        Op::Remove(path, pid) => remove(&path, pid),
                    }
                }
            });
        Mutex::new(started.ok().map(|_| tx))
    });
    slot.lock().ok()?.clone()
}

/// Process `pid` runs: its pid goes to `path`.
pub(crate) fn running(path: PathBuf, pid: u32) {
    if let Some(tx) = writer() {
        let _ = tx.send(Op::Write(path, pid));
    }
}

/// Process `pid` ended: `path` goes, if it still names it.
pub(crate) fn ended(path: PathBuf, pid: u32) {
    if let Some(tx) = writer() {
        let _ = tx.send(Op::Remove(path, pid));
    }
}

fn write(path: &std::path::Path, pid: u32) {
    // A directory (`pid_file: "./data/logs/"`): PM2's write fails (EISDIR) and the app runs on
    // without a pid file; so here, without even a temporary file beside it.
    if path.is_dir() {
        crate::daemon_log!(
            "cannot write the pid file {}: it is a directory (pid_file names a file)",
            path.display()
        );
        return;
    }
    // Its directory is made by a guarded walk (no link another user placed is followed), and
    // the file written there (an unpredictable temporary name, made exclusively, renamed).
    // As PM2 writes it: the number alone, readable by the tools that read it; never half
    // written, not synced (it means nothing after a crash of the machine).
    let pid = pid.to_string();
    if let Err(e) = crate::atomic::replace_unsynced(path, pid.as_bytes(), 0o644) {
        crate::daemon_log!("cannot write the pid file {}: {e}", path.display());
    }
}

fn remove(path: &std::path::Path, pid: u32) {
    let Ok((dir, name)) = kelpie_sys::guarded_parent(path, None) else {
        return;
    };
    let holds = dir
        .open_file(&name, kelpie_sys::FileOpen::READ)
        .and_then(|opened| std::io::read_to_string(opened.file))
        .is_ok_and(|text| text.trim() == pid.to_string());
    if holds {
        let _ = dir.remove_file(&name);
    }
}
