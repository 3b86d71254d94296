//! cgroup v2, for the accounting and the stop of each app process: every process Kelpie starts
//! can be put, before it execs, into a cgroup of its own, which then holds it and everything it
//! starts (even what leaves its process group with `setsid`). Memory and CPU are then read from
//! two small files instead of a walk over /proc, and a stop can kill the whole cgroup.
//!
//! Everything here is plain file work on the cgroup2 filesystem, except the hook that makes a
//! child join its cgroup between fork and exec.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The cgroup2 directory this process is in (`/sys/fs/cgroup/<path from /proc/self/cgroup>`),
/// if the unified hierarchy is mounted.
///
/// `None` on the portable backend: it has no cgroups, whatever the system mounts.
pub fn own_cgroup_dir() -> Option<PathBuf> {
    if crate::platform::portable() {
        return None;
    }
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = membership
        .lines()
        .find_map(|line| line.strip_prefix("0::"))?
        .trim();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // mountinfo: `id parent major:minor root mount-point options ... - fstype source ...`
    let mount_point = mounts.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fstype = after.split_whitespace().next()?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        (fstype == "cgroup2" && fields.get(3) == Some(&"/")).then(|| fields.get(4).copied())?
    })?;
    Some(Path::new(mount_point).join(relative.trim_start_matches('/')))
}

/// The cgroup2 directory process `pid` is in, in the mounted hierarchy (found from this
/// process's own, so both must be in the same cgroup namespace); `None` when it cannot be told.
pub fn cgroup_dir_of(pid: u32) -> Option<PathBuf> {
    if crate::platform::portable() {
        return None;
    }
    let relative = |membership: String| {
        membership
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .map(|path| path.trim().trim_start_matches('/').to_string())
    };
    let own = relative(std::fs::read_to_string("/proc/self/cgroup").ok()?)?;
    let theirs = relative(std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)?;
    let depth = Path::new(&own).components().count();
    let mount = own_cgroup_dir()?.ancestors().nth(depth)?.to_path_buf();
    Some(mount.join(theirs))
}

/// The directory of this process's cgroup in the cgroup v1 hierarchy of `controller` (`pids`),
/// when the machine mounts one (a "hybrid" setup: cgroup v2 without that controller, v1 with it).
pub fn own_v1_dir(controller: &str) -> Option<PathBuf> {
    if crate::platform::portable() {
        return None;
    }
    let has = |list: &str| list.split(',').any(|c| c == controller);
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let relative = membership.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        has(controllers).then(|| path.trim().to_string())
    })?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount_point = mounts.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mut after = after.split_whitespace();
        let (fstype, _source, options) = (after.next()?, after.next()?, after.next()?);
        let fields: Vec<&str> = before.split_whitespace().collect();
        (fstype == "cgroup" && has(options) && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).copied())?
    })?;
    Some(Path::new(mount_point).join(relative.trim_start_matches('/')))
}

/// Enable `controller` (`memory`) for the children of `dir`; false when it cannot be (not
/// available there, or `dir` holds processes and is not the root).
pub fn enable_controller(dir: &Path, controller: &str) -> bool {
    let available = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    if !available.split_whitespace().any(|c| c == controller) {
        return false;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.subtree_control"))
        .and_then(|mut file| file.write_all(format!("+{controller}").as_bytes()))
        .is_ok()
}

/// One cgroup (a directory of the cgroup2 filesystem).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Create the cgroup at `path` (its parent must exist).
    pub fn create(path: PathBuf) -> io::Result<Cgroup> {
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(Cgroup { path }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Cgroup { path }),
            Err(e) => Err(e),
        }
    }

    /// The cgroup at `path`, without creating it.
    pub fn at(path: PathBuf) -> Cgroup {
        Cgroup { path }
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its `cgroup.procs`, opened for a child to join it (see [`crate::Spawn::join_before_exec`]).
    pub fn procs_for_joining(&self) -> io::Result<OwnedFd> {
        // std opens files close-on-exec: the descriptor does not leak into the app.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))?;
        Ok(OwnedFd::from(file))
    }

    /// Resident memory of everything in it (`memory.current`), when the memory controller is
    /// enabled for it.
    pub fn memory_bytes(&self) -> Option<u64> {
        read_number(&self.path.join("memory.current"))
    }

    /// CPU time used by everything that ever ran in it, in microseconds (`cpu.stat`'s
    /// `usage_usec`, kept by cgroup2 itself without any controller).
    pub fn cpu_usec(&self) -> Option<u64> {
        read_short(&self.path.join("cpu.stat"), |stat| {
            stat.lines()
                .find_map(|line| line.strip_prefix("usage_usec "))
                .and_then(|n| n.trim().parse().ok())
        })
    }

    /// How many of its processes the kernel's OOM killer killed (`memory.events`' `oom_kill`),
    /// when the memory controller is enabled for it. Counts kills by any OOM killer (the
    /// machine's as well as a cgroup limit's).
    pub fn oom_kills(&self) -> Option<u64> {
        read_short(&self.path.join("memory.events"), |events| {
            counter(events, "oom_kill")
        })
    }

    /// Allow at most `max` processes (and threads) in it at once (`pids.max`, of the pids
    /// controller): a fork beyond fails with EAGAIN. `None`: no limit.
    pub fn set_pids_max(&self, max: Option<u32>) -> io::Result<()> {
        let value = max.map_or_else(|| "max".to_string(), |max| max.to_string());
        std::fs::write(self.path.join("pids.max"), value)
    }

    /// How many processes (and threads) are in it now (`pids.current`), with the pids
    /// controller.
    pub fn pids_current(&self) -> Option<u64> {
        read_number(&self.path.join("pids.current"))
    }

    /// The pids in it (`cgroup.procs`).
    pub fn pids(&self) -> Vec<u32> {
        // Read by the monitor for each new process (see `read_short`).
        read_short(&self.path.join("cgroup.procs"), |procs| {
            Some(
                procs
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect(),
            )
        })
        .unwrap_or_default()
    }

    /// Whether a process that has not exited is in it (`cgroup.events`' `populated`). A cgroup
    /// that cannot be read counts as empty.
    pub fn populated(&self) -> bool {
        read_short(&self.path.join("cgroup.events"), |events| {
            Some(events.lines().any(|line| line.trim() == "populated 1"))
        })
        .unwrap_or(false)
    }

    /// SIGKILL everything in it: `cgroup.kill` (Linux 5.14), else each pid it lists.
    pub fn kill(&self) {
        let killed = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.kill"))
            .and_then(|mut file| file.write_all(b"1"));
        if killed.is_err() {
            for pid in self.pids() {
                let _ = crate::send_signal(pid, crate::SIGKILL);
            }
        }
    }

    /// Remove it (it must be empty).
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Remove it once the kernel has seen its last process leave (up to 5 s): a process that
    /// was just reaped may still count in `cgroup.events` for a moment, and then `rmdir`
    /// fails with EBUSY.
    #[cfg(test)]
    pub(crate) fn remove_once_empty(&self) -> io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.populated() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.remove()
    }
}

/// The value of `name` in a `name value` per line file (`memory.events`, `/proc/vmstat`).
pub fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// How many processes the kernel's OOM killer has killed on this machine since boot
/// (`/proc/vmstat`'s `oom_kill`, Linux 4.13); `None` when it is not there.
pub fn system_oom_kills() -> Option<u64> {
    use std::io::Read;
    // Read each second, about 6 KiB: into room made for it, in two reads, where
    // `read_to_string` asks its size first (`statx`: 0 for /proc files) and grows its buffer
    // from 32 bytes read by read (twelve system calls in all).
    let mut vmstat = String::with_capacity(VMSTAT_ROOM);
    std::fs::File::open("/proc/vmstat")
        .ok()?
        .take(u64::MAX)
        .read_to_string(&mut vmstat)
        .ok()?;
    counter(&vmstat, "oom_kill")
}

/// Room for `/proc/vmstat` (about 6 KiB on Linux 6; a longer one is read whole all the same).
const VMSTAT_ROOM: usize = 16 * 1024;

fn read_number(path: &Path) -> Option<u64> {
    read_short(path, |text| text.trim().parse().ok())
}

/// Bytes a cgroup file read each second or at each restart is expected to fit in.
const SHORT_FILE_MAX: usize = 1024;

/// `parse` of a cgroup file of a few lines, read in one `read` into a buffer on the stack:
/// `read_to_string` would ask the file's size first (`statx`: 0 for these files) and read a
/// second time to see the end, two system calls more, for files the monitor reads for each app
/// each second and the daemon at each restart. The kernel writes such a file whole at the
/// first read when the buffer holds it; a longer one is read to its end.
fn read_short<T>(path: &Path, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buffer = [0u8; SHORT_FILE_MAX];
    let n = file.read(&mut buffer).ok()?;
    if n < buffer.len() {
        return parse(std::str::from_utf8(&buffer[..n]).ok()?);
    }
    let mut whole = buffer.to_vec();
    file.read_to_end(&mut whole).ok()?;
    parse(std::str::from_utf8(&whole).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_cgroup_is_found_by_our_pid() {
        // Where the unified hierarchy is mounted (it is on the machines the tests run on).
        let own = own_cgroup_dir().expect("a cgroup2 hierarchy");
        assert_eq!(cgroup_dir_of(std::process::id()), Some(own));
        assert_eq!(cgroup_dir_of(u32::MAX), None);
    }

    #[test]
    fn a_short_file_is_read_in_one_read_and_a_longer_one_whole() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path();
        let short = dir.join("short");
        std::fs::write(&short, "populated 1\nfrozen 0\n").expect("write");
        let lines = |text: &str| Some(text.lines().count());
        assert_eq!(read_short(&short, lines), Some(2));
        // Longer than the buffer, and a line across its end.
        let long = dir.join("long");
        let text: String = (0..400).map(|i| format!("key{i} {i}\n")).collect();
        assert!(text.len() > 2 * SHORT_FILE_MAX);
        std::fs::write(&long, &text).expect("write");
        assert_eq!(read_short(&long, |t| Some(t.to_string())), Some(text));
        assert_eq!(read_number(&long), None);
        std::fs::write(&short, "4096\n").expect("write");
        assert_eq!(read_number(&short), Some(4096));
        assert_eq!(read_short(&dir.join("missing"), lines), None);
    }

    #[test]
    fn a_cgroups_pids_are_read_however_many() {
        let temp = tempfile::tempdir().expect("temp dir");
        let cgroup = Cgroup::at(temp.path().to_path_buf());
        assert_eq!(cgroup.pids(), Vec::<u32>::new(), "unreadable: none");
        std::fs::write(temp.path().join("cgroup.procs"), "12\n345\n").expect("write");
        assert_eq!(cgroup.pids(), vec![12, 345]);
        // More than one read's worth.
        let many: Vec<u32> = (100_000..100_400).collect();
        let text: String = many.iter().map(|pid| format!("{pid}\n")).collect();
        assert!(text.len() > SHORT_FILE_MAX);
        std::fs::write(temp.path().join("cgroup.procs"), text).expect("write");
        assert_eq!(cgroup.pids(), many);
    }

    #[test]
    fn counters_are_read_by_name() {
        let events = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(events, "oom_kill"), Some(1));
        assert_eq!(counter(events, "oom"), Some(2));
        assert_eq!(counter(events, "oom_group"), None);
        let vmstat = "nr_free_pages 123\npgfault 99\noom_kill 17\n";
        assert_eq!(counter(vmstat, "oom_kill"), Some(17));
        assert_eq!(counter("oom_kill x\n", "oom_kill"), None);
        assert_eq!(counter("", "oom_kill"), None);
    }

    #[test]
    fn this_machine_counts_oom_kills() {
        // Linux 4.13 and later; the counter only grows.
        let first = system_oom_kills().expect("/proc/vmstat has oom_kill");
        assert!(system_oom_kills().is_some_and(|second| second >= first));
    }

    /// A cgroup for a test, when this machine lets us create one (root with cgroup2).
    fn test_cgroup(name: &str) -> Option<Cgroup> {
        let dir = own_cgroup_dir()?;
        Cgroup::create(dir.join(format!("kelpie-sys-test-{name}-{}", std::process::id()))).ok()
    }

    #[test]
    fn a_child_joins_its_cgroup_before_exec_and_a_kill_empties_it() {
        let Some(cgroup) = test_cgroup("join") else {
            kelpie_testkit::skip("cannot create a cgroup here (needs root and cgroup v2)");
            return;
        };
        // The grandchild leaves the process group: still in the cgroup.
        let (mut spawn, reader) =
            crate::spawn::shell_for_test("setsid sleep 30 & grep '^0::' /proc/self/cgroup; wait");
        spawn.join_before_exec(cgroup.procs_for_joining().expect("open procs"));
        let child = spawn.spawn().expect("spawn");
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(reader);
        std::io::BufRead::read_line(&mut reader, &mut line).expect("read");
        let name = cgroup
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?");
        assert!(line.trim().ends_with(name), "{line}");
        assert!(cgroup.populated());
        assert!(cgroup.pids().len() >= 2, "{:?}", cgroup.pids());
        assert!(cgroup.cpu_usec().is_some());
        cgroup.kill();
        let pid = i32::try_from(child.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        rustix::process::waitpid(pid, rustix::process::WaitOptions::empty()).expect("waitpid");
        cgroup.remove_once_empty().expect("rmdir the empty cgroup");
        assert!(!cgroup.path().exists());
    }
}
