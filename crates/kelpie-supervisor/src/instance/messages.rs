//! What the task does with each message from the supervisor (or from itself).

use super::refusal::{HandOverRefused, NotDelivered};
use super::{HandedOver, Instance, InstanceMsg};
use crate::clock;
use kelpie_core::reload::GiveUp;
use kelpie_core::{Input, Status};

impl Instance {
    pub(super) async fn on_message(&mut self, msg: InstanceMsg) {
        match msg {
            InstanceMsg::Lifecycle(lifecycle, done) => {
                self.give_up_reload(GiveUp::Command(lifecycle));
                if let Some(done) = done {
                    self.waiters.on_settled(done);
                }
                self.feed(Input::Lifecycle(lifecycle)).await;
            }
            InstanceMsg::UpdateSpec(spec, socket) => {
                if self.given.update(spec, socket) {
                    self.timers.reschedule(&self.given.spec);
                    self.publish();
                }
            }
            InstanceMsg::AutoRestart {
                why,
                reload,
                of_pid,
            } => self.auto_restart(*why, reload, of_pid).await,
            InstanceMsg::Reload(reply) => self.begin_reload(reply, None).await,
            InstanceMsg::StderrTail { pid, lines } => {
                if !lines.is_empty() && self.state.record_stderr_tail(pid, lines.into_vec()) {
                    self.publish();
                }
            }
            InstanceMsg::Reset(done) => {
                self.state.reset_counters(clock::now());
                self.publish();
                let _ = done.send(());
            }
            InstanceMsg::Signal(signal, reply) => {
                let result = match self.state.pid.filter(|_| self.current.runs()) {
                    Some(pid) => {
                        (self.given.platform.send_signal(pid, signal)).map_err(NotDelivered::Signal)
                    }
                    None => Err(self.given.not_running()),
                };
                let _ = reply.send(result);
            }
            InstanceMsg::SendMessage(message, reply) => {
                let result = match self.current.send_message(&message) {
                    Some(true) => Ok(()),
                    Some(false) => Err(NotDelivered::NoIpc {
                        name: self.given.spec.name.clone(),
                        pm_id: self.given.pm_id,
                    }),
                    None => Err(self.given.not_running()),
                };
                let _ = reply.send(result);
            }
            InstanceMsg::SendLine(text, reply) => {
                let _ = reply.send(self.write_stdin(&text));
            }
            InstanceMsg::Shutdown(done) => {
                self.give_up_reload(GiveUp::Shutdown);
                self.waiters.shut_down(done);
                self.feed(Input::Lifecycle(kelpie_core::Lifecycle::Stop))
                    .await;
            }
            InstanceMsg::HandOver(reply) => {
                let handed = self.hand_over();
                self.handed_over = handed.is_ok();
                let _ = reply.send(handed);
            }
            InstanceMsg::CanHandOver(reply) => {
                let _ = reply.send(match self.hand_over_refusal() {
                    Some(why) => Err(why),
                    None => Ok(()),
                });
            }
        }
    }

    /// `kelpie send`: `text` into the running process's stdin FIFO, whole or not at all, never
    /// waiting for the app to read.
    fn write_stdin(&self, text: &str) -> Result<(), NotDelivered> {
        let (name, pm_id) = (self.given.spec.name.clone(), self.given.pm_id);
        if self.given.spec.exec_mode != kelpie_core::ExecMode::Fork {
            return Err(NotDelivered::ClusterStdin { name, pm_id });
        }
        if self.state.pid.filter(|_| self.current.runs()).is_none() {
            return Err(self.given.not_running());
        }
        let fifo = self.given.home.stdin_fifo(pm_id);
        match kelpie_sys::write_stdin_fifo(&fifo, text.as_bytes()) {
            Ok(kelpie_sys::StdinWrite::Written) => Ok(()),
            Ok(kelpie_sys::StdinWrite::NoReader) => Err(NotDelivered::StdinClosed { name, pm_id }),
            Ok(kelpie_sys::StdinWrite::Full { unread, capacity }) => Err(NotDelivered::StdinFull {
                name,
                pm_id,
                unread,
                capacity,
            }),
            Err(cause) => Err(NotDelivered::Stdin { name, pm_id, cause }),
        }
    }

    /// Why the instance cannot be handed over right now, if it cannot.
    fn hand_over_refusal(&mut self) -> Option<HandOverRefused> {
        if let Some(why) = self.reload.hand_over_refusal() {
            return Some(why);
        }
        if self.waiters.shutting_down() {
            return Some(HandOverRefused::Deleting);
        }
        match self.state.status {
            Status::Launching | Status::Stopping => {
                Some(HandOverRefused::Busy(self.state.status.as_str()))
            }
            Status::Online => self.current.hand_over_refusal(),
            _ => None,
        }
    }

    /// Give the process up for `kelpie update` (see [`InstanceMsg::HandOver`]).
    fn hand_over(&mut self) -> Result<HandedOver, HandOverRefused> {
        if let Some(why) = self.hand_over_refusal() {
            return Err(why);
        }
        let process = match self.state.status {
            Status::Online => Some(self.current.hand_over()?),
            _ => None,
        };
        let left = self.timers.take_left();
        let restart_in = left.filter(|_| self.state.status == Status::WaitingRestart);
        Ok(HandedOver {
            state: self.state.clone(),
            process,
            restart_in,
        })
    }
}
