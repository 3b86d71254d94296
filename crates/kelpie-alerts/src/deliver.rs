//! One target's delivery task: a bounded queue (what overflows is dropped and counted), a rate
//! limit of `per_minute` messages (what goes beyond is held back, counted, and said in the next
//! message), and [`ATTEMPTS`] tries with backoff, each bounded by the transport's timeout.

use super::payload::Notice;
use super::transport::{self, DeliveryError};
use kelpie_config::NotifyTarget;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Messages waiting for a target; beyond that they are dropped and counted.
const QUEUE: usize = 64;

/// Tries of one message, and the waits between them.
const ATTEMPTS: usize = 3;
const BACKOFF: [Duration; ATTEMPTS - 1] = [Duration::from_secs(1), Duration::from_secs(4)];

/// A target's counters, shown by `kelpie notify`.
pub(super) struct Counters {
    /// The target as it may be shown (secrets masked).
    pub(super) shown: String,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    held: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A target's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetStatus {
    /// The target, secrets masked.
    pub target: String,
    /// Messages delivered.
    pub sent: u64,
    /// Messages given up on after every try.
    pub failed: u64,
    /// Messages dropped because its queue was full (it was too slow, or down).
    pub dropped: u64,
    /// Messages held back by its rate limit (said in its next message).
    pub held_back: u64,
    /// Why the last failure failed.
    pub last_error: Option<String>,
}

impl Counters {
    pub(super) fn status(&self) -> TargetStatus {
        TargetStatus {
            target: self.shown.clone(),
            sent: self.sent.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            held_back: self.held.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// What a target's task is asked.
enum Job {
    /// A notice, under the rate limit.
    Notice(Box<Notice>),
    /// A test message, past the rate limit, and where to say how it went.
    Test(oneshot::Sender<Result<String, DeliveryError>>),
}

/// The sending side of a target's task.
#[derive(Clone)]
pub(super) struct TargetSender {
    target: Arc<NotifyTarget>,
    jobs: mpsc::Sender<Job>,
    pub(super) counters: Arc<Counters>,
}

impl TargetSender {
    /// Queue `notice` if the target wants it; never waits.
    pub(super) fn offer(&self, notice: &Notice) {
        if !self.target.wants(notice.event, notice.app.as_deref()) {
            return;
        }
        if self
            .jobs
            .try_send(Job::Notice(Box::new(notice.clone())))
            .is_err()
        {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Send a test message now and say how it went.
    pub(super) async fn test(&self) -> Result<String, DeliveryError> {
        let (tx, rx) = oneshot::channel();
        if self.jobs.try_send(Job::Test(tx)).is_err() {
            return Err(DeliveryError::QueueFull);
        }
        rx.await.unwrap_or(Err(DeliveryError::Stopped))
    }
}

/// Start `target`'s task (it ends when the returned handle is dropped).
pub(super) fn start(
    target: NotifyTarget,
    home: PathBuf,
) -> (TargetSender, crate::tasks::Owned<()>) {
    let counters = Arc::new(Counters {
        shown: target.shown(),
        sent: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        held: AtomicU64::new(0),
        last_error: Mutex::new(None),
    });
    let target = Arc::new(target);
    let (jobs, rx) = mpsc::channel(QUEUE);
    let task = crate::tasks::spawn(run(target.clone(), rx, counters.clone(), home));
    let sender = TargetSender {
        target,
        jobs,
        counters,
    };
    (sender, task)
}

/// The rate limit: messages sent in the current minute, and those held back.
struct Rate {
    window_start: tokio::time::Instant,
    sent: u32,
    held: u32,
}

async fn run(
    target: Arc<NotifyTarget>,
    mut jobs: mpsc::Receiver<Job>,
    counters: Arc<Counters>,
    home: PathBuf,
) {
    let host = kelpie_sys::host_name().unwrap_or_else(|| "localhost".to_string());
    let mut rate = Rate {
        window_start: tokio::time::Instant::now(),
        sent: 0,
        held: 0,
    };
    while let Some(job) = jobs.recv().await {
        let now = tokio::time::Instant::now();
        if now.duration_since(rate.window_start) >= Duration::from_secs(60) {
            rate.window_start = now;
            rate.sent = 0;
        }
        match job {
            Job::Test(reply) => {
                let notice = Notice::new(
                    "test",
                    None,
                    None,
                    "a test message from Kelpie: this target works".to_string(),
                );
                let sent = transport::send(&target, &notice, &host, &home).await;
                match &sent {
                    Ok(_) => counters.sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => counters.failed.fetch_add(1, Ordering::Relaxed),
                };
                let _ = reply.send(sent);
            }
            Job::Notice(mut notice) => {
                if rate.sent >= target.per_minute {
                    rate.held += 1;
                    counters.held.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                rate.sent += 1;
                notice.held_back = std::mem::take(&mut rate.held);
                deliver(&target, &notice, &host, &home, &counters).await;
            }
        }
    }
}

/// Try `notice` up to [`ATTEMPTS`] times; count how it ended.
async fn deliver(
    target: &NotifyTarget,
    notice: &Notice,
    host: &str,
    home: &std::path::Path,
    counters: &Counters,
) {
    for attempt in 0..ATTEMPTS {
        match transport::send(target, notice, host, home).await {
            Ok(_) => {
                counters.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(why) => {
                *counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
                if let Some(wait) = BACKOFF.get(attempt) {
                    tokio::time::sleep(*wait).await;
                }
            }
        }
    }
    counters.failed.fetch_add(1, Ordering::Relaxed);
    crate::daemon_log!(
        "notify: gave up sending `{}` to {} after {ATTEMPTS} tries",
        notice.event,
        counters.shown
    );
}
