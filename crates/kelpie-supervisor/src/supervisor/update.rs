//! `kelpie update` on the supervisor's side (the exec itself is in `crate::update`): wait until
//! no instance is in the middle of something, take every process from its task, every pipe from
//! the log readers, write the state, then become the new program. If the exec fails, the same
//! program takes everything back the way a new one would, and goes on.
//!
//! Here: the update asked for, and the program to become. Its parts, in `update/`: waiting
//! until everything has settled (`settle`), handing over and the exec (`hand_over`), taking
//! from the tasks and the log readers and giving back (`take`), and what a new daemon goes on
//! with (`resumed`).

mod hand_over;
mod resumed;
mod settle;

pub(super) use settle::update_look;

/// Why the daemon cannot hand over right now: the update looks again, until its deadline.
#[derive(Debug, thiserror::Error)]
pub(super) enum NotNow {
    #[error("the daemon is stopping")]
    Stopping,
    #[error("apps are waiting for their dependencies")]
    Dependencies,
    #[error("deleted apps are still stopping")]
    Leaving,
    #[error("app `{app}` (id {pm_id}) is {status}")]
    Busy {
        app: String,
        pm_id: u32,
        status: &'static str,
    },
    #[error("app `{app}` (id {pm_id}): {why}")]
    Refused {
        app: String,
        pm_id: u32,
        why: crate::instance::refusal::HandOverRefused,
    },
    #[error("app `{app}` (id {pm_id}): it did not answer")]
    NoAnswer { app: String, pm_id: u32 },
    #[error("instance {0} did not answer")]
    Gone(u32),
    #[error("the log readers did not give their pipes back in time")]
    Pipes,
}
mod take;

pub use resumed::Resumed;

use super::Supervisor;
use crate::logs::HandedPipe;
use crate::maybe::until;
use crate::update::{self, HandedProcess};
use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// How long an update waits for every instance to settle (a start, stop or reload to finish).
const SETTLE_WITHIN: Duration = Duration::from_secs(10);

/// An update asked for and not done yet.
struct PendingUpdate {
    program: PathBuf,
    deadline: Instant,
    /// When to look again whether everything has settled.
    next_look: Instant,
    /// Why the last look found it could not go ahead.
    busy: String,
}

/// `kelpie update`'s part of the supervisor: the update in progress, and the second
/// descriptor of the control socket it passes on.
pub(super) struct Updating {
    pending: Option<PendingUpdate>,
    /// A second descriptor of the control socket.
    control: OwnedFd,
}

impl Updating {
    pub(super) fn new(control: OwnedFd) -> Updating {
        Updating {
            pending: None,
            control,
        }
    }

    /// The control socket was made anew (the home had been removed): its second descriptor.
    pub(super) fn set_control(&mut self, control: OwnedFd) {
        self.control = control;
    }

    /// Whether an update is in progress.
    pub(super) fn in_progress(&self) -> bool {
        self.pending.is_some()
    }

    /// Ready when it is time to look again whether the update can go ahead; never without an
    /// update.
    pub(super) fn look_due(&self) -> impl Future<Output = ()> + 'static {
        until(self.pending.as_ref().map(|u| u.next_look))
    }
}

/// What an instance task starts with from an earlier daemon besides its spec and state: a
/// process group that a daemon killed with -9 left running (to stop first), or what this
/// daemon's previous program handed over (to go on with).
#[derive(Default)]
pub(super) struct Inherited {
    /// A process group left by a daemon that died.
    pub orphan_group: Option<u32>,
    /// Its running process, handed over.
    pub process: Option<HandedProcess>,
    /// Output pipes of its processes, handed over.
    pub pipes: Vec<HandedPipe>,
    /// Waiting to restart when handed over: the wait left.
    pub restart_in: Option<Duration>,
}

/// `UPDATE_SIGNAL` arrived: find and check the program (off the async thread), then
/// [`Self::update_checked`].
pub(super) fn update_asked(sup: &mut Supervisor) {
    let home = &sup.services.home;
    if sup.foreground.is_some() {
        update::report_later(
            home,
            update::Outcome::NotUpdated("`kelpie runtime` is not updated in place: start a container of the new image instead".into()),
        );
        return;
    }
    if sup.exit.exiting() {
        update::report_later(
            home,
            update::Outcome::NotUpdated("the daemon is stopping".into()),
        );
        return;
    }
    if sup.update.in_progress() {
        return;
    }
    let home = home.clone();
    sup.pending.spawn(async move {
        let result = crate::tasks::blocking(move || update::requested_program(&home))
            .await
            .unwrap_or_else(|e| Err(e.into()));
        super::Back::UpdateChecked(result)
    });
}

/// The program to become is known (or why not).
pub(super) fn update_checked(
    (updating, services): (&mut Updating, &super::services::Services),
    program: Result<PathBuf, update::ProgramError>,
) {
    match program {
        Ok(program) => {
            crate::daemon_log!(
                "update: asked to become {}; waiting until every app has settled",
                program.display()
            );
            let now = Instant::now();
            updating.pending = Some(PendingUpdate {
                program,
                deadline: now + SETTLE_WITHIN,
                next_look: now,
                busy: String::new(),
            });
        }
        Err(e) => update::report_later(
            &services.home,
            update::Outcome::NotUpdated(format!("not updated: {e}")),
        ),
    }
}
