//! The lab the `kelpie deploy` tests run in (docs: /work/shared/reference/deploy.md §5): real
//! `sshd`s on 127.0.0.1 (one per port), throw-away Unix users that log in with a key and find
//! their own copy of `kelpie` on the login shell's PATH, a git repo with tags `v1`, `v2` (on
//! `main`) and `v3` (a server that never starts, on a side branch) cloned bare where the users
//! can read it, and a committed `ecosystem.config.js` with the deploy envs of the scenarios.
//!
//! Everything is undone on drop, in this order, even when the test fails: each user's daemon is
//! killed (`kelpie kill`, then SIGKILL for whatever that user still runs), the user and its home
//! deleted, the sshds killed, the temp dir removed. A user left behind by a run that died is
//! deleted before it is created again. Every command has a timeout, so nothing here can hang.

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kelpie_testkit::{load, BackgroundLoad, LoadReport};

/// Longest any `kelpie deploy` may run before it is killed and the test fails.
pub(super) const DEPLOY_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a helper command (useradd, su, ssh-keygen, git) may run.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);
const SSHD: &str = "/usr/sbin/sshd";

// ---------------------------------------------------------------------------------------------
// Commands with a timeout

/// How a command ended and what it printed.
pub(super) struct Exec {
    /// What was run, for messages.
    pub what: String,
    /// The exit status; `None` when killed by a signal (a timeout among them).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    pub timed_out: bool,
}

impl Exec {
    /// Everything about the run, for an assertion's message.
    pub(super) fn describe(&self) -> String {
        format!(
            "`{}` exited {:?}{} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.what,
            self.code,
            if self.timed_out {
                " (KILLED: timed out)"
            } else {
                ""
            },
            self.took,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }

    /// stdout and stderr together.
    pub(super) fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    pub(super) fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// A running command whose stdout and stderr go to files (not pipes: a process it leaves
/// behind, an ssh master with `ControlPersist`, cannot make the test wait for them), in a
/// process group of its own (killed whole at its timeout).
pub(super) struct Spawned {
    child: Child,
    what: String,
    began: Instant,
    out: PathBuf,
    err: PathBuf,
    _files: tempfile::TempDir,
    done: bool,
}

impl Spawned {
    pub(super) fn start(mut cmd: Command, what: impl Into<String>) -> Spawned {
        let what = what.into();
        let files = tempfile::Builder::new()
            .prefix("kelpie-deploylab-out-")
            .tempdir()
            .expect("temp dir for output");
        let out = files.path().join("stdout");
        let err = files.path().join("stderr");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn `{what}`: {e}"));
        Spawned {
            child,
            what,
            began: Instant::now(),
            out,
            err,
            _files: files,
            done: false,
        }
    }

    /// Its process group (its own pid): where a terminal's Ctrl-C would go.
    pub(super) fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the end, at most `timeout` (then its whole process group is SIGKILLed).
    pub(super) fn wait(mut self, timeout: Duration) -> Exec {
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if self.began.elapsed() >= timeout {
                timed_out = true;
                kill_group(self.child.id());
                break self.child.wait().expect("wait after kill");
            }
            // pacing: the harness's poll (the process group killed at the timeout).
            std::thread::sleep(Duration::from_millis(10));
        };
        self.done = true;
        Exec {
            what: self.what.clone(),
            code: status.code(),
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
            took: self.began.elapsed(),
            timed_out,
        }
    }

    /// `kill -9` of this process only (not its group), as a user would, then its output.
    pub(super) fn kill9(mut self) -> Exec {
        let _ = self.child.kill();
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if !self.done && matches!(self.child.try_wait(), Ok(None)) {
            kill_group(self.child.id());
            let _ = self.child.wait();
        }
    }
}

fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .output();
}

/// Run `cmd` to its end (or `timeout`).
pub(super) fn run(cmd: Command, what: impl Into<String>, timeout: Duration) -> Exec {
    Spawned::start(cmd, what).wait(timeout)
}

/// Run a helper program (as root) that must succeed; its stdout.
fn must(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let exec = run(cmd, format!("{program} {}", args.join(" ")), HELPER_TIMEOUT);
    assert!(exec.ok(), "{}", exec.describe());
    exec.stdout
}

/// A helper that may fail (its result ignored by the caller or checked there).
fn attempt(program: &str, args: &[&str]) -> Exec {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run(cmd, format!("{program} {}", args.join(" ")), HELPER_TIMEOUT)
}

/// The passwd/shadow tools fail while another one holds their lock (tests create users in
/// parallel): retried for a while.
fn must_retrying(program: &str, args: &[&str]) {
    let mut last = None;
    for _ in 0..50 {
        let exec = attempt(program, args);
        if exec.ok() {
            return;
        }
        last = Some(exec);
        // pacing: a retry's rhythm, while another test holds the tools' lock.
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{}", last.expect("tried").describe());
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Whether `program` runs (`--version` or the like exits 0).
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `program` is on the PATH.
fn has(program: &str) -> bool {
    runs("sh", &["-c", &format!("command -v {program}")])
}

/// What this machine lacks for the ssh tests (`None`: nothing).
pub(super) fn missing_for_ssh() -> Option<String> {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut missing = Vec::new();
    if !root {
        missing.push("root (to create users and run sshd)");
    }
    if !Path::new(SSHD).exists() {
        missing.push("/usr/sbin/sshd (apt-get install openssh-server)");
    }
    if !has("ssh") || !has("ssh-keygen") {
        missing.push("ssh and ssh-keygen (openssh-client)");
    }
    if !runs("git", &["--version"]) {
        missing.push("git");
    }
    if !runs("node", &["--version"]) {
        missing.push("node (nodejs)");
    }
    for tool in [
        "/usr/sbin/useradd",
        "/usr/sbin/userdel",
        "/usr/sbin/usermod",
        "/bin/su",
    ] {
        if !Path::new(tool).exists() {
            missing.push(tool);
        }
    }
    if missing.is_empty() {
        None
    } else {
        Some(missing.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Users

/// A throw-away Unix user; deleted with its home and everything it runs on drop.
pub(super) struct TestUser {
    pub name: String,
    pub home: PathBuf,
}

impl TestUser {
    /// Create `name` (deleting a leftover of that name first): an unlocked account without a
    /// password (sshd with `UsePAM no` refuses a locked `!` one), bash as its shell, `authorized`
    /// as its only key, its own copy of `kelpie` in `~/bin` on the login shell's PATH, and
    /// `safe_repo` trusted by its git.
    fn create(name: &str, authorized: &str, kelpie: &Path, safe_repo: &Path) -> TestUser {
        if attempt("id", &["-u", name]).ok() {
            remove_user(name);
        }
        let home = PathBuf::from("/home").join(name);
        if home.exists() {
            // The home of a user a dead run deleted halfway: ours (the names are the tests').
            fs::remove_dir_all(&home).expect("remove a leftover home");
        }
        must_retrying("useradd", &["-m", "-s", "/bin/bash", name]);
        let user = TestUser {
            name: name.to_string(),
            home: home.clone(),
        };
        must_retrying("usermod", &["-p", "*", name]);
        let ssh = home.join(".ssh");
        fs::create_dir_all(&ssh).expect("~/.ssh");
        chmod(&ssh, 0o700);
        fs::write(ssh.join("authorized_keys"), authorized).expect("authorized_keys");
        chmod(&ssh.join("authorized_keys"), 0o600);
        let bin = home.join("bin");
        fs::create_dir_all(&bin).expect("~/bin");
        fs::copy(kelpie, bin.join("kelpie")).expect("copy kelpie into ~/bin");
        chmod(&bin.join("kelpie"), 0o755);
        fs::write(home.join(".profile"), "export PATH=\"$HOME/bin:$PATH\"\n").expect(".profile");
        must(
            "chown",
            &["-R", &format!("{name}:{name}"), &home.display().to_string()],
        );
        let trust = format!(
            "git config --global --add safe.directory '{}'",
            safe_repo.display()
        );
        let exec = user.shell(&trust);
        assert!(exec.ok(), "{}", exec.describe());
        user
    }

    /// `script` in this user's login shell (`su - <user> -c`), locally.
    pub(super) fn shell(&self, script: &str) -> Exec {
        let mut cmd = Command::new("su");
        cmd.args(["-", &self.name, "-c", script]);
        run(
            cmd,
            format!("su - {} -c {script:?}", self.name),
            HELPER_TIMEOUT,
        )
    }

    /// A path in this user's home.
    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    /// The pids of the app `name` in this user's daemon (`kelpie jlist`).
    pub(super) fn pids(&self, name: &str) -> Vec<u64> {
        let exec = self.shell("kelpie jlist");
        assert!(exec.ok(), "{}", exec.describe());
        let list: serde_json::Value = serde_json::from_str(&exec.stdout)
            .unwrap_or_else(|e| panic!("jlist is not JSON ({e}): {}", exec.describe()));
        let mut pids: Vec<u64> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|app| app["name"] == name)
            .filter_map(|app| app["pid"].as_u64())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Whether this user runs a process named `comm`.
    pub(super) fn runs(&self, comm: &str) -> bool {
        attempt("pgrep", &["-u", &self.name, "-x", comm]).ok()
    }

    /// The end of this user's daemon log, for failure messages.
    pub(super) fn daemon_log_tail(&self) -> String {
        tail(&self.path(".kelpie/kelpie.log"), 25)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        remove_user(&self.name);
    }
}

/// Stop what `name` runs (its daemon the normal way first), then delete it and its home.
fn remove_user(name: &str) {
    let mut kill = Command::new("su");
    kill.args(["-", name, "-c", "kelpie kill"]);
    let _ = run(kill, "kelpie kill", Duration::from_secs(20));
    // By uid: only this test user's processes.
    for _ in 0..50 {
        let _ = attempt("pkill", &["-KILL", "-u", name]);
        if !attempt("pgrep", &["-u", name]).ok() {
            break;
        }
        // pacing: a clean-up's retries.
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..50 {
        let exec = attempt("userdel", &["-r", "-f", name]);
        // 6: no such user; 12: the home could not be removed (gone already).
        if exec.ok() || !attempt("id", &["-u", name]).ok() {
            break;
        }
        // pacing: a clean-up's retries.
        std::thread::sleep(Duration::from_millis(200));
    }
    let home = PathBuf::from("/home").join(name);
    if home.exists() {
        let _ = fs::remove_dir_all(home);
    }
}

// ---------------------------------------------------------------------------------------------
// sshd

/// An sshd on 127.0.0.1:`port`, killed on drop.
pub(super) struct Sshd {
    pub port: u16,
    pub log: PathBuf,
    pid_file: PathBuf,
}

impl Sshd {
    fn start(dir: &Path, port: u16, users: &[String]) -> Sshd {
        fs::create_dir_all("/run/sshd").expect("/run/sshd (privilege separation dir)");
        let conf = dir.join(format!("sshd-{port}.conf"));
        let pid_file = dir.join(format!("sshd-{port}.pid"));
        let log = dir.join(format!("sshd-{port}.log"));
        let text = [
            format!("Port {port}"),
            "ListenAddress 127.0.0.1".to_string(),
            format!("HostKey {}", dir.join("hostkey").display()),
            format!("PidFile {}", pid_file.display()),
            "PasswordAuthentication no".to_string(),
            "KbdInteractiveAuthentication no".to_string(),
            "PubkeyAuthentication yes".to_string(),
            "UsePAM no".to_string(),
            "PermitRootLogin no".to_string(),
            format!("AllowUsers {}", users.join(" ")),
            // The test's concurrent connections (two hosts, ssh masters) must not be dropped.
            "MaxStartups 100".to_string(),
            "MaxSessions 100".to_string(),
        ]
        .join("\n")
            + "\n";
        fs::write(&conf, text).expect("sshd config");
        let conf_arg = conf.display().to_string();
        must(SSHD, &["-t", "-f", &conf_arg]);
        let sshd = Sshd {
            port,
            log: log.clone(),
            pid_file,
        };
        must(SSHD, &["-f", &conf_arg, "-E", &log.display().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() || sshd.pid().is_none() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {port}: {}",
                tail(&log, 20)
            );
            // pacing: the harness's poll.
            std::thread::sleep(Duration::from_millis(20));
        }
        sshd
    }

    fn pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// How many logins it accepted so far.
    pub(super) fn accepted(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Accepted "))
            .count()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sshd {
    /// Stop it (SIGTERM, then SIGKILL after 5 s): the host is down for ssh.
    pub(super) fn stop(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).output();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                // pacing: a clean-up's poll (SIGKILL after it).
                std::thread::sleep(Duration::from_millis(20));
            }
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .output();
            }
            // Stopped once: a later stop (the drop) must not signal the pid's next owner.
            let _ = fs::remove_file(&self.pid_file);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab

/// Full shas of the repo's tags.
pub(super) struct Shas {
    pub v1: String,
    pub v2: String,
    pub v3: String,
}

/// Users, sshds, keys and the repo of one test. Fields drop in order: users (and what they
/// run) first, then the sshds, then the temp dir.
pub(super) struct Lab {
    pub users: Vec<TestUser>,
    pub sshds: Vec<Sshd>,
    /// `$T`: keys, sshd configs and logs, the repo and its bare clone.
    pub dir: tempfile::TempDir,
    /// The KELPIE_HOME of the local (root's) side.
    local_home: tempfile::TempDir,
    /// `$T/src`, where every `kelpie deploy` runs.
    pub src: PathBuf,
    /// The port the production env's apps listen on.
    pub web: u16,
    pub shas: Shas,
}

/// What the ecosystem file is written from.
struct Names<'a> {
    dir: &'a Path,
    users: &'a [String],
    ports: &'a [u16],
    web: u16,
}

impl Lab {
    /// A lab with users `<prefix>1`…`<prefix><count>`, one sshd each (every sshd lets all of
    /// them in). `None` when the machine lacks something (the test then returns: a skip).
    pub(super) fn new(prefix: &str, count: usize) -> Option<Lab> {
        if let Some(missing) = missing_for_ssh() {
            kelpie_testkit::skip(format!("kelpie deploy's ssh tests need {missing}"));
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("kelpie-deploylab-")
            .tempdir()
            .expect("temp dir");
        // mktemp's 0700 would keep the users out of the bare repo.
        chmod(dir.path(), 0o755);
        let t = dir.path();
        let names: Vec<String> = (1..=count).map(|i| format!("{prefix}{i}")).collect();
        let ports: Vec<u16> = names.iter().map(|_| super::free_port()).collect();
        let web = super::free_port();
        for key in ["hostkey", "id"] {
            let path = t.join(key).display().to_string();
            must(
                "ssh-keygen",
                &["-q", "-t", "ed25519", "-N", "", "-f", &path],
            );
        }
        let src = t.join("src");
        let bare = t.join("app.git");
        let ecosystem = ecosystem(&Names {
            dir: t,
            users: &names,
            ports: &ports,
            web,
        });
        let shas = make_repo(&src, &ecosystem);
        must(
            "git",
            &[
                "clone",
                "-q",
                "--bare",
                &src.display().to_string(),
                &bare.display().to_string(),
            ],
        );
        must("chmod", &["-R", "a+rX", &bare.display().to_string()]);
        let public = fs::read_to_string(t.join("id.pub")).expect("id.pub");
        let kelpie = PathBuf::from(env!("CARGO_BIN_EXE_kelpie"));
        let users: Vec<TestUser> = names
            .iter()
            .map(|name| TestUser::create(name, &public, &kelpie, &bare))
            .collect();
        let sshds: Vec<Sshd> = ports.iter().map(|p| Sshd::start(t, *p, &names)).collect();
        let lab = Lab {
            users,
            sshds,
            dir,
            local_home: tempfile::Builder::new()
                .prefix("kelpie-deploylab-home-")
                .tempdir()
                .expect("temp home"),
            src,
            web,
            shas,
        };
        lab.check_logins(&bare);
        Some(lab)
    }

    /// The lab works before any `kelpie deploy`: each user logs in on its port with the key,
    /// its login shell finds its own `kelpie` and git reads the bare repo. (Also records the
    /// host key in `$T/kh`, so parallel deploys never write it at the same time.)
    fn check_logins(&self, bare: &Path) {
        for (user, sshd) in self.users.iter().zip(&self.sshds) {
            let script = format!(
                "bash -lc 'command -v kelpie && git ls-remote {} refs/tags/v1 && kelpie --version'",
                bare.display()
            );
            let exec = self.ssh(user, sshd.port, &script);
            assert!(
                exec.ok(),
                "the lab's ssh login does not work: {}\nsshd log:\n{}",
                exec.describe(),
                tail(&sshd.log, 20)
            );
            let found = format!("{}/bin/kelpie", user.home.display());
            assert!(
                exec.stdout.contains(&found) && exec.stdout.contains(&self.shas.v1),
                "the login shell should find {found} and git read the repo: {}",
                exec.describe()
            );
        }
    }

    /// `cmd` run by `user` over ssh on `port` (the test's own ssh, as deploy.md's `R`).
    pub(super) fn ssh(&self, user: &TestUser, port: u16, cmd: &str) -> Exec {
        let t = self.dir.path();
        let mut ssh = Command::new("ssh");
        ssh.args(["-p", &port.to_string(), "-i"])
            .arg(t.join("id"))
            .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o"])
            .arg(format!("UserKnownHostsFile={}", t.join("kh").display()))
            .args(["-o", "StrictHostKeyChecking=accept-new"])
            .arg(format!("{}@127.0.0.1", user.name))
            .arg(cmd);
        run(
            ssh,
            format!("ssh {}@:{port} {cmd}", user.name),
            HELPER_TIMEOUT,
        )
    }

    /// The KELPIE_HOME of the local side (where `kelpie deploy` runs).
    pub(super) fn local_home(&self) -> &Path {
        self.local_home.path()
    }

    /// A `kelpie deploy ecosystem.config.js <args>` command, run in `$T/src` as root.
    fn deploy_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelpie"));
        cmd.arg("deploy")
            .arg("ecosystem.config.js")
            .args(args)
            .current_dir(&self.src)
            .env("KELPIE_HOME", self.local_home.path())
            .env_remove("SSH_AUTH_SOCK");
        cmd
    }

    /// Run `kelpie fleet ecosystem.config.js <args>` in `$T/src`, as root, to its end.
    pub(super) fn fleet(&self, args: &[&str]) -> Exec {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelpie"));
        cmd.arg("fleet")
            .arg("ecosystem.config.js")
            .args(args)
            .current_dir(&self.src)
            .env("KELPIE_HOME", self.local_home.path())
            .env_remove("SSH_AUTH_SOCK");
        run(
            cmd,
            format!("kelpie fleet ecosystem.config.js {}", args.join(" ")),
            DEPLOY_TIMEOUT,
        )
    }

    /// Run `kelpie deploy ecosystem.config.js <args>` to its end.
    pub(super) fn deploy(&self, args: &[&str]) -> Exec {
        run(
            self.deploy_command(args),
            format!("kelpie deploy ecosystem.config.js {}", args.join(" ")),
            DEPLOY_TIMEOUT,
        )
    }

    /// Start `kelpie deploy ecosystem.config.js <args>` in the background.
    pub(super) fn spawn_deploy(&self, args: &[&str]) -> Spawned {
        Spawned::start(
            self.deploy_command(args),
            format!("kelpie deploy ecosystem.config.js {}", args.join(" ")),
        )
    }

    /// [`Lab::deploy`] that must exit `code`.
    pub(super) fn deploy_expect(&self, args: &[&str], code: i32) -> Exec {
        let exec = self.deploy(args);
        self.expect(&exec, code);
        exec
    }

    /// [`Lab::deploy`] that must succeed.
    pub(super) fn deploy_ok(&self, args: &[&str]) -> Exec {
        self.deploy_expect(args, 0)
    }

    /// Fail with everything useful unless `exec` exited `code`.
    pub(super) fn expect(&self, exec: &Exec, code: i32) {
        assert!(
            exec.code == Some(code),
            "expected exit {code}: {}\n{}",
            exec.describe(),
            self.diagnostics()
        );
    }

    /// The sshd logs and the users' daemon logs (their ends).
    pub(super) fn diagnostics(&self) -> String {
        let mut text = String::new();
        for sshd in &self.sshds {
            let _ = writeln!(
                text,
                "sshd :{} log (end):\n{}",
                sshd.port,
                tail(&sshd.log, 8)
            );
        }
        for user in &self.users {
            let _ = writeln!(
                text,
                "{}'s daemon log (end):\n{}",
                user.name,
                user.daemon_log_tail()
            );
        }
        text
    }

    /// The sshd port of the `i`-th user.
    pub(super) fn port(&self, i: usize) -> u16 {
        self.sshds[i].port
    }

    /// `git rev-parse --short=7 <rev>` in the source repo.
    pub(super) fn short(&self, rev: &str) -> String {
        kelpie_testkit::git(
            &self.src,
            &["rev-parse", "--short=7", &format!("{rev}^{{commit}}")],
        )
    }
}

/// The repo: `main` with tags v1 and v2 (VERSION v1, v2), and v3 on branch `bad`, whose server
/// exits 1 at start. The ecosystem file is committed in v1 and stays the same after.
fn make_repo(src: &Path, ecosystem: &str) -> Shas {
    fs::create_dir_all(src).expect("src dir");
    let git = |args: &[&str]| kelpie_testkit::git(src, args);
    git(&["init", "-q"]);
    fs::write(src.join("server.js"), SERVER_JS).expect("server.js");
    fs::write(src.join("ecosystem.config.js"), ecosystem).expect("ecosystem.config.js");
    let commit = |version: &str| {
        fs::write(src.join("VERSION"), format!("{version}\n")).expect("VERSION");
        git(&["add", "-A"]);
        git(&["commit", "-q", "-m", version]);
        git(&["tag", version]);
        git(&["rev-parse", "HEAD"])
    };
    let v1 = commit("v1");
    let v2 = commit("v2");
    git(&["checkout", "-q", "-b", "bad"]);
    fs::write(src.join("server.js"), BAD_SERVER_JS).expect("bad server.js");
    let v3 = commit("v3");
    git(&["checkout", "-q", "main"]);
    Shas { v1, v2, v3 }
}

/// The app: answers `<VERSION>|<$GREETING>`, writes its port to `~/port`.
const SERVER_JS: &str = r#"const http = require('http');
const fs = require('fs');
const server = http.createServer((q, r) =>
  r.end(fs.readFileSync('VERSION', 'utf8').trim() + '|' + (process.env.GREETING || '') + '\n'));
server.listen(process.env.PORT || 0, () =>
  fs.writeFileSync(process.env.HOME + '/port', String(server.address().port)));
"#;

/// v3's server: never ready.
const BAD_SERVER_JS: &str = r#"console.error('v3 does not start');
process.exit(1);
"#;

/// The committed ecosystem file: app `web` (2 instances) and deploy.md §5's envs: `production`
/// (numeric port, quoting-hostile env; its hooks also note what they saw in `$T/local`,
/// `~/post_setup`, `~/pre` and `~/post_cwd`), `hostport` (the same as one `user@host:port`),
/// `broken`, `slow`, `notfound` (post-deploy: a command not on the PATH), `localfail`
/// (pre-deploy-local fails), and with two users `pair`, `pairfail`, `pairbar`.
fn ecosystem(n: &Names) -> String {
    let t = n.dir.display().to_string();
    let mut text = String::from(
        r#"const T = '@T@';
const common = {
  key: T + '/id',
  ssh_options: ['IdentitiesOnly=yes', 'UserKnownHostsFile=' + T + '/kh', 'StrictHostKeyChecking=accept-new'],
  repo: T + '/app.git',
  ref: 'origin/main',
};
const production = Object.assign({}, common, {
  user: '@U1@',
  host: '127.0.0.1',
  port: @P1@,
  path: '/home/@U1@/app',
  env: { PORT: @WEB@, GREETING: "it's \"q\" $HOME !" },
  'pre-deploy-local': 'printf %s "$GREETING" > @T@/local',
  'post-setup': 'printf "%s|%s" "$GREETING" "$SHARED" > ~/post_setup',
  'pre-deploy': 'printf "%s|%s" "$GREETING" "$SHARED" > ~/pre',
  'post-deploy': 'printf %s "$GREETING" > ~/greeting && pwd -P > ~/post_cwd && kelpie startOrReload ecosystem.config.js --env production',
});
// The same host as one "user@host:port" string.
const hostport = Object.assign({}, production, { host: '@U1@@127.0.0.1:@P1@' });
delete hostport.user;
delete hostport.port;
const deploy = {
  production,
  hostport,
  broken: Object.assign({}, production, { 'post-deploy': 'exit 3' }),
  slow: Object.assign({}, production, { 'pre-deploy': 'sleep 6' }),
  notfound: Object.assign({}, production, { 'post-deploy': 'kelpie-not-installed startOrReload ecosystem.config.js' }),
  localfail: Object.assign({}, production, { 'pre-deploy-local': 'exit 9' }),
};
"#,
    );
    if n.users.len() >= 2 {
        text.push_str(
            r#"const pair = Object.assign({}, common, {
  host: [
    { host: '127.0.0.1', port: @P1@, user: '@U1@' },
    { host: '127.0.0.1', port: @P2@, user: '@U2@' },
  ],
  path: '~/pair',
  'pre-deploy': 'date +%s.%N >~/t0; sleep 3; date +%s.%N >~/t1',
});
deploy.pair = pair;
deploy.pairfail = Object.assign({}, pair, {
  'post-deploy': 'test "$(id -un)" != @U2@ && kelpie startOrReload ecosystem.config.js --env pairfail',
});
deploy.pairbar = Object.assign({}, pair, { 'pre-deploy': 'test "$(id -un)" != @U2@' });
"#,
        );
    }
    text.push_str(
        r#"module.exports = {
  apps: [{ name: 'web', script: 'server.js', instances: 2 }],
  deploy,
};
"#,
    );
    let mut text = text
        .replace("@T@", &t)
        .replace("@U1@", &n.users[0])
        .replace("@P1@", &n.ports[0].to_string())
        .replace("@WEB@", &n.web.to_string());
    if n.users.len() >= 2 {
        text = text
            .replace("@U2@", &n.users[1])
            .replace("@P2@", &n.ports[1].to_string());
    }
    text
}

// ---------------------------------------------------------------------------------------------
// Files and HTTP

/// The last `lines` lines of a file ("" if unreadable).
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A file's content, trimmed ("" if missing).
pub(super) fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Where a symlink points, as written ("" if it is not one).
pub(super) fn readlink(path: &Path) -> String {
    fs::read_link(path)
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// The names in `releases/` of a deploy path, sorted.
pub(super) fn releases(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(path.join("releases"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The lines of `<path>/.deploys`.
pub(super) fn deploys(path: &Path) -> Vec<String> {
    fs::read_to_string(path.join(".deploys"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether `link` is `releases/<UTC yyyymmddHHMMSS>-<sha7>`.
pub(super) fn is_release_link(link: &str) -> bool {
    let Some(id) = link.strip_prefix("releases/") else {
        return false;
    };
    let bytes = id.as_bytes();
    bytes.len() == 22
        && bytes[..14].iter().all(u8::is_ascii_digit)
        && bytes[14] == b'-'
        && bytes[15..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// One `GET /` on 127.0.0.1:`port`: the body of a 200, else what went wrong.
pub(super) fn get(port: u16) -> Result<String, String> {
    load::get(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Poll `GET /` until it answers `want`; the last answer otherwise.
pub(super) fn wait_body(port: u16, want: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = get(port);
        if got.as_deref() == Ok(want) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "GET :{port} answered {got:?} for {timeout:?}, not {want:?}"
            ));
        }
        // pacing: the harness's poll (a timeout is its caller's answer).
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// HTTP load on one port while a deploy runs: keep-alive clients, clients with a new
/// connection per request (`Connection: close`), and a sampler that keeps every body seen.
pub(super) struct Load {
    keep_alive: Option<BackgroundLoad>,
    close: Option<BackgroundLoad>,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<()>>,
    bodies: Arc<Mutex<Vec<Result<String, String>>>>,
}

/// What a [`Load`] saw.
pub(super) struct Seen {
    pub keep_alive: LoadReport,
    pub close: LoadReport,
    /// Every sampled answer, in order.
    pub bodies: Vec<Result<String, String>>,
}

impl Seen {
    pub(super) fn failed(&self) -> u64 {
        self.keep_alive.failed + self.close.failed
    }

    pub(super) fn ok(&self) -> u64 {
        self.keep_alive.ok + self.close.ok
    }

    pub(super) fn describe(&self) -> String {
        let mut distinct: Vec<String> = Vec::new();
        for body in &self.bodies {
            let text = format!("{body:?}");
            if distinct.last() != Some(&text) {
                distinct.push(text);
            }
        }
        format!(
            "keep-alive: {} ok, {} failed {:?}; close: {} ok, {} failed {:?}; sampled answers in order: {}",
            self.keep_alive.ok,
            self.keep_alive.failed,
            self.keep_alive.errors,
            self.close.ok,
            self.close.failed,
            self.close.errors,
            distinct.join(" -> ")
        )
    }
}

impl Load {
    pub(super) fn start(port: u16) -> Load {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sampler = {
            let (stop, bodies) = (stop.clone(), bodies.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let got = load::get(addr);
                    bodies.lock().unwrap_or_else(|p| p.into_inner()).push(got);
                    // pacing: the sampler's rhythm under the load.
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        Load {
            keep_alive: Some(BackgroundLoad::start(addr, true, 3)),
            close: Some(BackgroundLoad::start(addr, false, 2)),
            stop,
            sampler: Some(sampler),
            bodies,
        }
    }

    /// Wait until the clients have had `n` answers (the load is on before the deploy starts).
    pub(super) fn warm(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let seen = |load: &Option<BackgroundLoad>| {
            load.as_ref().map(BackgroundLoad::seen).unwrap_or_default()
        };
        while seen(&self.keep_alive).ok + seen(&self.close).ok < n {
            assert!(
                Instant::now() < deadline,
                "the load got no answers: keep-alive {:?}, close {:?}",
                seen(&self.keep_alive),
                seen(&self.close)
            );
            // pacing: the harness's poll.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(super) fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        let bodies = std::mem::take(&mut *self.bodies.lock().unwrap_or_else(|p| p.into_inner()));
        let finish =
            |load: Option<BackgroundLoad>| load.map(BackgroundLoad::finish).unwrap_or_default();
        Seen {
            keep_alive: finish(self.keep_alive.take()),
            close: finish(self.close.take()),
            bodies,
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
    }
}

/// Read all of `reader` (for a command whose stdout is a pipe).
pub(super) fn read_all(mut reader: impl Read) -> String {
    let mut text = String::new();
    let _ = reader.read_to_string(&mut text);
    text
}
