//! The instances' reports: a new state (published to the bus, sampled, persisted, its watches
//! kept in step, and what waited on it run), a value an app published, a message it sent.

use super::Supervisor;
use crate::instance::InstanceEvent;

impl Supervisor {
    pub(super) fn on_event(&mut self, event: InstanceEvent) {
        let event = match event {
            InstanceEvent::State(report) => report,
            // Shown by `list`, never persisted: it changes as often as the app wants.
            InstanceEvent::Published { pm_id, published } => {
                if let Some(entry) = self.apps.get_mut(pm_id) {
                    entry.published = published;
                }
                return;
            }
            InstanceEvent::Sdk { pm_id, sdk } => {
                if let Some(entry) = self.apps.get_mut(pm_id) {
                    entry.sdk = Some(sdk);
                }
                return;
            }
            InstanceEvent::Message {
                pm_id,
                pid,
                message,
            } => return self.on_message(pm_id, pid, message),
        };
        let Some(entry) = self.apps.get_mut(event.pm_id) else {
            // A deleted instance's process is gone: apps it depended on may now stop.
            if !event.state.status.has_process() && self.apps.left(event.pm_id) {
                self.run_pending();
            }
            return;
        };
        let new_process = entry.state.pid != event.state.pid || entry.cgroup != event.cgroup;
        // Each counted failure of a health check reports a new detail (its count in a row, or
        // the final reason); a success or a new process clears it.
        if event.state.health_detail.is_some()
            && event.state.health_detail != entry.state.health_detail
        {
            entry.health_failures += 1;
        }
        let old = std::mem::replace(&mut entry.state, event.state);
        if self.services.alerts.enabled() {
            crate::alerts::observe_change(
                &self.services.alerts,
                (&entry.spec.name, event.pm_id),
                &old,
                &entry.state,
            );
        }
        let came_online = old.status != kelpie_core::Status::Online
            && entry.state.status == kelpie_core::Status::Online;
        // A new daemon would do something else with the instance only when it stopped wanting
        // to run, or wants to again: the rest can wait (see `persistence.rs`).
        let run_changed = old.wants_to_run() != entry.state.wants_to_run();
        // Its process replaced one that ended on its own and was restarted for it (a crash
        // loop), not one a command or a limit replaced, nor an errored app started again: the
        // last exit recorded says why the previous one ended and what followed.
        let after_its_own_end = entry.state.exits.back().is_some_and(|exit| {
            matches!(
                exit.cause,
                kelpie_core::Cause::Crash | kelpie_core::Cause::Exit
            ) && matches!(exit.action.as_str(), "restart" | "waiting restart")
        });
        entry.cgroup = event.cgroup;
        // PM2's `process:event` carries the process's description: worked out for followers only.
        let description = self.services.bus.has_followers().then(|| {
            let info = super::listing::process_info(
                event.pm_id,
                entry,
                &self.services,
                crate::clock::now(),
            );
            kelpie_view::jlist::description(&info)
        });
        let about = crate::bus::About::of(event.pm_id, &entry.spec);
        self.services.bus.publish_changes(
            &about,
            &old,
            &entry.state,
            description.flatten().as_ref(),
        );
        if new_process {
            entry.limits.reset();
        }
        let name = entry.spec.name.clone();
        let watched = !entry.spec.watch.is_empty() || self.watches.has(&name);
        if new_process && after_its_own_end {
            self.services.sample_later(&self.apps, event.pm_id);
        } else if new_process {
            self.services.sample(&self.apps, event.pm_id);
        } else if came_online && !after_its_own_end {
            // What `start` answers after: the next `list` shows what it uses by now.
            self.services.monitor.read_soon();
        }
        if run_changed {
            self.persistence.changed();
        } else {
            self.persistence.changed_lazily();
        }
        if watched {
            self.watches.sync(&name, &self.apps);
        }
        self.dependencies.note_reported(event.pm_id);
        self.run_pending();
        self.check_all_ended();
    }

    /// A message a process sent over its IPC channel: to the bus, and an exception it
    /// reports to the inbox.
    fn on_message(&mut self, pm_id: u32, pid: Option<u32>, message: serde_json::Value) {
        let Some(entry) = self.apps.get(pm_id) else {
            return;
        };
        let now = crate::clock::now().wall_ms;
        if let Some(exception) = kelpie_core::AppException::from_message(&message, now) {
            self.services
                .alerts
                .observe(crate::alerts::Observation::Exception {
                    app: entry.spec.name.clone(),
                    pm_id,
                    pid,
                    exception: Box::new(exception),
                });
        }
        let about = crate::bus::About::of(pm_id, &entry.spec);
        let mut event = crate::bus::event("message", &about, &entry.state);
        event.pid = pid;
        event.data = Some(message);
        self.services.bus.publish(event);
    }
}
