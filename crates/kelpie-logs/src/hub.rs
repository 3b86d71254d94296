//! Recent lines in memory, and the live feed for `kelpie logs`.
//!
//! Each instance keeps its last lines (both streams, bounded by count and bytes), so `logs`
//! answers without reading large files. Followers subscribe with a filter and get every new line
//! in arrival order; a follower that cannot keep up misses lines (counted and told) instead of
//! slowing anything down.

use super::ring::Ring;
use kelpie_proto::{LogBytes, LogStream, WireLogLine};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Batches a follower may have queued before it misses lines.
const FOLLOWER_QUEUE: usize = 256;
/// Memory a follower's queued lines may take (line bytes plus bookkeeping) before it misses lines.
const FOLLOWER_BYTES: usize = 8 * 1024 * 1024;
/// Bookkeeping counted per queued line, on top of its bytes.
const LINE_OVERHEAD: usize = 64;

/// An app's name and namespace, shared by its lines.
#[derive(Debug, PartialEq, Eq)]
pub struct AppLabel {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
}

/// The lines of one chunk read from one stream of one instance: one allocation for all of
/// them (a chatty app's lines cost a few allocations per read, not two per line).
#[derive(Debug)]
pub struct LogChunk {
    /// Sequence number of the first line (arrival order across all apps).
    pub first_seq: u64,
    /// Arrival time (ms since the epoch).
    pub at_ms: i64,
    /// Instance id.
    pub pm_id: u32,
    /// Its app.
    pub app: Arc<AppLabel>,
    /// Which stream.
    pub stream: LogStream,
    /// What the log file has before each of these lines (`2026-11-24 03:14:55: ` with
    /// `log_date_format`), so readers show them as they stand in the file.
    pub prefix: Option<Arc<[u8]>>,
    raw: Box<[u8]>,
    ends: Box<[u32]>,
}

impl LogChunk {
    /// A chunk of one line, `raw` (a ring's line copied out).
    pub(super) fn new(
        first_seq: u64,
        at_ms: i64,
        pm_id: u32,
        app: Arc<AppLabel>,
        stream: LogStream,
        prefix: Option<Arc<[u8]>>,
        raw: Vec<u8>,
    ) -> LogChunk {
        let end = u32::try_from(raw.len()).unwrap_or(u32::MAX);
        LogChunk {
            first_seq,
            at_ms,
            pm_id,
            app,
            stream,
            prefix,
            raw: raw.into(),
            ends: Box::new([end]),
        }
    }

    /// Where each line of `raw` ends (tests that make chunks of several lines).
    #[cfg(test)]
    pub(super) fn set_ends(&mut self, ends: Vec<u32>) {
        self.ends = ends.into();
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it holds no line.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i`, without its newline.
    pub fn line(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.raw[start..self.ends[i] as usize]
    }

    /// Bytes of its lines, newlines left out.
    pub fn bytes(&self) -> usize {
        self.raw.len()
    }
}

/// One line of a chunk.
#[derive(Debug, Clone)]
pub struct LogLine {
    chunk: Arc<LogChunk>,
    index: usize,
}

impl LogLine {
    /// Its chunk (instance, app, stream, arrival time).
    pub fn chunk(&self) -> &LogChunk {
        &self.chunk
    }

    /// Arrival order across all apps.
    pub fn seq(&self) -> u64 {
        self.chunk.first_seq + self.index as u64
    }

    /// The bytes, without the newline.
    pub fn bytes(&self) -> &[u8] {
        self.chunk.line(self.index)
    }

    /// The line as it stands in the log file (its date before it, with `log_date_format`),
    /// without the newline.
    pub fn as_written(&self) -> Vec<u8> {
        let prefix = self.chunk.prefix.as_deref().unwrap_or_default();
        let mut line = Vec::with_capacity(prefix.len() + self.bytes().len());
        line.extend_from_slice(prefix);
        line.extend_from_slice(self.bytes());
        line
    }

    /// The line as a client receives it (`logs`, a runtime's output).
    pub fn to_wire(&self) -> WireLogLine {
        let chunk = self.chunk();
        WireLogLine {
            pm_id: chunk.pm_id,
            app_name: chunk.app.name.clone(),
            stream: chunk.stream,
            at_ms: Some(chunk.at_ms),
            bytes: LogBytes(self.as_written()),
        }
    }

    /// The one line of a one-line chunk.
    pub(super) fn single(chunk: LogChunk) -> LogLine {
        LogLine {
            chunk: Arc::new(chunk),
            index: 0,
        }
    }

    /// Every line of `chunk`.
    pub fn all_of(chunk: &Arc<LogChunk>) -> impl Iterator<Item = LogLine> + '_ {
        (0..chunk.len()).map(|index| LogLine {
            chunk: chunk.clone(),
            index,
        })
    }
}

/// Which lines a reader wants.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Every app, including ones started later.
    pub all: bool,
    /// These instances.
    pub ids: HashSet<u32>,
    /// Every instance of these apps, including later ones.
    pub names: HashSet<String>,
    /// Every app of these namespaces.
    pub namespaces: HashSet<String>,
    /// Include stdout.
    pub out: bool,
    /// Include stderr.
    pub err: bool,
}

impl LogFilter {
    /// Do the lines of `chunk` pass?
    pub fn accepts(&self, chunk: &LogChunk) -> bool {
        let stream = match chunk.stream {
            LogStream::Out => self.out,
            LogStream::Err => self.err,
        };
        stream
            && (self.all
                || self.ids.contains(&chunk.pm_id)
                || self.names.contains(&chunk.app.name)
                || self.namespaces.contains(&chunk.app.namespace))
    }
}

/// What a follower receives.
#[derive(Debug)]
pub struct LogBatch {
    /// New lines, in arrival order.
    pub chunk: Arc<LogChunk>,
    /// Lines this follower missed just before these, because it was too slow.
    pub skipped: u64,
    /// Memory the batch accounts for in its follower's budget.
    cost: usize,
}

struct Follower {
    filter: LogFilter,
    tx: mpsc::Sender<LogBatch>,
    skipped: u64,
    queued: Arc<AtomicUsize>,
}

/// The receiving end of a follow: batches of new lines, within a memory budget.
pub struct Following {
    rx: mpsc::Receiver<LogBatch>,
    queued: Arc<AtomicUsize>,
}

impl Following {
    /// The next batch; `None` when the hub dropped this follower.
    pub async fn recv(&mut self) -> Option<LogBatch> {
        let batch = self.rx.recv().await?;
        self.queued.fetch_sub(batch.cost, Ordering::AcqRel);
        Some(batch)
    }
}

/// An instance's ring, and whose lines it keeps.
struct Kept {
    ring: Ring,
    /// The app that owns this instance id now (lines of another, such as a deleted app still
    /// printing while it stops, are not kept).
    owner: (String, String),
    /// Lines received since the instance took this id, stdout then stderr (for `/metrics`).
    received: [u64; 2],
}

/// The rings and the followers.
#[derive(Default)]
pub struct Hub {
    seq: u64,
    rings: HashMap<u32, Kept>,
    followers: Vec<Follower>,
}

/// Lines of one chunk, before they are numbered.
pub struct NewLines<'a> {
    /// Instance id.
    pub pm_id: u32,
    /// Its app.
    pub app: &'a Arc<AppLabel>,
    /// Stream.
    pub stream: LogStream,
    /// Arrival time.
    pub at_ms: i64,
    /// What the log file has before each line, if anything ([`LogChunk::prefix`]).
    pub prefix: Option<&'a [u8]>,
}

impl Hub {
    /// Add the lines of one chunk: `raw` holds them back to back, `ends` says where each ends.
    /// Returns the chunk (`None` without lines).
    pub fn publish(
        &mut self,
        from: &NewLines<'_>,
        raw: &[u8],
        ends: &[u32],
    ) -> Option<Arc<LogChunk>> {
        if ends.is_empty() {
            return None;
        }
        let chunk = Arc::new(LogChunk {
            first_seq: self.seq + 1,
            at_ms: from.at_ms,
            pm_id: from.pm_id,
            app: from.app.clone(),
            stream: from.stream,
            prefix: from.prefix.map(Arc::from),
            raw: raw.into(),
            ends: ends.into(),
        });
        self.seq += ends.len() as u64;
        let count = chunk.len() as u64;
        let cost = chunk.bytes() + chunk.len() * LINE_OVERHEAD;
        self.followers.retain_mut(|follower| {
            if !follower.filter.accepts(&chunk) {
                return !follower.tx.is_closed();
            }
            if follower.queued.load(Ordering::Acquire) + cost > FOLLOWER_BYTES {
                follower.skipped += count;
                return !follower.tx.is_closed();
            }
            let batch = LogBatch {
                chunk: chunk.clone(),
                skipped: follower.skipped,
                cost,
            };
            match follower.tx.try_send(batch) {
                Ok(()) => {
                    follower.queued.fetch_add(cost, Ordering::AcqRel);
                    follower.skipped = 0;
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    follower.skipped += count;
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        let Some(kept) = self.rings.get_mut(&from.pm_id) else {
            return Some(chunk);
        };
        if kept.owner.0 != from.app.name || kept.owner.1 != from.app.namespace {
            return Some(chunk);
        }
        kept.received[stream_index(from.stream)] += count;
        kept.ring.push(&chunk);
        Some(chunk)
    }

    /// A new instance takes `pm_id`: an empty ring that keeps only its app's lines.
    pub fn claim(&mut self, pm_id: u32, name: &str, namespace: &str) {
        self.rings.insert(
            pm_id,
            Kept {
                ring: Ring::new(pm_id),
                owner: (name.to_string(), namespace.to_string()),
                received: [0; 2],
            },
        );
    }

    /// Lines each instance printed since it took its id: `(pm_id, stdout, stderr)`.
    pub fn line_counts(&self) -> Vec<(u32, u64, u64)> {
        self.rings
            .iter()
            .map(|(pm_id, kept)| (*pm_id, kept.received[0], kept.received[1]))
            .collect()
    }

    /// The newest sequence number given so far.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// The last `n` lines of each stream of each instance `filter` accepts, in arrival order,
    /// and the (instance, stream) pairs that had fewer than `n` in memory.
    pub fn tail(&self, filter: &LogFilter, pm_ids: &[u32], n: usize) -> Tail {
        let mut tail = Tail::default();
        for pm_id in pm_ids {
            let Some(ring) = self.rings.get(pm_id).map(|kept| &kept.ring) else {
                for stream in streams(filter) {
                    tail.short.push((*pm_id, stream));
                }
                continue;
            };
            for stream in streams(filter) {
                let mine: Vec<LogLine> = ring
                    .newest_first()
                    .filter(|line| line.chunk.stream == stream)
                    .take(n)
                    .collect();
                if mine.len() < n {
                    tail.short.push((*pm_id, stream));
                }
                tail.lines.extend(mine);
            }
        }
        tail.lines.sort_by_key(LogLine::seq);
        tail
    }

    /// Lines of these instances that `filter` accepts and that arrived after `seq`, in order.
    pub fn since(&self, filter: &LogFilter, pm_ids: &[u32], seq: u64) -> Vec<LogLine> {
        let mut lines: Vec<LogLine> = pm_ids
            .iter()
            .filter_map(|pm_id| self.rings.get(pm_id))
            .flat_map(|kept| kept.ring.newest_first().take_while(|l| l.seq() > seq))
            .filter(|line| filter.accepts(&line.chunk))
            .collect();
        lines.sort_by_key(LogLine::seq);
        lines
    }

    /// Follow new lines that pass `filter`.
    pub fn follow(&mut self, filter: LogFilter) -> Following {
        let (tx, rx) = mpsc::channel(FOLLOWER_QUEUE);
        let queued = Arc::new(AtomicUsize::new(0));
        self.followers.push(Follower {
            filter,
            tx,
            skipped: 0,
            queued: queued.clone(),
        });
        Following { rx, queued }
    }

    /// End every follow: each follower gets what is queued, then the end (at exit, so that
    /// whoever prints the lines knows when it has them all).
    pub fn close_followers(&mut self) {
        self.followers.clear();
    }

    /// Forget the lines of these instances (`flush`).
    pub fn clear(&mut self, pm_ids: &[u32]) {
        for pm_id in pm_ids {
            if let Some(kept) = self.rings.get_mut(pm_id) {
                kept.ring.clear();
            }
        }
    }

    /// An instance was deleted: drop its ring (and the table's room once most are gone).
    pub fn forget(&mut self, pm_id: u32) {
        self.rings.remove(&pm_id);
        crate::room::shrink_if_sparse(&mut self.rings);
    }
}

fn stream_index(stream: LogStream) -> usize {
    match stream {
        LogStream::Out => 0,
        LogStream::Err => 1,
    }
}

fn streams(filter: &LogFilter) -> impl Iterator<Item = LogStream> {
    [(filter.out, LogStream::Out), (filter.err, LogStream::Err)]
        .into_iter()
        .filter_map(|(wanted, stream)| wanted.then_some(stream))
}

/// Answer of [`Hub::tail`].
#[derive(Debug, Default)]
pub struct Tail {
    /// Lines in arrival order.
    pub lines: Vec<LogLine>,
    /// Streams that had fewer lines in memory than asked for (read their files instead).
    pub short: Vec<(u32, LogStream)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{RING_BYTES, RING_LINES};

    fn label(name: &str) -> Arc<AppLabel> {
        Arc::new(AppLabel {
            name: name.into(),
            namespace: "default".into(),
        })
    }

    fn publish(hub: &mut Hub, pm_id: u32, app: &Arc<AppLabel>, stream: LogStream, lines: &[&str]) {
        if !hub.rings.contains_key(&pm_id) {
            hub.claim(pm_id, &app.name, &app.namespace);
        }
        let from = NewLines {
            pm_id,
            app,
            stream,
            at_ms: 0,
            prefix: None,
        };
        let raw: Vec<u8> = lines.iter().flat_map(|l| l.bytes()).collect();
        let ends: Vec<u32> = lines
            .iter()
            .scan(0u32, |end, l| {
                *end += l.len() as u32;
                Some(*end)
            })
            .collect();
        let _ = hub.publish(&from, &raw, &ends);
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines
            .iter()
            .map(|l| String::from_utf8_lossy(l.bytes()).into_owned())
            .collect()
    }

    fn chunk_texts(chunk: &Arc<LogChunk>) -> Vec<String> {
        texts(&LogLine::all_of(chunk).collect::<Vec<_>>())
    }

    fn both() -> LogFilter {
        LogFilter {
            all: true,
            out: true,
            err: true,
            ..LogFilter::default()
        }
    }

    #[test]
    fn tail_interleaves_streams_in_arrival_order_and_reports_short_streams() {
        let mut hub = Hub::default();
        let api = label("api");
        publish(&mut hub, 0, &api, LogStream::Out, &["o1", "o2"]);
        publish(&mut hub, 0, &api, LogStream::Err, &["e1"]);
        publish(&mut hub, 0, &api, LogStream::Out, &["o3"]);
        let tail = hub.tail(&both(), &[0], 2);
        assert_eq!(texts(&tail.lines), ["o2", "e1", "o3"]);
        assert_eq!(tail.short, [(0, LogStream::Err)]);
    }

    #[test]
    fn the_ring_is_bounded_by_lines_and_bytes() {
        let mut hub = Hub::default();
        let api = label("api");
        let many: Vec<String> = (0..RING_LINES + 10).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        publish(&mut hub, 0, &api, LogStream::Out, &refs);
        for _ in 0..3 {
            publish(&mut hub, 0, &api, LogStream::Out, &refs[..100]);
        }
        assert_eq!(hub.rings[&0].ring.len(), RING_LINES);
        let tail = hub.tail(&both(), &[0], RING_LINES);
        assert_eq!(tail.lines.len(), RING_LINES);
        assert!(tail.short.is_empty() || tail.short == [(0, LogStream::Err)]);
        let big = "x".repeat(RING_BYTES / 2 + 1);
        publish(&mut hub, 0, &api, LogStream::Out, &[&big, &big]);
        assert_eq!(
            hub.rings[&0].ring.len(),
            1,
            "older lines went for the big one"
        );
    }

    #[tokio::test]
    async fn followers_get_matching_lines_and_slow_ones_are_told_what_they_missed() {
        let mut hub = Hub::default();
        let api = label("api");
        let web = label("web");
        let mut filter = LogFilter {
            out: true,
            err: false,
            ..LogFilter::default()
        };
        filter.names.insert("api".into());
        let mut rx = hub.follow(filter).rx;
        publish(&mut hub, 0, &api, LogStream::Out, &["mine"]);
        publish(&mut hub, 0, &api, LogStream::Err, &["not this stream"]);
        publish(&mut hub, 1, &web, LogStream::Out, &["not this app"]);
        let batch = rx.recv().await.expect("a batch");
        assert_eq!(chunk_texts(&batch.chunk), ["mine"]);
        assert!(rx.try_recv().is_err());
        for _ in 0..FOLLOWER_QUEUE + 3 {
            publish(&mut hub, 0, &api, LogStream::Out, &["flood"]);
        }
        let mut received = 0;
        while let Ok(batch) = rx.try_recv() {
            received += batch.chunk.len();
        }
        assert_eq!(received, FOLLOWER_QUEUE);
        publish(&mut hub, 0, &api, LogStream::Out, &["after"]);
        let batch = rx.recv().await.expect("a batch");
        assert_eq!(batch.skipped, 3);
        drop(rx);
        publish(&mut hub, 0, &api, LogStream::Out, &["nobody"]);
        assert!(hub.followers.is_empty(), "a closed follower is removed");
    }

    #[test]
    fn a_reused_id_keeps_only_its_new_owners_lines() {
        let mut hub = Hub::default();
        let old = label("old");
        let new = label("new");
        publish(&mut hub, 0, &old, LogStream::Out, &["old line"]);
        hub.forget(0);
        hub.claim(0, "new", "default");
        publish(
            &mut hub,
            0,
            &old,
            LogStream::Out,
            &["old app still stopping"],
        );
        publish(&mut hub, 0, &new, LogStream::Out, &["new line"]);
        assert_eq!(texts(&hub.tail(&both(), &[0], 10).lines), ["new line"]);
    }

    #[tokio::test]
    async fn a_follower_that_does_not_read_is_bounded_in_bytes() {
        let mut hub = Hub::default();
        let api = label("api");
        let mut following = hub.follow(both());
        let big = "y".repeat(60_000);
        let lines: Vec<&str> = vec![big.as_str(); 10];
        for _ in 0..50 {
            publish(&mut hub, 0, &api, LogStream::Out, &lines);
        }
        let mut queued_bytes = 0;
        let mut skipped = 0;
        while let Ok(batch) = following.rx.try_recv() {
            queued_bytes += batch.chunk.bytes();
            skipped += batch.skipped;
        }
        assert!(queued_bytes <= FOLLOWER_BYTES, "{queued_bytes}");
        assert_eq!(skipped, 0, "nothing was delivered after the skips yet");
        publish(&mut hub, 0, &api, LogStream::Out, &["after"]);
        let batch = following.recv().await.expect("a batch");
        assert!(batch.skipped > 0);
    }
}
