//! The decisions around a reload of one instance: a new process (the *candidate*) started
//! beside the current one, which takes over once it is ready while the old one keeps serving.
//!
//! What a reload asked for does (refused, a restart, or a candidate), what an automatic restart
//! becomes (ignored, deferred, a reload or a restart), when a candidate is given up and what
//! becomes then of a restart that fell due meanwhile: all decided here, without I/O. The
//! daemon's instance task holds the processes and carries the decisions out, as it does
//! [`InstanceState::handle`](crate::InstanceState::handle)'s effects.

use crate::instance::{Input, Lifecycle, Status, Why};
use crate::spec::AppSpec;

/// What the instance task knows about its process when a reload or an automatic restart is
/// asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// The instance's status.
    pub status: Status,
    /// The pid its state records.
    pub pid: Option<u32>,
    /// The task holds a process it can wait on (not once it was lost or handed over).
    pub has_process: bool,
    /// A new process can serve the app's port beside the old one: the app takes its socket
    /// from Kelpie, or binds it itself with `reuse_port`.
    pub reloadable: bool,
}

/// What to do about a reload asked for (see [`ReloadState::ask`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadPlan {
    /// One is under way already: answer with this error.
    Refuse(String),
    /// Nothing serves a port the new process could share, or nothing is online: restart, as
    /// PM2 does, and answer once the instance has settled.
    Restart,
    /// Start the candidate; it must say it is ready within this many ms. The reload is under
    /// way from now on: report the start's result with [`ReloadState::launch_failed`] or, once
    /// ready, [`ReloadState::promoted`].
    StartCandidate {
        /// `listen_timeout`.
        ready_within_ms: u64,
    },
}

/// What an automatic restart becomes (see [`ReloadState::auto_restart`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoRestartPlan {
    /// Nothing runs, or not the process it was meant for.
    Ignore,
    /// A reload is under way: kept until it ends (see [`ReloadState::give_up`]).
    Defer,
    /// Reload, recording this cause; if the reload fails, restart the old process instead
    /// (see [`after_failed_reload`]).
    Reload(Why),
    /// Feed [`Input::AutoRestart`] to the state machine.
    Restart(Why),
}

/// Why a candidate is given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// It exited before it was ready (how, for people).
    Exited(String),
    /// It was not ready within `listen_timeout`.
    Late,
    /// A user's command came meanwhile.
    Command(Lifecycle),
    /// The app is being deleted or the daemon is stopping.
    Shutdown,
    /// The process it was to replace exited.
    OldExited,
}

/// A reload given up: the candidate is to be stopped apart, and the old process keeps running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    /// Why, for the daemon's log.
    pub why: String,
    /// The reload's answer, sent once the candidate is gone.
    pub answer: String,
    /// An automatic restart that fell due during the reload: it still holds for the old
    /// process, which is now to be restarted (not reloaded again).
    pub restart: Option<Why>,
}

/// How long a reload waits for its new process to be ready, at least: a new process that
/// still runs at `listen_timeout` is waited for up to here (PM2 goes on without it at
/// `listen_timeout`; the old process serves meanwhile, so waiting costs no request). A busy
/// NestJS app takes more than PM2's 3 s to listen under load.
pub const RELOAD_READY_MS: u64 = 30_000;

/// How long a reload of `spec`'s instances waits for a new process to be ready: its
/// `listen_timeout`, or [`RELOAD_READY_MS`] when that is longer. One that exits fails it at
/// once.
pub fn reload_ready_within_ms(spec: &AppSpec) -> u64 {
    spec.listen_timeout_ms.max(RELOAD_READY_MS)
}

/// The reload of one instance, if one is under way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadState {
    under_way: Option<UnderWay>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UnderWay {
    /// Why the daemon reloads by itself, if it does.
    why: Option<Why>,
    /// An automatic restart asked for meanwhile.
    deferred: Option<Why>,
}

impl ReloadState {
    /// Whether a reload is under way.
    pub fn under_way(&self) -> bool {
        self.under_way.is_some()
    }

    /// A reload is asked for, by a user (`why` is `None`) or by an automatic restart.
    pub fn ask(&mut self, spec: &AppSpec, serving: Serving, why: Option<Why>) -> ReloadPlan {
        if self.under_way() {
            return ReloadPlan::Refuse("a reload of this instance is already in progress".into());
        }
        if !serving.reloadable || serving.status != Status::Online || !serving.has_process {
            return ReloadPlan::Restart;
        }
        self.under_way = Some(UnderWay {
            why,
            deferred: None,
        });
        ReloadPlan::StartCandidate {
            ready_within_ms: reload_ready_within_ms(spec),
        }
    }

    /// The candidate could not be started: the reload is over; its answer.
    pub fn launch_failed(&mut self, error: &str) -> String {
        self.under_way = None;
        format!("the new process could not start: {error}")
    }

    /// An automatic restart of process `of_pid` (or of whatever runs, without one), because of
    /// `why`; a reload if `reload` and the app can be reloaded.
    pub fn auto_restart(
        &mut self,
        serving: Serving,
        why: Why,
        reload: bool,
        of_pid: Option<u32>,
    ) -> AutoRestartPlan {
        let running = matches!(serving.status, Status::Online | Status::Launching);
        if !running || of_pid.is_some_and(|pid| serving.pid != Some(pid)) {
            return AutoRestartPlan::Ignore;
        }
        if let Some(under_way) = self.under_way.as_mut() {
            // If the reload fails, the old process stays and this still holds.
            under_way.deferred = Some(why);
            return AutoRestartPlan::Defer;
        }
        if reload && serving.reloadable && serving.status == Status::Online {
            AutoRestartPlan::Reload(why)
        } else {
            AutoRestartPlan::Restart(why)
        }
    }

    /// The candidate, process `pid`, is ready and takes over: the input for the state machine.
    /// A restart deferred meanwhile goes with the old process. `None` when no reload is under
    /// way.
    pub fn promoted(&mut self, pid: u32) -> Option<Input> {
        let under_way = self.under_way.take()?;
        Some(Input::Replaced {
            pid,
            why: under_way.why,
        })
    }

    /// Give the candidate up because of `reason`, while the old process (`old_pid`, if any)
    /// keeps running. `None` when no reload is under way.
    pub fn give_up(
        &mut self,
        spec: &AppSpec,
        reason: GiveUp,
        old_pid: Option<u32>,
    ) -> Option<Abandoned> {
        let under_way = self.under_way.take()?;
        let why = match reason {
            GiveUp::Exited(how) => format!("the new process exited ({how}) before it was ready"),
            GiveUp::Late => format!(
                "the new process was not ready within {} ms (listen_timeout is {} ms; a reload waits longer while its new process runs, since the old one serves meanwhile)",
                reload_ready_within_ms(spec),
                spec.listen_timeout_ms
            ),
            GiveUp::Command(lifecycle) => {
                format!("interrupted by a {lifecycle:?} command").to_lowercase()
            }
            GiveUp::Shutdown => "the app is being deleted or the daemon is stopping".into(),
            GiveUp::OldExited => "the running process exited during the reload".into(),
        };
        let old = old_pid.map_or_else(|| "-".to_string(), |pid| pid.to_string());
        let answer = format!("{why}; it was stopped and the old process (pid {old}) keeps running");
        Some(Abandoned {
            why,
            answer,
            restart: under_way.deferred,
        })
    }
}

/// An automatic reload (because of `why`) failed with `error`: the restart it stood for, of
/// the old process, to be asked for without a reload.
pub fn after_failed_reload(why: Why, error: &str) -> Why {
    Why {
        cause: why.cause,
        detail: format!("{}; the reload failed ({error})", why.detail),
        from_start: why.from_start,
    }
}

#[cfg(test)]
mod tests;
