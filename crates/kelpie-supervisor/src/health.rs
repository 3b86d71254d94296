//! Health checks of a running instance: one probe (an HTTP GET, a TCP connection or a shell
//! command) and the loop that repeats it and tells the instance task when the process becomes
//! healthy, fails, or has failed often enough in a row to be restarted.
//!
//! The counting (start period, failures in a row, what is worth a report) lives in the pure
//! [`Verdicts`]; [`run_checks`] only sleeps, probes and forwards what it decides.
//!
//! Here: the probe by kind and the loop. Its parts, in `health/`: the counting (`verdicts`),
//! and the probes: `http`, `tcp` and `exec`.

mod exec;
mod http;
pub mod probe_error;
mod tcp;
mod verdicts;

pub(crate) use probe_error::{Ended, ProbeError, UrlError};
// The web page's view of other hosts asks them over the same plain HTTP.
use exec::exec_probe;
use http::http_probe;
pub use http::parse_http_url;
use kelpie_core::{HealthCheck, HealthProbe};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
pub use tcp::connect;
use tcp::tcp_probe;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use verdicts::Verdicts;

/// Where an `exec` probe runs: the app's working directory and its whole environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ExecContext {
    /// Working directory of the command.
    pub cwd: PathBuf,
    /// The command's environment, exactly (nothing of the daemon's is inherited).
    pub env: Vec<(String, String)>,
    /// The app's user and groups, when it runs as another user: the command runs as it too.
    pub identity: Option<kelpie_sys::Identity>,
}

/// What the check loop tells the instance task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HealthReport {
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

/// Probe once: `Ok` when healthy, else why not (its text a short reason meant for people).
///
/// The whole probe (name lookup, connection, answer; or the command's run) takes at most
/// `timeout`, plus the moment needed to kill and reap a timed-out command.
pub(crate) async fn probe(
    probe: &HealthProbe,
    timeout: Duration,
    exec: &ExecContext,
) -> Result<(), ProbeError> {
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
pub(crate) async fn run_checks(
    check: HealthCheck,
    exec: ExecContext,
    reports: UnboundedSender<HealthReport>,
) {
    let timeout = Duration::from_millis(check.timeout_ms);
    let probe_once = || probe(&check.probe, timeout, &exec);
    run_checks_with(&check, probe_once, reports).await;
}

/// [`run_checks`] with its probe given: the instance's in-process tests probe a fake process.
/// Only the text of a failure goes on, in the reports.
pub(crate) async fn run_checks_with<F, E>(
    check: &HealthCheck,
    mut probe_once: impl FnMut() -> F,
    reports: UnboundedSender<HealthReport>,
) where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
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
            Err(reason) => verdicts.failure(started, reason.to_string()),
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

/// `fut`, or the "no answer" reason once `timeout` has passed.
pub(super) async fn within<T>(
    timeout: Duration,
    from: &str,
    fut: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| {
            Err(ProbeError::NoAnswer {
                ms: timeout.as_millis(),
                from: from.to_string(),
            })
        })
}

/// An I/O error's text without the ` (os error N)` tail, which tells people nothing.
pub(super) fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if text.ends_with(')') => text[..cut].to_string(),
        _ => text,
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests drive time and tasks themselves"
)]
mod tests {
    use super::*;
    use exec::REASON_LINE_MAX;
    use std::sync::atomic::{AtomicU16, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// [`super::probe`] as the instance reports it: its text, which these tests pin.
    async fn probe(
        probe: &HealthProbe,
        timeout: Duration,
        exec: &ExecContext,
    ) -> Result<(), String> {
        super::probe(probe, timeout, exec)
            .await
            .map_err(|e| e.to_string())
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
    /// The timeout of probes and waits whose subject is not the timeout: a loaded machine may
    /// stall a test a second or more (start a shell, answer a local server, wake a timer).
    const TIMEOUT: Duration = Duration::from_secs(10);

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
            probe(&http(&url, None), TIMEOUT, &ExecContext::default()).await,
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
            probe(&http(&url, None), TIMEOUT, &ExecContext::default()).await,
            Ok(())
        );
        let srv = server(fixed(500)).await;
        let url = srv.url("/health");
        assert_eq!(
            probe(&http(&url, None), TIMEOUT, &ExecContext::default()).await,
            Err(format!("HTTP 500 from {url} (expected 2xx or 3xx)"))
        );
    }

    #[tokio::test]
    async fn an_expected_status_must_match_exactly() {
        let srv = server(fixed(204)).await;
        let url = srv.url("/health");
        let exec = ExecContext::default();
        assert_eq!(probe(&http(&url, Some(204)), TIMEOUT, &exec).await, Ok(()));
        assert_eq!(
            probe(&http(&url, Some(200)), TIMEOUT, &exec).await,
            Err(format!("HTTP 204 from {url} (expected 200)"))
        );
    }

    #[tokio::test]
    async fn a_slow_server_fails_at_the_timeout() {
        let srv = server(Reply::After(Duration::from_secs(60))).await;
        let url = srv.url("/slow");
        let started = Instant::now();
        let timeout = Duration::from_millis(300);
        assert_eq!(
            probe(&http(&url, None), timeout, &ExecContext::default()).await,
            Err(format!("no answer within 300 ms from {url}"))
        );
        // Far less than the server's minute (a loaded machine may stall the test seconds).
        let took = started.elapsed();
        assert!(took >= timeout && took < 20 * SECOND, "took {took:?}");
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
            probe(&http(&url, None), TIMEOUT, &ExecContext::default()).await,
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
            probe(&http(&url, None), TIMEOUT, &exec).await,
            Err(format!("connection refused by 127.0.0.1:{port}"))
        );
        let tcp = HealthProbe::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(
            probe(&tcp, TIMEOUT, &exec).await,
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
        assert_eq!(probe(&tcp, TIMEOUT, &ExecContext::default()).await, Ok(()));
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
        assert_eq!(probe(&tcp, TIMEOUT, &ExecContext::default()).await, Ok(()));
        drop(listener);
        assert_eq!(
            probe(&tcp, TIMEOUT, &ExecContext::default()).await,
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
        assert_eq!(
            probe(&exec(&command), TIMEOUT, &context(&cwd)).await,
            Ok(())
        );
        assert_eq!(
            probe(&exec("exit 0"), TIMEOUT, &context(&cwd)).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn exec_failure_gives_the_code_and_the_first_stderr_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = "echo; echo '  oops  ' >&2; echo second >&2; exit 3";
        assert_eq!(
            probe(&exec(command), TIMEOUT, &context(dir.path())).await,
            Err(format!("exec `{command}` exited with code 3: oops"))
        );
        assert_eq!(
            probe(&exec("exit 2"), TIMEOUT, &context(dir.path())).await,
            Err("exec `exit 2` exited with code 2".into())
        );
        assert_eq!(
            probe(&exec("kill -9 $$"), TIMEOUT, &context(dir.path())).await,
            Err("exec `kill -9 $$` was killed by SIGKILL".into())
        );
    }

    #[tokio::test]
    async fn a_flood_on_stderr_neither_blocks_nor_makes_a_long_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let command = "head -c 300000 /dev/zero | tr '\\0' x >&2; exit 1";
        let reason = probe(&exec(command), TIMEOUT, &context(dir.path()))
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
        let reason = probe(&exec("true"), TIMEOUT, &context(&missing))
            .await
            .expect_err("no cwd");
        assert!(
            reason.starts_with(&format!(
                "exec `true` could not start in {}: ",
                missing.display()
            )),
            "{reason}"
        );
        let error = super::probe(&exec("true"), TIMEOUT, &context(&missing))
            .await
            .expect_err("no cwd");
        assert!(
            matches!(&error, ProbeError::ExecStart { cause: source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{error:?}"
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
        // Long enough for a loaded machine to start the shell and write both files; far less
        // than the 30 s the command would take.
        let started = Instant::now();
        let reason = probe(&exec(&command), 3 * SECOND, &context(dir.path())).await;
        assert!(
            started.elapsed() < 20 * SECOND,
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(
            reason,
            Err(format!("exec `{command}` timed out after 3000 ms"))
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
            probe(&exec(&command), TIMEOUT, &context(dir.path())).await,
            Ok(())
        );
        let straggler = pid_in(&straggler).await;
        assert!(becomes_gone(straggler, |p| !running(p)).await);
    }

    // --- the loop ---

    /// The next report, or a panic after [`TIMEOUT`].
    async fn next(reports: &mut mpsc::UnboundedReceiver<HealthReport>) -> HealthReport {
        tokio::time::timeout(TIMEOUT, reports.recv())
            .await
            .expect("a report in time")
            .expect("the loop still runs")
    }

    fn http_check(url: &str, failures: u32, start_period_ms: u64) -> HealthCheck {
        HealthCheck {
            probe: http(url, None),
            interval_ms: 100,
            timeout_ms: 10_000,
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
        // Three probes, one interval (100 ms) apart, the first at most one interval away; the
        // upper bound only tells the interval from the 30 s default (a loaded machine may
        // stall the test seconds).
        let took = switched.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < 20 * SECOND,
            "took {took:?}"
        );
        tokio::time::timeout(TIMEOUT, task)
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
        // Probes did run during the start period: more than the two counted ones (five when the
        // machine is quiet; fewer when it stalls the timers, so only one is required).
        let probes = srv.requests.lock().expect("lock").len();
        assert!(probes >= 3, "{probes} probes");
        tokio::time::timeout(TIMEOUT, task)
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
        tokio::time::timeout(TIMEOUT, task)
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
        tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the loop stops")
            .expect("no panic");
    }
}
