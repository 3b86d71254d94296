//! Keeping the daemon's threads on one CPU, and its apps on every CPU it was given.
//!
//! Why: the daemon's threads hand work to each other (the async thread to the blocking pool
//! for a spawn, the log thread to the writer, and back), and waking a thread that sleeps on
//! another CPU costs far more than waking one on the same CPU: the other CPU is woken by an
//! interrupt, and on a virtual machine that interrupt goes through the hypervisor. Measured on
//! a 2-CPU virtual machine, two threads passing a byte back and forth through pipes: 38 µs of
//! CPU per wake-up on two CPUs, 2.5 µs on one. A restart hands work between threads about ten
//! times. The daemon needs far less than one CPU (its work is small and comes in bursts), so
//! one CPU costs it nothing, and the kernel moves the apps, which are not pinned, off a CPU it
//! keeps busy.
//!
//! The CPUs the daemon was given are remembered: every process it starts is given them back
//! before it execs (see `spawn.rs`), so apps run wherever the system would have run them.

//!
//! Linux only: the portable backend leaves threads and apps wherever the system puts them
//! (macOS has no affinity call; its scheduler keeps related threads together itself).

#[cfg(target_os = "linux")]
pub use pinned::keep_threads_on_one_cpu;
#[cfg(target_os = "linux")]
pub(crate) use pinned::{give_back_cpus, give_back_cpus_here, pin_again};

#[cfg(not(target_os = "linux"))]
pub use unpinned::keep_threads_on_one_cpu;
#[cfg(not(target_os = "linux"))]
pub(crate) use unpinned::{give_back_cpus, give_back_cpus_here, pin_again};

/// Run `work` with this thread on every CPU the daemon was given, then keep it on its one CPU
/// again: for work that reads how many CPUs there are (`instances: "max"`, Rust's and Node's
/// `availableParallelism` read the thread's own set) or starts a program that does (the Node
/// that evaluates an ecosystem file).
pub fn on_every_cpu<R>(work: impl FnOnce() -> R) -> R {
    let pinned = give_back_cpus_here().ok().flatten();
    let result = work();
    if let Some(pinned) = pinned {
        pin_again(&pinned);
    }
    result
}

/// Have `command`'s process given back the CPUs the daemon was given, before it execs (a
/// health check's command).
pub fn give_apps_their_cpus(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the child between fork and exec; it makes one system call on
    // memory prepared before the fork, allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(|| {
            give_back_cpus();
            Ok(())
        });
    }
}

/// Nothing is pinned: what the portable backend's functions do.
#[cfg(not(target_os = "linux"))]
mod unpinned {
    use std::io;

    /// No CPU set to remember.
    pub(crate) type CpuSet = ();

    /// See the Linux version: threads are never pinned here.
    pub fn keep_threads_on_one_cpu() -> io::Result<Option<usize>> {
        Ok(None)
    }

    pub(crate) fn give_back_cpus_here() -> io::Result<Option<CpuSet>> {
        Ok(None)
    }

    pub(crate) fn pin_again(_: &CpuSet) {}

    pub(crate) fn give_back_cpus() {}
}

#[cfg(target_os = "linux")]
mod pinned {
    use rustix::thread::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
    use std::io;
    use std::sync::OnceLock;

    /// The CPUs the daemon was given, which its apps get back.
    static GIVEN: OnceLock<CpuSet> = OnceLock::new();

    /// Keep this thread, and every thread it creates from now on, on one of the CPUs it may use:
    /// the one it runs on. Call once, at start, before the daemon creates its threads. Returns the
    /// CPU, or None when there is only one to use.
    pub fn keep_threads_on_one_cpu() -> io::Result<Option<usize>> {
        if crate::platform::portable() {
            return Ok(None);
        }
        let given = sched_getaffinity(None)?;
        if given.count() < 2 {
            return Ok(None);
        }
        let here = sched_getcpu();
        let Some(cpu) = std::iter::once(here)
            .chain((0..CpuSet::MAX_CPU).rev())
            .find(|&cpu| cpu < CpuSet::MAX_CPU && given.is_set(cpu))
        else {
            return Ok(None);
        };
        let mut one = CpuSet::new();
        one.set(cpu);
        GIVEN.get_or_init(|| given);
        sched_setaffinity(None, &one)?;
        Ok(Some(cpu))
    }

    /// Give this thread back the CPUs the daemon was given: before it execs a program in its
    /// place (`kelpie update`), which is then given them as this one was. Returns the CPUs it
    /// had, to keep it on them again if the exec fails (None when nothing changed).
    pub(crate) fn give_back_cpus_here() -> io::Result<Option<CpuSet>> {
        let Some(given) = GIVEN.get() else {
            return Ok(None);
        };
        let had = sched_getaffinity(None)?;
        sched_setaffinity(None, given)?;
        Ok(Some(had))
    }

    /// Keep this thread on `pinned` again (after [`give_back_cpus_here`]).
    pub(crate) fn pin_again(pinned: &CpuSet) {
        let _ = sched_setaffinity(None, pinned);
    }

    /// In a child between clone and exec: give it back the CPUs the daemon was given. A raw system
    /// call on memory prepared before the clone: nothing allocates, nothing takes a lock.
    pub(crate) fn give_back_cpus() {
        if let Some(given) = GIVEN.get() {
            let _ = sched_setaffinity(None, given);
        }
    }
}
