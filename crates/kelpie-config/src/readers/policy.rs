//! How the app runs and restarts: instances and exec mode, the restart and stop policy,
//! readiness and stopping by message, source maps, limits and the account it runs as.

use super::{cpu_count, Reader};
use crate::convert;
use kelpie_core::{AppSpec, ExecMode};

/// Instances, exec mode and the restart/stop policy.
pub(super) fn read_policy(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(n) = r.get("instances", |v| convert::instances(v, cpu_count())) {
        spec.instances = n;
        spec.instances_given = true;
    }
    if let Some(mode) = r.get("exec_mode", convert::exec_mode) {
        spec.exec_mode = mode;
    } else if r.raw.get("exec_mode").is_none()
        && r.raw.get("instances").is_some()
        && (spec
            .interpreter
            .as_deref()
            .is_some_and(crate::interpreter::is_js_runtime)
            || (spec.interpreter.is_none() && crate::interpreter::is_node_launcher(&spec.script)))
    {
        // PM2's rule (`Common.sink.determineExecMode`): asking for instances of a Node or Bun
        // app (and here a Deno app), even one, selects cluster mode. So for `npm start` and the like, whose Node
        // server runs below them (PM2 runs npm's own script under Node).
        spec.exec_mode = ExecMode::Cluster;
    }
    if let Some(b) = r.get("autorestart", convert::boolean) {
        spec.autorestart = b;
    }
    if let Some(b) = r.get("autostart", convert::boolean) {
        spec.autostart = b;
    }
    if let Some(ms) = r.get("min_uptime", convert::duration) {
        spec.min_uptime_ms = ms;
    }
    if let Some(n) = r.get("max_restarts", convert::count) {
        spec.max_restarts = n;
    }
    if let Some(ms) = r.get("restart_delay", convert::duration) {
        spec.restart_delay_ms = ms;
    }
    spec.exp_backoff_restart_delay_ms = r.get("exp_backoff_restart_delay", convert::duration);
    if let Some(codes) = r.get("stop_exit_codes", convert::exit_codes) {
        spec.stop_exit_codes = codes;
    }
    if let Some(ms) = r.get("kill_timeout", convert::duration) {
        spec.kill_timeout_ms = ms;
    }
    if let Some(signal) = r.get("kill_signal", convert::signal) {
        spec.kill_signal = signal;
    } else if crate::interpreter::runs_gunicorn(spec) {
        // gunicorn takes SIGINT (PM2's stop signal) for a quick shutdown, its workers dropping
        // what they serve, and SIGTERM for a graceful one: a reload under load failed requests.
        spec.kill_signal = "SIGTERM".to_string();
    }
    spec.max_memory_restart = r.get("max_memory_restart", convert::bytes);
}

/// Readiness, stopping by message and the per-instance variables.
pub(super) fn read_instances(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(b) = r.get("wait_ready", convert::boolean) {
        spec.wait_ready = b;
    }
    spec.ready_pattern = r.get("ready_pattern", convert::regex);
    if let Some(ms) = r.get("listen_timeout", convert::duration) {
        spec.listen_timeout_ms = ms;
    }
    if let Some(b) = r.get("shutdown_with_message", convert::boolean) {
        spec.shutdown_with_message = b;
    }
    // PM2 sets any name (`INSTANCE-ID`): the environment holds it, shells cannot name it.
    let any_name = |value: &serde_json::Value| {
        value
            .as_str()
            .map(str::trim)
            .filter(|n| !n.is_empty() && !n.contains(['=', '\0']))
            .map(|n| {
                (
                    n.to_string(),
                    "set as it is, as PM2 does (a shell cannot read it as $NAME)",
                )
            })
    };
    if let Some(name) = r.get_or_warn("instance_var", convert::env_var_name, any_name) {
        spec.instance_var = name;
    }
    spec.increment_var = r.get("increment_var", convert::env_var_name);
}

/// PM2's `disable_source_map_support` and `source_map_support`. Node apps get source maps by
/// default, so `source_map_support: true` asks for what is already there and, as in PM2, does
/// not win over `disable_source_map_support: true`; it is still checked to be a boolean.
pub(super) fn read_source_maps(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(b) = r.get("disable_source_map_support", convert::boolean) {
        spec.disable_source_map_support = b;
    }
    let _ = r.get("source_map_support", convert::boolean);
}

/// Shortest `max_cpu_window`: CPU use is sampled about once a second, so a shorter window would
/// restart the app on a single sample.
const MIN_CPU_WINDOW_MS: u64 = 1000;

/// `max_cpu`, `max_cpu_window`, `max_processes` and `nice` (`max_memory_restart` is read with
/// the policy).
pub(super) fn read_limits(r: &mut Reader<'_>, spec: &mut AppSpec) {
    spec.max_processes = r.get("max_processes", convert::max_processes);
    spec.max_cpu = r.get("max_cpu", |v| convert::cpu_percent(v, cpu_count()));
    if let Some(ms) = r.get("max_cpu_window", |v| {
        convert::duration_at_least(v, MIN_CPU_WINDOW_MS, "1 second")
    }) {
        spec.max_cpu_window_ms = ms;
    }
    spec.nice = r.get("nice", convert::nice);
}

/// `uid` and `gid` (PM2's names; `user` and `group` are aliases). Only their shape is checked
/// here: whether they exist, and whether the daemon may switch to them, is the daemon's check.
pub(super) fn read_account(r: &mut Reader<'_>, spec: &mut AppSpec) {
    spec.user = r.get("uid", |v| convert::account(v, "a user name or uid"));
    spec.group = r.get("gid", |v| convert::account(v, "a group name or gid"));
}
