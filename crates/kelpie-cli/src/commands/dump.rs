//! The saved list (PM2's dump): `save` writes it, `resurrect` starts what it holds; the daemon's
//! side is `kelpie-supervisor`'s `supervisor/requests/dump.rs`.

use super::call;
use crate::render;
use anyhow::Result;
use kelpie_proto::{Home, Request, Response};
use std::process::ExitCode;

pub(super) fn save(home: &Home, force: bool) -> Result<ExitCode> {
    render::print_response(&call(
        home,
        &Request::Save(kelpie_proto::SaveRequest { force }),
    )?)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn resurrect(home: &Home) -> Result<ExitCode> {
    let response = call(home, &Request::Resurrect)?;
    if let Response::Started {
        outcomes,
        notes,
        processes,
        ..
    } = &response
    {
        for note in notes {
            outln!("[kelpie] {note}");
        }
        // An app saved stopped comes back stopped: said so, not "started".
        let stopped: Vec<u32> = processes
            .iter()
            .filter(|p| p.state.status == kelpie_core::Status::Stopped)
            .map(|p| p.pm_id)
            .collect();
        let brought: Vec<u32> = outcomes
            .iter()
            .flat_map(|outcome| match outcome {
                kelpie_proto::StartOutcome::Created(ids)
                | kelpie_proto::StartOutcome::Restarted(ids)
                | kelpie_proto::StartOutcome::Started(ids) => ids.iter().copied(),
            })
            .collect();
        let (kept_stopped, running): (Vec<u32>, Vec<u32>) =
            brought.into_iter().partition(|id| stopped.contains(id));
        let ids = |ids: &[u32]| {
            ids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !running.is_empty() {
            outln!("[kelpie] resurrected and started (ids: {})", ids(&running));
        }
        if !kept_stopped.is_empty() {
            outln!(
                "[kelpie] resurrected stopped, as they were saved (ids: {}; `kelpie start <app>` starts them)",
                ids(&kept_stopped)
            );
        }
    }
    render::print_response(&response)?;
    Ok(ExitCode::SUCCESS)
}
