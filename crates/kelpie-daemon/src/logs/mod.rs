//! The log pipeline.
//!
//! Each process's stdout and stderr are pipes. A dedicated **log thread** (its own small async
//! runtime) reads every pipe as bytes, cuts the bytes into records ([`framer`]), formats them
//! ([`format`]: raw, dated or JSON) into each destination file's bounded pending buffer
//! ([`sink`]), and hands them to the in-memory [`hub`] (recent lines, live followers). The
//! **writer thread** ([`writer`]) drains pending buffers into the files and rotates them; the
//! **archiver thread** ([`rotation`]) gzips and prunes rotated files.
//!
//! Nothing on the reading side ever waits for a disk: when a buffer is full the lines are
//! dropped and counted, so an app can never be slowed or frozen by its logs. The supervisor's
//! thread is not involved at all, so a flood of output does not delay commands.

mod exit_tail;
mod format;
mod framer;
pub mod hub;
mod reader;
mod rotation;
mod sink;
mod tail;
mod writer;

pub use exit_tail::{exit_tail, TailReader, TailWriter};
pub use rotation::RotationPolicy;
pub use sink::SinkStatus;

use format::LineFormat;
use hub::{AppLabel, Hub};
use kelpie_core::{AppSpec, LogRotation};
use kelpie_proto::LogStream;
use sink::{lock, Sink};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use writer::WriterMsg;

/// Every open log file by path, so instances that share a file (merged logs, a combined log)
/// share one writer-side state and one buffer.
type Registry = Arc<Mutex<HashMap<PathBuf, Weak<Sink>>>>;

/// Capacity asked for an app's stdout pipe: a burst fits while the log thread is busy elsewhere
/// instead of blocking the app's write (the kernel default is 64 KiB). Measured with an app
/// printing 45 MB: it ran in 250 ms with 1 MiB pipes, 350–400 ms with 64 or 256 KiB ones.
const BIG_PIPE: usize = 1024 * 1024;
/// Total capacity of enlarged pipes. The kernel charges pipe capacity to the user and, past
/// `pipe-user-pages-soft` (64 MiB by default), gives *every* new pipe of that user only 8 KiB;
/// staying well under it keeps that from ever happening because of Kelpie.
const BIG_PIPE_BUDGET: usize = 32 * 1024 * 1024;

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

/// A pipe a reader gave back, still open, for the daemon that replaces this one.
pub struct HandedPipe {
    /// The instance whose process writes it.
    pub pm_id: u32,
    /// Which of its streams it is.
    pub stream: LogStream,
    /// The pipe's read end; `None` when it had reached its end (only its backlog is left).
    pub fd: Option<OwnedFd>,
    /// What was read from it while no daemon ran (the keeper's spool): processed first.
    pub backlog: Vec<u8>,
}

/// Counts a reader while it runs.
pub struct ReaderGuard(Arc<Shared>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An enlarged pipe's share of the budget, given back when its reader ends.
pub struct BigPipe {
    shared: Arc<Shared>,
    bytes: usize,
}

impl Drop for BigPipe {
    fn drop(&mut self) {
        self.shared
            .big_pipes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
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
    /// Where the match is reported.
    pub matched: tokio::sync::mpsc::UnboundedSender<crate::link::ProcessSignal>,
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

    /// The route for the next process of an instance; `None` when the app discards its output.
    pub fn route(
        &self,
        spec: &AppSpec,
        pm_id: u32,
        instance: u32,
        files: &LogFiles,
    ) -> Option<Arc<Route>> {
        if spec.disable_logs {
            return None;
        }
        let overrides = spec.log_rotation;
        // Without files, no sink is made (a sink creates its file).
        let combined = files
            .combined
            .as_deref()
            .filter(|_| self.files)
            .map(|p| self.sink(p, &overrides));
        let with_combined = |own: Option<&Path>| -> Vec<Arc<Sink>> {
            own.map(|p| self.sink(p, &overrides))
                .into_iter()
                .chain(combined.clone())
                .collect()
        };
        let (out, err) = if self.files {
            (
                with_combined(files.out.as_deref()),
                with_combined(files.err.as_deref()),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Some(Arc::new(Route {
            pm_id,
            instance,
            app: Arc::new(AppLabel {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
            }),
            format: LineFormat::for_spec(spec),
            out,
            err,
        }))
    }

    /// The sink of `path`, created (and its file opened by the writer) if new.
    fn sink(&self, path: &Path, overrides: &LogRotation) -> Arc<Sink> {
        let policy = lock(&self.defaults).for_app(overrides);
        let mut registry = lock(&self.registry);
        if let Some(sink) = registry.get(path).and_then(Weak::upgrade) {
            let before = std::mem::replace(&mut *lock(&sink.policy), policy);
            *lock(&sink.overrides) = *overrides;
            if before != policy {
                let _ = self.shared.writer.send(WriterMsg::PolicyChanged);
            }
            return sink;
        }
        registry.retain(|_, sink| sink.strong_count() > 0);
        let sink = Arc::new(Sink::new(path.to_path_buf(), policy));
        *lock(&sink.overrides) = *overrides;
        registry.insert(path.to_path_buf(), Arc::downgrade(&sink));
        // Create the file now, as PM2 does, rather than at the first line.
        sink.queued
            .store(true, std::sync::atomic::Ordering::Release);
        let _ = self.shared.writer.send(WriterMsg::Write(sink.clone()));
        sink
    }

    /// Read `fd` (a process's `stream`) on the log thread until it closes.
    pub fn attach(
        &self,
        route: Arc<Route>,
        stream: LogStream,
        fd: OwnedFd,
        watch: Option<LineWatch>,
        tail: Option<TailWriter>,
    ) {
        self.read(route, stream, fd, Vec::new(), watch, tail);
    }

    /// Read a pipe handed over by an earlier daemon (or by its keeper), after what was read
    /// from it meanwhile.
    pub fn attach_handed(&self, route: Arc<Route>, pipe: HandedPipe, tail: Option<TailWriter>) {
        let fd = match pipe.fd {
            Some(fd) => fd,
            // It had reached its end: only the backlog is left, then an end-of-file.
            None => match std::io::pipe() {
                Ok((ended, _writer)) => OwnedFd::from(ended),
                Err(_) => return,
            },
        };
        self.read(route, pipe.stream, fd, pipe.backlog, None, tail);
    }

    fn read(
        &self,
        route: Arc<Route>,
        stream: LogStream,
        fd: OwnedFd,
        backlog: Vec<u8>,
        watch: Option<LineWatch>,
        tail: Option<TailWriter>,
    ) {
        let big = (stream == LogStream::Out)
            .then(|| self.enlarge(&fd))
            .flatten();
        // A second descriptor for the keeper, so the pipe outlives this daemon.
        let kept = crate::keeper::hold(
            crate::keeper::Holding::Pipe {
                pm_id: route.pm_id,
                stream,
            },
            &[fd.as_fd()],
        );
        self.shared.readers.fetch_add(1, Ordering::AcqRel);
        let counted = ReaderGuard(self.shared.clone());
        self.runtime.spawn(reader::read_pipe(
            reader::Pipe {
                fd,
                stream,
                backlog,
            },
            route,
            self.shared.clone(),
            (counted, big, kept),
            watch,
            tail,
        ));
    }

    /// At daemon exit, once the apps have stopped: let the readers reach the end of their pipes
    /// (what the apps printed while stopping) and the writer write it, within `limit`.
    pub async fn finish(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.readers.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = tokio::time::timeout_at(deadline, self.written()).await;
    }

    /// For `kelpie update`: stop every reader, write what they had read, and take their pipes
    /// (still open, with what the apps print meanwhile waiting in them) for the next daemon.
    /// `Err` with the pipes given back when some reader did not stop within `limit`: the update
    /// must not go on (the exec would close that pipe under its app).
    pub async fn take_pipes(&self, limit: Duration) -> Result<Vec<HandedPipe>, Vec<HandedPipe>> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.shared.hand_back.send_replace(Some(tx));
        let deadline = tokio::time::Instant::now() + limit;
        while self.shared.readers.load(Ordering::Acquire) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        self.shared.hand_back.send_replace(None);
        let mut pipes = Vec::new();
        while let Ok(pipe) = rx.try_recv() {
            pipes.push(pipe);
        }
        if self.shared.readers.load(Ordering::Acquire) > 0 {
            return Err(pipes);
        }
        let _ = tokio::time::timeout_at(deadline + WRITER_ANSWER, self.written()).await;
        Ok(pipes)
    }

    /// Give a stdout pipe [`BIG_PIPE`] capacity if the budget allows.
    fn enlarge(&self, fd: &OwnedFd) -> Option<BigPipe> {
        let reserved = self
            .shared
            .big_pipes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + BIG_PIPE <= BIG_PIPE_BUDGET).then_some(used + BIG_PIPE)
            })
            .is_ok();
        if !reserved {
            return None;
        }
        let share = BigPipe {
            shared: self.shared.clone(),
            bytes: BIG_PIPE,
        };
        // Best effort: a smaller pipe still works, bursts just wait sooner.
        kelpie_sys::set_pipe_capacity(fd.as_fd(), BIG_PIPE)
            .ok()
            .map(|_| share)
    }

    /// Dropped lines and errors of a file, if it is in use.
    pub fn status(&self, path: &Path) -> Option<SinkStatus> {
        lock(&self.registry)
            .get(path)
            .and_then(Weak::upgrade)
            .map(|sink| sink.status())
    }

    /// Empty these files and forget these instances' recent lines.
    pub async fn flush(&self, pm_ids: &[u32], paths: &[PathBuf]) {
        lock(&self.shared.hub).clear(pm_ids);
        let sinks: Vec<Arc<Sink>> = {
            let registry = lock(&self.registry);
            paths
                .iter()
                .map(|path| {
                    registry
                        .get(path)
                        .and_then(Weak::upgrade)
                        .unwrap_or_else(|| {
                            Arc::new(Sink::new(path.clone(), RotationPolicy::default()))
                        })
                })
                .collect()
        };
        let (tx, rx) = oneshot::channel();
        if self
            .shared
            .writer
            .send(WriterMsg::Truncate(sinks, tx))
            .is_ok()
        {
            let _ = tokio::time::timeout(WRITER_ANSWER, rx).await;
        }
    }

    /// Close and reopen every file (after an external logrotate moved them); how many.
    pub async fn reopen(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.shared.writer.send(WriterMsg::Reopen(tx)).is_err() {
            return 0;
        }
        match tokio::time::timeout(WRITER_ANSWER, rx).await {
            Ok(Ok(count)) => count,
            _ => 0,
        }
    }

    /// Wait until everything read so far is written.
    pub async fn written(&self) {
        // The writer is a thread of its own: an in-process test's paused clock waits for it.
        let _held = crate::clock::hold();
        let (tx, rx) = oneshot::channel();
        if self.shared.writer.send(WriterMsg::Barrier(tx)).is_ok() {
            let _ = tokio::time::timeout(WRITER_ANSWER, rx).await;
        }
    }

    /// Wait until everything read so far is written, then the size of each of `paths` as
    /// written (`None` for a file not in use, or when the writer does not answer in time).
    pub async fn written_sizes(&self, paths: &[PathBuf]) -> Vec<Option<u64>> {
        let sinks: Vec<Option<Arc<Sink>>> = {
            let registry = lock(&self.registry);
            paths
                .iter()
                .map(|p| registry.get(p).and_then(Weak::upgrade))
                .collect()
        };
        let known: Vec<Arc<Sink>> = sinks.iter().flatten().cloned().collect();
        let (tx, rx) = oneshot::channel();
        let unknown = vec![None; paths.len()];
        if self
            .shared
            .writer
            .send(WriterMsg::Sizes(known, tx))
            .is_err()
        {
            return unknown;
        }
        let Ok(Ok(sizes)) = tokio::time::timeout(WRITER_ANSWER, rx).await else {
            return unknown;
        };
        let mut sizes = sizes.into_iter();
        sinks
            .iter()
            .map(|sink| sink.as_ref().and_then(|_| sizes.next()))
            .collect()
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
    tail::last_lines(path, n, limit)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enlarged_pipes_stay_within_the_budget_and_give_it_back() {
        let logs = LogService::start(RotationPolicy::default()).expect("start");
        let pipes: Vec<OwnedFd> = (0..BIG_PIPE_BUDGET / BIG_PIPE + 8)
            .map(|_| std::io::pipe().expect("pipe").0.into())
            .collect();
        let shares: Vec<BigPipe> = pipes.iter().filter_map(|fd| logs.enlarge(fd)).collect();
        assert_eq!(shares.len(), BIG_PIPE_BUDGET / BIG_PIPE);
        assert_eq!(
            logs.shared.big_pipes.load(Ordering::Acquire),
            BIG_PIPE_BUDGET
        );
        drop(shares);
        assert_eq!(logs.shared.big_pipes.load(Ordering::Acquire), 0);
    }
}
