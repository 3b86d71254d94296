//! One run of `kelpie deploy`: the section, a connection per host, how the hosts are worked on
//! (a pool of threads, `parallel` at a time) and where their output goes.

use super::config::Target;
use super::remote::{self, Prelude};
use super::ssh::{Connection, Outcome, Seen};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One run of the command: the section, a connection per host, where output goes.
pub(super) struct Run {
    pub(super) target: Target,
    pub(super) connections: Vec<Connection>,
    pub(super) control_dir: PathBuf,
    pub(super) post_deploy: String,
    pub(super) owner: String,
    pub(super) token: String,
    pub(super) json: bool,
    pub(super) interrupted: Arc<AtomicBool>,
    /// Lines of several hosts are prefixed with their host.
    pub(super) prefixed: bool,
    /// Serialises output lines of hosts working at once.
    pub(super) output: Mutex<()>,
    /// When the command began (progress lines say how long since).
    pub(super) began: std::time::Instant,
}

impl Run {
    pub(super) fn new(target: Target, file: &str, json: bool) -> Result<Run> {
        let control_dir = control_dir()?;
        let connections: Vec<Connection> = target
            .hosts
            .iter()
            .map(|host| Connection::new(host.clone(), &control_dir))
            .collect();
        let interrupted = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
        }
        // PM2's default: the file as typed, run from the release (an absolute path here means
        // nothing there: its name is used).
        let typed = Path::new(file);
        let remote_file = if typed.is_absolute() {
            typed
                .file_name()
                .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned())
        } else {
            file.to_string()
        };
        let post_deploy = target.hooks.post_deploy.clone().unwrap_or_else(|| {
            format!(
                "kelpie startOrReload {} --env {}",
                remote::quote(&remote_file),
                remote::quote(&target.env)
            )
        });
        let prefixed = connections.len() > 1;
        Ok(Run {
            owner: owner(&target.env),
            token: format!(
                "{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
            target,
            connections,
            control_dir,
            post_deploy,
            json,
            interrupted,
            prefixed,
            output: Mutex::new(()),
            began: std::time::Instant::now(),
        })
    }

    pub(super) fn prelude<'a>(&'a self, connection: &'a Connection) -> Prelude<'a> {
        Prelude {
            target: &self.target,
            host: &connection.host,
            post_deploy: &self.post_deploy,
            owner: &self.owner,
            token: &self.token,
        }
    }

    /// A line of a host's output (a hook's, git's), shown as it comes.
    pub(super) fn show(&self, connection: &Connection, text: &str) {
        let _serial = self.output.lock().unwrap_or_else(|p| p.into_inner());
        let line = if self.prefixed {
            format!("[{}] {text}", connection.label)
        } else {
            text.to_string()
        };
        if self.json {
            eprintln!("{line}");
        } else {
            outln!("{line}");
        }
    }

    /// Progress: which host is at which step, and when (seconds since the command began).
    pub(super) fn progress(&self, connection: &Connection, step: &str) {
        let _serial = self.output.lock().unwrap_or_else(|p| p.into_inner());
        let at = self.began.elapsed().as_secs_f64();
        if self.json {
            eprintln!("--> {at:5.1}s {}: {step}", connection.label);
        } else {
            outln!("--> {at:5.1}s {}: {step}", connection.label);
        }
    }

    /// Run a script on one host, its output shown and its steps as progress.
    pub(super) fn run_on(&self, connection: &Connection, script: &str) -> Outcome {
        connection.run(script, &|seen| match seen {
            Seen::Line(text) => self.show(connection, text),
            Seen::Step(step) => self.progress(connection, step),
        })
    }

    /// `f` on every host, `parallel` at a time; results in the hosts' order.
    pub(super) fn each<T: Send>(&self, f: impl Fn(&Connection) -> T + Sync) -> Vec<T> {
        let count = self.connections.len();
        let workers = match self.target.parallel {
            0 => count,
            n => n.min(count),
        };
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<T>>> = Mutex::new((0..count).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(connection) = self.connections.get(index) else {
                        break;
                    };
                    let result = f(connection);
                    results.lock().unwrap_or_else(|p| p.into_inner())[index] = Some(result);
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
            .collect()
    }

    pub(super) fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Close every connection and remove their sockets' directory.
    pub(super) fn close(&self) {
        self.each(Connection::close);
        let _ = std::fs::remove_dir_all(&self.control_dir);
    }
}

pub(super) fn outln_or_err(json: bool, line: &str) {
    if json {
        eprintln!("{line}");
    } else {
        outln!("{line}");
    }
}

/// A private directory for the connections' sockets (short: a socket path has ~100 bytes).
pub(super) fn control_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let temp = std::env::temp_dir();
    // Those of deploys that were killed (their process is gone) are removed first.
    if let Ok(entries) = std::fs::read_dir(&temp) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_prefix("kelpie-deploy-"));
            let pid = pid.and_then(|pid| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| !kelpie_sys::pid_alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = temp.join(format!("kelpie-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Who deploys, as the lock names them: `user@machine (pid, since): deploy <env>`.
pub(super) fn owner(env: &str) -> String {
    let user = kelpie_sys::username(kelpie_sys::current_uid());
    let machine = kelpie_sys::host_name().unwrap_or_else(|| "localhost".to_string());
    let since = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    format!(
        "{user}@{machine} (pid {}, since {since}) deploying {env}",
        std::process::id()
    )
}

pub(super) fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}
