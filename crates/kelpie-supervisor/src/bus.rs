//! The event bus: what happens to the processes (online, exit, restart, stop, errored, delete,
//! and the messages they send), for the clients that follow it (`Request::Events`, the Node
//! API's `launchBus`). The supervisor publishes; each following connection reads its own copy.
//! Nothing waits for a reader: with nobody following, publishing costs a look at a counter,
//! and a reader too slow to keep up misses events (it is told how many) instead of slowing
//! the daemon down.

use kelpie_core::{InstanceState, Status};
use kelpie_proto::{encode, BusEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::broadcast;

/// Events a reader may fall behind by before it misses some.
const BACKLOG: usize = 1024;

/// The sending side, shared by the supervisor and the connections.
#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<BusEvent>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

/// Who an event is about.
pub(crate) struct About<'a> {
    /// The instance's id.
    pub pm_id: u32,
    /// Its app's name.
    pub name: &'a str,
    /// Its app's namespace.
    pub namespace: &'a str,
}

impl<'a> About<'a> {
    /// Instance `pm_id` of the app `spec`.
    pub(crate) fn of(pm_id: u32, spec: &'a kelpie_core::AppSpec) -> Self {
        About {
            pm_id,
            name: &spec.name,
            namespace: &spec.namespace,
        }
    }
}

impl Bus {
    /// Tell the followers, if any.
    pub(crate) fn publish(&self, event: BusEvent) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(event);
        }
    }

    /// Whether anyone follows the bus (what only they need is not worked out otherwise).
    pub(crate) fn has_followers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Publish what changed between two states of an instance, described as `process`.
    pub(crate) fn publish_changes(
        &self,
        about: &About<'_>,
        old: &InstanceState,
        new: &InstanceState,
        process: Option<&serde_json::Value>,
    ) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        for kind in changes(old, new) {
            let mut event = event(kind, about, new);
            event.process = process.cloned();
            if kind == "exit" {
                event.pid = old.pid;
                if let Some(exit) = new.exits.back().filter(|e| e.pid == old.pid) {
                    event.exit_code = exit.code;
                    event.signal = exit.signal.clone();
                }
            }
            self.publish(event);
        }
    }

    /// A new follower.
    pub fn subscribe(&self) -> broadcast::Receiver<BusEvent> {
        self.sender.subscribe()
    }
}

/// An event about an instance in its state `state`.
pub(crate) fn event(kind: &str, about: &About<'_>, state: &InstanceState) -> BusEvent {
    BusEvent {
        event: kind.to_string(),
        pm_id: about.pm_id,
        name: about.name.to_string(),
        namespace: about.namespace.to_string(),
        status: state.status.as_str().to_string(),
        pid: state.pid,
        restart_time: state.restart_time,
        exit_code: None,
        signal: None,
        data: None,
        at_ms: crate::clock::now().wall_ms,
        process: None,
    }
}

/// The events a change of state means, in the order they happened: the old process ended,
/// the instance restarted by itself, then where it is now.
fn changes(old: &InstanceState, new: &InstanceState) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    if old.pid.is_some() && new.pid != old.pid {
        kinds.push("exit");
    }
    if new.restart_time > old.restart_time {
        kinds.push("restart");
    }
    let moved = new.status != old.status;
    match new.status {
        Status::Online if moved || new.pid != old.pid => kinds.push("online"),
        Status::Stopped if moved => kinds.push("stop"),
        Status::Errored if moved => kinds.push("errored"),
        _ => {}
    }
    kinds
}

/// An event about no instance (`subscribed`, `lagged`, `kill`).
pub(crate) fn daemon_event(kind: &str, count: u32) -> BusEvent {
    BusEvent {
        event: kind.into(),
        pm_id: 0,
        name: String::new(),
        namespace: String::new(),
        status: String::new(),
        pid: None,
        restart_time: count,
        exit_code: None,
        signal: None,
        data: None,
        at_ms: crate::clock::now().wall_ms,
        process: None,
    }
}

/// Stream the bus to a client until it closes the connection (or the daemon exits). The first
/// event is `subscribed`: from then on nothing published is missed (a client that sends a
/// message and waits for the answer, as `trigger` does, subscribes first). A reader that fell
/// behind gets an event `lagged` whose `restart_time` holds how many it missed.
pub async fn serve(stream: &mut UnixStream, bus: &Bus) {
    let mut events = bus.subscribe();
    let (mut reader, mut writer) = stream.split();
    let mut scratch = [0u8; 64];
    let mut subscribed = Some(daemon_event("subscribed", 0));
    loop {
        let event = tokio::select! {
            // Before anything else.
            biased;
            () = std::future::ready(()), if subscribed.is_some() => match subscribed.take() {
                Some(event) => event,
                None => continue,
            },
            received = events.recv() => match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    daemon_event("lagged", u32::try_from(missed).unwrap_or(u32::MAX))
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            // The client sends nothing more: any read that ends is its going away.
            read = reader.read(&mut scratch) => match read {
                Ok(n) if n > 0 => continue,
                _ => return,
            },
        };
        let Ok(frame) = encode(&kelpie_proto::Response::Event(event)) else {
            continue;
        };
        if writer.write_all(&frame).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Status, pid: Option<u32>, restarts: u32) -> InstanceState {
        let mut state = InstanceState::default();
        state.status = status;
        state.pid = pid;
        state.restart_time = restarts;
        state
    }

    #[test]
    fn a_change_of_state_means_events_in_the_order_they_happened() {
        let cases = [
            // (old, new, events)
            (
                state(Status::Launching, None, 0),
                state(Status::Online, Some(10), 0),
                vec!["online"],
            ),
            (
                state(Status::Online, Some(10), 0),
                state(Status::WaitingRestart, None, 1),
                vec!["exit", "restart"],
            ),
            (
                state(Status::Online, Some(10), 0),
                state(Status::Online, Some(11), 1),
                vec!["exit", "restart", "online"],
            ),
            (
                state(Status::Stopping, Some(10), 0),
                state(Status::Stopped, None, 0),
                vec!["exit", "stop"],
            ),
            (
                state(Status::Launching, None, 3),
                state(Status::Errored, None, 3),
                vec!["errored"],
            ),
            (
                state(Status::Online, Some(10), 0),
                state(Status::Online, Some(10), 0),
                vec![],
            ),
            (
                state(Status::Online, Some(10), 0),
                state(Status::Stopping, Some(10), 0),
                vec![],
            ),
        ];
        for (old, new, expected) in cases {
            assert_eq!(
                changes(&old, &new),
                expected,
                "{:?}/{:?} -> {:?}/{:?}",
                old.status,
                old.pid,
                new.status,
                new.pid
            );
        }
    }
}
