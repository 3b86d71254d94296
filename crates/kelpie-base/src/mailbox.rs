//! A small unbounded channel for the channels every instance has: its mailbox and its link's
//! signals.
//!
//! tokio's `mpsc` channel allocates, when it is made, its shared part padded to cache lines
//! (about 800 bytes) and a first block of 32 slots: about 1.3 KB per channel, before any message.
//! Thousands of instances, each with two channels that carry a few messages a minute, paid
//! 2.3 KB each for them (measured with 300 apps: 15.3 KB per app in the daemon's heap before,
//! 13.1 after). This one is a queue under a mutex and a [`Notify`]: about 100 bytes, and a queue
//! that grows only with the messages waiting. One receiver; the mutex is never held across an
//! `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// A new channel.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            senders: 1,
            receiving: true,
        }),
        arrived: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Told when a message arrives or the last sender goes (one permit kept if the receiver
    /// is not waiting yet, so no wake-up is lost between its look at the queue and its wait).
    arrived: Notify,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Live [`Sender`]s; the channel is closed for the receiver at 0 once the queue is empty.
    senders: usize,
    /// The [`Receiver`] still exists: sends fail once it is gone.
    receiving: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding it; a poisoned lock still holds a consistent queue.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Sends to the channel; cloned freely.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Queue `message`; given back when the receiver is gone.
    pub fn send(&self, message: T) -> Result<(), T> {
        let mut state = self.shared.lock();
        if !state.receiving {
            return Err(message);
        }
        state.queue.push_back(message);
        drop(state);
        self.shared.arrived.notify_one();
        Ok(())
    }

    /// A sender that does not keep the channel open.
    pub fn downgrade(&self) -> WeakSender<T> {
        WeakSender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Sender {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.senders -= 1;
        let last = state.senders == 0;
        drop(state);
        if last {
            self.shared.arrived.notify_one();
        }
    }
}

/// A sender that does not keep the channel open: [`WeakSender::upgrade`] gives a [`Sender`]
/// while another one lives.
pub struct WeakSender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> WeakSender<T> {
    pub fn upgrade(&self) -> Option<Sender<T>> {
        let mut state = self.shared.lock();
        if state.senders == 0 {
            return None;
        }
        state.senders += 1;
        Some(Sender {
            shared: self.shared.clone(),
        })
    }
}

impl<T> Clone for WeakSender<T> {
    fn clone(&self) -> Self {
        WeakSender {
            shared: self.shared.clone(),
        }
    }
}

/// Receives from the channel.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Empty {
    /// Nothing waiting now.
    Now,
    /// Nothing waiting, and no sender left.
    Closed,
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the queue is empty. Cancel-safe:
    /// a message is only taken when this returns it.
    pub async fn recv(&mut self) -> Option<T> {
        // Counts against the task's budget, as tokio's channels do: an app flooding its notify
        // socket (read on another thread) keeps this queue full, and its instance's loop must
        // still let the daemon's other tasks run.
        tokio::task::consume_budget().await;
        loop {
            match self.try_recv() {
                Ok(message) => return Some(message),
                Err(Empty::Closed) => return None,
                Err(Empty::Now) => self.shared.arrived.notified().await,
            }
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Result<T, Empty> {
        let mut state = self.shared.lock();
        match state.queue.pop_front() {
            Some(message) => Ok(message),
            None if state.senders == 0 => Err(Empty::Closed),
            None => Err(Empty::Now),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiving = false;
        // What was queued goes now, not when the last sender does.
        let queued = std::mem::take(&mut state.queue);
        drop(state);
        drop(queued);
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "tests drive time and tasks themselves"
)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_end_comes_after_them() {
        let (tx, mut rx) = channel();
        let other = tx.clone();
        tx.send(1).expect("open");
        other.send(2).expect("open");
        drop(tx);
        assert_eq!(rx.recv().await, Some(1));
        drop(other);
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(Empty::Closed));
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_a_send_from_another_thread() {
        let (tx, mut rx) = channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            tx.send("hello").expect("open");
            tx
        });
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got, Ok(Some("hello")));
        assert_eq!(rx.try_recv(), Err(Empty::Now));
        drop(sender.join().expect("sender"));
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(end, Ok(None), "the last sender's drop wakes the receiver");
    }

    #[tokio::test]
    async fn a_receive_given_up_in_a_select_loses_nothing() {
        let (tx, mut rx) = channel();
        tokio::select! {
            _ = rx.recv() => panic!("nothing was sent"),
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        tx.send(7).expect("open");
        assert_eq!(rx.recv().await, Some(7));
    }

    #[tokio::test]
    async fn a_full_queue_still_lets_the_other_tasks_run() {
        let (tx, mut rx) = channel();
        for n in 0..10_000 {
            tx.send(n).expect("open");
        }
        let other = tokio::spawn(async {});
        // On a current-thread runtime the other task runs only if receiving yields at times.
        let mut received = 0;
        while !other.is_finished() {
            rx.recv().await.expect("queued");
            received += 1;
            assert!(
                received < 10_000,
                "receiving never gave the other task a turn"
            );
        }
    }

    #[test]
    fn a_weak_sender_upgrades_only_while_a_sender_lives_and_sends_fail_without_a_receiver() {
        let (tx, rx) = channel::<u8>();
        let weak = tx.downgrade();
        let again = weak.upgrade().expect("a sender lives");
        drop(tx);
        assert!(
            weak.clone().upgrade().is_some(),
            "the upgraded one still lives"
        );
        drop(again);
        assert!(weak.upgrade().is_none());
        let (tx, rx2) = channel::<String>();
        drop(rx2);
        assert_eq!(tx.send("lost".into()), Err("lost".to_string()));
        drop(rx);
    }

    #[test]
    fn a_channel_costs_about_a_hundred_bytes() {
        // The shared part (state and Notify) is what each instance's channel allocates up
        // front, besides the queue's buffer once a message came.
        assert!(std::mem::size_of::<Shared<u64>>() <= 112);
    }
}
