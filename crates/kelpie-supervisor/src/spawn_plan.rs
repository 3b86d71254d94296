//! What an instance's process is spawned with: its command line, environment, descriptors,
//! identity and log files (`instance/launching.rs` spawns it).

use crate::logs::LogFiles;
use crate::sockets::ListenSocket;
use crate::spawn_error::SpawnError;
use kelpie_core::files::is_discard;
use kelpie_core::{sanitize_log_name, AppSpec, ExecMode, JsRuntime};
use kelpie_proto::Home;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Where one instance's output goes, as shown to users (`/dev/null` when discarded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    /// stdout.
    pub out: String,
    /// stderr.
    pub err: String,
    /// Both streams (`log_file`), if asked for.
    pub combined: Option<String>,
}

impl LogPaths {
    /// The files to write; `None` for a discarded stream.
    pub fn files(&self) -> LogFiles {
        let file = |path: &str| (!is_discard(path)).then(|| PathBuf::from(path));
        LogFiles {
            out: file(&self.out),
            err: file(&self.err),
            combined: self.combined.as_deref().and_then(file),
        }
    }
}

/// Where one instance's output goes: PM2's names (`<home>/logs/<name>-out.log`, `-error.log`,
/// `<name>.log` for the combined file), a `-<pm_id>` suffix when the app has several instances
/// and does not merge its logs.
pub(crate) fn log_paths(home: &Home, spec: &AppSpec, pm_id: u32) -> LogPaths {
    if spec.disable_logs {
        return LogPaths {
            out: "/dev/null".into(),
            err: "/dev/null".into(),
            combined: None,
        };
    }
    let name = kelpie_core::log_name(&spec.name);
    let logs = home.logs_dir();
    let per_instance = numbered_files(spec);
    let resolve = |custom: Option<&str>, default_name: String| -> String {
        let path = match custom {
            Some(path) if !path.is_empty() => path.to_string(),
            _ => logs.join(default_name).display().to_string(),
        };
        if per_instance && !is_discard(&path) {
            with_instance_suffix(&path, pm_id)
        } else {
            path
        }
    };
    LogPaths {
        out: resolve(spec.out_file.as_deref(), format!("{name}-out.log")),
        err: resolve(spec.error_file.as_deref(), format!("{name}-error.log")),
        combined: spec
            .log_file
            .as_deref()
            .map(|path| resolve(Some(path), format!("{name}.log"))),
    }
}

/// PM2's names: `-<pm_id>` in the files of a cluster app, or of one that asked for instances
/// (one included), unless its logs are merged.
fn numbered_files(spec: &AppSpec) -> bool {
    !spec.merge_logs
        && (spec.instances > 1 || spec.instances_given || spec.exec_mode == ExecMode::Cluster)
}

/// `/x/app-out.log` → `/x/app-out-3.log` (PM2's per-instance naming).
fn with_instance_suffix(path: &str, pm_id: u32) -> String {
    for extension in [".log", ".pid"] {
        if let Some(stem) = path.strip_suffix(extension) {
            return format!("{stem}-{pm_id}{extension}");
        }
    }
    format!("{path}-{pm_id}")
}

/// The write ends of an instance's output pipes, given to the child.
pub(crate) struct OutputPipes {
    /// stdout's write end.
    pub out: std::io::PipeWriter,
    /// stderr's write end.
    pub err: std::io::PipeWriter,
}

/// Identity of an instance, for the variables Kelpie sets in its environment.
pub(crate) struct InstanceIdentity<'a> {
    /// The home the daemon serves.
    pub home: &'a Home,
    /// Its id.
    pub pm_id: u32,
    /// Its index among its app's instances.
    pub instance: u32,
}

/// Descriptor number of the listening socket in the child (socket activation's first).
pub(crate) const LISTEN_FD: RawFd = kelpie_sys::LISTEN_FDS_START;

/// What one process is started with beyond its spec: the shared socket, and the variables
/// and descriptors of its link.
pub(crate) struct Extras<'a> {
    /// The app's Kelpie-owned listening socket.
    pub socket: Option<&'a ListenSocket>,
    /// Variables for the link (NOTIFY_SOCKET, NODE_CHANNEL_FD...).
    pub env: Vec<(String, String)>,
    /// The link's descriptors (kept open by the caller until the spawn returns) and the
    /// numbers they get in the child.
    pub fds: Vec<(RawFd, RawFd)>,
    /// The process's own cgroup v2 directory, which it is created in.
    pub cgroup_dir: Option<std::os::fd::OwnedFd>,
    /// `cgroup.procs` of cgroup v1 hierarchies it joins before it execs.
    pub cgroup_procs: Vec<std::os::fd::OwnedFd>,
}

/// How one process of `spec` is started: in its own process group (so a stop reaches every
/// process it starts), stdin from its FIFO in fork mode and /dev/null in cluster mode,
/// stdout/stderr into the log pipes (or /dev/null when
/// the app disables its logs), and exactly the environment the spec defines plus Kelpie's
/// variables. With a shared socket or link descriptors, the descriptors are placed at their
/// numbers in the child and, with a socket, `LISTEN_PID` is set to the child's own pid.
///
/// `found`: where the program was found in PATH for the instance's last process, used again
/// when the name and PATH are the same; set to where it is found now.
pub(crate) fn command(
    spec: &AppSpec,
    who: &InstanceIdentity<'_>,
    output: Option<OutputPipes>,
    extras: Extras<'_>,
    found: &mut Option<Box<FoundProgram>>,
) -> Result<kelpie_sys::Spawn, SpawnError> {
    let mut argv = spec.command_line();
    // How errors name it: as the app does, before any PATH search.
    let program_name = argv[0].clone();
    let runtime = spec.js_runtime();
    let shares_ports = spec.shares_node_ports() || spec.shares_reused_ports();
    preload_shim(&mut argv, spec, who.home);
    // Later sources win: config over inherited, Kelpie's variables over both. Borrowed where
    // it can be (the spec's environment is copied into the child's once, below).
    let kelpie_vars = kelpie_variables(spec, who);
    let mut env: BTreeMap<&str, Cow<'_, str>> = spec
        .merged_env_pairs()
        // Kelpie's control secrets never reach an app, whoever put them in its spec.
        .filter(|(name, _)| !kelpie_view::secrets::is_control_secret(name))
        .map(|(name, value)| (name, Cow::Borrowed(value)))
        .collect();
    env.extend(
        kelpie_vars
            .iter()
            .chain(&extras.env)
            .map(|(name, value)| (name.as_str(), Cow::Borrowed(value.as_str()))),
    );
    let mut fds = extras.fds;
    if let Some(socket) = extras.socket {
        fds.push((socket.fd().as_raw_fd(), LISTEN_FD));
        env.insert("LISTEN_FDS", "1".into());
        env.insert("LISTEN_FDNAMES", sanitize_log_name(&spec.name).into());
        env.insert("KELPIE_LISTEN", socket.address().to_string().into());
        if let Some(port) = socket.address().port() {
            env.insert("KELPIE_LISTEN_PORT", port.to_string().into());
        }
    }
    if runtime.is_some() {
        env.insert("KELPIE_KILL_SIGNAL", spec.kill_signal.as_str().into());
        if !spec.pmx {
            // `pmx: false`: no runtime metrics from the shim.
            env.insert("KELPIE_NODE_METRICS", "0".into());
        }
    } else if extras.socket.is_some() {
        // Node below the app's own program (`npm start`, `bash -c 'node app.js'`) binding the
        // port would find it taken by Kelpie's socket: every Node process of the tree gets the
        // shim, and the first to listen on the port takes the socket at fd 3.
        let shim = crate::shims::node_shim(who.home).display().to_string();
        let options = env
            .get("NODE_OPTIONS")
            .map_or("", |options| options.as_ref());
        let options = node_options_requiring(options, &shim);
        env.insert("NODE_OPTIONS", options.into());
        env.insert("KELPIE_LISTEN_INHERITED", "1".into());
        env.insert("KELPIE_KILL_SIGNAL", spec.kill_signal.as_str().into());
        // A Python server (uvicorn) drains as Node's do: the Python shim comes first on its
        // path, before the app's own entries.
        let shim = crate::shims::python_dir(who.home).display().to_string();
        let path = match env.get("PYTHONPATH").map(|path| path.as_ref()) {
            Some(path) if !path.is_empty() => format!("{shim}:{path}"),
            _ => shim,
        };
        env.insert("PYTHONPATH", path.into());
    }
    if shares_ports {
        // The Node shim asks the daemon for the socket of each port the app listens on; Bun's
        // binds them with SO_REUSEPORT.
        env.insert("KELPIE_SHARE_PORTS", "1".into());
    }
    let path_var = env.get("PATH").map(|path| path.as_ref());
    let program =
        find_program(&argv[0], path_var, found).ok_or_else(|| SpawnError::ProgramNotFound {
            program: program_name.clone(),
        })?;
    let env: Vec<(&str, Cow<'_, str>)> = env.into_iter().collect();
    let output = output.map(|pipes| (OwnedFd::from(pipes.out), OwnedFd::from(pipes.err)));
    let (out, err) = output.map_or((None, None), |(out, err)| (Some(out), Some(err)));
    let mut spawn = kelpie_sys::Spawn::new(
        &program,
        &argv,
        &env,
        std::path::Path::new(&spec.cwd),
        (out, err),
        fds,
        extras.socket.is_some(),
    )
    .map_err(|source| SpawnError::Exec {
        program: program_name.clone(),
        cause: source,
    })?;
    if spec.exec_mode == kelpie_core::ExecMode::Fork {
        // As PM2's fork mode: a pipe on stdin that `kelpie send` writes to (cluster mode's
        // stdin stays /dev/null, as PM2's workers read an end of file at once).
        match kelpie_sys::open_stdin_fifo(&who.home.stdin_fifo(who.pm_id)) {
            Ok(fifo) => spawn.stdin_from(fifo),
            Err(e) => crate::daemon_log!(
                "{} (id {}): its stdin is /dev/null: cannot open its FIFO: {e}",
                spec.name,
                who.pm_id
            ),
        }
    }
    if let Some(dir) = extras.cgroup_dir {
        spawn.in_cgroup(dir);
    }
    for procs in extras.cgroup_procs {
        spawn.join_before_exec(procs);
    }
    let identity = identity(spec).map_err(|source| SpawnError::Identity {
        program: program_name,
        cause: source,
    })?;
    spawn.nice_and_identity(spec.nice, identity);
    spawn.original_fd_limit();
    Ok(spawn)
}

/// A Node, Bun or Deno app's command line with its runtime's shim preloaded.
fn preload_shim(argv: &mut Vec<String>, spec: &AppSpec, home: &Home) {
    match spec.js_runtime() {
        Some(JsRuntime::Node) => {
            let shim = crate::shims::node_shim(home).display().to_string();
            argv.splice(1..1, ["--require".to_string(), shim]);
        }
        Some(other) => {
            crate::runtime_shim::preload(argv, spec, other, &crate::shims::runtime_shim(home));
        }
        None => {}
    }
}

/// Where an instance's program was found in PATH for its last process. Its next automatic
/// restart runs it again without searching: a crash loop would otherwise look in every
/// directory of PATH before each start (ten `statx` calls for `node` with this machine's PATH,
/// a twentieth of the daemon's CPU per Node restart). Used only for the same program name and
/// PATH, and only from one process to the next of what the instance does by itself (crash,
/// memory, cron and watch restarts): it forgets it when a spawn fails and at every command
/// (start, restart, reload, a new spec), so a `restart` finds a program installed in an earlier
/// directory meanwhile, as a shell does after `hash -r`.
pub(crate) struct FoundProgram {
    /// The program's name and the PATH it was searched with, hashed.
    key: u64,
    at: PathBuf,
}

/// Find `name` as `execvp` would with `path_var`, or take it from `found` when it was found
/// there with the same PATH. A name with a slash is not searched for.
fn find_program(
    name: &str,
    path_var: Option<&str>,
    found: &mut Option<Box<FoundProgram>>,
) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    if name.contains('/') {
        *found = None;
        return kelpie_sys::resolve_program(name, path_var);
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (name, path_var).hash(&mut hasher);
    let key = hasher.finish();
    if let Some(known) = found.as_ref().filter(|known| known.key == key) {
        return Some(known.at.clone());
    }
    let at = kelpie_sys::resolve_program(name, path_var);
    *found = at.clone().map(|at| Box::new(FoundProgram { key, at }));
    at
}

/// `NODE_OPTIONS` with `--require <shim>` added after the user's options. Node splits the
/// variable at spaces outside double quotes, and reads `\\` and `\"` inside them.
fn node_options_requiring(options: &str, shim: &str) -> String {
    let quoted = format!("\"{}\"", shim.replace('\\', "\\\\").replace('"', "\\\""));
    let require = format!("--require {quoted}");
    if options.trim().is_empty() {
        require
    } else {
        format!("{options} {require}")
    }
}

/// Who the app runs as (`user` / `group`): the user's ids and its groups from /etc/passwd and
/// /etc/group. Only root may run apps as someone else.
pub(crate) fn identity(spec: &AppSpec) -> std::io::Result<Option<kelpie_sys::Identity>> {
    if spec.user.is_none() && spec.group.is_none() {
        return Ok(None);
    }
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    if kelpie_sys::current_uid() != 0 {
        return Err(invalid(
            "running the app as another user or group (`uid`/`gid`) needs the daemon to run as root"
                .into(),
        ));
    }
    let mut identity = kelpie_sys::Identity {
        uid: None,
        gid: 0,
        groups: Vec::new(),
    };
    if let Some(user) = &spec.user {
        let (uid, primary) = kelpie_sys::lookup_user(user)
            .ok_or_else(|| invalid(format!("user `{user}` does not exist (in /etc/passwd)")))?;
        identity.uid = Some(uid);
        identity.gid = primary;
        identity.groups = kelpie_sys::groups_of(&kelpie_sys::username(uid));
    }
    if let Some(group) = &spec.group {
        identity.gid = kelpie_sys::lookup_group(group)
            .ok_or_else(|| invalid(format!("group `{group}` does not exist (in /etc/group)")))?;
    }
    if !identity.groups.contains(&identity.gid) {
        identity.groups.push(identity.gid);
    }
    Ok(Some(identity))
}

/// Variables Kelpie adds to every app (they win over the app's own, as in PM2).
/// The environment an instance's process is given, but the variables of its process's own link
/// and socket: the inherited one (as `filter_env` leaves it), the config's over it, Kelpie's
/// variables over both; never Kelpie's control secrets.
pub(crate) fn environment(spec: &AppSpec, who: &InstanceIdentity<'_>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = spec
        .merged_env_pairs()
        .filter(|(name, _)| !kelpie_view::secrets::is_control_secret(name))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    env.extend(kelpie_variables(spec, who));
    env
}

fn kelpie_variables(spec: &AppSpec, who: &InstanceIdentity<'_>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = who
        .home
        .environment()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string_lossy().into_owned()))
        .collect();
    vars.extend([
        ("KELPIE_APP_NAME".to_string(), spec.name.clone()),
        ("pm_id".to_string(), who.pm_id.to_string()),
        ("name".to_string(), spec.name.clone()),
        ("namespace".to_string(), spec.namespace.clone()),
        (spec.instance_var.clone(), who.instance.to_string()),
    ]);
    // systemd's convention: libraries (sd_watchdog_enabled) ping only when this is set.
    if let Some(ms) = spec.watchdog_ms {
        vars.push(("WATCHDOG_USEC".to_string(), (ms * 1000).to_string()));
    }
    // PM2's increment_var: each instance gets the app's value plus its index (PORT 8000, 8001...).
    if let Some((var, value)) = spec.incremented_var(who.instance) {
        vars.push((var.to_string(), value.to_string()));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_options_get_the_shim_after_the_users_quoted() {
        assert_eq!(
            node_options_requiring("", "/home/k/node-shim.cjs"),
            r#"--require "/home/k/node-shim.cjs""#
        );
        assert_eq!(
            node_options_requiring("--max-old-space-size=512", "/my home/a\"b.cjs"),
            r#"--max-old-space-size=512 --require "/my home/a\"b.cjs""#
        );
    }

    fn command_for(spec: &AppSpec) -> Result<kelpie_sys::Spawn, SpawnError> {
        let home = Home::at("/nonexistent-kelpie-home".into());
        let who = InstanceIdentity {
            home: &home,
            pm_id: 0,
            instance: 0,
        };
        let extras = Extras {
            socket: None,
            env: Vec::new(),
            fds: Vec::new(),
            cgroup_dir: None,
            cgroup_procs: Vec::new(),
        };
        command(spec, &who, None, extras, &mut None)
    }

    #[test]
    fn a_program_found_in_path_is_used_again_for_the_same_name_and_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let (early, late) = (dir.path().join("early"), dir.path().join("late"));
        let install = |dir: &std::path::Path| {
            std::fs::create_dir_all(dir).expect("dir");
            let program = dir.join("prog");
            std::fs::write(&program, "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
            program
        };
        let in_late = install(&late);
        let path = format!("{}:{}", early.display(), late.display());
        let mut found = None;
        assert_eq!(
            find_program("prog", Some(&path), &mut found),
            Some(in_late.clone())
        );
        let in_early = install(&early);
        assert_eq!(
            find_program("prog", Some(&path), &mut found),
            Some(in_late.clone()),
            "kept: not searched again"
        );
        let other_path = format!("{path}:/nonexistent");
        assert_eq!(
            find_program("prog", Some(&other_path), &mut found),
            Some(in_early.clone()),
            "another PATH is searched"
        );
        assert_eq!(
            find_program("prog", Some(&path), &mut None),
            Some(in_early.clone()),
            "forgotten: searched again"
        );
        let named = in_late.display().to_string();
        assert_eq!(find_program(&named, Some(&path), &mut found), Some(in_late));
        assert!(found.is_none(), "a path is not searched for, nor kept");
        assert_eq!(find_program("no-such-prog", Some(&path), &mut found), None);
        assert!(found.is_none());
    }

    #[test]
    fn a_program_not_in_path_is_told_apart_with_the_text_it_always_had() {
        let spec = AppSpec {
            name: "missing".into(),
            script: "kelpie-no-such-program".into(),
            env: [("PATH".to_string(), "/nonexistent".to_string())].into(),
            ..AppSpec::default()
        };
        let error = command_for(&spec).err().expect("not found");
        assert!(
            matches!(&error, SpawnError::ProgramNotFound { program } if program == "kelpie-no-such-program"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "kelpie-no-such-program: `kelpie-no-such-program` not found in PATH"
        );
    }

    #[test]
    fn log_paths_follow_pm2_naming() {
        let home = Home::at("/h".into());
        let spec = AppSpec {
            name: "my api".into(),
            ..AppSpec::default()
        };
        let paths = log_paths(&home, &spec, 4);
        assert_eq!(
            (paths.out.as_str(), paths.err.as_str(), paths.combined),
            ("/h/logs/my-api-out.log", "/h/logs/my-api-error.log", None)
        );
        let many = AppSpec {
            instances: 2,
            ..spec.clone()
        };
        assert_eq!(log_paths(&home, &many, 4).out, "/h/logs/my-api-out-4.log");
        // As PM2 names them: one instance asked for, or one in cluster mode, is numbered too.
        let one_asked = AppSpec {
            instances_given: true,
            ..spec.clone()
        };
        assert_eq!(
            log_paths(&home, &one_asked, 0).out,
            "/h/logs/my-api-out-0.log"
        );
        let one_cluster = AppSpec {
            exec_mode: ExecMode::Cluster,
            ..spec.clone()
        };
        assert_eq!(
            log_paths(&home, &one_cluster, 3).err,
            "/h/logs/my-api-error-3.log"
        );
        let merged = AppSpec {
            merge_logs: true,
            ..many
        };
        assert_eq!(log_paths(&home, &merged, 4).out, "/h/logs/my-api-out.log");
        let custom = AppSpec {
            out_file: Some("/var/log/x.log".into()),
            error_file: Some("/dev/null".into()),
            instances: 2,
            ..spec
        };
        let paths = log_paths(&home, &custom, 1);
        assert_eq!(
            (paths.out.as_str(), paths.err.as_str()),
            ("/var/log/x-1.log", "/dev/null")
        );
        assert_eq!(paths.files().err, None, "a discarded stream has no file");
        let combined = AppSpec {
            log_file: Some(String::new()),
            ..AppSpec::default()
        };
        let mut combined = combined;
        combined.name = "w".into();
        assert_eq!(
            log_paths(&home, &combined, 0).combined.as_deref(),
            Some("/h/logs/w.log")
        );
        let disabled = AppSpec {
            disable_logs: true,
            ..combined
        };
        let paths = log_paths(&home, &disabled, 0);
        assert_eq!(
            paths.files(),
            LogFiles {
                out: None,
                err: None,
                combined: None
            }
        );
    }
}
