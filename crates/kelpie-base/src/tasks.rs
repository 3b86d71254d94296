//! Who owns each task the daemon starts. `tokio::spawn` is called here and nowhere else (a
//! test, `tests/shape.rs`, fails on one in another file; a `JoinSet` spawns into itself), and
//! each task has an owner that decides when it ends:
//!
//! - [`Owned`]: one task held by what it works for (a link's IPC reader, a health check, the
//!   web server's accept loop); dropping the owner aborts the task, awaiting it gives its result.
//! - [`Helpers`]: a few tasks of one owner (an instance, a link), ended with it.
//! - a `JoinSet`, for owners of many: the supervisor's pending work (`supervisor/pending.rs`)
//!   and its instances' tasks (the app table), the control socket's and the web server's
//!   connections, the apps' watches.
//! - [`background`]: short work that must outlive what started it (collecting the exit of a
//!   process dropped before it ended, so it leaves no zombie). The daemon waits a moment for
//!   it at its end ([`end_background`]).
//! - [`spawn_counted_on`]: the log pipeline's pipe readers, on its own thread's runtime; the
//!   pipeline counts them and waits, at the daemon's end, until each has read its pipe to the
//!   end (`logs/ending.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::task::{JoinError, JoinHandle, JoinSet};

/// A task that ends with its owner: dropped, it is aborted; awaited, it gives its result.
#[must_use = "an Owned task is aborted when dropped"]
pub struct Owned<T> {
    handle: JoinHandle<T>,
}

/// Start `future` as a task owned by the caller.
pub fn spawn<F>(future: F) -> Owned<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[expect(
        clippy::disallowed_methods,
        reason = "tasks.rs is where every task gets its owner"
    )]
    let handle = tokio::spawn(future);
    Owned { handle }
}

impl<T> Owned<T> {
    /// Whether the task has ended (returned, panicked or was aborted).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// End the task now (at its next await).
    pub fn abort(&self) {
        self.handle.abort();
    }
}

impl<T> Future for Owned<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A few tasks of one owner (an instance's helpers): dropped with it, ended ones let go as new
/// ones start. Empty, it allocates nothing (every instance has one; few ever use it).
#[derive(Default)]
pub struct Helpers {
    running: Vec<Owned<()>>,
}

impl Helpers {
    /// Start `future`, owned by this set.
    pub fn spawn(&mut self, future: impl Future<Output = ()> + Send + 'static) {
        self.running.retain(|task| !task.is_finished());
        self.running.push(spawn(future));
    }

    /// Whether none of them is still running.
    pub fn all_ended(&mut self) -> bool {
        self.running.retain(|task| !task.is_finished());
        self.running.is_empty()
    }

    /// Wait until every one has ended.
    pub async fn ended(&mut self) {
        for task in self.running.drain(..) {
            let _ = task.await;
        }
    }
}

/// Start `future` on `runtime` for an owner that counts its tasks itself (`future` holds its
/// guard) and waits for the count to fall to zero at its end.
pub fn spawn_counted_on(
    runtime: &tokio::runtime::Handle,
    future: impl Future<Output = ()> + Send + 'static,
) {
    // Not detached: counted by the caller, which waits for it (see the module's notes).
    #[expect(
        clippy::disallowed_methods,
        reason = "the log pipeline's readers: counted and awaited by the pipeline"
    )]
    drop(runtime.spawn(future));
}

/// Run `work` on the blocking pool, starting now, and give its result (or why there is none) to
/// whoever awaits the returned future: the caller owns the work. Work whose result nobody waits
/// for goes through [`background`], which the daemon waits for at its end.
pub fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> impl Future<Output = Result<T, Interrupted>> {
    #[expect(
        clippy::disallowed_methods,
        reason = "the one place blocking work starts: its handle goes to the caller"
    )]
    let handle = tokio::task::spawn_blocking(work);
    async move { handle.await.map_err(|e| Interrupted(e.to_string())) }
}

/// Blocking work that ended without its result: it panicked (a bug, whose message this holds),
/// or the runtime is shutting down. Its caller answers or logs it like its own failures.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Interrupted(String);

/// Add `future` to `set`, reaping the tasks of the set that have ended first (an owner of many
/// tasks that never awaits them one by one keeps no record of ended ones).
pub fn spawn_into<T: Send + 'static>(
    set: &mut JoinSet<T>,
    future: impl Future<Output = T> + Send + 'static,
) {
    while set.try_join_next().is_some() {}
    set.spawn(future);
}

/// The daemon's background work (see the module's notes).
static BACKGROUND: Mutex<Option<JoinSet<()>>> = Mutex::new(None);

fn background_set() -> MutexGuard<'static, Option<JoinSet<()>>> {
    BACKGROUND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Run `future` to its end even if what started it is gone. Must be called on the runtime.
pub fn background(future: impl Future<Output = ()> + Send + 'static) {
    let mut set = background_set();
    spawn_into(set.get_or_insert_with(JoinSet::new), future);
}

/// At the daemon's end: wait up to `within` for the background work, then abort what is left.
pub async fn end_background(within: Duration) {
    let Some(mut set) = background_set().take() else {
        return;
    };
    let _ = tokio::time::timeout(within, async { while set.join_next().await.is_some() {} }).await;
    set.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn an_owned_task_ends_with_its_owner() {
        let (held_tx, held_rx) = oneshot::channel::<()>();
        let (_never_tx, never_rx) = oneshot::channel::<()>();
        let task = spawn(async move {
            let _held = held_tx;
            let _ = never_rx.await;
        });
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        drop(task);
        assert!(
            held_rx.await.is_err(),
            "the task was aborted, what it held dropped"
        );
    }

    #[tokio::test]
    async fn an_owned_task_gives_its_result() {
        assert_eq!(spawn(async { 42 }).await.expect("not aborted"), 42);
    }

    #[tokio::test]
    async fn blocking_work_that_panics_is_an_error_naming_the_panic() {
        assert_eq!(blocking(|| 7).await.expect("done"), 7);
        let interrupted = blocking(|| -> u8 { panic!("a bug in the work") })
            .await
            .expect_err("no result");
        assert!(
            interrupted.to_string().contains("a bug in the work"),
            "{interrupted}"
        );
    }

    #[tokio::test]
    async fn a_set_keeps_no_record_of_ended_tasks() {
        let mut set = JoinSet::new();
        for _ in 0..10 {
            spawn_into(&mut set, async {});
            tokio::task::yield_now().await;
        }
        assert!(set.len() <= 2, "{} tasks kept", set.len());
    }
}
