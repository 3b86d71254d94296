//! The writer thread: the only code that touches log files. It drains each file's pending
//! buffer in one write, rotates files by size (at a line boundary) and by time, truncates them
//! for `flush`, reopens them for `reloadLogs`, and survives a full disk or an unwritable path
//! (the lines are dropped and counted, the error is shown, writing resumes by itself).
//!
//! It runs on its own thread so a slow disk only ever delays the writer: readers keep draining
//! the apps' pipes into bounded buffers meanwhile.

use super::rotation::{period_of, rotated_path, ArchiveJob, RotationPolicy};
use super::sink::{lock, FileSlot, Sink};
use super::Registry;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often the writer checks time-based rotation and retries files it could not open.
const TICK: Duration = Duration::from_secs(1);
/// Wait between attempts to open a file that could not be opened.
const RETRY_OPEN: Duration = Duration::from_secs(1);

/// A request to the writer thread.
pub enum WriterMsg {
    /// This file has pending bytes (or must be created).
    Write(Arc<Sink>),
    /// Empty these files (`flush`).
    Truncate(Vec<Arc<Sink>>, oneshot::Sender<()>),
    /// Close and reopen every file (`reloadLogs`, SIGUSR2); answers how many.
    Reopen(oneshot::Sender<usize>),
    /// Answer once every earlier message is handled (everything queued is on disk).
    Barrier(oneshot::Sender<()>),
    /// Like `Barrier`, answering the size of each of these files as written so far.
    Sizes(Vec<Arc<Sink>>, oneshot::Sender<Vec<u64>>),
    /// The daemon-wide defaults changed: recompute every file's policy.
    Defaults(RotationPolicy),
    /// Some file's rotation settings changed (an app registered it again with others).
    PolicyChanged,
    /// The daemon's own log is this file (its stderr): rotate it like the apps' logs.
    DaemonLog(PathBuf),
}

/// Start the writer thread.
pub fn start(
    registry: Registry,
    archiver: mpsc::Sender<ArchiveJob>,
    defaults: RotationPolicy,
) -> std::io::Result<mpsc::Sender<WriterMsg>> {
    let (tx, rx) = mpsc::channel();
    let mut writer = Writer {
        registry,
        archiver,
        offset: local_offset(),
        dir_stamps: Vec::new(),
        ticks: 0,
        next_period_end_ms: i64::MAX,
        retrying: false,
        rescan: false,
        defaults,
        daemon_log: None,
    };
    std::thread::Builder::new()
        .name("kelpie-log-writer".into())
        .spawn(move || writer.run(&rx))?;
    Ok(tx)
}

struct Writer {
    registry: Registry,
    archiver: mpsc::Sender<ArchiveJob>,
    /// The local UTC offset, refreshed every tick.
    offset: i32,
    /// Each log directory's identity and modification time at the last tick: a file removed
    /// (or renamed) there changes it, so the files of an unchanged directory need no check.
    dir_stamps: Vec<(PathBuf, Option<DirStamp>)>,
    ticks: u64,
    /// The earliest end of an open file's rotation period (local midnight by default):
    /// before it, no file can be due to rotate by time.
    next_period_end_ms: i64,
    /// Some file could not be opened and waits for another attempt.
    retrying: bool,
    /// Some file's rotation settings changed: look at every file at the next tick.
    rescan: bool,
    /// The daemon-wide rotation settings (the daemon's own log rotates under them).
    defaults: RotationPolicy,
    /// The daemon's own log, once the daemon says its stderr is that file.
    daemon_log: Option<DaemonLog>,
}

/// The daemon's own log (`<home>/kelpie.log`, its stderr).
struct DaemonLog {
    path: PathBuf,
    /// Rotation period its content belongs to.
    period: i64,
}

/// A directory's inode and modification time (seconds, nanoseconds).
type DirStamp = (u64, i64, i64);

/// Every this many ticks, every open file is checked for removal even if its directory looks
/// unchanged (two changes within one tick of the file system's clock look like one).
const CHECK_ALL_EVERY: u64 = 10;

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<WriterMsg>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(msg) => self.handle(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if Instant::now() >= next_tick {
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
    }

    fn handle(&mut self, msg: WriterMsg) {
        match msg {
            WriterMsg::Write(sink) => self.drain(&sink),
            WriterMsg::Truncate(sinks, done) => {
                for sink in sinks {
                    truncate(&sink);
                }
                let _ = done.send(());
            }
            WriterMsg::Reopen(done) => {
                let sinks = self.live_sinks();
                for sink in &sinks {
                    let mut slot = lock(&sink.slot);
                    slot.file = None;
                    slot.retry_open_at = None;
                    self.ensure_open(sink, &mut slot);
                    let policy = *lock(&sink.policy);
                    self.note(sink, &slot, &policy);
                }
                let _ = done.send(sinks.len());
            }
            WriterMsg::Barrier(done) => {
                let _ = done.send(());
            }
            WriterMsg::Sizes(sinks, done) => {
                let sizes = sinks.iter().map(|sink| lock(&sink.slot).size).collect();
                let _ = done.send(sizes);
            }
            WriterMsg::Defaults(defaults) => {
                for sink in self.live_sinks() {
                    let overrides = *lock(&sink.overrides);
                    *lock(&sink.policy) = defaults.for_app(&overrides);
                }
                self.defaults = defaults;
                self.rescan = true;
            }
            WriterMsg::PolicyChanged => self.rescan = true,
            WriterMsg::DaemonLog(path) => {
                let period = period_of(&self.defaults, now_ms(), self.offset);
                self.daemon_log = Some(DaemonLog { path, period });
            }
        }
    }

    fn live_sinks(&self) -> Vec<Arc<Sink>> {
        lock(&self.registry)
            .values()
            .filter_map(std::sync::Weak::upgrade)
            .collect()
    }

    /// Every second: rotate files whose period ended, retry files that could not be opened,
    /// and make again the files removed under us. When none of that can be due (no directory
    /// changed, no period ended, nothing to retry) it costs one `stat` per log directory and
    /// does not touch the files at all, so hundreds of idle apps cost the daemon nothing here.
    fn tick(&mut self) {
        self.ticks += 1;
        let offset = local_offset();
        let check_all = self.ticks.is_multiple_of(CHECK_ALL_EVERY);
        let changed = self.changed_dirs(check_all);
        let due = check_all
            || !changed.is_empty()
            || offset != self.offset
            || self.retrying
            || self.rescan
            || now_ms() >= self.next_period_end_ms;
        self.offset = offset;
        if due {
            self.visit_every_file(&changed);
        }
        self.rotate_daemon_log_if_due();
    }

    /// Rotate the daemon's own log when it reached the size limit or its period ended, as an
    /// app's log (same settings): renamed aside, compressed and pruned by the archiver, and a
    /// new file put in place of the daemon's stdout and stderr. Two `stat`s a second.
    fn rotate_daemon_log_if_due(&mut self) {
        let Some(log) = self.daemon_log.as_mut() else {
            return;
        };
        use std::os::unix::fs::MetadataExt;
        // Only while stderr is still that file (not after the home was removed, say).
        let (Ok(current), Ok(at_path)) = (
            std::fs::metadata("/proc/self/fd/2"),
            std::fs::metadata(&log.path),
        ) else {
            return;
        };
        if (current.dev(), current.ino()) != (at_path.dev(), at_path.ino()) || !current.is_file() {
            return;
        }
        let policy = self.defaults;
        let period = period_of(&policy, now_ms(), self.offset);
        let by_size = policy.max_size > 0 && current.len() >= policy.max_size;
        let by_time = period != log.period && current.len() > 0;
        log.period = period;
        if !(by_size || by_time) {
            return;
        }
        let rotated = rotated_path(&log.path, now_ms(), self.offset);
        if std::fs::rename(&log.path, &rotated).is_err() {
            return;
        }
        let reopened = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.path)
            .and_then(|file| {
                use std::os::fd::AsFd;
                kelpie_sys::redirect_output(file.as_fd())
            });
        match reopened {
            Ok(()) => {
                crate::daemon_log!(
                    "rotated this log; the previous part is {}",
                    rotated.display()
                );
                let _ = self.archiver.send(ArchiveJob {
                    live: log.path.clone(),
                    rotated,
                    policy,
                });
            }
            // Put it back rather than lose where the daemon writes.
            Err(e) => {
                let _ = std::fs::rename(&rotated, &log.path);
                crate::daemon_log!("cannot rotate {}: {e}", log.path.display());
            }
        }
    }

    /// The work of [`tick`](Self::tick) on every file, which also relearns the directories, the
    /// next period end and whether some file waits to be opened.
    fn visit_every_file(&mut self, changed: &[PathBuf]) {
        let sinks = self.live_sinks();
        self.next_period_end_ms = i64::MAX;
        self.retrying = false;
        self.rescan = false;
        self.forget_unused_dirs(&sinks);
        for sink in sinks {
            let mut slot = lock(&sink.slot);
            if slot.file.is_none() {
                if slot.retry_open_at.is_some() {
                    self.ensure_open(&sink, &mut slot);
                }
            } else if sink
                .path()
                .parent()
                .is_none_or(|dir| changed.iter().any(|c| same(c, dir)))
                && slot_is_regular(&slot)
                && unlinked(&slot)
            {
                // Removed under us (with the home?): lines written there would be lost, so a
                // new file is made at the path.
                crate::daemon_log!(
                    "{} was removed; writing to a new file there",
                    sink.path().display()
                );
                slot.file = None;
                slot.retry_open_at = None;
                self.ensure_open(&sink, &mut slot);
            }
            let policy = *lock(&sink.policy);
            self.rotate_if_period_ended(&sink, &mut slot, &policy);
            self.note(&sink, &slot, &policy);
        }
    }

    /// Remember what the ticks must watch for one file: its directory, the end of its
    /// rotation period, whether it waits to be opened again.
    fn note(&mut self, sink: &Sink, slot: &FileSlot, policy: &RotationPolicy) {
        if let Some(dir) = sink.path().parent() {
            if !self.dir_stamps.iter().any(|(known, _)| same(known, dir)) {
                // Unknown stamp: the next tick sees the directory as changed.
                self.dir_stamps.push((dir.to_path_buf(), None));
            }
        }
        if slot.retry_open_at.is_some() {
            self.retrying = true;
        }
        if slot.file.is_some() && slot.regular && policy.interval_ms > 0 {
            let end = (slot.period + 1)
                .saturating_mul(policy.interval_ms as i64)
                .saturating_sub(i64::from(self.offset) * 1000);
            self.next_period_end_ms = self.next_period_end_ms.min(end);
        }
    }

    /// Stop watching directories no file is in any more.
    fn forget_unused_dirs(&mut self, sinks: &[Arc<Sink>]) {
        self.dir_stamps.retain(|(known, _)| {
            sinks
                .iter()
                .any(|s| s.path().parent().is_some_and(|dir| same(known, dir)))
        });
    }

    /// The known log directories that changed since the last tick (all of them every
    /// [`CHECK_ALL_EVERY`] ticks): one `stat` per directory instead of one per file. Apps
    /// usually share one or two log directories, so a short list beats a hash set here.
    fn changed_dirs(&mut self, check_all: bool) -> Vec<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let mut changed = Vec::new();
        for (dir, before) in &mut self.dir_stamps {
            let stamp = std::fs::metadata(&*dir)
                .ok()
                .map(|m| (m.ino(), m.mtime(), m.mtime_nsec()));
            if check_all || *before != stamp || stamp.is_none() {
                changed.push(dir.clone());
            }
            *before = stamp;
        }
        changed
    }

    /// Write everything pending for `sink`.
    fn drain(&mut self, sink: &Sink) {
        let batch = sink.take_pending();
        let mut slot = lock(&sink.slot);
        let policy = *lock(&sink.policy);
        if self.ensure_open(sink, &mut slot) {
            self.rotate_if_period_ended(sink, &mut slot, &policy);
            self.write_batch(sink, &mut slot, &policy, &batch);
        } else {
            slot.dropped_while_failing += sink.count_dropped(&batch);
        }
        self.note(sink, &slot, &policy);
    }

    /// Write `batch`, rotating whenever the next line would take the file past its size limit.
    fn write_batch(&self, sink: &Sink, slot: &mut FileSlot, policy: &RotationPolicy, batch: &[u8]) {
        let mut rest = batch;
        while !rest.is_empty() {
            let take = match size_room(slot, policy) {
                Some(room) if rest.len() > room => match memchr::memrchr(b'\n', &rest[..room]) {
                    Some(newline) => newline + 1,
                    // Not one whole line fits: into a new file. In an empty file, write the
                    // whole (long) line anyway, or it would never be written.
                    None if slot.size > 0 => {
                        self.rotate(sink, slot, policy);
                        continue;
                    }
                    None => {
                        memchr::memchr(b'\n', &rest[room..]).map_or(rest.len(), |nl| room + nl + 1)
                    }
                },
                _ => rest.len(),
            };
            let written = write_some(sink, slot, &rest[..take]);
            slot.size += written as u64;
            if written < take {
                slot.dropped_while_failing += sink.count_dropped(&rest[written..]);
                return;
            }
            rest = &rest[take..];
            if policy.max_size > 0 && slot.size >= policy.max_size && slot_is_regular(slot) {
                self.rotate(sink, slot, policy);
            }
        }
    }

    /// Open the file if it is not open (and a retry is due). True when it is open.
    fn ensure_open(&self, sink: &Sink, slot: &mut FileSlot) -> bool {
        if slot.file.is_some() {
            return true;
        }
        if slot.retry_open_at.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match open_append(sink) {
            Ok(file) => {
                let meta = file.metadata().ok();
                slot.size = meta.as_ref().map_or(0, |m| m.len());
                slot.regular = meta.as_ref().is_some_and(|m| m.is_file());
                let policy = *lock(&sink.policy);
                // A file left by an earlier run belongs to the period it was last written in,
                // so yesterday's lines rotate out at the first check of today.
                let written_at = meta
                    .and_then(|m| m.modified().ok())
                    .filter(|_| slot.size > 0)
                    .map_or_else(now_ms, system_time_ms);
                slot.period = period_of(&policy, written_at, self.offset);
                slot.file = Some(file);
                slot.retry_open_at = None;
                resumed(sink, slot);
                true
            }
            Err(e) => {
                failed(sink, format!("cannot open {}: {e}", sink.path().display()));
                slot.retry_open_at = Some(Instant::now() + RETRY_OPEN);
                false
            }
        }
    }

    fn rotate_if_period_ended(&self, sink: &Sink, slot: &mut FileSlot, policy: &RotationPolicy) {
        if slot.file.is_none() || policy.interval_ms == 0 || !slot_is_regular(slot) {
            return;
        }
        let period = period_of(policy, now_ms(), self.offset);
        if period != slot.period {
            if slot.size > 0 {
                self.rotate(sink, slot, policy);
            }
            slot.period = period;
        }
    }

    /// Rename the file aside and start a new one; the archiver compresses and prunes.
    fn rotate(&self, sink: &Sink, slot: &mut FileSlot, policy: &RotationPolicy) {
        let live = sink.path().to_path_buf();
        let rotated = rotated_path(&live, now_ms(), self.offset);
        slot.file = None;
        match std::fs::rename(&live, &rotated) {
            Ok(()) => {
                let _ = self.archiver.send(ArchiveJob {
                    live,
                    rotated,
                    policy: *policy,
                });
            }
            Err(e) => crate::daemon_log!(
                "cannot rotate {} to {}: {e}; it keeps growing until the next attempt",
                live.display(),
                rotated.display()
            ),
        }
        slot.retry_open_at = None;
        self.ensure_open(sink, slot);
        // If the rename failed, start counting again rather than retrying on every line.
        slot.size = 0;
        slot.period = period_of(policy, now_ms(), self.offset);
    }
}

/// Bytes that still fit under the size limit (`None`: no limit applies).
fn size_room(slot: &FileSlot, policy: &RotationPolicy) -> Option<usize> {
    if policy.max_size == 0 || !slot_is_regular(slot) {
        return None;
    }
    Some(policy.max_size.saturating_sub(slot.size) as usize)
}

/// Whether the open file has no name left (removed since it was opened).
fn unlinked(slot: &FileSlot) -> bool {
    use std::os::unix::fs::MetadataExt;
    slot.file
        .as_ref()
        .and_then(|file| file.metadata().ok())
        .is_some_and(|meta| meta.nlink() == 0)
}

/// The same path, compared as bytes (`Path`'s `==` walks components, slower in a loop over
/// every file).
fn same(a: &Path, b: &Path) -> bool {
    a.as_os_str() == b.as_os_str()
}

/// Only regular files rotate (not `/dev/stdout`, a FIFO, `/dev/full`...).
fn slot_is_regular(slot: &FileSlot) -> bool {
    slot.file.is_some() && slot.regular
}

/// Open for appending, creating the file and its directory. Non-blocking, so a FIFO nobody
/// reads cannot hang the writer.
fn open_append(sink: &Sink) -> std::io::Result<File> {
    if let Some(dir) = sink.path().parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(kelpie_sys::O_NONBLOCK)
        .open(sink.path())
}

/// Write as much of `bytes` as the file takes; returns how much was written. A failure marks
/// the sink as failing (once) until a later write succeeds.
fn write_some(sink: &Sink, slot: &mut FileSlot, bytes: &[u8]) -> usize {
    let Some(file) = slot.file.as_mut() else {
        return 0;
    };
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => {
                failed(
                    sink,
                    format!("cannot write {}: no space written", sink.path().display()),
                );
                return written;
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                failed(sink, format!("cannot write {}: {e}", sink.path().display()));
                return written;
            }
        }
    }
    resumed(sink, slot);
    written
}

/// Record a failure; said in the daemon log only when it starts or changes.
fn failed(sink: &Sink, message: String) {
    if sink.status().error.as_deref() != Some(message.as_str()) {
        crate::daemon_log!("{message}; its lines are dropped until it works again");
        sink.set_error(Some(message));
    }
}

/// Clear a failure once writing works again.
fn resumed(sink: &Sink, slot: &mut FileSlot) {
    if sink.status().error.is_some() {
        crate::daemon_log!(
            "writing {} again ({} lines were dropped meanwhile)",
            sink.path().display(),
            slot.dropped_while_failing
        );
        sink.set_error(None);
        slot.dropped_while_failing = 0;
    }
}

/// Empty a file and what is waiting for it. Only regular files: a FIFO or a device has nothing
/// to empty (and opening one must not block).
fn truncate(sink: &Sink) {
    sink.discard_pending();
    let mut slot = lock(&sink.slot);
    let result = match &slot.file {
        Some(file) if slot.regular => file.set_len(0),
        Some(_) => Ok(()),
        None => match OpenOptions::new()
            .write(true)
            .custom_flags(kelpie_sys::O_NONBLOCK)
            .open(sink.path())
        {
            Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => file.set_len(0),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => slot.size = 0,
        Err(e) => crate::daemon_log!("cannot flush {}: {e}", sink.path().display()),
    }
}

fn local_offset() -> i32 {
    kelpie_sys::utc_offset_secs(now_ms() / 1000)
}

fn now_ms() -> i64 {
    crate::clock::wall_ms() as i64
}

fn system_time_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A writer over one sink in `dir`, rotating every `interval_ms`, not by size.
    fn writer_with_sink(
        dir: &Path,
        interval_ms: u64,
    ) -> (Writer, Arc<Sink>, mpsc::Receiver<ArchiveJob>) {
        let policy = RotationPolicy {
            max_size: 0,
            retain: 10,
            compress: false,
            interval_ms,
        };
        let sink = Arc::new(Sink::new(dir.join("app-out.log"), policy));
        let registry: Registry = Arc::new(Mutex::new(HashMap::from([(
            sink.path().to_path_buf(),
            Arc::downgrade(&sink),
        )])));
        let (archiver, archived) = mpsc::channel();
        let writer = Writer {
            registry,
            archiver,
            offset: 0,
            dir_stamps: Vec::new(),
            ticks: 0,
            next_period_end_ms: i64::MAX,
            retrying: false,
            rescan: false,
            defaults: policy,
            daemon_log: None,
        };
        (writer, sink, archived)
    }

    #[test]
    fn a_file_rotates_at_the_first_tick_after_its_period_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, archived) = writer_with_sink(dir.path(), 1_000);
        sink.append(b"first period\n");
        writer.drain(&sink);
        let end = writer.next_period_end_ms;
        assert!(
            end > now_ms() && end <= now_ms() + 1_000,
            "the period's end is known: {end}"
        );

        writer.tick();
        assert!(
            archived.try_recv().is_err(),
            "nothing is due before the period ends"
        );
        std::thread::sleep(Duration::from_millis((end - now_ms()).max(0) as u64 + 20));
        writer.tick();
        let job = archived
            .try_recv()
            .expect("rotated at the first tick after the period");
        assert_eq!(
            std::fs::read(&job.rotated).expect("rotated file"),
            b"first period\n"
        );
        assert!(
            writer.next_period_end_ms > end,
            "the next period's end is watched"
        );
    }

    #[test]
    fn a_removed_file_is_made_again_at_the_next_tick() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, _archived) = writer_with_sink(dir.path(), 0);
        sink.append(b"before\n");
        writer.drain(&sink);
        writer.tick(); // learns the directory's stamp
        std::fs::remove_file(sink.path()).expect("remove the log file");
        writer.tick();
        assert!(
            sink.path().exists(),
            "made again after the directory changed"
        );
        sink.append(b"after\n");
        writer.drain(&sink);
        assert_eq!(std::fs::read(sink.path()).expect("log file"), b"after\n");
    }
}
