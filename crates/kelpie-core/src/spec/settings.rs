//! Small settings of an app: how its instances run ([`ExecMode`]), how its log lines are
//! written ([`LogType`]), how its log files rotate ([`LogRotation`]).

use serde::{Deserialize, Serialize};

/// How instances of an app are run. Both run one process per instance; in cluster mode the
/// instances share one Kelpie-owned listening socket when the app has a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// One process per instance, started directly (PM2's `fork_mode`).
    #[default]
    Fork,
    /// Instances sharing one port (PM2's `cluster_mode`).
    Cluster,
}

impl ExecMode {
    /// The name PM2 uses in `jlist` (`fork_mode` / `cluster_mode`).
    pub fn pm2_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork_mode",
            ExecMode::Cluster => "cluster_mode",
        }
    }

    /// The short name shown by `list` (`fork` / `cluster`).
    pub fn short_name(self) -> &'static str {
        match self {
            ExecMode::Fork => "fork",
            ExecMode::Cluster => "cluster",
        }
    }
}

/// How each line is written to an app's log files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogType {
    /// The app's bytes as they are (with a date prefix when `log_date_format` is set).
    #[default]
    Raw,
    /// One JSON object per line: `message`, `timestamp`, `type`, `process_id`, `app_name`.
    Json,
}

/// Log rotation settings of one app; each `None` falls back to the daemon's setting
/// (`<home>/kelpie.toml`, then the built-in default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LogRotation {
    /// Rotate a file once it reaches this many bytes (0 = never by size).
    pub max_size: Option<u64>,
    /// Rotated files kept per log file.
    pub retain: Option<u32>,
    /// Gzip rotated files.
    pub compress: Option<bool>,
    /// Rotate at each boundary of this period in local time (86 400 000 = at midnight; 0 = never
    /// by time).
    pub interval_ms: Option<u64>,
}
