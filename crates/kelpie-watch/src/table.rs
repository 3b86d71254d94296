//! The watching thread's state: the watch descriptors of every directory, shared between apps
//! that watch it, the apps' views of their trees, and the bursts being gathered.

use super::burst::Burst;
use super::rules::{real_path, Prepared, Rules};
use super::{
    add_error, change_mask, is_limit, Command, RawEvent, WatchBurst, WatchError, WatchSettings,
};
use inotify::{EventMask, WatchDescriptor, WatchMask, Watches};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The thread's state.
pub(super) struct Watcher {
    pub(super) table: Table,
    pub(super) apps: HashMap<u64, App>,
    pub(super) next_id: u64,
}

/// The inotify watches, shared by the apps.
pub(super) struct Table {
    pub(super) watches: Watches,
    /// Every watch by descriptor number.
    pub(super) dirs: HashMap<i32, Dir>,
}

/// One inotify watch (one directory inode) and the apps using it.
pub(super) struct Dir {
    pub(super) wd: WatchDescriptor,
    pub(super) users: HashSet<u64>,
}

/// One watching app.
pub(super) struct App {
    pub(super) rules: Rules,
    /// The watched paths, lexically normalized.
    pub(super) roots: Vec<PathBuf>,
    pub(super) delay: Duration,
    pub(super) hold: Duration,
    pub(super) changes: UnboundedSender<WatchBurst>,
    /// How this app sees each watch it uses.
    pub(super) views: HashMap<i32, View>,
    /// The watches of directories inside its trees by path, so the watches under a directory
    /// that disappears are found without a scan of every watch (paths sort component by
    /// component, so a directory's descendants follow it).
    pub(super) tree_dirs: BTreeMap<PathBuf, i32>,
    pub(super) burst: Option<Burst>,
}

/// An app's view of one watched directory.
pub(super) struct View {
    /// The directory as the app reaches it (through the watched path as given).
    pub(super) path: PathBuf,
    /// The same without symbolic links, for comparisons with `never` paths and globs written
    /// against the resolved paths.
    pub(super) real: PathBuf,
    /// Inside one of the app's trees: every entry counts.
    pub(super) tree: bool,
    /// Watched paths that are entries of this directory: these names count.
    pub(super) names: BTreeSet<OsString>,
}

/// What an app wants of a directory it watches.
pub(super) enum Interest {
    Tree,
    Name(OsString),
}

impl Watcher {
    pub(super) fn command(&mut self, command: Command) {
        match command {
            Command::Watch {
                settings,
                changes,
                reply,
            } => {
                let result = self.watch(settings, changes);
                if let Err(std::sync::mpsc::SendError(Ok(id))) = reply.send(result) {
                    // The caller is gone: nobody will ever drop a handle for this app.
                    self.unwatch(id);
                }
            }
            Command::Unwatch(id) => self.unwatch(id),
            #[cfg(test)]
            Command::Count(reply) => {
                let _ = reply.send(self.table.dirs.len());
            }
        }
    }

    pub(super) fn watch(
        &mut self,
        settings: WatchSettings,
        changes: UnboundedSender<WatchBurst>,
    ) -> Result<u64, WatchError> {
        let Prepared {
            rules,
            roots,
            delay,
            hold,
        } = Prepared::new(&settings)?;
        let id = self.next_id;
        self.next_id += 1;
        let mut app = App {
            rules,
            roots,
            delay,
            hold,
            changes,
            views: HashMap::new(),
            tree_dirs: BTreeMap::new(),
            burst: None,
        };
        match self.table.register(id, &mut app) {
            Ok(()) => {
                self.apps.insert(id, app);
                Ok(id)
            }
            Err(e) => {
                self.table.release_app(id, &mut app);
                Err(e)
            }
        }
    }

    pub(super) fn unwatch(&mut self, id: u64) {
        if let Some(mut app) = self.apps.remove(&id) {
            self.table.release_app(id, &mut app);
        }
    }

    pub(super) fn events(&mut self, events: Vec<RawEvent>, now: Instant) {
        for event in events {
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                self.overflowed(now);
                continue;
            }
            if event.mask.contains(EventMask::IGNORED) {
                // The watch is gone (its directory was deleted or unmounted, or we removed it).
                self.forget(event.wd);
                continue;
            }
            // Events about a watched directory itself have no name; none is asked for.
            let Some(name) = event.name else { continue };
            let Some(dir) = self.table.dirs.get(&event.wd) else {
                continue;
            };
            let users: Vec<u64> = dir.users.iter().copied().collect();
            for id in users {
                if let Some(app) = self.apps.get_mut(&id) {
                    self.table
                        .entry_changed(id, app, event.wd, event.mask, &name, now);
                }
            }
        }
    }

    /// Events were lost: count a change for every app and look for directories whose creation
    /// was missed.
    pub(super) fn overflowed(&mut self, now: Instant) {
        crate::daemon_log!("watch: the inotify event queue overflowed; rescanning watched trees");
        for (&id, app) in &mut self.apps {
            if let Some(first) = app.roots.first().cloned() {
                app.record(&first, now);
            }
            for root in app.roots.clone() {
                if std::fs::metadata(&root).is_ok_and(|m| m.is_dir()) {
                    if let Err(e) = self.table.walk(id, app, &root, None, false) {
                        crate::daemon_log!("watch: {e}");
                    }
                }
            }
        }
    }

    /// The kernel removed a watch: nobody uses it any more.
    pub(super) fn forget(&mut self, wd: i32) {
        let Some(dir) = self.table.dirs.remove(&wd) else {
            return;
        };
        for id in dir.users {
            let Some(app) = self.apps.get_mut(&id) else {
                continue;
            };
            if let Some(view) = app.views.remove(&wd) {
                if app.tree_dirs.get(&view.path) == Some(&wd) {
                    app.tree_dirs.remove(&view.path);
                }
            }
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.apps.values().filter_map(App::deadline).min()
    }

    pub(super) fn send_bursts(&mut self, now: Instant) {
        let mut closed = Vec::new();
        for (&id, app) in &mut self.apps {
            if app.deadline().is_some_and(|at| at <= now) {
                if let Some(burst) = app.burst.take() {
                    let burst = WatchBurst {
                        first_path: burst.first_path,
                        changes: burst.changes,
                    };
                    if app.changes.send(burst).is_err() {
                        closed.push(id);
                    }
                }
            }
        }
        // Nobody listens to these apps any more: their watches only cost descriptors.
        for id in closed {
            self.unwatch(id);
        }
    }
}

impl Table {
    /// Put an app's watches in place.
    pub(super) fn register(&mut self, id: u64, app: &mut App) -> Result<(), WatchError> {
        for root in app.roots.clone() {
            let path = || root.display().to_string();
            let metadata = std::fs::metadata(&root).map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    WatchError::Missing { path: path() }
                } else {
                    WatchError::Io {
                        path: path(),
                        cause: e,
                    }
                }
            })?;
            let real = real_path(&root);
            if app.rules.is_never(&root, &real) {
                return Err(WatchError::Never { path: path() });
            }
            // The parent, filtered on the name, sees the path replaced (see the module's
            // documentation). `/` has no parent and cannot be replaced.
            if let (Some(parent), Some(name)) = (root.parent(), root.file_name()) {
                let interest = Interest::Name(name.to_os_string());
                match self.add(id, app, parent, &real_path(parent), interest, true) {
                    Ok(_) => {}
                    // A directory still has its own watches (a parent the user may traverse but
                    // not read cannot be watched); only its replacement goes unseen.
                    Err(e) if metadata.is_dir() && !is_limit(&e) => crate::daemon_log!(
                        "watch: {}; a replacement of {} will not be seen",
                        add_error(parent, e),
                        root.display()
                    ),
                    Err(e) => return Err(add_error(parent, e)),
                }
            }
            if metadata.is_dir() {
                self.walk(id, app, &root, None, true)?;
            }
        }
        Ok(())
    }

    /// Watch `dir` for an app (the same inotify watch when another app has it already).
    pub(super) fn add(
        &mut self,
        id: u64,
        app: &mut App,
        dir: &Path,
        real: &Path,
        interest: Interest,
        follow: bool,
    ) -> io::Result<i32> {
        let mut mask = change_mask() | WatchMask::ONLYDIR;
        if !follow {
            mask |= WatchMask::DONT_FOLLOW;
        }
        let wd = self.watches.add(dir, mask)?;
        let number = wd.get_watch_descriptor_id();
        self.dirs
            .entry(number)
            .or_insert_with(|| Dir {
                wd,
                users: HashSet::new(),
            })
            .users
            .insert(id);
        // The same directory reached by another path (a bind mount, a link given as a watched
        // path) keeps the path it was first seen at.
        let view = app.views.entry(number).or_insert_with(|| View {
            path: dir.to_path_buf(),
            real: real.to_path_buf(),
            tree: false,
            names: BTreeSet::new(),
        });
        match interest {
            Interest::Tree => {
                if !view.tree {
                    view.tree = true;
                    app.tree_dirs.insert(view.path.clone(), number);
                }
            }
            Interest::Name(name) => {
                view.names.insert(name);
            }
        }
        Ok(number)
    }

    /// Watch the tree at `top` for an app, skipping what its rules ignore. With `scan`, the entries
    /// found count as changes (the tree is new: they may have been written before the watches
    /// were in place). `strict`: an error on `top` itself is returned; otherwise what cannot be
    /// watched (gone since it was listed, unreadable) is skipped. The inotify limit is always an
    /// error: the tree would be watched in part.
    pub(super) fn walk(
        &mut self,
        id: u64,
        app: &mut App,
        top: &Path,
        scan: Option<Instant>,
        strict: bool,
    ) -> Result<(), WatchError> {
        let mut visited = HashSet::new();
        let mut stack = vec![(top.to_path_buf(), real_path(top), true)];
        while let Some((dir, real, is_top)) = stack.pop() {
            // The watch goes in before the listing: a directory created in between is then
            // both listed and reported, never neither.
            let number = match self.add(id, app, &dir, &real, Interest::Tree, is_top) {
                Ok(number) => number,
                Err(e) if is_limit(&e) || (is_top && strict) => return Err(add_error(&dir, e)),
                Err(_) => continue,
            };
            if !visited.insert(number) {
                // Reached again through a bind mount: already walked.
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(source) if is_top && strict => {
                    return Err(WatchError::Io {
                        path: dir.display().to_string(),
                        cause: source,
                    })
                }
                Err(_) => continue,
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let path = dir.join(&name);
                let real_child = real.join(&name);
                if app.rules.ignores(&path, &real_child) {
                    continue;
                }
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if let Some(now) = scan {
                    if !(kind.is_dir() && app.rules.leads_to_never(&path, &real_child)) {
                        app.record(&path, now);
                    }
                }
                if kind.is_dir() {
                    stack.push((path, real_child, false));
                }
            }
        }
        Ok(())
    }

    /// An entry of a watched directory changed: count it for the app if it cares, and follow
    /// directories appearing and disappearing.
    pub(super) fn entry_changed(
        &mut self,
        id: u64,
        app: &mut App,
        wd: i32,
        mask: EventMask,
        name: &OsStr,
        now: Instant,
    ) {
        let Some(view) = app.views.get(&wd) else {
            return;
        };
        let named = view.names.contains(name);
        if !named && !view.tree {
            return;
        }
        let path = view.path.join(name);
        let real = view.real.join(name);
        // A watched path counts even where a rule would ignore it: the app named it.
        if !named && app.rules.ignores(&path, &real) {
            return;
        }
        let is_dir = mask.contains(EventMask::ISDIR);
        let appeared = mask.intersects(EventMask::CREATE | EventMask::MOVED_TO);
        // A directory made on the way to a never-watched file (the daemon makes a pid file's or
        // a log's directory as it writes it) is not a change; what is found in it still is.
        let made_for_never = !named && is_dir && appeared && app.rules.leads_to_never(&path, &real);
        if !made_for_never {
            app.record(&path, now);
        }
        let gone = mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM);
        // Also when something appears: it may have replaced what was there (a rename over a
        // watched path, a flipped symlink), whose watches would go on reporting the old tree.
        if (appeared || gone) && (is_dir || named) {
            self.drop_tree(id, app, &path);
        }
        if appeared {
            // A watched path that is a link to a directory reports no ISDIR: look.
            let dir_now = is_dir || (named && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()));
            if dir_now {
                if let Err(e) = self.walk(id, app, &path, Some(now), false) {
                    crate::daemon_log!("watch: {e}");
                }
            }
        }
    }

    /// The directory at `path` left an app's tree (deleted or moved away): drop its watches and
    /// those under it. A moved directory keeps its inode and so its watches, which would report
    /// its new place's changes under the old path.
    pub(super) fn drop_tree(&mut self, id: u64, app: &mut App, path: &Path) {
        let under: Vec<(PathBuf, i32)> = app
            .tree_dirs
            .range(path.to_path_buf()..)
            .take_while(|(dir, _)| dir.starts_with(path))
            .map(|(dir, &number)| (dir.clone(), number))
            .collect();
        for (dir, number) in under {
            app.tree_dirs.remove(&dir);
            let Some(view) = app.views.get_mut(&number) else {
                continue;
            };
            view.tree = false;
            if view.names.is_empty() {
                app.views.remove(&number);
                self.release(id, number);
            }
        }
    }

    /// An app no longer uses a watch; the last user removes it.
    pub(super) fn release(&mut self, id: u64, number: i32) {
        let Some(dir) = self.dirs.get_mut(&number) else {
            return;
        };
        dir.users.remove(&id);
        if dir.users.is_empty() {
            if let Some(dir) = self.dirs.remove(&number) {
                // Fails only when the kernel removed it already (its IN_IGNORED is on the way).
                let _ = self.watches.remove(dir.wd);
            }
        }
    }

    pub(super) fn release_app(&mut self, id: u64, app: &mut App) {
        for (number, _) in app.views.drain() {
            self.release(id, number);
        }
        app.tree_dirs.clear();
    }
}
