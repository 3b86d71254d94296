//! Watching apps' files (`watch`): a change under a watched path restarts the app.
//!
//! One [`WatchService`] serves the whole daemon: one inotify instance and one thread for every
//! watched app. inotify instances are scarce (`fs.inotify.max_user_instances`, 128 by default,
//! shared by every program of the user) and a daemon may watch many apps, so apps do not get one
//! each. The thread owns all the state; callers send it commands over a channel and wake it
//! through a socket, so there is no lock. It waits in poll(), never on the async runtime (no
//! tokio: it was written when the daemon's one way to register a descriptor with tokio's reactor
//! was `AsyncFd::register`, which is `unsafe`; `process.rs` has a safe one since, tokio's pipe
//! receiver).
//!
//! # What is watched
//!
//! Each watched path is either a file or a directory, watched with everything under it. inotify
//! watches directories, not trees: every directory of a tree gets its own watch (one *watch
//! descriptor* per directory inode for the whole instance), and directories created later are
//! added as their creation is seen. Apps that watch the same directory share its descriptor,
//! counted by the apps using it; it is removed when the last one stops.
//!
//! A watched path itself is also seen through its parent directory, filtered on its name. That
//! is how a file that an editor replaces by a rename (vim writes a temporary file and renames it
//! over the old one) stays watched: a watch on the file would follow the old inode and go
//! silent. It also catches a watched directory that is replaced (a deploy that swaps `dist` or
//! flips a `current` symlink): the new one is walked and watched.
//!
//! Never watched (neither directories walked nor changes counted): any path component
//! `node_modules` or `.git`; the `never` paths and anything under them, together with the
//! rotated files of a never-watched log file (`<stem>__<time>...`, the names log rotation gives);
//! and the `ignore` globs. A glob without `/` matches any single path component (`*.log`,
//! `tmp`); one with `/` matches the path relative to `cwd` (`src/generated/**`, which also
//! matches the directory `src/generated` itself, so it is not walked), or the absolute path when
//! it starts with `/`. In globs with `/`, `*` stays within one component and `**` crosses any
//! number. The rules apply below the watched paths: a path the app names explicitly is watched
//! even if a glob would match it, unless it is a `never` path (an error).
//!
//! Symbolic links are followed for the watched paths themselves only; inside a tree they are
//! not followed, so a link cannot pull `/` or a loop into the watch.
//!
//! # What counts as a change
//!
//! A file written and closed (`IN_CLOSE_WRITE`: one event per save, once the content is
//! complete, rather than one per `write()`), and a file or directory created, deleted, or moved
//! in or out. Not counted: reads and opens, and attribute changes (`chmod`, `chown`, times,
//! link counts), which do not change what the app runs; `touch` still counts, as it opens the
//! file for writing. A file kept open and written continuously (a log the app writes itself)
//! counts only when it is closed. Events of files unlinked while open are not reported
//! (`IN_EXCL_UNLINK`). What is found in a directory that appears after the start (made there, or
//! moved in with its content) counts too: it may have been written before the directory's watch
//! was in place. A directory made above a `never` path (the daemon makes a pid file's or a log
//! file's directory as it first writes it) is not a change itself; what is found in it is. When the kernel's event queue overflows, events were lost:
//! every app counts one change (of its first watched path) and its trees are walked again.
//!
//! # Bursts
//!
//! Saving a project touches many files, so changes are gathered into bursts: the first change
//! starts one, and the burst is sent (one [`WatchBurst`]) once no change has been seen for
//! `delay`. So that a file changed without a pause (a generator rewriting it every 100 ms) still
//! restarts the app, a burst is also sent at the latest `hold` after its first change, where
//! `hold` is 10 × `delay` but at most 5 s (and never less than `delay`). The count of changes
//! is a lower bound: the kernel merges identical events that follow each other unread.

#[cfg(target_os = "linux")]
use kelpie_base::daemon_log;
use kelpie_base::tasks;

#[cfg(target_os = "linux")]
use inotify::{EventMask, Inotify, WatchMask};
#[cfg(target_os = "linux")]
use std::collections::HashMap;
#[cfg(target_os = "linux")]
use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
#[cfg(target_os = "linux")]
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
#[cfg(target_os = "linux")]
use std::path::Path;
use std::path::PathBuf;
#[cfg(target_os = "linux")]
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

mod burst;
mod polled;
mod rules;
#[cfg(target_os = "linux")]
mod table;
pub mod watch_error;

pub use watch_error::WatchError;

#[cfg(target_os = "linux")]
use table::{Table, Watcher};

/// A burst is sent at the latest this many `delay`s after its first change...
const HOLD_FACTOR: u32 = 10;
/// ...and at the latest after this long (unless `delay` itself is longer).
const MAX_HOLD: Duration = Duration::from_secs(5);
/// Longer quiet periods are cut to this: waiting a day for quiet is already never restarting,
/// and it keeps deadline arithmetic far from overflowing.
const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);
/// Read buffer for events: room for hundreds of events per read, and always more than the
/// largest single event (header + NAME_MAX + 1), which `read` requires.
#[cfg(target_os = "linux")]
const EVENT_BUFFER: usize = 16 * 1024;
/// Pause after a failed wait or read, so a persistent error is logged once a second, not in a
/// loop.
#[cfg(target_os = "linux")]
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// What to watch for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSettings {
    /// Absolute files or directories (directories with everything under them). A relative path
    /// is taken from `cwd`.
    pub paths: Vec<PathBuf>,
    /// The app's working directory: globs with `/` are relative to it.
    pub cwd: PathBuf,
    /// Globs of paths not to watch (`ignore_watch`).
    pub ignore: Vec<String>,
    /// Absolute paths never watched, nor anything under them: the app's log files (and their
    /// rotated files), its pid files and the daemon's logs directory.
    pub never: Vec<PathBuf>,
    /// Quiet period that ends a burst of changes.
    pub delay: Duration,
}

/// One burst of changes: sent when it is over (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBurst {
    /// The path of the burst's first change.
    pub first_path: PathBuf,
    /// How many changes the burst had (a lower bound: the kernel merges repeated events).
    pub changes: usize,
}

/// Handle on the daemon's file watching thread; cheap to clone. The thread ends when the last
/// handle (service or [`WatchHandle`]) is dropped.
#[derive(Clone)]
pub struct WatchService {
    link: Arc<Link>,
}

/// One app's watch: dropping it stops watching (its inotify watches are removed unless another
/// app uses them) and closes its channel of bursts.
pub struct WatchHandle {
    id: u64,
    link: Arc<Link>,
}

impl std::fmt::Debug for WatchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHandle").field("id", &self.id).finish()
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        // Nothing to do when the thread is gone: its watches went with it.
        self.link.send(Command::Unwatch(self.id));
    }
}

/// The way to the thread: commands, and a socket to wake it. When the last handle drops this,
/// the thread reads end-of-file on the socket and stops.
struct Link {
    commands: std::sync::mpsc::Sender<Command>,
    wake: UnixStream,
}

impl Link {
    /// False when the thread is gone.
    fn send(&self, command: Command) -> bool {
        if self.commands.send(command).is_err() {
            return false;
        }
        // Non-blocking: when the socket is full the thread has wake-ups pending already.
        let _ = (&self.wake).write(&[1]);
        true
    }
}

/// What the service's handles ask of its thread.
enum Command {
    Watch {
        settings: WatchSettings,
        changes: UnboundedSender<WatchBurst>,
        reply: std::sync::mpsc::SyncSender<Result<u64, WatchError>>,
    },
    Unwatch(u64),
    /// How many inotify watches are in place.
    #[cfg(test)]
    Count(std::sync::mpsc::SyncSender<usize>),
}

impl WatchService {
    /// Create the inotify instance and start the thread; with the portable backend, the thread
    /// that walks the trees (`polled.rs`).
    pub fn start() -> io::Result<WatchService> {
        let (wake, woken) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        let (commands, receiver) = std::sync::mpsc::channel();
        #[cfg(target_os = "linux")]
        if !kelpie_sys::platform::portable() {
            let inotify = inotify_instance()?;
            std::thread::Builder::new()
                .name("kelpie-watch".into())
                .spawn(move || serve(inotify, receiver, woken))?;
            return Ok(WatchService {
                link: Arc::new(Link { commands, wake }),
            });
        }
        std::thread::Builder::new()
            .name("kelpie-watch".into())
            .spawn(move || polled::serve(receiver, woken))?;
        Ok(WatchService {
            link: Arc::new(Link { commands, wake }),
        })
    }

    /// Start watching for one app; each burst of changes is sent on `changes`.
    ///
    /// Returns once every watch is in place, so a change made after the return is seen. This
    /// blocks the calling thread while the service walks the trees (quick for a project, longer
    /// for a tree of many thousand directories): call it from a blocking thread
    /// (`spawn_blocking`) when the tree may be big.
    ///
    /// Errors (nothing is left watched): no path, a path that does not exist or cannot be
    /// watched, a `never` path, an invalid glob, the inotify watch limit.
    pub fn watch(
        &self,
        settings: WatchSettings,
        changes: UnboundedSender<WatchBurst>,
    ) -> Result<WatchHandle, WatchError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let command = Command::Watch {
            settings,
            changes,
            reply,
        };
        if !self.link.send(command) {
            return Err(WatchError::Stopped);
        }
        let id = answer.recv().map_err(|_| WatchError::Stopped)??;
        Ok(WatchHandle {
            id,
            link: self.link.clone(),
        })
    }

    /// How many inotify watches are in place, once the commands sent before are done.
    #[cfg(test)]
    fn watch_count(&self) -> usize {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        if !self.link.send(Command::Count(reply)) {
            return 0;
        }
        answer.recv().unwrap_or(0)
    }
}

/// The daemon's one inotify instance.
#[cfg(target_os = "linux")]
fn inotify_instance() -> io::Result<Inotify> {
    Inotify::init().map_err(|e| {
        if e.raw_os_error() == Some(EMFILE) {
            io::Error::new(
                e.kind(),
                "cannot watch files: the limit of inotify instances is reached (raise it \
                 with `sysctl fs.inotify.max_user_instances=1024`)",
            )
        } else {
            io::Error::new(e.kind(), format!("cannot watch files: inotify: {e}"))
        }
    })
}

/// `EMFILE` and `ENOSPC` on Linux (every architecture): the daemon does not link libc directly.
#[cfg(target_os = "linux")]
const EMFILE: i32 = 24;
#[cfg(target_os = "linux")]
const ENOSPC: i32 = 28;

/// The events that count as changes (see the module's documentation), and `IN_EXCL_UNLINK` so
/// that files unlinked while still open report nothing more.
#[cfg(target_os = "linux")]
fn change_mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::EXCL_UNLINK
}

#[cfg(target_os = "linux")]
/// Why inotify refused to watch directory `dir`.
fn add_error(dir: &Path, e: io::Error) -> WatchError {
    let path = dir.display().to_string();
    // inotify_add_watch says ENOSPC when the user's watch limit is reached.
    if is_limit(&e) {
        WatchError::Limit { path }
    } else {
        WatchError::Io { path, cause: e }
    }
}

#[cfg(target_os = "linux")]
fn is_limit(e: &io::Error) -> bool {
    e.raw_os_error() == Some(ENOSPC)
}

#[cfg(target_os = "linux")]
/// One inotify event, copied out of the read buffer.
struct RawEvent {
    wd: i32,
    mask: EventMask,
    name: Option<OsString>,
}

#[cfg(target_os = "linux")]
/// The thread: it sleeps in poll() on the inotify descriptor and the wake-up socket, at most
/// until the next burst is due, so it costs nothing while nothing changes.
fn serve(mut inotify: Inotify, commands: Receiver<Command>, mut woken: UnixStream) {
    let mut watcher = Watcher {
        table: Table {
            watches: inotify.watches(),
            dirs: HashMap::new(),
        },
        apps: HashMap::new(),
        next_id: 1,
    };
    let mut buffer = vec![0u8; EVENT_BUFFER];
    loop {
        let timeout = watcher
            .next_deadline()
            .map(|at| at.saturating_duration_since(Instant::now()));
        let [events_ready, wake_ready] =
            match kelpie_sys::wait_readable_any([inotify.as_fd(), woken.as_fd()], timeout) {
                Ok(ready) => ready,
                Err(e) => {
                    crate::daemon_log!("watch: cannot wait for file events: {e}");
                    #[expect(
                        clippy::disallowed_methods,
                        reason = "the watch thread's own loop: a pause after a failure"
                    )]
                    std::thread::sleep(ERROR_PAUSE);
                    [true, true]
                }
            };
        if wake_ready && !drain(&mut woken) {
            // Every handle is gone: nobody can watch anything any more.
            return;
        }
        // Commands first: a watch asked for is waiting on its answer.
        while let Ok(command) = commands.try_recv() {
            watcher.command(command);
        }
        if events_ready {
            loop {
                match read_events(&mut inotify, &mut buffer) {
                    Ok(events) => watcher.events(events, Instant::now()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        crate::daemon_log!("watch: cannot read file events: {e}");
                        #[expect(
                            clippy::disallowed_methods,
                            reason = "the watch thread's own loop: a pause after a failure"
                        )]
                        std::thread::sleep(ERROR_PAUSE);
                        break;
                    }
                }
            }
        }
        watcher.send_bursts(Instant::now());
    }
}

/// Empty the wake-up socket; false at end-of-file (or a broken socket, which cannot wake the
/// thread any more either).
fn drain(woken: &mut UnixStream) -> bool {
    let mut bytes = [0u8; 64];
    loop {
        match woken.read(&mut bytes) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

#[cfg(target_os = "linux")]
/// Read what is there (the descriptor is non-blocking: `WouldBlock` when nothing is).
fn read_events(inotify: &mut Inotify, buffer: &mut [u8]) -> io::Result<Vec<RawEvent>> {
    let events = inotify.read_events(buffer)?;
    Ok(events
        .map(|event| RawEvent {
            wd: event.wd.get_watch_descriptor_id(),
            mask: event.mask,
            name: event.name.map(OsStr::to_os_string),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::rules::Rules;
    use super::*;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
    use tokio::time::{sleep, timeout};

    const DELAY: Duration = Duration::from_millis(100);

    fn settings(dir: &Path, paths: &[&str]) -> WatchSettings {
        WatchSettings {
            paths: paths.iter().map(|path| dir.join(path)).collect(),
            cwd: dir.to_path_buf(),
            ignore: Vec::new(),
            never: Vec::new(),
            delay: DELAY,
        }
    }

    fn watch(
        service: &WatchService,
        settings: WatchSettings,
    ) -> (WatchHandle, UnboundedReceiver<WatchBurst>) {
        let (tx, rx) = unbounded_channel();
        let handle = service.watch(settings, tx).expect("watch");
        (handle, rx)
    }

    async fn burst(rx: &mut UnboundedReceiver<WatchBurst>) -> WatchBurst {
        timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("a burst within 2 s")
            .expect("the channel is open")
    }

    /// Nothing arrives for `wait` (a closed channel is fine: nothing can arrive).
    async fn quiet(rx: &mut UnboundedReceiver<WatchBurst>, wait: Duration) {
        if let Ok(Some(burst)) = timeout(wait, rx.recv()).await {
            panic!("unexpected {burst:?}");
        }
    }

    /// Append a byte: on ext4, closing a file truncated by the write (`fs::write`) starts its
    /// writeback, which can stall the test for long on a busy disk.
    fn write(path: &Path) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        file.write_all(b"x").expect("write");
    }

    #[tokio::test]
    async fn a_tree_watched_again_right_after_it_was_dropped_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("src")).expect("mkdir");
        let service = WatchService::start().expect("start");
        for round in 0..20 {
            let (handle, mut rx) = watch(&service, settings(dir.path(), &["."]));
            write(&dir.path().join("src").join(format!("a{round}.js")));
            burst(&mut rx).await;
            drop(handle);
            let (_again, mut rx) = watch(&service, settings(dir.path(), &["."]));
            write(&dir.path().join("src").join(format!("b{round}.js")));
            burst(&mut rx).await;
        }
    }

    #[tokio::test]
    async fn a_burst_of_writes_is_one_burst() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app.js");
        write(&file);
        let service = WatchService::start().expect("start");
        let delay = Duration::from_millis(300);
        let mut settings = settings(dir.path(), &["."]);
        settings.delay = delay;
        let (_handle, mut rx) = watch(&service, settings);
        // The writes are one burst as long as no two are a delay apart: a loaded machine can
        // stall the test that long, and then two bursts are right.
        let mut largest_gap = Duration::ZERO;
        let mut last = std::time::Instant::now();
        for _ in 0..50 {
            write(&file);
            largest_gap = largest_gap.max(last.elapsed());
            last = std::time::Instant::now();
            sleep(Duration::from_millis(4)).await;
        }
        let got = burst(&mut rx).await;
        assert_eq!(got.first_path, file);
        assert!(got.changes >= 1);
        if largest_gap < delay {
            quiet(&mut rx, Duration::from_millis(400)).await;
        }
    }

    #[tokio::test]
    async fn a_file_written_without_pause_still_gives_a_burst() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("generated.js");
        let service = WatchService::start().expect("start");
        // Held at most 10 × 50 ms = 500 ms. (A stall of the test over 50 ms between two writes
        // would end the burst sooner, which passes too.)
        let mut settings = settings(dir.path(), &["."]);
        settings.delay = Duration::from_millis(50);
        let (_handle, mut rx) = watch(&service, settings);
        let began = std::time::Instant::now();
        let got = loop {
            write(&file);
            sleep(Duration::from_millis(10)).await;
            if let Ok(got) = rx.try_recv() {
                break got;
            }
            assert!(began.elapsed() < Duration::from_secs(2), "no burst");
        };
        assert_eq!(got.first_path, file);
    }

    #[tokio::test]
    async fn ignored_paths_give_nothing_and_cost_no_watch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("app");
        for sub in [
            "node_modules/lib",
            ".git",
            "build",
            "logs",
            "src/generated",
            "tmp",
            "src",
        ] {
            std::fs::create_dir_all(root.join(sub)).expect("mkdir");
        }
        let service = WatchService::start().expect("start");
        let mut settings = settings(&root, &["."]);
        settings.ignore = vec!["*.tmp".into(), "tmp/".into(), "./src/generated/**".into()];
        settings.never = vec![root.join("logs/app-out.log"), root.join("build")];
        let (_handle, mut rx) = watch(&service, settings);
        // The parent of the watched directory, the directory, logs and src.
        assert_eq!(service.watch_count(), 4);
        for path in [
            "node_modules/x.js",
            "node_modules/lib/y.js",
            ".git/HEAD",
            "notes.tmp",
            "src/generated/api.js",
            "tmp/x",
            "build/out.js",
            "logs/app-out.log",
            "logs/app-out__2026-01-01_00-00-00.log",
        ] {
            write(&root.join(path));
        }
        std::fs::create_dir(root.join("node_modules/new")).expect("mkdir");
        quiet(&mut rx, DELAY * 2).await;
        // Still watching.
        write(&root.join("src/index.js"));
        assert_eq!(burst(&mut rx).await.first_path, root.join("src/index.js"));
        assert_eq!(service.watch_count(), 4);
    }

    #[tokio::test]
    async fn new_directories_are_watched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = WatchService::start().expect("start");
        let (_handle, mut rx) = watch(&service, settings(dir.path(), &["."]));
        std::fs::create_dir(dir.path().join("lib")).expect("mkdir");
        assert_eq!(burst(&mut rx).await.first_path, dir.path().join("lib"));
        write(&dir.path().join("lib/a.js"));
        assert_eq!(burst(&mut rx).await.first_path, dir.path().join("lib/a.js"));
        // A tree moved in with its content, all there before its watches: found by the walk.
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(outside.path().join("deep/er")).expect("mkdir");
        write(&outside.path().join("deep/er/b.js"));
        std::fs::rename(outside.path().join("deep"), dir.path().join("deep")).expect("rename");
        let got = burst(&mut rx).await;
        assert_eq!(got.first_path, dir.path().join("deep"));
        // deep, er, b.js.
        assert_eq!(got.changes, 3, "{got:?}");
        write(&dir.path().join("deep/er/c.js"));
        assert_eq!(
            burst(&mut rx).await.first_path,
            dir.path().join("deep/er/c.js")
        );
        // Gone: its watches go too (the root's parent, the root, lib remain).
        std::fs::remove_dir_all(dir.path().join("deep")).expect("rm");
        burst(&mut rx).await;
        assert_eq!(service.watch_count(), 3);
    }

    #[tokio::test]
    async fn a_file_replaced_by_rename_stays_watched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("server.js");
        write(&file);
        let service = WatchService::start().expect("start");
        let (_handle, mut rx) = watch(&service, settings(dir.path(), &["server.js"]));
        for _ in 0..2 {
            // As vim writes: a new file, renamed over the old one.
            let temporary = dir.path().join(".server.js.swp");
            write(&temporary);
            std::fs::rename(&temporary, &file).expect("rename");
            let got = burst(&mut rx).await;
            assert_eq!(got.first_path, file);
        }
        // Other files of the directory are not the app's business.
        write(&dir.path().join("other.js"));
        quiet(&mut rx, DELAY * 2).await;
    }

    #[tokio::test]
    async fn a_replaced_directory_is_watched_anew() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dist = dir.path().join("dist");
        std::fs::create_dir(&dist).expect("mkdir");
        let service = WatchService::start().expect("start");
        let (_handle, mut rx) = watch(&service, settings(dir.path(), &["dist"]));
        let next = dir.path().join("dist.next");
        std::fs::create_dir(&next).expect("mkdir");
        write(&next.join("main.js"));
        std::fs::rename(&dist, dir.path().join("dist.old")).expect("rename");
        std::fs::rename(&next, &dist).expect("rename");
        assert_eq!(burst(&mut rx).await.first_path, dist);
        write(&dist.join("main.js"));
        let mut got = burst(&mut rx).await;
        if got.first_path == dist {
            // The two renames made two bursts: the test was held up for longer than the delay
            // between them.
            got = burst(&mut rx).await;
        }
        assert_eq!(got.first_path, dist.join("main.js"));
        // The old one is no longer watched.
        write(&dir.path().join("dist.old/x.js"));
        quiet(&mut rx, DELAY * 2).await;
    }

    #[tokio::test]
    async fn a_flipped_symlink_is_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for release in ["v1", "v2"] {
            std::fs::create_dir(dir.path().join(release)).expect("mkdir");
        }
        let current = dir.path().join("current");
        std::os::unix::fs::symlink(dir.path().join("v1"), &current).expect("symlink");
        let service = WatchService::start().expect("start");
        let (_handle, mut rx) = watch(&service, settings(dir.path(), &["current"]));
        write(&dir.path().join("v1/a.js"));
        assert_eq!(burst(&mut rx).await.first_path, current.join("a.js"));
        // As `ln -sfn v2 current` does it: a new link renamed over the old one.
        let next = dir.path().join("current.next");
        std::os::unix::fs::symlink(dir.path().join("v2"), &next).expect("symlink");
        std::fs::rename(&next, &current).expect("rename");
        assert_eq!(burst(&mut rx).await.first_path, current);
        write(&dir.path().join("v2/b.js"));
        assert_eq!(burst(&mut rx).await.first_path, current.join("b.js"));
        write(&dir.path().join("v1/c.js"));
        quiet(&mut rx, DELAY * 2).await;
        // The parent and v2.
        assert_eq!(service.watch_count(), 2);
    }

    #[tokio::test]
    async fn dropping_a_handle_leaves_other_apps_watching() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = WatchService::start().expect("start");
        let (first, mut first_rx) = watch(&service, settings(dir.path(), &["."]));
        let (second, mut second_rx) = watch(&service, settings(dir.path(), &["."]));
        // Shared: the directory and its parent.
        assert_eq!(service.watch_count(), 2);
        drop(first);
        write(&dir.path().join("a.js"));
        assert_eq!(
            burst(&mut second_rx).await.first_path,
            dir.path().join("a.js")
        );
        assert_eq!(first_rx.recv().await, None);
        assert_eq!(service.watch_count(), 2);
        drop(second);
        assert_eq!(service.watch_count(), 0);
    }

    #[tokio::test]
    async fn what_cannot_be_watched_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let service = WatchService::start().expect("start");
        let (tx, _rx) = unbounded_channel();
        let missing = dir.path().join("missing");
        let error = service
            .watch(settings(dir.path(), &[".", "missing"]), tx.clone())
            .expect_err("missing path")
            .to_string();
        assert!(error.contains(&missing.display().to_string()), "{error}");
        assert!(error.contains("does not exist"), "{error}");
        // Nothing is left of the part that had been watched.
        assert_eq!(service.watch_count(), 0);

        let mut bad_glob = settings(dir.path(), &["."]);
        bad_glob.ignore = vec!["src/[".into()];
        let error = service
            .watch(bad_glob, tx.clone())
            .expect_err("glob")
            .to_string();
        assert!(error.contains("src/["), "{error}");

        let mut logs = settings(dir.path(), &["."]);
        logs.never = vec![dir.path().to_path_buf()];
        let error = service
            .watch(logs, tx.clone())
            .expect_err("never")
            .to_string();
        assert!(error.contains("never watched"), "{error}");

        let error = service
            .watch(settings(dir.path(), &[]), tx)
            .expect_err("nothing")
            .to_string();
        assert!(error.contains("no path"), "{error}");
    }

    #[test]
    fn the_watch_limit_is_named() {
        let error = add_error(
            Path::new("/srv/app/src"),
            io::Error::from_raw_os_error(ENOSPC),
        );
        assert!(matches!(error, WatchError::Limit { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("/srv/app/src"), "{message}");
        assert!(message.contains("fs.inotify.max_user_watches"), "{message}");
    }

    #[test]
    fn rules_match_components_paths_and_logs() {
        let settings = WatchSettings {
            paths: vec![PathBuf::from("/srv/app")],
            cwd: PathBuf::from("/srv/app"),
            ignore: vec![
                "*.log".into(),
                "src/*.gen.js".into(),
                "assets/**".into(),
                "/var/cache/**".into(),
            ],
            never: vec![
                PathBuf::from("/srv/app/out.log"),
                PathBuf::from("/srv/logs"),
            ],
            delay: DELAY,
        };
        let rules = Rules::new(&settings).expect("rules");
        let ignored = |path: &str| rules.ignores(Path::new(path), Path::new(path));
        assert!(ignored("/srv/app/node_modules"));
        assert!(ignored("/srv/app/lib/.git"));
        assert!(ignored("/srv/app/lib/debug.log"));
        assert!(ignored("/srv/app/src/api.gen.js"));
        assert!(
            !ignored("/srv/app/src/deep/api.gen.js"),
            "* stays in one component"
        );
        assert!(ignored("/srv/app/assets"));
        assert!(ignored("/srv/app/assets/img/a.png"));
        assert!(ignored("/var/cache/x"));
        assert!(ignored("/srv/logs/kelpie.log"));
        assert!(ignored("/srv/logs"));
        assert!(ignored("/srv/app/out__2026-01-01_00-00-00.log.gz"));
        assert!(!ignored("/srv/app/src/index.js"));
        assert!(!ignored("/srv/app/output.js"));
        assert!(!ignored("/srv/logs-old"));
    }

    #[test]
    fn the_directories_the_projects_gitignore_names_are_not_watched_but_its_files_are() {
        let dir = tempfile::tempdir().expect("tempdir");
        let app = dir.path();
        for made in ["target/debug", "dist", "src/gen", "data"] {
            std::fs::create_dir_all(app.join(made)).expect("mkdir");
        }
        std::fs::write(
            app.join(".gitignore"),
            "# build output\n/target\ndist/\n__pycache__/\nsrc/gen\n.env\n*.log\n!data/\n",
        )
        .expect("write");
        let settings = WatchSettings {
            paths: vec![app.to_path_buf()],
            cwd: app.to_path_buf(),
            ignore: Vec::new(),
            never: Vec::new(),
            delay: DELAY,
        };
        let rules = Rules::new(&settings).expect("rules");
        let ignored = |rel: &str| {
            let path = app.join(rel);
            rules.ignores(&path, &path)
        };
        // (What is under an ignored directory is never reached: the directory is not watched.)
        for build in [
            "target",
            "target/debug/app",
            "dist",
            "lib/__pycache__",
            "src/gen",
        ] {
            assert!(ignored(build), "{build}");
        }
        for source in [
            ".env",
            "server.log",
            "src/index.js",
            "data",
            "lib/target-ish.js",
        ] {
            assert!(!ignored(source), "{source}");
        }
    }
}
