//! The control socket: accepts CLI connections, checks who they are, speaks the Hello
//! handshake, and passes each request to the supervisor.

mod answers;
mod errors;
mod frames;
mod inspecting;

use crate::gate::Gate;
use crate::supervisor_channel::ClientServices;
use answers::{dispatch, error, jlist, start_config, web_request};
use errors::Refused;
use frames::{read_frame, write_message, FrameProblem};
use kelpie_proto::{decode, ErrorKind, Hello, Request, Response, MAX_FRAME_LEN, PROTOCOL_VERSION};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// Bind the socket at `path` (mode 0600). A socket file with a live daemon behind it is an
/// error; a stale one (daemon killed) is replaced.
pub(crate) fn bind(path: &Path) -> Result<UnixListener, crate::DaemonError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(crate::DaemonError::AlreadyRunning(
                path.display().to_string(),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let io_error = |about, source| crate::DaemonError::io(about, path, source);
    let listener = UnixListener::bind(path).map_err(|e| io_error("cannot listen on", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| io_error("cannot restrict permissions of", e))?;
    Ok(listener)
}

/// The control socket handed over by the program this daemon replaced (`kelpie update`): still
/// listening at `path`, with the clients that connected meanwhile waiting in its backlog.
pub(crate) fn resume(
    fd: std::os::fd::OwnedFd,
    path: &Path,
) -> Result<UnixListener, crate::DaemonError> {
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(listener))
        .map_err(|source| crate::DaemonError::io("cannot go on listening on", path, source))
}

/// How often the daemon checks that its socket file is still there.
const SOCKET_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Accept connections forever. When the socket file disappears (the home was removed under
/// the running daemon), set the home up again and listen on a new socket at the same path, so
/// the CLI finds this daemon, with its apps, rather than starting a second, empty one.
pub(crate) async fn serve(
    mut listener: UnixListener,
    home: kelpie_proto::Home,
    services: Services,
) {
    let path = home.socket();
    let mut ours = socket_identity(&path).await;
    let mut check = tokio::time::interval(SOCKET_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let gate = Gate::for_this_process();
    let mut spare = Spare::open();
    // The connections end with this loop (aborted with the daemon's end).
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if spare.file.is_none() {
                        // Out of descriptors: an idle connection gives its one back.
                        gate.close_longest_idle();
                    }
                    let admitted = gate.admit();
                    let connection = handle_connection(stream, services.clone(), gate.clone(), admitted);
                    crate::tasks::spawn_into(&mut connections, connection);
                    spare.refill();
                }
                Err(e) if out_of_descriptors(&e) && spare.release() => {
                    // The spare descriptor is free now: the next accept takes the client, who
                    // is answered (`list`, `stop` and `kill` need no other descriptor).
                    crate::daemon_log!(
                        "out of descriptors ({e}): a client is answered with the one kept spare; raise the open-files limit (LimitNOFILE, ulimit -n)"
                    );
                }
                Err(e) => {
                    spare.report(&e);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = check.tick() => {
                match (socket_identity(&path).await, ours) {
                    (Some(now), Some(known)) if now == known => continue,
                    (Some(_), Some(_)) => {
                        crate::daemon_log!(
                            "{} is now another socket; this daemon no longer answers there",
                            path.display()
                        );
                        ours = None;
                        continue;
                    }
                    (Some(_), None) => continue,
                    (None, _) => {}
                }
                if let Some(new) = rebind(&home).await {
                    ours = socket_identity(&path).await;
                    let control = {
                        use std::os::fd::AsFd;
                        new.as_fd().try_clone_to_owned()
                    };
                    if let Ok(control) = control {
                        let _ = services.daemon.commands.send(crate::supervisor_channel::Command::ControlSocket(control)).await;
                    }
                    listener = new;
                }
            }
        }
    }
}

/// Device and inode of the socket file at `path`, if there is one.
async fn socket_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    tokio::fs::symlink_metadata(path)
        .await
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// The socket file is gone: create the home again and listen at its path. Said in the daemon
/// log either way; `None` while it cannot be done (tried again at the next check).
async fn rebind(home: &kelpie_proto::Home) -> Option<UnixListener> {
    let setup = home.clone();
    let prepared = crate::tasks::blocking(move || {
        crate::home_setup::prepare_home(&setup)?;
        // The daemon's log went with the home (when it writes there): write to a new one.
        let log_gone = kelpie_sys::stderr_is_removed(&setup.daemon_log());
        if let Some(log) = log_gone
            .then(|| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(setup.daemon_log())
            })
            .and_then(Result::ok)
        {
            use std::os::fd::AsFd;
            let _ = kelpie_sys::redirect_output(log.as_fd());
        }
        std::fs::write(setup.pid_file(), format!("{}\n", std::process::id()))
            .map_err(|source| crate::DaemonError::io("cannot write", &setup.pid_file(), source))
    })
    .await;
    let result = match prepared {
        Ok(Ok(())) => bind(&home.socket()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(crate::DaemonError::io(
            "cannot set up the kelpie home",
            home.root(),
            std::io::Error::other(e.to_string()),
        )),
    };
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match result {
        Ok(listener) => {
            REPORTED.store(false, std::sync::atomic::Ordering::Relaxed);
            crate::daemon_log!(
                "the control socket {} was removed (with the home?); set the home up again and listening there anew",
                home.socket().display()
            );
            Some(listener)
        }
        Err(e) => {
            if !REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                crate::daemon_log!(
                    "the control socket {} was removed and cannot be made again ({e}); retrying",
                    home.socket().display()
                );
            }
            None
        }
    }
}

/// Who may talk to this daemon: its own user, and root.
fn peer_allowed(stream: &UnixStream) -> Result<(), Refused> {
    let own = kelpie_sys::current_uid();
    match stream.peer_cred() {
        Ok(cred) if cred.uid() == own || cred.uid() == 0 => Ok(()),
        Ok(cred) => Err(Refused::OtherUser {
            own,
            peer: cred.uid(),
        }),
        Err(e) => Err(Refused::NoCredentials(e)),
    }
}

/// A descriptor kept open for the day the process has none left: closed to accept (and
/// answer) one client, then opened again. Without it, `accept` fails with EMFILE for ever and
/// every command, `kill` included, finds the daemon silent.
struct Spare {
    file: Option<std::fs::File>,
    /// An accept failure was logged and nothing was accepted since (said once, not every 50 ms).
    reported: bool,
}

impl Spare {
    fn open() -> Spare {
        Spare {
            file: std::fs::File::open("/dev/null").ok(),
            reported: false,
        }
    }

    /// Close the spare descriptor; false when it was already used.
    fn release(&mut self) -> bool {
        self.file.take().is_some()
    }

    /// After an accept: open the spare again if it was used (it fails while still out).
    fn refill(&mut self) {
        self.reported = false;
        if self.file.is_none() {
            self.file = std::fs::File::open("/dev/null").ok();
        }
    }

    /// An accept failure, in the daemon log once until an accept works again.
    fn report(&mut self, error: &std::io::Error) {
        if !self.reported {
            self.reported = true;
            crate::daemon_log!("accept failed: {error}");
        }
        if self.file.is_none() {
            self.file = std::fs::File::open("/dev/null").ok();
        }
    }
}

/// EMFILE (the process's limit) or ENFILE (the system's).
fn out_of_descriptors(error: &std::io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(error.raw_os_error(), Some(ENFILE | EMFILE))
}

/// What a connection's requests go to: the daemon's (the supervisor's mailbox, the log
/// pipeline, the event bus) and the web server's controller (`kelpie web`).
#[derive(Clone)]
pub(crate) struct Services {
    /// The daemon's.
    pub daemon: ClientServices,
    /// The web server's controller.
    pub web: crate::web::WebControl,
}

async fn handle_connection(
    mut stream: UnixStream,
    services: Services,
    gate: Gate,
    admitted: Option<crate::gate::Admitted>,
) {
    let Services {
        daemon:
            ClientServices {
                commands,
                logs,
                bus,
                alerts,
            },
        web,
    } = services;
    let Some(_admitted) = admitted else {
        // At the cap with no idle connection to close: said, then closed.
        let busy = format!(
            "the daemon serves {} connections already, all busy; try again",
            gate.max()
        );
        let _ = write_message(&mut stream, &crate::hello::daemon_hello()).await;
        let _ = write_message(&mut stream, &error(ErrorKind::Internal, busy)).await;
        return;
    };
    let refusal = peer_allowed(&stream).err();
    let hello = read_frame(&mut stream, &gate, crate::gate::MAX_HELLO_LEN, None);
    let Ok(Ok(body)) = tokio::time::timeout(crate::gate::HELLO_WAIT, hello).await else {
        return;
    };
    let peer_hello: Option<Hello> = decode(&body).ok();
    if write_message(&mut stream, &crate::hello::daemon_hello())
        .await
        .is_err()
    {
        return;
    }
    let mismatch = match &peer_hello {
        Some(hello) if hello.protocol == PROTOCOL_VERSION => None,
        Some(hello) => Some(format!(
            "the kelpie CLI (v{}, protocol {}) and this daemon (v{}, protocol {PROTOCOL_VERSION}) do not speak the same protocol; run `kelpie update` with the newest kelpie",
            hello.version,
            hello.protocol,
            env!("CARGO_PKG_VERSION")
        )),
        None => Some("the client did not start with a Hello; is it a kelpie CLI?".to_string()),
    };
    loop {
        let body = match read_frame(&mut stream, &gate, MAX_FRAME_LEN, Some(gate.idle())).await {
            Ok(body) => body,
            Err(FrameProblem::Closed | FrameProblem::Io) => return,
            Err(FrameProblem::Refused(why)) => {
                let _ = write_message(&mut stream, &error(ErrorKind::Invalid, why)).await;
                return;
            }
        };
        let (response, written) = if let Some(refused) = &refusal {
            (error(refused.kind(), refused.to_string()), None)
        } else if let Some(message) = &mismatch {
            (error(ErrorKind::VersionMismatch, message.clone()), None)
        } else {
            match decode::<Request>(&body) {
                Ok(Request::Logs(request)) => {
                    crate::follow::serve(&mut stream, &commands, &logs, request).await;
                    return;
                }
                Ok(Request::Events) => {
                    crate::bus::serve(&mut stream, &bus).await;
                    return;
                }
                Ok(Request::Inspect(request)) => {
                    inspecting::serve(&mut stream, &commands, request).await;
                    return;
                }
                Ok(Request::Trigger(request)) => {
                    (crate::trigger::trigger(&commands, &bus, request).await, None)
                }
                Ok(Request::Jlist(kelpie_proto::JlistRequest { show_secrets })) => jlist(show_secrets, &commands).await,
                // The monitor thread keeps it: the supervisor has no part in it.
                Ok(Request::Host) => (Response::Host(crate::host::latest()), None),
                Ok(Request::StartConfig(request)) => start_config(request, &commands).await,
                Ok(Request::Web(request)) => web_request(&web, request).await,
                Ok(Request::Notify(request)) => (crate::alerts::answer(&alerts, request).await, None),
                Ok(Request::Errors(request)) => (crate::alerts::errors_answer(&alerts, request).await, None),
                Ok(request) => dispatch(request, &commands).await,
                Err(e) => (
                    error(
                        ErrorKind::VersionMismatch,
                        format!(
                            "this daemon (v{}) does not understand that request ({e}); run `kelpie update` so CLI and daemon match",
                            env!("CARGO_PKG_VERSION")
                        ),
                    ),
                    None,
                ),
            }
        };
        let result = write_message(&mut stream, &response).await;
        let _ = stream.flush().await;
        if let Some(written) = written {
            let _ = written.send(());
        }
        if result.is_err() {
            return;
        }
    }
}
