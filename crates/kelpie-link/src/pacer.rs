//! Paced reading of the processes that report SDK metrics.
//!
//! `@pm2/io` sends its metrics every 990 ms from every app, each at its own moment. The
//! daemon's event loop wakes up whenever one of its descriptors becomes readable, so 200 such
//! apps wake it 200 times a second, and the wake-ups cost more than the messages. A link whose
//! process sends metrics hands its channel over here: the descriptor leaves the event loop for
//! a [`kelpie_sys::ReadySet`] that wakes nobody, looked at once per [`PERIOD`] by one timer,
//! which wakes the links that have something to read. Whatever the number of apps, that is at
//! most one wake-up per period, and nothing a paced process says waits longer than a period.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How often paced channels are looked at.
pub(super) const PERIOD: Duration = Duration::from_millis(250);

/// The channels handed over, and whether the timer runs.
struct Pacer {
    set: kelpie_sys::ReadySet,
    state: Mutex<Paced>,
}

#[derive(Default)]
struct Paced {
    /// Who to wake for each token.
    links: HashMap<u64, Arc<Notify>>,
    next_token: u64,
    /// The timer task runs (it ends when no channel is left).
    ticking: bool,
}

/// A channel handed over to the pacer, until dropped.
pub(super) struct PacedChannel<'a> {
    fd: BorrowedFd<'a>,
    token: u64,
    woken: Arc<Notify>,
}

impl PacedChannel<'_> {
    /// Once the channel has something to read (or was closed), at the next period.
    pub(super) async fn readable(&self) {
        self.woken.notified().await;
    }
}

impl Drop for PacedChannel<'_> {
    fn drop(&mut self) {
        if let Some(pacer) = pacer() {
            let _ = pacer.set.remove(self.fd);
            if let Ok(mut state) = pacer.state.lock() {
                state.links.remove(&self.token);
                crate::room::shrink_if_sparse(&mut state.links);
            }
        }
    }
}

fn pacer() -> Option<&'static Pacer> {
    static PACER: OnceLock<Option<Pacer>> = OnceLock::new();
    PACER
        .get_or_init(|| {
            kelpie_sys::ReadySet::new().ok().map(|set| Pacer {
                set,
                state: Mutex::new(Paced::default()),
            })
        })
        .as_ref()
}

/// Hand `fd` (a descriptor the event loop does not watch) over to the pacer. `None` if it
/// cannot take it (the caller then keeps reading it itself). Must be called on the runtime.
pub(super) fn pace(fd: BorrowedFd<'_>) -> Option<PacedChannel<'_>> {
    let pacer = pacer()?;
    let woken = Arc::new(Notify::new());
    let mut state = pacer.state.lock().ok()?;
    let token = state.next_token;
    pacer.set.add(fd, token).ok()?;
    state.next_token += 1;
    state.links.insert(token, woken.clone());
    if !state.ticking {
        state.ticking = true;
        crate::tasks::background(tick(pacer));
    }
    Some(PacedChannel { fd, token, woken })
}

/// Each period, wake the links whose channels are ready; end when none is left.
async fn tick(pacer: &'static Pacer) {
    let mut ready = Vec::new();
    loop {
        tokio::time::sleep_until(next_tick()).await;
        ready.clear();
        let Ok(mut state) = pacer.state.lock() else {
            return;
        };
        if pacer.set.ready_now(&mut ready, state.links.len()).is_ok() {
            for token in &ready {
                if let Some(link) = state.links.get(token) {
                    link.notify_one();
                }
            }
        }
        if state.links.is_empty() {
            state.ticking = false;
            return;
        }
    }
}

/// The next multiple of [`PERIOD`] on one clock (so that ticks stay apart by a period).
fn next_tick() -> tokio::time::Instant {
    static EPOCH: OnceLock<tokio::time::Instant> = OnceLock::new();
    let now = tokio::time::Instant::now();
    let epoch = *EPOCH.get_or_init(|| now);
    let period = PERIOD.as_millis();
    let periods = now.duration_since(epoch).as_millis() / period + 1;
    let since_epoch = u64::try_from(periods * period).unwrap_or(u64::MAX);
    epoch + Duration::from_millis(since_epoch)
}
