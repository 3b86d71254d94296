//! Which instances did not run since the previous reading, told by their cgroup's CPU time
//! ([`Quiet`]): their previous reading holds, and their processes need not be read.

use super::counters::{read_at_start, usage_usec};
use super::Target;
use std::collections::{HashMap, HashSet};
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
    apps: HashMap<u32, (PathBuf, Option<std::fs::File>, u64)>,
    buffer: Vec<u8>,
}

impl Quiet {
    pub(super) fn idle(
        &mut self,
        base: Option<&std::path::Path>,
        targets: &[Target],
        refresh: bool,
    ) -> HashSet<u32> {
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
        let mut idle = HashSet::new();
        let mut apps = HashMap::new();
        let mut kept_open = 0;
        let max_kept_open = crate::descriptors::cache_size_now();
        for target in targets {
            let Some(path) = &target.cgroup else { continue };
            let known = self
                .apps
                .remove(&target.pm_id)
                .filter(|(known, ..)| known == path);
            let (file, before) = match known {
                Some((_, file, before)) => (file, Some(before)),
                None => (None, None),
            };
            let (now, file) = match (all_quiet, before) {
                (true, Some(before)) => (Some(before), file),
                _ => {
                    let file = match file {
                        Some(file) => file,
                        None => match std::fs::File::open(path.join("cpu.stat")) {
                            Ok(file) => file,
                            Err(_) => continue,
                        },
                    };
                    (
                        read_at_start(&file, buffer).and_then(usage_usec),
                        Some(file),
                    )
                }
            };
            let Some(now) = now else { continue };
            if !refresh && before == Some(now) {
                idle.insert(target.pm_id);
            }
            let file = file.filter(|_| kept_open < max_kept_open);
            kept_open += usize::from(file.is_some());
            apps.insert(target.pm_id, (path.clone(), file, now));
        }
        self.apps = apps;
        idle
    }
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
            quiet.idle(Some(&base), targets, false).is_empty(),
            "first look"
        );
        assert_eq!(quiet.idle(Some(&base), targets, false), HashSet::from([0]));
        assert!(
            quiet.idle(Some(&base), targets, true).is_empty(),
            "a refresh reads all"
        );
        // It ran: read again.
        usage(&base, 150);
        usage(&app, 90);
        assert!(quiet.idle(Some(&base), targets, false).is_empty());
        assert_eq!(quiet.idle(Some(&base), targets, false), HashSet::from([0]));
        // Another app ran (the base grew), this one did not: still idle.
        usage(&base, 200);
        assert_eq!(quiet.idle(Some(&base), targets, false), HashSet::from([0]));
        // Without a cgroup, an instance is always read.
        let bare = Target {
            pm_id: 1,
            pid: 8,
            cgroup: None,
        };
        assert!(quiet
            .idle(Some(&base), std::slice::from_ref(&bare), false)
            .is_empty());
        assert!(quiet.idle(None, &[bare], false).is_empty());
    }
}
