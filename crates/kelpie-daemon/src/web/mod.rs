//! The daemon's HTTP side: the web page, the JSON API, live updates (server-sent events) and
//! Prometheus `/metrics`, served with hyper (HTTP/1) on the daemon's own runtime.
//!
//! The API is a transport like the control socket: every operation is a `Request` sent to the
//! supervisor as `Command::Request`, exactly as the CLI's are, and its `Response` is turned into
//! JSON. Logs come from the log pipeline's hub through the same code as `kelpie logs`
//! (`crate::follow`). Nothing here touches the app table.
//!
//! One controller task ([`WebControl`]) owns the server: it starts it from `[web]` in
//! `kelpie.toml` when the daemon starts, and (re)starts or stops it for `kelpie web`, one request
//! at a time, so two `kelpie web` never race for the port.

mod api;
mod body;
mod metrics;
mod patient;

use crate::logs::LogService;
use crate::supervisor_channel::{Command, Reply};
use body::Body;
use bytes::Bytes;
use kelpie_config::WebSettings;
use kelpie_proto::{ErrorKind, Home, Response, WebRequest, WireError};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;
/// A client has this long to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

enum ControlMsg {
    AtStart(WebSettings),
    Apply(WebRequest, oneshot::Sender<Reply>),
}

/// A handle on the web server's controller task, which ends with the last handle (and with the
/// task, the server and its connections): the start-up holds one, the control socket's
/// connections (`kelpie web`) theirs.
#[derive(Clone)]
pub(crate) struct WebControl {
    tx: mpsc::UnboundedSender<ControlMsg>,
    _controller: Arc<crate::tasks::Owned<()>>,
}

/// What every connection needs.
struct Shared {
    commands: mpsc::Sender<Command>,
    logs: LogService,
    /// The event bus (`trigger` waits for the replies on it).
    bus: crate::bus::Bus,
    /// The notifications and the exception inbox (`/metrics`, `/api/errors`).
    alerts: crate::alerts::Alerts,
    access: Access,
    /// Bound to a loopback address: requests must name a loopback host (DNS rebinding).
    loopback: bool,
    /// The live streams' slots (`api::MAX_STREAMS`).
    streams: Arc<Semaphore>,
    /// Other machines' daemons the page shows (`[[web.hosts]]`), with their tokens.
    hosts: Arc<[kelpie_config::WebHost]>,
}

/// Which calls need which token.
#[derive(Clone)]
enum Access {
    /// A token was configured (`[web] token`, `kelpie web --token`): every call but the page
    /// and the API's description needs it.
    Configured(String),
    /// None was: every call needs the token of `<home>/web.token` (on loopback only).
    Stored(String),
    /// None, and `open_loopback`: nothing needs one (on loopback only).
    Open,
}

impl Access {
    /// The token calls must carry (some or all of them).
    fn token(&self) -> Option<&str> {
        match self {
            Access::Configured(token) | Access::Stored(token) => Some(token),
            Access::Open => None,
        }
    }
}

/// The server that runs now.
struct Running {
    addr: SocketAddr,
    access: Access,
    /// Accepts connections and owns them: they end with it.
    accept: crate::tasks::Owned<()>,
}

impl Running {
    async fn stop(self) {
        self.accept.abort();
        // Once the task has ended, its listener is closed and the port free again.
        let _ = self.accept.await;
    }
}

impl WebControl {
    /// Start the controller (serving nothing yet).
    pub(crate) fn start(
        home: Home,
        daemon: crate::supervisor_channel::ClientServices,
    ) -> WebControl {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let controller = crate::tasks::spawn(async move {
            let mut running: Option<Running> = None;
            while let Some(msg) = rx.recv().await {
                match msg {
                    ControlMsg::AtStart(settings) => {
                        match serve(&home, &settings, &mut running, &daemon).await {
                            Ok(message) => crate::daemon_log!("{message}"),
                            Err(e) => crate::daemon_log!("web: {}", e.message),
                        }
                    }
                    ControlMsg::Apply(request, reply) if request.show_token => {
                        let response = match running.as_ref().map(|r| &r.access) {
                            Some(access) => match access.token() {
                                Some(token) => Response::Done(token.to_string()),
                                None => Response::Error(failure(
                                    ErrorKind::NotFound,
                                    "the web server runs without a token (`open_loopback`)".into(),
                                )),
                            },
                            None => Response::Error(failure(
                                ErrorKind::NotFound,
                                "the web server is not running; start it with `kelpie web`".into(),
                            )),
                        };
                        let _ = reply.send(Reply {
                            response,
                            written: None,
                        });
                    }
                    ControlMsg::Apply(request, reply) => {
                        let response = match apply(&home, request, &mut running, &daemon).await {
                            Ok(message) => {
                                crate::daemon_log!("{message}");
                                Response::Done(message)
                            }
                            Err(error) => Response::Error(error),
                        };
                        let _ = reply.send(Reply {
                            response,
                            written: None,
                        });
                    }
                }
            }
        });
        WebControl {
            tx,
            _controller: Arc::new(controller),
        }
    }

    /// Serve what `[web]` says (a failure is written to the daemon's log).
    pub(crate) fn serve_at_start(&self, settings: WebSettings) {
        let _ = self.tx.send(ControlMsg::AtStart(settings));
    }

    /// `kelpie web`: (re)start or stop serving, then answer.
    pub(crate) fn apply(&self, request: WebRequest, reply: oneshot::Sender<Reply>) {
        if let Err(mpsc::error::SendError(ControlMsg::Apply(_, reply))) =
            self.tx.send(ControlMsg::Apply(request, reply))
        {
            let _ = reply.send(Reply {
                response: Response::Error(failure(
                    ErrorKind::Internal,
                    "the web server's controller has stopped".into(),
                )),
                written: None,
            });
        }
    }
}

fn failure(kind: ErrorKind, message: String) -> WireError {
    WireError { kind, message }
}

/// `kelpie web`: the request's settings over `kelpie.toml`'s over the defaults.
async fn apply(
    home: &Home,
    request: WebRequest,
    running: &mut Option<Running>,
    daemon: &crate::supervisor_channel::ClientServices,
) -> Result<String, WireError> {
    if request.stop {
        return Ok(match running.take() {
            Some(current) => {
                let addr = current.addr;
                current.stop().await;
                format!("stopped serving http://{addr}/")
            }
            None => "the web server was not running".to_string(),
        });
    }
    let path = home.settings_file();
    let file = crate::tasks::blocking(move || kelpie_config::DaemonSettings::load(&path))
        .await
        .map_err(|e| failure(ErrorKind::Internal, e.to_string()))?
        .map_err(|e| failure(ErrorKind::Invalid, e.to_string()))?;
    let base = file.web.unwrap_or_default();
    // `kelpie web --open-loopback` asks for no token: `[web]`'s is not used then.
    let token = match request.open_loopback {
        true => request.token,
        false => request.token.or(base.token),
    };
    let settings = WebSettings {
        port: request.port.unwrap_or(base.port),
        host: request.host.unwrap_or(base.host),
        open_loopback: request.open_loopback || (base.open_loopback && token.is_none()),
        token,
        hosts: base.hosts,
    };
    serve(home, &settings, running, daemon).await
}

/// Serve `settings`, replacing the server that runs (if any).
async fn serve(
    home: &Home,
    settings: &WebSettings,
    running: &mut Option<Running>,
    daemon: &crate::supervisor_channel::ClientServices,
) -> Result<String, WireError> {
    let addr = settings
        .socket_addr()
        .map_err(|e| failure(ErrorKind::Invalid, e.to_string()))?;
    let token_file = home.web_token_file();
    let access = match (&settings.token, settings.open_loopback) {
        (Some(token), _) => Access::Configured(token.clone()),
        (None, true) => Access::Open,
        (None, false) => {
            let path = token_file.clone();
            let stored = crate::tasks::blocking(move || kelpie_config::stored_web_token(&path))
                .await
                .map_err(|e| failure(ErrorKind::Internal, e.to_string()))?
                .map_err(|e| {
                    failure(
                        ErrorKind::Internal,
                        format!("cannot keep the web token in {}: {e}", token_file.display()),
                    )
                })?;
            Access::Stored(stored)
        }
    };
    // The running server may hold this very port: it goes first.
    if let Some(current) = running.take() {
        current.stop().await;
    }
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        failure(
            ErrorKind::Conflict,
            format!("cannot serve the web page on {addr}: {e}"),
        )
    })?;
    let addr = listener.local_addr().unwrap_or(addr);
    let shared = Arc::new(Shared {
        commands: daemon.commands.clone(),
        logs: daemon.logs.clone(),
        bus: daemon.bus.clone(),
        alerts: daemon.alerts.clone(),
        access: access.clone(),
        loopback: addr.ip().is_loopback(),
        streams: Arc::new(Semaphore::new(api::MAX_STREAMS)),
        hosts: settings.hosts.clone().into(),
    });
    let accept = crate::tasks::spawn(accept_loop(listener, shared));
    *running = Some(Running {
        addr,
        access: access.clone(),
        accept,
    });
    let url = match addr {
        SocketAddr::V6(v6) => format!("http://[{}]:{}/", v6.ip(), v6.port()),
        SocketAddr::V4(v4) => format!("http://{v4}/"),
    };
    Ok(match access {
        Access::Configured(_) => {
            format!("serving the web page, the API and /metrics on {url} (token required)")
        }
        Access::Stored(_) => format!(
            "serving the web page, the API and /metrics on {url} (every call needs the token in {}, on loopback too; `kelpie web --show-token` prints it)",
            token_file.display()
        ),
        Access::Open => format!(
            "serving the web page, the API and /metrics on {url} (open_loopback: no token, any local user can read and change your apps)"
        ),
    })
}

/// Accept connections until aborted; the connections are aborted with it (a live update would
/// otherwise go on).
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                crate::daemon_log!("web: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        crate::tasks::spawn_into(&mut connections, async move {
            // A live stream's slot is the connection's until it closes: its bytes may still be
            // on their way when the stream itself has ended.
            let stream_slot = StreamSlot::default();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
                let shared = shared.clone();
                request.extensions_mut().insert(stream_slot.clone());
                async move { Ok::<_, Infallible>(api::handle(&shared, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(patient::Patient::new(stream)),
                    service,
                );
            let _ = connection.await;
            drop(permit);
        });
    }
}

/// The slot among the live streams (`api::MAX_STREAMS`) that a connection holds, if it serves
/// one; freed when the connection closes.
#[derive(Clone, Default)]
struct StreamSlot(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl StreamSlot {
    /// Take one of the server's slots for this connection; false when none is free.
    fn take(&self, streams: &Arc<Semaphore>) -> bool {
        match streams.clone().try_acquire_owned() {
            Ok(permit) => {
                if let Ok(mut held) = self.0.lock() {
                    *held = Some(permit);
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// A JSON answer.
fn json<T: serde::Serialize>(status: u16, value: &T) -> hyper::Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => respond(status, "application/json", Bytes::from(bytes)),
        Err(e) => error(500, "Internal", &format!("cannot encode the answer: {e}")),
    }
}

/// An error answer: `{"error": {"kind": …, "message": …}}`.
fn error(status: u16, kind: &str, message: &str) -> hyper::Response<Body> {
    let body = serde_json::json!({"error": {"kind": kind, "message": message}});
    respond(status, "application/json", Bytes::from(body.to_string()))
}

fn respond(status: u16, content_type: &str, body: Bytes) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Body::full(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        headers.insert(hyper::header::CONTENT_TYPE, value);
    }
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    response
}
