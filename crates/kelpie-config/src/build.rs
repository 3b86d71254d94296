//! One raw app to one `AppSpec`: every field validated, every problem collected.

use crate::convert;
use crate::normalize::RawApp;
use crate::paths::{absolutize, expand_tilde};
use crate::script::{self, Choice, Lookup};
use crate::serve;
use crate::LoadContext;
use kelpie_core::{AppSpec, ExecMode, ListenAddress, LogRotation};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where an app comes from: decides defaults that differ between files and `kelpie start`.
pub struct Origin<'a> {
    /// Default working directory, and the base for a relative `cwd`.
    pub base_dir: &'a Path,
    /// Absolute path of the ecosystem file, if any.
    pub source_file: Option<String>,
    /// The `--env` profile, for file loads.
    pub profile: Option<&'a str>,
    /// The file's `deploy.<profile>.env` (already validated), over every app's `env`.
    pub deploy_env: Option<&'a BTreeMap<String, String>>,
    /// The CLI invocation.
    pub ctx: &'a LoadContext,
    /// `script: serve` is the built-in static server (files and `kelpie serve`; for
    /// `kelpie start serve` it is a file or command named `serve`, as in PM2).
    pub builtin_serve: bool,
}

/// The app's working directory as configured, without checking it exists.
fn configured_cwd(raw: &RawApp, origin: &Origin<'_>) -> PathBuf {
    match raw.get("cwd").and_then(|f| f.value.as_str()) {
        Some(cwd) => absolutize(
            origin.base_dir,
            Path::new(&expand_tilde(cwd, origin.ctx.home())),
        ),
        None => origin.base_dir.to_path_buf(),
    }
}

/// The app's name: `name`, else derived from `script`; `None` when neither is usable.
pub fn app_name(raw: &RawApp, origin: &Origin<'_>) -> Option<String> {
    if let Some(name) = raw.explicit_name() {
        return Some(name.to_string());
    }
    let script = raw.get("script")?.value.as_str()?;
    let cwd = configured_cwd(raw, origin);
    Some(script::default_name(script, &cwd, origin.ctx.home())).filter(|n| !n.is_empty())
}

/// How apps are named in messages: by name, or by position when they have none.
pub fn label(raw: &RawApp, origin: &Origin<'_>) -> String {
    match app_name(raw, origin) {
        Some(name) => format!("app `{name}`"),
        None => format!("app #{}", raw.index + 1),
    }
}

/// Reads fields, recording "field `x`: …" errors instead of stopping at the first one.
struct Reader<'a> {
    raw: &'a RawApp,
    errors: Vec<String>,
}

impl Reader<'_> {
    /// `field` as the file spells it (a PM2 alias or another case), for messages.
    fn spelled<'f>(&'f self, field: &'f str) -> &'f str {
        self.raw.get(field).map_or(field, |f| f.key.as_str())
    }

    fn get<T>(&mut self, field: &str, read: impl Fn(&Value) -> Result<T, String>) -> Option<T> {
        let found = self.raw.get(field)?;
        match read(&found.value) {
            Ok(value) => Some(value),
            Err(message) => {
                self.errors
                    .push(format!("field `{}`: {message}", found.key));
                None
            }
        }
    }
}

/// The spec of one app, or every problem found in it (each prefixed with the app's label).
pub fn build(raw: &RawApp, origin: &Origin<'_>) -> Result<AppSpec, Vec<String>> {
    let ctx = origin.ctx;
    let mut r = Reader {
        raw,
        errors: raw.errors.clone(),
    };
    let mut spec = AppSpec {
        inherited_env: std::sync::Arc::new(ctx.env.clone()),
        env_profile: origin.profile.map(str::to_string),
        source_file: origin.source_file.clone(),
        ..AppSpec::default()
    };

    let (cwd, cwd_ok) = read_cwd(&mut r, &mut spec, origin);
    let builtin_serve = read_script(&mut r, &mut spec, origin, &cwd, cwd_ok);
    read_name(&mut r, &mut spec, origin);
    if let Some(namespace) = r.get("namespace", convert::string) {
        spec.namespace = namespace;
    }
    spec.args = r.get("args", convert::words).unwrap_or_default();
    if builtin_serve {
        spec.args
            .insert(0, serve::STATIC_SERVER_COMMAND.to_string());
    }

    read_env(&mut r, &mut spec, origin);
    read_policy(&mut r, &mut spec);
    read_instances(&mut r, &mut spec);
    read_source_maps(&mut r, &mut spec);
    read_listen(&mut r, &mut spec);
    listen_from_env(&mut spec);
    check_cluster_port(&mut r, &spec);
    read_logs(&mut r, &mut spec, &cwd, ctx.home());
    read_limits(&mut r, &mut spec);
    read_account(&mut r, &mut spec);
    read_cron(&mut r, &mut spec);
    read_watch(&mut r, &mut spec, &cwd, ctx.home());
    // After the port and environment: a health check given as a path is checked on the port.
    read_health(&mut r, &mut spec);
    read_dependencies(&mut r, &mut spec);
    if let Some(b) = r.get("vizion", convert::boolean) {
        spec.vizion = b;
    }

    if r.errors.is_empty() {
        Ok(spec)
    } else {
        let label = label(raw, origin);
        Err(r
            .errors
            .into_iter()
            .map(|e| format!("{label}: {e}"))
            .collect())
    }
}

/// `cwd`: the app's working directory (the origin's directory when not given), which must
/// exist. Returned as a path for the fields relative to it, with whether it exists.
fn read_cwd(r: &mut Reader<'_>, spec: &mut AppSpec, origin: &Origin<'_>) -> (PathBuf, bool) {
    let cwd = match r.get("cwd", convert::string) {
        Some(_) => configured_cwd(r.raw, origin),
        None => origin.base_dir.to_path_buf(),
    };
    let cwd_ok = cwd.is_dir();
    if !cwd_ok {
        let key = r.spelled("cwd");
        r.errors.push(format!(
            "field `{key}`: working directory `{}` not found",
            cwd.display()
        ));
    }
    spec.cwd = cwd.display().to_string();
    (cwd, cwd_ok)
}

/// `script`, `interpreter` and `interpreter_args`: what the app runs, resolved in its working
/// directory (only when that exists), or Kelpie's built-in static server. Returns whether it
/// is the built-in server.
fn read_script(
    r: &mut Reader<'_>,
    spec: &mut AppSpec,
    origin: &Origin<'_>,
    cwd: &Path,
    cwd_ok: bool,
) -> bool {
    let ctx = origin.ctx;
    let user_interpreter_args = r
        .get("interpreter_args", convert::words)
        .unwrap_or_default();
    let interpreter = r.get("interpreter", interpreter_field);
    let script = r.get("script", convert::string);
    let builtin_serve = origin.builtin_serve && script.as_deref().is_some_and(serve::is_builtin);
    match script {
        Some(_) if builtin_serve => {
            if let Some(Some(given)) = &interpreter {
                r.errors.push(format!(
                    "`script: serve` is Kelpie's built-in static file server and runs without an interpreter (remove `interpreter: {given}`)"
                ));
            }
            match serve::resolve() {
                Ok(resolved) => {
                    spec.script = resolved.script;
                    spec.interpreter = resolved.interpreter;
                }
                Err(message) => r.errors.push(message),
            }
        }
        Some(script) if cwd_ok => {
            let path_var = ctx.path_var();
            let lookup = Lookup {
                path_var: &path_var,
                home: ctx.home(),
            };
            let choice = match &interpreter {
                Some(given) => Choice::Explicit(given.as_deref()),
                None => Choice::Auto,
            };
            match script::resolve(&script, cwd, choice, &lookup) {
                Ok(resolved) => {
                    spec.script = resolved.script;
                    spec.interpreter = resolved.interpreter;
                    spec.interpreter_args = user_interpreter_args;
                    spec.interpreter_args.extend(resolved.shell_args);
                }
                Err(message) => r.errors.push(message),
            }
        }
        Some(_) => {}
        None if r.raw.get("script").is_none() => r
            .errors
            .push("missing `script` (the file or command to run)".to_string()),
        None => {}
    }
    builtin_serve
}

/// `name` (else one derived from `script`), checked, with the env profile appended when
/// `append_env_to_name` asks for it.
fn read_name(r: &mut Reader<'_>, spec: &mut AppSpec, origin: &Origin<'_>) {
    let raw = r.raw;
    spec.name = app_name(raw, origin).unwrap_or_default();
    if let Some(name) = r.get("name", convert::string) {
        spec.name = name;
    }
    if !spec.name.is_empty() {
        if let Err(e) = kelpie_core::check_app_name(&spec.name) {
            r.errors.push(format!("field `name`: {e}"));
        }
    }
    // A command line whose first word is empty or whose quotes do not close names nothing; an
    // app named "" could not be told apart or targeted.
    if spec.name.is_empty() && raw.get("name").is_none() {
        if let Some(field) = raw.get("script") {
            if field.value.as_str().is_some_and(|s| !s.trim().is_empty()) {
                r.errors.push(format!(
                    "field `{}`: no app name can be taken from {}; set `name`",
                    field.key,
                    convert::describe(&field.value)
                ));
            }
        }
    }
    // PM2: with `--env dev`, `append_env_to_name: true` names the app `<name>-dev`.
    if r.get("append_env_to_name", convert::boolean) == Some(true) {
        if let Some(profile) = origin.profile {
            if !spec.name.is_empty() {
                spec.name = format!("{}-{profile}", spec.name);
            }
        }
    }
}

/// `Some(None)` for `interpreter: none` (or empty), which means "execute the script itself", as
/// in PM2; `Some(Some(name))` for an interpreter.
fn interpreter_field(value: &Value) -> Result<Option<String>, String> {
    match value {
        Value::String(s) if s.trim().is_empty() || s.trim() == "none" => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        other => Err(format!(
            "expected an interpreter name, path or \"none\", got {}",
            convert::describe(other)
        )),
    }
}

/// `env_file`, `env`, every `env_<profile>` (all validated, the selected one merged) and Python's
/// unbuffered output. As PM2 7 does: the app's `env`, the file's `deploy.<profile>.env` over
/// it, and the app's `env_<profile>` over both. (PM2's `mergeEnvironmentVariables` says the
/// deploy env has the least priority, but it writes it into the app's own `env` object, so it
/// wins over `env`; this is what PM2 users' apps get, checked with PM2 7.0.4.)
fn read_env(r: &mut Reader<'_>, spec: &mut AppSpec, origin: &Origin<'_>) {
    let profile = origin.profile;
    let cwd = PathBuf::from(&spec.cwd);
    let home = origin.ctx.home();
    spec.env = r
        .get("env_file", |value| env_files(value, &cwd, home))
        .unwrap_or_default();
    if let Some(env) = r.get("env", crate::env::variables) {
        spec.env.extend(env);
    }
    if let Some(deploy) = origin.deploy_env {
        spec.env
            .extend(deploy.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (name, field) in &r.raw.profiles {
        match crate::env::variables(&field.value) {
            Ok(vars) if Some(name.as_str()) == profile => spec.env.extend(vars),
            Ok(_) => {}
            Err(message) => r.errors.push(format!("field `{}`: {message}", field.key)),
        }
    }
    let python = spec
        .interpreter
        .as_deref()
        .is_some_and(crate::interpreter::is_python);
    let already_set = spec.env.contains_key("PYTHONUNBUFFERED")
        || spec.inherited_env.contains_key("PYTHONUNBUFFERED");
    if python && !already_set {
        spec.env
            .insert("PYTHONUNBUFFERED".to_string(), "1".to_string());
    }
}

/// `env_file`: one dotenv file or a list of them, relative to the app's directory, read now (a
/// later `kelpie start` of the app reads them again); later files win.
fn env_files(
    value: &Value,
    cwd: &Path,
    home: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let paths = match value {
        Value::Array(_) => convert::words(value)?,
        other => vec![convert::string(other)?],
    };
    let mut variables = BTreeMap::new();
    for path in paths {
        let path = absolutize(cwd, Path::new(&expand_tilde(&path, home)));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        let read = crate::env::dotenv(&text).map_err(|e| format!("`{}` {e}", path.display()))?;
        variables.extend(read);
    }
    Ok(variables)
}

/// CPUs available to us (cgroup quotas included), read once: it reads cgroup files, and a file
/// may have hundreds of apps.
pub(crate) fn cpu_count() -> u32 {
    static CPUS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
    })
}

/// Instances, exec mode and the restart/stop policy.
fn read_policy(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(n) = r.get("instances", |v| convert::instances(v, cpu_count())) {
        spec.instances = n;
    }
    if let Some(mode) = r.get("exec_mode", convert::exec_mode) {
        spec.exec_mode = mode;
    } else if r.raw.get("exec_mode").is_none()
        && r.raw.get("instances").is_some()
        && spec
            .interpreter
            .as_deref()
            .is_some_and(crate::interpreter::is_node_or_bun)
    {
        // PM2's rule (`Common.sink.determineExecMode`): asking for instances of a Node or Bun
        // app, even one, selects cluster mode.
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
    }
    spec.max_memory_restart = r.get("max_memory_restart", convert::bytes);
}

/// Readiness, stopping by message and the per-instance variables.
fn read_instances(r: &mut Reader<'_>, spec: &mut AppSpec) {
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
    if let Some(name) = r.get("instance_var", convert::env_var_name) {
        spec.instance_var = name;
    }
    spec.increment_var = r.get("increment_var", convert::env_var_name);
}

/// PM2's `disable_source_map_support` and `source_map_support`. Node apps get source maps by
/// default, so `source_map_support: true` asks for what is already there and, as in PM2, does
/// not win over `disable_source_map_support: true`; it is still checked to be a boolean.
fn read_source_maps(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(b) = r.get("disable_source_map_support", convert::boolean) {
        spec.disable_source_map_support = b;
    }
    let _ = r.get("source_map_support", convert::boolean);
}

/// `port` and `reuse_port`. `port` sets `PORT` (over `env`, as in PM2) and, unlike PM2, makes
/// Kelpie own the listening socket and share it between the instances. Not with `reuse_port`
/// (the instances bind the port themselves), nor with `increment_var: PORT` (each instance has
/// its own port): then `port` only sets `PORT`.
fn read_listen(r: &mut Reader<'_>, spec: &mut AppSpec) {
    if let Some(b) = r.get("reuse_port", convert::boolean) {
        spec.reuse_port = b;
    }
    let Some(address) = r.get("port", convert::listen) else {
        return;
    };
    let port_var = match &address {
        ListenAddress::Tcp { port, .. } => port.to_string(),
        ListenAddress::Unix { path } => path.clone(),
    };
    spec.env.insert("PORT".to_string(), port_var);
    if spec.reuse_port {
        if let ListenAddress::Unix { .. } = address {
            let key = r.spelled("reuse_port");
            r.errors.push(format!(
                "field `{key}`: SO_REUSEPORT is for TCP ports, not a Unix socket (`port: {address}`); remove `{key}` to let Kelpie share the socket"
            ));
        }
        return;
    }
    if spec.increment_var.as_deref() == Some("PORT") {
        return;
    }
    spec.listen = Some(address);
}

/// A cluster app without `port` that has a numeric `PORT` (from its `env`, else from the shell)
/// listens there, so Node apps written for PM2's cluster mode share their port without a config
/// change. A `PORT` that is not a port number is left to the app.
fn listen_from_env(spec: &mut AppSpec) {
    if spec.exec_mode != ExecMode::Cluster
        || spec.listen.is_some()
        || spec.reuse_port
        || spec.increment_var.as_deref() == Some("PORT")
    {
        return;
    }
    if let Some(port) = spec.env_port() {
        spec.listen = Some(ListenAddress::Tcp { host: None, port });
    }
}

/// Several cluster-mode instances of an app that is not Node (Node apps share the ports their
/// code listens on through the shim) with no port to share: each would bind its port itself,
/// all but one would crash on EADDRINUSE and loop. Refused, naming the ways to share a port.
fn check_cluster_port(r: &mut Reader<'_>, spec: &AppSpec) {
    let node = spec
        .interpreter
        .as_deref()
        .is_some_and(crate::interpreter::is_node_or_bun);
    if spec.exec_mode != ExecMode::Cluster
        || node
        || spec.instances < 2
        || spec.listen.is_some()
        || spec.reuse_port
        || spec.increment_var.is_some()
    {
        return;
    }
    let key = r.spelled("exec_mode");
    r.errors.push(format!(
        "field `{key}`: cluster mode shares a port by itself only for Node apps; these {} instances would each bind the app's port and all but one would crash. Set `port` (Kelpie binds it once and passes the socket to every instance as fd 3, LISTEN_FDS=1: gunicorn/uvicorn `--fd 3`, Go's go-systemd activation...), or `reuse_port: true` if the app binds with SO_REUSEPORT; for instances that listen on no port, use `exec_mode: fork`",
        spec.instances
    ));
}

/// Shortest `max_cpu_window`: CPU use is sampled about once a second, so a shorter window would
/// restart the app on a single sample.
const MIN_CPU_WINDOW_MS: u64 = 1000;

/// `max_cpu`, `max_cpu_window`, `max_processes` and `nice` (`max_memory_restart` is read with
/// the policy).
fn read_limits(r: &mut Reader<'_>, spec: &mut AppSpec) {
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
fn read_account(r: &mut Reader<'_>, spec: &mut AppSpec) {
    spec.user = r.get("uid", |v| convert::account(v, "a user name or uid"));
    spec.group = r.get("gid", |v| convert::account(v, "a group name or gid"));
}

/// `cron_restart` (`0` = none) and the time zone it is read in.
fn read_cron(r: &mut Reader<'_>, spec: &mut AppSpec) {
    spec.cron_restart = r.get("cron_restart", convert::cron).flatten();
    spec.cron_timezone = r.get("cron_timezone", convert::time_zone);
}

/// `watch` paths made absolute against the app's cwd (after `~` expansion; `true` is the cwd
/// itself), `ignore_watch` globs and `watch_delay`.
fn read_watch(r: &mut Reader<'_>, spec: &mut AppSpec, cwd: &Path, home: Option<&str>) {
    for path in r.get("watch", convert::watch).unwrap_or_default() {
        let path = absolutize(cwd, Path::new(&expand_tilde(&path, home)))
            .display()
            .to_string();
        if !spec.watch.contains(&path) {
            spec.watch.push(path);
        }
    }
    spec.ignore_watch = r.get("ignore_watch", convert::globs).unwrap_or_default();
    if let Some(ms) = r.get("watch_delay", convert::duration) {
        spec.watch_delay_ms = ms;
    }
}

/// `health_check` (or the `http` block of PM2 production templates) and `watchdog`.
fn read_health(r: &mut Reader<'_>, spec: &mut AppSpec) {
    match (r.raw.get("health_check"), r.raw.get("http")) {
        (Some(check), Some(http)) => r.errors.push(format!(
            "fields `{}` and `{}` both set a health check; keep one",
            check.key, http.key
        )),
        (Some(found), None) => match crate::health::read(&found.key, &found.value, spec) {
            Ok(check) => spec.health_check = check,
            Err(errors) => r.errors.extend(errors),
        },
        (None, Some(found)) => {
            match crate::health::read_http_block(&found.key, &found.value, spec) {
                Ok(check) => spec.health_check = check,
                Err(errors) => r.errors.extend(errors),
            }
        }
        (None, None) => {}
    }
    spec.watchdog_ms = r.get("watchdog", convert::watchdog);
}

/// `depends_on`. Names that are not apps of the same file are allowed (the app may already run
/// in the daemon, which checks); cycles across a file are checked when the file is loaded.
fn read_dependencies(r: &mut Reader<'_>, spec: &mut AppSpec) {
    let Some(names) = r.get("depends_on", convert::app_names) else {
        return;
    };
    if !spec.name.is_empty() && names.contains(&spec.name) {
        let key = r.spelled("depends_on");
        r.errors.push(format!(
            "field `{key}`: app `{}` cannot depend on itself",
            spec.name
        ));
        return;
    }
    spec.depends_on = names;
}

/// What `time: true` sets `log_date_format` to, as PM2 does.
pub const TIME_FORMAT: &str = "YYYY-MM-DDTHH:mm:ss";

/// Log paths are made absolute against the app's cwd (as PM2 does), after `~` expansion;
/// `NULL` (PM2's "discard") is kept as is, like `/dev/null`.
fn read_logs(r: &mut Reader<'_>, spec: &mut AppSpec, cwd: &Path, home: Option<&str>) {
    let resolve = |p: String| {
        if p == "NULL" {
            return p;
        }
        absolutize(cwd, Path::new(&expand_tilde(&p, home)))
            .display()
            .to_string()
    };
    spec.out_file = r.get("out_file", convert::string).map(resolve);
    spec.error_file = r.get("error_file", convert::string).map(resolve);
    if let Some(b) = r.get("merge_logs", convert::boolean) {
        spec.merge_logs = b;
    }
    // `Some("")` (`log: true`) is the daemon's default location and stays empty.
    spec.log_file = r.get("log_file", convert::log_file).flatten().map(|p| {
        if p.is_empty() {
            p
        } else {
            resolve(p)
        }
    });
    spec.log_date_format = r.get("log_date_format", convert::string);
    // PM2: `time: true` wins over a custom `log_date_format`.
    if r.get("time", convert::boolean) == Some(true) {
        spec.log_date_format = Some(TIME_FORMAT.to_string());
    }
    if let Some(log_type) = r.get("log_type", convert::log_type) {
        spec.log_type = log_type;
    }
    if let Some(b) = r.get("disable_logs", convert::boolean) {
        spec.disable_logs = b;
    }
    spec.log_rotation = LogRotation {
        max_size: r.get("log_max_size", convert::bytes),
        retain: r.get("log_retain", convert::count),
        compress: r.get("log_compress", convert::boolean),
        interval_ms: r.get("log_rotate_interval", convert::rotate_interval),
    };
}
