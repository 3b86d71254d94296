//! What a daemon left running: the processes `state.json` recorded that still run (orphans of
//! a daemon that died), and the ones a keeper or `kelpie update` handed over that are not the
//! recorded ones (strays).

use super::update;
use crate::persist;
use crate::state::StateFile;
use kelpie_core::AppSpec;
use kelpie_proto::Home;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Read `state.json` and find which of its pids are still the very processes it recorded
/// (same pid and start time): those were left running by a daemon that died. Processes
/// `resumed` (handed over by this daemon's previous program for `kelpie update`, or kept by the
/// keeper of a daemon that died and still the ones recorded) are adopted, not orphans.
///
/// Orphans of apps with a Kelpie-owned port are stopped here, before the port is bound again
/// (they still hold the old daemon's socket); the others are stopped by their instance tasks.
pub(super) fn load_with_orphans(
    home: &Home,
    resumed: Option<&mut update::Resumed>,
) -> Option<(StateFile, BTreeMap<u32, u32>)> {
    let state = match persist::load_state(home) {
        Some(state) => state,
        // No state describes what a keeper handed over: it is described from the processes.
        None => super::recovered::describe(home, &resumed.as_deref()?.candidates())?,
    };
    let handed = match resumed {
        Some(resumed) => {
            resumed.verify(&state);
            stop_strays(resumed.take_strays(), &state);
            resumed.pids()
        }
        None => Default::default(),
    };
    let mut orphans = BTreeMap::new();
    let mut holding_ports = Vec::new();
    for app in &state.apps {
        let (Some(pid), Some(recorded)) = (app.state.pid, app.pid_start_ticks) else {
            continue;
        };
        if handed.contains(&pid) {
            continue;
        }
        if kelpie_sys::sample_process(pid).is_none_or(|live| live.start_ticks != recorded) {
            continue;
        }
        if app.spec.listen.is_some() && !app.spec.reuse_port {
            holding_ports.push((pid, app.spec.clone()));
        } else {
            orphans.insert(app.pm_id, pid);
        }
    }
    stop_groups_now(&holding_ports);
    Some((state, orphans))
}

/// Stop the processes a keeper kept that are not what the state records (a reload's second
/// process, an app deleted meanwhile), the way their app stops (SIGKILL for an unknown app).
fn stop_strays(strays: Vec<(u32, crate::update::HandedProcess)>, state: &StateFile) {
    let mut groups = Vec::new();
    for (pm_id, process) in strays {
        match state.apps.iter().find(|app| app.pm_id == pm_id) {
            Some(app) => groups.push((process.pid, app.spec.clone())),
            None => {
                let _ = kelpie_sys::kill_group(process.pid, kelpie_sys::SIGKILL);
            }
        }
    }
    stop_groups_now(&groups);
}

/// Stop process groups left by a dead daemon, all at once: each app's stop signal, its
/// kill_timeout, then SIGKILL (blocking; runs before the daemon serves).
#[expect(
    clippy::disallowed_methods,
    reason = "runs on the blocking pool before the daemon serves anything"
)]
fn stop_groups_now(groups: &[(u32, Arc<AppSpec>)]) {
    if groups.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    for (pgid, spec) in groups {
        crate::daemon_log!(
            "app `{}`: stopping process group {pgid} left by a previous daemon (it holds the app's port)",
            spec.name
        );
        let signal = kelpie_sys::signal_number(&spec.kill_signal).unwrap_or(2);
        let _ = kelpie_sys::kill_group(*pgid, signal);
    }
    let poll = Duration::from_millis(10);
    for (pgid, spec) in groups {
        let deadline = Duration::from_millis(spec.kill_timeout_ms);
        while group_running_now(*pgid) && started.elapsed() < deadline {
            std::thread::sleep(poll);
        }
        let _ = kelpie_sys::kill_group(*pgid, kelpie_sys::SIGKILL);
    }
    let give_up = std::time::Instant::now() + Duration::from_secs(2);
    while groups.iter().any(|(pgid, _)| group_running_now(*pgid))
        && std::time::Instant::now() < give_up
    {
        std::thread::sleep(poll);
    }
}

/// Whether a process of the group still runs (blocking: see `kelpie_sys::group_has_live_members`).
fn group_running_now(pgid: u32) -> bool {
    kelpie_sys::group_alive(pgid) && kelpie_sys::group_has_live_members(pgid)
}
