//! The threads that talk to the daemon, each on its own connection: the poller (one `List`
//! per interval), the log follower, and one short-lived thread per action.

use super::actions::Action;
use super::{Msg, TAIL_LINES};
use crate::client::Client;
use crate::render::monit::LogEntry;
use anyhow::{anyhow, bail, Result};
use kelpie_proto::{Home, LogStream, ProcessInfo, Request, Response};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// One `List` per interval, and one at once after each wake-up. Returns the wake-up handle.
pub(super) fn spawn_poller(
    home: Home,
    client: Client,
    interval: Duration,
    tx: Sender<Msg>,
) -> Sender<()> {
    let (wake, woken) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut client = Some(client);
        loop {
            if tx.send(Msg::List(list(&home, &mut client))).is_err() {
                return;
            }
            let host = match client.as_mut().map(|c| c.request(&Request::Host)) {
                Some(Ok(Response::Host(host))) => host,
                _ => None,
            };
            if tx.send(Msg::Host(host)).is_err() {
                return;
            }
            match woken.recv_timeout(interval) {
                Err(RecvTimeoutError::Disconnected) => return,
                Ok(()) | Err(RecvTimeoutError::Timeout) => while woken.try_recv().is_ok() {},
            }
        }
    });
    wake
}

/// Why the dashboard has no fresh list (shown in its place; the poller tries again).
#[derive(Debug, thiserror::Error)]
pub(super) enum NoList {
    /// The daemon is gone; it is not started again: that is the user's call.
    #[error("the daemon is not running (kelpie ping starts it)")]
    NotRunning,
    /// Connecting or asking failed (the connection is made again next time).
    #[error("{0:#}")]
    Connection(anyhow::Error),
    /// The daemon answered with something else than a list.
    #[error("unexpected answer from the daemon: {0}")]
    Unexpected(String),
}

/// The list, reconnecting when the connection broke (a daemon that was restarted or updated).
/// A daemon that is gone is not started again: that is the user's call.
fn list(home: &Home, client: &mut Option<Client>) -> Result<Vec<ProcessInfo>, NoList> {
    if client.is_none() {
        *client = Client::connect(home).map_err(NoList::Connection)?;
    }
    let Some(connection) = client.as_mut() else {
        return Err(NoList::NotRunning);
    };
    match connection.request(&Request::List) {
        Ok(Response::Processes(list)) => Ok(list),
        Ok(other) => Err(NoList::Unexpected(format!("{other:?}"))),
        Err(e) => {
            *client = None;
            Err(NoList::Connection(e))
        }
    }
}

/// Follow every app's output; reconnect a second after the stream breaks.
pub(super) fn spawn_log_follower(home: Home, tx: Sender<Msg>) {
    std::thread::spawn(move || loop {
        match follow_logs(&home, &tx) {
            Ok(()) => return,
            Err(e) => {
                if tx.send(Msg::LogsProblem(format!("{e:#}"))).is_err() {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    });
}

/// Stream the logs until the screen is gone (`Ok`) or the connection breaks (`Err`).
fn follow_logs(home: &Home, tx: &Sender<Msg>) -> Result<()> {
    let mut client = Client::connect(home)?.ok_or_else(|| anyhow!("the daemon is not running"))?;
    client.send(&Request::Logs(kelpie_proto::LogsRequest {
        targets: Vec::new(),
        lines: TAIL_LINES,
        out: true,
        err: true,
        follow: true,
    }))?;
    if tx.send(Msg::LogsRestarted).is_err() {
        return Ok(());
    }
    loop {
        match client.receive()? {
            Response::LogLines { lines, .. } => {
                let lines = lines
                    .into_iter()
                    .map(|line| {
                        let entry =
                            LogEntry::new(line.pm_id, line.stream == LogStream::Err, &line.bytes.0);
                        (line.app_name, entry)
                    })
                    .collect();
                if tx.send(Msg::Logs(lines)).is_err() {
                    return Ok(());
                }
            }
            Response::Error(e) => return Err(crate::exit::from_wire(&e)),
            Response::Done(_) => bail!("the daemon ended the log stream"),
            other => bail!("unexpected answer from the daemon: {other:?}"),
        }
    }
}

/// Carry out an action on its own connection; report, then refresh the list.
pub(super) fn spawn_action(home: Home, action: Action, tx: Sender<Msg>, wake: Sender<()>) {
    std::thread::spawn(move || {
        let outcome = (|| -> Result<String> {
            let mut client =
                Client::connect(&home)?.ok_or_else(|| anyhow!("the daemon is not running"))?;
            match client.request(&action.request())? {
                Response::Error(e) => Err(crate::exit::from_wire(&e)),
                _ => Ok(action.done()),
            }
        })();
        let msg = match outcome {
            Ok(text) => Msg::Done(text, false),
            Err(e) => Msg::Done(format!("{e:#}"), true),
        };
        let _ = tx.send(msg);
        let _ = wake.send(());
    });
}
