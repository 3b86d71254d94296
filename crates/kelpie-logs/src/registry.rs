//! Every open log file by path, so instances that share a file (merged logs, a combined log)
//! share one writer-side state and one buffer.
//!
//! It holds a [`Weak`] of each sink, and a `Weak` keeps its sink's allocation (the path, the
//! buffers' bookkeeping, about 650 bytes a file) until the entry itself goes. So the entries of
//! dead sinks are taken out once they are a good part of the table (a bulk delete, or many
//! restarts): each sink's drop counts itself (an atomic, no lock: a sink may be dropped while
//! the table is locked), and the writer's tick, or the making of a sink, prunes the table when
//! the count says it is worth a pass over it. Pruning costs one pass over the table per a
//! quarter of its size dropped, so nothing is paid per delete, and 10 000 apps are no slower.

use super::sink::{lock, Sink};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The sinks by path.
pub(super) type Sinks = HashMap<PathBuf, Weak<Sink>>;

/// The table of sinks and the count of those dropped since it was last pruned.
#[derive(Debug, Default)]
pub(super) struct Registry {
    sinks: Mutex<Sinks>,
    dropped: Arc<AtomicUsize>,
}

impl Registry {
    /// The table, locked. Never drop a sink's last `Arc` in a way that locks it again.
    pub(super) fn lock(&self) -> MutexGuard<'_, Sinks> {
        lock(&self.sinks)
    }

    /// The live sink of `path`, if any.
    pub(super) fn get(&self, path: &Path) -> Option<Arc<Sink>> {
        self.lock().get(path).and_then(Weak::upgrade)
    }

    /// Register `sink` (replacing a dead one of its path).
    /// `sinks` is this registry's table, locked by the caller.
    pub(super) fn insert_new(&self, sinks: &mut Sinks, sink: Sink) -> Arc<Sink> {
        self.prune_if_worth(sinks);
        let sink = Arc::new(sink.counted_in(self.dropped.clone()));
        sinks.insert(sink.path().to_path_buf(), Arc::downgrade(&sink));
        sink
    }

    /// Take the dead sinks' entries out when there are enough of them (see the module's
    /// documentation), and give back the room the table no longer needs. Whether it pruned.
    pub(super) fn prune(&self) -> bool {
        if self.dropped.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut sinks = self.lock();
        self.prune_if_worth(&mut sinks)
    }

    fn prune_if_worth(&self, sinks: &mut Sinks) -> bool {
        let dropped = self.dropped.load(Ordering::Acquire);
        // A quarter of the table (or all of a small one) dead: a pass is worth it. The count
        // may be more than the dead entries (a sink never registered, or whose entry was
        // replaced already): the pass then finds fewer, and the count starts again.
        if dropped == 0 || dropped.saturating_mul(4) < sinks.len() {
            return false;
        }
        // Drops from now on are counted for the next pass, whether this one sees them or not.
        self.dropped.fetch_sub(dropped, Ordering::AcqRel);
        sinks.retain(|_, sink| sink.strong_count() > 0);
        crate::room::shrink_if_sparse(sinks);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::rotation::RotationPolicy;
    use super::*;

    fn register(registry: &Registry, name: &str) -> Arc<Sink> {
        let mut sinks = registry.lock();
        registry.insert_new(
            &mut sinks,
            Sink::new(PathBuf::from(name), RotationPolicy::default()),
        )
    }

    #[test]
    fn the_entries_of_dead_sinks_go_once_a_quarter_of_them_died_and_the_room_with_them() {
        let registry = Registry::default();
        let mut live: Vec<Arc<Sink>> = (0..1000)
            .map(|i| register(&registry, &format!("/logs/{i}.log")))
            .collect();
        let full = registry.lock().capacity();
        // A few deaths: not worth a pass yet.
        live.truncate(900);
        assert!(!registry.prune(), "a tenth dead is left for later");
        assert_eq!(registry.lock().len(), 1000);
        // Every sink dies (delete all): the next tick prunes them all and gives the room back.
        live.clear();
        assert!(registry.prune());
        assert!(registry.lock().is_empty());
        assert!(
            registry.lock().capacity() < full / 8,
            "the table's room is given back ({} of {full})",
            registry.lock().capacity()
        );
        assert!(!registry.prune(), "nothing more to do");
    }

    #[test]
    fn a_sink_made_again_replaces_its_dead_entry_and_a_live_one_is_never_pruned() {
        let registry = Registry::default();
        let kept = register(&registry, "/logs/kept.log");
        for _ in 0..10 {
            drop(register(&registry, "/logs/looping.log"));
        }
        assert!(registry.prune());
        let sinks = registry.lock();
        assert_eq!(sinks.len(), 1, "only the live sink is left");
        assert!(sinks.contains_key(kept.path()));
    }

    #[test]
    fn a_sink_of_no_registry_counts_nowhere() {
        let registry = Registry::default();
        let _kept = register(&registry, "/logs/kept.log");
        drop(Arc::new(Sink::new(
            PathBuf::from("/logs/flushed.log"),
            RotationPolicy::default(),
        )));
        assert!(!registry.prune());
    }
}
