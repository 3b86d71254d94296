//! Test helpers for Kelpie: a real `kelpie` binary driven against a temporary home, and the
//! `fake-app` binary as the app under supervision.
//!
//! A [`Kelpie`] cleans up after itself even when the test fails: on drop it runs `kelpie kill`,
//! then SIGKILLs every process group it ever saw in `jlist` and the daemon itself.
//!
//! [`load`] is an HTTP load client for the cluster mode's tests (`fake-app --serve`): for a
//! given stop, or in the background ([`BackgroundLoad`]) while the test waits for what it needs.

pub mod load;
mod ports;

pub use load::{run_load, BackgroundLoad, LoadReport};
pub use ports::free_port;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The variable that names a daemon's home (`kelpie_proto::HOME_ENV`; the testkit does not link
/// the protocol crate).
const HOME_ENV: &str = "KELPIE_HOME";

/// A Kelpie home in a temp dir, with the binaries to drive it.
pub struct Kelpie {
    home: tempfile::TempDir,
    /// A scratch directory for files the test writes (ecosystem files, scripts); the CLI runs here.
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    fake_app: PathBuf,
    /// Every app pid seen, with its start time (so a pid reused since by another test's process
    /// is never killed).
    seen_pids: Mutex<BTreeMap<u32, Option<u64>>>,
}

impl Kelpie {
    /// A fresh home. `kelpie_bin` is `env!("CARGO_BIN_EXE_kelpie")` of the calling test.
    pub fn new(kelpie_bin: &str) -> Kelpie {
        let bin = PathBuf::from(kelpie_bin);
        let fake_app = bin.with_file_name("fake-app");
        assert!(
            fake_app.exists(),
            "{} is missing: run the tests with `cargo test --workspace` (it builds fake-app)",
            fake_app.display()
        );
        Kelpie {
            home: tempfile::Builder::new()
                .prefix("kelpie-home-")
                .tempdir()
                .expect("temp home"),
            dir: tempfile::Builder::new()
                .prefix("kelpie-work-")
                .tempdir()
                .expect("temp dir"),
            bin,
            fake_app,
            seen_pids: Mutex::new(BTreeMap::new()),
        }
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Path of the fake app binary.
    pub fn fake_app(&self) -> String {
        self.fake_app.display().to_string()
    }

    /// Write a file in the scratch dir and return its path.
    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write test file");
        path.display().to_string()
    }

    /// Write an executable file (a shell script an app runs) in the scratch dir; its path.
    pub fn write_script(&self, name: &str, content: &str) -> String {
        let path = self.write(name, content);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod test script");
        path
    }

    /// A `kelpie` command for this home, run in the scratch dir.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env(HOME_ENV, self.home.path())
            .current_dir(self.dir.path());
        cmd
    }

    /// Run `kelpie args…`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run kelpie")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kelpie {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndaemon log (end):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.daemon_log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines of the daemon's log, for failure messages.
    fn daemon_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.home.path().join("kelpie.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kelpie {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `kelpie jlist`, parsed; remembers every pid for cleanup.
    pub fn jlist(&self) -> Vec<Value> {
        let out = self.ok(&["jlist"]);
        let list: Vec<Value> = serde_json::from_str(&out).expect("jlist is JSON");
        for app in &list {
            if let Some(pid) = app["pid"].as_u64().filter(|p| *p > 0) {
                self.remember(pid as u32);
            }
        }
        list
    }

    /// The jlist entry of the first instance named `name`.
    pub fn app(&self, name: &str) -> Value {
        self.jlist()
            .into_iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no app `{name}` in jlist"))
    }

    /// The recorded exits of the first instance named `name`, oldest first (from
    /// `describe --json`; `jlist` leaves them out, as PM2's has none).
    pub fn exits(&self, name: &str) -> Vec<Value> {
        let out = self.ok(&["describe", name, "--json"]);
        let described: Value = serde_json::from_str(&out).expect("describe --json is JSON");
        described[0]["pm2_env"]["exits"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Pid of the first instance named `name` (0 when not running).
    pub fn pid(&self, name: &str) -> u32 {
        self.app(name)["pid"].as_u64().unwrap_or(0) as u32
    }

    /// Status of the first instance named `name`.
    pub fn status(&self, name: &str) -> String {
        self.app(name)["pm2_env"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until `cond` holds, polling; panics with `what` after `timeout` ([`wait_until`]).
    #[track_caller]
    pub fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        wait_until(what, timeout, || match cond() {
            true => Ok(()),
            false => Err("the condition did not hold"),
        });
    }

    /// Wait until `file` (written by `fake-app --children-file`) lists `count` pids, and return
    /// them, tracked for cleanup.
    pub fn children(&self, file: &Path, count: usize) -> Vec<u32> {
        let read = || -> Vec<u32> {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect()
        };
        self.wait_for(
            &format!("{count} children in {}", file.display()),
            Duration::from_secs(5),
            || read().len() >= count,
        );
        let pids = read();
        for pid in &pids {
            self.track(*pid);
        }
        pids
    }

    /// Remember a pid the test learned another way (children), so drop kills it if needed.
    pub fn track(&self, pid: u32) {
        self.remember(pid);
    }

    /// The pids seen (shared by the threads of a test that drive one home together).
    fn seen(&self) -> MutexGuard<'_, BTreeMap<u32, Option<u64>>> {
        self.seen_pids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember(&self, pid: u32) {
        self.seen()
            .entry(pid)
            .or_insert_with(|| kelpie_sys::sample_process(pid).map(|p| p.start_ticks));
    }

    /// Whether `pid` is the daemon of this home (and not a process that reused its number).
    fn is_our_daemon(&self, pid: u32) -> bool {
        let marker = format!("{HOME_ENV}={}", self.home.path().display());
        kelpie_sys::process_environment(pid)
            .is_some_and(|environment| environment.iter().any(|entry| entry == marker.as_bytes()))
    }

    /// The processes started for this home (its variable in their environment): a daemon, its
    /// keeper, their apps.
    fn processes_of_this_home(&self) -> Vec<u32> {
        let own = std::process::id();
        kelpie_sys::all_pids()
            .into_iter()
            .filter(|pid| *pid != own && self.is_our_daemon(*pid))
            .collect()
    }

    /// The daemon's pid, if it wrote one (`pm2.pid` when it was run as `pm2`).
    pub fn daemon_pid(&self) -> Option<u32> {
        ["kelpie.pid", "pm2.pid"].iter().find_map(|name| {
            std::fs::read_to_string(self.home.path().join(name))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
    }

    /// The pid of the daemon's keeper (which holds the apps' pipes and sockets), if one wrote it.
    pub fn keeper_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.home.path().join("keeper.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Content of a file of the home's `logs/` dir ("" if missing).
    pub fn log(&self, file: &str) -> String {
        std::fs::read_to_string(self.home.path().join("logs").join(file)).unwrap_or_default()
    }
}

/// How often [`wait_until`] looks again.
const POLL: Duration = Duration::from_millis(20);

/// Wait for what a test needs rather than for a fixed time: call `probe` every 20 ms until it
/// gives `Ok`, and return that value. After `timeout` (make it generous: CI is a loaded 2-core
/// machine, and a wait that holds ends as soon as it holds), panic naming `what` it waited for
/// and the last `Err`: what was seen instead.
#[track_caller]
pub fn wait_until<T, E: std::fmt::Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match probe() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {seen}"
        );
        std::thread::sleep(POLL);
    }
}

/// The variable that turns a test's skip into a failure: set (to anything but empty or `0`) by
/// `.ci/run`.
pub const NO_SKIP_ENV: &str = "KELPIE_NO_SKIP";

/// Whether skips are failures here ([`NO_SKIP_ENV`] is set to something other than "" or "0").
pub fn no_skip() -> bool {
    skips_fail(std::env::var_os(NO_SKIP_ENV).as_deref())
}

/// Whether a value of [`NO_SKIP_ENV`] makes skips failures.
fn skips_fail(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

/// Say that a test (or a part of it) does not run here, and why: what is missing and how to get
/// it. The caller then returns early.
///
/// A skipped test passes while checking nothing, so a machine without a tool or a privilege would
/// go green with whole features untested. On a developer's machine that is a convenience, and the
/// reason is printed to stderr (`skipped: {reason}`, seen with `--nocapture` or on failure). Under
/// CI (`KELPIE_NO_SKIP=1`, which `.ci/run` sets after installing what the tests need) a skip is a
/// failure: this panics, naming the reason.
#[track_caller]
pub fn skip(reason: impl std::fmt::Display) {
    if no_skip() {
        panic!("not skipped under {NO_SKIP_ENV} (CI): {reason}");
    }
    eprintln!("skipped: {reason}");
}

/// The rows of docs/platforms.md's table ("What each platform gets") whose Linux promise the
/// portable backend does not keep: a test of that promise names its row.
pub const PORTABLE_DIFFERENCES: &[&str] = &[
    "Starting a process",
    "Stop leaves nothing of the tree",
    "Orphans of an app",
    "Memory limit",
    "Memory killed by the system",
    "max_processes",
    "Logs across a daemon",
    "reuse_port",
    "Descriptors per app",
    "File watching",
    "Spawning with thousands of descriptors open",
    "The daemon's threads on one CPU",
];

/// Whether the daemons this test starts run Linux's own backend. Under the portable one
/// (`KELPIE_PLATFORM=portable`, run by CI as a second pass of the suite) a test of a promise
/// that docs/platforms.md says the portable backend does not keep calls this with the row of
/// that table (one of [`PORTABLE_DIFFERENCES`], checked) and stops: it prints `not on the
/// portable backend:` and the row, which is not a skip (the difference is documented, and the
/// first pass checked the promise on Linux).
#[track_caller]
pub fn linux_backend_only(difference: &str) -> bool {
    assert!(
        PORTABLE_DIFFERENCES.contains(&difference),
        "`{difference}` is not a row of docs/platforms.md's table of differences"
    );
    let portable = std::env::var("KELPIE_PLATFORM").is_ok_and(|v| v.trim() == "portable");
    if portable {
        eprintln!("not on the portable backend: {difference} (docs/platforms.md)");
    }
    !portable
}

/// Runs git in `dir` with a fixed identity, branch name and no signing, whatever the
/// machine's config; panics with its output when it fails. Returns its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Kelpie Test",
            "-c",
            "user.email=test@example.com",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether a process exists and is not a zombie: whether any of its threads still runs. The
/// main thread of a killed multi-threaded process (the daemon) can be a zombie while its other
/// threads are still exiting and holding its files, its listening socket among them: a client
/// connecting then is queued and reset.
pub fn alive(pid: u32) -> bool {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    threads.flatten().any(|thread| {
        std::fs::read_to_string(thread.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X")
        })
    })
}

/// Bytes `pid` has written so far (`wchar` of /proc/<pid>/io; 0 once it is gone). It grows
/// with each write that went through: an event that shows a process ran on (a write to a pipe
/// nobody holds would have killed it with SIGPIPE, one to a full pipe nobody reads would block).
pub fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn sigkill(target: i64) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(target.to_string())
        .output();
}

impl Drop for Kelpie {
    fn drop(&mut self) {
        if self.daemon_pid().is_some_and(alive) {
            // Learn the latest pids, then stop everything the normal way.
            if let Ok(out) = self.command(&["jlist"]).output() {
                if let Ok(list) = serde_json::from_slice::<Vec<Value>>(&out.stdout) {
                    for app in list {
                        if let Some(pid) = app["pid"].as_u64().filter(|p| *p > 0) {
                            self.remember(pid as u32);
                        }
                    }
                }
            }
            let _ = self.command(&["kill"]).output();
        }
        // Whatever survived (a failed test, a killed daemon): its whole process group goes. Tests
        // run in parallel and pids are reused, so a number is only killed while it is still the
        // process seen (same start time), or, when no process has it any more, as the id of the
        // group it led (a group id stays taken while any member lives, so it is still ours).
        for (pid, started) in self.seen().iter() {
            match kelpie_sys::sample_process(*pid) {
                Some(now) if Some(now.start_ticks) != *started => continue,
                Some(_) => {
                    sigkill(-i64::from(*pid));
                    sigkill(i64::from(*pid));
                }
                None => sigkill(-i64::from(*pid)),
            }
        }
        if let Some(pid) = self
            .daemon_pid()
            .filter(|p| alive(*p) && self.is_our_daemon(*p))
        {
            sigkill(i64::from(pid));
        }
        // The keeper of a daemon killed with -9 waits for a next daemon that will not come.
        if let Some(pid) = self
            .keeper_pid()
            .filter(|p| alive(*p) && self.is_our_daemon(*p))
        {
            sigkill(i64::from(pid));
        }
        // A CLI that a test's thread or child ran meanwhile may have started a daemon as this
        // ended (seen: one started as the home went, which made the home again and outlived the
        // run). The home goes now, then whatever still runs for it, twice: a daemon being
        // started shows within moments.
        let _ = std::fs::remove_dir_all(self.home.path());
        for look in 0..2 {
            if look > 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            for pid in self.processes_of_this_home() {
                sigkill(i64::from(pid));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_portable_difference_is_a_row_of_the_platforms_table() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/platforms.md"),
        )
        .expect("docs/platforms.md");
        for row in super::PORTABLE_DIFFERENCES {
            assert!(
                doc.lines().any(|line| line.starts_with(&format!("| {row}"))
                    || line.starts_with(&format!("| `{row}`"))),
                "no row `{row}` in docs/platforms.md"
            );
        }
    }

    use super::{skips_fail, wait_until};
    use std::ffi::OsStr;
    use std::time::Duration;

    #[test]
    fn wait_until_returns_what_the_probe_gave_once_it_gives_it() {
        let mut looks = 0;
        let got = wait_until("the third look", Duration::from_secs(10), || {
            looks += 1;
            match looks {
                3 => Ok("found"),
                n => Err(format!("look {n}")),
            }
        });
        assert_eq!((got, looks), ("found", 3));
    }

    #[test]
    #[should_panic(expected = "waiting for a value that never comes; last seen: nothing yet")]
    fn wait_until_names_what_it_waited_for_and_what_it_saw_when_it_times_out() {
        wait_until::<(), _>(
            "a value that never comes",
            Duration::from_millis(50),
            || Err("nothing yet"),
        );
    }

    #[test]
    fn skips_fail_when_the_variable_is_set_to_anything_but_empty_or_0() {
        assert!(!skips_fail(None));
        assert!(!skips_fail(Some(OsStr::new(""))));
        assert!(!skips_fail(Some(OsStr::new("0"))));
        assert!(skips_fail(Some(OsStr::new("1"))));
        assert!(skips_fail(Some(OsStr::new("yes"))));
    }
}
