//! The reload in progress: its new process (the candidate) started beside the current one, the
//! processes being stopped apart (replaced, or failed candidates), and the decisions of
//! `kelpie_core::reload`, which this part carries out. What wakes the task about it: the
//! candidate's readiness, its exit or its deadline.

use super::given::Given;
use super::launching::Launched;
use super::refusal::{HandOverRefused, ReloadFailed};
use super::stopping::Retiring;
use super::{InstanceMsg, Platform};
use crate::link::ProcessSignal;
use kelpie_core::forensics::NotifyLine;
use kelpie_core::reload::{AutoRestartPlan, GiveUp, ReloadPlan, ReloadState, Serving};
use kelpie_core::{AppSpec, Input, Why};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The reload's answer: `Ok` once the old process is gone, or why the new one failed.
pub(super) type ReloadReply = oneshot::Sender<Result<(), ReloadFailed>>;

/// The reload in progress, if one is, and what earlier ones left stopping.
#[derive(Default)]
pub(super) struct Reloading {
    /// What `kelpie_core` decided: whether one is under way, why, and a restart deferred.
    decisions: ReloadState,
    /// Its new process, once started: under way with a candidate, or not at all. Boxed: every
    /// instance has the field, few ever a candidate.
    candidate: Option<Box<Candidate>>,
    /// Processes being stopped apart (replaced, or failed candidates): waited for before the
    /// task ends, so a daemon exiting right after a reload leaves no process behind.
    retiring: crate::tasks::Helpers,
}

/// The new process of a reload in progress.
struct Candidate {
    launched: Launched,
    /// It must be ready by then.
    deadline: Instant,
    reply: ReloadReply,
}

/// What the candidate did.
pub(super) enum CandidateWake {
    /// It said something on its link.
    Signal(ProcessSignal),
    /// It exited before it was ready.
    Exited(std::io::Result<ExitStatus>),
    /// It was not ready by its deadline.
    Late,
}

/// A candidate ready to take over.
pub(super) struct Promoted {
    /// The new process.
    pub(super) launched: Launched,
    /// What the state machine is to be told ([`Input::Replaced`]).
    pub(super) replaced: Input,
    /// The reload's answer, once the old process is gone.
    pub(super) reply: ReloadReply,
}

impl Reloading {
    /// Wait until the candidate, if there is one, says something, exits or is late.
    /// Whether a candidate runs (its [`Reloading::wake`] can come).
    pub(super) fn under_way(&self) -> bool {
        self.candidate.is_some()
    }

    pub(super) async fn wake(&mut self) -> CandidateWake {
        let Some(candidate) = self.candidate.as_mut() else {
            return std::future::pending().await;
        };
        let launched = &mut candidate.launched;
        tokio::select! {
            Some(signal) = launched.link.recv() => CandidateWake::Signal(signal),
            status = launched.child.wait() => CandidateWake::Exited(status),
            () = tokio::time::sleep_until(candidate.deadline) => CandidateWake::Late,
        }
    }

    /// A reload is asked for (see [`ReloadState::ask`]); with
    /// [`ReloadPlan::StartCandidate`], the reload is under way and the candidate's start is to
    /// be reported with [`Reloading::started`] or [`Reloading::launch_failed`].
    pub(super) fn ask(&mut self, spec: &AppSpec, serving: Serving, why: Option<Why>) -> ReloadPlan {
        self.decisions.ask(spec, serving, why)
    }

    /// The candidate started; it must be ready within `ready_within_ms`.
    pub(super) fn started(&mut self, launched: Launched, reply: ReloadReply, ready_within_ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ready_within_ms);
        self.candidate = Some(Box::new(Candidate {
            launched,
            deadline,
            reply,
        }));
    }

    /// The candidate could not start: the reload is over, answered with why.
    pub(super) fn launch_failed(&mut self, reply: ReloadReply, error: &str) {
        let _ = reply.send(Err(ReloadFailed(self.decisions.launch_failed(error))));
    }

    /// An automatic restart (see [`ReloadState::auto_restart`]).
    pub(super) fn auto_restart(
        &mut self,
        serving: Serving,
        why: Why,
        reload: bool,
        of_pid: Option<u32>,
    ) -> AutoRestartPlan {
        self.decisions.auto_restart(serving, why, reload, of_pid)
    }

    /// What the candidate published: kept with it, its own once it takes over.
    pub(super) fn candidate_published(&mut self, line: &NotifyLine) {
        if let Some(candidate) = self.candidate.as_mut() {
            let _ = candidate.launched.published.apply(line);
        }
    }

    /// The candidate is ready: it is handed out to take over. `None` without one.
    pub(super) fn promote(&mut self) -> Option<Promoted> {
        let candidate = self.candidate.take()?;
        let replaced = self.decisions.promoted(candidate.launched.pid)?;
        Some(Promoted {
            launched: candidate.launched,
            replaced,
            reply: candidate.reply,
        })
    }

    /// Stop `process` apart (its stop signal, `kill_timeout`, SIGKILL), then send `answer`.
    pub(super) fn retire(
        &mut self,
        process: Retiring,
        spec: &Arc<AppSpec>,
        reply: ReloadReply,
        answer: Result<(), ReloadFailed>,
    ) {
        let spec = spec.clone();
        self.retiring.spawn(async move {
            process.stop(&spec).await;
            let _ = reply.send(answer);
        });
    }

    /// The reload fails because of `reason`: its candidate is stopped apart and the old process
    /// (`old_pid`) keeps running; a restart deferred meanwhile is now asked for, of the old
    /// process. Nothing without a reload under way.
    pub(super) fn give_up(&mut self, given: &Given, reason: GiveUp, old_pid: Option<u32>) {
        let Some(candidate) = self.candidate.take() else {
            return;
        };
        let Some(abandoned) = self.decisions.give_up(&given.spec, reason, old_pid) else {
            return;
        };
        if let Some(why) = abandoned.restart {
            given.mail_myself(InstanceMsg::AutoRestart {
                why: Box::new(why),
                reload: false,
                of_pid: old_pid,
            });
        }
        crate::daemon_log!(
            "app `{}` (id {}): reload failed: {}; the old process keeps running",
            given.spec.name,
            given.pm_id,
            abandoned.why
        );
        let failed = retiring(&given.platform, candidate.launched);
        // Answered once it is gone: until then it may still take connections.
        let answer = Err(ReloadFailed(abandoned.answer));
        self.retire(failed, &given.spec, candidate.reply, answer);
    }

    /// Why the instance cannot be handed over now because of a reload, if it cannot.
    pub(super) fn hand_over_refusal(&mut self) -> Option<HandOverRefused> {
        if self.decisions.under_way() {
            return Some(HandOverRefused::Reloading);
        }
        if !self.retiring.all_ended() {
            return Some(HandOverRefused::Retiring);
        }
        None
    }

    /// Wait until every process stopped apart is gone.
    pub(super) async fn retired(&mut self) {
        self.retiring.ended().await;
    }
}

/// A candidate that failed, to be stopped apart.
fn retiring(platform: &Platform, launched: Launched) -> Retiring {
    Retiring {
        platform: platform.clone(),
        pgid: Some(launched.pid),
        child: Some(launched.child),
        link: Some(launched.link),
        cgroup: launched.cgroup,
    }
}
