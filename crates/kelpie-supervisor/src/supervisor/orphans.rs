//! What a daemon left running: the processes `state.json` recorded that still run (orphans of
//! a daemon that died), and the ones a keeper or `kelpie update` handed over that are not the
//! recorded ones (strays).

use super::{unrecorded, update};
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
/// When the last daemon died (`crashed`), the processes of this home's apps that run now are
/// looked for too (see [`unrecorded`]): one nothing handed over describes is adopted under its
/// app, or becomes its instance's orphan, or is stopped with its app's signal; each said in
/// kelpie.log.
///
/// Orphans of apps with a Kelpie-owned port are stopped here, before the port is bound again
/// (they still hold the old daemon's socket); the others are stopped by their instance tasks.
pub(super) fn load_with_orphans(
    home: &Home,
    mut resumed: Option<&mut update::Resumed>,
    crashed: bool,
) -> Option<(StateFile, BTreeMap<u32, u32>)> {
    let found = if crashed
        || resumed
            .as_deref()
            .is_some_and(|r| !r.candidates().is_empty())
    {
        unrecorded::scan(home)
    } else {
        Vec::new()
    };
    if let Some(resumed) = resumed.as_deref_mut() {
        resumed.add_found(&found);
    }
    let candidates = resumed
        .as_deref()
        .map(update::Resumed::candidates)
        .unwrap_or_default();
    let state = match persist::load_state(home) {
        Some(state) => Some(state),
        // No state describes what a keeper handed over: it is described from the processes.
        None if !candidates.is_empty() => super::recovered::describe(home, &candidates),
        // Nor any keeper: the processes found are described from the dump.
        None => unrecorded::describe_found(home, &found),
    };
    // Without any, the processes found are still stopped (below); nothing is restored.
    let restored = state.is_some();
    let mut state = state.unwrap_or_else(|| StateFile {
        version: crate::state::STATE_VERSION,
        next_id: 0,
        apps: Vec::new(),
    });
    unrecorded::describe_unknown(home, &mut state, &candidates);
    let handed = match resumed {
        Some(resumed) => {
            resumed.verify(&state);
            stop_strays(home, resumed.take_strays(), &state);
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
            holding_ports.push((pid, app.spec.clone(), PORT_HELD.to_string()));
        } else {
            orphans.insert(app.pm_id, pid);
        }
    }
    let left: Vec<&unrecorded::Found> = found
        .iter()
        .filter(|f| !candidates.values().any(|pid| *pid == f.pid) && !handed.contains(&f.pid))
        .filter(|f| !orphans.values().any(|pid| *pid == f.pid))
        .filter(|f| !holding_ports.iter().any(|(pid, _, _)| *pid == f.pid))
        .collect();
    let mut to_stop = holding_ports;
    to_stop.extend(not_described(home, &state, &left, &handed, &mut orphans));
    stop_groups_now(&to_stop);
    restored.then_some((state, orphans))
}

/// Why an orphan holding its app's port is stopped at once.
const PORT_HELD: &str = "it holds the app's port";

/// Of the processes found running that nothing handed over nor recorded (`left`), those of an
/// instance the state has but whose recorded process is gone become its orphans (stopped by its
/// task, then started again as it says); the others (an instance the state lacks, an app it
/// does not know) are given back to be stopped now. An instance that runs another process
/// (handed over or an orphan) keeps it: one found besides is its app's (it made a group of its
/// own), left alone.
fn not_described(
    home: &Home,
    state: &StateFile,
    left: &[&unrecorded::Found],
    handed: &std::collections::BTreeSet<u32>,
    orphans: &mut BTreeMap<u32, u32>,
) -> Vec<(u32, Arc<AppSpec>, String)> {
    let mut to_stop = Vec::new();
    for found in left {
        let instance_runs = found.pm_id.is_some_and(|id| {
            orphans.contains_key(&id)
                || state.apps.iter().any(|app| {
                    app.pm_id == id && app.state.pid.is_some_and(|p| handed.contains(&p))
                })
        });
        if instance_runs {
            continue;
        }
        let recorded = found
            .pm_id
            .and_then(|id| state.apps.iter().find(|app| app.pm_id == id))
            .filter(|app| app.spec.name == found.name);
        match recorded {
            Some(app) => {
                crate::daemon_log!(
                    "app `{}` (id {}): process {} was left running by a daemon that died, and the state did not record it: stopping it, then the instance goes on as the state says",
                    found.name,
                    app.pm_id,
                    found.pid
                );
                orphans.insert(app.pm_id, found.pid);
            }
            None => {
                let (why, spec) = unrecorded::why_stopped(home, state, found.pm_id, found.pid);
                to_stop.push((found.pid, spec, why));
            }
        }
    }
    to_stop
}

/// Stop the processes a keeper kept that are not what the state records (a reload's second
/// process, an app deleted meanwhile), the way their app stops, each said with why.
fn stop_strays(home: &Home, strays: Vec<(u32, crate::update::HandedProcess)>, state: &StateFile) {
    let groups: Vec<_> = strays
        .into_iter()
        .map(|(pm_id, process)| {
            let (why, spec) = unrecorded::why_stopped(home, state, Some(pm_id), process.pid);
            (process.pid, spec, why)
        })
        .collect();
    stop_groups_now(&groups);
}

/// Stop process groups left by a dead daemon, all at once: each app's stop signal, its
/// kill_timeout, then SIGKILL (blocking; runs before the daemon serves).
#[expect(
    clippy::disallowed_methods,
    reason = "runs on the blocking pool before the daemon serves anything"
)]
fn stop_groups_now(groups: &[(u32, Arc<AppSpec>, String)]) {
    if groups.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    for (pgid, spec, why) in groups {
        crate::daemon_log!(
            "app `{}`: stopping process group {pgid} left by a previous daemon with {} ({why})",
            spec.name,
            spec.kill_signal
        );
        let signal = kelpie_sys::signal_number(&spec.kill_signal).unwrap_or(2);
        let _ = kelpie_sys::kill_group(*pgid, signal);
    }
    let poll = Duration::from_millis(10);
    for (pgid, spec, _) in groups {
        let deadline = Duration::from_millis(spec.kill_timeout_ms);
        while group_running_now(*pgid) && started.elapsed() < deadline {
            std::thread::sleep(poll);
        }
        let _ = kelpie_sys::kill_group(*pgid, kelpie_sys::SIGKILL);
    }
    let give_up = std::time::Instant::now() + Duration::from_secs(2);
    while groups.iter().any(|(pgid, _, _)| group_running_now(*pgid))
        && std::time::Instant::now() < give_up
    {
        std::thread::sleep(poll);
    }
}

/// Whether a process of the group still runs (blocking: see `kelpie_sys::group_has_live_members`).
fn group_running_now(pgid: u32) -> bool {
    kelpie_sys::group_alive(pgid) && kelpie_sys::group_has_live_members(pgid)
}
