//! `profile` and `inspect` on the control socket: which process, then the profile's text as
//! the process sends it, then how it ended (see `crate::inspection`).

use super::frames::write_message;
use crate::inspection;
use crate::profile_parts::Part;
use crate::supervisor_channel::Command;
use kelpie_proto::{InspectRequest, Response};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Answer an inspection on `stream`, until it ends or the client goes away.
pub(super) async fn serve(
    stream: &mut UnixStream,
    commands: &mpsc::Sender<Command>,
    request: InspectRequest,
) {
    let mut inspection = match inspection::begin(commands, &request).await {
        Ok(inspection) => inspection,
        Err(e) => {
            let _ = write_message(stream, &Response::Error(e)).await;
            return;
        }
    };
    let which = Response::Inspecting {
        pm_id: inspection.pm_id,
        name: inspection.name.clone(),
        pid: inspection.pid,
    };
    if write_message(stream, &which).await.is_err() {
        return;
    }
    loop {
        let answer = match inspection.next().await {
            Ok(Part::Text(text)) => Response::ProfilePart(text),
            Ok(Part::End(end)) => {
                let _ = write_message(stream, &Response::Json(end)).await;
                return;
            }
            Err(e) => {
                let _ = write_message(stream, &Response::Error(e)).await;
                return;
            }
        };
        if write_message(stream, &answer).await.is_err() {
            return;
        }
    }
}
