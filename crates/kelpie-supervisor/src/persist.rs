//! Durable writes, off the async workers.
//!
//! A dedicated thread owns every write of `state.json` and of the dump. State writes queue up;
//! when several are waiting only the newest is written, and every waiter is answered after it
//! is on disk.

mod write_error;

use crate::atomic::{atomic_write, atomic_write_keeping};
use crate::dump::{self, DumpFile};
use crate::state::StateFile;
use kelpie_proto::Home;
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;
use write_error::Unreadable;
pub(crate) use write_error::WriteError;

/// Answer to a write of the state or the configuration store: on disk, or why not.
pub(crate) type Ack = oneshot::Sender<Result<(), WriteError>>;

/// Answer to a `save`: what was saved (a message for people), or why not.
pub(crate) type DumpAck = oneshot::Sender<Result<String, dump::DumpError>>;

enum Job {
    State {
        state: StateFile,
        ack: Option<Ack>,
    },
    SaveDump {
        dump: DumpFile,
        force: bool,
        ack: DumpAck,
    },
    Conf {
        text: String,
        ack: Ack,
    },
}

/// A job, and the paused clock of the in-process tests held until it is done (see
/// [`crate::clock::Held`]; nothing in the daemon).
struct Queued(Job, crate::clock::Held);

/// Which exact process a pid is (its start time in clock ticks after boot), if it runs.
pub(crate) type StartTicks = fn(u32) -> Option<u64>;

/// The system's answer, from `/proc/<pid>/stat`.
pub fn start_ticks_from_proc(pid: u32) -> Option<u64> {
    kelpie_sys::sample_process(pid).map(|sample| sample.start_ticks)
}

/// Handle to the persister thread.
#[derive(Clone)]
pub struct Persister {
    tx: mpsc::Sender<Queued>,
    /// How long the last state write took (µs): reading the processes' start times,
    /// serializing, writing. It grows with the number of apps.
    last_write_us: Arc<AtomicU64>,
}

impl Persister {
    /// Start the thread for `home`. Each state written records its processes' start times as
    /// `start_ticks` tells them ([`start_ticks_from_proc`] in the daemon; the in-process
    /// tests' fake pids must never be looked up in /proc).
    pub fn start(home: Home, start_ticks: StartTicks) -> std::io::Result<Persister> {
        let (tx, rx) = mpsc::channel();
        let last_write_us = Arc::new(AtomicU64::new(0));
        let cost = last_write_us.clone();
        std::thread::Builder::new()
            .name("kelpie-persist".into())
            .spawn(move || persist_loop(&home, &rx, start_ticks, &cost))?;
        Ok(Persister { tx, last_write_us })
    }

    /// How long the last state write took.
    pub(crate) fn last_write(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.last_write_us.load(Ordering::Relaxed))
    }

    fn queue(&self, job: Job) {
        // A send only fails when the thread is gone, which only happens at exit.
        let _ = self.tx.send(Queued(job, crate::clock::hold()));
    }

    /// Write `state`; `ack` is answered once it is on disk.
    pub(crate) fn write_state(&self, state: StateFile, ack: Option<Ack>) {
        self.queue(Job::State { state, ack });
    }

    /// Write the configuration store (`module_conf.json`). Writes happen in the order asked,
    /// so the file always ends as the newest store.
    pub(crate) fn write_conf(&self, text: String, ack: Ack) {
        self.queue(Job::Conf { text, ack });
    }

    /// Write the dump (keeping the previous one as `.bak`).
    pub(crate) fn save_dump(&self, dump: DumpFile, force: bool, ack: DumpAck) {
        self.queue(Job::SaveDump { dump, force, ack });
    }
}

/// How soon a state write that failed (home removed, read-only, full) is tried again when
/// nothing newer comes.
const RETRY_STATE: std::time::Duration = std::time::Duration::from_secs(1);

fn persist_loop(
    home: &Home,
    rx: &mpsc::Receiver<Queued>,
    start_ticks: StartTicks,
    last_write_us: &AtomicU64,
) {
    // The newest state that could not be written, tried again until it is on disk.
    let mut unwritten: Option<StateFile> = None;
    let mut known_starts = KnownStarts::default();
    loop {
        let first = match &unwritten {
            Some(_) => match rx.recv_timeout(RETRY_STATE) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(job) => Some(job),
                Err(_) => return,
            },
        };
        let mut jobs: Vec<Queued> = first.into_iter().collect();
        jobs.extend(rx.try_iter());
        let mut latest_state = None;
        let mut state_acks = Vec::new();
        // Let go (of the tests' clock) once the batch is done.
        let mut held = Vec::with_capacity(jobs.len());
        for Queued(job, hold) in jobs {
            held.push(hold);
            match job {
                Job::State { state, ack } => {
                    latest_state = Some(state);
                    state_acks.extend(ack);
                }
                Job::SaveDump { dump, force, ack } => {
                    let _ = ack.send(dump::save(home, &dump, force));
                }
                Job::Conf { text, ack } => {
                    let path = home.conf_file();
                    let written =
                        atomic_write(&path, text.as_bytes()).map_err(|e| WriteError::io(&path, e));
                    let _ = ack.send(written);
                }
            }
        }
        let retrying = latest_state.is_none();
        let Some(mut state) = latest_state.or_else(|| unwritten.take()) else {
            continue;
        };
        let began = std::time::Instant::now();
        known_starts.fill(&mut state, start_ticks);
        let path = home.state_file();
        let result = state
            .to_json()
            .map_err(|e| WriteError::Encode(Arc::new(e)))
            .and_then(|bytes| {
                write_state_file(home, &bytes, !state.apps.is_empty())
                    .map_err(|e| WriteError::io(&path, e))
            })
            .or_else(|e| empty_state_without_space(home, &state, e));
        match &result {
            // Said once, not at every retry.
            Err(e) if !retrying && unwritten.is_none() => {
                crate::daemon_log!("{e}; trying again every second");
            }
            Err(_) => {}
            Ok(_) if retrying || unwritten.is_some() => {
                crate::daemon_log!("wrote {} again", path.display());
            }
            Ok(_) => {}
        }
        let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        last_write_us.store(took, Ordering::Relaxed);
        unwritten = result.is_err().then_some(state);
        for ack in state_acks {
            let _ = ack.send(result.clone());
        }
        kelpie_sys::release_free_memory();
    }
}

/// Write `state.json`, keeping the state it replaces as `state.json.bak`: a hard link to the
/// old file, so it costs no copy and no space, which becomes the backup only once the new state
/// is in place ([`atomic_write_keeping`]): a write that fails (a full disk) leaves both files as
/// they were, never one file that a write into `state.json` in place would corrupt twice.
/// A new daemon that cannot read `state.json` recovers from it and copies it back in place
/// ([`load_state`]). With no `state.json` to replace (that copy failed, or the user removed
/// the file), the backup stays: it is the last good state until this write is. A state with no
/// `apps` keeps no backup: after `kill` or `delete all`, what the user removed never comes back.
fn write_state_file(home: &Home, bytes: &[u8], apps: bool) -> std::io::Result<()> {
    let (path, backup) = (home.state_file(), home.state_backup());
    if apps {
        atomic_write_keeping(&path, bytes, &backup)
    } else {
        let _ = fs::remove_file(&backup);
        atomic_write(&path, bytes)
    }
}

/// A state with no apps (after `kill` or `delete all`) that could not be written (a full
/// disk) is kept by removing the file instead, which needs no space: a missing state file is
/// read as no apps, so the next daemon does not bring back what the user removed (nor does it
/// look at the backup, which is removed too).
fn empty_state_without_space(
    home: &Home,
    state: &StateFile,
    error: WriteError,
) -> Result<(), WriteError> {
    if !state.apps.is_empty() {
        return Err(error);
    }
    let _ = std::fs::remove_file(home.state_backup());
    match std::fs::remove_file(home.state_file()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(error),
    }
}

/// Which exact process each pid is (its start time), as recorded in the last state written:
/// looked up in /proc once per process, not once per process at every write (a write of
/// 3 000 apps would otherwise read 3 000 files).
#[derive(Default)]
struct KnownStarts(HashMap<(u32, u32, u64), Option<u64>>);

impl KnownStarts {
    /// Record which exact process each pid is, so a later daemon never mistakes a reused pid for
    /// one of its apps. Reads /proc, which is why it happens here and not in the actor. A
    /// process is known by its instance, pid and start time in the daemon's records: a pid
    /// reused by the instance's next process is looked up again.
    fn fill(&mut self, state: &mut StateFile, start_ticks: StartTicks) {
        let mut now = HashMap::with_capacity(state.apps.len());
        for app in &mut state.apps {
            app.pid_start_ticks = app.state.pid.and_then(|pid| {
                let key = (app.pm_id, pid, app.state.started_at_ms);
                let ticks = match self.0.get(&key) {
                    Some(known) => *known,
                    None => start_ticks(pid),
                };
                now.insert(key, ticks);
                ticks
            });
        }
        self.0 = now;
    }
}

/// Load `state.json`. A missing file is no apps. A file that cannot be read or parsed (empty,
/// truncated, garbage, a directory) is moved aside (never overwritten: it may be all the user
/// has) and the state is recovered from `state.json.bak`, the state before its last change; when
/// that cannot be read either, the daemon starts with no apps. Either way the next command is
/// told ([`crate::notices`]).
pub(crate) fn load_state(home: &Home) -> Option<StateFile> {
    let path = home.state_file();
    let problem = match read_state(&path) {
        Ok(state) => return state,
        Err(problem) => problem,
    };
    let aside = crate::atomic::aside_path(&path);
    let moved = match fs::rename(&path, &aside) {
        Ok(()) => format!("moved to {}", aside.display()),
        Err(e) => format!("could not be moved aside: {e}"),
    };
    let backup = home.state_backup();
    match read_state(&backup) {
        Ok(Some(state)) => {
            // The recovered state is put back in place at once: a daemon killed before its
            // first write would otherwise leave no `state.json`, which the next one reads as no
            // apps (an app without a running process, a crash loop between two starts, lost).
            let restored = match fs::read(&backup).and_then(|bytes| atomic_write(&path, &bytes)) {
                Ok(()) => String::new(),
                Err(e) => format!(" (it could not be copied back to {}: {e})", path.display()),
            };
            crate::notices::post(
                home,
                &format!(
                    "{problem} ({moved}); recovered {} instances from {}, the state before its last change{restored}",
                    state.apps.len(),
                    backup.display()
                ),
            );
            Some(state)
        }
        Ok(None) | Err(_) => {
            crate::notices::post(
                home,
                &format!("{problem} ({moved}), and there is no readable {}; starting with no apps but the processes found running", backup.display()),
            );
            None
        }
    }
}

/// The state in `path`: `None` when there is no such file, `Err` when it cannot be read or is
/// not a state.
fn read_state(path: &Path) -> Result<Option<StateFile>, Unreadable> {
    let shown = || path.display().to_string();
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Unreadable::Read {
                path: shown(),
                cause: source,
            })
        }
    };
    StateFile::from_json(&bytes)
        .map(Some)
        .map_err(|source| Unreadable::Invalid {
            path: shown(),
            cause: source,
        })
}

/// Load the configuration store (`module_conf.json`). A file that cannot be read or is not a
/// JSON object is moved aside (the next `kelpie set` must not overwrite what the user wrote)
/// and the store starts empty, saying so in the daemon log.
pub fn load_conf(home: &Home) -> kelpie_config::module_conf::ConfStore {
    let path = home.conf_file();
    match kelpie_config::module_conf::load(&path) {
        Ok(store) => store,
        Err(e) => {
            let aside = crate::atomic::aside_path(&path);
            crate::daemon_log!(
                "{e}; moved to {} and starting with an empty configuration store",
                aside.display()
            );
            let _ = fs::rename(&path, &aside);
            kelpie_config::module_conf::ConfStore::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_conf_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_path_buf());
        assert!(load_conf(&home).is_empty(), "no file: empty");
        fs::write(home.conf_file(), b"{\"a\": {\"b\": \"1\"}}").expect("write");
        assert_eq!(load_conf(&home).len(), 1);
        fs::write(home.conf_file(), b"{\"a\":").expect("write");
        assert!(load_conf(&home).is_empty());
        assert!(!home.conf_file().exists());
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("module_conf.json.corrupt-")),
            "{names:?}"
        );
    }

    fn state_with(next_id: u32) -> StateFile {
        StateFile {
            version: crate::state::STATE_VERSION,
            next_id,
            apps: Vec::new(),
        }
    }

    #[test]
    fn a_corrupt_state_is_recovered_from_the_state_before_its_last_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_path_buf());
        let bytes = |n| serde_json::to_vec(&state_with(n)).expect("json");
        write_state_file(&home, &bytes(7), true).expect("first write");
        write_state_file(&home, &bytes(8), true).expect("second write");
        assert_eq!(load_state(&home).map(|s| s.next_id), Some(8));
        for garbage in [
            &b""[..],
            b"{\"version\":1,\"next_id\":",
            b"\x00\xff garbage",
        ] {
            fs::write(home.state_file(), garbage).expect("corrupt");
            assert_eq!(
                load_state(&home).map(|s| s.next_id),
                Some(7),
                "recovered from the backup"
            );
        }
        // The recovered state was put back in place.
        assert_eq!(
            read_state(&home.state_file())
                .ok()
                .flatten()
                .map(|s| s.next_id),
            Some(7)
        );
        // A directory in its place too.
        fs::remove_file(home.state_file()).expect("rm");
        fs::create_dir(home.state_file()).expect("dir");
        assert_eq!(load_state(&home).map(|s| s.next_id), Some(7));
        let notices = fs::read_to_string(home.notices_file()).expect("the next command is told");
        assert_eq!(notices.lines().count(), 4, "{notices}");
        assert!(notices.contains("recovered 0 instances from"), "{notices}");
        // Without a readable backup: no apps, said too.
        fs::remove_file(home.state_backup()).expect("rm backup");
        fs::write(home.state_file(), b"garbage").expect("corrupt");
        assert!(load_state(&home).is_none());
        let notices = fs::read_to_string(home.notices_file()).expect("notices");
        assert!(notices.contains("there is no readable"), "{notices}");
        // Recovered from the backup, the state is back in place before any write: a daemon
        // killed before its first write leaves the recovered state to the next one.
        write_state_file(&home, &bytes(5), true).expect("write");
        write_state_file(&home, &bytes(6), true).expect("write");
        fs::write(home.state_file(), b"garbage").expect("corrupt");
        assert_eq!(load_state(&home).map(|s| s.next_id), Some(5));
        assert_eq!(
            load_state(&home).map(|s| s.next_id),
            Some(5),
            "read again with no write in between"
        );
        // Recovered from the backup, the next write keeps it: a state corrupted again before a
        // second write still finds it.
        write_state_file(&home, &bytes(11), true).expect("first");
        write_state_file(&home, &bytes(12), true).expect("second");
        fs::write(home.state_file(), b"garbage").expect("corrupt");
        assert_eq!(load_state(&home).map(|s| s.next_id), Some(11));
        write_state_file(&home, &bytes(13), true).expect("the write after a recovery");
        fs::write(home.state_file(), b"garbage again").expect("corrupt again");
        assert_eq!(
            load_state(&home).map(|s| s.next_id),
            Some(11),
            "the backup outlived the first write after the recovery"
        );
        // The backup is a file of its own (a write that fails leaves it so: kelpie_sys's
        // `atomic` tests): a state then corrupted in place is still recovered from it.
        write_state_file(&home, &bytes(14), true).expect("write");
        write_state_file(&home, &bytes(15), true).expect("write");
        fs::write(home.state_file(), b"garbage").expect("corrupt in place");
        assert_eq!(load_state(&home).map(|s| s.next_id), Some(14));
        // An empty state keeps no backup: what the user removed never comes back.
        write_state_file(&home, &bytes(9), true).expect("write");
        write_state_file(&home, &bytes(10), false).expect("write an empty state");
        assert!(!home.state_backup().exists());
    }

    #[test]
    fn a_corrupt_state_file_is_moved_aside_not_lost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::at(dir.path().to_path_buf());
        fs::write(home.state_file(), b"{\"version\":1,\"next_id\":").expect("write");
        assert!(load_state(&home).is_none());
        let names: Vec<String> = fs::read_dir(dir.path())
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n.starts_with("state.json.corrupt-")),
            "{names:?}"
        );
    }
}
