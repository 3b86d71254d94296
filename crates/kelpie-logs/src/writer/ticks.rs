//! The writer's tick, every second: rotate the files whose period ended, retry the files that
//! could not be opened, make again the files removed under it. What each tick must watch is
//! kept so that an idle tick costs one `stat` per log directory.

use super::super::rotation::RotationPolicy;
use super::super::sink::{lock, FileSlot, Sink};
use super::rotate::slot_is_regular;
use super::{local_offset, now_ms, Writer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory's inode and modification time (seconds, nanoseconds).
pub(super) type DirStamp = (u64, i64, i64);

/// Every this many ticks, every open file is checked for removal even if its directory looks
/// unchanged (two changes within one tick of the file system's clock look like one).
const CHECK_ALL_EVERY: u64 = 10;

impl Writer {
    /// Every second: rotate files whose period ended, retry files that could not be opened,
    /// and make again the files removed under us. When none of that can be due (no directory
    /// changed, no period ended, nothing to retry) it costs one `stat` per log directory and
    /// does not touch the files at all, so hundreds of idle apps cost the daemon nothing here.
    pub(super) fn tick(&mut self) {
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
    pub(super) fn note(&mut self, sink: &Sink, slot: &FileSlot, policy: &RotationPolicy) {
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
