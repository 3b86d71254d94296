//! The Kelpie daemon.
//!
//! # Theory of operation
//!
//! One **supervisor actor** ([`supervisor`]) owns the table of apps. The IPC server turns each
//! request into a message to it; nothing else touches the table, so there is no lock to hold.
//! Each instance (one `pm_id`) has its own **instance task** ([`instance`]) that owns the child
//! process, waits on it, signals it and arms its timers. The task feeds what happens into the
//! pure state machine of `kelpie-core` and carries out the effects it returns, then reports the
//! new state to the supervisor. A crash is therefore seen when the child exits (no polling) and
//! acted on at once.
//!
//! State is written by a **persister thread** ([`persist`]): atomically (temp file, fsync,
//! rename, fsync of the directory), after every command before its reply, and shortly after
//! every state change otherwise. A daemon killed with `kill -9` loses no configuration.
//!
//! An app's stdout and stderr are pipes read by the **log pipeline** ([`logs`]): its own
//! threads read, frame, format and write them, rotate the files, and keep recent lines for
//! `kelpie logs` ([`follow`]). The supervisor is never in the output path.

// The crates below, by the names the modules have always used (`crate::supervisor`,
// `crate::tasks`, `crate::logs`).
use kelpie_base::daemon_log;
use kelpie_base::{clock, descriptors, tasks};
use kelpie_keeper as keeper;
use kelpie_link::{self as link, profile_parts};
use kelpie_logs as logs;
use kelpie_supervisor::{
    alerts, bus, cgroups, config_load, health, hello, home_setup, host, instance, monitor, persist,
    reclaim, supervisor, supervisor_channel, update,
};

mod follow;
mod gate;
mod inspection;
mod server;
mod startup;
mod trigger;
mod web;

use kelpie_proto::Home;
pub use kelpie_supervisor::{
    handoff_format, handoff_formats, DaemonError, ForegroundOptions, OutputBatch, OUTPUT_QUEUE,
};

/// How a daemon starts, beyond its home.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonOptions {
    /// When no app is left from the last daemon (`state.json` empty or missing), bring back
    /// the saved list (`dump.json`), as `kelpie resurrect` would: what a boot service wants.
    pub resurrect_if_empty: bool,
    /// This program replaces a daemon in place (`kelpie update`): go on with what it handed
    /// over in this file (its descriptors, by number) instead of starting afresh.
    pub handoff: Option<std::path::PathBuf>,
}

/// Run the daemon for `home` until it is told to exit. Blocks the calling thread.
pub fn run(home: Home) -> Result<(), DaemonError> {
    run_with(home, DaemonOptions::default())
}

/// [`run`], with options.
pub fn run_with(home: Home, options: DaemonOptions) -> Result<(), DaemonError> {
    run_supervisor(home, options, None).map(|_| ())
}

/// `kelpie daemon --keeper`: the process that holds the apps' pipes and sockets for a daemon
/// (see the `keeper` module). Returns the code to exit with.
pub fn run_keeper(home: Home) -> i32 {
    keeper::run(home)
}

/// `kelpie runtime`: supervise `apps` in the foreground (no background daemon, no fork), serving
/// `home`'s control socket so `kelpie list/logs/reload` work against it, until a signal stops
/// them or they have all ended. Their output goes to `options.output`; orphans are reaped (as
/// pid 1, or as a child subreaper). Returns the code to exit with: 0 after a stop on a signal or
/// when every app ended well, 1 when an app could not start or any ended in failure.
pub fn run_foreground(
    home: Home,
    apps: Vec<kelpie_core::AppSpec>,
    options: ForegroundOptions,
) -> Result<u8, DaemonError> {
    run_supervisor(
        home,
        DaemonOptions::default(),
        Some(supervisor::ForegroundSetup { apps, options }),
    )
}

fn run_supervisor(
    home: Home,
    daemon: DaemonOptions,
    foreground: Option<supervisor::ForegroundSetup>,
) -> Result<u8, DaemonError> {
    // The backend first, so that the log's first line says what the rest ran on.
    let backend = kelpie_sys::platform::check_choice()?;
    crate::daemon_log!(
        "platform: {}, {} backend",
        kelpie_sys::platform::system_name(),
        backend.name()
    );
    // What the program this one replaced handed over (`kelpie update`): taken first, before
    // anything else runs or opens a file.
    let handoff = match daemon.handoff.as_deref() {
        Some(file) => update::Handoff::take(file)
            .inspect_err(|e| crate::daemon_log!("update: {e}; starting as a new daemon"))
            .ok(),
        None => {
            // Descriptors the program that started us left open (a shell's, a terminal's)
            // would otherwise reach every app.
            let _ = kelpie_sys::close_inherited_fds();
            None
        }
    };
    if let Some(handoff) = &handoff {
        clock::continue_from(handoff.mono_ms);
    }
    kelpie_sys::tune_allocator();
    // Before the runtime and the daemon's threads exist: they all inherit it.
    match kelpie_sys::keep_threads_on_one_cpu() {
        Ok(Some(cpu)) => {
            crate::daemon_log!("threads kept on CPU {cpu} (apps run on all it was given)")
        }
        Ok(None) => {}
        Err(e) => crate::daemon_log!("cannot keep the threads on one CPU: {e}"),
    }
    match kelpie_sys::raise_fd_limit() {
        Ok((before, after)) if after > before => {
            crate::daemon_log!(
                "open files: limit raised from {before} to {after} (apps keep {before})"
            )
        }
        Ok((_, limit)) => crate::daemon_log!("open files: limit {limit}"),
        Err(e) => crate::daemon_log!("open files: cannot raise the limit: {e}"),
    }
    // One async thread is plenty for a supervisor; the few blocking jobs (opening log files,
    // reading /proc) share a small pool, so starting 200 apps at once does not make 200 threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(4)
        .build()
        .map_err(|source| {
            DaemonError::io("cannot start the async runtime for", home.root(), source)
        })?;
    runtime.block_on(startup::run(home, daemon, foreground, handoff))
}
