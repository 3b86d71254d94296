//! The system's OpenSSH client, one connection per host reused for every step: it honours
//! `~/.ssh/config`, the agent and ProxyJump, and authenticates once (`ControlMaster`).

use super::config::Host;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How a script's own report lines start (see `remote.rs`).
const MARKER: &str = "@@kelpie:";
/// How many of ssh's own error lines are kept to explain a failure.
const STDERR_KEPT: usize = 8;

/// A host to run scripts on.
pub(super) struct Connection {
    /// The host's settings.
    pub host: Host,
    /// `user@host:port`.
    pub label: String,
    control_path: PathBuf,
}

/// What a script shows while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen<'a> {
    /// A line of a hook's or git's output.
    Line(&'a str),
    /// The step it is now at (`pre-deploy`, `fetch`, `build`, `post-deploy`, `switch`…).
    Step(&'a str),
}

/// What a script run ended with.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// ssh's exit status (255: ssh itself failed; else the script's), `None` if killed.
    pub status: Option<i32>,
    /// The script's reports: (word, rest of the line).
    pub reports: Vec<(String, String)>,
    /// ssh's last error lines.
    pub stderr: Vec<String>,
    /// It was killed for taking longer than its limit.
    pub timed_out: bool,
}

impl Outcome {
    /// The rest of the first report line starting with `word`.
    pub(super) fn report(&self, word: &str) -> Option<&str> {
        self.reports
            .iter()
            .find(|(w, _)| w == word)
            .map(|(_, rest)| rest.as_str())
    }

    /// Whether ssh could not reach the host or log in.
    pub(super) fn unreachable(&self) -> bool {
        self.status == Some(255) && self.reports.is_empty()
    }

    /// Why the script failed, in words: the step and status it reported, or ssh's error.
    pub(super) fn failure(&self) -> Failure {
        if let Some(rest) = self.report("fail") {
            let mut parts = rest.splitn(2, ' ');
            let step = parts.next().unwrap_or("").to_string();
            let status = parts.next().and_then(|s| s.trim().parse().ok());
            return Failure { step, status };
        }
        if self.unreachable() {
            return Failure {
                step: "connect".to_string(),
                status: None,
            };
        }
        Failure {
            step: "script".to_string(),
            status: self.status,
        }
    }
}

/// The step a script failed at, and the status it ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    /// `pre-deploy`, `fetch`, `post-deploy`, `connect`…
    pub step: String,
    /// The step's exit status, when it has one.
    pub status: Option<i32>,
}

impl Connection {
    /// A connection to `host`, its master socket in `control_dir`.
    pub(super) fn new(host: Host, control_dir: &Path) -> Connection {
        let label = host.label();
        Connection {
            label,
            host,
            control_path: control_dir.join("%C"),
        }
    }

    /// ssh with the host's options, up to the destination.
    fn ssh(&self) -> Command {
        let mut ssh = Command::new("ssh");
        if let Some(port) = self.host.port {
            ssh.arg("-p").arg(port.to_string());
        }
        if let Some(key) = &self.host.key {
            ssh.arg("-i").arg(key);
        }
        if self.host.forward_agent {
            ssh.arg("-A");
        }
        if self.host.needs_tty {
            ssh.arg("-t");
        }
        for option in &self.host.ssh_options {
            ssh.arg("-o").arg(option);
        }
        ssh.arg("-o").arg("ControlMaster=auto");
        ssh.arg("-o")
            .arg(format!("ControlPath={}", self.control_path.display()));
        // Phases follow each other at once; a connection left by a deploy that was killed
        // ends by itself soon after.
        ssh.arg("-o").arg("ControlPersist=10");
        if !std::io::stdin().is_terminal() {
            // Nobody can answer a password or host-key prompt: fail instead of hanging.
            ssh.arg("-o").arg("BatchMode=yes");
        }
        // Options end here: a destination is never read as one (the config refuses a host or
        // user that starts with `-` too).
        ssh.arg("--").arg(self.destination());
        ssh
    }

    fn destination(&self) -> String {
        match &self.host.user {
            Some(user) => format!("{user}@{}", self.host.host),
            None => self.host.host.clone(),
        }
    }

    /// Run `script` on the host; each line it prints that is not a report, and each step it
    /// reaches, goes to `seen` as it comes.
    pub(super) fn run(&self, script: &str, seen: &(dyn Fn(Seen<'_>) + Sync)) -> Outcome {
        self.run_within(script, seen, None)
    }

    /// [`Connection::run`], ssh killed once `limit` has passed (`Outcome::timed_out`).
    pub(super) fn run_within(
        &self,
        script: &str,
        seen: &(dyn Fn(Seen<'_>) + Sync),
        limit: Option<std::time::Duration>,
    ) -> Outcome {
        let mut ssh = self.ssh();
        let on_stdin = !self.host.needs_tty;
        if on_stdin {
            ssh.arg("sh -s");
            ssh.stdin(Stdio::piped());
        } else {
            ssh.arg(format!("sh -c {}", super::remote::quote(script)));
            ssh.stdin(Stdio::inherit());
        }
        ssh.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match ssh.spawn() {
            Ok(child) => child,
            Err(error) => {
                return Outcome {
                    status: Some(255),
                    stderr: vec![format!("cannot run ssh: {error}")],
                    ..Outcome::default()
                }
            }
        };
        if on_stdin {
            if let Some(mut stdin) = child.stdin.take() {
                // A host that hangs up early fails the run below; its error says why.
                let _ = stdin.write_all(script.as_bytes());
            }
        }
        let stderr = child.stderr.take();
        let stdout = child.stdout.take();
        let mut outcome = Outcome::default();
        let child = std::sync::Mutex::new(child);
        let timed_out = std::sync::atomic::AtomicBool::new(false);
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            if let Some(limit) = limit {
                let (child, timed_out) = (&child, &timed_out);
                scope.spawn(move || {
                    if finished.recv_timeout(limit)
                        == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                    {
                        timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
                        let _ = child.lock().unwrap_or_else(|p| p.into_inner()).kill();
                    }
                });
            }
            let errors = scope.spawn(move || {
                let mut text = String::new();
                if let Some(mut stderr) = stderr {
                    let _ = stderr.read_to_string(&mut text);
                }
                let lines: Vec<String> = text
                    .lines()
                    .filter(|l| {
                        !l.trim().is_empty() && !l.starts_with("Warning: Permanently added")
                    })
                    .map(str::to_string)
                    .collect();
                lines[lines.len().saturating_sub(STDERR_KEPT)..].to_vec()
            });
            if let Some(stdout) = stdout {
                for text in BufReader::new(stdout).lines() {
                    let Ok(text) = text else { break };
                    let text = text.trim_end_matches('\r');
                    match text.strip_prefix(MARKER) {
                        Some(report) => {
                            let (word, rest) = report.split_once(' ').unwrap_or((report, ""));
                            if word == "step" {
                                seen(Seen::Step(rest));
                            }
                            outcome.reports.push((word.to_string(), rest.to_string()));
                        }
                        None => seen(Seen::Line(text)),
                    }
                }
            }
            outcome.stderr = errors.join().unwrap_or_default();
            drop(done);
        });
        let mut child = child.into_inner().unwrap_or_else(|p| p.into_inner());
        outcome.status = child.wait().ok().and_then(|status| status.code());
        outcome.timed_out = timed_out.into_inner();
        outcome
    }

    /// Close the shared connection (nothing is left running on this machine).
    pub(super) fn close(&self) {
        let _ = self
            .ssh_control()
            .arg("-O")
            .arg("exit")
            .arg("--")
            .arg(self.destination())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn ssh_control(&self) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.arg("-o")
            .arg(format!("ControlPath={}", self.control_path.display()));
        if let Some(port) = self.host.port {
            ssh.arg("-p").arg(port.to_string());
        }
        ssh
    }
}
