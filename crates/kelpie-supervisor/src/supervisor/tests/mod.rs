//! The supervisor run in-process: a real `Supervisor` with its real instance tasks, persister
//! (in a temp home) and log pipeline, driven through its command channel with the requests the
//! CLI sends, its processes fake (instance/fake.rs), its signals and the monitor's readings sent
//! by the test, on tokio's paused clock: every answer, start, signal and write is checked at
//! the virtual millisecond it happens.

mod automatic;
mod order;
mod requests;

use super::*;
use crate::instance::fake::{Behaviour, Event, FakeProcesses, FIRST_PID};
use crate::state::StateFile;
use kelpie_core::{Cause, Status};
use kelpie_proto::{Request, Target};
use std::time::Duration;

/// A supervisor running in-process, and what a test drives it with.
struct Daemon {
    commands: mpsc::Sender<Command>,
    readings: mpsc::UnboundedSender<Vec<Reading>>,
    signals: mpsc::UnboundedSender<DaemonSignal>,
    fake: Arc<FakeProcesses>,
    monitor: Monitor,
    /// The supervisor's persister: how long its last write took.
    persister: Persister,
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
        crate::clock::paused_tests();
        let dir = tempfile::tempdir().expect("home");
        let home = Home::at(dir.path().to_path_buf());
        crate::home_setup::prepare_home(&home).expect("home set up");
        // Fake pids are never looked up in /proc.
        let persister = Persister::start(home.clone(), |_| None).expect("persister");
        let control = std::os::unix::net::UnixListener::bind(home.socket()).expect("socket");
        let (outboxes, inboxes) = channels();
        let logs = log_service();
        let bus = crate::bus::Bus::default();
        let setup = Setup {
            home: home.clone(),
            persister: persister.clone(),
            bus,
            alerts: Default::default(),
            logs,
            monitor: Monitor::not_started(),
            cgroups: crate::cgroups::Cgroups::default(),
            platform: instance::Platform::Fake(fake.clone()),
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
            persister,
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
    Request::Start(kelpie_proto::StartRequest {
        apps,
        force: false,
        from_file: false,
    })
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
