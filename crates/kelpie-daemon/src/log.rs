//! The daemon's own log lines (stderr, which the CLI points at `<home>/kelpie.log`).

/// Write one timestamped line to the daemon log.
#[macro_export]
macro_rules! daemon_log {
    ($($arg:tt)*) => {
        eprintln!("{} kelpie: {}", $crate::log::timestamp(), format_args!($($arg)*))
    };
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn timestamp() -> String {
    kelpie_core::format_utc(crate::clock::wall_ms(), true)
}
