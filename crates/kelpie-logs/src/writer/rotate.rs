//! Rotating a file: when its period ended, or when it reached its size limit; renamed aside for
//! the archiver to compress and prune, and a new file opened in its place.

use super::super::rotation::{period_of, rotated_path, ArchiveJob, RotationPolicy};
use super::super::sink::{FileSlot, Sink};
use super::{now_ms, Writer};

impl Writer {
    pub(super) fn rotate_if_period_ended(
        &self,
        sink: &Sink,
        slot: &mut FileSlot,
        policy: &RotationPolicy,
    ) {
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
    pub(super) fn rotate(&self, sink: &Sink, slot: &mut FileSlot, policy: &RotationPolicy) {
        let live = sink.path().to_path_buf();
        let rotated = rotated_path(&live, now_ms(), self.offset);
        slot.file = None;
        match rename_beside(&live, &rotated) {
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
        // A new file has no cut line to end.
        slot.cut_line = false;
        slot.mid_line = false;
        slot.period = period_of(policy, now_ms(), self.offset);
    }
}

/// Rename `from` to `to` (in the same directory) through the directory reached by a guarded
/// walk: the app's user cannot turn the rename into one of another file.
fn rename_beside(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    let (dir, from_name) = kelpie_sys::guarded_parent(from, None)?;
    let to_name = to.file_name().unwrap_or_default();
    dir.rename(&from_name, to_name)
}

/// Only regular files rotate (not `/dev/stdout`, a FIFO, `/dev/full`...).
pub(super) fn slot_is_regular(slot: &FileSlot) -> bool {
    slot.file.is_some() && slot.regular
}
