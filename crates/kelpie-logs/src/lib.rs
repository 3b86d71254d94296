//! The log pipeline.
//!
//! Each process's stdout and stderr are pipes. A dedicated **log thread** (its own small async
//! runtime) reads every pipe as bytes, cuts the bytes into records ([`framer`]), formats them
//! ([`format`]: raw, dated or JSON) into each destination file's bounded pending buffer
//! ([`sink`]), and hands them to the in-memory [`hub`] (recent lines, live followers). The
//! **writer thread** ([`writer`]) drains pending buffers into the files and rotates them; the
//! **archiver thread** ([`rotation`]) gzips and prunes rotated files.
//!
//! Nothing on the reading side ever blocks on a disk. When a writable file's buffer is full, its
//! readers stop reading their pipes (an async wait) until the writer takes it, so the apps'
//! writes wait instead of lines being lost; a file that fails or makes no progress has its
//! lines dropped and counted instead, so no app is frozen by a broken disk. The supervisor's
//! thread is not involved at all, so a flood of output does not delay commands.
//!
//! Here: the service, its shared state and what an instance's output is routed by. Its
//! operations, by kind: making routes and their files' sinks (`routing`), reading pipes
//! (`pipes`), the readers' end at exit or for `kelpie update` (`ending`), and what is asked of
//! the files (`files`).
//!
//! A crate of its own, below the supervisor: "the supervisor is never in the output path" is a
//! fact of the crate graph (this crate does not depend on the daemon's), not a rule to read.
//! What an instance needs to hear from its output (a line matching its `ready_pattern`) it
//! hears through the callback it gives ([`LineWatch`]).

use kelpie_base::{clock, daemon_log, descriptors, room, tasks};
use kelpie_keeper as keeper;

mod batch;
mod cursor;
mod ending;
mod exit_tail;
mod files;
mod format;
mod framer;
pub mod hub;
mod pipes;
mod reader;
mod registry;
mod ring;
mod rotation;
mod routing;
mod sink;
mod writer;

pub use ending::HandedPipe;
pub use exit_tail::{exit_tail, TailReader, TailWriter};
pub use pipes::NewPipe;
pub use rotation::RotationPolicy;
pub use sink::SinkStatus;

pub use format::LineFormat;
use hub::{AppLabel, Hub};
use kelpie_core::AppSpec;
use kelpie_proto::LogStream;
use pipes::{BigPipe, ReaderGuard};
use sink::{lock, Sink};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use writer::WriterMsg;

/// Every open log file by path (`registry`), shared by the service and the writer.
type Registry = Arc<registry::Registry>;

/// How long a command waits for the writer (which may be stuck on a dead disk) before answering
/// anyway.
const WRITER_ANSWER: Duration = Duration::from_secs(5);

/// What the log thread, the writer and the daemon share.
pub struct Shared {
    writer: mpsc::Sender<WriterMsg>,
    hub: Mutex<Hub>,
    /// Capacity of the enlarged pipes now open.
    big_pipes: AtomicUsize,
    /// Pipes being read.
    readers: AtomicUsize,
    /// Set while `kelpie update` takes the pipes back: each reader stops and sends its pipe
    /// there.
    hand_back: tokio::sync::watch::Sender<Option<tokio::sync::mpsc::UnboundedSender<HandedPipe>>>,
}

/// Handle on the pipeline; cheap to clone.
#[derive(Clone)]
pub struct LogService {
    shared: Arc<Shared>,
    registry: Registry,
    runtime: tokio::runtime::Handle,
    defaults: Arc<Mutex<RotationPolicy>>,
    /// Whether output is written to files; without, it only reaches the hub (recent lines and
    /// followers), as under `kelpie runtime` where stdout is the log.
    files: bool,
}

/// Where an instance's output goes, for the life of one process.
pub struct Route {
    pm_id: u32,
    instance: u32,
    app: Arc<AppLabel>,
    format: LineFormat,
    out: Vec<Arc<Sink>>,
    err: Vec<Arc<Sink>>,
}

impl Route {
    fn sinks(&self, stream: LogStream) -> &[Arc<Sink>] {
        match stream {
            LogStream::Out => &self.out,
            LogStream::Err => &self.err,
        }
    }

    /// The file a keeper writes `stream`'s bytes to while no daemon runs: its one file, when
    /// its lines are written raw (the bytes as they are in the pipe). Else the keeper spools.
    pub fn keeper_file(&self, stream: LogStream) -> Option<PathBuf> {
        match (self.sinks(stream), &self.format) {
            ([only], LineFormat::Raw) => Some(only.path().to_path_buf()),
            _ => None,
        }
    }
}

/// An instance's log files; `None` = discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFiles {
    /// stdout's file.
    pub out: Option<PathBuf>,
    /// stderr's file.
    pub err: Option<PathBuf>,
    /// The file that gets both.
    pub combined: Option<PathBuf>,
}

/// Tells an instance when a line of a process's output matches its app's `ready_pattern`.
/// Checked on complete lines only, until the first match.
pub struct LineWatch {
    /// The pattern.
    pub pattern: Arc<regex::bytes::Regex>,
    /// Called at the first match (on the log thread: it only passes the news on).
    pub matched: Box<dyn FnOnce() + Send + Sync>,
}

impl LogService {
    /// Start the log thread, the writer and the archiver.
    pub fn start(defaults: RotationPolicy) -> std::io::Result<LogService> {
        let registry = Registry::default();
        let archiver = rotation::start_archiver()?;
        let writer = writer::start(registry.clone(), archiver, defaults)?;
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kelpie-logs".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Runs the readers for the life of the daemon.
                runtime.block_on(std::future::pending::<()>());
            })?;
        let runtime = handle_rx
            .recv()
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(LogService {
            shared: Arc::new(Shared {
                writer,
                hub: Mutex::default(),
                big_pipes: AtomicUsize::new(0),
                readers: AtomicUsize::new(0),
                hand_back: tokio::sync::watch::Sender::new(None),
            }),
            registry,
            runtime,
            defaults: Arc::new(Mutex::new(defaults)),
            files: true,
        })
    }

    /// This service, writing no file: output only reaches the hub. Call before cloning it.
    pub fn without_files(self) -> LogService {
        LogService {
            files: false,
            ..self
        }
    }

    /// The daemon's stderr is its log file `path`: rotate it like the apps' logs.
    pub fn rotate_daemon_log(&self, path: PathBuf) {
        let _ = self.shared.writer.send(WriterMsg::DaemonLog(path));
    }

    /// Replace the daemon-wide rotation defaults, for every file from now on.
    pub fn set_defaults(&self, defaults: RotationPolicy) {
        *lock(&self.defaults) = defaults;
        let _ = self.shared.writer.send(WriterMsg::Defaults(defaults));
    }

    /// The hub of recent lines and followers, locked (never hold it across an await).
    pub fn lock_hub(&self) -> std::sync::MutexGuard<'_, Hub> {
        lock(&self.shared.hub)
    }

    /// An instance was deleted: forget its recent lines.
    pub fn forget(&self, pm_id: u32) {
        lock(&self.shared.hub).forget(pm_id);
    }

    /// A new instance takes `pm_id`: the recent lines kept under that id are now its own (late
    /// lines of a deleted instance that had the id are no longer kept).
    pub fn claim(&self, pm_id: u32, spec: &AppSpec) {
        lock(&self.shared.hub).claim(pm_id, &spec.name, &spec.namespace);
    }
}

/// The last `n` lines among the first `limit` bytes of a file, each cut into pieces of at most
/// the line cap (blocking: call on the blocking pool).
pub fn file_tail(path: &Path, n: usize, limit: Option<u64>) -> Vec<Vec<u8>> {
    kelpie_view::tail::last_lines(path, n, limit)
        .into_iter()
        .flat_map(|line| {
            if line.len() <= framer::MAX_RECORD {
                vec![line]
            } else {
                line.chunks(framer::MAX_RECORD)
                    .map(<[u8]>::to_vec)
                    .collect()
            }
        })
        .collect()
}
