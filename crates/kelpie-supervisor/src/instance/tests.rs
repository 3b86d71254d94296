//! The instance task run in-process, with fake processes (instance/fake.rs), on tokio's paused
//! clock: every timing decision (backoff, restart_delay, listen_timeout, kill_timeout, watchdog,
//! cron, health intervals) is checked to the millisecond, and a test takes no real time.
//!
//! What a real process does with these decisions (signals, groups, pipes) is tested through the
//! binary in tests/cli; here only the instance's timing and state are.

use super::fake::{Behaviour, Event, FakeProcesses, FIRST_PID};
use super::refusal::ReloadFailed;
use super::*;
use kelpie_core::{HealthCheck, HealthProbe, InstanceState};

const MS: Duration = Duration::from_millis(1);

/// An instance task under test, with its fake processes and the state it last reported.
struct Harness {
    fake: Arc<FakeProcesses>,
    mailbox: crate::mailbox::Sender<InstanceMsg>,
    events: mpsc::UnboundedReceiver<InstanceEvent>,
    state: InstanceState,
    /// The instance's task (aborted with the harness).
    _task: tokio::task::JoinSet<()>,
    _home: tempfile::TempDir,
}

/// A spec whose script is never run (its processes are fake).
fn spec() -> AppSpec {
    AppSpec {
        name: "app".into(),
        script: "/nonexistent/fake".into(),
        ..AppSpec::default()
    }
}

/// One log service for every test: fake processes write no output, and each service started
/// would keep its threads until the test binary ends.
fn log_service() -> LogService {
    static LOGS: std::sync::OnceLock<LogService> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| LogService::start(Default::default()).expect("log service"))
        .clone()
}

impl Harness {
    /// Start the instance of `spec` on `fake` and ask it to run.
    async fn start(spec: AppSpec, fake: Arc<FakeProcesses>) -> Harness {
        Harness::start_sharing(spec, fake, None).await
    }

    /// [`Harness::start`], its processes sharing `socket` (a real one: it is only passed on).
    async fn start_sharing(
        spec: AppSpec,
        fake: Arc<FakeProcesses>,
        socket: Option<Arc<ListenSocket>>,
    ) -> Harness {
        crate::clock::paused_tests();
        let home = tempfile::tempdir().expect("home");
        let registry = Arc::new(crate::sockets::PortRegistry::default());
        let setup = InstanceSetup {
            pm_id: 0,
            instance: 0,
            claims: ClaimedSockets::of(&spec.name, &registry),
            spec: Arc::new(spec),
            state: InstanceState::new(clock::now()),
            home: Home::at(home.path().to_path_buf()),
            orphan_group: None,
            logs: log_service(),
            socket,
            cgroups: Cgroups::default(),
            adopted: None,
            pipes: Vec::new(),
            restart_in: None,
            platform: Platform::Fake(fake.clone()),
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut tasks = tokio::task::JoinSet::new();
        let mailbox = spawn(setup, events_tx, &mut tasks);
        let mut harness = Harness {
            fake,
            mailbox,
            _task: tasks,
            events,
            state: InstanceState::new(clock::now()),
            _home: home,
        };
        harness.ask(Lifecycle::Start);
        harness
    }

    /// Ask for a reload; its answer comes once it is over.
    fn reload(&self) -> oneshot::Receiver<Result<(), ReloadFailed>> {
        let (reply, answer) = oneshot::channel();
        let sent = self.mailbox.send(InstanceMsg::Reload(reply));
        assert!(sent.is_ok(), "the instance task ended");
        answer
    }

    fn ask(&mut self, lifecycle: Lifecycle) {
        let sent = self.mailbox.send(InstanceMsg::Lifecycle(lifecycle, None));
        assert!(sent.is_ok(), "the instance task ended");
    }

    /// Wait (in virtual time, at most a day) until the reported state satisfies `done`.
    async fn until(&mut self, what: &str, done: impl Fn(&InstanceState) -> bool) -> &InstanceState {
        let deadline = Instant::now() + Duration::from_secs(24 * 3600);
        while !done(&self.state) {
            let event = tokio::time::timeout_at(deadline, self.events.recv()).await;
            match event {
                Ok(Some(InstanceEvent::State(report))) => self.state = report.state,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the instance task ended before: {what}"),
                Err(_) => panic!(
                    "never happened: {what}; last state {:?}, events {:?}",
                    self.state,
                    self.fake.events()
                ),
            }
        }
        &self.state
    }

    /// Wait until the `n`-th process (from 1) is the instance's, online.
    async fn until_started(&mut self, n: u32) {
        let pid = FIRST_PID + n - 1;
        let what = format!("process {n} online");
        self.until(&what, |s| s.status == Status::Online && s.pid == Some(pid))
            .await;
    }
}

fn exits_after(ms: u64, code: i32) -> Behaviour {
    Behaviour {
        exits_after: Some((Duration::from_millis(ms), code)),
        ..Behaviour::default()
    }
}

/// The gaps between consecutive starts.
fn gaps(starts: &[u64]) -> Vec<u64> {
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

// Paused from the runtime's start: its timer wheel then counts from the paused clock's origin,
// so timers fire at exactly the milliseconds asked for (tokio rounds them up to whole ones).
#[tokio::test(start_paused = true)]
async fn a_crash_loop_is_restarted_at_once_then_backs_off_by_half_each_time() {
    let fake = FakeProcesses::new(|_| exits_after(10, 1));
    let mut app = Harness::start(spec(), fake.clone()).await;
    app.until_started(6).await;
    // Each run lasts 10 ms (unstable: under min_uptime); the first crash is restarted at
    // once, the next after 100 ms growing by half (kelpie_core::policy::crash_loop_delay).
    assert_eq!(
        gaps(&fake.starts()),
        [10, 10 + 100, 10 + 150, 10 + 225, 10 + 337]
    );
    assert_eq!(app.state.unstable_restarts, 5);
}

#[tokio::test(start_paused = true)]
async fn exp_backoff_restart_delay_grows_by_half_and_a_long_run_resets_it() {
    // Three quick crashes, one run of a minute, then quick crashes again.
    let fake = FakeProcesses::new(|n| exits_after(if n == 3 { 60_000 } else { 10 }, 1));
    let app_spec = AppSpec {
        exp_backoff_restart_delay_ms: Some(100),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(6).await;
    // 100, 150, 225; the minute-long run (over 30 s) starts the backoff again from 100.
    assert_eq!(
        gaps(&fake.starts()),
        [10 + 100, 10 + 150, 10 + 225, 60_000 + 100, 10 + 150]
    );
}

#[tokio::test(start_paused = true)]
async fn restart_delay_is_waited_exactly_after_each_exit() {
    let fake = FakeProcesses::new(|_| exits_after(5_000, 0));
    let app_spec = AppSpec {
        restart_delay_ms: 2_000,
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(3).await;
    assert_eq!(fake.starts(), [0, 7_000, 14_000]);
    // Runs longer than min_uptime are stable: nothing counts toward max_restarts.
    assert_eq!(app.state.unstable_restarts, 0);
    assert_eq!(app.state.restart_time, 2);
}

#[tokio::test(start_paused = true)]
async fn max_restarts_unstable_runs_in_a_row_end_in_errored() {
    let fake = FakeProcesses::new(|_| exits_after(50, 1));
    let app_spec = AppSpec {
        max_restarts: 3,
        min_uptime_ms: 1_000,
        restart_delay_ms: 200,
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    let state = app.until("errored", |s| s.status == Status::Errored).await;
    // Its third unstable run in a row was the last: started, then restarted twice 250 ms apart.
    let exit = state.exits.back().expect("the exit is recorded");
    assert_eq!(exit.action, "errored");
    assert!(
        exit.reason
            .contains("(3 unstable restarts, max_restarts is 3)"),
        "{}",
        exit.reason
    );
    assert_eq!(fake.starts(), [0, 250, 500]);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(fake.starts().len(), 3, "an errored app stays down");
}

#[tokio::test(start_paused = true)]
async fn an_app_that_must_say_it_is_ready_is_online_when_it_does() {
    let fake = FakeProcesses::new(|_| Behaviour {
        ready_after: Some(700 * MS),
        ..Behaviour::default()
    });
    let app_spec = AppSpec {
        wait_ready: true,
        listen_timeout_ms: 3_000,
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until("launching", |s| s.status == Status::Launching)
        .await;
    app.until("online", |s| s.status == Status::Online).await;
    assert_eq!(app.fake.elapsed_ms(), 700);
    assert_eq!(app.state.last_error, None);
}

#[tokio::test(start_paused = true)]
async fn an_app_never_ready_is_counted_online_at_listen_timeout_and_says_so() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let app_spec = AppSpec {
        wait_ready: true,
        listen_timeout_ms: 3_000,
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until("online", |s| s.status == Status::Online).await;
    assert_eq!(app.fake.elapsed_ms(), 3_000);
    let said = app.state.last_error.clone().unwrap_or_default();
    assert!(
        said.contains("not ready within listen_timeout (3000 ms)"),
        "{said}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_ignored_is_followed_by_sigkill_after_exactly_kill_timeout() {
    let fake = FakeProcesses::new(|_| Behaviour {
        ignores_signals: true,
        ..Behaviour::default()
    });
    let app_spec = AppSpec {
        kill_timeout_ms: 1_600,
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(1).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    app.ask(Lifecycle::Stop);
    app.until("stopped", |s| s.status == Status::Stopped).await;
    let pid = FIRST_PID;
    let signals: Vec<(u64, Event)> = fake
        .events()
        .into_iter()
        .filter(|(_, e)| !matches!(e, Event::Started(_)))
        .collect();
    assert_eq!(
        signals[..3],
        [
            (10_000, Event::Signalled(pid, stopping::libc_sigint())),
            (11_600, Event::Signalled(pid, kelpie_sys::SIGKILL)),
            (11_600, Event::Ended(pid)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_process_that_stops_feeding_the_watchdog_is_restarted_one_period_after_its_last_ping() {
    // The first process pings three times then goes silent; the next keeps pinging.
    let fake = FakeProcesses::new(|n| Behaviour {
        watchdog_pings: if n == 0 {
            vec![100 * MS, 600 * MS, 1_100 * MS]
        } else {
            (1..100).map(|i| i * 500 * MS).collect()
        },
        ..Behaviour::default()
    });
    let app_spec = AppSpec {
        watchdog_ms: Some(1_000),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(2).await;
    assert_eq!(fake.starts(), [0, 2_100]);
    let exit = app.state.exits.back().expect("the exit is recorded");
    assert_eq!(exit.cause, Cause::Watchdog);
    assert!(
        exit.reason.contains("no WATCHDOG=1 within watchdog (1 s)"),
        "{}",
        exit.reason
    );
    // The second process feeds it: no third start within its pings.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(fake.starts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn cron_restart_fires_on_the_wall_clock_schedule() {
    crate::clock::test_wall::set("2026-11-23T12:59:30Z".parse().expect("time"));
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let app_spec = AppSpec {
        cron_restart: Some("0 * * * *".into()),
        cron_timezone: Some("UTC".into()),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(3).await;
    // 13:00:00 then 14:00:00.
    assert_eq!(fake.starts(), [0, 30_000, 3_630_000]);
    let exit = app.state.exits.back().expect("the exit is recorded");
    assert_eq!(exit.cause, Cause::Cron);
    assert!(
        exit.reason.contains("cron_restart `0 * * * *` (UTC)"),
        "{}",
        exit.reason
    );
}

#[tokio::test(start_paused = true)]
async fn after_the_wall_clock_jumps_cron_restart_fires_once_forward_and_waits_for_its_time_back() {
    // Every 2 s, then the wall clock set 3 h forward, then 6 h back (as tests/cli/faults.rs
    // does to a real daemon with libfaketime).
    crate::clock::test_wall::set("2026-11-23T13:00:00.500Z".parse().expect("time"));
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let app_spec = AppSpec {
        cron_restart: Some("*/2 * * * * *".into()),
        cron_timezone: Some("UTC".into()),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(3).await;
    // 13:00:02, 13:00:04.
    assert_eq!(fake.starts(), [0, 1_500, 3_500]);
    // 3 h 1 s forward at 3 600 ms: 16:00:05.100. The firing armed for 13:00:06 comes when it
    // was due on the monotonic clock (16:00:07 on the wall), once for the 3 h skipped, then
    // the schedule goes on from the wall clock's time: 16:00:08, 16:00:10.
    at(&fake, 3_600).await;
    crate::clock::test_wall::set("2026-11-23T16:00:05.100Z".parse().expect("time"));
    app.until_started(5).await;
    assert_eq!(fake.starts()[3..], [5_500, 6_500]);
    // 6 h back at 8 000 ms: 10:00:09.500. The firing armed for 16:00:10 wakes at 8 500 ms,
    // sees the wall clock short of it and waits until it reads 16:00:10 again: none of the
    // slots between fires, none fires twice.
    at(&fake, 8_000).await;
    crate::clock::test_wall::set("2026-11-23T10:00:09.500Z".parse().expect("time"));
    let six_hours = 6 * 3_600_000;
    at(&fake, 8_500 + six_hours - 1).await;
    assert_eq!(
        fake.starts().len(),
        5,
        "a firing before the wall clock's time"
    );
    app.until_started(7).await;
    assert_eq!(fake.starts()[5..], [8_500 + six_hours, 10_500 + six_hours]);
}

#[tokio::test(start_paused = true)]
async fn a_restart_delay_is_on_the_monotonic_clock_whatever_the_wall_clock_does() {
    crate::clock::test_wall::set("2026-11-23T13:00:00Z".parse().expect("time"));
    // Runs of 300 ms (stable: over min_uptime), restarted 1 s after each exit.
    let fake = FakeProcesses::new(|_| exits_after(300, 1));
    let app_spec = AppSpec {
        restart_delay_ms: 1_000,
        min_uptime_ms: 100,
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    // 3 h forward during the first delay, 6 h back during the second run.
    at(&fake, 1_000).await;
    crate::clock::test_wall::set("2026-11-23T16:00:01Z".parse().expect("time"));
    at(&fake, 1_500).await;
    crate::clock::test_wall::set("2026-11-23T10:00:01.500Z".parse().expect("time"));
    app.until_started(4).await;
    assert_eq!(fake.starts(), [0, 1_300, 2_600, 3_900]);
}

#[tokio::test(start_paused = true)]
async fn health_checks_probe_each_interval_and_restart_after_the_failures_in_a_row() {
    // The first process stops answering after 10 s; the next one stays healthy.
    let fake = FakeProcesses::new(|n| Behaviour {
        healthy_for: (n == 0).then_some(10_000 * MS),
        ..Behaviour::default()
    });
    let app_spec = AppSpec {
        health_check: Some(HealthCheck {
            probe: HealthProbe::Tcp {
                host: "127.0.0.1".into(),
                port: 1,
            },
            interval_ms: 3_000,
            timeout_ms: 1_000,
            failures: 3,
            start_period_ms: 0,
        }),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(2).await;
    let probes: Vec<u64> = fake
        .events()
        .into_iter()
        .filter(|(_, e)| *e == Event::Probed(FIRST_PID))
        .map(|(at, _)| at)
        .collect();
    // Probes every 3 s from the first interval; those at 12, 15 and 18 s fail: restarted at 18 s.
    assert_eq!(probes, [3_000, 6_000, 9_000, 12_000, 15_000, 18_000]);
    assert_eq!(fake.starts(), [0, 18_000]);
    let exit = app.state.exits.back().expect("the exit is recorded");
    assert_eq!(exit.cause, Cause::Health);
    assert!(
        exit.reason.contains("failed 3 times in a row"),
        "{}",
        exit.reason
    );
    app.until("healthy", |s| {
        s.health == Some(kelpie_core::Health::Healthy)
    })
    .await;
}

/// An app on a socket the daemon shares with its processes, which say when they are ready.
fn sharing_a_socket() -> (AppSpec, Arc<ListenSocket>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a directory for the socket");
    let path = dir.path().join("app.sock");
    let address = kelpie_core::ListenAddress::parse(&format!("unix:{}", path.display()));
    let socket = ListenSocket::open(&address.expect("address")).expect("a socket");
    let app_spec = AppSpec {
        wait_ready: true,
        listen_timeout_ms: 3_000,
        ..spec()
    };
    (app_spec, Arc::new(socket), dir)
}

fn ready_after(ms: u64) -> Behaviour {
    Behaviour {
        ready_after: Some(Duration::from_millis(ms)),
        ..Behaviour::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_hands_over_when_the_new_process_is_ready_then_stops_the_old_one() {
    let fake = FakeProcesses::new(|n| ready_after(if n == 0 { 100 } else { 500 }));
    let (app_spec, socket, _dir) = sharing_a_socket();
    let mut app = Harness::start_sharing(app_spec, fake.clone(), Some(socket)).await;
    app.until_started(1).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let answer = app.reload().await.expect("answered").map_err(|e| e.0);
    assert_eq!(answer, Ok(()));
    app.until_started(2).await;
    let (old, new) = (FIRST_PID, FIRST_PID + 1);
    // The old process served until the new one was ready (500 ms after it started), then
    // was asked to stop, and ended at once; what may be left of its group is then killed.
    assert_eq!(
        fake.events(),
        [
            (0, Event::Started(old)),
            (10_100, Event::Started(new)),
            (10_600, Event::Signalled(old, stopping::libc_sigint())),
            (10_600, Event::Ended(old)),
            (10_600, Event::Signalled(old, kelpie_sys::SIGKILL)),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_whose_new_process_is_never_ready_gives_up_after_its_wait_and_keeps_the_old() {
    let fake = FakeProcesses::new(|n| {
        if n == 0 {
            ready_after(100)
        } else {
            Behaviour::default()
        }
    });
    let (app_spec, socket, _dir) = sharing_a_socket();
    let mut app = Harness::start_sharing(app_spec, fake.clone(), Some(socket)).await;
    app.until_started(1).await;
    let answer = app.reload().await.expect("answered").map_err(|e| e.0);
    let error = answer.expect_err("the reload failed");
    // A new process that runs is waited for past listen_timeout (3 s): the reload's wait,
    // 30 s, since the old one serves meanwhile.
    assert!(
        error.contains("not ready within 30000 ms (listen_timeout is 3000 ms"),
        "{error}"
    );
    assert!(
        error.contains(&format!("the old process (pid {FIRST_PID}) keeps running")),
        "{error}"
    );
    let new = FIRST_PID + 1;
    assert_eq!(
        fake.events()[1..],
        [
            (100, Event::Started(new)),
            (30_100, Event::Signalled(new, stopping::libc_sigint())),
            (30_100, Event::Ended(new)),
            (30_100, Event::Signalled(new, kelpie_sys::SIGKILL)),
        ]
    );
    assert!(fake.running(FIRST_PID));
    assert_eq!(app.state.pid, Some(FIRST_PID));
}

#[tokio::test(start_paused = true)]
async fn a_process_that_never_feeds_the_watchdog_is_not_watched() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let app_spec = AppSpec {
        watchdog_ms: Some(1_000),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(1).await;
    // The watchdog is armed by the first WATCHDOG=1 (as systemd's is by the first ping).
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.starts(), [0]);
}

#[tokio::test(start_paused = true)]
async fn cron_restart_never_revives_an_app_a_user_stopped() {
    crate::clock::test_wall::set("2026-11-23T12:59:30Z".parse().expect("time"));
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let app_spec = AppSpec {
        cron_restart: Some("* * * * * *".into()),
        cron_timezone: Some("UTC".into()),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(4).await;
    // Every second, on the second.
    assert_eq!(fake.starts(), [0, 1_000, 2_000, 3_000]);
    app.ask(Lifecycle::Stop);
    app.until("stopped", |s| s.status == Status::Stopped).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(fake.starts().len(), 4, "the cron revived a stopped app");
    assert_eq!(app.state.status, Status::Stopped);
}

/// Sleep until `ms` after the fake was made.
async fn at(fake: &FakeProcesses, ms: u64) {
    let left = ms.saturating_sub(fake.elapsed_ms());
    tokio::time::sleep(Duration::from_millis(left)).await;
}

/// Ready 100 ms after its start; the first process feeds the watchdog at 100 ms only (so it
/// is late at 1 100 ms), the others every 500 ms; the second is ready `second_ready` ms after
/// its start, if ever.
fn pinging(second_ready: Option<u64>) -> Arc<FakeProcesses> {
    FakeProcesses::new(move |n| Behaviour {
        ready_after: match n {
            1 => second_ready.map(Duration::from_millis),
            _ => Some(100 * MS),
        },
        watchdog_pings: match n {
            0 => vec![100 * MS],
            _ => (1..200).map(|i| i * 500 * MS).collect(),
        },
        ..Behaviour::default()
    })
}

#[tokio::test(start_paused = true)]
async fn a_restart_due_during_a_reload_that_fails_applies_to_the_old_process_afterwards() {
    let fake = pinging(None);
    let (app_spec, socket, _dir) = sharing_a_socket();
    let app_spec = AppSpec {
        watchdog_ms: Some(1_000),
        ..app_spec
    };
    let mut app = Harness::start_sharing(app_spec, fake.clone(), Some(socket)).await;
    app.until_started(1).await;
    at(&fake, 1_000).await;
    // The watchdog is late at 1 100 ms, while the new process is starting: the restart waits.
    let answer = app.reload().await.expect("answered").map_err(|e| e.0);
    assert!(answer.is_err(), "{answer:?}");
    app.until_started(3).await;
    let (old, new, third) = (FIRST_PID, FIRST_PID + 1, FIRST_PID + 2);
    let sigint = stopping::libc_sigint();
    let events = fake.events();
    assert_eq!(
        events[..2],
        [(0, Event::Started(old)), (1_000, Event::Started(new))]
    );
    // At the end of the reload's wait (30 s: the new process runs) the new process is given
    // up (stopped apart, on its own task), and the watchdog's restart of the old one is
    // carried out: all within that millisecond.
    let mut at_timeout: Vec<Event> = events[2..]
        .iter()
        .map(|(at, event)| {
            assert_eq!(*at, 31_000, "{events:?}");
            event.clone()
        })
        .collect();
    at_timeout.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(
        at_timeout,
        [
            Event::Ended(old),
            Event::Ended(new),
            Event::Signalled(old, sigint),
            Event::Signalled(new, sigint),
            Event::Signalled(new, kelpie_sys::SIGKILL),
            Event::Started(third),
        ]
    );
    let exit = app.state.exits.back().expect("the exit is recorded");
    assert_eq!(exit.cause, Cause::Watchdog);
}

#[tokio::test(start_paused = true)]
async fn a_restart_due_during_a_reload_that_succeeds_is_dropped_with_the_old_process() {
    let fake = pinging(Some(500));
    let (app_spec, socket, _dir) = sharing_a_socket();
    let app_spec = AppSpec {
        watchdog_ms: Some(1_000),
        ..app_spec
    };
    let mut app = Harness::start_sharing(app_spec, fake.clone(), Some(socket)).await;
    app.until_started(1).await;
    at(&fake, 1_000).await;
    let answer = app.reload().await.expect("answered").map_err(|e| e.0);
    assert_eq!(answer, Ok(()));
    app.until_started(2).await;
    // The old process went at 1 500 ms, when the new one was ready; the new one feeds the
    // watchdog, so nothing else happens.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(fake.starts(), [0, 1_000]);
    assert!(fake.events().contains(&(1_500, Event::Ended(FIRST_PID))));
    assert_eq!(app.state.restart_time, 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_reload_is_refused_and_a_stop_gives_the_first_up() {
    // The first process is ready at once; the reload's new one never is.
    let fake = FakeProcesses::new(|n| {
        if n == 0 {
            ready_after(0)
        } else {
            Behaviour::default()
        }
    });
    let (app_spec, socket, _dir) = sharing_a_socket();
    let mut app = Harness::start_sharing(app_spec, fake.clone(), Some(socket)).await;
    app.until_started(1).await;
    let first = app.reload();
    at(&fake, 500).await;
    let second = app.reload().await.expect("answered").map_err(|e| e.0);
    assert_eq!(
        second,
        Err("a reload of this instance is already in progress".into())
    );
    at(&fake, 1_000).await;
    app.ask(Lifecycle::Stop);
    let error = first
        .await
        .expect("answered")
        .expect_err("the reload failed")
        .0;
    assert!(
        error.starts_with("interrupted by a stop command; it was stopped"),
        "{error}"
    );
    app.until("stopped", |s| s.status == Status::Stopped).await;
    let (old, new) = (FIRST_PID, FIRST_PID + 1);
    let sigint = stopping::libc_sigint();
    // Both went at the stop, each asked to stop; the new one was never online.
    let mut at_stop: Vec<Event> = fake.events()[2..]
        .iter()
        .map(|(at, event)| {
            assert_eq!(*at, 1_000);
            event.clone()
        })
        .collect();
    at_stop.sort_by_key(|event| format!("{event:?}"));
    assert_eq!(
        at_stop,
        [
            Event::Ended(old),
            Event::Ended(new),
            Event::Signalled(old, sigint),
            Event::Signalled(new, sigint),
            Event::Signalled(new, kelpie_sys::SIGKILL),
        ]
    );
    assert_eq!(fake.starts(), [0, 0]);
    assert_eq!(app.state.restart_time, 0, "no reload took place");
}

/// A periodic job (`autorestart: false`) on `cron`, in UTC, whose runs do what `script` says.
async fn periodic_job(
    cron: &str,
    zone: &str,
    script: impl Fn(usize) -> Behaviour + Send + Sync + 'static,
) -> (Harness, Arc<FakeProcesses>) {
    let fake = FakeProcesses::new(script);
    let app_spec = AppSpec {
        autorestart: false,
        cron_restart: Some(cron.into()),
        cron_timezone: Some(zone.into()),
        ..spec()
    };
    let app = Harness::start(app_spec, fake.clone()).await;
    (app, fake)
}

#[tokio::test(start_paused = true)]
async fn a_periodic_job_runs_at_every_tick_after_ending_on_its_own() {
    crate::clock::test_wall::set("2026-11-23T12:59:30Z".parse().expect("time"));
    let (mut app, fake) = periodic_job("0 * * * *", "UTC", |_| exits_after(5_000, 0)).await;
    app.until("ended, waiting", |s| {
        s.status == Status::Stopped && s.exits.len() == 1
    })
    .await;
    assert_eq!(
        app.state.next_run_ms,
        Some(ms_of("2026-11-23T13:00:00Z")),
        "the next run is published"
    );
    let exit = app.state.exits.back().expect("the run's end is recorded");
    assert_eq!(
        (exit.action.as_str(), exit.cause),
        ("scheduled", Cause::Exit)
    );
    assert_eq!(exit.uptime_ms, 5_000);
    app.until("third run ended", |s| s.exits.len() == 3).await;
    // Started at once, then at 13:00:00 and 14:00:00.
    assert_eq!(fake.starts(), [0, 30_000, 3_630_000]);
    assert_eq!(app.state.restart_time, 2);
    assert_eq!(app.state.next_run_ms, Some(ms_of("2026-11-23T15:00:00Z")));
}

#[tokio::test(start_paused = true)]
async fn a_job_still_running_at_its_tick_is_restarted() {
    crate::clock::test_wall::set("2026-11-23T12:59:30Z".parse().expect("time"));
    // Runs for 90 s: still running at 13:00:00 (started at 12:59:30).
    let (mut app, fake) = periodic_job("0 * * * *", "UTC", |_| exits_after(90_000, 0)).await;
    app.until_started(2).await;
    assert_eq!(fake.starts(), [0, 30_000]);
    let exit = app.state.exits.back().expect("recorded");
    assert_eq!((exit.action.as_str(), exit.cause), ("restart", Cause::Cron));
}

#[tokio::test(start_paused = true)]
async fn a_stop_between_runs_pauses_the_schedule_and_start_resumes_it() {
    crate::clock::test_wall::set("2026-11-23T12:59:58Z".parse().expect("time"));
    let (mut app, fake) = periodic_job("* * * * * *", "UTC", |_| exits_after(100, 0)).await;
    app.until("three runs", |s| s.exits.len() == 3).await;
    app.ask(Lifecycle::Stop);
    app.until("paused", |s| s.stopped_by_user).await;
    assert_eq!(
        app.state.next_run_ms, None,
        "a paused schedule shows no next run"
    );
    let before = fake.starts().len();
    while app.events.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(fake.starts().len(), before, "a stopped job ran");
    // Its 600 ticks meanwhile report nothing (each report is a state write).
    let mut reports = 0;
    while let Ok(event) = app.events.try_recv() {
        reports += usize::from(matches!(event, InstanceEvent::State(_)));
    }
    assert_eq!(reports, 0, "a paused schedule's ticks reported a state");
    let resumed_at = fake.elapsed_ms();
    app.ask(Lifecycle::Start);
    app.until("resumed", |s| !s.stopped_by_user && s.exits.len() >= 5)
        .await;
    // Run at once, then at the next tick: the wall clock's next whole second (it read
    // 12:59:58 at 0 ms).
    let next_tick = (resumed_at / 1_000 + 1) * 1_000;
    assert_eq!(fake.starts()[before..], [resumed_at, next_tick]);
}

#[tokio::test(start_paused = true)]
async fn a_tick_during_a_stop_does_not_start_the_job_again() {
    crate::clock::test_wall::set("2026-11-23T12:59:59Z".parse().expect("time"));
    // The job ignores its stop signal: the stop lasts kill_timeout (1.6 s), over a tick.
    let fake = FakeProcesses::new(|_| Behaviour {
        ignores_signals: true,
        ..Behaviour::default()
    });
    let app_spec = AppSpec {
        autorestart: false,
        cron_restart: Some("* * * * * *".into()),
        cron_timezone: Some("UTC".into()),
        ..spec()
    };
    let mut app = Harness::start(app_spec, fake.clone()).await;
    app.until_started(1).await;
    app.ask(Lifecycle::Stop);
    app.until("stopped", |s| s.status == Status::Stopped).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        fake.starts().len(),
        1,
        "the tick during the stop started it"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_job_is_counted_and_still_runs_at_each_tick() {
    crate::clock::test_wall::set("2026-11-23T12:59:59Z".parse().expect("time"));
    let (mut app, fake) = periodic_job("* * * * * *", "UTC", |_| exits_after(10, 2)).await;
    app.until("four failed runs", |s| s.failed_runs == 4).await;
    assert_eq!(
        app.state.status,
        Status::Stopped,
        "a failing job is not errored"
    );
    let exit = app.state.exits.back().expect("recorded");
    assert_eq!((exit.code, exit.cause), (Some(2), Cause::Crash));
    assert_eq!(fake.starts(), [0, 1_000, 2_000, 3_000]);
}

#[tokio::test(start_paused = true)]
async fn a_daily_job_keeps_its_local_hour_across_a_dst_change() {
    // Paris leaves summer time on 2026-10-25 at 03:00 (back to 02:00): 02:30 local is 00:30
    // UTC on the 25th (summer time, the first 02:30 of that night), then 01:30 UTC on the 26th.
    crate::clock::test_wall::set("2026-10-24T23:00:00Z".parse().expect("time"));
    let (_app, fake) = periodic_job("30 2 * * *", "Europe/Paris", |_| exits_after(10, 0)).await;
    tokio::time::sleep(Duration::from_secs(30 * 3600)).await;
    let hour_ms = 3_600_000;
    assert_eq!(
        fake.starts(),
        [0, 90 * 60_000, 90 * 60_000 + 25 * hour_ms],
        "runs once a night at 02:30 Paris time, on both sides of the change"
    );
}

fn ms_of(text: &str) -> u64 {
    let at: jiff::Timestamp = text.parse().expect("time");
    at.as_millisecond() as u64
}

/// Every instance's mailbox keeps its queue's buffer once a message came: what it carries stays
/// small (large payloads are boxed; a process's link, the same in the link crate).
#[test]
fn what_a_mailbox_carries_stays_small() {
    assert!(std::mem::size_of::<super::InstanceMsg>() <= 24);
}
