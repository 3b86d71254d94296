//! The daemon's own log lines (stderr, which the CLI points at `<home>/kelpie.log`).
//!
//! Writing them never fails the daemon: the log is usually on the same filesystem as the app
//! logs, so a full disk that the daemon is busy reporting would otherwise end it (`eprintln!`
//! panics when the write fails, and a release build aborts on panic). Lines that cannot be
//! written are counted, and the count is the first line written once space returns.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Write one timestamped line to the daemon log.
#[macro_export]
macro_rules! daemon_log {
    ($($arg:tt)*) => {
        $crate::daemon_log::write_line(format_args!($($arg)*))
    };
}

/// Lines of the daemon log not written since the last one that was.
static UNWRITTEN: AtomicU64 = AtomicU64::new(0);

/// Write `message` as one timestamped line of the daemon log, to stderr; never panics.
pub fn write_line(message: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    write_line_to(&mut stderr, &UNWRITTEN, &timestamp(), message);
}

/// [`write_line`] into `out`, with the time stamp `at`, counting in `unwritten`.
fn write_line_to(
    out: &mut impl Write,
    unwritten: &AtomicU64,
    at: &str,
    message: std::fmt::Arguments<'_>,
) {
    let missed = unwritten.load(Ordering::Relaxed);
    if missed > 0 {
        let said = writeln!(
            out,
            "{at} kelpie: {missed} line(s) of this log could not be written (disk full?)"
        );
        if said.is_err() {
            unwritten.fetch_add(1, Ordering::Relaxed);
            return;
        }
        unwritten.fetch_sub(missed, Ordering::Relaxed);
    }
    // Formatted first and written at once: stderr is unbuffered, and formatting straight into
    // it made one write(2) per piece of the line (a dozen for a process's exit, the daemon's
    // most frequent line, written at every restart of a crash loop).
    let mut line = Vec::with_capacity(128);
    let formatted = writeln!(line, "{at} kelpie: {message}");
    if formatted.is_err() || out.write_all(&line).is_err() {
        unwritten.fetch_add(1, Ordering::Relaxed);
    }
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn timestamp() -> String {
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    kelpie_core::format_utc(wall_ms, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log file that refuses writes while `full`.
    struct Disk {
        full: bool,
        text: Vec<u8>,
    }

    impl Write for Disk {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.full {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            self.text.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_a_full_disk_refused_are_counted_and_reported_once_it_has_room() {
        let mut disk = Disk {
            full: true,
            text: Vec::new(),
        };
        let unwritten = AtomicU64::new(0);
        write_line_to(&mut disk, &unwritten, "T1", format_args!("lost {}", 1));
        write_line_to(&mut disk, &unwritten, "T2", format_args!("lost {}", 2));
        assert!(disk.text.is_empty());
        disk.full = false;
        write_line_to(&mut disk, &unwritten, "T3", format_args!("back"));
        write_line_to(&mut disk, &unwritten, "T4", format_args!("again"));
        assert_eq!(
            String::from_utf8_lossy(&disk.text),
            "T3 kelpie: 2 line(s) of this log could not be written (disk full?)\n\
             T3 kelpie: back\nT4 kelpie: again\n"
        );
    }
}
