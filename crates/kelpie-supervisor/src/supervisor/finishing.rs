//! Answering a request: its [`Finish`] once the instances concerned have settled and the
//! settled state is on disk, or at once for what changes nothing.

use super::failure::Failure;
use super::{listing, Back, Supervisor};
use crate::supervisor_channel::{Finish, Reply};
use kelpie_proto::{ProcessInfo, Response, StartOutcome};
use tokio::sync::oneshot;

impl Supervisor {
    /// Answer with the list (CPU and memory from the monitor's last readings).
    pub(super) fn reply_with_list(
        &self,
        reply: oneshot::Sender<Reply>,
        wrap: impl FnOnce(Vec<ProcessInfo>) -> Response,
    ) {
        let _ = reply.send(Reply {
            response: wrap(listing::process_infos(&self.apps, &self.services)),
            written: None,
        });
    }

    pub(super) fn finish(&mut self, finish: Finish, reply: oneshot::Sender<Reply>) {
        match finish {
            Finish::List => self.reply_with_list(reply, Response::Processes),
            Finish::Started(crate::supervisor_channel::Started {
                outcomes,
                notes,
                mut failures,
            }) => {
                failures.extend(spawn_failures(self, &outcomes));
                self.reply_with_list(reply, move |processes| Response::Started {
                    outcomes,
                    processes,
                    notes,
                    failures,
                })
            }
            Finish::Done(message) => {
                let _ = reply.send(Reply {
                    response: Response::Done(message),
                    written: None,
                });
            }
            Finish::Reply(response) => {
                let _ = reply.send(Reply {
                    response,
                    written: None,
                });
            }
            Finish::Failed(error) => {
                let _ = reply.send(Reply {
                    response: Response::Error(error),
                    written: None,
                });
            }
            Finish::Exit(message) => {
                let (written_tx, written_rx) = oneshot::channel();
                let _ = reply.send(Reply {
                    response: Response::Done(message),
                    written: Some(written_tx),
                });
                self.exit.after_written(written_rx);
            }
        }
    }

    pub(super) fn persist_then_finish(&mut self, finish: Finish, reply: oneshot::Sender<Reply>) {
        let (ack_tx, ack_rx) = oneshot::channel();
        self.persistence.write(&self.apps, Some(ack_tx));
        self.pending.spawn(async move {
            let finish = match (ack_rx.await, finish) {
                // `kill` ends the daemon whatever happens to the state (on a full disk, above
                // all): staying up would keep refusing the one command meant to stop it.
                (Ok(Err(e)), Finish::Exit(message)) => {
                    crate::daemon_log!("exiting without saving the state: {e}");
                    Finish::Exit(format!("{message} (the state could not be saved: {e})"))
                }
                (Ok(Err(e)), _) => Finish::Failed(Failure::NotSaved(e.to_string()).into()),
                (_, finish) => finish,
            };
            Back::Answer { finish, reply }
        });
    }
}

/// The instances a start asked for that the system refused to spawn (E2BIG, ENOENT, EACCES,
/// an exec format error): they settled `errored` with why, and the start must say so (and
/// fail), not "started".
fn spawn_failures(sup: &Supervisor, outcomes: &[StartOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .flat_map(|outcome| match outcome {
            StartOutcome::Created(ids)
            | StartOutcome::Restarted(ids)
            | StartOutcome::Started(ids) => ids.iter(),
        })
        .filter_map(|id| {
            let entry = sup.apps.get(*id)?;
            let error = entry.state.last_error.as_ref()?;
            (entry.state.status == kelpie_core::Status::Errored).then(|| {
                format!(
                    "app `{}` (id {id}) could not be started: {error}",
                    entry.spec.name
                )
            })
        })
        .collect()
}
