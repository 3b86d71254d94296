//! The exec probe: a shell command run in the app's directory, with its environment and as its
//! user, healthy on exit 0; its process group killed when it times out or is aborted, and the
//! first line of its stderr in the reason.

use super::{Ended, ExecContext, ProbeError};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, Command};
use tokio::time::Instant;

/// Bytes of an exec probe's stderr kept for the reason; the rest is read and dropped so the
/// command never blocks on a full pipe.
const STDERR_KEEP: usize = 4096;

/// Longest stderr line quoted in a reason, in characters.
pub(super) const REASON_LINE_MAX: usize = 200;

/// How long a timed-out exec command, once sent SIGKILL, is waited for before it is left to
/// tokio's reaper (only a process stuck in the kernel takes longer).
const REAP_WAIT: Duration = Duration::from_secs(1);

/// Kills the process group of an exec probe's shell, once: by hand, or when dropped.
///
/// `kill_group` may only be aimed at a group whose number cannot belong to anyone else, i.e.
/// while a member lives; the shell (its leader) is a member until it is reaped. So the guard
/// fires on drop, which comes before the `Child` is dropped and reaped, and [`exec_probe`]
/// fires it by hand right after its own reap.
struct GroupKill(Option<u32>);

impl GroupKill {
    fn fire(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (nothing left) is the usual and wanted outcome.
            let _ = kelpie_sys::kill_group(pgid, kelpie_sys::SIGKILL);
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.fire();
    }
}

pub(super) async fn exec_probe(
    command: &str,
    timeout: Duration,
    ctx: &ExecContext,
) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    // `/bin/sh` by path: with `env_clear` the lookup of a bare `sh` would depend on the app's
    // PATH, or on none at all.
    let mut shell = std::process::Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(command)
        .current_dir(&ctx.cwd)
        .env_clear()
        .envs(ctx.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own group, so that a timeout or an abort kills what the command started too.
    std::os::unix::process::CommandExt::process_group(&mut shell, 0);
    kelpie_sys::set_nice_and_identity(&mut shell, None, ctx.identity.clone());
    kelpie_sys::give_apps_their_cpus(&mut shell);
    // Recorded as ours before anyone can reap it (see `crate::reaper`): tokio waits for it.
    let spawning = crate::reaper::spawning();
    let spawned = Command::from(shell)
        // If this future is dropped (the check loop aborted), tokio kills the shell and reaps it
        // in the background; `group` below kills the rest of its group first.
        .kill_on_drop(true)
        .spawn();
    spawning.record(spawned.as_ref().ok().and_then(|c| c.id()));
    let mut child = spawned.map_err(|source| ProbeError::ExecStart {
        command: command.to_string(),
        cwd: ctx.cwd.display().to_string(),
        cause: source,
    })?;
    // Declared after `child`, hence dropped before it: the group is killed while its leader
    // is still unreaped.
    let mut group = GroupKill(child.id());
    let mut stderr = child.stderr.take();
    let mut kept = Vec::new();

    let waited =
        tokio::time::timeout_at(deadline, wait_draining(&mut child, &mut stderr, &mut kept)).await;
    let status = match waited {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            return Err(ProbeError::ExecWait {
                command: command.to_string(),
                cause: e,
            })
        }
        Err(_) => {
            group.fire();
            // SIGKILL cannot be caught: the shell is gone at once, and reaping it here rather
            // than in the background keeps no zombie around for the next interval.
            let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
            return Err(ProbeError::ExecTimeout {
                command: command.to_string(),
                ms: timeout.as_millis(),
            });
        }
    };
    // The shell is reaped, so its group number is reserved only while something it left behind
    // (`cmd &`) lives; pids are handed out in a cycle, so the number cannot come back within
    // these few instructions. Those leftovers would otherwise pile up, one per interval, and
    // hold the stderr pipe open.
    group.fire();
    if let Some(pipe) = stderr.as_mut() {
        // Whatever was written before the exit; a process that left the group (setsid) could
        // keep the pipe open, so this stops at the deadline.
        let _ = tokio::time::timeout_at(deadline, drain(pipe, &mut kept)).await;
    }
    exec_verdict(command, status, &kept)
}

/// Wait for the shell while reading its stderr, so a chatty command never blocks on a full
/// pipe; the first [`STDERR_KEEP`] bytes are kept in `kept`.
async fn wait_draining(
    child: &mut Child,
    stderr: &mut Option<ChildStderr>,
    kept: &mut Vec<u8>,
) -> io::Result<ExitStatus> {
    let mut chunk = [0u8; 1024];
    loop {
        let Some(pipe) = stderr.as_mut() else {
            return child.wait().await;
        };
        let at_end = tokio::select! {
            // Cancel safe, per tokio's documentation: losing the race loses nothing.
            status = child.wait() => return status,
            read = pipe.read(&mut chunk) => match read {
                Ok(0) | Err(_) => true,
                Ok(n) => {
                    keep(kept, &chunk[..n]);
                    false
                }
            },
        };
        if at_end {
            *stderr = None;
        }
    }
}

async fn drain(pipe: &mut ChildStderr, kept: &mut Vec<u8>) {
    let mut chunk = [0u8; 1024];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        keep(kept, &chunk[..n]);
    }
}

fn keep(kept: &mut Vec<u8>, data: &[u8]) {
    let room = STDERR_KEEP.saturating_sub(kept.len());
    kept.extend_from_slice(&data[..data.len().min(room)]);
}

fn exec_verdict(command: &str, status: ExitStatus, stderr: &[u8]) -> Result<(), ProbeError> {
    if status.success() {
        return Ok(());
    }
    let ended = match (status.code(), status.signal()) {
        (Some(code), _) => Ended::Code(code),
        (None, Some(signal)) => Ended::Signal(signal),
        (None, None) => Ended::Unknown,
    };
    let text = String::from_utf8_lossy(stderr);
    let stderr = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|line| line.chars().take(REASON_LINE_MAX).collect());
    Err(ProbeError::ExecFailed {
        command: command.to_string(),
        ended,
        stderr,
    })
}
