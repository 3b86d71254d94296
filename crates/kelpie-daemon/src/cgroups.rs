//! A cgroup per app process, when the daemon can create cgroups (cgroup v2, and the right to
//! write in its own cgroup: root, or a delegated systemd unit). Each process joins its cgroup
//! before it execs, so the cgroup holds everything the app ever starts: its memory and CPU are
//! read from two files, and a stop that SIGKILLs the cgroup leaves nothing behind, even a process
//! that left the app's process group with `setsid`. Without cgroups, the daemon falls back to
//! process groups and the /proc walk.
//!
//! Layout: `<the daemon's cgroup>/kelpie-<daemon pid>/<pm_id>.<n>`, one directory per process
//! (a reload runs two processes of one instance at once).

use kelpie_sys::cgroup::{self, Cgroup};
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
    next: AtomicU64,
    /// Cgroups of processes that are gone but were not empty yet when dropped: removed later.
    leftovers: Mutex<Vec<Cgroup>>,
}

impl Cgroups {
    /// Set up `kelpie-<pid>` in the daemon's own cgroup, or say (in the daemon log) why the
    /// daemon goes without. Blocking (file work): call it off the async workers.
    pub fn setup() -> Cgroups {
        let Some(own) = cgroup::own_cgroup_dir() else {
            crate::daemon_log!("cgroups: no cgroup v2 hierarchy; sampling /proc instead");
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
        crate::daemon_log!(
            "cgroups: one per app process under {}{}",
            base.path().display(),
            if memory {
                ""
            } else {
                " (no memory controller there: memory is read from /proc)"
            }
        );
        Cgroups {
            inner: Some(Arc::new(Inner {
                base,
                memory,
                next: AtomicU64::new(0),
                leftovers: Mutex::new(Vec::new()),
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
                next: AtomicU64::new(handed.next),
                leftovers: Mutex::new(Vec::new()),
            })),
        }
    }

    /// What the next program needs to go on with these cgroups.
    pub fn hand_over(&self) -> Option<HandedCgroups> {
        let inner = self.inner.as_ref()?;
        Some(HandedCgroups {
            base: inner.base.path().to_path_buf(),
            memory: inner.memory,
            next: inner.next.load(Ordering::Relaxed),
        })
    }

    /// The cgroup at `path` of a process handed over by the previous program.
    pub fn adopt(&self, path: PathBuf) -> Option<ProcessCgroup> {
        let inner = self.inner.as_ref()?;
        Some(ProcessCgroup {
            cgroup: Cgroup::at(path),
            owner: inner.clone(),
            handed_over: false,
        })
    }

    /// A new cgroup for a process of instance `pm_id`; `None` without cgroups (or if this one
    /// cannot be created: the process then runs without, as everywhere before cgroups).
    pub fn for_process(&self, pm_id: u32) -> Option<ProcessCgroup> {
        let inner = self.inner.as_ref()?;
        let n = inner.next.fetch_add(1, Ordering::Relaxed);
        let path = inner.base.path().join(format!("{pm_id}.{n}"));
        match Cgroup::create(path) {
            Ok(cgroup) => Some(ProcessCgroup {
                cgroup,
                owner: inner.clone(),
                handed_over: false,
            }),
            Err(e) => {
                crate::daemon_log!("cgroups: cannot create one for id {pm_id}: {e}");
                None
            }
        }
    }

    /// Whether the cgroups account memory (and so can replace the /proc walk for sampling).
    pub fn account_memory(&self) -> bool {
        self.inner.as_ref().is_some_and(|inner| inner.memory)
    }

    /// Remove the cgroups of gone processes that were not empty when dropped. Blocking (cheap).
    pub fn tidy(&self) {
        let Some(inner) = &self.inner else { return };
        let Ok(mut leftovers) = inner.leftovers.lock() else {
            return;
        };
        leftovers.retain(|cgroup| cgroup.remove().is_err() && cgroup.path().exists());
    }

    /// At exit, once every app is stopped: remove what is left, then the daemon's directory.
    pub fn finish(&self) {
        self.tidy();
        if let Some(inner) = &self.inner {
            let _ = inner.base.remove();
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
    /// The next process cgroup's number.
    pub next: u64,
}

/// The cgroup of one process; removed when dropped (later, if it is not empty yet).
pub struct ProcessCgroup {
    cgroup: Cgroup,
    owner: Arc<Inner>,
    /// Its process now belongs to the next program, and so does the cgroup.
    handed_over: bool,
}

impl ProcessCgroup {
    /// Give it to the next program: its path, and nothing removed here.
    pub fn hand_over(mut self) -> PathBuf {
        self.handed_over = true;
        self.cgroup.path().to_path_buf()
    }

    /// The cgroup.
    pub fn cgroup(&self) -> &Cgroup {
        &self.cgroup
    }
}

impl Drop for ProcessCgroup {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        if self.cgroup.remove().is_err() {
            if let Ok(mut leftovers) = self.owner.leftovers.lock() {
                leftovers.push(self.cgroup.clone());
            }
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
