//! The daemon's own log (`<home>/kelpie.log`, its stderr), rotated like an app's log.

use super::super::rotation::{period_of, rotated_path, ArchiveJob};
use super::{now_ms, Writer};
use std::fs::OpenOptions;

impl Writer {
    /// Rotate the daemon's own log when it reached the size limit or its period ended, as an
    /// app's log (same settings): renamed aside, compressed and pruned by the archiver, and a
    /// new file put in place of the daemon's stdout and stderr. Two `stat`s a second.
    pub(super) fn rotate_daemon_log_if_due(&mut self) {
        let Some(log) = self.daemon_log.as_mut() else {
            return;
        };
        use std::os::unix::fs::MetadataExt;
        // Only while stderr is still that file (not after the home was removed, say).
        let (Ok(current), Ok(at_path)) =
            (kelpie_sys::stderr_metadata(), std::fs::metadata(&log.path))
        else {
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
}
