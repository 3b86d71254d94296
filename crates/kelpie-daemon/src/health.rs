//! Health checks of a running instance: one probe (an HTTP GET, a TCP connection or a shell
//! command) and the loop that repeats it and tells the instance task when the process becomes
//! healthy, fails, or has failed often enough in a row to be restarted.
//!
//! The counting (start period, failures in a row, what is worth a report) lives in the pure
//! [`Verdicts`]; [`run_checks`] only sleeps, probes and forwards what it decides.

use kelpie_core::{HealthCheck, HealthProbe};
use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// Where an `exec` probe runs: the app's working directory and its whole environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecContext {
    /// Working directory of the command.
    pub cwd: PathBuf,
    /// The command's environment, exactly (nothing of the daemon's is inherited).
    pub env: Vec<(String, String)>,
    /// The app's user and groups, when it runs as another user: the command runs as it too.
    pub identity: Option<kelpie_sys::Identity>,
}

/// What the check loop tells the instance task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthReport {
    /// A probe succeeded: the first success, or the first after counted failures.
    Healthy,
    /// A probe failed and the failure counts; `consecutive` failures in a row so far.
    Failing {
        /// Counted failures in a row, this one included (below the check's `failures`).
        consecutive: u32,
        /// Why this probe failed.
        reason: String,
    },
    /// The check's `failures` probes in a row failed; the loop has stopped and the instance
    /// should be restarted.
    Unhealthy {
        /// Why the last probe failed.
        reason: String,
    },
}

/// When a start period is set, the first probe comes this soon (or one interval, if shorter):
/// failures then cost nothing, and an early success ends the start period early.
const FIRST_PROBE_IN_START_PERIOD: Duration = Duration::from_secs(1);

/// Intervals are at least this long, so a zero in a config cannot make the loop spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Longest HTTP status line accepted; real ones are a few dozen bytes.
const STATUS_LINE_MAX: usize = 1024;

/// Bytes of an exec probe's stderr kept for the reason; the rest is read and dropped so the
/// command never blocks on a full pipe.
const STDERR_KEEP: usize = 4096;

/// Longest stderr line quoted in a reason, in characters.
const REASON_LINE_MAX: usize = 200;

/// How long a timed-out exec command, once sent SIGKILL, is waited for before it is left to
/// tokio's reaper (only a process stuck in the kernel takes longer).
const REAP_WAIT: Duration = Duration::from_secs(1);

/// Probe once: `Ok` when healthy, else a short reason meant for people.
///
/// The whole probe (name lookup, connection, answer; or the command's run) takes at most
/// `timeout`, plus the moment needed to kill and reap a timed-out command.
pub async fn probe(
    probe: &HealthProbe,
    timeout: Duration,
    exec: &ExecContext,
) -> Result<(), String> {
    match probe {
        HealthProbe::Http { url, status } => http_probe(url, *status, timeout).await,
        HealthProbe::Tcp { host, port } => tcp_probe(host, *port, timeout).await,
        HealthProbe::Exec { command } => exec_probe(command, timeout, exec).await,
    }
}

/// Run `check` for one process until it is found unhealthy (after sending
/// [`HealthReport::Unhealthy`]) or nobody listens to `reports` any more.
///
/// The instance task spawns this when its process starts and aborts it when the process ends;
/// an abort in the middle of an exec probe kills the command's whole process group.
pub async fn run_checks(
    check: HealthCheck,
    exec: ExecContext,
    reports: UnboundedSender<HealthReport>,
) {
    let timeout = Duration::from_millis(check.timeout_ms);
    let probe_once = || probe(&check.probe, timeout, &exec);
    run_checks_with(&check, probe_once, reports).await;
}

/// [`run_checks`] with its probe given: the instance's in-process tests probe a fake process.
pub async fn run_checks_with<F>(
    check: &HealthCheck,
    mut probe_once: impl FnMut() -> F,
    reports: UnboundedSender<HealthReport>,
) where
    F: Future<Output = Result<(), String>>,
{
    let mut verdicts = Verdicts::new(check, Instant::now());
    let mut next = verdicts.first_probe_at();
    loop {
        // A healthy process gives nothing to send, so a dropped receiver must be noticed here.
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = reports.closed() => return,
        }
        let started = Instant::now();
        let outcome = probe_once().await;
        let report = match outcome {
            Ok(()) => verdicts.success(),
            Err(reason) => verdicts.failure(started, reason),
        };
        if let Some(report) = report {
            let last = matches!(report, HealthReport::Unhealthy { .. });
            if reports.send(report).is_err() || last {
                return;
            }
        }
        next = verdicts.next_probe_at(started, Instant::now());
    }
}

/// The bookkeeping of one check, without IO: when to probe, which failures count, and which
/// outcomes are worth a report. Times are passed in so tests need no clock.
#[derive(Debug)]
struct Verdicts {
    started: Instant,
    interval: Duration,
    failures: u32,
    /// End of the start period; `None` once it is over, by time or by a first success.
    grace_until: Option<Instant>,
    consecutive: u32,
    /// Whether the last report was `Healthy`, so that only changes are reported.
    healthy: bool,
}

impl Verdicts {
    fn new(check: &HealthCheck, started: Instant) -> Self {
        Verdicts {
            started,
            interval: Duration::from_millis(check.interval_ms).max(MIN_INTERVAL),
            // `failures: 0` cannot mean "never": one failure is then enough.
            failures: check.failures.max(1),
            grace_until: (check.start_period_ms > 0)
                .then(|| started + Duration::from_millis(check.start_period_ms)),
            consecutive: 0,
            healthy: false,
        }
    }

    /// Without a start period the process gets one interval to come up (as with Docker), since
    /// every failure counts; with one, failures are free, so probing early can only help.
    fn first_probe_at(&self) -> Instant {
        let delay = if self.grace_until.is_some() {
            self.interval.min(FIRST_PROBE_IN_START_PERIOD)
        } else {
            self.interval
        };
        self.started + delay
    }

    /// Probes start one interval apart; a probe that outlasted the interval is followed at once
    /// (never two at a time).
    fn next_probe_at(&self, probe_started: Instant, probe_ended: Instant) -> Instant {
        (probe_started + self.interval).max(probe_ended)
    }

    fn success(&mut self) -> Option<HealthReport> {
        // As in Docker: a success means the app is up, so later failures count even within the
        // start period.
        self.grace_until = None;
        self.consecutive = 0;
        let was_healthy = std::mem::replace(&mut self.healthy, true);
        (!was_healthy).then_some(HealthReport::Healthy)
    }

    /// A probe that started at `probe_started` failed. Failures of probes started within the
    /// start period are not counted nor reported.
    fn failure(&mut self, probe_started: Instant, reason: String) -> Option<HealthReport> {
        if self.grace_until.is_some_and(|end| probe_started < end) {
            return None;
        }
        self.grace_until = None;
        self.healthy = false;
        self.consecutive = self.consecutive.saturating_add(1);
        Some(if self.consecutive >= self.failures {
            HealthReport::Unhealthy { reason }
        } else {
            HealthReport::Failing {
                consecutive: self.consecutive,
                reason,
            }
        })
    }
}

/// `fut`, or the "no answer" reason once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    from: &str,
    fut: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no answer within {} ms from {from}",
                timeout.as_millis()
            ))
        })
}

/// An I/O error's text without the ` (os error N)` tail, which tells people nothing.
fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text[..cut].to_string(),
        _ => text,
    }
}

/// `host:port` as people write it, brackets around an IPv6 address.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Connect to the first address of `host` that accepts; `shown` names it in reasons.
async fn connect(host: &str, port: u16, shown: &str) -> Result<TcpStream, String> {
    let addresses = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {}", plain(&e)))?;
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        None => format!("{host} resolves to no address"),
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {shown}")
        }
        Some(e) => format!("cannot connect to {shown}: {}", plain(&e)),
    })
}

async fn tcp_probe(host: &str, port: u16, timeout: Duration) -> Result<(), String> {
    // A host may come bracketed (`[::1]`) from a config; the resolver wants it bare.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let shown = authority(bare, port);
    // Dropping the stream closes it: the probe only asks whether something accepts.
    within(timeout, &shown, connect(bare, port, &shown))
        .await
        .map(drop)
}

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, PartialEq, Eq)]
struct HttpTarget {
    /// Host for the resolver: a name or an address, IPv6 without brackets.
    host: String,
    port: u16,
    /// `host:port` for the `Host` header and for reasons.
    authority: String,
    /// Path and query, percent-encoded where needed, never empty.
    target: String,
}

/// Parse `http://host[:port][/path][?query][#fragment]` (IPv6 in brackets, port 80 by
/// default). Only plain HTTP: there is no TLS client in the daemon.
fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host_port, tail) = rest.split_at(end);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("unclosed [ in {url}"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| format!("bad port in {url}"))?,
                    ),
                ),
            }
        }
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    // The host goes into a header line: nothing that could end it or add another.
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b));
    if !host_ok {
        return Err(format!("bad host in {url}"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port in {url}"))?,
    };
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    Ok(HttpTarget {
        host: host.to_string(),
        port,
        authority: authority(host, port),
        target: request_target(tail),
    })
}

/// The request line's target: `/` first, and every byte that would break the line (spaces,
/// controls, non-ASCII) percent-encoded.
fn request_target(tail: &str) -> String {
    let mut target = String::with_capacity(tail.len() + 1);
    if !tail.starts_with('/') {
        target.push('/');
    }
    for byte in tail.bytes() {
        if byte.is_ascii_graphic() {
            target.push(char::from(byte));
        } else {
            target.push_str(&format!("%{byte:02X}"));
        }
    }
    target
}

async fn http_probe(url: &str, expected: Option<u16>, timeout: Duration) -> Result<(), String> {
    let target = parse_http_url(url)?;
    let code = within(timeout, url, async {
        let mut stream = connect(&target.host, target.port, &target.authority).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kelpie-health\r\nConnection: close\r\n\r\n",
            target.target, target.authority
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| {
            format!(
                "cannot send the request to {}: {}",
                target.authority,
                plain(&e)
            )
        })?;
        read_status(&mut stream, url).await
    })
    .await?;
    match expected {
        Some(want) if code == want => Ok(()),
        Some(want) => Err(format!("HTTP {code} from {url} (expected {want})")),
        None if (200..=399).contains(&code) => Ok(()),
        None => Err(format!("HTTP {code} from {url} (expected 2xx or 3xx)")),
    }
}

/// Read until the status line is complete and return its code; the headers and body are left
/// unread (the connection is closed right after).
async fn read_status(stream: &mut (impl AsyncRead + Unpin), url: &str) -> Result<u16, String> {
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("cannot read the answer from {url}: {}", plain(&e)))?;
        if n == 0 {
            if line.is_empty() {
                return Err(format!("{url} closed the connection without answering"));
            }
            // A peer may close right after an unterminated line; judge what came.
            return parse_status_line(&line).ok_or_else(|| not_http(url, &line));
        }
        line.extend_from_slice(&chunk[..n]);
        if let Some(end) = memchr::memchr(b'\n', &line) {
            return parse_status_line(&line[..end]).ok_or_else(|| not_http(url, &line[..end]));
        }
        if line.len() > STATUS_LINE_MAX {
            return Err(not_http(url, &line));
        }
    }
}

fn not_http(url: &str, got: &[u8]) -> String {
    let text = String::from_utf8_lossy(got);
    let start: String = text.trim().chars().take(60).collect();
    format!("not an HTTP answer from {url}: {start:?}")
}

/// The code of `HTTP/1.1 200 OK` (any version; the reason phrase may be missing).
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"HTTP/")?;
    let space = memchr::memchr(b' ', rest)?;
    let after_version = &rest[space + 1..];
    let code = after_version.get(..3)?;
    let ends_right = matches!(after_version.get(3), None | Some(b' '));
    if !ends_right || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

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

async fn exec_probe(command: &str, timeout: Duration, ctx: &ExecContext) -> Result<(), String> {
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
    // Recorded as ours before anyone can reap it (see `crate::reaper`): tokio waits for it.
    let spawning = crate::reaper::spawning();
    let spawned = Command::from(shell)
        // If this future is dropped (the check loop aborted), tokio kills the shell and reaps it
        // in the background; `group` below kills the rest of its group first.
        .kill_on_drop(true)
        .spawn();
    spawning.record(spawned.as_ref().ok().and_then(|c| c.id()));
    let mut child = spawned.map_err(|e| {
        format!(
            "exec `{command}` could not start in {}: {}",
            ctx.cwd.display(),
            plain(&e)
        )
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
            return Err(format!(
                "exec `{command}`: cannot wait for it: {}",
                plain(&e)
            ))
        }
        Err(_) => {
            group.fire();
            // SIGKILL cannot be caught: the shell is gone at once, and reaping it here rather
            // than in the background keeps no zombie around for the next interval.
            let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
            return Err(format!(
                "exec `{command}` timed out after {} ms",
                timeout.as_millis()
            ));
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

fn exec_verdict(command: &str, status: ExitStatus, stderr: &[u8]) -> Result<(), String> {
    if status.success() {
        return Ok(());
    }
    let mut reason = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exec `{command}` exited with code {code}"),
        (None, Some(signal)) => format!(
            "exec `{command}` was killed by {}",
            kelpie_sys::signal_name(signal)
        ),
        (None, None) => format!("exec `{command}` failed"),
    };
    let text = String::from_utf8_lossy(stderr);
    if let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
        reason.push_str(": ");
        reason.extend(line.chars().take(REASON_LINE_MAX));
    }
    Err(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn check(interval_ms: u64, failures: u32, start_period_ms: u64) -> HealthCheck {
        HealthCheck {
            probe: HealthProbe::Exec {
                command: "true".into(),
            },
            interval_ms,
            timeout_ms: 1_000,
            failures,
            start_period_ms,
        }
    }

    fn failing(consecutive: u32, reason: &str) -> Option<HealthReport> {
        Some(HealthReport::Failing {
            consecutive,
            reason: reason.into(),
        })
    }

    // --- counting, without IO ---

    #[test]
    fn healthy_is_reported_on_the_first_success_and_on_recoveries_only() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 3, 0), t0);
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(v.success(), None);
        assert_eq!(v.failure(t0, "a".into()), failing(1, "a"));
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(v.success(), None);
    }

    #[test]
    fn failures_in_a_row_end_unhealthy_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 3, 0), t0);
        assert_eq!(v.failure(t0, "a".into()), failing(1, "a"));
        assert_eq!(v.failure(t0, "b".into()), failing(2, "b"));
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(v.failure(t0, "c".into()), failing(1, "c"));
        assert_eq!(v.failure(t0, "d".into()), failing(2, "d"));
        assert_eq!(
            v.failure(t0, "e".into()),
            Some(HealthReport::Unhealthy { reason: "e".into() })
        );
    }

    #[test]
    fn zero_failures_means_one() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 0, 0), t0);
        assert_eq!(
            v.failure(t0, "x".into()),
            Some(HealthReport::Unhealthy { reason: "x".into() })
        );
    }

    #[test]
    fn failures_of_probes_started_in_the_start_period_are_not_counted() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 2, 1_000), t0);
        assert_eq!(v.failure(t0 + Duration::from_millis(100), "a".into()), None);
        assert_eq!(v.failure(t0 + Duration::from_millis(999), "b".into()), None);
        assert_eq!(
            v.failure(t0 + Duration::from_millis(1_000), "c".into()),
            failing(1, "c")
        );
        // Once counting has begun, an earlier probe start does not bring the grace back.
        assert_eq!(
            v.failure(t0 + Duration::from_millis(500), "d".into()),
            Some(HealthReport::Unhealthy { reason: "d".into() })
        );
    }

    #[test]
    fn a_success_ends_the_start_period_early() {
        let t0 = Instant::now();
        let mut v = Verdicts::new(&check(100, 2, 10_000), t0);
        assert_eq!(v.failure(t0 + Duration::from_millis(100), "a".into()), None);
        assert_eq!(v.success(), Some(HealthReport::Healthy));
        assert_eq!(
            v.failure(t0 + Duration::from_millis(300), "b".into()),
            failing(1, "b")
        );
    }

    #[test]
    fn probes_are_scheduled_one_interval_apart_and_never_overlap() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let plain = Verdicts::new(&check(5_000, 3, 0), t0);
        assert_eq!(plain.first_probe_at(), t0 + ms(5_000));
        let graced = Verdicts::new(&check(5_000, 3, 30_000), t0);
        assert_eq!(graced.first_probe_at(), t0 + FIRST_PROBE_IN_START_PERIOD);
        let short = Verdicts::new(&check(200, 3, 30_000), t0);
        assert_eq!(short.first_probe_at(), t0 + ms(200));
        assert_eq!(plain.next_probe_at(t0, t0 + ms(30)), t0 + ms(5_000));
        assert_eq!(plain.next_probe_at(t0, t0 + ms(6_000)), t0 + ms(6_000));
        let zero = Verdicts::new(&check(0, 3, 0), t0);
        assert_eq!(zero.first_probe_at(), t0 + MIN_INTERVAL);
    }

    // --- parsing ---

    #[test]
    fn http_urls_are_parsed() {
        let t = parse_http_url("http://127.0.0.1:3000/health?deep=1#x").expect("parse");
        assert_eq!(
            t,
            HttpTarget {
                host: "127.0.0.1".into(),
                port: 3000,
                authority: "127.0.0.1:3000".into(),
                target: "/health?deep=1".into(),
            }
        );
        let t = parse_http_url("HTTP://example.com").expect("parse");
        assert_eq!((t.port, t.authority.as_str()), (80, "example.com:80"));
        assert_eq!(t.target, "/");
        let t = parse_http_url("http://[::1]:8080?q").expect("parse");
        assert_eq!(t.host, "::1");
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.target, "/?q");
        let t = parse_http_url("http://[::1]/a b/é").expect("parse");
        assert_eq!(t.port, 80);
        assert_eq!(t.target, "/a%20b/%C3%A9");
        let t = parse_http_url("http://localhost:/").expect("parse");
        assert_eq!(t.port, 80);
    }

    #[test]
    fn bad_http_urls_are_refused_with_a_reason() {
        assert_eq!(
            parse_http_url("https://x/").map(drop),
            Err("not an http:// URL: https://x/".into())
        );
        assert_eq!(
            parse_http_url("http://x:99999/").map(drop),
            Err("bad port in http://x:99999/".into())
        );
        assert!(parse_http_url("http://x:0/").is_err());
        assert!(parse_http_url("http:///health").is_err());
        assert!(parse_http_url("http://[::1/").is_err());
        assert!(parse_http_url("http://[::1]x/").is_err());
        assert!(parse_http_url("http://a\r\nX-Evil: 1/").is_err());
        assert!(parse_http_url("http://user@host/").is_err());
    }

    #[test]
    fn status_lines_are_parsed() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
        assert_eq!(parse_status_line(b"HTTP/2 204 No Content"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 20"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 abc OK"), None);
    }

    // --- HTTP and TCP against real sockets ---

    #[derive(Clone)]
    enum Reply {
        /// The status currently stored, at once.
        Status(Arc<AtomicU16>),
        /// 200, after a delay.
        After(Duration),
        /// Half a status line, then nothing.
        Partial,
        /// Something that is not HTTP.
        Garbage,
    }

    struct Server {
        port: u16,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("http://127.0.0.1:{}{path}", self.port)
        }
    }

    /// A tiny HTTP server on 127.0.0.1; it lives as long as the test's runtime.
    async fn server(reply: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let reply = reply.clone();
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.lock()
                        .expect("lock")
                        .push(String::from_utf8_lossy(&request).into_owned());
                    let answer = match reply {
                        Reply::Status(code) => answer(code.load(Ordering::SeqCst)),
                        Reply::After(delay) => {
                            tokio::time::sleep(delay).await;
                            answer(200)
                        }
                        Reply::Partial => {
                            let _ = socket.write_all(b"HTTP/1.1 2").await;
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        Reply::Garbage => b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
                    };
                    let _ = socket.write_all(&answer).await;
                });
            }
        });
        Server { port, requests }
    }

    fn answer(code: u16) -> Vec<u8> {
        format!("HTTP/1.1 {code} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .into_bytes()
    }

    fn fixed(code: u16) -> Reply {
        Reply::Status(Arc::new(AtomicU16::new(code)))
    }

    fn http(url: &str, status: Option<u16>) -> HealthProbe {
        HealthProbe::Http {
            url: url.into(),
            status,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// A port nothing listens on (bound, then released).
    /// A port that refuses connections for as long as the socket is kept: bound, not
    /// listening (a port merely freed could be taken by a parallel test).
    fn closed_port() -> (tokio::net::TcpSocket, u16) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let port = socket.local_addr().expect("address").port();
        (socket, port)
    }

    #[tokio::test]
    async fn http_200_is_healthy_and_the_request_is_a_plain_get() {
        let srv = server(fixed(200)).await;
        let url = srv.url("/health?deep=1");
        assert_eq!(
            probe(&http(&url, None), SECOND, &ExecContext::default()).await,
            Ok(())
        );
        let requests = srv.requests.lock().expect("lock").clone();
        assert_eq!(
            requests,
            vec![format!(
                "GET /health?deep=1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: kelpie-health\r\n\
                 Connection: close\r\n\r\n",
                srv.port
            )]
        );
    }

    #[tokio::test]
    async fn http_3xx_is_healthy_and_500_is_not() {
        let srv = server(fixed(302)).await;
        let url = srv.url("/");
        assert_eq!(
            probe(&http(&url, None), SECOND, &ExecContext::default()).await,
            Ok(())
        );
        let srv = server(fixed(500)).await;
        let url = srv.url("/health");
        assert_eq!(
            probe(&http(&url, None), SECOND, &ExecContext::default()).await,
            Err(format!("HTTP 500 from {url} (expected 2xx or 3xx)"))
        );
    }

    #[tokio::test]
    async fn an_expected_status_must_match_exactly() {
        let srv = server(fixed(204)).await;
        let url = srv.url("/health");
        let exec = ExecContext::default();
        assert_eq!(probe(&http(&url, Some(204)), SECOND, &exec).await, Ok(()));
        assert_eq!(
            probe(&http(&url, Some(200)), SECOND, &exec).await,
            Err(format!("HTTP 204 from {url} (expected 200)"))
        );
    }

    #[tokio::test]
    async fn a_slow_server_fails_at_the_timeout() {
        let srv = server(Reply::After(Duration::from_secs(5))).await;
        let url = srv.url("/slow");
        let started = Instant::now();
        let timeout = Duration::from_millis(300);
        assert_eq!(
            probe(&http(&url, None), timeout, &ExecContext::default()).await,
            Err(format!("no answer within 300 ms from {url}"))
        );
        let took = started.elapsed();
        assert!(took >= timeout && took < 2 * SECOND, "took {took:?}");
    }

    #[tokio::test]
    async fn half_a_status_line_then_silence_is_a_timeout() {
        let srv = server(Reply::Partial).await;
        let url = srv.url("/");
        assert_eq!(
            probe(
                &http(&url, None),
                Duration::from_millis(300),
                &ExecContext::default()
            )
            .await,
            Err(format!("no answer within 300 ms from {url}"))
        );
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_says_what_came() {
        let srv = server(Reply::Garbage).await;
        let url = srv.url("/");
        assert_eq!(
            probe(&http(&url, None), SECOND, &ExecContext::default()).await,
            Err(format!(
                "not an HTTP answer from {url}: \"SSH-2.0-OpenSSH_9.6\""
            ))
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        let (_reserved, port) = closed_port();
        let url = format!("http://127.0.0.1:{port}/health");
        let exec = ExecContext::default();
        assert_eq!(
            probe(&http(&url, None), SECOND, &exec).await,
            Err(format!("connection refused by 127.0.0.1:{port}"))
        );
        let tcp = HealthProbe::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            probe(&tcp, SECOND, &exec).await,
            Err(format!("connection refused by 127.0.0.1:{port}"))
        );
    }

    #[tokio::test]
    async fn tcp_is_healthy_when_something_accepts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let tcp = HealthProbe::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(probe(&tcp, SECOND, &ExecContext::default()).await, Ok(()));
    }

    #[tokio::test]
    async fn ipv6_loopback_works_where_the_machine_has_it() {
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            // Parsing is covered above.
            kelpie_testkit::skip("no IPv6 loopback (::1) here");
            return;
        };
        let port = listener.local_addr().expect("address").port();
        let tcp = HealthProbe::Tcp {
            host: "[::1]".into(),
            port,
        };
        assert_eq!(probe(&tcp, SECOND, &ExecContext::default()).await, Ok(()));
        drop(listener);
        assert_eq!(
            probe(&tcp, SECOND, &ExecContext::default()).await,
            Err(format!("connection refused by [::1]:{port}"))
        );
    }

    // --- exec, with a real sh ---

    fn context(dir: &std::path::Path) -> ExecContext {
        ExecContext {
            cwd: dir.to_path_buf(),
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                ("APP_FLAG".into(), "on".into()),
            ],
            identity: None,
        }
    }

    #[tokio::test]
    async fn an_exec_check_runs_as_the_apps_user() {
        let Some((uid, gid)) = kelpie_sys::lookup_user("nobody") else {
            kelpie_testkit::skip("this machine has no `nobody` user to run the check as");
            return;
        };
        if kelpie_sys::current_uid() != 0 {
            kelpie_testkit::skip("running a check as another user needs root");
            return;
        }
        let ctx = ExecContext {
            identity: Some(kelpie_sys::Identity {
                uid: Some(uid),
                gid,
                groups: vec![gid],
            }),
            ..context(std::path::Path::new("/"))
        };
        let check = HealthProbe::Exec {
            command: format!("test \"$(id -u)\" = {uid}"),
        };
        assert_eq!(probe(&check, Duration::from_secs(5), &ctx).await, Ok(()));
    }

    fn exec(command: &str) -> HealthProbe {
        HealthProbe::Exec {
            command: command.into(),
        }
    }

    /// The pid a command wrote into `file`, once it is there.
    async fn pid_in(file: &std::path::Path) -> u32 {
        for _ in 0..200 {
            if let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no pid in {}", file.display());
    }

    /// Whether `pid` still runs. A zombie counts as gone: a grandchild killed with its group is
    /// reparented, and reaping it is up to its new parent, not to us.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let (_, rest) = stat.rsplit_once(')')?;
                rest.trim_start().chars().next()
            })
            .is_some_and(|state| state != 'Z')
    }

    /// Wait (briefly) for `pid` to satisfy `gone`.
    async fn becomes_gone(pid: u32, gone: impl Fn(u32) -> bool) -> bool {
        for _ in 0..100 {
            if gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn exec_exit_0_is_healthy_and_runs_in_the_given_cwd_and_env_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cwd = dir.path().canonicalize().expect("canonical");
        let command = format!(
            "[ \"$(pwd -P)\" = '{}' ] && [ \"$APP_FLAG\" = on ] && [ -z \"$HOME\" ]",
            cwd.display()
        );
        assert_eq!(probe(&exec(&command), SECOND, &context(&cwd)).await, Ok(()));
        assert_eq!(probe(&exec("exit 0"), SECOND, &context(&cwd)).await, Ok(()));
    }

    #[tokio::test]
    async fn exec_failure_gives_the_code_and_the_first_stderr_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = "echo; echo '  oops  ' >&2; echo second >&2; exit 3";
        assert_eq!(
            probe(&exec(command), SECOND, &context(dir.path())).await,
            Err(format!("exec `{command}` exited with code 3: oops"))
        );
        assert_eq!(
            probe(&exec("exit 2"), SECOND, &context(dir.path())).await,
            Err("exec `exit 2` exited with code 2".into())
        );
        assert_eq!(
            probe(&exec("kill -9 $$"), SECOND, &context(dir.path())).await,
            Err("exec `kill -9 $$` was killed by SIGKILL".into())
        );
    }

    #[tokio::test]
    async fn a_flood_on_stderr_neither_blocks_nor_makes_a_long_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = "head -c 300000 /dev/zero | tr '\\0' x >&2; exit 1";
        let reason = probe(&exec(command), 2 * SECOND, &context(dir.path()))
            .await
            .expect_err("exit 1");
        let prefix = format!("exec `{command}` exited with code 1: ");
        let quoted = reason.strip_prefix(&prefix).expect("prefix");
        assert_eq!(quoted, "x".repeat(REASON_LINE_MAX));
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_says_where() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("gone");
        let reason = probe(&exec("true"), SECOND, &context(&missing))
            .await
            .expect_err("no cwd");
        assert!(
            reason.starts_with(&format!(
                "exec `true` could not start in {}: ",
                missing.display()
            )),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_timed_out_command_is_killed_with_its_group_and_reaped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let leader = dir.path().join("leader");
        let straggler = dir.path().join("straggler");
        // The shell leads the group; `sleep 30 &` is a member it does not wait for.
        let command = format!(
            "sleep 30 & echo $! >'{}'; echo $$ >'{}'; exec sleep 30",
            straggler.display(),
            leader.display()
        );
        let started = Instant::now();
        let reason = probe(
            &exec(&command),
            Duration::from_millis(300),
            &context(dir.path()),
        )
        .await;
        assert!(
            started.elapsed() < 2 * SECOND,
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            reason,
            Err(format!("exec `{command}` timed out after 300 ms"))
        );
        // The leader was our child: killed and reaped, not even a zombie.
        assert!(!kelpie_sys::pid_alive(pid_in(&leader).await));
        let straggler = pid_in(&straggler).await;
        assert!(becomes_gone(straggler, |p| !running(p)).await);
    }

    #[tokio::test]
    async fn what_a_healthy_command_leaves_behind_is_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let straggler = dir.path().join("straggler");
        let command = format!(
            "sleep 30 2>/dev/null & echo $! >'{}'; exit 0",
            straggler.display()
        );
        assert_eq!(
            probe(&exec(&command), SECOND, &context(dir.path())).await,
            Ok(())
        );
        let straggler = pid_in(&straggler).await;
        assert!(becomes_gone(straggler, |p| !running(p)).await);
    }

    // --- the loop ---

    /// The next report, or a panic after two seconds.
    async fn next(reports: &mut mpsc::UnboundedReceiver<HealthReport>) -> HealthReport {
        tokio::time::timeout(2 * SECOND, reports.recv())
            .await
            .expect("a report in time")
            .expect("the loop still runs")
    }

    fn http_check(url: &str, failures: u32, start_period_ms: u64) -> HealthCheck {
        HealthCheck {
            probe: http(url, None),
            interval_ms: 100,
            timeout_ms: 1_000,
            failures,
            start_period_ms,
        }
    }

    fn is_500(report: &HealthReport, url: &str) -> bool {
        let reason = match report {
            HealthReport::Failing { reason, .. } | HealthReport::Unhealthy { reason } => reason,
            HealthReport::Healthy => return false,
        };
        *reason == format!("HTTP 500 from {url} (expected 2xx or 3xx)")
    }

    #[tokio::test]
    async fn the_loop_reports_healthy_then_each_failure_then_unhealthy_and_stops() {
        let code = Arc::new(AtomicU16::new(200));
        let srv = server(Reply::Status(Arc::clone(&code))).await;
        let url = srv.url("/health");
        let (tx, mut reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_checks(
            http_check(&url, 3, 0),
            ExecContext::default(),
            tx,
        ));
        assert_eq!(next(&mut reports).await, HealthReport::Healthy);
        code.store(500, Ordering::SeqCst);
        let switched = Instant::now();
        for consecutive in 1..=2 {
            let report = next(&mut reports).await;
            assert!(
                matches!(report, HealthReport::Failing { consecutive: c, .. } if c == consecutive)
                    && is_500(&report, &url),
                "{report:?}"
            );
        }
        let report = next(&mut reports).await;
        assert!(
            matches!(report, HealthReport::Unhealthy { .. }) && is_500(&report, &url),
            "{report:?}"
        );
        // Three probes, one interval apart, the first at most one interval away.
        let took = switched.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < SECOND,
            "took {took:?}"
        );
        tokio::time::timeout(SECOND, task)
            .await
            .expect("the loop stops")
            .expect("no panic");
        assert_eq!(reports.recv().await, None);
    }

    #[tokio::test]
    async fn failures_in_the_start_period_are_not_counted() {
        let srv = server(fixed(500)).await;
        let url = srv.url("/health");
        let (tx, mut reports) = mpsc::unbounded_channel();
        let started = Instant::now();
        let task = tokio::spawn(run_checks(
            http_check(&url, 2, 450),
            ExecContext::default(),
            tx,
        ));
        let first = next(&mut reports).await;
        let at = started.elapsed();
        assert!(
            matches!(first, HealthReport::Failing { consecutive: 1, .. }),
            "{first:?}"
        );
        assert!(
            at >= Duration::from_millis(450),
            "first report after {at:?}"
        );
        assert!(matches!(
            next(&mut reports).await,
            HealthReport::Unhealthy { .. }
        ));
        // Probes did run during the start period, every interval.
        assert!(srv.requests.lock().expect("lock").len() >= 5);
        tokio::time::timeout(SECOND, task)
            .await
            .expect("the loop stops")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_success_in_the_start_period_makes_the_next_failures_count() {
        let code = Arc::new(AtomicU16::new(200));
        let srv = server(Reply::Status(Arc::clone(&code))).await;
        let url = srv.url("/health");
        let (tx, mut reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_checks(
            http_check(&url, 2, 60_000),
            ExecContext::default(),
            tx,
        ));
        assert_eq!(next(&mut reports).await, HealthReport::Healthy);
        code.store(500, Ordering::SeqCst);
        assert!(matches!(
            next(&mut reports).await,
            HealthReport::Failing { consecutive: 1, .. }
        ));
        assert!(matches!(
            next(&mut reports).await,
            HealthReport::Unhealthy { .. }
        ));
        tokio::time::timeout(SECOND, task)
            .await
            .expect("the loop stops")
            .expect("no panic");
    }

    #[tokio::test]
    async fn aborting_the_loop_mid_probe_kills_the_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pid_file = dir.path().join("pid");
        let straggler_file = dir.path().join("straggler");
        let check = HealthCheck {
            probe: exec(&format!(
                "sleep 30 & echo $! >'{}'; echo $$ >'{}'; exec sleep 30",
                straggler_file.display(),
                pid_file.display()
            )),
            interval_ms: 10,
            timeout_ms: 30_000,
            failures: 3,
            start_period_ms: 0,
        };
        let (tx, _reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_checks(check, context(dir.path()), tx));
        let pid = pid_in(&pid_file).await;
        assert!(kelpie_sys::pid_alive(pid));
        task.abort();
        assert!(task.await.is_err_and(|e| e.is_cancelled()));
        // Killed at once; tokio reaps the orphaned child in the background.
        assert!(becomes_gone(pid, |p| !kelpie_sys::pid_alive(p)).await);
        // And what it started went with it: the whole group was killed.
        let straggler = pid_in(&straggler_file).await;
        assert!(becomes_gone(straggler, |p| !running(p)).await);
    }

    #[tokio::test]
    async fn the_loop_ends_when_nobody_listens() {
        let srv = server(fixed(200)).await;
        let (tx, mut reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_checks(
            http_check(&srv.url("/"), 3, 0),
            ExecContext::default(),
            tx,
        ));
        assert_eq!(next(&mut reports).await, HealthReport::Healthy);
        // From now on every probe succeeds: there is nothing to send that could fail.
        drop(reports);
        tokio::time::timeout(SECOND, task)
            .await
            .expect("the loop stops")
            .expect("no panic");
    }
}
