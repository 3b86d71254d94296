//! The composition root: a daemon's life from the outside. Set up the home, take the control
//! socket (new, handed over by `kelpie update`, or with what a keeper kept), start the services
//! (persister, log pipeline, cgroups, monitor, web server) and the supervisor, give it its apps,
//! serve the control socket until told to exit, then leave nothing behind. The supervisor
//! knows none of its faces (the control socket, the web server): they reach it through its
//! channel (`supervisor_channel.rs`), handed to them here.

use crate::logs::LogService;
use crate::monitor::Monitor;
use crate::persist::{self, Persister};
use crate::supervisor::{
    channels, conf_rotation, Foreground, ForegroundSetup, Inboxes, Resumed, Setup, Supervisor,
};
use crate::supervisor_channel::ClientServices;
use crate::web::WebControl;
use crate::{server, DaemonError};
use kelpie_proto::Home;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::UnixListener;

/// At exit, how long the background work (`crate::tasks::background`) may take to end.
const BACKGROUND_AT_EXIT: Duration = Duration::from_millis(200);

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
    let (mut supervisor, inboxes, faces, foreground_apps) =
        start_supervisor(&home, control, foreground, &mut resumed).await?;
    match foreground_apps {
        // The runtime's apps are the ones it was given: a state.json in its home (a daemon's,
        // or a runtime's killed with -9) is neither restored nor overwritten.
        Some(apps) => supervisor.start_foreground_apps(apps),
        None => resumed = supervisor.restore_state(resumed, crashed).await,
    }
    if crashed {
        faces
            .daemon
            .alerts
            .observe(crate::alerts::Observation::DaemonRestart {
                apps: supervisor.instance_count(),
            });
    }
    if let Some(resumed) = resumed {
        resumed.report(&home);
    }
    if options.resurrect_if_empty && supervisor.has_no_apps() {
        supervisor.resurrect_at_start();
    }
    crate::daemon_log!(
        "daemon v{} started (pid {}) for {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        home.root().display()
    );
    serve_until_exit(supervisor, inboxes, faces, listener, &home, &pid_file).await
}

/// What the clients reach the daemon by: the control socket's connections and the web server.
struct Faces {
    daemon: ClientServices,
    web: WebControl,
}

/// A supervisor started with its services, no app yet: what it runs on, its faces, and the
/// apps a runtime (`foreground`) was given to start, if it was.
type Started = (
    Supervisor,
    Inboxes,
    Faces,
    Option<Vec<kelpie_core::AppSpec>>,
);

/// Start the services the supervisor uses (persister, log pipeline, cgroups, resource
/// monitor), the supervisor itself and the web server.
async fn start_supervisor(
    home: &Home,
    control: std::os::fd::OwnedFd,
    foreground: Option<ForegroundSetup>,
    resumed: &mut Option<Resumed>,
) -> Result<Started, DaemonError> {
    let persister = Persister::start(home.clone(), persist::start_ticks_from_proc)
        .map_err(|source| DaemonError::io("cannot start the persister for", home.root(), source))?;
    let settings = read_settings(home).await;
    let conf_home = home.clone();
    let conf = crate::tasks::blocking(move || persist::load_conf(&conf_home))
        .await
        .unwrap_or_default();
    let toml_logs = settings.logs;
    let log_service = start_logs(home, conf_rotation(home, &conf, toml_logs), &foreground).await?;
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
    let alerts = crate::alerts::Alerts::default();
    alerts.load_inbox(home).await;
    alerts.start(settings.notify, home);
    let daemon = ClientServices {
        commands: outboxes.commands.clone(),
        logs: log_service.clone(),
        bus: bus.clone(),
        alerts: alerts.clone(),
    };
    let web = WebControl::start(home.clone(), daemon.clone());
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
        bus,
        alerts,
        platform: crate::instance::Platform::System,
        control,
        conf,
        toml_logs,
        foreground: foreground_mode,
    };
    let supervisor = Supervisor::new(setup, &outboxes);
    Ok((supervisor, inboxes, Faces { daemon, web }, foreground_apps))
}

/// Serve the control socket and supervise until told to exit; then write the last output,
/// let the keeper go, and remove the daemon's cgroups and files. Returns the code to exit
/// with.
async fn serve_until_exit(
    mut supervisor: Supervisor,
    inboxes: Inboxes,
    faces: Faces,
    listener: UnixListener,
    home: &Home,
    pid_file: &std::path::Path,
) -> Result<u8, DaemonError> {
    let Faces { daemon, web } = faces;
    let alerts = daemon.alerts.clone();
    let server = crate::tasks::spawn(server::serve(
        listener,
        home.clone(),
        server::Services { daemon, web },
    ));
    let cgroups = supervisor.cgroups().clone();
    let result = supervisor.run_until_exit(inboxes, home).await;
    // The apps are stopped: what they printed while stopping is written before exiting. The
    // socket still accepts meanwhile, so a `kill` that waits for it to go waits for this too.
    supervisor.finish_at_exit().await;
    alerts.save_now().await;
    // Exiting on purpose: the keeper must not read the pipes behind a next daemon's back.
    crate::keeper::dismiss().await;
    let _ = crate::tasks::blocking(move || cgroups.finish()).await;
    drop(server);
    // Collecting the exit of processes stopped last (the rest go to init with the daemon).
    crate::tasks::end_background(BACKGROUND_AT_EXIT).await;
    remove_own_files(home, pid_file);
    crate::link::remove_notify_socket_dir();
    crate::daemon_log!("daemon exited");
    result?;
    Ok(supervisor.exit_code())
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
) -> Result<(UnixListener, Option<Resumed>), DaemonError> {
    if let Some(handoff) = handoff {
        let (control, resumed) = Resumed::split(handoff);
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
    Ok((listener, reclaimed.map(Resumed::from_keeper)))
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
    crate::config_load::read_daemon_settings(home.settings_file())
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
) -> Result<(Foreground, Vec<kelpie_core::AppSpec>), DaemonError> {
    let ForegroundSetup { apps, options } = setup;
    let mode = Foreground::start(log_service, options.output).map_err(|source| {
        DaemonError::io(
            "cannot reap orphans (PR_SET_CHILD_SUBREAPER, SIGCHLD) for",
            home.root(),
            source,
        )
    })?;
    Ok((mode, apps))
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
