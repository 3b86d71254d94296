//! Talking to the daemon: connect (starting it on first use), Hello, one request at a time.

use crate::exit::{failed, Status};
use anyhow::{anyhow, bail, Context, Result};
use kelpie_proto::{
    decode, read_frame, write_frame, Hello, Home, Request, Response, PROTOCOL_VERSION,
};
use std::fs::OpenOptions;
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new daemon may take to answer.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to answer the Hello. Commands themselves have no timeout (a stop
/// may rightly wait for a long `kill_timeout`), but a daemon that does not even greet is stuck.
const HELLO_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a connection reset during the handshake is tried again.
const RESET_RETRY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the daemon kept for the next command (a recovery at its start), on stderr, once: the
/// file is taken (renamed) before it is read, so two commands at once do not both show it.
fn show_notices(home: &Home) {
    let file = home.notices_file();
    let taken = file.with_extension(format!("shown-{}", std::process::id()));
    if std::fs::rename(&file, &taken).is_err() {
        return;
    }
    let text = std::fs::read_to_string(&taken).unwrap_or_default();
    let _ = std::fs::remove_file(&taken);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("kelpie: notice: {line}");
    }
}

/// A connection to the daemon, after the Hello exchange.
pub(crate) struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connect to the daemon of `home`, starting it if none answers. A connection reset or
    /// closed during the handshake (a daemon replacing its socket, one that lost a race to
    /// start, went away while starting, or was killed and is still exiting: its threads hold
    /// the listening socket for a while after its main thread is gone) is tried again, for up
    /// to `RESET_RETRY_TIMEOUT`.
    pub(crate) fn connect_or_start(home: &Home) -> Result<Client> {
        let deadline = Instant::now() + RESET_RETRY_TIMEOUT;
        let connected = loop {
            match Client::connect_or_start_once(home) {
                Err(e) if was_reset(&e) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                other => break other,
            }
        };
        // Whatever went wrong here, the daemon could not be reached (the exit status says so).
        connected.map_err(|e| match crate::exit::status_of(&e) {
            Status::Failure => failed(Status::Unreachable, format!("{e:#}")),
            _ => e,
        })
    }

    fn connect_or_start_once(home: &Home) -> Result<Client> {
        match Client::connect(home)? {
            Some(client) => Ok(client),
            None => {
                if let Some(client) = wait_for_running_daemon(home)? {
                    return Ok(client);
                }
                start_daemon(home)?;
                Client::connect(home)?.ok_or_else(|| {
                    anyhow!(
                        "the daemon started but does not answer on {}",
                        home.socket().display()
                    )
                })
            }
        }
    }

    /// Connect to the daemon of `home` if one answers.
    pub(crate) fn connect(home: &Home) -> Result<Option<Client>> {
        let socket = home.socket();
        let stream = match UnixStream::connect(&socket) {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                let owner = std::fs::metadata(home.root())
                    .map(|m| format!(" (it belongs to uid {})", m.uid()))
                    .unwrap_or_default();
                return Err(failed(Status::Permission, format!(
                    "permission denied: cannot reach the daemon at {}: the kelpie home {}{owner} is not yours; use your own (KELPIE_HOME), or run kelpie as its owner",
                    socket.display(),
                    home.root().display()
                )));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot connect to the daemon at {}", socket.display())
                })
            }
        };
        let mut client = Client { stream };
        client.hello(home)?;
        show_notices(home);
        Ok(Some(client))
    }

    fn hello(&mut self, home: &Home) -> Result<()> {
        self.stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
        write_frame(&mut self.stream, &Hello::current()).context("cannot greet the daemon")?;
        let body = read_frame(&mut self.stream).map_err(|e| match e {
            kelpie_proto::FrameError::Io(io)
                if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                anyhow!(
                    "the daemon at {} does not answer (no reply within {} s); see {} or stop it (its pid is in {})",
                    home.socket().display(),
                    HELLO_TIMEOUT.as_secs(),
                    home.daemon_log().display(),
                    home.pid_file().display()
                )
            }
            other => anyhow!(other).context("the daemon closed the connection during the handshake"),
        })?;
        self.stream.set_read_timeout(None)?;
        let daemon: Hello = decode(&body).map_err(|_| {
            anyhow!("the process on the kelpie socket does not speak kelpie's protocol; stop it, or use another KELPIE_HOME")
        })?;
        if daemon.protocol != PROTOCOL_VERSION {
            bail!(
                "the running daemon is kelpie v{} (protocol {}) and this CLI is v{} (protocol {PROTOCOL_VERSION}); run `kelpie update` to replace the daemon by this version in place (the apps keep running)",
                daemon.version,
                daemon.protocol,
                env!("CARGO_PKG_VERSION")
            );
        }
        if daemon.version != env!("CARGO_PKG_VERSION") && std::io::stderr().is_terminal() {
            eprintln!(
                "kelpie: note: the daemon runs v{}, this CLI is v{}; `kelpie update` replaces it by this version in place",
                daemon.version,
                env!("CARGO_PKG_VERSION")
            );
        }
        Ok(())
    }

    /// Send one request and read its response.
    pub(crate) fn request(&mut self, request: &Request) -> Result<Response> {
        self.send(request)?;
        self.receive()
    }

    /// Send a request whose answer comes as several responses (`logs`).
    pub(crate) fn send(&mut self, request: &Request) -> Result<()> {
        write_frame(&mut self.stream, request).context("cannot send the request to the daemon")
    }

    /// Read the next response.
    pub(crate) fn receive(&mut self) -> Result<Response> {
        let body = read_frame(&mut self.stream)
            .context("the daemon closed the connection before answering")?;
        decode(&body).map_err(|e| anyhow!("cannot understand the daemon's answer ({e}); run `kelpie update` so CLI and daemon match"))
    }
}

/// How long a daemon whose socket file is gone has to make it again (it checks every 250 ms).
const SOCKET_BACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `error` comes from a connection the daemon reset, or closed before reading the
/// greeting (a Unix socket then fails the write with EPIPE: a listener that went away with the
/// connection still in its backlog).
fn was_reset(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        })
    })
}

/// No daemon answers on the socket, but a daemon of this home may still run: its home (and so
/// its socket file) was removed under it, and it is making them again. Starting a second daemon
/// then would leave the first one's apps running out of reach: wait for it instead. `None` when
/// no such daemon runs (or it exited meanwhile): start one.
fn wait_for_running_daemon(home: &Home) -> Result<Option<Client>> {
    let Some(pid) = running_daemon_of(home) else {
        return Ok(None);
    };
    let deadline = Instant::now() + SOCKET_BACK_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(client) = Client::connect(home)? {
            return Ok(Some(client));
        }
        // Gone, or exited and not reaped yet (a zombie has no command line).
        if running_daemon_of(home) != Some(pid) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "a kelpie daemon (pid {pid}) runs for {} but does not answer on {}; see {} or stop it",
        home.root().display(),
        home.socket().display(),
        home.daemon_log().display()
    )
}

/// The pid of a `kelpie daemon` process started for `home` (its environment names it), other
/// than this process and the keeper.
fn running_daemon_of(home: &Home) -> Option<u32> {
    let marker = format!("{}={}", kelpie_proto::HOME_ENV, home.root().display());
    let own = std::process::id();
    kelpie_sys::all_pids().into_iter().find(|pid| {
        if *pid == own {
            return false;
        }
        let Some(args) = kelpie_sys::process_arguments(*pid) else {
            return false;
        };
        // A daemon's keeper outlives a daemon killed with -9: it is no daemon to wait for.
        if args.get(1).map(String::as_str) != Some("daemon") || args.iter().any(|a| a == "--keeper")
        {
            return false;
        }
        kelpie_sys::process_environment(*pid)
            .is_some_and(|environment| environment.iter().any(|var| var == marker.as_bytes()))
    })
}

/// Run as `pm2`, Kelpie's files have PM2's names in PM2's home: a PM2 daemon still running
/// there would share its pid file and dump with Kelpie's. Its socket answering says it runs.
pub(crate) fn refuse_a_home_pm2_runs_in(home: &Home) -> Result<()> {
    let pm2_socket = home.root().join("rpc.sock");
    if home.names() == kelpie_proto::FileNames::Pm2 && UnixStream::connect(&pm2_socket).is_ok() {
        bail!(
            "a PM2 daemon runs in {} (its socket {} answers): stop it with PM2 (`pm2 kill`), or give Kelpie a home of its own (KELPIE_HOME)",
            home.root().display(),
            pm2_socket.display()
        );
    }
    Ok(())
}

/// Start `kelpie daemon` for `home`, detached, and wait until it answers. The home and the
/// daemon's log are created here first, so a home we cannot write to is reported clearly.
fn start_daemon(home: &Home) -> Result<()> {
    refuse_a_home_pm2_runs_in(home)?;
    // Checked before anything is made or opened there (the daemon checks again).
    if let Err(refused) = kelpie_sys::check_owned_path(home.root()) {
        bail!(
            "refusing the kelpie home {}: {refused}. Another user could replace what the daemon runs (the Node shim every Node app loads, kelpie.toml); use a home of your own (KELPIE_HOME, or run `sudo -H` so that root's home is used)",
            home.root().display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home.root())
        .with_context(|| format!("cannot create the kelpie home {}", home.root().display()))?;
    let log_path = home.daemon_log();
    let mut log = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot write to the kelpie home {}", home.root().display()))?;
    let log_start = log.seek(SeekFrom::End(0)).unwrap_or(0);
    let exe =
        std::env::current_exe().context("cannot find the kelpie executable to start the daemon")?;
    let mut command = Command::new(exe);
    command
        .arg("daemon")
        .envs(home.environment())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    kelpie_sys::detach_into_new_session(&mut command);
    let mut child = command.spawn().context("cannot start the kelpie daemon")?;

    let deadline = Instant::now() + DAEMON_START_TIMEOUT;
    while Instant::now() < deadline {
        if UnixStream::connect(home.socket()).is_ok() {
            // The daemon is on its own now (its own session); dropping the handle leaves it running.
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut output = String::new();
            let _ = log.seek(SeekFrom::Start(log_start));
            let _ = log.read_to_string(&mut output);
            bail!(
                "the kelpie daemon exited at start ({status}): {}",
                output.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!(
        "the kelpie daemon did not answer within {}s; see {}",
        DAEMON_START_TIMEOUT.as_secs(),
        log_path.display()
    )
}
