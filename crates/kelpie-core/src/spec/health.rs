//! An app's health check: what is probed ([`HealthProbe`]), how often, and how many failures
//! in a row restart it ([`HealthCheck`]).

use serde::{Deserialize, Serialize};

/// What a health check probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthProbe {
    /// `GET url` (plain `http://`); healthy when the status is `status`, or any 2xx/3xx without
    /// one.
    Http {
        /// Full URL, `http://127.0.0.1:3000/health` (a path alone was resolved against the app's
        /// port by kelpie-config).
        url: String,
        /// Expected status code.
        status: Option<u16>,
    },
    /// A TCP connection to `host:port` succeeds.
    Tcp {
        /// Host to connect to (`127.0.0.1` when the user gave only a port).
        host: String,
        /// Port.
        port: u16,
    },
    /// `sh -c command` in the app's cwd and environment exits with 0.
    Exec {
        /// The command line.
        command: String,
    },
}

/// A health check of each instance: probed every `interval_ms`; after `failures` failed probes
/// in a row (none counted during `start_period_ms` after the process started) the instance is
/// restarted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// What is probed.
    pub probe: HealthProbe,
    /// Time between probes (ms).
    pub interval_ms: u64,
    /// A probe taking longer fails (ms).
    pub timeout_ms: u64,
    /// Failed probes in a row before the instance is restarted.
    pub failures: u32,
    /// Grace after the process starts during which failures are not counted (ms).
    pub start_period_ms: u64,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            probe: HealthProbe::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            interval_ms: 5_000,
            timeout_ms: 2_000,
            failures: 3,
            start_period_ms: 0,
        }
    }
}
