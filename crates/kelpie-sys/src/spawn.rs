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
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// `CLONE_INTO_CGROUP` (Linux 5.7); not in the libc crate.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Set once the kernel has refused `CLONE_INTO_CGROUP` as unknown: the migration is used from
/// then on without trying again.
static NO_CLONE_INTO_CGROUP: AtomicBool = AtomicBool::new(false);

/// `struct clone_args` of clone3(2), up to `cgroup` (size 88, "CLONE_ARGS_SIZE_VER2").
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
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
    pub fn new(
        program: &Path,
        argv: &[String],
        env: &[(String, String)],
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
        let null = || -> io::Result<OwnedFd> {
            Ok(OwnedFd::from(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")?,
            ))
        };
        let stdin = null()?;
        let stdout = match stdout {
            Some(fd) => fd,
            None => null()?,
        };
        let stderr = match stderr {
            Some(fd) => fd,
            None => null()?,
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
        })
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

    /// Start it. Returns once it has exec'd, or with the error that stopped it (the child is
    /// then reaped).
    pub fn spawn(mut self) -> io::Result<Spawned> {
        let into_cgroup = self.cgroup.is_some() && !NO_CLONE_INTO_CGROUP.load(Ordering::Relaxed);
        match self.clone_and_exec(into_cgroup) {
            Err(e) if into_cgroup && refuses_into_cgroup(&e) => {
                if matches!(e.raw_os_error(), Some(libc::E2BIG | libc::EINVAL)) {
                    NO_CLONE_INTO_CGROUP.store(true, Ordering::Relaxed);
                }
                self.clone_and_exec(false)
            }
            other => other,
        }
    }

    fn clone_and_exec(&mut self, into_cgroup: bool) -> io::Result<Spawned> {
        // Without CLONE_INTO_CGROUP the child moves itself: open the directory's cgroup.procs.
        let mut migrate = None;
        if let (false, Some(dir)) = (into_cgroup, &self.cgroup) {
            migrate = Some(open_at(
                dir,
                c"cgroup.procs",
                libc::O_WRONLY | libc::O_CLOEXEC,
            )?);
        }
        let (error_read, error_write) = pipe_cloexec()?;
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
        // SAFETY: clone3(2) with a fully initialised clone_args of the size we pass, no
        // CLONE_VM and no stack: the child gets a copy of this address space and returns here
        // with 0, like fork(2). The kernel writes the pidfd into `pidfd`, a live local.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &mut args as *mut CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if ret == 0 {
            // The child: never returns.
            let error = self.in_child(migrate.as_ref().map(AsRawFd::as_raw_fd));
            report_and_exit(error_write.as_raw_fd(), error);
        }
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(error_write);
        let pid = u32::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: with CLONE_PIDFD the kernel stored a new descriptor (close-on-exec) in
        // `pidfd`; it is ours alone.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        match read_child_error(&error_read) {
            None => Ok(Spawned {
                pid,
                pidfd,
                into_cgroup,
            }),
            Some(error) => {
                reap(pid);
                Err(error)
            }
        }
    }

    /// In the child: everything between the clone and the exec. Returns only on failure.
    fn in_child(&mut self, migrate: Option<RawFd>) -> io::Error {
        // SAFETY (for every call below): only async-signal-safe system calls on descriptors
        // and buffers prepared before the clone; nothing allocates, nothing takes a lock.
        unsafe {
            // Signals: the daemon ignores SIGPIPE and may block others; the app starts clean.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            for (fd, target) in [
                (self.stdin.as_raw_fd(), 0),
                (self.stdout.as_raw_fd(), 1),
                (self.stderr.as_raw_fd(), 2),
            ] {
                if libc::dup2(fd, target) < 0 {
                    return io::Error::last_os_error();
                }
            }
            if libc::chdir(self.cwd.as_ptr()) < 0 {
                return io::Error::last_os_error();
            }
            if libc::setpgid(0, 0) < 0 {
                return io::Error::last_os_error();
            }
            // Joining a cgroup needs the daemon's privileges: before the identity switch.
            for procs in migrate
                .iter()
                .copied()
                .chain(self.join.iter().map(AsRawFd::as_raw_fd))
            {
                if libc::write(procs, b"0".as_ptr().cast(), 1) < 0 {
                    return io::Error::last_os_error();
                }
            }
            if let Some(nice) = self.nice {
                if libc::setpriority(libc::PRIO_PROCESS, 0, nice) < 0 {
                    return io::Error::last_os_error();
                }
            }
            if let Some(identity) = &self.identity {
                // Raw calls: this process has one thread, whatever glibc remembers.
                let groups: &[libc::gid_t] = &identity.groups;
                if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
                    || libc::syscall(libc::SYS_setgid, identity.gid) < 0
                {
                    return io::Error::last_os_error();
                }
                if let Some(uid) = identity.uid {
                    if libc::syscall(libc::SYS_setuid, uid) < 0 {
                        return io::Error::last_os_error();
                    }
                }
            }
            if let Some(limit) = &self.nofile {
                libc::setrlimit(libc::RLIMIT_NOFILE, limit);
            }
        }
        self.exec.exec_in_child()
    }
}

/// Whether a clone3 failure with `CLONE_INTO_CGROUP` may be that flag's (an old kernel: E2BIG,
/// EINVAL; a cgroup that cannot take processes that way: EBUSY, EOPNOTSUPP...) rather than the
/// spawn's: anything but a lack of memory or processes.
fn refuses_into_cgroup(error: &io::Error) -> bool {
    !matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::ENOMEM))
}

fn open_at(dir: &OwnedFd, name: &std::ffi::CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: openat(2) with a live directory descriptor and a NUL-terminated name.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open a cgroup's directory for [`Spawn::in_cgroup`].
pub fn open_cgroup_dir(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: open(2) of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2(2) writes two descriptors into a live array of two.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two new descriptors, ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child: send the error's number to the parent and exit.
fn report_and_exit(pipe: RawFd, error: io::Error) -> ! {
    let code: i32 = error.raw_os_error().unwrap_or(libc::EINVAL);
    let bytes = code.to_ne_bytes();
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is a live local.
    unsafe {
        libc::write(pipe, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(127)
    }
}

/// In the parent: end-of-file means the child exec'd (the pipe is close-on-exec); four bytes
/// are the error that stopped it.
fn read_child_error(pipe: &OwnedFd) -> Option<io::Error> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < bytes.len() {
        // SAFETY: read(2) into the unfilled rest of a live local buffer.
        let n = unsafe {
            libc::read(
                pipe.as_raw_fd(),
                bytes[got..].as_mut_ptr().cast(),
                bytes.len() - got,
            )
        };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return Some(io::Error::last_os_error()),
        }
    }
    match got {
        0 => None,
        4 => Some(io::Error::from_raw_os_error(i32::from_ne_bytes(bytes))),
        _ => Some(io::Error::other("the new process failed before exec")),
    }
}

/// Collect a child that failed before its exec.
fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid(2) of our own child into a live local; it has exited or is exiting.
    unsafe {
        while libc::waitpid(pid as libc::pid_t, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sh() -> std::path::PathBuf {
        crate::resolve_program("sh", std::env::var("PATH").ok().as_deref()).expect("sh")
    }

    fn wait(spawned: &Spawned) -> i32 {
        let mut status = 0;
        // SAFETY: waitpid of the test's own child into a live local.
        unsafe { libc::waitpid(spawned.pid as libc::pid_t, &mut status, 0) };
        status
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
                ("A".into(), "b".into()),
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
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
            &[],
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
            &[],
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
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let mut spawn = Spawn::new(
            &sh(),
            &[
                "sh".into(),
                "-c".into(),
                "cut -d' ' -f19 /proc/self/stat".into(),
            ],
            &[("PATH".into(), std::env::var("PATH").unwrap_or_default())],
            Path::new("/"),
            (Some(OwnedFd::from(writer)), None),
            Vec::new(),
            false,
        )
        .expect("prepare");
        spawn.nice_and_identity(Some(7), None);
        let spawned = spawn.spawn().expect("spawn");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        wait(&spawned);
        assert_eq!(text.trim(), "7");
    }

    /// With cgroup v2 and the right to create a cgroup (root), the child is in it from its
    /// first instruction. Elsewhere the test checks nothing it can't, and says so (CI is root).
    #[test]
    fn the_child_starts_in_its_cgroup() {
        let Some(own) = crate::cgroup::own_cgroup_dir() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "no cgroup v2 hierarchy here"
            );
            return;
        };
        let Ok(cgroup) = crate::cgroup::Cgroup::create(
            own.join(format!("kelpie-sys-test-spawn-{}", std::process::id())),
        ) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot create a cgroup here"
            );
            return;
        };
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let mut spawn = Spawn::new(
            &sh(),
            &[
                "sh".into(),
                "-c".into(),
                "grep '^0::' /proc/self/cgroup".into(),
            ],
            &[("PATH".into(), std::env::var("PATH").unwrap_or_default())],
            Path::new("/"),
            (Some(OwnedFd::from(writer)), None),
            Vec::new(),
            false,
        )
        .expect("prepare");
        spawn.in_cgroup(open_cgroup_dir(cgroup.path()).expect("open the cgroup"));
        let spawned = spawn.spawn().expect("spawn");
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        wait(&spawned);
        let name = cgroup.path().file_name().and_then(|n| n.to_str());
        assert!(
            name.is_some_and(|name| text.trim().ends_with(name)),
            "{text}"
        );
        assert!(
            spawned.into_cgroup,
            "this kernel ({}) has CLONE_INTO_CGROUP",
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default()
        );
        cgroup.remove().expect("rmdir the empty cgroup");
    }
}
