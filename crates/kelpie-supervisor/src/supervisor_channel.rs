//! What the supervisor is asked and how it answers: the messages of its channel, shared by
//! everything that talks to it (the control socket's connections, the web server, `logs`
//! clients, its own tasks). It sits below all of them, so that none imports the supervisor:
//! the supervisor starts them and hands them the sending end of its channel.

use crate::logs::hub::LogFilter;
use crate::spawn_plan::LogPaths;
use kelpie_proto::{ProcessInfo, Request, Response};
use tokio::sync::oneshot;

/// What a face of the daemon (a control-socket connection, the web server) reaches the daemon
/// by.
#[derive(Clone)]
pub struct ClientServices {
    /// The supervisor's mailbox.
    pub commands: tokio::sync::mpsc::Sender<Command>,
    /// The log pipeline (`logs` streams from it).
    pub logs: crate::logs::LogService,
    /// The event bus (`Events` streams from it).
    pub bus: crate::bus::Bus,
    /// The notifications (`kelpie notify`).
    pub alerts: crate::alerts::Alerts,
}

/// A message to the supervisor.
pub enum Command {
    /// A request from a client; the reply goes back to its connection.
    Request {
        /// The request.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// A `logs` client asks which instances it reads.
    LogSelection {
        /// Its targets (empty = all).
        targets: Vec<kelpie_proto::Target>,
        /// The answer.
        reply: oneshot::Sender<Result<LogSelection, kelpie_proto::WireError>>,
    },
    /// An app's watch is set up (or could not be).
    WatchStarted {
        /// The app.
        name: String,
        /// What it was set up from.
        key: crate::watch::WatchSettings,
        /// The watch, or why not.
        result: Result<crate::watch::WatchHandle, crate::watch::WatchError>,
    },
    /// Watched files of an app changed.
    FilesChanged {
        /// The app.
        name: String,
        /// What changed.
        burst: crate::watch::WatchBurst,
    },
    /// The web server asks for what `/metrics` shows of each instance.
    Metrics {
        /// The answer.
        reply: oneshot::Sender<Vec<InstanceMetrics>>,
    },
    /// The control socket was made anew at its path (the home had been removed): its second
    /// descriptor, for `kelpie update`.
    ControlSocket(std::os::fd::OwnedFd),
}

/// One instance as `/metrics` shows it: what `list` shows, and the counters only the daemon
/// keeps.
pub struct InstanceMetrics {
    /// The instance as `list` shows it.
    pub info: ProcessInfo,
    /// CPU time its processes used since this daemon started (seconds).
    pub cpu_seconds: f64,
    /// Processes in its tree at the last reading.
    pub processes: u32,
    /// Failed health-check probes that counted (after the start period).
    pub health_failures: u64,
}

/// A response, and for the last response before exit a way to learn it was written.
pub struct Reply {
    /// The response.
    pub response: Response,
    /// Fired by the connection once the response is on the socket.
    pub written: Option<oneshot::Sender<()>>,
}

/// What a client is told when the supervisor is gone: the daemon is ending.
pub const SHUTTING_DOWN: &str = "the daemon is shutting down";

/// [`SHUTTING_DOWN`] as the error a client gets.
pub fn shutting_down() -> kelpie_proto::WireError {
    kelpie_proto::WireError {
        kind: kelpie_proto::ErrorKind::Internal,
        message: SHUTTING_DOWN.into(),
    }
}

/// The round trip of a request to the supervisor: its reply (with the way to say it was
/// written, for the control socket), or [`shutting_down`] when the supervisor is gone.
pub async fn round_trip(
    commands: &tokio::sync::mpsc::Sender<Command>,
    request: Request,
) -> Result<Reply, kelpie_proto::WireError> {
    let (tx, rx) = oneshot::channel();
    commands
        .send(Command::Request { request, reply: tx })
        .await
        .map_err(|_| shutting_down())?;
    rx.await.map_err(|_| shutting_down())
}

/// Ask the supervisor `request` as a client would, and take its answer as written at once
/// (for callers that answer their own client with something else: the HTTP API, `trigger`).
pub async fn ask(commands: &tokio::sync::mpsc::Sender<Command>, request: Request) -> Response {
    match round_trip(commands, request).await {
        Ok(Reply { response, written }) => {
            if let Some(written) = written {
                let _ = written.send(());
            }
            response
        }
        Err(gone) => Response::Error(gone),
    }
}

/// The outcome of a start, answered with the list.
pub(crate) struct Started {
    /// Each app's outcome.
    pub outcomes: Vec<kelpie_proto::StartOutcome>,
    /// Notes for the user (a config's warnings).
    pub notes: Vec<String>,
    /// Apps not started, and why.
    pub failures: Vec<String>,
}

/// How to answer once asynchronous work is done.
pub(crate) enum Finish {
    /// With the process list.
    List,
    /// With the list and the outcome of a start.
    Started(Started),
    /// With a message.
    Done(String),
    /// With an error.
    Failed(kelpie_proto::WireError),
    /// With a message, then exit the daemon.
    Exit(String),
    /// With this response.
    Reply(Response),
}

/// One instance a `logs` client reads.
pub struct SelectedInstance {
    /// Its id.
    pub pm_id: u32,
    /// Its app's name.
    pub name: String,
    /// Its log files.
    pub paths: LogPaths,
    /// The date its lines start with in its files (`log_date_format`), to read back when
    /// each line was written.
    pub line_dates: Option<kelpie_core::DateFormat>,
}

/// What a `logs` client reads: the instances to tail now, and the filter for following (which
/// also takes in instances started later: `all` and names are kept as such).
#[derive(Default)]
pub struct LogSelection {
    /// Instances matched now.
    pub instances: Vec<SelectedInstance>,
    /// Which new lines to send (streams not set yet).
    pub filter: LogFilter,
}
