//! `jlist`: the process list in PM2's JSON shape, so scripts written for `pm2 jlist` keep
//! working. Only the app's own `env` (from its config) is included, not the inherited shell
//! environment, which may hold secrets (PM2 prints both).

use kelpie_proto::ProcessInfo;
use serde_json::{json, Value};

fn one(p: &ProcessInfo) -> Value {
    let spec = &p.spec;
    let state = &p.state;
    let last_exit = state.exits.back();
    json!({
        "pid": state.pid.unwrap_or(0),
        "name": spec.name,
        "pm_id": p.pm_id,
        "monit": { "memory": p.memory, "cpu": p.cpu },
        "pm2_env": {
            "name": spec.name,
            "namespace": spec.namespace,
            "pm_id": p.pm_id,
            "status": state.status.as_str(),
            "restart_time": state.restart_time,
            "unstable_restarts": state.unstable_restarts,
            "pm_uptime": state.started_at_ms,
            "created_at": state.created_at_ms,
            "exec_mode": spec.exec_mode.pm2_name(),
            "instances": spec.instances,
            "NODE_APP_INSTANCE": p.instance,
            "instance_var": "NODE_APP_INSTANCE",
            "pm_exec_path": spec.script,
            "pm_cwd": spec.cwd,
            "exec_interpreter": spec.interpreter.clone().unwrap_or_else(|| "none".into()),
            "node_args": spec.interpreter_args,
            "args": spec.args,
            "pm_out_log_path": p.out_log,
            "pm_err_log_path": p.err_log,
            "merge_logs": spec.merge_logs,
            "autorestart": spec.autorestart,
            "autostart": spec.autostart,
            "watch": false,
            "kill_timeout": spec.kill_timeout_ms,
            "kill_signal": spec.kill_signal,
            "restart_delay": spec.restart_delay_ms,
            "exp_backoff_restart_delay": spec.exp_backoff_restart_delay_ms,
            "prev_restart_delay": state.prev_restart_delay_ms,
            "min_uptime": spec.min_uptime_ms,
            "max_restarts": spec.max_restarts,
            "stop_exit_codes": spec.stop_exit_codes,
            "max_memory_restart": spec.max_memory_restart,
            "exit_code": last_exit.and_then(|e| e.code),
            "username": p.username,
            "env": spec.env,
            "version": "N/A",
            "pm_pid_path": Value::Null,
            "unique_id": format!("{}-{}", p.pm_id, state.created_at_ms),
        }
    })
}

/// The whole list.
pub fn jlist(list: &[ProcessInfo]) -> Value {
    Value::Array(list.iter().map(one).collect())
}
