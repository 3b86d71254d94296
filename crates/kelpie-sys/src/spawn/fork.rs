//! The portable spawn: `fork(2)`, the same child code as Linux's clone, then `execve`.
//!
//! What it gives up against Linux's clone3: a fork copies the daemon's page tables (the
//! parent's next writes to each page fault once), no process is created in a cgroup (the
//! portable backend has none), and the child's descriptors are the daemon's whole table until
//! its exec closes the close-on-exec ones (no thread has a table of its own). The child's error
//! comes back through a pipe; its exit is watched as the portable backend watches any child
//! (`portable/exit_watch.rs`).

use super::{block_all_signals, restore_signals, Spawn, Spawned};
use crate::portable::FORK_LOCK;
use std::io;

impl Spawn {
    /// Fork, set the child up and exec (see [`Spawn::in_child`]). Returns once it has exec'd,
    /// or with the error that stopped it (the child is then reaped).
    pub(super) fn fork_and_exec(&mut self) -> io::Result<Spawned> {
        if self.cgroup.is_some() || !self.join.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the portable backend has no cgroups",
            ));
        }
        let (read, write) = crate::portable::pipe_pair(false)?;
        // No thread of ours makes a descriptor half-way (not yet close-on-exec) during the fork.
        let forking = FORK_LOCK.write().unwrap_or_else(|p| p.into_inner());
        let blocked = block_all_signals();
        // SAFETY: fork(2); the child only makes async-signal-safe calls on memory prepared
        // before the fork (`in_child`), then execs or `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let code = self
                .in_child(None, true)
                .raw_os_error()
                .unwrap_or(libc::EINVAL)
                .max(1);
            // rustix's write is the bare system call: async-signal-safe.
            let _ = rustix::io::write(&write, &code.to_ne_bytes());
            // SAFETY: _exit(2) ends this process only; it is async-signal-safe.
            unsafe { libc::_exit(127) }
        }
        let fork_error = (pid < 0).then(io::Error::last_os_error);
        restore_signals(&blocked);
        drop(forking);
        drop(write);
        if let Some(error) = fork_error {
            return Err(error);
        }
        let pid = u32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // The child has exec'd (the pipe closed: nothing to read) or exited after writing 4
        // bytes.
        let mut code = [0u8; 4];
        let read_code = rustix::io::retry_on_intr(|| rustix::io::read(&read, &mut code));
        if read_code.ok() == Some(4) {
            super::reap(pid);
            return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(code)));
        }
        Ok(Spawned {
            pid,
            pidfd: crate::portable::exit_watch::watch_exit(pid)?,
            into_cgroup: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::path::Path;
    use std::time::Duration;

    fn sh() -> std::path::PathBuf {
        crate::resolve_program("sh", std::env::var("PATH").ok().as_deref()).expect("sh")
    }

    #[test]
    fn a_forked_child_gets_its_stdio_group_and_descriptors_and_its_exit_is_watched() {
        let (mut reader, writer) = std::io::pipe().expect("pipe");
        let (mut extra_read, extra_write) = std::io::pipe().expect("pipe");
        let script = r#"echo "$$ $(ps -o pgid= $$ | tr -d ' ') $(pwd)"; echo to-fd5 >&5; exit 3"#;
        let mut spawn = Spawn::new(
            &sh(),
            &["sh".into(), "-c".into(), script.into()],
            &[("PATH", std::env::var("PATH").unwrap_or_default())],
            Path::new("/tmp"),
            (Some(OwnedFd::from(writer)), None),
            vec![(extra_write.as_raw_fd(), 5)],
            false,
        )
        .expect("prepare");
        let spawned = spawn.fork_and_exec().expect("fork");
        drop((spawn, extra_write));
        let mut text = String::new();
        reader.read_to_string(&mut text).expect("read");
        let pid = spawned.pid.to_string();
        assert_eq!(
            text.trim(),
            format!("{pid} {pid} /tmp"),
            "its group, its directory"
        );
        let mut extra = String::new();
        extra_read.read_to_string(&mut extra).expect("read fd 5");
        assert_eq!(extra.trim(), "to-fd5");
        // Its exit makes the watch readable.
        assert!(crate::poll::readable_within(
            spawned.pidfd.as_fd(),
            Duration::from_secs(10)
        ));
        let status = crate::try_wait_child(spawned.pid)
            .expect("wait")
            .expect("ended");
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn a_forked_child_s_failure_before_exec_is_the_spawn_s_error() {
        let mut missing = Spawn::new(
            Path::new("/nonexistent/prog"),
            &["prog".into()],
            &[] as &[(&str, &str)],
            Path::new("/"),
            (None, None),
            Vec::new(),
            false,
        )
        .expect("prepare");
        let error = missing.fork_and_exec().expect_err("no such program");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
