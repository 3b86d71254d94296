//! The supervisor run in-process: a real `Supervisor` with its real instance tasks, persister
//! (in a temp home) and log pipeline, driven through its command channel with the requests the
//! CLI sends, its processes fake (instance/fake.rs), its signals and the monitor's readings sent
//! by the test, on tokio's paused clock: every answer, start, signal and write is checked at
//! the virtual millisecond it happens.

use super::*;
use crate::instance::fake::{Behaviour, Event, FakeProcesses, FIRST_PID};
use crate::state::StateFile;
use kelpie_core::{Cause, Status};
use kelpie_proto::{Request, Target};

/// A supervisor running in-process, and what a test drives it with.
struct Daemon {
    commands: mpsc::Sender<Command>,
    readings: mpsc::UnboundedSender<Vec<Reading>>,
    signals: mpsc::UnboundedSender<DaemonSignal>,
    fake: Arc<FakeProcesses>,
    monitor: Monitor,
    run: tokio::task::JoinHandle<Result<(), DaemonError>>,
    home: Home,
    _dir: tempfile::TempDir,
}

/// One log service for every test, as in the instance's tests: fake processes print nothing,
/// and each service started would keep its threads until the test binary ends.
fn log_service() -> LogService {
    static LOGS: std::sync::OnceLock<LogService> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| LogService::start(Default::default()).expect("log service"))
        .clone()
}

impl Daemon {
    /// A supervisor with no app, whose processes do what `fake` says.
    fn start(fake: Arc<FakeProcesses>) -> Daemon {
        let dir = tempfile::tempdir().expect("home");
        let home = Home::at(dir.path().to_path_buf());
        crate::home_setup::prepare_home(&home).expect("home set up");
        // Fake pids are never looked up in /proc.
        let persister = Persister::start(home.clone(), |_| None).expect("persister");
        let control = std::os::unix::net::UnixListener::bind(home.socket()).expect("socket");
        let (outboxes, inboxes) = channels();
        let logs = log_service();
        let setup = Setup {
            home: home.clone(),
            persister,
            web: crate::web::WebControl::start(
                home.clone(),
                outboxes.commands.clone(),
                logs.clone(),
            ),
            logs,
            monitor: Monitor::not_started(),
            cgroups: crate::cgroups::Cgroups::default(),
            host: instance::Host::Fake(fake.clone()),
            control: control.into(),
            conf: Default::default(),
            toml_logs: Default::default(),
            foreground: None,
        };
        let mut supervisor = Supervisor::new(setup, &outboxes);
        let monitor = supervisor.services.monitor.clone();
        let (signals, sent) = mpsc::unbounded_channel();
        let run = tokio::spawn(async move { supervisor.run(inboxes, Signals::Sent(sent)).await });
        Daemon {
            commands: outboxes.commands,
            readings: outboxes.readings,
            signals,
            fake,
            monitor,
            run,
            home,
            _dir: dir,
        }
    }

    /// Send `request` as a client would; the answer comes on the receiver.
    async fn send(&self, request: Request) -> oneshot::Receiver<Reply> {
        let (reply, answer) = oneshot::channel();
        let sent = self
            .commands
            .send(Command::Request { request, reply })
            .await;
        assert!(sent.is_ok(), "the supervisor ended");
        answer
    }

    /// Send `request` and wait for its answer.
    async fn request(&self, request: Request) -> Response {
        let answer = self.send(request).await;
        answered(answer).await
    }

    /// Virtual milliseconds since the test began.
    fn now_ms(&self) -> u64 {
        self.fake.elapsed_ms()
    }

    /// `state.json` as it is on disk now.
    fn state_on_disk(&self) -> StateFile {
        let bytes = std::fs::read(self.home.state_file()).expect("state.json");
        serde_json::from_slice(&bytes).expect("state.json parses")
    }

    /// Each instance on disk: (pm_id, status, pid).
    fn on_disk(&self) -> Vec<(u32, Status, Option<u32>)> {
        self.state_on_disk()
            .apps
            .iter()
            .map(|app| (app.pm_id, app.state.status, app.state.pid))
            .collect()
    }

    /// What happened to the processes so far, with when (virtual ms).
    fn events(&self) -> Vec<(u64, Event)> {
        self.fake.events()
    }

    /// Sleep until `ms` after the test began.
    async fn at(&self, ms: u64) {
        let now = self.now_ms();
        assert!(now <= ms, "{ms} ms is past ({now} ms)");
        tokio::time::sleep(Duration::from_millis(ms - now)).await;
    }
}

/// The response of a request, once it comes (the connection's part: say it was written).
async fn answered(answer: oneshot::Receiver<Reply>) -> Response {
    let Reply { response, written } = answer.await.expect("an answer");
    if let Some(written) = written {
        let _ = written.send(());
    }
    response
}

/// An app whose script is never run (its processes are fake).
fn app(name: &str) -> AppSpec {
    AppSpec {
        name: name.into(),
        script: "/nonexistent/fake".into(),
        ..AppSpec::default()
    }
}

fn start(apps: Vec<AppSpec>) -> Request {
    Request::Start {
        apps,
        force: false,
        from_file: false,
    }
}

fn name(name: &str) -> Vec<Target> {
    vec![Target::Name(name.into())]
}

/// The list in an answer: (pm_id, name, status, pid).
fn listed(response: &Response) -> Vec<(u32, String, Status, Option<u32>)> {
    let processes = match response {
        Response::Processes(processes) | Response::Started { processes, .. } => processes,
        other => panic!("not a list: {other:?}"),
    };
    processes
        .iter()
        .map(|p| (p.pm_id, p.spec.name.clone(), p.state.status, p.state.pid))
        .collect()
}

fn ready_after(ms: u64) -> Behaviour {
    Behaviour {
        ready_after: Some(Duration::from_millis(ms)),
        ..Behaviour::default()
    }
}

fn waits_ready(spec: AppSpec) -> AppSpec {
    AppSpec {
        wait_ready: true,
        ..spec
    }
}

// Paused from the runtime's start, as the instance's tests: timers fire at exactly the
// milliseconds asked for.
#[tokio::test(start_paused = true)]
async fn start_is_answered_once_the_apps_are_online_and_the_state_is_on_disk() {
    let fake = FakeProcesses::new(|n| ready_after(if n == 0 { 300 } else { 700 }));
    let daemon = Daemon::start(fake);
    let answer = daemon
        .request(start(vec![
            waits_ready(app("api")),
            waits_ready(app("web")),
        ]))
        .await;
    // Both start at once; the answer waits for the slower one's READY=1.
    assert_eq!(daemon.now_ms(), 700);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (0, Event::Started(FIRST_PID + 1))
        ]
    );
    let online = [
        (0, Status::Online, Some(FIRST_PID)),
        (1, Status::Online, Some(FIRST_PID + 1)),
    ];
    assert_eq!(daemon.on_disk(), online);
    assert_eq!(
        listed(&answer),
        [
            (0, "api".into(), Status::Online, Some(FIRST_PID)),
            (1, "web".into(), Status::Online, Some(FIRST_PID + 1)),
        ]
    );
    // The monitor was told which processes to sample.
    let pids: Vec<u32> = daemon.monitor.targets().iter().map(|t| t.pid).collect();
    assert_eq!(pids, [FIRST_PID, FIRST_PID + 1]);
}

const SIGINT: i32 = 2;
const SIGKILL: i32 = kelpie_sys::SIGKILL;

/// A process that only SIGKILL ends.
fn stubborn() -> Behaviour {
    Behaviour {
        ignores_signals: true,
        ..Behaviour::default()
    }
}

fn kill_timeout(ms: u64, spec: AppSpec) -> AppSpec {
    AppSpec {
        kill_timeout_ms: ms,
        ..spec
    }
}

fn depends_on(dependency: &str, spec: AppSpec) -> AppSpec {
    AppSpec {
        depends_on: vec![dependency.into()],
        ..spec
    }
}

/// The events of the processes since `ms`.
fn since(events: Vec<(u64, Event)>, ms: u64) -> Vec<(u64, Event)> {
    events.into_iter().filter(|(at, _)| *at >= ms).collect()
}

fn starts_of(events: &[(u64, Event)]) -> Vec<(u64, u32)> {
    events
        .iter()
        .filter_map(|(at, e)| match e {
            Event::Started(pid) => Some((*at, *pid)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn stop_is_answered_once_the_process_is_gone_and_the_state_is_on_disk() {
    let fake = FakeProcesses::new(|_| stubborn());
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![kill_timeout(2_000, app("api"))]))
        .await;
    assert_eq!(daemon.now_ms(), 0);
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Stop {
            targets: name("api"),
        })
        .await;
    // Asked to stop at 1 s, killed at kill_timeout: only then answered, stopped on disk.
    assert_eq!(daemon.now_ms(), 3_000);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (3_000, Event::Signalled(FIRST_PID, SIGKILL)),
            (3_000, Event::Ended(FIRST_PID)),
        ]
    );
    assert_eq!(listed(&answer), [(0, "api".into(), Status::Stopped, None)]);
    assert_eq!(daemon.on_disk(), [(0, Status::Stopped, None)]);
    assert!(
        !daemon.state_on_disk().apps[0].run,
        "a stopped app is not run again"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_is_answered_once_the_new_process_is_online_and_on_disk() {
    let fake = FakeProcesses::new(|n| ready_after(if n == 0 { 0 } else { 400 }));
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![waits_ready(app("api"))])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Restart {
            targets: name("api"),
            update_env: None,
        })
        .await;
    assert_eq!(daemon.now_ms(), 1_400);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    assert_eq!(
        listed(&answer),
        [(0, "api".into(), Status::Online, Some(FIRST_PID + 1))]
    );
    let state = daemon.state_on_disk();
    assert_eq!(state.apps[0].state.pid, Some(FIRST_PID + 1));
    assert_eq!(state.apps[0].state.restart_time, 1);
}

#[tokio::test(start_paused = true)]
async fn delete_is_answered_once_the_process_is_gone_and_the_app_is_off_disk() {
    let fake = FakeProcesses::new(|_| stubborn());
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![kill_timeout(500, app("api")), app("web")]))
        .await;
    let answer = daemon
        .request(Request::Delete {
            targets: name("api"),
        })
        .await;
    assert_eq!(daemon.now_ms(), 500);
    assert_eq!(
        listed(&answer),
        [(1, "web".into(), Status::Online, Some(FIRST_PID + 1))]
    );
    assert_eq!(daemon.on_disk(), [(1, Status::Online, Some(FIRST_PID + 1))]);
    // The last app deleted: numbering starts again from 0, on disk too.
    let answer = daemon
        .request(Request::Delete {
            targets: name("web"),
        })
        .await;
    assert_eq!(
        daemon.now_ms(),
        2_100,
        "web's default kill_timeout is 1.6 s"
    );
    assert!(listed(&answer).is_empty());
    let state = daemon.state_on_disk();
    assert!(state.apps.is_empty());
    assert_eq!(state.next_id, 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_fails_changes_nothing() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("api")])).await;
    let on_disk = std::fs::read(daemon.home.state_file()).expect("state.json");
    daemon.at(1_000).await;
    // One target matches nothing: the other is not stopped either.
    let answer = daemon
        .request(Request::Stop {
            targets: vec![Target::Name("api".into()), Target::Name("nope".into())],
        })
        .await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::NotFound);
    assert!(error.message.contains("nothing was changed"), "{error:?}");
    // One app of a start is running already: the other is not created.
    let answer = daemon.request(start(vec![app("db"), app("api")])).await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::Conflict);
    assert!(error.message.ends_with("nothing was started"), "{error:?}");
    daemon.at(2_000).await;
    assert_eq!(daemon.events(), [(0, Event::Started(FIRST_PID))]);
    let list = daemon.request(Request::List).await;
    assert_eq!(
        listed(&list),
        [(0, "api".into(), Status::Online, Some(FIRST_PID))]
    );
    let after = std::fs::read(daemon.home.state_file()).expect("state.json");
    assert_eq!(on_disk, after, "state.json was not written again");
}

#[tokio::test(start_paused = true)]
async fn depends_on_starts_an_app_once_its_dependency_is_up_and_stops_it_first() {
    // db says READY=1 after 500 ms; api (pid 2) ignores its stop signal.
    let fake = FakeProcesses::new(|n| match n {
        0 => ready_after(500),
        _ => stubborn(),
    });
    let daemon = Daemon::start(fake);
    let api = kill_timeout(1_000, depends_on("db", app("api")));
    // In the order the CLI sends them (kelpie-config puts dependencies first).
    let answer = daemon
        .request(start(vec![waits_ready(app("db")), api]))
        .await;
    assert_eq!(daemon.now_ms(), 500);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (500, Event::Started(FIRST_PID + 1))
        ]
    );
    let Response::Started { failures, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Online, Some(FIRST_PID)),
            (1, Status::Online, Some(FIRST_PID + 1)),
        ]
    );
    // Stopped in reverse order: db only once api is gone (killed at its kill_timeout).
    daemon.at(2_000).await;
    daemon
        .request(Request::Stop {
            targets: vec![Target::All],
        })
        .await;
    assert_eq!(daemon.now_ms(), 3_000);
    assert_eq!(
        since(daemon.events(), 2_000),
        [
            (2_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (3_000, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (3_000, Event::Ended(FIRST_PID + 1)),
            (3_000, Event::Signalled(FIRST_PID, SIGINT)),
            (3_000, Event::Ended(FIRST_PID)),
        ]
    );
    assert_eq!(
        daemon.on_disk(),
        [(0, Status::Stopped, None), (1, Status::Stopped, None)]
    );
}

/// db, counted as online only once it says READY=1 (its listen_timeout is ten minutes).
fn slow_db() -> AppSpec {
    AppSpec {
        listen_timeout_ms: 600_000,
        ..waits_ready(app("db"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_start_waiting_for_its_dependencies_gives_up_at_120_s() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let _db = daemon.send(start(vec![slow_db()])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(start(vec![depends_on("db", app("api"))]))
        .await;
    assert_eq!(daemon.now_ms(), 121_000);
    let Response::Started { failures, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(
        failures,
        &["app `api` was not started: the apps it depends on were not up within 120 s"]
    );
    // api was never started; it is registered, stopped, on disk.
    assert_eq!(daemon.events(), [(0, Event::Started(FIRST_PID))]);
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Launching, Some(FIRST_PID)),
            (1, Status::Stopped, None),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_users_stop_cancels_a_start_still_waiting_for_its_dependencies() {
    // db says READY=1 at 10 s (well within its listen_timeout).
    let fake = FakeProcesses::new(|_| ready_after(10_000));
    let daemon = Daemon::start(fake);
    let _db = daemon.send(start(vec![slow_db()])).await;
    // Once db is launching (a start sent before would find it stopped, and fail at once).
    daemon.at(100).await;
    let api = daemon.send(start(vec![depends_on("db", app("api"))])).await;
    daemon.at(1_000).await;
    let stop = daemon
        .request(Request::Stop {
            targets: name("api"),
        })
        .await;
    assert_eq!(daemon.now_ms(), 1_000, "nothing to wait for");
    assert_eq!(
        listed(&stop),
        [
            (0, "db".into(), Status::Launching, Some(FIRST_PID)),
            (1, "api".into(), Status::Stopped, None),
        ]
    );
    // db comes up: the start that waited has nothing left to do, and says nothing failed.
    let answer = answered(api).await;
    assert_eq!(daemon.now_ms(), 10_000);
    let Response::Started { failures, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert!(failures.is_empty(), "{failures:?}");
    daemon.at(20_000).await;
    assert_eq!(daemon.events(), [(0, Event::Started(FIRST_PID))]);
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Online, Some(FIRST_PID)),
            (1, Status::Stopped, None),
        ]
    );
}

/// Wait until `state.json` satisfies `done`, without letting virtual time pass (the persister
/// thread is writing it).
async fn until_on_disk(daemon: &Daemon, what: &str, done: impl Fn(&StateFile) -> bool) {
    let at = daemon.now_ms();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while !done(&daemon.state_on_disk()) {
        assert!(
            std::time::Instant::now() < give_up,
            "never on disk: {what}; {:?}",
            daemon.on_disk()
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(daemon.now_ms(), at, "written later than {at} ms: {what}");
}

#[tokio::test(start_paused = true)]
async fn a_change_no_command_caused_is_written_100_ms_later() {
    // The first process crashes at 500 ms and is restarted at once; the second runs.
    let fake = FakeProcesses::new(|n| Behaviour {
        exits_after: (n == 0).then_some((Duration::from_millis(500), 1)),
        ..Behaviour::default()
    });
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("api")])).await;
    daemon.at(599).await;
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (500, Event::Ended(FIRST_PID)),
            // What it may have left in its group.
            (500, Event::Signalled(FIRST_PID, SIGKILL)),
            (500, Event::Started(FIRST_PID + 1)),
        ]
    );
    assert_eq!(daemon.on_disk(), [(0, Status::Online, Some(FIRST_PID))]);
    daemon.at(600).await;
    until_on_disk(&daemon, "the restart", |state| {
        state.apps[0].state.pid == Some(FIRST_PID + 1)
    })
    .await;
    let state = daemon.state_on_disk();
    assert_eq!(state.apps[0].state.restart_time, 1);
    assert_eq!(
        state.apps[0].state.exits.back().map(|e| e.cause),
        Some(Cause::Crash)
    );
}

#[tokio::test(start_paused = true)]
async fn a_deleted_app_still_stopping_holds_back_the_app_it_depends_on() {
    // db (pid 1) stops at once; api (pid 2), which depends on it, only at its kill_timeout.
    let fake = FakeProcesses::new(|n| match n {
        0 => Behaviour::default(),
        _ => stubborn(),
    });
    let daemon = Daemon::start(fake);
    let api = kill_timeout(2_000, depends_on("db", app("api")));
    daemon.request(start(vec![app("db"), api])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Delete {
            targets: vec![Target::All],
        })
        .await;
    // api left the table at once but its process was leaving until 3 s: db went only then.
    assert_eq!(daemon.now_ms(), 3_000);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (3_000, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (3_000, Event::Ended(FIRST_PID + 1)),
            (3_000, Event::Signalled(FIRST_PID, SIGINT)),
            (3_000, Event::Ended(FIRST_PID)),
        ]
    );
    assert!(listed(&answer).is_empty());
    assert!(daemon.state_on_disk().apps.is_empty());
}

#[tokio::test(start_paused = true)]
async fn scale_starts_new_instances_and_removes_the_oldest() {
    let fake = FakeProcesses::new(|_| ready_after(200));
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![waits_ready(app("web"))])).await;
    assert_eq!(daemon.now_ms(), 200);
    let answer = daemon
        .request(Request::Scale {
            name: "web".into(),
            count: kelpie_proto::ScaleCount::Up(2),
        })
        .await;
    assert_eq!(daemon.now_ms(), 400);
    assert_eq!(
        starts_of(&daemon.events()),
        [(0, FIRST_PID), (200, FIRST_PID + 1), (200, FIRST_PID + 2)]
    );
    assert_eq!(
        listed(&answer),
        [
            (0, "web".into(), Status::Online, Some(FIRST_PID)),
            (1, "web".into(), Status::Online, Some(FIRST_PID + 1)),
            (2, "web".into(), Status::Online, Some(FIRST_PID + 2)),
        ]
    );
    let state = daemon.state_on_disk();
    let instances: Vec<(u32, u32)> = state.apps.iter().map(|a| (a.pm_id, a.instance)).collect();
    assert_eq!(instances, [(0, 0), (1, 1), (2, 2)]);
    assert!(state.apps.iter().all(|a| a.spec.instances == 3));
    // Down to one: the oldest two go.
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Scale {
            name: "web".into(),
            count: kelpie_proto::ScaleCount::To(1),
        })
        .await;
    assert_eq!(daemon.now_ms(), 1_000);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (1_000, Event::Ended(FIRST_PID + 1)),
        ]
    );
    assert_eq!(
        listed(&answer),
        [(2, "web".into(), Status::Online, Some(FIRST_PID + 2))]
    );
    assert_eq!(daemon.on_disk(), [(2, Status::Online, Some(FIRST_PID + 2))]);
    assert_eq!(daemon.state_on_disk().apps[0].spec.instances, 1);
}

fn reading(pid: u32, memory_mb: u64, cpu_percent: f64) -> Reading {
    Reading {
        pm_id: 0,
        pid,
        usage: kelpie_core::limits::Usage {
            memory_bytes: memory_mb << 20,
            cpu_percent,
            processes: 1,
        },
        cpu_seconds: 0.0,
    }
}

#[tokio::test(start_paused = true)]
async fn a_reading_over_max_memory_restart_restarts_that_process() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let api = AppSpec {
        max_memory_restart: Some(100 << 20),
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    daemon.at(1_000).await;
    // Under the limit, then over it.
    let sent = daemon.readings.send(vec![reading(FIRST_PID, 90, 0.0)]);
    assert!(sent.is_ok());
    daemon.at(2_000).await;
    let sent = daemon.readings.send(vec![reading(FIRST_PID, 150, 0.0)]);
    assert!(sent.is_ok());
    daemon.at(3_000).await;
    // A late reading of the process that was replaced restarts nothing.
    let sent = daemon.readings.send(vec![reading(FIRST_PID, 150, 0.0)]);
    assert!(sent.is_ok());
    daemon.at(4_000).await;
    assert_eq!(
        since(daemon.events(), 1),
        [
            (2_000, Event::Signalled(FIRST_PID, SIGINT)),
            (2_000, Event::Ended(FIRST_PID)),
            (2_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    let state = daemon.state_on_disk();
    let exit = state.apps[0].state.exits.back().expect("an exit");
    assert_eq!(exit.cause, Cause::Memory);
    assert_eq!(exit.pid, Some(FIRST_PID));
    assert!(
        exit.reason.contains("over max_memory_restart 100.0 MB"),
        "{exit:?}"
    );
    assert_eq!(state.apps[0].state.pid, Some(FIRST_PID + 1));
    // The list shows the last reading of the current process only.
    let list = daemon.request(Request::List).await;
    let Response::Processes(processes) = list else {
        panic!("{list:?}")
    };
    assert_eq!(processes[0].memory, 0);
}

#[tokio::test(start_paused = true)]
async fn cpu_over_max_cpu_for_its_window_restarts_the_process() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let api = AppSpec {
        max_cpu: Some(50),
        max_cpu_window_ms: 3_000,
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    for second in 1..=4 {
        daemon.at(second * 1_000).await;
        let sent = daemon.readings.send(vec![reading(FIRST_PID, 10, 80.0)]);
        assert!(sent.is_ok());
    }
    daemon.at(5_000).await;
    // Over since 1 s: the window is over at 4 s.
    assert_eq!(
        since(daemon.events(), 1),
        [
            (4_000, Event::Signalled(FIRST_PID, SIGINT)),
            (4_000, Event::Ended(FIRST_PID)),
            (4_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    let state = daemon.state_on_disk();
    let exit = state.apps[0].state.exits.back().expect("an exit");
    assert_eq!(exit.cause, Cause::Cpu);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_restarts_a_watched_app_and_not_a_stopped_one() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let watched = tempfile::tempdir().expect("watched directory");
    let path = watched.path().display().to_string();
    let api = AppSpec {
        watch: vec![path.clone()],
        cwd: path.clone(),
        ..app("api")
    };
    daemon.request(start(vec![api])).await;
    let burst = |changes| Command::FilesChanged {
        name: "api".into(),
        burst: crate::watch::WatchBurst {
            first_path: watched.path().join("index.js"),
            changes,
        },
    };
    daemon.at(1_000).await;
    assert!(daemon.commands.send(burst(3)).await.is_ok());
    daemon.at(2_000).await;
    assert_eq!(
        since(daemon.events(), 1),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Started(FIRST_PID + 1)),
        ]
    );
    let state = daemon.state_on_disk();
    let exit = state.apps[0].state.exits.back().expect("an exit");
    assert_eq!(exit.cause, Cause::Watch);
    assert!(
        exit.reason.contains("index.js and 2 more changed"),
        "{exit:?}"
    );
    // Stopped, it is no longer watched: a burst does nothing.
    daemon
        .request(Request::Stop {
            targets: name("api"),
        })
        .await;
    assert!(daemon.commands.send(burst(1)).await.is_ok());
    daemon.at(3_000).await;
    assert_eq!(starts_of(&daemon.events()).len(), 2);
    assert_eq!(daemon.on_disk(), [(0, Status::Stopped, None)]);
}

#[tokio::test(start_paused = true)]
async fn sigterm_stops_every_app_and_keeps_the_state_as_it_was() {
    let fake = FakeProcesses::new(|n| match n {
        0 => Behaviour::default(),
        _ => stubborn(),
    });
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![app("api"), kill_timeout(3_000, app("worker"))]))
        .await;
    let before = daemon.state_on_disk();
    daemon.at(1_000).await;
    assert!(daemon.signals.send(DaemonSignal::Term).is_ok());
    let ended = daemon.run.await.expect("the supervisor's task");
    assert!(ended.is_ok(), "{ended:?}");
    // Ends once the last process is gone (killed at worker's kill_timeout).
    assert_eq!(daemon.fake.elapsed_ms(), 4_000);
    assert_eq!(
        since(daemon.fake.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (4_000, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (4_000, Event::Ended(FIRST_PID + 1)),
        ]
    );
    // The next daemon starts both again.
    let bytes = std::fs::read(daemon.home.state_file()).expect("state.json");
    let after: StateFile = serde_json::from_slice(&bytes).expect("parses");
    let summary = |state: &StateFile| -> Vec<(u32, Status, Option<u32>, bool)> {
        state
            .apps
            .iter()
            .map(|a| (a.pm_id, a.state.status, a.state.pid, a.run))
            .collect()
    };
    assert_eq!(summary(&after), summary(&before));
    assert_eq!(
        summary(&after),
        [
            (0, Status::Online, Some(FIRST_PID), true),
            (1, Status::Online, Some(FIRST_PID + 1), true),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_saved_list_comes_back_with_resurrect_running_what_ran() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let web = AppSpec {
        instances: 2,
        ..app("web")
    };
    daemon.request(start(vec![app("api"), web])).await;
    daemon
        .request(Request::Stop {
            targets: name("api"),
        })
        .await;
    let saved = daemon.request(Request::Save { force: false }).await;
    assert!(matches!(saved, Response::Done(_)), "{saved:?}");
    daemon
        .request(Request::Delete {
            targets: vec![Target::All],
        })
        .await;
    assert!(daemon.state_on_disk().apps.is_empty());
    daemon.at(1_000).await;
    let answer = daemon.request(Request::Resurrect).await;
    assert_eq!(daemon.now_ms(), 1_000);
    // Numbered from 0 again; api was stopped when saved, so it stays so.
    assert_eq!(
        listed(&answer),
        [
            (0, "api".into(), Status::Stopped, None),
            (1, "web".into(), Status::Online, Some(FIRST_PID + 3)),
            (2, "web".into(), Status::Online, Some(FIRST_PID + 4)),
        ]
    );
    assert_eq!(
        daemon.on_disk(),
        [
            (0, Status::Stopped, None),
            (1, Status::Online, Some(FIRST_PID + 3)),
            (2, Status::Online, Some(FIRST_PID + 4)),
        ]
    );
    // Again: the apps are there, nothing is added.
    let again = daemon.request(Request::Resurrect).await;
    let Response::Started { notes, .. } = &again else {
        panic!("{again:?}")
    };
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(starts_of(&daemon.events()).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn kill_stops_every_app_forgets_them_and_ends_the_supervisor() {
    let fake = FakeProcesses::new(|_| stubborn());
    let daemon = Daemon::start(fake);
    daemon
        .request(start(vec![app("api"), kill_timeout(700, app("web"))]))
        .await;
    daemon.at(1_000).await;
    let answer = daemon.request(Request::Kill).await;
    // Answered once both are gone (the last at web's kill_timeout), then the loop ends.
    assert_eq!(daemon.now_ms(), 2_600);
    assert!(matches!(answer, Response::Done(_)), "{answer:?}");
    let ended = daemon.run.await.expect("the supervisor's task");
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(daemon.fake.elapsed_ms(), 2_600);
    assert_eq!(
        since(daemon.fake.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Signalled(FIRST_PID + 1, SIGINT)),
            (1_700, Event::Signalled(FIRST_PID + 1, SIGKILL)),
            (1_700, Event::Ended(FIRST_PID + 1)),
            (2_600, Event::Signalled(FIRST_PID, SIGKILL)),
            (2_600, Event::Ended(FIRST_PID)),
        ]
    );
    let bytes = std::fs::read(daemon.home.state_file()).expect("state.json");
    let state: StateFile = serde_json::from_slice(&bytes).expect("parses");
    assert!(state.apps.is_empty());
}

#[tokio::test(start_paused = true)]
async fn setting_an_apps_section_restarts_it_with_the_value_in_its_environment() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("api"), app("web")])).await;
    daemon.at(1_000).await;
    let answer = daemon
        .request(Request::Conf(kelpie_proto::ConfRequest::Set {
            pairs: vec![("api:GREETING".into(), "hello".into())],
        }))
        .await;
    let Response::Conf { restarted, .. } = &answer else {
        panic!("{answer:?}")
    };
    assert_eq!(restarted, &[0]);
    assert_eq!(
        since(daemon.events(), 1_000),
        [
            (1_000, Event::Signalled(FIRST_PID, SIGINT)),
            (1_000, Event::Ended(FIRST_PID)),
            (1_000, Event::Started(FIRST_PID + 2)),
        ]
    );
    let state = daemon.state_on_disk();
    let env = &state.apps[0].spec.env;
    assert!(
        env.iter().any(|(k, v)| k == "GREETING" && v == "hello"),
        "{env:?}"
    );
    let conf = std::fs::read_to_string(daemon.home.conf_file()).expect("module_conf.json");
    assert!(conf.contains("GREETING"), "{conf}");
    // Started again from scratch, it gets its section from the store.
    daemon
        .request(Request::Delete {
            targets: name("api"),
        })
        .await;
    daemon.request(start(vec![app("api")])).await;
    let state = daemon.state_on_disk();
    let api = state
        .apps
        .iter()
        .find(|a| a.spec.name == "api")
        .expect("api");
    // Each key, and the whole section as JSON under the app's name, as PM2 gives them.
    let expected = [("GREETING", "hello"), ("api", r#"{"GREETING":"hello"}"#)]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(api.spec.env, expected.into());
}

/// Its health is probed every `interval_ms` (by the fake: it always answers).
fn health_checked(interval_ms: u64, spec: AppSpec) -> AppSpec {
    AppSpec {
        health_check: Some(kelpie_core::HealthCheck {
            interval_ms,
            ..kelpie_core::HealthCheck::default()
        }),
        ..spec
    }
}

#[tokio::test(start_paused = true)]
async fn depends_on_a_health_checked_app_waits_until_it_is_healthy() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    let answer = daemon
        .request(start(vec![
            health_checked(700, app("db")),
            depends_on("db", app("api")),
        ]))
        .await;
    // db is online at once but healthy only at its first probe: api starts then.
    assert_eq!(daemon.now_ms(), 700);
    assert_eq!(
        daemon.events(),
        [
            (0, Event::Started(FIRST_PID)),
            (700, Event::Probed(FIRST_PID)),
            (700, Event::Started(FIRST_PID + 1)),
        ]
    );
    assert_eq!(
        listed(&answer),
        [
            (0, "db".into(), Status::Online, Some(FIRST_PID)),
            (1, "api".into(), Status::Online, Some(FIRST_PID + 1)),
        ]
    );
}

fn failures(response: &Response) -> &[String] {
    match response {
        Response::Started { failures, .. } => failures,
        other => panic!("not a start's answer: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_dependency_that_is_stopped_or_errored_fails_the_starts_waiting_for_it() {
    // Every process crashes 10 ms after its start.
    let fake = FakeProcesses::new(|_| Behaviour {
        exits_after: Some((Duration::from_millis(10), 1)),
        ..Behaviour::default()
    });
    let daemon = Daemon::start(fake);
    // db is registered, not started: b, which needs it, and a, which needs b, fail at once.
    let db = AppSpec {
        autostart: false,
        ..app("db")
    };
    let answer = daemon
        .request(start(vec![
            db,
            depends_on("db", app("b")),
            depends_on("b", app("a")),
        ]))
        .await;
    assert_eq!(daemon.now_ms(), 0);
    assert_eq!(
        failures(&answer),
        [
            "app `b` was not started: `db` (id 0), which it depends on, is stopped",
            "app `a` was not started: `b` (id 1), which it depends on, is stopped",
        ]
    );
    assert!(daemon.events().is_empty(), "nothing was started");
    // A dependency that ends errored (never ready, crashing): the start says so once it has.
    let broken = AppSpec {
        max_restarts: 2,
        ..waits_ready(app("broken"))
    };
    let answer = daemon
        .request(start(vec![broken, depends_on("broken", app("user"))]))
        .await;
    assert_eq!(daemon.now_ms(), 20);
    assert_eq!(
        failures(&answer),
        ["app `user` was not started: `broken` (id 3), which it depends on, is errored"]
    );
    assert_eq!(
        starts_of(&daemon.events()),
        [(0, FIRST_PID), (10, FIRST_PID + 1)]
    );
    let list = daemon.request(Request::List).await;
    let statuses: Vec<(String, Status)> = listed(&list)
        .into_iter()
        .map(|(_, name, status, _)| (name, status))
        .collect();
    assert_eq!(
        statuses,
        [
            ("db".into(), Status::Stopped),
            ("b".into(), Status::Stopped),
            ("a".into(), Status::Stopped),
            ("broken".into(), Status::Errored),
            ("user".into(), Status::Stopped),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_cycle_through_a_registered_app_is_refused_and_adds_nothing() {
    let fake = FakeProcesses::new(|_| Behaviour::default());
    let daemon = Daemon::start(fake);
    daemon.request(start(vec![app("p")])).await;
    daemon.request(start(vec![depends_on("p", app("q"))])).await;
    let before = std::fs::read(daemon.home.state_file()).expect("state.json");
    let answer = daemon
        .request(Request::Start {
            apps: vec![depends_on("q", app("p"))],
            force: true,
            from_file: false,
        })
        .await;
    let Response::Error(error) = answer else {
        panic!("not refused: {answer:?}")
    };
    assert_eq!(error.kind, kelpie_proto::ErrorKind::Conflict);
    assert_eq!(
        error.message,
        "depends_on has a cycle: p -> q -> p\nnothing was started"
    );
    assert_eq!(starts_of(&daemon.events()).len(), 2);
    let after = std::fs::read(daemon.home.state_file()).expect("state.json");
    assert_eq!(before, after);
}
