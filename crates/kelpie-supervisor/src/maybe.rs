//! Waiting on something that may not be there. The daemon's select loops wait at once on a
//! timer that may not be armed, a process that may not run, a channel that may be closed: each
//! is "this future when there is one, else never", written once here.

use std::future::Future;
use tokio::time::Instant;

/// `wait(value)` when there is a value; never ready when there is none.
pub(crate) async fn when<T, F: Future>(value: Option<T>, wait: impl FnOnce(T) -> F) -> F::Output {
    match value {
        Some(value) => wait(value).await,
        None => std::future::pending().await,
    }
}

/// Ready at `at`; never without a deadline.
pub(crate) async fn until(at: Option<Instant>) {
    when(at, tokio::time::sleep_until).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_wakes_at_its_time_and_none_never_does() {
        let start = Instant::now();
        let at = start + Duration::from_millis(250);
        tokio::select! {
            () = until(None) => panic!("no deadline woke"),
            () = until(Some(at)) => {}
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_is_waited_on_and_none_never_is() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u8>();
        tx.send(7).expect("send");
        let nothing: Option<&mut tokio::sync::mpsc::UnboundedReceiver<u8>> = None;
        tokio::select! {
            _ = when(nothing, |rx| rx.recv()) => panic!("nothing was waited on"),
            got = when(Some(&mut rx), |rx| rx.recv()) => assert_eq!(got, Some(7)),
        }
    }
}
