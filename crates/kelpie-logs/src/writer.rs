//! The writer thread: the only code that touches log files. It drains each file's pending
//! buffer in one write, rotates files by size (at a line boundary) and by time, truncates them
//! for `flush`, reopens them for `reloadLogs`, and survives a full disk or an unwritable path
//! (the lines are dropped and counted, the error is shown, writing resumes by itself).
//!
//! It runs on its own thread so a slow disk only ever delays the writer and the apps writing to
//! that disk's files (their readers wait for room, see `sink`); a full FIFO is retried, not
//! given up on, until it takes nothing for about 5 s.
//!
//! Here: the thread, its messages and its time. Its parts, in `writer/`: writing a file's
//! pending bytes (`files`), rotating a file (`rotate`), the ticks that look after every file
//! (`ticks`), and the daemon's own log (`daemon_log`).

mod daemon_log;
mod files;
mod rotate;
mod ticks;
mod writing;

use super::rotation::{period_of, ArchiveJob, RotationPolicy};
use super::sink::{lock, Sink};
use super::Registry;
use files::truncate;
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use ticks::DirStamp;
use tokio::sync::oneshot;

/// How often the writer checks time-based rotation and retries files it could not open.
const TICK: Duration = Duration::from_secs(1);
/// First wait before writing again to a file that was full (a FIFO read slowly); doubled at
/// each attempt that writes nothing, up to [`TICK`].
const RETRY_FULL: Duration = Duration::from_millis(5);

/// A request to the writer thread.
pub(super) enum WriterMsg {
    /// This file has pending bytes (or must be created).
    Write(Arc<Sink>),
    /// Empty these files (`flush`).
    Truncate(Vec<Arc<Sink>>, oneshot::Sender<()>),
    /// Close and reopen every file (`reloadLogs`, SIGUSR2); answers how many.
    Reopen(oneshot::Sender<usize>),
    /// Answer once every earlier message is handled (everything queued is on disk).
    Barrier(oneshot::Sender<()>),
    /// Like `Barrier`, answering the size of each of these files as written so far.
    Sizes(Vec<Arc<Sink>>, oneshot::Sender<Vec<u64>>),
    /// The daemon-wide defaults changed: recompute every file's policy.
    Defaults(RotationPolicy),
    /// Some file's rotation settings changed (an app registered it again with others).
    PolicyChanged,
    /// The daemon's own log is this file (its stderr): rotate it like the apps' logs.
    DaemonLog(PathBuf),
}

/// Start the writer thread.
pub(super) fn start(
    registry: Registry,
    archiver: mpsc::Sender<ArchiveJob>,
    defaults: RotationPolicy,
) -> std::io::Result<mpsc::Sender<WriterMsg>> {
    let (tx, rx) = mpsc::channel();
    let mut writer = Writer {
        registry,
        archiver,
        offset: local_offset(),
        dir_stamps: Vec::new(),
        ticks: 0,
        next_period_end_ms: i64::MAX,
        retrying: false,
        rescan: false,
        defaults,
        daemon_log: None,
        open_files: Cell::new(0),
        writes: Cell::new(0),
        full: Full::default(),
    };
    std::thread::Builder::new()
        .name("kelpie-log-writer".into())
        .spawn(move || writer.run(&rx))?;
    Ok(tx)
}

struct Writer {
    registry: Registry,
    archiver: mpsc::Sender<ArchiveJob>,
    /// The local UTC offset, refreshed every tick.
    offset: i32,
    /// Each log directory's identity and modification time at the last tick: a file removed
    /// (or renamed) there changes it, so the files of an unchanged directory need no check.
    dir_stamps: Vec<(PathBuf, Option<DirStamp>)>,
    ticks: u64,
    /// The earliest end of an open file's rotation period (local midnight by default):
    /// before it, no file can be due to rotate by time.
    next_period_end_ms: i64,
    /// Some file could not be opened and waits for another attempt.
    retrying: bool,
    /// Some file's rotation settings changed: look at every file at the next tick.
    rescan: bool,
    /// The daemon-wide rotation settings (the daemon's own log rotates under them).
    defaults: RotationPolicy,
    /// The daemon's own log, once the daemon says its stderr is that file.
    daemon_log: Option<DaemonLog>,
    /// App log files open, as counted at the last look plus those opened since (files closed
    /// otherwise make it an overestimate, corrected at the next look).
    open_files: Cell<usize>,
    /// Writes so far: each file's `last_write` is a point on it.
    writes: Cell<u64>,
    /// Files that were full for now, to write again soon.
    full: Full,
}

/// Files full for now (FIFOs or pipes read slowly) and when to try them again.
#[derive(Default)]
struct Full {
    sinks: Vec<Arc<Sink>>,
    /// Barriers that came while some file was full: answered once none is.
    barriers: Vec<oneshot::Sender<()>>,
    retry_at: Option<Instant>,
    delay: Duration,
}

/// The daemon's own log (`<home>/kelpie.log`, its stderr).
struct DaemonLog {
    path: PathBuf,
    /// Rotation period its content belongs to.
    period: i64,
}

impl Writer {
    fn run(&mut self, rx: &mpsc::Receiver<WriterMsg>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let until = self.full.retry_at.map_or(next_tick, |at| at.min(next_tick));
            let wait = until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(msg) => self.handle(msg),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            if self.full.retry_at.is_some_and(|at| Instant::now() >= at) {
                self.retry_full();
            }
            if Instant::now() >= next_tick {
                if self.registry.prune() {
                    // A bulk delete's sinks were the last of its frees: give the heap's free
                    // pages back now (the monitor's give-back after the burst may have run
                    // before them). Rare: a quarter of the files went since the last prune.
                    kelpie_sys::release_free_memory();
                }
                self.tick();
                next_tick = Instant::now() + TICK;
            }
        }
    }

    fn handle(&mut self, msg: WriterMsg) {
        match msg {
            WriterMsg::Write(sink) => {
                if self.drain(&sink) {
                    self.wait_full(sink);
                }
            }
            WriterMsg::Truncate(sinks, done) => {
                for sink in sinks {
                    truncate(&sink);
                }
                let _ = done.send(());
            }
            WriterMsg::Reopen(done) => {
                let sinks = self.live_sinks();
                for sink in &sinks {
                    let mut slot = lock(&sink.slot);
                    slot.file = None;
                    slot.retry_open_at = None;
                    self.ensure_open(sink, &mut slot);
                    let policy = *lock(&sink.policy);
                    self.note(sink, &slot, &policy);
                }
                let _ = done.send(sinks.len());
            }
            WriterMsg::Barrier(done) => {
                // What waits for a full FIFO is not written yet: answer once it is (or it is
                // given up on), so `kelpie update` does not exec over those lines.
                if self.full.sinks.is_empty() {
                    let _ = done.send(());
                } else {
                    self.full.barriers.push(done);
                }
            }
            WriterMsg::Sizes(sinks, done) => {
                let sizes = sinks.iter().map(|sink| lock(&sink.slot).size).collect();
                let _ = done.send(sizes);
            }
            WriterMsg::Defaults(defaults) => {
                for sink in self.live_sinks() {
                    let overrides = *lock(&sink.overrides);
                    *lock(&sink.policy) = defaults.for_app(&overrides);
                }
                self.defaults = defaults;
                self.rescan = true;
            }
            WriterMsg::PolicyChanged => self.rescan = true,
            WriterMsg::DaemonLog(path) => {
                let period = period_of(&self.defaults, now_ms(), self.offset);
                self.daemon_log = Some(DaemonLog { path, period });
            }
        }
    }

    /// `sink` is full for now: write it again soon (its readers wait meanwhile).
    fn wait_full(&mut self, sink: Arc<Sink>) {
        if !self.full.sinks.iter().any(|s| Arc::ptr_eq(s, &sink)) {
            self.full.sinks.push(sink);
        }
        if self.full.retry_at.is_none() {
            self.full.delay = RETRY_FULL;
            self.full.retry_at = Some(Instant::now() + RETRY_FULL);
        }
    }

    /// Write the full files again. The wait grows while none of them moves, so a FIFO nobody
    /// reads costs a wake-up a second, not a busy loop.
    fn retry_full(&mut self) {
        let mut moved = false;
        for sink in std::mem::take(&mut self.full.sinks) {
            let still_full = self.drain(&sink);
            let attempt = files::after_full_attempt(&sink, still_full);
            moved |= attempt.moved;
            if still_full && !attempt.given_up {
                self.full.sinks.push(sink);
            }
        }
        if self.full.sinks.is_empty() {
            self.full.retry_at = None;
            for done in self.full.barriers.drain(..) {
                let _ = done.send(());
            }
            return;
        }
        self.full.delay = if moved {
            RETRY_FULL
        } else {
            (self.full.delay * 2).min(TICK)
        };
        self.full.retry_at = Some(Instant::now() + self.full.delay);
    }

    fn live_sinks(&self) -> Vec<Arc<Sink>> {
        self.registry
            .lock()
            .values()
            .filter_map(std::sync::Weak::upgrade)
            .collect()
    }
}

fn local_offset() -> i32 {
    kelpie_sys::utc_offset_secs(now_ms() / 1000)
}

fn now_ms() -> i64 {
    crate::clock::wall_ms() as i64
}

fn system_time_ms(at: std::time::SystemTime) -> i64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests drive time and tasks themselves"
)]
mod tests {
    use super::super::cursor::{Look, PipeCursor};
    use super::super::sink::SinkStatus;
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    /// A writer over one sink in `dir`, rotating every `interval_ms`, not by size.
    fn writer_with_sink(
        dir: &Path,
        interval_ms: u64,
    ) -> (Writer, Arc<Sink>, mpsc::Receiver<ArchiveJob>) {
        let policy = RotationPolicy {
            max_size: 0,
            retain: 10,
            compress: false,
            interval_ms,
        };
        let sink = Arc::new(Sink::new(dir.join("app-out.log"), policy));
        let registry = Registry::default();
        registry
            .lock()
            .insert(sink.path().to_path_buf(), Arc::downgrade(&sink));
        let (archiver, archived) = mpsc::channel();
        let writer = Writer {
            registry,
            archiver,
            offset: 0,
            dir_stamps: Vec::new(),
            ticks: 0,
            next_period_end_ms: i64::MAX,
            retrying: false,
            rescan: false,
            defaults: policy,
            daemon_log: None,
            open_files: Cell::new(0),
            writes: Cell::new(0),
            full: Full::default(),
        };
        (writer, sink, archived)
    }

    /// A pipe holding `bytes`, and the cursor a reader looks at it through, having seen them.
    fn pipe_seen(bytes: &[u8]) -> (Arc<PipeCursor>, std::io::PipeWriter) {
        use std::io::Write;
        let (reader, mut app) = std::io::pipe().expect("pipe");
        app.write_all(bytes).expect("write");
        let cursor = Arc::new(PipeCursor::new(std::os::fd::OwnedFd::from(reader)));
        let mut buf = vec![0; 64 * 1024];
        let mut seen = Vec::new();
        let look = cursor.look(&mut buf, |chunk| seen.extend_from_slice(chunk));
        assert_eq!(look, Look::New(bytes.len()));
        assert_eq!(seen, bytes);
        (cursor, app)
    }

    #[test]
    fn raw_runs_are_spliced_from_their_pipe_and_formatted_ones_taken_out_once_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, _) = writer_with_sink(dir.path(), 0);
        let (cursor, app) = pipe_seen(b"one\ntwo\nx\n");
        let mut buf = vec![0; 64 * 1024];
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::Nothing, "seen already");
        sink.append_from(b"one\ntwo\n", &cursor, 8, true);
        sink.append(b"a copy from memory\n");
        sink.append_from(b"{\"message\":\"x\"}\n", &cursor, 2, false);
        assert_eq!(
            cursor.unconsumed(),
            Some(10),
            "nothing leaves the pipe before the writer"
        );
        writer.drain(&sink);
        assert_eq!(
            std::fs::read(sink.path()).expect("log"),
            b"one\ntwo\na copy from memory\n{\"message\":\"x\"}\n"
        );
        assert_eq!(
            cursor.unconsumed(),
            Some(0),
            "every byte written left the pipe"
        );
        assert_eq!(
            cursor.look(&mut buf, |_| {}),
            Look::Nothing,
            "the pipe is empty"
        );
        drop(app);
        assert_eq!(cursor.look(&mut buf, |_| {}), Look::Ended);
    }

    #[test]
    fn a_batch_that_cannot_be_written_is_dropped_counted_and_taken_out_of_its_pipe() {
        let dir = tempfile::tempdir().expect("temp dir");
        // A directory cannot be opened as a log file.
        let (mut writer, _, _) = writer_with_sink(dir.path(), 0);
        let sink = Arc::new(Sink::new(
            dir.path().to_path_buf(),
            RotationPolicy::default(),
        ));
        let (cursor, _app) = pipe_seen(b"one\ntwo\n");
        sink.append_from(b"one\ntwo\n", &cursor, 8, true);
        writer.drain(&sink);
        assert_eq!(cursor.unconsumed(), Some(0), "dropped lines leave the pipe");
        assert_eq!(sink.status().dropped_lines, 2);
        assert!(sink.status().error.is_some());
    }

    #[test]
    fn past_the_bound_the_least_recently_written_files_are_closed_and_reopened_at_their_next_line()
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, first, _) = writer_with_sink(dir.path(), 0);
        let policy = *lock(&first.policy);
        let mut sinks = vec![first];
        for i in 0..7 {
            let sink = Arc::new(Sink::new(
                dir.path().join(format!("app{i}-out.log")),
                policy,
            ));
            writer
                .registry
                .lock()
                .insert(sink.path().to_path_buf(), Arc::downgrade(&sink));
            sinks.push(sink);
        }
        for (i, sink) in sinks.iter().enumerate() {
            sink.append(format!("line {i}\n").as_bytes());
            writer.drain(sink);
        }
        let open = |sinks: &[Arc<Sink>]| -> Vec<bool> {
            sinks.iter().map(|s| lock(&s.slot).file.is_some()).collect()
        };
        assert!(open(&sinks).iter().all(|o| *o));
        // A bound of 4: the last written (kept) and two more stay open, the oldest are closed.
        writer.close_least_written(&sinks[7], 4);
        assert_eq!(
            open(&sinks),
            [false, false, false, false, false, true, true, true]
        );
        // A closed file takes its next line: opened again, appended to.
        sinks[0].append(b"again\n");
        writer.drain(&sinks[0]);
        assert_eq!(
            std::fs::read_to_string(sinks[0].path()).expect("read"),
            "line 0\nagain\n"
        );
    }

    #[test]
    fn a_file_rotates_at_the_first_tick_after_its_period_ends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, archived) = writer_with_sink(dir.path(), 1_000);
        // Periods end on whole seconds: begin well before one, so the first tick comes before
        // it (a tick after it is only checked when the machine stalled the test that long).
        let to_next_second = 1_000 - now_ms().rem_euclid(1_000);
        if to_next_second < 500 {
            std::thread::sleep(Duration::from_millis(to_next_second as u64 + 10));
        }
        sink.append(b"first period\n");
        let before = now_ms();
        writer.drain(&sink);
        let after = now_ms();
        let end = writer.next_period_end_ms;
        assert!(
            end > before && end <= after + 1_000,
            "the period's end is known: {end} ({before}..{after})"
        );

        writer.tick();
        if now_ms() < end {
            assert!(
                archived.try_recv().is_err(),
                "nothing is due before the period ends"
            );
        }
        std::thread::sleep(Duration::from_millis((end - now_ms()).max(0) as u64 + 20));
        writer.tick();
        let job = archived
            .try_recv()
            .expect("rotated at the first tick after the period");
        assert_eq!(
            std::fs::read(&job.rotated).expect("rotated file"),
            b"first period\n"
        );
        assert!(
            writer.next_period_end_ms > end,
            "the next period's end is watched"
        );
    }

    /// A FIFO at `sink`'s path holding at most 4 KiB, and its read end (non-blocking).
    fn small_fifo(sink: &Sink) -> std::fs::File {
        let made = std::process::Command::new("mkfifo")
            .arg(sink.path())
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(kelpie_sys::O_NONBLOCK)
            .open(sink.path())
            .expect("open the fifo's read end");
        kelpie_sys::set_pipe_capacity(reader.as_fd(), 4096).expect("a FIFO of 4 KiB");
        reader
    }

    /// Read what `fifo` holds now.
    fn take_all(fifo: &mut std::fs::File, into: &mut Vec<u8>) {
        use std::io::Read;
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = fifo.read(&mut buf) {
            into.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn a_fifo_read_between_the_timed_attempts_is_behind_not_failing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, _) = writer_with_sink(dir.path(), 0);
        let mut fifo = small_fifo(&sink);
        let mut got = Vec::new();
        let mut expected = Vec::new();
        let mut next = 0;
        // Each round, the FIFO's reader takes what it holds and new lines come, which fill it
        // again at once: every timed attempt finds it full, but it never stops moving.
        for _ in 0..3 * files::FULL_GIVE_UP {
            take_all(&mut fifo, &mut got);
            let lines: Vec<u8> = (next..next + 1_000)
                .flat_map(|i| format!("line {i}\n").into_bytes())
                .collect();
            next += 1_000;
            expected.extend_from_slice(&lines);
            sink.append(&lines);
            writer.handle(WriterMsg::Write(sink.clone()));
            writer.retry_full();
        }
        assert_eq!(
            sink.status(),
            SinkStatus {
                dropped_lines: 0,
                error: None
            },
            "never given up on"
        );
        while !writer.full.sinks.is_empty() {
            take_all(&mut fifo, &mut got);
            writer.retry_full();
        }
        take_all(&mut fifo, &mut got);
        assert!(got == expected, "{} bytes of {}", got.len(), expected.len());
    }

    #[test]
    fn a_fifo_given_up_in_the_middle_of_a_line_has_that_line_ended_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, _) = writer_with_sink(dir.path(), 0);
        let mut fifo = small_fifo(&sink);
        // 11-byte lines do not fill 4 KiB evenly: the FIFO takes part of one.
        let lines: Vec<u8> = (0..1_000)
            .flat_map(|i| format!("line {i:05}\n").into_bytes())
            .collect();
        sink.append(&lines);
        writer.handle(WriterMsg::Write(sink.clone()));
        // The first attempt sees the first write's progress; the next ones see none.
        for _ in 0..=files::FULL_GIVE_UP {
            writer.retry_full();
        }
        assert!(writer.full.sinks.is_empty(), "given up on");
        let mut got = Vec::new();
        take_all(&mut fifo, &mut got);
        assert!(!got.ends_with(b"\n"), "the FIFO took part of a line");
        sink.append(b"next\n");
        writer.drain(&sink);
        take_all(&mut fifo, &mut got);
        let text = String::from_utf8(got).expect("text");
        let last_lines: Vec<&str> = text.lines().rev().take(2).collect();
        assert_eq!(
            last_lines[0], "next",
            "the FIFO's last lines: {last_lines:?}"
        );
        assert!(
            "line 00000".len() > last_lines[1].len() && last_lines[1].starts_with("line"),
            "the cut line ends before the next: {:?}",
            last_lines[1]
        );
    }

    #[test]
    fn a_removed_file_is_made_again_at_the_next_tick() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut writer, sink, _archived) = writer_with_sink(dir.path(), 0);
        sink.append(b"before\n");
        writer.drain(&sink);
        writer.tick(); // learns the directory's stamp
        std::fs::remove_file(sink.path()).expect("remove the log file");
        writer.tick();
        assert!(
            sink.path().exists(),
            "made again after the directory changed"
        );
        sink.append(b"after\n");
        writer.drain(&sink);
        assert_eq!(std::fs::read(sink.path()).expect("log file"), b"after\n");
    }
}
