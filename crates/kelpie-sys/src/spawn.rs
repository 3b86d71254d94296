//! Starting an app's process: `clone3(2)` straight into its cgroup, then the child's set-up and
//! `execve`, all in one place.
//!
//! Why not std's `Command`: std forks, and a process can then only join its cgroup by writing
//! `cgroup.procs`, a migration that waits for an RCU grace period (~10-15 ms, serialised across
//! every spawn of the machine). `clone3` with `CLONE_INTO_CGROUP` (Linux 5.7, as systemd does it)
//! creates the process in its cgroup: it is there from its first instruction, at no extra cost.
//! The same call returns a pidfd (`CLONE_PIDFD`), which the daemon waits on.
//!
//! Where the kernel lacks `CLONE_INTO_CGROUP` (or refuses it for that cgroup), the child is
//! created without it and writes `cgroup.procs` itself before it execs, as before. A cgroup v1
//! hierarchy (the pids controller of a hybrid machine) can only be joined that way.
//!
//! The child is a copy of a multithreaded process, made without glibc's `fork()`: it may only
//! make async-signal-safe calls that touch no lock and allocate nothing, and it makes the
//! credential changes with raw system calls (glibc's `setuid` would try to tell the parent's
//! other threads). Everything it needs is built before the clone.

use crate::creds::Identity;
use crate::exec::Prepared;
use rustix::fs::{Mode, OFlags};
use rustix::process::Pid;
use std::ffi::CString;
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};

mod child;
#[cfg(target_os = "linux")]
mod clone;
mod fork;
#[cfg(target_os = "linux")]
mod handover;

use child::{block_all_signals, restore_signals};
#[cfg(target_os = "linux")]
pub(crate) use handover::{Descriptors, Parts};

#[cfg(target_os = "linux")]
use clone::{clone_vfork, Child, CloneArgs, NO_CLEAR_SIGHAND};

/// `CLONE_INTO_CGROUP` (Linux 5.7); not in the libc crate.
#[cfg(target_os = "linux")]
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

#[cfg(target_os = "linux")]
/// Set once the kernel has refused `CLONE_INTO_CGROUP` as unknown: the migration is used from
/// then on without trying again.
static NO_CLONE_INTO_CGROUP: AtomicBool = AtomicBool::new(false);

/// `/dev/null`, opened once: each spawn takes a copy of it (one `fcntl`) for its stdin rather
/// than opening it again (a path lookup and a new open file, at each restart of each app).
static DEV_NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();

/// A descriptor of `/dev/null`, read-write, close-on-exec (as std opens files).
fn dev_null() -> io::Result<OwnedFd> {
    if let Some(null) = DEV_NULL.get() {
        return null.try_clone();
    }
    let opened = OwnedFd::from(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?,
    );
    let copy = opened.try_clone()?;
    // Another thread may have opened it meanwhile: that one is kept, this one closed.
    let _ = DEV_NULL.set(opened);
    Ok(copy)
}

/// How an app's process is started (see [`Spawn::spawn`]).
pub struct Spawn {
    exec: Prepared,
    cwd: CString,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    nice: Option<i32>,
    identity: Option<Identity>,
    nofile: Option<libc::rlimit>,
    /// The cgroup v2 directory it is created in.
    cgroup: Option<OwnedFd>,
    /// `cgroup.procs` files it writes itself (v1 hierarchies; v2 where clone3 cannot).
    join: Vec<OwnedFd>,
    /// Copies of the sources of `exec`'s descriptors, when the spawn moved to the spawner
    /// thread's table (see `spawner.rs`): open until the spawn is done.
    #[cfg(target_os = "linux")]
    kept: Vec<OwnedFd>,
}

/// A process started by [`Spawn::spawn`]: the daemon's child, with a pidfd to wait on.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid.
    pub pid: u32,
    /// Readable once it has exited (its status is collected with `waitpid`).
    pub pidfd: OwnedFd,
    /// Whether it was created in its cgroup (`CLONE_INTO_CGROUP`) rather than moved there.
    pub into_cgroup: bool,
}

impl Spawn {
    /// Run `program` (a path: no PATH search here) with exactly `argv` (argv[0] included) and
    /// `env` in `cwd`, its stdin on /dev/null and its stdout/stderr on `stdout`/`stderr`
    /// (`None`: /dev/null), in a process group of its own. Each `(fd, target)` of `fds` is
    /// placed at `target` (3 or more); with `listen_pid`, `LISTEN_PID=<its pid>` is added.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        program: &Path,
        argv: &[String],
        env: &[(K, V)],
        cwd: &Path,
        (stdout, stderr): (Option<OwnedFd>, Option<OwnedFd>),
        fds: Vec<(RawFd, RawFd)>,
        listen_pid: bool,
    ) -> io::Result<Spawn> {
        if fds.iter().any(|(_, target)| *target < 3) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "descriptors 0-2 are stdio",
            ));
        }
        let cwd = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the working directory contains a NUL byte",
            )
        })?;
        let stdin = dev_null()?;
        let stdout = match stdout {
            Some(fd) => fd,
            None => dev_null()?,
        };
        let stderr = match stderr {
            Some(fd) => fd,
            None => dev_null()?,
        };
        Ok(Spawn {
            exec: Prepared::new(program, argv, env, listen_pid, fds)?,
            cwd,
            stdin,
            stdout,
            stderr,
            nice: None,
            identity: None,
            nofile: None,
            cgroup: None,
            join: Vec::new(),
            #[cfg(target_os = "linux")]
            kept: Vec::new(),
        })
    }

    /// Its stdin from `fd` rather than /dev/null (a fork-mode app's FIFO, see
    /// [`crate::open_stdin_fifo`]).
    pub fn stdin_from(&mut self, fd: OwnedFd) {
        self.stdin = fd;
    }

    /// Run at scheduling priority `nice`, then as `identity` (in that order: a negative nice
    /// needs the privileges the switch gives up).
    pub fn nice_and_identity(&mut self, nice: Option<i32>, identity: Option<Identity>) {
        self.nice = nice;
        self.identity = identity;
    }

    /// Give it the soft limit on open descriptors the daemon started with (see
    /// [`crate::raise_fd_limit`]).
    pub fn original_fd_limit(&mut self) {
        self.nofile = crate::limits::original_nofile();
    }

    /// Create it in the cgroup v2 directory `dir` (an `O_PATH` or read-only descriptor).
    pub fn in_cgroup(&mut self, dir: OwnedFd) {
        self.cgroup = Some(dir);
    }

    /// Make it write its pid to this `cgroup.procs` before it execs (a cgroup v1 hierarchy).
    pub fn join_before_exec(&mut self, procs: OwnedFd) {
        self.join.push(procs);
    }

    /// Start it, from the spawner thread (see [`crate::spawner`]: the cost of a spawn does not
    /// grow with the number of descriptors the caller's process holds). Returns once it has
    /// exec'd, or with the error that stopped it (the child is then reaped).
    pub fn spawn(self) -> io::Result<Spawned> {
        #[cfg(target_os = "linux")]
        if !crate::platform::portable() {
            return crate::spawner::spawn(self);
        }
        // Portable: from this thread's table (no other thread can have a table of its own),
        // by fork: see `spawn/fork.rs`.
        self.spawn_here()
    }

    /// [`Spawn::spawn`] from this thread, with this thread's descriptor table.
    pub(crate) fn spawn_here(mut self) -> io::Result<Spawned> {
        if crate::platform::portable() {
            return self.fork_and_exec();
        }
        #[cfg(target_os = "linux")]
        return self.clone_with_fallbacks();
        #[cfg(not(target_os = "linux"))]
        unreachable!("only Linux has a backend besides the portable one")
    }

    /// [`Spawn::spawn_here`] with Linux's clone3, trying again without the flags an older
    /// kernel refuses.
    #[cfg(target_os = "linux")]
    fn clone_with_fallbacks(mut self) -> io::Result<Spawned> {
        let mut into_cgroup =
            self.cgroup.is_some() && !NO_CLONE_INTO_CGROUP.load(Ordering::Relaxed);
        loop {
            match self.clone_and_exec(into_cgroup) {
                Err(e) if into_cgroup && refuses_into_cgroup(&e) => {
                    if matches!(e.raw_os_error(), Some(libc::E2BIG | libc::EINVAL)) {
                        NO_CLONE_INTO_CGROUP.store(true, Ordering::Relaxed);
                    }
                    into_cgroup = false;
                }
                // A kernel before 5.5 does not know CLONE_CLEAR_SIGHAND: the child resets
                // the handlers itself.
                Err(e)
                    if e.raw_os_error() == Some(libc::EINVAL)
                        && !NO_CLEAR_SIGHAND.load(Ordering::Relaxed) =>
                {
                    NO_CLEAR_SIGHAND.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn clone_and_exec(&mut self, into_cgroup: bool) -> io::Result<Spawned> {
        // Without CLONE_INTO_CGROUP the child moves itself: open the directory's cgroup.procs.
        let mut migrate = None;
        if let (false, Some(dir)) = (into_cgroup, &self.cgroup) {
            migrate = Some(open_at(
                dir,
                c"cgroup.procs",
                OFlags::WRONLY | OFlags::CLOEXEC,
            )?);
        }
        let mut pidfd: RawFd = -1;
        let mut args = CloneArgs {
            flags: libc::CLONE_PIDFD as u64,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        if into_cgroup {
            if let Some(dir) = &self.cgroup {
                args.flags |= CLONE_INTO_CGROUP;
                args.cgroup = dir.as_raw_fd() as u64;
            }
        }
        let mut child = Child {
            spawn: self,
            migrate: migrate.as_ref().map(AsRawFd::as_raw_fd),
            error: 0,
        };
        let pid = clone_vfork(&mut args, &mut child)?;
        // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor (close-on-exec) in
        // `pidfd`; it is ours alone.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        if child.error != 0 {
            reap(pid);
            return Err(io::Error::from_raw_os_error(child.error));
        }
        Ok(Spawned {
            pid,
            pidfd,
            into_cgroup,
        })
    }
}

/// Whether a clone3 failure with `CLONE_INTO_CGROUP` may be that flag's (an old kernel: E2BIG,
/// EINVAL; a cgroup that cannot take processes that way: EBUSY, EOPNOTSUPP...) rather than the
/// spawn's: anything but a lack of memory or processes.
#[cfg(target_os = "linux")]
fn refuses_into_cgroup(error: &io::Error) -> bool {
    !matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM))
}

#[cfg(target_os = "linux")]
fn open_at(dir: &OwnedFd, name: &std::ffi::CStr, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Open a cgroup's directory for [`Spawn::in_cgroup`].
pub fn open_cgroup_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Collect a child that failed before its exec (it has exited or is exiting).
fn reap(pid: u32) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    let _ = rustix::io::retry_on_intr(|| {
        rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
    });
}

/// For tests: `sh -c script` with only `$PATH`, in `/`, its stdout a pipe whose reading end is
/// returned.
#[cfg(test)]
pub(crate) fn shell_for_test(script: &str) -> (Spawn, std::io::PipeReader) {
    let sh = crate::resolve_program("sh", std::env::var("PATH").ok().as_deref()).expect("sh");
    let (reader, writer) = std::io::pipe().expect("pipe");
    let spawn = Spawn::new(
        &sh,
        &["sh".into(), "-c".into(), script.into()],
        &[("PATH", std::env::var("PATH").unwrap_or_default())],
        Path::new("/"),
        (Some(OwnedFd::from(writer)), None),
        Vec::new(),
        false,
    )
    .expect("prepare");
    (spawn, reader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sh() -> std::path::PathBuf {
        crate::resolve_program("sh", std::env::var("PATH").ok().as_deref()).expect("sh")
    }

    fn wait(spawned: &Spawned) -> i32 {
        let pid = i32::try_from(spawned.pid).ok().and_then(Pid::from_raw);
        rustix::process::waitpid(pid, rustix::process::WaitOptions::empty())
            .expect("waitpid")
            .map_or(0, |(_, status)| status.as_raw())
    }

    #[test]
    fn the_child_gets_its_stdio_directory_group_and_descriptors() {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let (extra_read, extra_write) = std::io::pipe().expect("pipe");
        let script = r#"echo "$LISTEN_PID $$ $(pwd) $A $(ps -o pgid= $$ | tr -d ' ')"; cat <&0; echo to-fd5 >&5"#;
        let spawn = Spawn::new(
            &sh(),
            &["sh".into(), "-c".into(), script.into()],
            &[
                ("A", "b".to_string()),
                ("PATH", std::env::var("PATH").unwrap_or_default()),
            ],
            Path::new("/tmp"),
            (Some(OwnedFd::from(writer)), None),
            vec![(extra_write.as_raw_fd(), 5)],
            true,
        )
        .expect("prepare");
        let spawned = spawn.spawn().expect("spawn");
        drop(extra_write);
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(wait(&spawned), 0);
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 5, "{text:?}");
        assert_eq!(words[0], spawned.pid.to_string(), "LISTEN_PID is its pid");
        assert_eq!(words[1], spawned.pid.to_string());
        assert_eq!(words[2], "/tmp");
        assert_eq!(words[3], "b");
        assert_eq!(
            words[4],
            spawned.pid.to_string(),
            "a process group of its own"
        );
        let mut extra = String::new();
        let mut extra_read = extra_read;
        extra_read.read_to_string(&mut extra).expect("read fd 5");
        assert_eq!(extra.trim(), "to-fd5");
    }

    #[test]
    fn a_failure_before_exec_is_the_spawns_error() {
        let missing = Spawn::new(
            Path::new("/nonexistent/prog"),
            &["prog".into()],
            &[] as &[(&str, &str)],
            Path::new("/"),
            (None, None),
            Vec::new(),
            false,
        )
        .expect("prepare")
        .spawn()
        .expect_err("no such program");
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        let bad_dir = Spawn::new(
            &sh(),
            &["sh".into(), "-c".into(), "true".into()],
            &[] as &[(&str, &str)],
            Path::new("/nonexistent/dir"),
            (None, None),
            Vec::new(),
            false,
        )
        .expect("prepare")
        .spawn()
        .expect_err("no such directory");
        assert_eq!(bad_dir.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_nice_child_runs_at_that_priority() {
        let (mut spawn, mut reader) = shell_for_test("cut -d' ' -f19 /proc/self/stat");
        spawn.nice_and_identity(Some(7), None);
        let spawned = spawn.spawn().expect("spawn");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        wait(&spawned);
        assert_eq!(text.trim(), "7");
    }

    /// With cgroup v2 and the right to create a cgroup (root), the child is in it from its
    /// first instruction. Elsewhere the test is skipped, and says so (CI is root, and fails it).
    #[test]
    fn the_child_starts_in_its_cgroup() {
        let Some(own) = crate::cgroup::own_cgroup_dir() else {
            kelpie_testkit::skip("no cgroup v2 hierarchy here");
            return;
        };
        let Ok(cgroup) = crate::cgroup::Cgroup::create(
            own.join(format!("kelpie-sys-test-spawn-{}", std::process::id())),
        ) else {
            kelpie_testkit::skip("cannot create a cgroup here (needs root)");
            return;
        };
        // A child that prints its cgroup v2 line, started in `cgroup`.
        let run = |cgroup: &crate::cgroup::Cgroup| -> (Spawned, String) {
            let (mut spawn, mut reader) = shell_for_test("grep '^0::' /proc/self/cgroup");
            spawn.in_cgroup(open_cgroup_dir(cgroup.path()).expect("open the cgroup"));
            let spawned = spawn.spawn().expect("spawn");
            let mut text = String::new();
            reader.read_to_string(&mut text).expect("read");
            wait(&spawned);
            (spawned, text)
        };
        let name = cgroup.path().file_name().and_then(|n| n.to_str());
        let (spawned, text) = run(&cgroup);
        assert!(
            name.is_some_and(|name| text.trim().ends_with(name)),
            "{text}"
        );
        assert!(
            spawned.into_cgroup,
            "this kernel ({}) has CLONE_INTO_CGROUP",
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()
        );
        // Where the kernel cannot create it there, the child moves itself in.
        NO_CLONE_INTO_CGROUP.store(true, Ordering::Relaxed);
        let (spawned, text) = run(&cgroup);
        NO_CLONE_INTO_CGROUP.store(false, Ordering::Relaxed);
        assert!(!spawned.into_cgroup);
        assert!(
            name.is_some_and(|name| text.trim().ends_with(name)),
            "{text}"
        );
        cgroup.remove_once_empty().expect("rmdir the empty cgroup");
    }

    #[test]
    fn each_child_s_stdin_is_dev_null_from_one_kept_close_on_exec_copy() {
        // The child's stdin, and its stderr (none given: /dev/null too), from both threads.
        let script = "readlink /proc/$$/fd/0 /proc/$$/fd/2";
        let run = |spawn: fn(Spawn) -> io::Result<Spawned>| {
            let (spawn_it, mut reader) = shell_for_test(script);
            let spawned = spawn(spawn_it).expect("spawn");
            let mut text = String::new();
            reader.read_to_string(&mut text).expect("read");
            assert_eq!(wait(&spawned), 0);
            text.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let null = vec!["/dev/null".to_string(); 2];
        assert_eq!(run(Spawn::spawn_here), null);
        assert_eq!(run(Spawn::spawn_here), null, "again, from the kept copy");
        assert_eq!(run(crate::spawner::from_the_spawner), null);
        let kept = DEV_NULL.get().expect("opened once and kept");
        let flags = rustix::io::fcntl_getfd(kept).expect("its flags");
        assert!(
            flags.contains(rustix::io::FdFlags::CLOEXEC),
            "never inherited by an app or the next program"
        );
    }

    #[test]
    fn no_descriptor_of_the_parent_reaches_the_child_from_either_thread() {
        let (read, write) = std::io::pipe().expect("pipe");
        // SAFETY: dup(2) of a descriptor this test owns; the copy (without close-on-exec, as
        // one a daemon inherited would be) is owned by `leaky` from here.
        let leaky = unsafe { OwnedFd::from_raw_fd(libc::dup(read.as_raw_fd())) };
        assert!(leaky.as_raw_fd() >= 0, "dup");
        let n = leaky.as_raw_fd();
        let script = format!("test -e /proc/$$/fd/{n} && echo leaked || echo clean");
        let run = |spawn: fn(Spawn) -> io::Result<Spawned>| {
            let (spawn_it, mut reader) = shell_for_test(&script);
            let spawned = spawn(spawn_it).expect("spawn");
            let mut text = String::new();
            reader.read_to_string(&mut text).expect("read");
            assert_eq!(wait(&spawned), 0);
            text.trim().to_string()
        };
        assert_eq!(run(Spawn::spawn_here), "clean", "spawned from this thread");
        assert_eq!(
            run(crate::spawner::from_the_spawner),
            "clean",
            "spawned from the spawner thread"
        );
        drop((leaky, write));
    }

    #[test]
    fn a_lower_open_files_limit_for_the_child_does_not_fail_a_spawn_from_a_full_table() {
        // Fill this table's low numbers, as a daemon running a few dozen apps does: the copies
        // the child makes while placing its descriptors land above them.
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let filler: Vec<OwnedFd> = (0..200)
            .map(|_| OwnedFd::from(null.try_clone().expect("dup")))
            .collect();
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let (extra_read, extra_write) = std::io::pipe().expect("pipe");
        let mut spawn = Spawn::new(
            &sh(),
            &[
                "sh".into(),
                "-c".into(),
                "ulimit -n; echo to-fd5 >&5".into(),
            ],
            &[("PATH", std::env::var("PATH").unwrap_or_default())],
            Path::new("/"),
            (Some(OwnedFd::from(writer)), None),
            vec![(extra_write.as_raw_fd(), 5)],
            false,
        )
        .expect("prepare");
        assert!(
            spawn.highest_fd() > 64,
            "the spawn's descriptors sit above the limit"
        );
        let max = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
        spawn.nofile = Some(libc::rlimit {
            rlim_cur: 64,
            rlim_max: max.unwrap_or(libc::RLIM_INFINITY),
        });
        let spawned = spawn.spawn_here().expect("spawn");
        drop(extra_write);
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(wait(&spawned), 0);
        assert_eq!(text.trim(), "64");
        let mut extra = String::new();
        let mut extra_read = extra_read;
        extra_read.read_to_string(&mut extra).expect("read fd 5");
        assert_eq!(extra.trim(), "to-fd5");
        drop(filler);
    }

    #[test]
    fn without_clear_sighand_the_child_resets_the_handlers_itself() {
        NO_CLEAR_SIGHAND.store(true, Ordering::Relaxed);
        let (spawn, mut reader) = shell_for_test("echo ok");
        let spawned = spawn.spawn();
        NO_CLEAR_SIGHAND.store(false, Ordering::Relaxed);
        let spawned = spawned.expect("spawn");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        assert_eq!(wait(&spawned), 0);
        assert_eq!(text.trim(), "ok");
    }
}
