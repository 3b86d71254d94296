//! Fake processes for the instance's in-process tests: what each "process" does (exit after a
//! while, say it is ready, feed the watchdog, ignore its stop signal) is scripted, and played on
//! tokio's clock, so that a test under a paused clock sees the instance's timing exactly. Every
//! start and signal is recorded with the (virtual) time it happened at. No system call is made
//! with a fake pid.

use super::{Launched, ProcessLink, ProcessSignal};
use crate::process::ProcessHandle;
use kelpie_core::Published;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{sleep, Instant};

/// What one fake process does.
#[derive(Debug, Clone, Default)]
pub(crate) struct Behaviour {
    /// It exits by itself this long after its start, with this code.
    pub exits_after: Option<(Duration, i32)>,
    /// It says READY=1 this long after its start.
    pub ready_after: Option<Duration>,
    /// It sends WATCHDOG=1 at these times after its start.
    pub watchdog_pings: Vec<Duration>,
    /// Only SIGKILL ends it (any other signal ends it at once).
    pub ignores_signals: bool,
    /// Its health probes pass until this long after its start, and fail from then on (they
    /// always pass without it).
    pub healthy_for: Option<Duration>,
}

/// What happened to the fake processes, at the time (ms since the fake was made) it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Process `pid` was started.
    Started(u32),
    /// Signal `1` was sent to process (group) `0`.
    Signalled(u32, i32),
    /// Process `pid` ended.
    Ended(u32),
    /// Process `pid` was probed by its health check.
    Probed(u32),
}

/// The fake system: starts processes that do what [`Behaviour`] says.
pub struct FakeProcesses {
    /// The behaviour of the n-th process started (from 0).
    script: Box<dyn Fn(usize) -> Behaviour + Send + Sync>,
    origin: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    started: usize,
    running: BTreeMap<u32, Running>,
    events: Vec<(u64, Event)>,
}

struct Running {
    exit: watch::Sender<Option<ExitStatus>>,
    ignores_signals: bool,
    started: Instant,
    healthy_for: Option<Duration>,
}

/// Fake pids start high, to read apart from anything else in a failure message.
pub(crate) const FIRST_PID: u32 = 100_000;

impl FakeProcesses {
    /// Processes that each do what `script` says for their start number.
    pub(crate) fn new(script: impl Fn(usize) -> Behaviour + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(FakeProcesses {
            script: Box::new(script),
            origin: Instant::now(),
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, inner: &mut Inner, event: Event) {
        let at = self.elapsed_ms();
        inner.events.push((at, event));
    }

    /// Milliseconds since the fake was made.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Everything that happened so far, with when (ms).
    pub(crate) fn events(&self) -> Vec<(u64, Event)> {
        self.lock().events.clone()
    }

    /// When each process started (ms).
    pub(crate) fn starts(&self) -> Vec<u64> {
        let events = self.events();
        let started = events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Started(_)));
        started.map(|(at, _)| *at).collect()
    }

    /// Whether process (group) `pid` still runs.
    pub(crate) fn running(&self, pid: u32) -> bool {
        self.lock().running.contains_key(&pid)
    }

    /// A health probe of process `pid`: recorded, and answered as its behaviour says.
    pub(crate) fn probe(&self, pid: u32) -> Result<(), String> {
        let mut inner = self.lock();
        self.record(&mut inner, Event::Probed(pid));
        let process = inner.running.get(&pid).ok_or("the process is gone")?;
        match process.healthy_for {
            Some(healthy) if process.started.elapsed() >= healthy => {
                Err("it stopped answering".into())
            }
            _ => Ok(()),
        }
    }

    /// A signal to process (group) `pid`: recorded; it ends the process unless the process
    /// ignores signals and this is not SIGKILL.
    pub(crate) fn signal(&self, pid: u32, signal: i32) {
        let mut inner = self.lock();
        self.record(&mut inner, Event::Signalled(pid, signal));
        let ends = inner
            .running
            .get(&pid)
            .is_some_and(|p| signal == kelpie_sys::SIGKILL || !p.ignores_signals);
        if ends {
            self.end(&mut inner, pid, ExitStatus::from_raw(signal));
        }
    }

    fn end(&self, inner: &mut Inner, pid: u32, status: ExitStatus) {
        if let Some(process) = inner.running.remove(&pid) {
            self.record(inner, Event::Ended(pid));
            process.exit.send_replace(Some(status));
        }
    }

    /// Start the next process; `awaits_ready` as the instance says (its readiness then comes
    /// from [`Behaviour::ready_after`]).
    pub(super) fn launch(
        self: Arc<Self>,
        awaits_ready: bool,
    ) -> Result<Launched, crate::spawn_error::SpawnError> {
        let (link, _child_ends) =
            ProcessLink::open(None, None).map_err(crate::spawn_error::SpawnError::NotifySocket)?;
        let (exit, exit_seen) = watch::channel(None);
        let mut inner = self.lock();
        let number = inner.started;
        inner.started += 1;
        let pid = FIRST_PID + number as u32;
        let behaviour = (self.script)(number);
        inner.running.insert(
            pid,
            Running {
                exit,
                ignores_signals: behaviour.ignores_signals,
                started: Instant::now(),
                healthy_for: behaviour.healthy_for,
            },
        );
        self.record(&mut inner, Event::Started(pid));
        drop(inner);
        self.play(pid, &behaviour, link.sender());
        Ok(Launched {
            child: ProcessHandle::scripted(pid, exit_seen),
            pid,
            link,
            cgroup: None,
            identity: None,
            route: None,
            awaits_ready,
            stderr: None,
            published: Published::default(),
            kept: None,
        })
    }

    /// Play what process `pid` does by itself, on tokio's clock.
    fn play(self: &Arc<Self>, pid: u32, behaviour: &Behaviour, says: SignalSender) {
        let mut said: Vec<(Duration, ProcessSignal)> = behaviour
            .watchdog_pings
            .iter()
            .map(|at| (*at, ProcessSignal::Watchdog))
            .collect();
        said.extend(behaviour.ready_after.map(|at| (at, ProcessSignal::Ready)));
        let started = Instant::now();
        for (at, signal) in said {
            let (says, fake) = (says.clone(), Arc::downgrade(self));
            crate::tasks::background(async move {
                tokio::time::sleep_until(started + at).await;
                if fake.upgrade().is_some_and(|fake| fake.running(pid)) {
                    let _ = says.send(signal);
                }
            });
        }
        if let Some((after, code)) = behaviour.exits_after {
            let fake = Arc::downgrade(self);
            crate::tasks::background(async move {
                sleep(after).await;
                if let Some(fake) = fake.upgrade() {
                    let mut inner = fake.lock();
                    fake.end(&mut inner, pid, ExitStatus::from_raw(code << 8));
                }
            });
        }
    }
}

type SignalSender = crate::mailbox::Sender<ProcessSignal>;
