//! `jlist`: the process list in PM2's JSON shape, so scripts written for `pm2 jlist` keep
//! working. Built here, in a crate the CLI and the daemon share, because both need it: the CLI
//! (`jlist`, `prettylist`, `describe --json`) and the socket's `Jlist` request (the Node API's
//! `list`). Only the app's own `env` (from its config) is included, not the inherited shell
//! environment, which may hold secrets (PM2 prints both); values of secret-looking names are
//! masked unless asked for (`--show-secrets`).
//!
//! The shape is built from borrowing structs, not a `serde_json::Value` tree: with hundreds of
//! apps, building the tree was a third of the command's time.

mod program;

pub use crate::secrets::{is_secret, is_secret_name, shown_env, MASK};
use crate::versioning::Versioning;
use kelpie_proto::ProcessInfo;
use program::{shown_interpreter, shown_log_path, Lookups};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// One process, its keys in PM2's order (`pm_id` is not the last, so its `prettylist` line ends
/// with a comma as PM2's does).
#[derive(Serialize)]
struct Entry<'a> {
    pid: u32,
    name: &'a str,
    pm2_env: Pm2Env<'a>,
    pm_id: u32,
    monit: Monit,
}

#[derive(Serialize)]
struct Monit {
    memory: u64,
    cpu: f64,
}

/// `axm_monitor`: the metrics of the app's PM2 SDK as it sent them (`{value, unit?, type?,
/// historic?}`), and those it sent on `NOTIFY_SOCKET` as `{value}`.
struct AxmMonitor<'a> {
    sdk: &'a serde_json::Map<String, serde_json::Value>,
    notify: &'a BTreeMap<String, f64>,
}

impl Serialize for AxmMonitor<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, entry) in self.sdk {
            map.serialize_entry(name, entry)?;
        }
        for (name, value) in self
            .notify
            .iter()
            .filter(|(n, _)| !self.sdk.contains_key(*n))
        {
            map.serialize_entry(name, &serde_json::json!({ "value": value }))?;
        }
        map.end()
    }
}

/// `pm2_env`. The keys PM2 also shows come in PM2's order (PM2 7's for an app of an ecosystem
/// file): scripts read `prettylist` line by line (PM2's own e2e scripts take every `pm_id: N,`
/// line with grep and sed), so the same keys must be on the same lines, each followed by
/// another. Settings PM2 shows only when a file sets them come after `env`, where PM2 puts a
/// file's own keys; what only Kelpie shows comes last.
#[derive(Serialize)]
#[allow(non_snake_case)]
struct Pm2Env<'a> {
    name: &'a str,
    env: EnvView<'a>,
    args: std::borrow::Cow<'a, [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    increment_var: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<String>,
    reuse_port: bool,
    wait_ready: bool,
    listen_timeout: u64,
    shutdown_with_message: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_date_format: Option<&'a str>,
    log_type: &'static str,
    disable_logs: bool,
    kill_timeout: u64,
    kill_signal: &'a str,
    restart_delay: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp_backoff_restart_delay: Option<u64>,
    min_uptime: u64,
    max_restarts: u32,
    stop_exit_codes: &'a [i32],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_memory_restart: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_cpu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cron_restart: Option<&'a str>,
    depends_on: &'a [String],
    merge_logs: bool,
    /// PM2's: whether the git metadata of the app's directory is read (`vizion` setting).
    vizion: bool,
    autostart: bool,
    autorestart: bool,
    watch: bool,
    instance_var: &'a str,
    /// PM2's: whether the app gets the runtime metrics of PM2's agent (`pmx` setting).
    pmx: bool,
    username: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_args: Option<&'a [String]>,
    pm_exec_path: std::borrow::Cow<'a, str>,
    pm_cwd: &'a str,
    exec_interpreter: std::borrow::Cow<'a, str>,
    exec_mode: &'static str,
    instances: u32,
    pm_out_log_path: &'a str,
    pm_err_log_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pm_log_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pm_pid_path: Option<String>,
    /// The instance's index under the app's `instance_var` (`NODE_APP_INSTANCE: 0`), and the
    /// `increment_var`'s value (`PORT: 3001`), at the top of `pm2_env` as in PM2.
    #[serde(flatten)]
    instance_vars: InstanceVars<'a>,
    unique_id: String,
    status: &'static str,
    pm_uptime: u64,
    /// The actions its PM2 SDK registered (`io.action`), as PM2 lists them.
    axm_actions: &'a [serde_json::Value],
    /// The same metrics in PM2's shape for custom metrics (`@pm2/io`): `{ name: { value } }`.
    axm_monitor: AxmMonitor<'a>,
    /// The options its PM2 SDK sent (`isModule`, `module_conf`...), as PM2 keeps them.
    axm_options: &'a serde_json::Map<String, serde_json::Value>,
    created_at: u64,
    pm_id: u32,
    restart_time: u32,
    unstable_restarts: u32,
    version: &'static str,
    /// The Node version the process said it runs (Node apps).
    #[serde(skip_serializing_if = "Option::is_none")]
    node_version: Option<&'a serde_json::Value>,
    prev_restart_delay: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'static str>,
    /// Kelpie's: the last `STATUS=` its process sent on `NOTIFY_SOCKET`.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_text: Option<&'a str>,
    /// Kelpie's: the metrics its process sends on `NOTIFY_SOCKET`
    /// (`X_KELPIE_METRIC=<name>=<number>`), by name.
    metrics: &'a BTreeMap<String, f64>,
    /// Kelpie's, for an app with `cron_restart`: when it runs next and how its runs went.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<Schedule<'a>>,
    /// Kelpie's: the last exits and automatic restarts, oldest first, with their cause. Only in
    /// `describe --json`: scripts count status words in `jlist` (`grep -o stopped | wc -l`), and
    /// an exit record holds them too.
    #[serde(skip_serializing_if = "Option::is_none")]
    exits: Option<&'a std::collections::VecDeque<std::sync::Arc<kelpie_core::ExitRecord>>>,
    /// Kelpie's: its process's page faults and context switches, read by the daemon from /proc.
    #[serde(skip_serializing_if = "Option::is_none")]
    counters: Option<&'a kelpie_proto::ProcessCounters>,
    /// That metadata, when `vizion` is on and the directory is in a repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    versioning: Option<&'a Versioning>,
}

fn entry<'a>(
    p: &'a ProcessInfo,
    show_secrets: bool,
    with_exits: bool,
    lookups: &'a Lookups<'a>,
) -> Entry<'a> {
    let spec = &p.spec;
    let state = &p.state;
    let incremented = spec.incremented_var(p.instance);
    Entry {
        pid: state.pid.unwrap_or(0),
        name: &spec.name,
        pm_id: p.pm_id,
        monit: Monit {
            memory: p.memory,
            cpu: p.cpu,
        },
        pm2_env: Pm2Env {
            name: &spec.name,
            namespace: &spec.namespace,
            pm_id: p.pm_id,
            status: state.status.as_str(),
            restart_time: state.restart_time,
            unstable_restarts: state.unstable_restarts,
            pm_uptime: state.started_at_ms,
            created_at: state.created_at_ms,
            exec_mode: spec.exec_mode.pm2_name(),
            instances: spec.instances,
            instance_vars: InstanceVars {
                index: (&spec.instance_var, p.instance),
                incremented,
            },
            instance_var: &spec.instance_var,
            increment_var: spec.increment_var.as_deref(),
            port: spec.listen.as_ref().map(|l| l.to_string()),
            reuse_port: spec.reuse_port,
            wait_ready: spec.wait_ready,
            listen_timeout: spec.listen_timeout_ms,
            shutdown_with_message: spec.shutdown_with_message,
            pm_exec_path: lookups.exec_path(spec),
            pm_cwd: &spec.cwd,
            exec_interpreter: shown_interpreter(spec, lookups),
            node_args: match (spec.is_shell_command_line(), spec.interpreter_args_cleared) {
                (true, _) => Some(&[]),
                (false, true) => None,
                (false, false) => Some(&spec.interpreter_args),
            },
            // A command line, as PM2 shows one: the shell runs itself with `-c <line>`, and the
            // app's `args` are not shown (PM2 drops them; Kelpie gives them to the shell as
            // `$0`, `$1`...: docs/differences-from-pm2.md).
            args: match spec.is_shell_command_line() {
                true => std::borrow::Cow::Owned(vec!["-c".to_string(), spec.script.clone()]),
                false => std::borrow::Cow::Borrowed(&spec.args),
            },
            pm_out_log_path: shown_log_path(&p.out_log),
            pm_err_log_path: shown_log_path(&p.err_log),
            pm_log_path: p
                .log_files
                .iter()
                .find(|f| f.kind == "combined")
                .map(|f| f.path.as_str()),
            merge_logs: spec.merge_logs,
            log_date_format: spec.log_date_format.as_deref(),
            log_type: match spec.log_type {
                kelpie_core::LogType::Raw => "raw",
                kelpie_core::LogType::Json => "json",
            },
            disable_logs: spec.disable_logs,
            autorestart: spec.autorestart,
            autostart: spec.autostart,
            watch: !spec.watch.is_empty(),
            kill_timeout: spec.kill_timeout_ms,
            kill_signal: &spec.kill_signal,
            restart_delay: spec.restart_delay_ms,
            exp_backoff_restart_delay: spec.exp_backoff_restart_delay_ms,
            prev_restart_delay: state.prev_restart_delay_ms,
            min_uptime: spec.min_uptime_ms,
            max_restarts: spec.max_restarts,
            stop_exit_codes: &spec.stop_exit_codes,
            max_memory_restart: spec.max_memory_restart,
            max_cpu: spec.max_cpu,
            cron_restart: spec.cron_restart.as_deref(),
            schedule: Schedule::of(spec, state),
            health: state.health.map(|h| h.as_str()),
            depends_on: &spec.depends_on,
            status_text: p.status_text.as_deref(),
            metrics: &p.metrics,
            axm_monitor: AxmMonitor {
                sdk: &p.sdk.monitor,
                notify: &p.metrics,
            },
            axm_actions: &p.sdk.actions,
            axm_options: &p.sdk.options,
            node_version: p.sdk.node_version.as_ref(),
            exits: with_exits.then_some(&state.exits),
            counters: p.counters.as_ref(),
            exit_code: state.exits.back().and_then(|e| e.code),
            username: &p.username,
            env: EnvView {
                env: shown_env(&spec.env, show_secrets),
                typed: &spec.env_typed,
                incremented: incremented.filter(|(var, _)| show_secrets || !is_secret_name(var)),
            },
            version: "N/A",
            pm_pid_path: kelpie_core::files::pid_file(spec, p.pm_id)
                .map(|p| p.display().to_string()),
            unique_id: format!("{}-{}", p.pm_id, state.created_at_ms),
            vizion: spec.vizion,
            pmx: spec.pmx,
            versioning: lookups.of(spec),
        },
    }
}

/// A scheduled app's next run and last run (`pm2_env.schedule`).
#[derive(Serialize)]
struct Schedule<'a> {
    /// When it runs next (ms since the Unix epoch); `null` while paused.
    next_run_at: Option<u64>,
    /// A user's stop paused the schedule until `start` or `restart`.
    paused: bool,
    /// Runs in a row that failed (non-zero code, signal, could not start).
    failed_runs: u32,
    /// How the last run ended, if one did.
    last_run: Option<LastRun<'a>>,
}

/// How a run ended.
#[derive(Serialize)]
struct LastRun<'a> {
    /// When (ms since the Unix epoch).
    at: u64,
    exit_code: Option<i32>,
    signal: Option<&'a str>,
    /// How long it ran (ms).
    duration: u64,
    /// Why it ended: `exit` (code 0), `crash`, `cron` (still running at the next tick), ...
    cause: &'static str,
}

impl<'a> Schedule<'a> {
    fn of(spec: &kelpie_core::AppSpec, state: &'a kelpie_core::InstanceState) -> Option<Self> {
        spec.cron_restart.as_ref()?;
        Some(Schedule {
            next_run_at: state.next_run_ms,
            paused: state.stopped_by_user,
            failed_runs: state.failed_runs,
            last_run: state.exits.back().map(|exit| LastRun {
                at: exit.at_ms,
                exit_code: exit.code,
                signal: exit.signal.as_deref(),
                duration: exit.uptime_ms,
                cause: exit.cause.as_str(),
            }),
        })
    }
}

/// Variables of one instance, shown as keys of `pm2_env`.
struct InstanceVars<'a> {
    index: (&'a str, u32),
    incremented: Option<(&'a str, u64)>,
}

impl Serialize for InstanceVars<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.index.0, &self.index.1)?;
        if let Some((var, value)) = self.incremented.filter(|(var, _)| *var != self.index.0) {
            map.serialize_entry(var, &value)?;
        }
        map.end()
    }
}

/// The app's `env` as shown, with the instance's `increment_var` value, a number as in PM2,
/// and the values the config gave as numbers or booleans with their type (`PORT: 3000`).
struct EnvView<'a> {
    env: std::borrow::Cow<'a, BTreeMap<String, String>>,
    typed: &'a std::collections::BTreeSet<String>,
    incremented: Option<(&'a str, u64)>,
}

/// `value` as the JSON number or boolean it was written as (a masked secret stays text).
fn typed_value(value: &str) -> Option<serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(value).ok()? {
        typed @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(typed),
        _ => None,
    }
}

impl Serialize for EnvView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.env.iter() {
            match self.incremented {
                Some((var, number)) if var == name => map.serialize_entry(name, &number)?,
                _ => match self
                    .typed
                    .contains(name)
                    .then(|| typed_value(value))
                    .flatten()
                {
                    Some(typed) => map.serialize_entry(name, &typed)?,
                    None => map.serialize_entry(name, value)?,
                },
            }
        }
        // Inherited rather than declared: PM2 adds it to `env` all the same.
        if let Some((var, number)) = self
            .incremented
            .filter(|(var, _)| !self.env.contains_key(*var))
        {
            map.serialize_entry(var, &number)?;
        }
        map.end()
    }
}

/// Write the whole list as one line of JSON (secret-looking env values masked unless
/// `show_secrets`). Reads the apps' repositories (files): not for async code.
pub fn write_jlist(
    out: &mut impl Write,
    list: &[ProcessInfo],
    show_secrets: bool,
) -> std::io::Result<()> {
    let lookups = Lookups::read(list);
    let entries: Vec<Entry<'_>> = list
        .iter()
        .map(|p| entry(p, show_secrets, false, &lookups))
        .collect();
    serde_json::to_writer(&mut *out, &entries)?;
    writeln!(out)
}

/// `describe --json`: the `jlist` entries of some instances, with their last exits, indented.
pub fn write_describe_json(
    out: &mut impl Write,
    list: &[&ProcessInfo],
    show_secrets: bool,
) -> std::io::Result<()> {
    let lookups = Lookups::read(list.iter().copied());
    let entries: Vec<Entry<'_>> = list
        .iter()
        .map(|p| entry(p, show_secrets, true, &lookups))
        .collect();
    serde_json::to_writer_pretty(&mut *out, &entries)?;
    writeln!(out)
}

/// One instance as PM2's `process:event` describes it: its `pm2_env` without `env` (which may
/// hold secrets), with `pm_id` and `name`. The apps' repositories are not read (no file read
/// on the daemon's async side): `versioning` is left out.
pub fn description(info: &ProcessInfo) -> Option<serde_json::Value> {
    let no_lookups = Lookups::default();
    let entry = entry(info, false, false, &no_lookups);
    let mut value = serde_json::to_value(&entry).ok()?;
    let mut pm2_env = value.get_mut("pm2_env")?.take();
    let object = pm2_env.as_object_mut()?;
    object.remove("env");
    Some(pm2_env)
}

/// The `jlist` entries as a JSON value (for the socket's `Jlist` request and `prettylist`).
/// Reads the apps' repositories (files): not for async code.
pub fn to_value(list: &[ProcessInfo], show_secrets: bool) -> serde_json::Result<serde_json::Value> {
    let lookups = Lookups::read(list);
    let entries: Vec<Entry<'_>> = list
        .iter()
        .map(|p| entry(p, show_secrets, false, &lookups))
        .collect();
    serde_json::to_value(&entries)
}
