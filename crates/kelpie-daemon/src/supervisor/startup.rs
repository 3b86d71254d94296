//! A daemon's life from the outside: set up the home, take the control socket (new, handed
//! over by `kelpie update`, or with what a keeper kept), start the services the supervisor
//! uses, restore the apps, serve until told to exit, then leave nothing behind.

use super::foreground::{self, ForegroundSetup};
use super::orphans::load_with_orphans;
use super::signals::Signals;
use super::{channels, conf, update, Inboxes, Setup, Supervisor, BACKGROUND_AT_EXIT, LOGS_AT_EXIT};
use crate::clock;
use crate::instance::InstanceMsg;
use crate::logs::LogService;
use crate::monitor::Monitor;
use crate::persist::{self, Persister};
use crate::state::StateFile;
use crate::{server, DaemonError};
use kelpie_core::Lifecycle;
use kelpie_proto::{Home, Response};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::net::UnixListener;
use tokio::sync::oneshot;

/// Set up the home, serve it, and supervise until told to exit. With `foreground`
/// (`kelpie runtime`): start these apps, hand their output over, reap orphans, and exit once
/// they have all ended. Returns the code to exit with.
pub(crate) async fn run(
    home: Home,
    options: crate::DaemonOptions,
    foreground: Option<ForegroundSetup>,
    handoff: Option<crate::update::Handoff>,
) -> Result<u8, DaemonError> {
    prepare_home(&home).await?;
    // Read before this daemon's pid replaces it.
    let crashed = handoff.is_none() && foreground.is_none() && last_daemon_died(&home).await;
    let (listener, mut resumed) = take_control_socket(&home, handoff, foreground.is_some()).await?;
    if foreground.is_none() {
        crate::keeper::start(&home);
        // Notify sockets handed over before the keeper ran.
        crate::link::keep_notify_sockets();
    }
    let control = {
        use std::os::fd::AsFd;
        listener.as_fd().try_clone_to_owned()
    }
    .map_err(|source| {
        DaemonError::io("cannot keep a second descriptor of", &home.socket(), source)
    })?;
    let pid_file = write_pid_file(&home).await;
    let (mut supervisor, inboxes, foreground_apps) =
        start_supervisor(&home, control, foreground, &mut resumed).await?;
    match foreground_apps {
        // The runtime's apps are the ones it was given: a state.json in its home (a daemon's,
        // or a runtime's killed with -9) is neither restored nor overwritten.
        Some(apps) => foreground::start_foreground_apps(&mut supervisor, apps),
        None => resumed = restore_state(&mut supervisor, resumed, crashed).await,
    }
    if let Some(resumed) = resumed {
        resumed.report(&supervisor.services.home);
    }
    if options.resurrect_if_empty && supervisor.apps.is_empty() {
        resurrect_at_start(&mut supervisor);
    }
    crate::daemon_log!(
        "daemon v{} started (pid {}) for {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        home.root().display()
    );
    serve_until_exit(supervisor, inboxes, listener, &home, &pid_file).await
}

/// Start the services the supervisor uses (persister, log pipeline, cgroups, web server,
/// resource monitor) and the supervisor itself, with no app yet. Gives the apps a runtime
/// (`foreground`) was given to start, if it was.
async fn start_supervisor(
    home: &Home,
    control: std::os::fd::OwnedFd,
    foreground: Option<ForegroundSetup>,
    resumed: &mut Option<update::Resumed>,
) -> Result<(Supervisor, Inboxes, Option<Vec<kelpie_core::AppSpec>>), DaemonError> {
    let persister = Persister::start(home.clone(), persist::start_ticks_from_proc)
        .map_err(|source| DaemonError::io("cannot start the persister for", home.root(), source))?;
    let settings = read_settings(home).await;
    let conf_home = home.clone();
    let conf = crate::tasks::blocking(move || persist::load_conf(&conf_home))
        .await
        .unwrap_or_default();
    let toml_logs = settings.logs;
    let log_service = start_logs(home, conf::rotation(home, &conf, toml_logs), &foreground).await?;
    let (foreground_mode, foreground_apps) = match foreground {
        Some(setup) => {
            let (mode, apps) = start_foreground(home, &log_service, setup)?;
            (Some(mode), Some(apps))
        }
        None => (None, None),
    };
    let (outboxes, inboxes) = channels();
    let cgroups = match resumed.as_mut().map(|r| r.cgroups.take()) {
        Some(Some(handed)) => crate::cgroups::Cgroups::resume(handed),
        _ => crate::tasks::blocking(crate::cgroups::Cgroups::setup)
            .await
            .unwrap_or_default(),
    };
    let bus = crate::bus::Bus::default();
    let web = crate::web::WebControl::start(
        home.clone(),
        server::Services {
            commands: outboxes.commands.clone(),
            logs: log_service.clone(),
            bus: bus.clone(),
        },
    );
    if let Some(settings) = settings.web {
        web.serve_at_start(settings);
    }
    let readings = outboxes.readings.clone();
    let monitor = Monitor::start(
        crate::monitor::SAMPLE_EVERY,
        cgroups.clone(),
        readings,
        crate::host::HostSampler::new(home.root()),
    )
    .map_err(|source| {
        DaemonError::io("cannot start the resource monitor for", home.root(), source)
    })?;
    let setup = Setup {
        home: home.clone(),
        persister,
        logs: log_service,
        monitor,
        cgroups,
        web,
        bus,
        platform: crate::instance::Platform::System,
        control,
        conf,
        toml_logs,
        foreground: foreground_mode,
    };
    Ok((Supervisor::new(setup, &outboxes), inboxes, foreground_apps))
}

/// Serve the control socket and supervise until told to exit; then write the last output,
/// let the keeper go, and remove the daemon's cgroups and files. Returns the code to exit
/// with.
async fn serve_until_exit(
    mut supervisor: Supervisor,
    inboxes: Inboxes,
    listener: UnixListener,
    home: &Home,
    pid_file: &std::path::Path,
) -> Result<u8, DaemonError> {
    let server = crate::tasks::spawn(server::serve(
        listener,
        home.clone(),
        server::Services {
            commands: supervisor.services.commands.clone(),
            logs: supervisor.services.logs.clone(),
            bus: supervisor.services.bus.clone(),
        },
    ));
    let cgroups = supervisor.services.cgroups.clone();
    let result = match Signals::install(home) {
        Ok(signals) => supervisor.run(inboxes, signals).await,
        Err(e) => Err(e),
    };
    // What the handlers still waited for (a watch's bursts, a client gone) ends here.
    supervisor.pending.end().await;
    // The apps are stopped: write what they printed while stopping before exiting. The socket
    // still accepts meanwhile, so a `kill` that waits for it to go waits for this too.
    supervisor.services.logs.finish(LOGS_AT_EXIT).await;
    if let Some(foreground) = supervisor.foreground.as_mut() {
        foreground.finish_output(&supervisor.services.logs).await;
    }
    // Exiting on purpose: the keeper must not read the pipes behind a next daemon's back.
    crate::keeper::dismiss().await;
    let _ = crate::tasks::blocking(move || cgroups.finish()).await;
    drop(server);
    // Collecting the exit of processes stopped last (the rest go to init with the daemon).
    crate::tasks::end_background(BACKGROUND_AT_EXIT).await;
    remove_own_files(home, pid_file);
    crate::daemon_log!("daemon exited");
    result?;
    Ok(supervisor.foreground.as_ref().map_or(0, |f| f.exit_code))
}

/// The home's directories and files, on the blocking pool like every other file access.
async fn prepare_home(home: &Home) -> Result<(), DaemonError> {
    let setup_home = home.clone();
    crate::tasks::blocking(move || crate::home_setup::prepare_home(&setup_home))
        .await
        .map_err(|e| {
            DaemonError::io(
                "cannot set up the kelpie home",
                home.root(),
                std::io::Error::other(e.to_string()),
            )
        })?
}

/// The control socket: the one `kelpie update`'s previous program handed over, or a new one,
/// then (only once it is ours, so no other daemon can take the keeper's too) what the keeper
/// of a daemon that died kept. A foreground runtime has no keeper.
async fn take_control_socket(
    home: &Home,
    handoff: Option<crate::update::Handoff>,
    foreground: bool,
) -> Result<(UnixListener, Option<update::Resumed>), DaemonError> {
    if let Some(handoff) = handoff {
        let (control, resumed) = update::Resumed::split(handoff);
        return Ok((server::resume(control, &home.socket())?, Some(resumed)));
    }
    let listener = server::bind(&home.socket())?;
    if foreground {
        return Ok((listener, None));
    }
    let keeper_home = home.clone();
    let reclaimed = crate::tasks::blocking(move || crate::reclaim::reclaim(&keeper_home))
        .await
        .ok()
        .flatten();
    Ok((listener, reclaimed.map(update::Resumed::from_keeper)))
}

/// Whether the last daemon of this home died (killed, crashed) rather than exited: its pid
/// file, which it removes when it exits, is still there. Its apps' processes may then still
/// run, some of them described by nothing it left (see `unrecorded`).
async fn last_daemon_died(home: &Home) -> bool {
    let pid_file = home.pid_file();
    crate::tasks::blocking(move || std::fs::read_to_string(pid_file))
        .await
        .ok()
        .and_then(Result::ok)
        .and_then(|text| text.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id())
}

/// Write the daemon's pid where the home (or `KELPIE_PID_FILE`) says; returns that path.
async fn write_pid_file(home: &Home) -> PathBuf {
    let pid_file = home.pid_file();
    let pid_path = pid_file.clone();
    let _ = crate::tasks::blocking(move || {
        std::fs::write(pid_path, format!("{}\n", std::process::id()))
    })
    .await;
    pid_file
}

/// `kelpie.toml`. Apps must still start at boot when it has a typo: defaults, said loudly.
async fn read_settings(home: &Home) -> kelpie_config::DaemonSettings {
    super::logs::read_settings(home.settings_file())
        .await
        .unwrap_or_else(|e| {
            crate::daemon_log!("{e}; using the built-in log rotation defaults");
            kelpie_config::DaemonSettings::default()
        })
}

/// The log pipeline, without files for a runtime told so; a background daemon's own log
/// (its stderr, where the CLI points it) rotates like the apps'.
async fn start_logs(
    home: &Home,
    defaults: kelpie_config::LogDefaults,
    foreground: &Option<ForegroundSetup>,
) -> Result<LogService, DaemonError> {
    // Starting it waits for its thread's runtime: off the async thread.
    let log_service = crate::tasks::blocking(move || LogService::start(defaults))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|started| started)
        .map_err(|source| {
            DaemonError::io("cannot start the log pipeline for", home.root(), source)
        })?;
    Ok(match foreground {
        Some(setup) if !setup.options.files => log_service.without_files(),
        Some(_) => log_service,
        None => {
            log_service.rotate_daemon_log(home.daemon_log());
            log_service
        }
    })
}

/// `kelpie runtime`'s side: its output handed over as told, and orphans reaped (the runtime
/// may be PID 1). Gives back the apps to start.
fn start_foreground(
    home: &Home,
    log_service: &LogService,
    setup: ForegroundSetup,
) -> Result<(foreground::Foreground, Vec<kelpie_core::AppSpec>), DaemonError> {
    let ForegroundSetup { apps, options } = setup;
    let mode = foreground::Foreground::start(log_service, options.output).map_err(|source| {
        DaemonError::io(
            "cannot reap orphans (PR_SET_CHILD_SUBREAPER, SIGCHLD) for",
            home.root(),
            source,
        )
    })?;
    Ok((mode, apps))
}

/// Restore `state.json`'s apps, adopting what was `resumed` and stopping orphans that hold a
/// port first (blocking work, on the pool). Gives back what is left of `resumed`.
async fn restore_state(
    supervisor: &mut Supervisor,
    mut resumed: Option<update::Resumed>,
    crashed: bool,
) -> Option<update::Resumed> {
    let restore_home = supervisor.services.home.clone();
    let loaded = crate::tasks::blocking(move || {
        let loaded = load_with_orphans(&restore_home, resumed.as_mut(), crashed);
        (loaded, resumed)
    })
    .await;
    let (loaded, mut resumed) = loaded.unwrap_or((None, None));
    if let Some((state, orphans)) = loaded {
        supervisor.restore(state, &orphans, resumed.as_mut());
    }
    resumed
}

/// Remove the pid file, then the socket. The pid file goes first: a CLI waiting for the socket
/// to disappear may start the next daemon at once, and that one's pid file must not be removed
/// by us.
fn remove_own_files(home: &Home, pid_file: &std::path::Path) {
    if std::fs::read_to_string(pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string()) {
        let _ = std::fs::remove_file(pid_file);
    }
    let _ = std::fs::remove_file(home.socket());
}

/// Bring back the saved list through the same path as `kelpie resurrect`, and log how it went.
fn resurrect_at_start(supervisor: &mut Supervisor) {
    let (reply, answer) = oneshot::channel();
    super::requests::handle(supervisor, kelpie_proto::Request::Resurrect, reply);
    supervisor.pending.spawn(async move {
        match answer.await.map(|r| r.response) {
            Ok(Response::Started { outcomes, .. }) => crate::daemon_log!(
                "no app was left from the last daemon: brought back the {} saved in the dump",
                outcomes.len()
            ),
            Ok(Response::Error(e)) => {
                crate::daemon_log!("no app was left from the last daemon, and {}", e.message)
            }
            _ => {}
        }
        super::Back::Nothing
    });
}

impl Supervisor {
    fn restore(
        &mut self,
        state: StateFile,
        orphans: &BTreeMap<u32, u32>,
        mut resumed: Option<&mut update::Resumed>,
    ) {
        self.apps.number_from(state.next_id);
        if let Some(resumed) = resumed.as_deref_mut() {
            let (claimed, sockets) = resumed.take_sockets();
            self.ports.resume(&state, claimed, sockets);
        }
        let now = clock::now();
        let mut to_start = Vec::new();
        let mut adopted = Vec::new();
        for app in state.apps {
            let run = app.run;
            let pm_id = app.pm_id;
            let handed = resumed
                .as_deref_mut()
                .map(|r| r.take(pm_id))
                .unwrap_or_default();
            let socket = match self.ports.open(&app.spec) {
                Ok(socket) => socket,
                Err(e) => {
                    crate::daemon_log!("{e}; its instances start without it");
                    None
                }
            };
            if let Some(socket) = &socket {
                self.ports.keep(&app.spec.name, Some(socket.clone()));
            }
            let mut app = app;
            self.apps.share_inherited_env(&mut app.spec);
            if let Some(state) = handed
                .process
                .as_ref()
                .and_then(|_| app.state.clone().adopted(now))
            {
                // Handed over running: it goes on, nothing is started.
                adopted.push(app.spec.name.clone());
                self.add_entry(pm_id, app.instance, app.spec, state, socket, handed);
                continue;
            }
            // Handed over but not online in the state (which should not happen): stopped before
            // anything else, never run twice.
            let orphan_group = match &handed.process {
                Some(process) => {
                    crate::daemon_log!(
                        "update: process {} of id {pm_id} was handed over but its state is not online; stopping it",
                        process.pid
                    );
                    Some(process.pid)
                }
                None => orphans.get(&pm_id).copied(),
            };
            // After an update, an errored app stays errored, and a restart that was waiting goes
            // on from where it was (its backoff kept).
            use kelpie_core::Status;
            let keep = matches!(app.state.status, Status::WaitingRestart | Status::Errored);
            let state = if resumed.is_some() && keep {
                let mut state = app.state;
                state.pid = None;
                state
            } else {
                app.state.restored()
            };
            let waiting = state.status == Status::WaitingRestart;
            let inherited = update::Inherited {
                orphan_group,
                process: None,
                pipes: handed.pipes,
                restart_in: handed.restart_in,
            };
            self.add_entry(pm_id, app.instance, app.spec, state, socket, inherited);
            // A waiting restart happens when its wait ends (its task arms the timer).
            if run && !waiting {
                to_start.push(pm_id);
            }
        }
        // Apps that depend on others start once those are up, as at `start`.
        let in_flight: std::collections::BTreeSet<u32> = to_start.iter().copied().collect();
        let mut gated: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for pm_id in to_start {
            match self.apps.get(pm_id) {
                Some(entry) if !entry.spec.depends_on.is_empty() => {
                    gated
                        .entry(entry.spec.name.clone())
                        .or_default()
                        .push(pm_id);
                }
                _ => self
                    .apps
                    .send(pm_id, InstanceMsg::Lifecycle(Lifecycle::Start, None)),
            }
        }
        for ids in gated.into_values() {
            drop(self.after_dependencies(ids, Lifecycle::Start, &in_flight));
        }
        let started: std::collections::BTreeSet<String> = in_flight
            .iter()
            .filter_map(|id| self.apps.get(*id).map(|e| e.spec.name.clone()))
            .chain(adopted)
            .collect();
        for name in started {
            drop(self.watches.ensure(&name, &self.apps));
        }
        crate::daemon_log!(
            "restored {} instances from {}",
            self.apps.len(),
            self.services.home.state_file().display()
        );
    }
}
