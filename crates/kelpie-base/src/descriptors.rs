//! Where the daemon's open descriptors go, so a start it cannot hold is refused before anything
//! is spawned (`supervisor/requests/start.rs`), and what bounds each part:
//!
//! - per instance, [`per_instance`]: its two output pipes and its pidfd (a Node app's IPC
//!   channel adds two; the notify socket is one for all, `link/notify.rs`). The keeper holds its own copies; the daemon keeps
//!   none (`kelpie-keeper`'s `client.rs`).
//! - files kept open to be cheap to use again, each kind at most [`cache_size`]: the apps' log
//!   files (`kelpie-logs`'s `writer/files.rs`), the processes' `/proc/<pid>/stat` and the cgroups'
//!   `cpu.stat` (`monitor/`). Beyond, they are opened when used.
//! - the daemon's own ([`RESERVED`]) and its clients' connections (`gate.rs`).

/// Descriptors the daemon holds per instance: what a start is checked against. A black-box
/// test holds it at or above what instances really cost.
pub fn per_instance(spec: &kelpie_core::AppSpec) -> usize {
    // Output pipes, pidfd; a Node, Bun or Deno app's IPC channel (two ends in the daemon: the
    // one its tasks read and write, and one kept for a hand-over).
    3 + if spec.js_runtime().is_some() { 2 } else { 0 }
}

/// Descriptors the daemon keeps for itself (its files, sockets, threads), whatever its apps.
pub const RESERVED: usize = 32;

/// Connections the control socket serves at once, at most (`gate.rs`): a quarter of the
/// open-files limit, so that apps keep the rest, between 16 and this.
pub const MAX_CONNECTIONS: usize = 1024;
/// The fewest connections served at once, however low the open-files limit.
const MIN_CONNECTIONS: usize = 16;

/// The connections served at once under an open-files limit of `limit`: a quarter of it,
/// between 16 and [`MAX_CONNECTIONS`].
pub fn connections_for(limit: u64) -> usize {
    let quarter = usize::try_from(limit / 4).unwrap_or(usize::MAX);
    quarter.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// How many files of one kind (log files, `/proc` stat files, `cpu.stat` files) are kept open at
/// most: a sixteenth of the open-files limit, between 4 and 1 024.
pub fn cache_size(limit: u64) -> usize {
    usize::try_from(limit / 16)
        .unwrap_or(usize::MAX)
        .clamp(4, 1024)
}

/// The kinds of files kept open in [`cache_size`]s.
pub const CACHES: usize = 3;

/// Descriptors in use or set aside whatever the number of instances at this limit, but the
/// clients' connections (`gate.rs`).
pub fn fixed(limit: u64) -> usize {
    RESERVED + CACHES * cache_size(limit)
}

/// [`cache_size`] at this process's limit now.
pub fn cache_size_now() -> usize {
    cache_size(kelpie_sys::fd_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_follow_the_limit_within_bounds() {
        assert_eq!(cache_size(32), 4);
        assert_eq!(cache_size(256), 16);
        assert_eq!(cache_size(4096), 256);
        assert_eq!(cache_size(1 << 20), 1024);
    }
}
