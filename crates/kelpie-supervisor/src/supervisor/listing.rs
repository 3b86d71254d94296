//! The table as clients see it: `list` (and `describe`, `jlist`, the web's `/list`), and what
//! `/metrics` adds. Built from the last reports and readings: no /proc read on a request.

use super::apps::{Apps, Entry};
use super::log_selection::log_file_infos;
use super::Services;
use crate::clock;
use crate::supervisor_channel::InstanceMetrics;
use kelpie_core::AppSpec;
use kelpie_proto::ProcessInfo;

/// Every instance as `list` shows it, with its last reading.
pub(super) fn process_infos(apps: &Apps, services: &Services) -> Vec<ProcessInfo> {
    let now = clock::now();
    apps.iter()
        .map(|(pm_id, entry)| process_info(pm_id, entry, services, now))
        .collect()
}

/// One instance as `list` shows it, with its last reading.
pub(super) fn process_info(
    pm_id: u32,
    entry: &Entry,
    services: &Services,
    now: kelpie_core::Now,
) -> ProcessInfo {
    let paths = crate::spawn_plan::log_paths(&services.home, &entry.spec, pm_id);
    let log_files = log_file_infos(&services.logs, &paths);
    // The inherited shell environment is never shown (it may hold secrets) and is most of a
    // spec's size: it stays in the daemon.
    let spec = AppSpec {
        inherited_env: Default::default(),
        ..(*entry.spec).clone()
    };
    let usage = entry.current_usage().unwrap_or_default();
    ProcessInfo {
        pm_id,
        instance: entry.instance,
        spec,
        state: entry.state.clone(),
        memory: usage.memory_bytes,
        cpu: usage.cpu_percent,
        uptime_ms: entry.state.uptime_ms(now),
        out_log: paths.out,
        err_log: paths.err,
        username: services.username.clone(),
        log_files,
        status_text: entry.published.status_text.clone(),
        metrics: entry.published.metrics.clone(),
        sdk: entry
            .sdk
            .as_ref()
            .and_then(|sdk| {
                sdk.lock().ok().map(|mut state| {
                    // The newest metrics, kept unread until someone looks.
                    state.settle();
                    state.clone()
                })
            })
            .unwrap_or_default(),
        counters: entry
            .state
            .pid
            .and_then(|pid| services.monitor.counters(pm_id, pid))
            .map(|c| kelpie_proto::ProcessCounters {
                minor_faults: c.minor_faults,
                major_faults: c.major_faults,
                voluntary_switches: c.voluntary_switches,
                involuntary_switches: c.involuntary_switches,
            }),
    }
}

/// What `/metrics` shows of each instance.
pub(super) fn instance_metrics(apps: &Apps, services: &Services) -> Vec<InstanceMetrics> {
    process_infos(apps, services)
        .into_iter()
        .map(|info| {
            let entry = apps.get(info.pm_id);
            InstanceMetrics {
                cpu_seconds: entry.map_or(0.0, |e| e.cpu_seconds),
                processes: entry
                    .and_then(|e| e.current_usage())
                    .map_or(0, |usage| usage.processes),
                health_failures: entry.map_or(0, |e| e.health_failures),
                info,
            }
        })
        .collect()
}
