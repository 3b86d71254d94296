//! The listening socket and its connections, until SIGINT or SIGTERM.

use super::error::ServeError;
use super::http;
use super::settings::Settings;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// A client has this long to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `site` until a stop signal (then `Ok`), or fail to listen.
pub(super) async fn serve(site: Settings) -> Result<(), ServeError> {
    let handle = |signal: &'static str| {
        move |source| ServeError::Signal {
            signal,
            cause: source,
        }
    };
    // Installed before listening: a stop signal from then on ends the server cleanly.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(handle("SIGINT"))?;
    let mut terminate = signal(SignalKind::terminate()).map_err(handle("SIGTERM"))?;
    let listener = TcpListener::bind((site.host.as_str(), site.port))
        .await
        .map_err(|source| ServeError::Listen {
            host: site.host.clone(),
            port: site.port,
            cause: source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Address)?;
    // The port is bound (below 1024 needs root): root is given up before any request is read.
    let user = give_up_root(&site.root)?;
    let who = user.map(|u| format!(" as {u}")).unwrap_or_default();
    outln!("serving {} on http://{addr}/{who}", site.root.display());
    let site = Arc::new(site);
    tokio::select! {
        () = accept_loop(listener, site) => Ok(()),
        _ = interrupt.recv() => Ok(()),
        _ = terminate.recv() => Ok(()),
    }
}

/// The user a server started as root serves as: files are read with the rights of a user who
/// owns nothing, so a link or a mistake in the directory cannot hand out root's files.
const UNPRIVILEGED_USER: &str = "nobody";

/// Started as root: become [`UNPRIVILEGED_USER`] for good, or refuse to serve; the name of who
/// it runs as then. `None` when it was not root.
fn give_up_root(root: &std::path::Path) -> Result<Option<&'static str>, ServeError> {
    if kelpie_sys::current_uid() != 0 {
        return Ok(None);
    }
    let still_root = |why: String| ServeError::StillRoot {
        user: UNPRIVILEGED_USER.to_string(),
        why,
    };
    let (uid, gid) = kelpie_sys::lookup_user(UNPRIVILEGED_USER)
        .filter(|(uid, _)| *uid != 0)
        .ok_or_else(|| still_root("this system has no such user".to_string()))?;
    kelpie_sys::drop_root(uid, gid).map_err(|e| still_root(e.to_string()))?;
    std::fs::read_dir(root).map_err(|cause| ServeError::UnreadableAsUser {
        user: UNPRIVILEGED_USER.to_string(),
        root: root.display().to_string(),
        cause,
    })?;
    Ok(Some(UNPRIVILEGED_USER))
}

async fn accept_loop(listener: TcpListener, site: Arc<Settings>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait for connections to end.
                eprintln!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let site = site.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(http::handle(site, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            drop(permit);
        });
    }
}
