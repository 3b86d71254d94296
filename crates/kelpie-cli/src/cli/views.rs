//! The arguments of the commands that show apps: `list`, `events`, `logs`, `monit` and `profile`.

use clap::{Args, Subcommand};
use std::time::Duration;

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Redraw the table in place every --interval until q or Ctrl-C
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// How often --watch refreshes (2s, 500ms; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Order the rows by name, namespace, id, pid, cpu, memory, uptime (start time, as PM2),
    /// status or restarts, `:asc` (the default) or `:desc`; without it, by id
    #[arg(long, value_name = "FIELD[:asc|desc]")]
    pub sort: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Name, id, namespace or `all` (default: every app)
    pub target: Option<String>,
    /// Print JSON (one array, oldest first, each with its last lines of stderr)
    #[arg(long)]
    pub json: bool,
    /// How many exits to show (the newest)
    #[arg(long, default_value_t = 20)]
    pub lines: usize,
    /// Also print the last lines each process wrote to stderr
    #[arg(long)]
    pub stderr: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Name, id, namespace, `all`, or a regular expression on names between slashes (`/^api/`)
    pub target: Option<String>,
    /// Lines of each stream to show first
    #[arg(long, default_value_t = 15)]
    pub lines: u32,
    /// Only stderr
    #[arg(long)]
    pub err: bool,
    /// Only stdout
    #[arg(long)]
    pub out: bool,
    /// The lines alone: no prefix, no colour, stderr lines on stderr
    #[arg(long)]
    pub raw: bool,
    /// One JSON object per line (PM2's keys: message, timestamp, type, process_id, app_name)
    #[arg(long)]
    pub json: bool,
    /// Prefix each line with the time it was read, in this format
    #[arg(long, num_args = 0..=1, default_missing_value = "YYYY-MM-DD-HH:mm:ss", value_name = "FORMAT")]
    pub timestamp: Option<String>,
    /// Print the last lines and exit instead of following
    #[arg(long)]
    pub nostream: bool,
}

#[derive(Debug, Args)]
pub(crate) struct MonitArgs {
    /// How often the list is refreshed (2s, 500ms; a bare number is seconds)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

/// Why a refresh interval is refused (clap shows it after the option's name).
#[derive(Debug, thiserror::Error)]
enum IntervalError {
    /// Not a duration at all (the config's reading of durations says why).
    #[error(transparent)]
    Duration(#[from] kelpie_config::AmountError),
    /// Shorter than 100 ms: the list would be asked for faster than it changes.
    #[error("`{0}` is too short: at least 100ms")]
    TooShort(String),
}

/// A refresh interval: `2s`, `500ms`, or a bare number of seconds (like `watch -n`); at least
/// 100 ms.
fn parse_interval(text: &str) -> Result<Duration, IntervalError> {
    let interval = parse_duration(text)?;
    if interval < Duration::from_millis(100) {
        return Err(IntervalError::TooShort(text.to_string()));
    }
    Ok(interval)
}

/// A duration typed on the command line: `2s`, `500ms`, `10m`, or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, kelpie_config::AmountError> {
    let ms = match text.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => (seconds * 1000.0) as u64,
        _ => kelpie_config::parse_duration_ms(text)?,
    };
    Ok(Duration::from_millis(ms))
}

/// What `kelpie profile` makes.
#[derive(Debug, Subcommand)]
pub(crate) enum ProfileKind {
    /// A CPU profile (`.cpuprofile`: Chrome DevTools, speedscope)
    Cpu {
        /// An id, or an app (its lowest id)
        target: String,
        /// How long it samples (10s, 500ms, 2m; a bare number is seconds)
        #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Microseconds between two samples
        #[arg(long, default_value_t = 1000)]
        interval: u32,
        /// Where to write it (`-`: stdout; by default `<app>-<id>-<date>.cpuprofile` here)
        #[arg(long, short = 'o')]
        output: Option<std::path::PathBuf>,
    },
    /// A heap snapshot (`.heapsnapshot`: Chrome DevTools' Memory tab)
    Heap {
        /// An id, or an app (its lowest id)
        target: String,
        /// Where to write it (`-`: stdout; by default `<app>-<id>-<date>.heapsnapshot` here)
        #[arg(long, short = 'o')]
        output: Option<std::path::PathBuf>,
    },
}
