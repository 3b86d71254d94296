//! Keep-alive connections spread evenly across an app's instances.
//!
//! Every instance of a cluster-mode Node app accepts from the same listening socket. With
//! short connections that balances itself (a busy instance is slower to accept), but
//! keep-alive clients connect once, all at the same moment, and the instance that wakes first
//! takes most of them for as long as they last. PM2 avoids this by having its daemon accept
//! every connection and hand it to a worker in turn, which costs the daemon CPU on every
//! connection. Instead, the Node shim of each instance says now and then how many
//! connections it holds, and an instance holding more than its share is told how many to
//! keep: it answers the next request on the others with `Connection: close`, and the client
//! reconnects, most likely to a less busy instance (a busy one is slower to accept). The
//! daemon does no work per connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

/// The connections each live process of each app last reported. A process's entry lives as
/// long as its link's IPC task (see `link::Presence`), so deleted apps, renames and a `kill`
/// need no bookkeeping here.
#[derive(Debug, Default)]
pub struct ConnectionLoads {
    /// app -> process (its IPC channel's number) -> open connections.
    apps: Mutex<HashMap<String, BTreeMap<u64, u64>>>,
}

impl ConnectionLoads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<u64, u64>>> {
        self.apps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Process `process` of `app` holds `connections`. Returns how many it should keep when
    /// that is fewer: the app's connections divided evenly among its processes, rounded up
    /// (so that a spread as even as whole connections allow is never disturbed).
    pub fn report(&self, app: &str, process: u64, connections: u64) -> Option<u64> {
        let mut apps = self.lock();
        let loads = apps.entry(app.to_string()).or_default();
        loads.insert(process, connections);
        let total: u64 = loads.values().sum();
        let share = total.div_ceil(loads.len() as u64);
        (connections > share).then_some(share)
    }

    /// Process `process` of `app` listens on a shared socket: it counts in the share from now
    /// on, with what it reported or none. An instance that no connection reached yet reports
    /// nothing, and left out of the count it would make the others' share too large for any
    /// of them to be told to shed: it would stay idle for as long as the connections last.
    pub fn join(&self, app: &str, process: u64) {
        self.lock()
            .entry(app.to_string())
            .or_default()
            .entry(process)
            .or_insert(0);
    }

    /// Process `process` of `app` is gone (its channel closed).
    pub fn leave(&self, app: &str, process: u64) {
        let mut apps = self.lock();
        if let Some(loads) = apps.get_mut(app) {
            loads.remove(&process);
            if loads.is_empty() {
                apps.remove(app);
                crate::room::shrink_if_sparse(&mut *apps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_over_its_share_is_told_what_to_keep() {
        let loads = ConnectionLoads::default();
        assert_eq!(
            loads.report("api", 1, 12),
            None,
            "alone: all of them are its share"
        );
        assert_eq!(loads.report("api", 2, 4), None);
        // 16 over 2: 8 each.
        assert_eq!(loads.report("api", 1, 12), Some(8));
        // As even as whole connections allow: 9 and 8 of 17.
        assert_eq!(loads.report("api", 2, 8), None);
        assert_eq!(loads.report("api", 1, 9), None);
        // Another app's processes are counted apart.
        assert_eq!(loads.report("web", 7, 30), None);
        // A process gone leaves the others its share.
        loads.leave("api", 2);
        assert_eq!(loads.report("api", 1, 9), None);
        assert_eq!(loads.report("api", 3, 1), None);
        assert_eq!(loads.report("api", 1, 9), Some(5));
        // The last process gone, nothing of the app is kept.
        loads.leave("api", 1);
        loads.leave("api", 3);
        assert!(!loads.lock().contains_key("api"));
    }

    #[test]
    fn an_instance_without_connections_counts_once_it_listens() {
        let loads = ConnectionLoads::default();
        for process in 1..=4 {
            loads.join("api", process);
        }
        let _ = loads.report("api", 1, 5);
        let _ = loads.report("api", 2, 5);
        // Three instances took all 16; the fourth, listening with none, still counts: 4 each.
        assert_eq!(loads.report("api", 3, 6), Some(4));
        assert_eq!(loads.report("api", 1, 5), Some(4));
        // Left out (as it was before it joined on listening), 6 each: nobody over its share.
        loads.leave("api", 4);
        assert_eq!(loads.report("api", 3, 6), None);
        loads.join("api", 4);
        // Joining again (a second shared server) keeps what it reported.
        loads.report("api", 4, 2);
        loads.join("api", 4);
        assert_eq!(loads.lock()["api"][&4], 2);
    }
}
