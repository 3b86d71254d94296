//! Kelpie's domain model, free of I/O: what an app is ([`AppSpec`]), what state one of its
//! instances is in ([`InstanceState`], [`Status`]), and how it reacts to what happens to it
//! ([`InstanceState::handle`] returns the [`Effect`]s the daemon must carry out).
//!
//! Nothing here touches the clock, processes or files: time is passed in as [`Now`], so every
//! rule (PM2's unstable-restart accounting, exponential backoff, the stop sequence) is tested
//! with plain tables of inputs.
#![warn(missing_docs)]

pub mod cron;
mod datefmt;
pub mod files;
pub mod forensics;
mod instance;
pub mod limits;
mod policy;
pub mod reload;
pub mod sdk;
mod spec;
mod time;

pub use datefmt::DateFormat;
pub use forensics::{OomKill, Published};
pub use instance::{
    Cause, Effect, ExitRecord, Health, Input, InstanceState, Lifecycle, Now, Status, Why,
    EXIT_HISTORY,
};
pub use policy::{next_backoff_delay, BACKOFF_CAP_MS, BACKOFF_GROWTH, BACKOFF_RESET_AFTER_MS};
pub use sdk::{AppException, SdkMessage, SdkState};
pub use spec::shared_env;
pub use spec::{
    check_app_name, check_instances, check_namespace, is_bidi_control, log_name, sanitize_log_name,
    AppNameError, AppSpec, BadListenAddress, EnvFilter, ExecMode, HealthCheck, HealthProbe,
    JsRuntime, ListenAddress, LogRotation, LogType, TooManyInstances, DEFAULT_INSTANCE_VAR,
    DEFAULT_LISTEN_TIMEOUT_MS, DEFAULT_MAX_CPU_WINDOW_MS, DEFAULT_NAMESPACE,
    DEFAULT_WATCH_DELAY_MS, MAX_INSTANCES,
};
pub use time::format_utc;
