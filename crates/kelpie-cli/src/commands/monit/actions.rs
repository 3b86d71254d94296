//! The changes the dashboard asks of the daemon ([`Action`]: restart, reload, stop, scale), how
//! they are said while pending and once done, and what a key leads to ([`Flow`]).

use kelpie_proto::{Request, ScaleCount, Target};

/// What a key asks for.
#[derive(Debug, PartialEq)]
pub(super) enum Flow {
    Continue,
    Quit,
    Act(Action),
}

/// A change asked of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    Restart { id: u32, name: String },
    Reload { id: u32, name: String },
    Stop { id: u32, name: String },
    Scale { name: String, count: ScaleCount },
}

impl Action {
    /// "restarting api (id 0)…"
    pub(super) fn doing(&self) -> String {
        match self {
            Action::Restart { id, name } => format!("restarting {name} (id {id})…"),
            Action::Reload { id, name } => format!("reloading {name} (id {id})…"),
            Action::Stop { id, name } => format!("stopping {name} (id {id})…"),
            Action::Scale { name, count } => format!("scaling {name} {}…", scale_word(*count)),
        }
    }

    /// "restarted api (id 0)"
    pub(super) fn done(&self) -> String {
        match self {
            Action::Restart { id, name } => format!("restarted {name} (id {id})"),
            Action::Reload { id, name } => format!("reloaded {name} (id {id})"),
            Action::Stop { id, name } => format!("stopped {name} (id {id})"),
            Action::Scale { name, count } => format!("scaled {name} {}", scale_word(*count)),
        }
    }

    pub(super) fn request(&self) -> Request {
        match self {
            Action::Restart { id, .. } => Request::Restart(kelpie_proto::RestartRequest {
                targets: vec![Target::Id(*id)],
                update_env: None,
            }),
            Action::Reload { id, .. } => Request::Reload(kelpie_proto::ReloadRequest {
                targets: vec![Target::Id(*id)],
                apps: Vec::new(),
                update_env: None,
                parallel: 1,
            }),
            Action::Stop { id, .. } => Request::Stop(kelpie_proto::Targets {
                targets: vec![Target::Id(*id)],
            }),
            Action::Scale { name, count } => Request::Scale(kelpie_proto::ScaleRequest {
                name: name.clone(),
                count: *count,
            }),
        }
    }
}

fn scale_word(count: ScaleCount) -> String {
    match count {
        ScaleCount::Up(n) => format!("up by {n}"),
        ScaleCount::Down(n) => format!("down by {n}"),
        ScaleCount::To(n) => format!("to {n}"),
    }
}
