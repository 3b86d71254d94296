//! Starting a process with extra descriptors at fixed numbers and its own pid in its
//! environment, without running unsafe code in the daemon's threads.
//!
//! Socket activation needs the listening socket at fd 3 and `LISTEN_PID` = the child's own
//! pid, which only exists after `fork`. std's `Command` can neither place a descriptor at a
//! given number nor edit the environment in the child, and `setenv` is not async-signal-safe
//! (the daemon is multithreaded). So everything the child needs is built before the fork
//! (program path, argv and envp as C strings, with a zeroed slot for the pid's digits), and a
//! `pre_exec` hook in the child only moves descriptors (and marks the others close-on-exec),
//! writes the digits and calls `execve`:
//! all async-signal-safe, no allocation. std has already set up stdio, the working directory
//! and the process group by then.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

/// The variable whose value the child fills with its own pid.
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

/// Room for a pid's decimal digits (pids fit in 10).
const PID_DIGITS: usize = 10;

/// Everything `execve` needs, built before the fork.
pub(crate) struct Prepared {
    program: CString,
    /// Keeps the argument strings alive for `argv`.
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    /// Environment entries back to back, each NUL-terminated, in one buffer (one allocation
    /// per spawn rather than one per variable); the `LISTEN_PID` one has room for digits.
    env: Vec<u8>,
    envp: Vec<*const libc::c_char>,
    /// Where in `env` the `LISTEN_PID=` entry's digits go, if asked for.
    listen_pid_digits: Option<usize>,
    /// (descriptor in the parent, number it gets in the child).
    fds: Vec<(RawFd, RawFd)>,
    /// Scratch space for the temporary copies made in the child (no allocation there).
    moved: Vec<RawFd>,
}

// SAFETY: the raw pointers point into heap buffers owned by this same value (`_args`, `env`),
// which are never resized after the pointers are taken; the value is only used by the forked
// child, which has a single thread.
unsafe impl Send for Prepared {}
// SAFETY: as above; shared references never write through the pointers.
unsafe impl Sync for Prepared {}

fn c_string(bytes: &[u8], what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte"),
        )
    })
}

impl Prepared {
    pub(crate) fn new<K: AsRef<str>, V: AsRef<str>>(
        program: &Path,
        argv: &[String],
        env: &[(K, V)],
        listen_pid: bool,
        fds: Vec<(RawFd, RawFd)>,
    ) -> io::Result<Prepared> {
        let program = c_string(program.as_os_str().as_bytes(), "the program path")?;
        let args = argv
            .iter()
            .map(|arg| c_string(arg.as_bytes(), "an argument"))
            .collect::<io::Result<Vec<_>>>()?;
        let kept = || {
            env.iter()
                .map(|(key, value)| (key.as_ref(), value.as_ref()))
                .filter(|(key, _)| *key != "LISTEN_PID")
        };
        // The exact size first: the buffer never grows once pointers into it are taken.
        let size = kept()
            .map(|(key, value)| key.len() + value.len() + 2)
            .sum::<usize>()
            + if listen_pid {
                LISTEN_PID_PREFIX.len() + PID_DIGITS + 1
            } else {
                0
            };
        let mut entries = Vec::with_capacity(size);
        let mut starts = Vec::with_capacity(env.len() + 2);
        for (key, value) in kept() {
            if key.contains('\0') || value.contains('\0') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("environment variable `{key}` contains a NUL byte"),
                ));
            }
            starts.push(entries.len());
            entries.extend_from_slice(key.as_bytes());
            entries.push(b'=');
            entries.extend_from_slice(value.as_bytes());
            entries.push(0);
        }
        let listen_pid_digits = listen_pid.then(|| {
            starts.push(entries.len());
            entries.extend_from_slice(LISTEN_PID_PREFIX);
            let digits = entries.len();
            entries.resize(digits + PID_DIGITS + 1, 0);
            digits
        });
        debug_assert_eq!(entries.len(), size);
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = starts
            .iter()
            .map(|start| entries[*start..].as_ptr().cast())
            .collect();
        envp.push(std::ptr::null());
        let moved = vec![-1; fds.len()];
        Ok(Prepared {
            program,
            _args: args,
            argv,
            env: entries,
            envp,
            listen_pid_digits,
            fds,
            moved,
        })
    }

    #[cfg(target_os = "linux")]
    /// How many descriptors are placed in the child.
    pub(crate) fn source_count(&self) -> usize {
        self.fds.len()
    }

    #[cfg(target_os = "linux")]
    /// The descriptors placed in the child, as numbers of the parent's table.
    pub(crate) fn sources(&self) -> Vec<RawFd> {
        self.fds.iter().map(|(source, _)| *source).collect()
    }

    #[cfg(target_os = "linux")]
    /// The same descriptors as numbers of another table (the spawn moved there), in the order
    /// of [`Prepared::sources`].
    pub(crate) fn set_sources(&mut self, sources: &[RawFd]) {
        for ((source, _), new) in self.fds.iter_mut().zip(sources) {
            *source = *new;
        }
    }

    /// Runs in the forked child: place the descriptors, fill in the pid, exec. Returns only on
    /// failure.
    pub(crate) fn exec_in_child(&mut self) -> io::Error {
        if let Err(e) = self.place_descriptors() {
            return e;
        }
        self.exec_placed()
    }

    /// In the child: put each descriptor at its number, and mark every other one above them
    /// close-on-exec. Before a lower open-files limit is set: the copies made on the way take
    /// free numbers of the parent's table, which may be above that limit.
    pub(crate) fn place_descriptors(&mut self) -> Result<(), io::Error> {
        // Copy every source above every target first, so placing one cannot overwrite another
        // source that happens to sit at a target's number. The copies are close-on-exec.
        let above = self
            .fds
            .iter()
            .map(|(_, target)| *target)
            .max()
            .unwrap_or(2)
            + 1;
        for (slot, (source, _)) in self.moved.iter_mut().zip(&self.fds) {
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor the parent keeps open across
            // the spawn; async-signal-safe.
            let copy = unsafe { libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, above) };
            if copy < 0 {
                return Err(io::Error::last_os_error());
            }
            *slot = copy;
        }
        for (copy, (_, target)) in self.moved.iter().zip(&self.fds) {
            // SAFETY: dup2 between two descriptors of this process; the target loses
            // close-on-exec, which is the point. Async-signal-safe.
            if unsafe { libc::dup2(*copy, *target) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // Nothing else of the parent's table crosses the exec: a spawn from a thread of the
        // daemon's table (see `spawner`) would otherwise hand the app every descriptor the
        // daemon holds without close-on-exec. Refused before Linux 5.11: then only the
        // close-on-exec ones are closed. Elsewhere (macOS has no close_range) only those: every
        // descriptor Kelpie opens is close-on-exec, made so under the portable backend's fork
        // lock where it takes two calls (`portable/mod.rs`).
        // SAFETY: close_range(2) on this child's own copy of the table (no CLONE_FILES), over
        // the numbers above the placed descriptors; async-signal-safe.
        #[cfg(target_os = "linux")]
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                above,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
        }
        Ok(())
    }

    /// In the child, once the descriptors are placed: fill in the pid, exec. Returns only on
    /// failure.
    pub(crate) fn exec_placed(&mut self) -> io::Error {
        if let Some(digits) = self.listen_pid_digits {
            // rustix's getpid is the bare system call: async-signal-safe, no libc cache.
            let pid = rustix::process::getpid().as_raw_nonzero().get();
            write_decimal(&mut self.env[digits..], u32::try_from(pid).unwrap_or(0));
        }
        // SAFETY: program, argv and envp are NUL-terminated strings in buffers owned by self,
        // and both arrays end with a null pointer. The digits were written in place (the
        // buffer did not move), so envp still points at the entry.
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
        }
        io::Error::last_os_error()
    }
}

/// Write `n` in decimal at the start of `out` followed by a NUL (no allocation).
fn write_decimal(out: &mut [u8], mut n: u32) {
    let mut digits = [0u8; PID_DIGITS];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 || len == PID_DIGITS {
            break;
        }
    }
    for (i, digit) in digits[..len].iter().rev().enumerate() {
        out[i] = *digit;
    }
    out[len] = 0;
}

/// Make `command` exec `program` with exactly `argv` (argv[0] included) and `env`, with each
/// `(fd, target)` descriptor placed at `target` (not close-on-exec there) and, when
/// `listen_pid` is set, `LISTEN_PID=<the child's pid>` added to the environment.
///
/// `program` must be a path (no PATH search happens). The caller keeps every `fd` open until
/// the spawn returns. Targets must be 3 or more (std sets up 0-2).
pub fn exec_with_fds(
    command: &mut std::process::Command,
    program: &Path,
    argv: &[String],
    env: &[(String, String)],
    listen_pid: bool,
    fds: Vec<(RawFd, RawFd)>,
) -> io::Result<()> {
    if fds.iter().any(|(_, target)| *target < 3) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors 0-2 are stdio",
        ));
    }
    let mut prepared = Prepared::new(program, argv, env, listen_pid, fds)?;
    // SAFETY: the hook runs in the child between fork and exec; it only calls
    // async-signal-safe functions (fcntl, dup2, close_range, getpid, execve) and does not
    // allocate.
    unsafe {
        command.pre_exec(move || Err(prepared.exec_in_child()));
    }
    Ok(())
}

/// Find `program` the way `execvp` would with this `PATH`: a name with a slash is used as
/// is; otherwise the first executable file of that name in PATH's directories.
pub fn resolve_program(program: &str, path_var: Option<&str>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        return Some(Path::new(program).to_path_buf());
    }
    let path_var = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(OsStr::new(program)))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn decimal_digits_are_written_with_a_terminator() {
        let mut out = [0xffu8; 11];
        write_decimal(&mut out, 4_194_304);
        assert_eq!(&out[..8], b"4194304\0");
        write_decimal(&mut out, 0);
        assert_eq!(&out[..2], b"0\0");
    }

    #[test]
    fn the_child_gets_its_pid_and_the_descriptor_at_its_number() {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let sh = resolve_program("sh", std::env::var("PATH").ok().as_deref()).expect("sh");
        let script = r#"echo "$LISTEN_PID $$ $A" >&5"#;
        let mut command = std::process::Command::new(&sh);
        exec_with_fds(
            &mut command,
            &sh,
            &["sh".into(), "-c".into(), script.into()],
            &[("A".into(), "b".into())],
            true,
            vec![(writer.as_raw_fd(), 5)],
        )
        .expect("prepare");
        let mut child = command.spawn().expect("spawn");
        drop(command);
        drop(writer);
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        child.wait().expect("wait");
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len(), 3, "{text:?}");
        assert_eq!(words[0], words[1], "LISTEN_PID is the child's own pid");
        assert_eq!(words[0], child.id().to_string());
        assert_eq!(words[2], "b");
    }

    #[test]
    fn the_environment_is_laid_out_whole_and_a_nul_in_it_is_refused() {
        let env = [
            ("A", "1"),
            ("LISTEN_PID", "7"),
            ("EMPTY", ""),
            ("B", "two words"),
        ];
        let prepared = Prepared::new(Path::new("/bin/sh"), &["sh".into()], &env, true, Vec::new())
            .expect("prepare");
        let entries: Vec<&[u8]> = prepared.envp[..prepared.envp.len() - 1]
            .iter()
            // SAFETY: each pointer is to a NUL-terminated entry in `prepared.env`, alive here.
            .map(|entry| unsafe { std::ffi::CStr::from_ptr(*entry) }.to_bytes())
            .collect();
        // The caller's LISTEN_PID is replaced by the child's own (digits filled in the child).
        assert_eq!(
            entries,
            [&b"A=1"[..], b"EMPTY=", b"B=two words", b"LISTEN_PID="]
        );
        assert!(prepared.envp.last().is_some_and(|last| last.is_null()));
        let refused = Prepared::new(
            Path::new("/bin/sh"),
            &["sh".into()],
            &[("A", "1"), ("BAD", "x\0y")],
            false,
            Vec::new(),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("environment variable `BAD` contains a NUL byte")
        );
    }

    #[test]
    fn a_missing_program_fails_the_spawn() {
        let mut command = std::process::Command::new("/nonexistent/prog");
        exec_with_fds(
            &mut command,
            Path::new("/nonexistent/prog"),
            &["prog".into()],
            &[],
            false,
            Vec::new(),
        )
        .expect("prepare");
        let error = command.spawn().expect_err("no such program");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn path_search_finds_executables() {
        assert!(resolve_program("sh", Some("/nonexistent:/bin:/usr/bin")).is_some());
        assert_eq!(resolve_program("no-such-prog-x", Some("/bin")), None);
        assert_eq!(
            resolve_program("./rel", None),
            Some(std::path::PathBuf::from("./rel"))
        );
    }
}
