//! A command run as PID 1 of its own pid namespace (`unshare --pid --fork …`), as a container
//! runtime runs its CMD: its output collected, its host pid found, the processes of its
//! namespace listed, and everything in it killed when dropped. Shared by the runtime and image
//! tests.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Can this machine make pid namespaces? When not, the caller's test is skipped: this says why
/// (and fails the test under `KELPIE_NO_SKIP`, see `kelpie_testkit::skip`).
pub(super) fn unshare_permitted() -> bool {
    let ok = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        kelpie_testkit::skip(
            "`unshare --pid --fork --mount-proc` is missing or not permitted here (util-linux's \
             unshare, run as root)",
        );
    }
    ok
}

/// Everything `from` gives, read on a thread, as text.
pub(super) fn collect(from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    collect_to_the_end(from).0
}

/// [`collect`], with the reading thread: finished once `from` reached its end.
fn collect_to_the_end(
    mut from: impl Read + Send + 'static,
) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let into = text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
            into.lock().expect("output").push_str(&chunk);
        }
    });
    (text, reader)
}

/// The `unshare` that runs PID 1, and what PID 1 prints.
pub(super) struct Pid1 {
    unshare: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    /// The threads reading its output: what it printed last is read once they are done.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// How it ended, once it has.
    pub status: Option<ExitStatus>,
}

impl Pid1 {
    /// Spawn `cmd` (an `unshare --pid --fork …` command line) with its output collected.
    pub(super) fn spawn(mut cmd: Command) -> Pid1 {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut unshare = cmd.spawn().expect("spawn unshare");
        let (out, out_reader) = collect_to_the_end(unshare.stdout.take().expect("stdout"));
        let (err, err_reader) = collect_to_the_end(unshare.stderr.take().expect("stderr"));
        Pid1 {
            unshare,
            out,
            err,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    pub(super) fn out(&self) -> String {
        self.out.lock().expect("stdout").clone()
    }

    pub(super) fn err(&self) -> String {
        self.err.lock().expect("stderr").clone()
    }

    /// PID 1's pid on the host (the child of the last unshare), once it exists.
    pub(super) fn host_pid(&self) -> Option<u32> {
        let unshare = self.unshare.id();
        kelpie_sys::scan_processes()
            .ok()?
            .into_iter()
            .find(|p| p.sample.ppid == unshare)
            .map(|p| p.pid)
    }

    /// Wait until its stdout contains `text`.
    pub(super) fn wait_out(&self, text: &str, timeout: Duration) {
        kelpie_testkit::wait_until(
            &format!("`{text}` on PID 1's stdout"),
            timeout,
            || match self.out().contains(text) {
                true => Ok(()),
                false => Err(format!(
                    "\nstdout:\n{}\nstderr:\n{}",
                    self.out(),
                    self.err()
                )),
            },
        );
    }

    /// Wait for it to exit; `None` after `timeout`.
    pub(super) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.unshare.try_wait().expect("try_wait") {
                self.status = Some(status);
                // Its last words may still be in the pipes: read to their end (the namespace's
                // processes, which hold them too, end with PID 1), for a few seconds at most.
                let read_by = Instant::now() + Duration::from_secs(5);
                while Instant::now() < read_by && self.readers.iter().any(|r| !r.is_finished()) {
                    // pacing: the poll of a wait whose end is not a failure.
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // pacing: the poll of a wait whose timeout is an answer (None), not a failure.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Send `signal` to PID 1 (`docker stop`'s; as init it only gets those it handles).
    pub(super) fn signal(&self, signal: i32) {
        let pid = self.host_pid().expect("PID 1 runs");
        kelpie_sys::send_signal(pid, signal).expect("signal PID 1");
    }

    /// Every process of the namespace below PID 1 (host pids): (pid, zombie).
    pub(super) fn descendants(&self) -> Vec<(u32, bool)> {
        let Some(root) = self.host_pid() else {
            return Vec::new();
        };
        let processes = kelpie_sys::scan_processes().expect("scan /proc");
        let mut inside = vec![root];
        let mut found = Vec::new();
        // Parents before children is not guaranteed: repeat until nothing new is found.
        loop {
            let before = found.len();
            for p in &processes {
                if inside.contains(&p.sample.ppid) && !inside.contains(&p.pid) {
                    inside.push(p.pid);
                    found.push((p.pid, p.sample.zombie));
                }
            }
            if found.len() == before {
                return found;
            }
        }
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        if self.status.is_none() {
            // As init of its namespace, its death kills every process in it.
            if let Some(pid) = self.host_pid() {
                let _ = kelpie_sys::send_signal(pid, kelpie_sys::SIGKILL);
            }
            let _ = self.unshare.kill();
            let _ = self.unshare.wait();
        }
    }
}
