//! Requests the connection answers itself around the supervisor's answer: the round trip to
//! the supervisor (`dispatch`), `jlist` built off the async threads, and the Node API's
//! `StartConfig` (the config read here, then started as a file's apps).

use crate::config_load::ConfigLoadError;
use crate::supervisor_channel::{Command, Reply};
use kelpie_proto::{ConfigSource, ErrorKind, Request, Response, WireError};
use tokio::sync::{mpsc, oneshot};

pub(super) fn error(kind: ErrorKind, message: String) -> Response {
    Response::Error(WireError { kind, message })
}

/// The list in PM2's `jlist` shape, built off the async threads (it reads the apps' git
/// metadata from their repositories' files).
pub(super) async fn jlist(
    show_secrets: bool,
    commands: &mpsc::Sender<Command>,
) -> (Response, Option<oneshot::Sender<()>>) {
    match dispatch(Request::List, commands).await {
        (Response::Processes(list), written) => {
            let built = crate::tasks::blocking(move || {
                kelpie_view::jlist::to_value(&list, show_secrets).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("building the list failed: {e}")));
            match built {
                Ok(value) => (Response::Json(value), written),
                Err(e) => (error(ErrorKind::Internal, e), written),
            }
        }
        other => other,
    }
}

/// `StartConfig` (the Node API's `start`): the config read here, off the supervisor, then
/// started as a file's apps are, with its warnings in the answer's notes.
pub(super) async fn start_config(
    request: kelpie_proto::StartConfigRequest,
    commands: &mpsc::Sender<Command>,
) -> (Response, Option<oneshot::Sender<()>>) {
    let kelpie_proto::StartConfigRequest {
        source,
        cwd,
        env,
        profile,
        only,
        force,
        from_file,
    } = request;
    let from_file = from_file || matches!(source, ConfigSource::File(_));
    let ctx = kelpie_config::LoadContext {
        cwd: cwd.into(),
        env,
        profile,
        only,
    };
    match load_config(source, ctx).await {
        Ok(loaded) => {
            let request = Request::Start(kelpie_proto::StartRequest {
                apps: loaded.apps,
                force,
                from_file,
            });
            let answer = dispatch(request, commands).await;
            with_notes(answer, loaded.warnings, loaded.refused)
        }
        Err(e) => (error(e.kind(), e.to_string()), None),
    }
}

/// Read a config the way `kelpie start` does, off the async threads (a JavaScript file runs
/// Node), and on every CPU the daemon was given, as the CLI would: `instances: "max"` and a
/// file's own `os.availableParallelism()` count the machine's CPUs, not the daemon's one.
async fn load_config(
    source: ConfigSource,
    ctx: kelpie_config::LoadContext,
) -> Result<kelpie_config::Loaded, ConfigLoadError> {
    let loaded = crate::tasks::blocking(move || {
        kelpie_sys::on_every_cpu(|| match source {
            ConfigSource::File(path) => {
                kelpie_config::load_file(&kelpie_config::absolutize(&ctx.cwd, path.as_ref()), &ctx)
            }
            ConfigSource::Json(text) => kelpie_config::load_stdin(&text, &ctx),
        })
    })
    .await??;
    Ok(loaded)
}

/// A start's answer with the config's warnings added to its notes, and the apps it refused to
/// its failures.
fn with_notes(
    answer: (Response, Option<oneshot::Sender<()>>),
    warnings: Vec<String>,
    refused: Vec<String>,
) -> (Response, Option<oneshot::Sender<()>>) {
    match answer {
        (
            Response::Started {
                outcomes,
                processes,
                mut notes,
                mut failures,
            },
            written,
        ) => {
            notes.splice(0..0, warnings);
            failures.splice(0..0, refused);
            (
                Response::Started {
                    outcomes,
                    processes,
                    notes,
                    failures,
                },
                written,
            )
        }
        other => other,
    }
}

/// `kelpie web`: the web server's controller answers it.
pub(super) async fn web_request(
    web: &crate::web::WebControl,
    request: kelpie_proto::WebRequest,
) -> (Response, Option<oneshot::Sender<()>>) {
    let (reply, answer) = oneshot::channel();
    web.apply(request, reply);
    match answer.await {
        Ok(Reply { response, written }) => (response, written),
        Err(_) => (
            error(
                kelpie_proto::ErrorKind::Internal,
                "the web server's controller has stopped".into(),
            ),
            None,
        ),
    }
}

pub(super) async fn dispatch(
    request: Request,
    commands: &mpsc::Sender<Command>,
) -> (Response, Option<oneshot::Sender<()>>) {
    match crate::supervisor_channel::round_trip(commands, request).await {
        Ok(Reply { response, written }) => (response, written),
        Err(gone) => (Response::Error(gone), None),
    }
}
