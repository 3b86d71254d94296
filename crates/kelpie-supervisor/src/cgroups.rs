//! A cgroup per app process, when the daemon can create cgroups (cgroup v2, and the right to
//! write in its own cgroup: root, or a delegated systemd unit). Each process joins its cgroup
//! before it execs, so the cgroup holds everything the app ever starts: its memory and CPU are
//! read from two files, and a stop that SIGKILLs the cgroup leaves nothing behind, even a process
//! that left the app's process group with `setsid`. Without cgroups, the daemon falls back to
//! process groups and the /proc walk.
//!
//! Layout: `<the daemon's cgroup>/kelpie-<daemon pid>/<pm_id>.<n>`, one directory per process
//! (a reload runs two processes of one instance at once).
//!
//! A process that ended and left nothing in its cgroup leaves it as a spare for its instance's
//! next process (a restart), instead of the removal and the creation of a directory, which cost
//! a crash loop about a tenth of its CPU (the kernel makes and unmakes each controller's files).
//! A spare is taken only when it is as a new one would be: nothing in it, no OOM kill counted
//! in it, next to no memory still charged to it (the page cache its last process filled); one
//! not taken within a second or two is removed by the monitor's `tidy`.
//!
//! `max_processes` is the pids controller's `pids.max` of that cgroup. Where cgroup v2 does not
//! offer the pids controller but a cgroup v1 hierarchy of it is mounted (a "hybrid" machine),
//! the process also joins a cgroup of the same name in that hierarchy, which holds the limit.

use kelpie_sys::cgroup::{self, Cgroup};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The daemon's cgroups (cheap to clone); `None` inside when they cannot be used.
#[derive(Clone, Default)]
pub struct Cgroups {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    base: Cgroup,
    /// The memory controller is enabled for our cgroups: they can be read for sampling.
    memory: bool,
    /// Where `max_processes` is set.
    pids: Pids,
    next: AtomicU64,
    /// Cgroups of processes that are gone but were not empty yet when dropped: removed later.
    leftovers: Mutex<Vec<Cgroup>>,
    /// Empty cgroups of processes that ended, by instance, for its next process.
    spares: Mutex<HashMap<u32, Spare>>,
}

/// An empty cgroup kept for an instance's next process.
struct Spare {
    cgroup: Cgroup,
    /// Its `pids.max`, as its last process had it.
    pids_max: Option<u32>,
    /// A `tidy` saw it already: the next one removes it.
    seen: bool,
}

/// The most memory a spare may still have charged to it (`memory.current`: kernel objects and
/// the page cache its last process filled) to be given to the next process, which would
/// otherwise start out counted with it.
const SPARE_MEMORY_MAX: u64 = 256 << 10;

impl Cgroups {
    /// Set up `kelpie-<pid>` in the daemon's own cgroup, or say (in the daemon log) why the
    /// daemon goes without. Blocking (file work): call it off the async workers.
    pub fn setup() -> Cgroups {
        let Some(own) = cgroup::own_cgroup_dir() else {
            crate::daemon_log!(
                "cgroups: none (no cgroup v2 hierarchy, or the portable backend); sampling processes, and max_processes is not enforced"
            );
            return Cgroups::default();
        };
        remove_stale(&own);
        let base = match create_base(&own) {
            Ok(base) => base,
            Err(e) => {
                crate::daemon_log!(
                    "cgroups: cannot create one in {} ({e}); sampling /proc instead",
                    own.display()
                );
                return Cgroups::default();
            }
        };
        // Memory accounting needs the controller enabled down to our cgroups; CPU time is kept
        // by cgroup v2 itself.
        let memory = cgroup::enable_controller(&own, "memory")
            && cgroup::enable_controller(base.path(), "memory");
        let pids = Pids::find(&own, &base);
        crate::daemon_log!(
            "cgroups: one per app process under {}{}{}",
            base.path().display(),
            if memory {
                ""
            } else {
                " (no memory controller there: memory is read from /proc)"
            },
            pids.describe()
        );
        Cgroups {
            inner: Some(Arc::new(Inner {
                base,
                memory,
                pids,
                next: AtomicU64::new(0),
                leftovers: Mutex::new(Vec::new()),
                spares: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// The cgroups of the daemon this one replaced in place (`kelpie update`, same pid): its
    /// base directory and how far its numbering went.
    pub fn resume(handed: HandedCgroups) -> Cgroups {
        crate::daemon_log!(
            "cgroups: one per app process under {} (kept from the previous program)",
            handed.base.display()
        );
        Cgroups {
            inner: Some(Arc::new(Inner {
                base: Cgroup::at(handed.base),
                memory: handed.memory,
                pids: handed.pids,
                next: AtomicU64::new(handed.next),
                leftovers: Mutex::new(Vec::new()),
                spares: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// What the next program needs to go on with these cgroups. The spares go: the next
    /// program does not know them.
    pub(crate) fn hand_over(&self) -> Option<HandedCgroups> {
        let inner = self.inner.as_ref()?;
        inner.remove_spares(|_| true);
        Some(HandedCgroups {
            base: inner.base.path().to_path_buf(),
            memory: inner.memory,
            pids: inner.pids.clone(),
            next: inner.next.load(Ordering::Relaxed),
        })
    }

    /// The cgroup at `path` of a process handed over by the previous program.
    pub(crate) fn adopt(&self, path: PathBuf) -> Option<ProcessCgroup> {
        let inner = self.inner.as_ref()?;
        Some(ProcessCgroup {
            cgroup: Cgroup::at(path),
            legacy_pids: None,
            owner: inner.clone(),
            spare_for: None,
            handed_over: false,
            removed: false,
        })
    }

    /// A cgroup for a process of instance `pm_id`, holding at most `max_processes`: the spare
    /// its last process left when it fits, else a new one; `None` without cgroups (or if this
    /// one cannot be created: the process then runs without, as everywhere before cgroups).
    /// Blocking (file work).
    pub(crate) fn for_process(
        &self,
        pm_id: u32,
        max_processes: Option<u32>,
    ) -> Option<ProcessCgroup> {
        let inner = self.inner.as_ref()?;
        if let Some(spare) = inner.take_spare(pm_id, max_processes) {
            return Some(ProcessCgroup {
                cgroup: spare,
                legacy_pids: None,
                owner: inner.clone(),
                spare_for: Some((pm_id, max_processes)),
                handed_over: false,
                removed: false,
            });
        }
        let n = inner.next.fetch_add(1, Ordering::Relaxed);
        let name = format!("{pm_id}.{n}");
        let cgroup = match Cgroup::create(inner.base.path().join(&name)) {
            Ok(cgroup) => cgroup,
            Err(e) => {
                crate::daemon_log!("cgroups: cannot create one for id {pm_id}: {e}");
                return None;
            }
        };
        let mut process = ProcessCgroup {
            cgroup,
            legacy_pids: None,
            owner: inner.clone(),
            spare_for: Some((pm_id, max_processes)),
            handed_over: false,
            removed: false,
        };
        if let Some(max) = max_processes {
            let limited = match &inner.pids {
                Pids::Unified => process.cgroup.set_pids_max(Some(max)),
                Pids::Legacy(dir) => Cgroup::create(dir.join(&name)).and_then(|legacy| {
                    let set = legacy.set_pids_max(Some(max));
                    process.legacy_pids = Some(legacy);
                    set
                }),
                Pids::Unavailable => Err(std::io::Error::other("no pids controller")),
            };
            if let Err(e) = limited {
                crate::daemon_log!(
                    "cgroups: cannot set max_processes {max} for id {pm_id} ({e}); it runs without"
                );
            }
        }
        Some(process)
    }

    /// The daemon's own directory, which holds every app process's cgroup.
    pub(crate) fn base_path(&self) -> Option<&std::path::Path> {
        self.inner.as_ref().map(|inner| inner.base.path())
    }

    /// Whether the cgroups account memory (and so can replace the /proc walk for sampling).
    pub(crate) fn account_memory(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| inner.memory)
    }

    /// Remove the cgroups of gone processes that were not empty when dropped, and the spares
    /// no process took since the last call (the monitor's, about once a second). Blocking
    /// (cheap).
    pub(crate) fn tidy(&self) {
        let Some(inner) = &self.inner else { return };
        inner.remove_spares(|spare| std::mem::replace(&mut spare.seen, true));
        inner.remove_leftovers();
    }

    /// At exit, once every app is stopped: remove what is left, then the daemon's directory.
    pub fn finish(&self) {
        if let Some(inner) = &self.inner {
            inner.remove_spares(|_| true);
            inner.remove_leftovers();
            let _ = inner.base.remove();
            if let Pids::Legacy(dir) = &inner.pids {
                let _ = Cgroup::at(dir.clone()).remove();
            }
        }
    }
}

impl Inner {
    /// The spare left for `pm_id`, made to hold at most `max_processes`, if there is one and it
    /// is as a new cgroup would be (see the module's note). One that is not goes to the
    /// leftovers.
    fn take_spare(&self, pm_id: u32, max_processes: Option<u32>) -> Option<Cgroup> {
        let spare = self.spares.lock().ok()?.remove(&pm_id)?;
        // A limit in the v1 hierarchy needs its twin there, which a spare does not keep.
        let limit_fits = match (&self.pids, max_processes) {
            (Pids::Legacy(_), Some(_)) => false,
            (Pids::Unified, max) if max != spare.pids_max => spare.cgroup.set_pids_max(max).is_ok(),
            _ => true,
        };
        // Nothing is in it: its release read that, and nothing joins an empty cgroup of ours.
        let as_new = limit_fits
            && (!self.memory
                || (spare.cgroup.oom_kills() == Some(0)
                    && spare
                        .cgroup
                        .memory_bytes()
                        .is_some_and(|bytes| bytes <= SPARE_MEMORY_MAX)));
        if as_new {
            return Some(spare.cgroup);
        }
        if let Ok(mut leftovers) = self.leftovers.lock() {
            leftovers.push(spare.cgroup);
        }
        None
    }

    /// Keep `cgroup`, emptied, for `pm_id`'s next process; one kept already is removed.
    fn keep_spare(&self, pm_id: u32, cgroup: Cgroup, pids_max: Option<u32>) {
        let spare = Spare {
            cgroup,
            pids_max,
            seen: false,
        };
        let replaced = match self.spares.lock() {
            Ok(mut spares) => spares.insert(pm_id, spare),
            Err(_) => Some(spare),
        };
        if let Some(replaced) = replaced {
            self.remove_later_if_busy(replaced.cgroup);
        }
    }

    /// Remove the spares `expired` says are due.
    fn remove_spares(&self, mut expired: impl FnMut(&mut Spare) -> bool) {
        let gone: Vec<Cgroup> = match self.spares.lock() {
            Ok(mut spares) => {
                let due: Vec<u32> = spares
                    .iter_mut()
                    .filter_map(|(pm_id, spare)| expired(spare).then_some(*pm_id))
                    .collect();
                due.iter()
                    .filter_map(|pm_id| spares.remove(pm_id))
                    .map(|spare| spare.cgroup)
                    .collect()
            }
            Err(_) => return,
        };
        for cgroup in gone {
            self.remove_later_if_busy(cgroup);
        }
    }

    /// Remove `cgroup`, or leave it to `tidy` while a process is still in it.
    fn remove_later_if_busy(&self, cgroup: Cgroup) {
        if cgroup.remove().is_err() {
            if let Ok(mut leftovers) = self.leftovers.lock() {
                leftovers.push(cgroup);
            }
        }
    }

    fn remove_leftovers(&self) {
        if let Ok(mut leftovers) = self.leftovers.lock() {
            leftovers.retain(|cgroup| cgroup.remove().is_err() && cgroup.path().exists());
        }
    }
}

/// Where the pids controller is, for `max_processes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pids {
    /// Nowhere: `max_processes` cannot be enforced.
    #[default]
    Unavailable,
    /// Enabled for our cgroup v2 directories.
    Unified,
    /// In this `kelpie-<pid>` directory of the cgroup v1 pids hierarchy.
    Legacy(PathBuf),
}

impl Pids {
    fn find(own: &std::path::Path, base: &Cgroup) -> Pids {
        if cgroup::enable_controller(own, "pids") && cgroup::enable_controller(base.path(), "pids")
        {
            return Pids::Unified;
        }
        let Some(legacy_own) = cgroup::own_v1_dir("pids") else {
            return Pids::Unavailable;
        };
        remove_stale(&legacy_own);
        match create_base(&legacy_own) {
            Ok(legacy) => Pids::Legacy(legacy.path().to_path_buf()),
            Err(e) => {
                crate::daemon_log!(
                    "cgroups: cannot create one in {} ({e}): max_processes cannot be enforced",
                    legacy_own.display()
                );
                Pids::Unavailable
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Pids::Unavailable => "; no pids controller: max_processes is not enforced".into(),
            Pids::Unified => String::new(),
            Pids::Legacy(dir) => format!("; max_processes in {} (cgroup v1)", dir.display()),
        }
    }
}

/// The daemon's cgroups as handed to the program that replaces it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HandedCgroups {
    /// `<own>/kelpie-<pid>`.
    pub base: PathBuf,
    /// Whether memory is accounted there.
    pub memory: bool,
    /// Where `max_processes` is set (absent from a program that had no such option).
    #[serde(default)]
    pub pids: Pids,
    /// The next process cgroup's number.
    pub next: u64,
}

/// The cgroup of one process; removed when dropped (later, if it is not empty yet).
pub(crate) struct ProcessCgroup {
    cgroup: Cgroup,
    /// Its cgroup in the v1 pids hierarchy, holding `max_processes` there.
    legacy_pids: Option<Cgroup>,
    owner: Arc<Inner>,
    /// The instance whose next process may take it once emptied, and its `max_processes`
    /// (`pids.max`); `None` for one adopted from the previous program.
    spare_for: Option<(u32, Option<u32>)>,
    /// Its process now belongs to the next program, and so does the cgroup.
    handed_over: bool,
    /// It was removed, or kept as a spare, already (see [`ProcessCgroup::release_if_empty`]).
    removed: bool,
}

impl ProcessCgroup {
    /// Give it to the next program: its path, and nothing removed here.
    pub(crate) fn hand_over(mut self) -> PathBuf {
        self.handed_over = true;
        self.cgroup.path().to_path_buf()
    }

    /// Let it go now if no process is left in it: kept as a spare for its instance's next
    /// process, or removed (the kernel refuses to remove a cgroup that still holds one).
    /// Whether it is gone. A cgroup with a twin in the v1 pids hierarchy is left to its drop.
    pub(crate) fn release_if_empty(&mut self) -> bool {
        if self.removed || self.handed_over || self.legacy_pids.is_some() {
            return self.removed;
        }
        self.removed = match self.spare_for {
            // One read instead of the removal: whether the kernel still counts a process in it.
            Some((pm_id, pids_max)) if !self.cgroup.populated() => {
                self.owner.keep_spare(pm_id, self.cgroup.clone(), pids_max);
                true
            }
            _ => self.cgroup.remove().is_ok(),
        };
        self.removed
    }

    /// The cgroup.
    pub(crate) fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }

    /// Where its process is put when it starts: the directory of its cgroup, which it is
    /// created in, and the `cgroup.procs` of the v1 pids hierarchy's cgroup when
    /// `max_processes` is set there, which it joins before it execs. Nothing if they cannot
    /// be opened (the process then runs without, as everywhere before cgroups).
    pub(crate) fn placement(&self) -> (Option<OwnedFd>, Vec<OwnedFd>) {
        let legacy: std::io::Result<Vec<_>> = self
            .legacy_pids
            .iter()
            .map(Cgroup::procs_for_joining)
            .collect();
        match (kelpie_sys::open_cgroup_dir(self.cgroup.path()), legacy) {
            (Ok(dir), Ok(legacy)) => (Some(dir), legacy),
            _ => (None, Vec::new()),
        }
    }
}

impl Drop for ProcessCgroup {
    fn drop(&mut self) {
        if self.handed_over || self.removed {
            return;
        }
        for cgroup in std::iter::once(&self.cgroup).chain(self.legacy_pids.as_ref()) {
            self.owner.remove_later_if_busy(cgroup.clone());
        }
    }
}

/// Remove the `kelpie-<pid>` cgroups of daemons that are gone (killed with -9), with their
/// empty process cgroups. Non-empty ones (processes still running) are left alone.
/// `kelpie-<pid>`, created by us. When it exists (stale ones of dead pids are removed first),
/// another daemon with our pid has it: one that is pid 1 of another namespace in the same
/// cgroup. Ours then gets a random suffix, so that no cgroup is ever shared.
fn create_base(own: &std::path::Path) -> std::io::Result<Cgroup> {
    let pid = std::process::id();
    let plain = own.join(format!("kelpie-{pid}"));
    let path = match std::fs::create_dir(&plain) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let tagged = own.join(format!("kelpie-{pid}-{:x}", crate::clock::daemon_tag()));
            std::fs::create_dir(&tagged)?;
            tagged
        }
        created => created.map(|()| plain)?,
    };
    Ok(Cgroup::at(path))
}

fn remove_stale(own: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(own) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kelpie-"))
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if kelpie_sys::pid_alive(pid) {
            continue;
        }
        let dir: PathBuf = entry.path();
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                let _ = Cgroup::at(child.path()).remove();
            }
        }
        let _ = Cgroup::at(dir).remove();
    }
}
