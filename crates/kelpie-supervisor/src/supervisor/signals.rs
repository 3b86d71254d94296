//! The signals the daemon acts on, as one stream for the supervisor's loop. A daemon takes them
//! from the system (tokio's handlers, installed once and never removed: process-wide); the
//! in-process tests send them down a channel, so that a test never installs a handler.

use crate::DaemonError;
use kelpie_proto::Home;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DaemonSignal {
    /// SIGTERM: stop every app and exit, keeping the list.
    Term,
    /// SIGINT: as SIGTERM.
    Int,
    /// SIGHUP: the runtime stops; the daemon only says so.
    Hup,
    /// SIGUSR1 (`kelpie_proto::UPDATE_SIGNAL`): `kelpie update` asks.
    Usr1,
    /// SIGUSR2: reopen the log files.
    Usr2,
}

impl DaemonSignal {
    /// Its name, for the log.
    pub(super) fn name(self) -> &'static str {
        match self {
            DaemonSignal::Term => "SIGTERM",
            DaemonSignal::Int => "SIGINT",
            DaemonSignal::Hup => "SIGHUP",
            DaemonSignal::Usr1 => "SIGUSR1",
            DaemonSignal::Usr2 => "SIGUSR2",
        }
    }
}

/// Where the supervisor's signals come from.
pub(super) enum Signals {
    /// The process's own.
    System(SystemSignals),
    /// Sent by an in-process test.
    #[cfg(test)]
    Sent(tokio::sync::mpsc::UnboundedReceiver<DaemonSignal>),
}

/// tokio's handler of each signal the daemon acts on.
pub(super) struct SystemSignals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
}

impl Signals {
    /// Handle the daemon's signals from now on, then let through those that a program started
    /// by `kelpie update` finds blocked (see `update.rs`): sent meanwhile, they are delivered
    /// now.
    pub(super) fn install(home: &Home) -> Result<Signals, DaemonError> {
        let install = |kind| {
            signal(kind)
                .map_err(|source| DaemonError::io("cannot handle signals in", home.root(), source))
        };
        let signals = SystemSignals {
            term: install(SignalKind::terminate())?,
            int: install(SignalKind::interrupt())?,
            hup: install(SignalKind::hangup())?,
            usr1: install(SignalKind::user_defined1())?,
            usr2: install(SignalKind::user_defined2())?,
        };
        let _ = kelpie_sys::unblock_signals(&crate::update::daemon_signals());
        Ok(Signals::System(signals))
    }

    /// The next signal; a stop first when several are pending (SIGTERM, SIGINT, SIGHUP,
    /// SIGUSR2, then SIGUSR1). `None` once none can come any more.
    pub(super) async fn recv(&mut self) -> Option<DaemonSignal> {
        match self {
            Signals::System(signals) => {
                let SystemSignals {
                    term,
                    int,
                    hup,
                    usr1,
                    usr2,
                } = signals;
                tokio::select! {
                    biased;
                    Some(()) = term.recv() => Some(DaemonSignal::Term),
                    Some(()) = int.recv() => Some(DaemonSignal::Int),
                    Some(()) = hup.recv() => Some(DaemonSignal::Hup),
                    Some(()) = usr2.recv() => Some(DaemonSignal::Usr2),
                    Some(()) = usr1.recv() => Some(DaemonSignal::Usr1),
                    else => None,
                }
            }
            #[cfg(test)]
            Signals::Sent(sent) => sent.recv().await,
        }
    }

    /// A SIGTERM or SIGINT received and not handled yet (taken), without waiting.
    pub(super) fn stop_pending(&mut self) -> Option<&'static str> {
        match self {
            Signals::System(signals) => {
                let mut context = std::task::Context::from_waker(std::task::Waker::noop());
                if signals.term.poll_recv(&mut context).is_ready() {
                    return Some("SIGTERM");
                }
                if signals.int.poll_recv(&mut context).is_ready() {
                    return Some("SIGINT");
                }
                None
            }
            #[cfg(test)]
            Signals::Sent(sent) => match sent.try_recv() {
                Ok(stop @ (DaemonSignal::Term | DaemonSignal::Int)) => Some(stop.name()),
                // Only a stop is looked for here; the test sends nothing else during an update.
                _ => None,
            },
        }
    }
}
