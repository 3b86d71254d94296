//! Watching by polling: the portable backend's file watching (macOS, and Linux with
//! `KELPIE_PLATFORM=portable`), with the rules and bursts of the inotify one.
//!
//! Every [`POLL_EVERY`] the thread walks each app's trees (under the same rules: `never`,
//! `ignore`, `node_modules`, `.git` and the `.gitignore`d directories are not walked) and
//! compares what it finds, entry by entry (kind, size, modification time, inode), with the
//! walk before. An entry added, removed or changed is a change. What that gives up against
//! inotify: a change is seen up to [`POLL_EVERY`] late, a file written and put back as it
//! was between two walks is not seen, and each walk costs a `stat` per entry of the trees
//! (a project of 5 000 files: a few milliseconds of CPU per walk).

use super::burst::Burst;
use super::rules::{real_path, Prepared, Rules};
use super::{drain, Command, WatchBurst, WatchError, WatchSettings};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How often the trees are walked.
pub(super) const POLL_EVERY: Duration = Duration::from_millis(500);

/// What a walk saw of an entry: a change of any part is a change of the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    dir: bool,
    size: u64,
    modified_ns: i128,
    inode: u64,
}

/// One watching app.
struct PolledApp {
    rules: Rules,
    roots: Vec<PathBuf>,
    delay: Duration,
    hold: Duration,
    changes: UnboundedSender<WatchBurst>,
    seen: BTreeMap<PathBuf, Seen>,
    burst: Option<Burst>,
}

impl PolledApp {
    fn deadline(&self) -> Option<Instant> {
        Burst::deadline_of(self.burst.as_ref(), self.delay, self.hold)
    }

    /// Every entry of the app's trees, and its roots themselves.
    fn walk(&self) -> Result<BTreeMap<PathBuf, Seen>, WatchError> {
        let mut found = BTreeMap::new();
        for root in &self.roots {
            let metadata = std::fs::metadata(root).map_err(|cause| {
                if cause.kind() == std::io::ErrorKind::NotFound {
                    WatchError::Missing {
                        path: root.display().to_string(),
                    }
                } else {
                    WatchError::Io {
                        path: root.display().to_string(),
                        cause,
                    }
                }
            });
            let metadata = match metadata {
                Ok(metadata) => metadata,
                // A root that went away is a change, seen as its entry missing.
                Err(WatchError::Missing { .. }) if !self.seen.is_empty() => continue,
                Err(e) => return Err(e),
            };
            found.insert(root.clone(), seen(&metadata));
            if !metadata.is_dir() {
                continue;
            }
            let mut stack = vec![(root.clone(), real_path(root))];
            while let Some((dir, real)) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let path = dir.join(&name);
                    let real_child = real.join(&name);
                    if self.rules.ignores(&path, &real_child)
                        || self.rules.is_never(&path, &real_child)
                    {
                        continue;
                    }
                    // Links inside a tree are not followed (what `symlink_metadata` gives).
                    let Ok(metadata) = std::fs::symlink_metadata(&path) else {
                        continue;
                    };
                    if metadata.is_dir() {
                        if !self.rules.leads_to_never(&path, &real_child) {
                            found.insert(path.clone(), seen(&metadata));
                        }
                        stack.push((path, real_child));
                    } else {
                        found.insert(path, seen(&metadata));
                    }
                }
            }
        }
        Ok(found)
    }

    /// Walk again and record each difference as a change.
    fn look(&mut self, now: Instant) {
        let Ok(found) = self.walk() else { return };
        let mut changed: Vec<PathBuf> = found
            .iter()
            .filter(|(path, now_seen)| self.seen.get(*path) != Some(now_seen))
            .map(|(path, _)| path.clone())
            .collect();
        changed.extend(
            self.seen
                .keys()
                .filter(|path| !found.contains_key(*path))
                .cloned(),
        );
        // A directory's own time changes with each entry added or removed: the entry is the
        // change, not the directory.
        changed.retain(|path| {
            !(found.get(path).is_some_and(|seen| seen.dir)
                && self.seen.get(path).is_some_and(|seen| seen.dir))
        });
        for path in changed {
            Burst::record_in(&mut self.burst, &path, now);
        }
        self.seen = found;
    }
}

fn seen(metadata: &std::fs::Metadata) -> Seen {
    Seen {
        dir: metadata.is_dir(),
        size: metadata.size(),
        modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
            + i128::from(metadata.mtime_nsec()),
        inode: metadata.ino(),
    }
}

/// The thread: walk every [`POLL_EVERY`], answer commands as they come.
pub(super) fn serve(commands: Receiver<Command>, mut woken: UnixStream) {
    let mut apps: HashMap<u64, PolledApp> = HashMap::new();
    let mut next_id = 1;
    let mut next_walk = Instant::now() + POLL_EVERY;
    loop {
        let due = apps
            .values()
            .filter_map(PolledApp::deadline)
            .chain(std::iter::once(next_walk))
            .min()
            .unwrap_or(next_walk);
        let timeout = due.saturating_duration_since(Instant::now());
        let woke = kelpie_sys::wait_readable(woken.as_fd(), timeout).unwrap_or(true);
        if woke && !drain(&mut woken) {
            return;
        }
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Watch {
                    settings,
                    changes,
                    reply,
                } => {
                    let id = next_id;
                    next_id += 1;
                    let result = start_app(settings, changes).map(|app| {
                        apps.insert(id, app);
                        id
                    });
                    if let Err(std::sync::mpsc::SendError(Ok(id))) = reply.send(result) {
                        apps.remove(&id);
                    }
                }
                Command::Unwatch(id) => {
                    apps.remove(&id);
                }
                #[cfg(test)]
                Command::Count(reply) => {
                    let _ = reply.send(apps.values().map(|app| app.seen.len()).sum());
                }
            }
        }
        let now = Instant::now();
        if now >= next_walk {
            for app in apps.values_mut() {
                app.look(now);
            }
            next_walk = now + POLL_EVERY;
        }
        apps.retain(|_, app| {
            if app.deadline().is_none_or(|at| at > now) {
                return true;
            }
            let Some(burst) = app.burst.take() else {
                return true;
            };
            // Nobody listens any more: stop walking its trees.
            app.changes
                .send(WatchBurst {
                    first_path: burst.first_path,
                    changes: burst.changes,
                })
                .is_ok()
        });
    }
}

/// An app's first walk: what is there now is the state changes are measured from.
fn start_app(
    settings: WatchSettings,
    changes: UnboundedSender<WatchBurst>,
) -> Result<PolledApp, WatchError> {
    let Prepared {
        rules,
        roots,
        delay,
        hold,
    } = Prepared::new(&settings)?;
    for root in &roots {
        if rules.is_never(root, &real_path(root)) {
            return Err(WatchError::Never {
                path: root.display().to_string(),
            });
        }
    }
    let mut app = PolledApp {
        rules,
        roots,
        delay,
        hold,
        changes,
        seen: BTreeMap::new(),
        burst: None,
    };
    app.seen = app.walk()?;
    Ok(app)
}

/// Whether `path` is one of the entries an app's walk found (for tests).
#[cfg(test)]
fn walked(settings: WatchSettings, path: &Path) -> bool {
    let (changes, _) = tokio::sync::mpsc::unbounded_channel();
    start_app(settings, changes).is_ok_and(|app| app.seen.contains_key(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> WatchSettings {
        WatchSettings {
            paths: vec![dir.to_path_buf()],
            cwd: dir.to_path_buf(),
            ignore: vec!["*.tmp".into()],
            never: vec![dir.join("logs")],
            delay: Duration::from_millis(100),
        }
    }

    #[test]
    fn a_walk_skips_what_the_rules_ignore() {
        let dir = tempfile::tempdir().expect("dir");
        for sub in ["src", "node_modules/x", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for file in ["src/a.js", "b.tmp", "node_modules/x/i.js", "logs/out.log"] {
            std::fs::write(dir.path().join(file), "x").expect("write");
        }
        let settings = settings(dir.path());
        assert!(walked(settings.clone(), &dir.path().join("src/a.js")));
        for skipped in ["b.tmp", "node_modules/x/i.js", "logs/out.log"] {
            assert!(
                !walked(settings.clone(), &dir.path().join(skipped)),
                "{skipped}"
            );
        }
    }

    #[tokio::test]
    async fn a_change_is_seen_within_a_walk_and_sent_as_one_burst() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("src")).expect("mkdir");
        std::fs::write(dir.path().join("src/a.js"), "1").expect("write");
        let (wake, woken) = UnixStream::pair().expect("pair");
        wake.set_nonblocking(true).expect("nonblocking");
        woken.set_nonblocking(true).expect("nonblocking");
        let (commands, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || serve(receiver, woken));
        let (changes, mut bursts) = tokio::sync::mpsc::unbounded_channel();
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        commands
            .send(Command::Watch {
                settings: settings(dir.path()),
                changes,
                reply,
            })
            .expect("send");
        use std::io::Write;
        (&wake).write_all(&[1]).expect("wake");
        answer.recv().expect("answer").expect("watched");
        std::fs::write(dir.path().join("src/a.js"), "22").expect("change");
        std::fs::write(dir.path().join("src/b.js"), "new").expect("add");
        std::fs::write(dir.path().join("c.tmp"), "ignored").expect("ignored");
        let burst = tokio::time::timeout(Duration::from_secs(5), bursts.recv())
            .await
            .expect("a burst within 5 s")
            .expect("open");
        assert_eq!(burst.changes, 2, "{burst:?}");
        assert!(burst.first_path.starts_with(dir.path().join("src")));
        drop((commands, wake));
        thread.join().expect("the thread ends with its handles");
    }
}
