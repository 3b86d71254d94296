//! Which instances did not run since the previous reading, told by their cgroup's CPU time
//! ([`Quiet`]): their previous reading holds, and their processes need not be read.

use super::counters::{read_at_start, usage_usec, CgroupReading};
use super::Target;
use super::{IdMap, IdSet};
use std::path::PathBuf;

/// Tells which instances certainly did not run since the previous reading: their cgroup's CPU
/// time (`cpu.stat`'s `usage_usec`, kept by cgroup v2 without any controller) did not grow. A
/// process that does not run does not grow (its memory only grows while it runs), so their
/// previous reading still holds and their processes need not be read. When the daemon's own
/// cgroup, which holds all the apps', did not grow either, not even the apps' files are read:
/// a second of 500 idle apps costs one read. Everything is read anyway every
/// [`READ_IDLE_EVERY`] samples.
///
/// At most [`crate::descriptors::cache_size`] of the apps' files are kept open between readings (a `pread` each
/// second, no path lookup); beyond, each is opened for its reading, so the daemon's descriptors
/// do not grow with the number of apps.
#[derive(Default)]
pub(super) struct Quiet {
    all: Option<(PathBuf, std::fs::File, Option<u64>)>,
    apps: IdMap<u32, Known>,
    buffer: Vec<u8>,
    /// The number of the current reading: apps not seen in it are forgotten.
    reading: u64,
    /// At the last reading, no process of any app ran since the one before: every target
    /// has a cgroup under the base, whose CPU time did not grow.
    nothing_ran: bool,
}

/// What is known of an app's cgroup.
struct Known {
    path: PathBuf,
    /// Its `cpu.stat`, kept open while within the bound.
    file: Option<std::fs::File>,
    /// Its CPU time at the last reading.
    usage: Option<u64>,
    read_at: u64,
}

impl Quiet {
    /// `read`: the instances whose cgroup's counters were just read (their CPU time is taken
    /// from there, not read a second time).
    pub(super) fn idle(
        &mut self,
        base: Option<&std::path::Path>,
        targets: &[Target],
        read: &IdMap<u32, CgroupReading>,
        refresh: bool,
    ) -> IdSet<u32> {
        let buffer = &mut self.buffer;
        let mut all_quiet = false;
        if let Some(base) = base {
            if self.all.as_ref().is_none_or(|(path, ..)| path != base) {
                self.all = std::fs::File::open(base.join("cpu.stat"))
                    .ok()
                    .map(|file| (base.to_path_buf(), file, None));
            }
            if let Some((_, file, before)) = &mut self.all {
                let now = read_at_start(file, buffer).and_then(usage_usec);
                all_quiet = now.is_some() && now == *before;
                *before = now;
            }
        }
        let mut idle = IdSet::with_capacity_and_hasher(targets.len(), Default::default());
        let mut kept_open = 0;
        let max_kept_open = crate::descriptors::cache_size_now();
        self.reading += 1;
        let reading = self.reading;
        let mut all_covered = targets.iter().all(|target| target.cgroup.is_some());
        // Updated in place: no table, path or file is made again for an app already known.
        for target in targets {
            let Some(path) = &target.cgroup else { continue };
            let known = self
                .apps
                .get_mut(&target.pm_id)
                // Compared as bytes: `Path`'s `==` parses both into components.
                .filter(|known| known.path.as_os_str() == path.as_os_str());
            let known = match known {
                Some(known) => known,
                None => {
                    let fresh = Known {
                        path: path.clone(),
                        file: None,
                        usage: None,
                        read_at: reading,
                    };
                    self.apps.insert(target.pm_id, fresh);
                    match self.apps.get_mut(&target.pm_id) {
                        Some(known) => known,
                        None => continue,
                    }
                }
            };
            known.read_at = reading;
            // The base's CPU time covers only the cgroups under it (not those of processes
            // adopted from a daemon that died, under that daemon's base).
            let covered = all_quiet && base.is_some_and(|base| within(base, path));
            all_covered &= covered;
            let now = match (covered, known.usage, read.get(&target.pm_id)) {
                (true, Some(before), _) => Some(before),
                (_, _, Some(reading)) => {
                    known.file = None;
                    Some(reading.cpu_usec)
                }
                _ => {
                    if known.file.is_none() {
                        known.file = std::fs::File::open(path.join("cpu.stat")).ok();
                    }
                    let now = known
                        .file
                        .as_ref()
                        .and_then(|file| read_at_start(file, buffer))
                        .and_then(usage_usec);
                    if kept_open >= max_kept_open {
                        known.file = None;
                    }
                    now
                }
            };
            kept_open += usize::from(known.file.is_some());
            let Some(now) = now else { continue };
            if !refresh && known.usage == Some(now) {
                idle.insert(target.pm_id);
            }
            known.usage = Some(now);
        }
        self.apps.retain(|_, known| known.read_at == reading);
        crate::room::shrink_if_sparse(&mut self.apps);
        self.nothing_ran = all_covered && !refresh;
        idle
    }

    /// Whether no process of any target ran between the last two readings (so every reading
    /// holds as it was: nothing else need be read or summed).
    pub(super) fn nothing_ran(&self) -> bool {
        self.nothing_ran
    }
}

/// Whether `path` is below `base` (compared as bytes: `Path::starts_with` parses both).
fn within(base: &std::path::Path, path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (base, path) = (base.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    path.len() > base.len() && path.starts_with(base) && path[base.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_whose_cgroup_used_no_cpu_are_not_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (base, app) = (dir.path().to_path_buf(), dir.path().join("0.0"));
        std::fs::create_dir(&app).expect("app dir");
        let usage = |path: &std::path::Path, usec: u64| {
            std::fs::write(
                path.join("cpu.stat"),
                format!("usage_usec {usec}\nuser_usec 0\n"),
            )
            .expect("write cpu.stat");
        };
        usage(&base, 100);
        usage(&app, 40);
        let target = Target {
            pm_id: 0,
            pid: 7,
            cgroup: Some(app.clone()),
        };
        let targets = std::slice::from_ref(&target);
        let mut quiet = Quiet::default();
        assert!(
            quiet
                .idle(Some(&base), targets, &IdMap::default(), false)
                .is_empty(),
            "first look"
        );
        assert_eq!(
            quiet.idle(Some(&base), targets, &IdMap::default(), false),
            IdSet::from_iter([0])
        );
        assert!(
            quiet
                .idle(Some(&base), targets, &IdMap::default(), true)
                .is_empty(),
            "a refresh reads all"
        );
        // It ran: read again.
        usage(&base, 150);
        usage(&app, 90);
        assert!(quiet
            .idle(Some(&base), targets, &IdMap::default(), false)
            .is_empty());
        assert_eq!(
            quiet.idle(Some(&base), targets, &IdMap::default(), false),
            IdSet::from_iter([0])
        );
        // Another app ran (the base grew), this one did not: still idle.
        usage(&base, 200);
        assert_eq!(
            quiet.idle(Some(&base), targets, &IdMap::default(), false),
            IdSet::from_iter([0])
        );
        // Without a cgroup, an instance is always read.
        let bare = Target {
            pm_id: 1,
            pid: 8,
            cgroup: None,
        };
        assert!(quiet
            .idle(
                Some(&base),
                std::slice::from_ref(&bare),
                &IdMap::default(),
                false
            )
            .is_empty());
        assert!(quiet
            .idle(None, &[bare], &IdMap::default(), false)
            .is_empty());
    }

    /// An instance whose cgroup's counters were just read takes its CPU time from them: its
    /// `cpu.stat` is not opened or read a second time.
    #[test]
    fn the_counters_reading_is_used_rather_than_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (base, app) = (dir.path().to_path_buf(), dir.path().join("0.0"));
        // No cpu.stat in the app's directory: only the counters' reading can tell its time.
        std::fs::create_dir(&app).expect("app dir");
        std::fs::write(base.join("cpu.stat"), "usage_usec 100\n").expect("write cpu.stat");
        let target = Target {
            pm_id: 0,
            pid: 7,
            cgroup: Some(app),
        };
        let targets = std::slice::from_ref(&target);
        let read = |usec| {
            IdMap::from_iter([(
                0,
                CgroupReading {
                    memory_bytes: 1,
                    cpu_usec: usec,
                    pids: vec![7],
                },
            )])
        };
        let mut quiet = Quiet::default();
        assert!(quiet
            .idle(Some(&base), targets, &read(40), false)
            .is_empty());
        assert_eq!(
            quiet.idle(Some(&base), targets, &read(40), false),
            IdSet::from_iter([0]),
            "the same time twice: idle"
        );
        // It ran (and so did the base): its new time comes from the counters.
        std::fs::write(base.join("cpu.stat"), "usage_usec 150\n").expect("write cpu.stat");
        assert!(quiet
            .idle(Some(&base), targets, &read(45), false)
            .is_empty());
        assert_eq!(
            quiet.idle(Some(&base), targets, &read(45), false),
            IdSet::from_iter([0])
        );
        assert!(
            quiet.apps[&0].file.is_none(),
            "no file of its own kept open"
        );
    }

    /// The base's CPU time tells only of the cgroups under it: one of a process adopted from a
    /// daemon that died (under that daemon's base) is read all the same.
    #[test]
    fn nothing_ran_only_when_every_target_is_under_a_quiet_base() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("kelpie-2");
        let (ours, adopted) = (base.join("0.0"), dir.path().join("kelpie-1").join("1.0"));
        for path in [&ours, &adopted] {
            std::fs::create_dir_all(path).expect("dir");
        }
        let usage = |path: &std::path::Path, usec: u64| {
            std::fs::write(path.join("cpu.stat"), format!("usage_usec {usec}\n"))
                .expect("write cpu.stat");
        };
        usage(&base, 100);
        usage(&ours, 40);
        usage(&adopted, 10);
        let target = |pm_id, cgroup: &std::path::Path| Target {
            pm_id,
            pid: 7 + pm_id,
            cgroup: Some(cgroup.to_path_buf()),
        };
        let mut quiet = Quiet::default();
        let only_ours = [target(0, &ours)];
        quiet.idle(Some(&base), &only_ours, &IdMap::default(), false);
        assert!(!quiet.nothing_ran(), "first look");
        quiet.idle(Some(&base), &only_ours, &IdMap::default(), false);
        assert!(quiet.nothing_ran());
        quiet.idle(Some(&base), &only_ours, &IdMap::default(), true);
        assert!(!quiet.nothing_ran(), "a refresh reads all");

        let both = [target(0, &ours), target(1, &adopted)];
        quiet.idle(Some(&base), &both, &IdMap::default(), false);
        quiet.idle(Some(&base), &both, &IdMap::default(), false);
        assert!(
            !quiet.nothing_ran(),
            "the adopted one is not under the base"
        );
        // The adopted one ran, the base did not grow: it is not taken as idle.
        usage(&adopted, 30);
        assert_eq!(
            quiet.idle(Some(&base), &both, &IdMap::default(), false),
            IdSet::from_iter([0])
        );
    }
}
