//! Why the supervisor refuses a request, having changed nothing: one type, each refusal with its
//! words and its wire kind, made into the client's error in one place ([`Refusal::wire`]).
//! (What fails once a request has acted, a stop that timed out or a file that could not be
//! written, is said by the request's `Finish`.)

use super::conf::ConfChangeError;
use super::ports::PortError;
use crate::dump::DumpError;
use kelpie_core::{AppNameError, TooManyInstances};
use kelpie_proto::{ErrorKind, WireError};

/// A request the supervisor turned down.
#[derive(Debug, thiserror::Error)]
pub(super) enum Refusal {
    /// Targets naming no app (`unknown`), with the apps there are (`hint`).
    #[error("no app matches {unknown} ({hint}); nothing was changed")]
    NoMatch { unknown: String, hint: String },
    /// `all` (or a namespace) with no app, for a command that changes apps.
    #[error("no apps are running; nothing was changed")]
    NoneRunning,
    /// `env` for targets naming no app.
    #[error("no app matches {0}")]
    NoAppMatches(String),
    /// `scale` of an app that does not exist.
    #[error("no app named `{0}`")]
    NoAppNamed(String),
    /// `scale` to more instances than an app may have.
    #[error("app `{app}`: {cause}")]
    TooManyInstances {
        app: String,
        cause: TooManyInstances,
    },
    /// `scale` to none.
    #[error("an app keeps at least one instance; use `kelpie delete {0}` to remove it")]
    ScaleToNone(String),
    /// An app's port cannot be listened on.
    #[error(transparent)]
    Port(#[from] PortError),
    /// `start` of apps that clash with others (one line each).
    #[error("{}\nnothing was started", .0.join("\n"))]
    StartConflicts(Vec<String>),
    /// `set` or `unset` of nothing, or of a bad key.
    #[error(transparent)]
    Conf(#[from] ConfChangeError),
    /// `restart --name` with a name an app cannot have.
    #[error("--name: {0}")]
    BadName(AppNameError),
    /// `restart --name` for targets selecting several apps.
    #[error("--name renames one app; these targets select several")]
    RenameSeveral,
    /// `restart --name` with another app's name.
    #[error("an app is already named `{0}`; nothing was changed")]
    NameTaken(String),
    /// `sendSignal` with a signal this system does not have.
    #[error("unknown signal `{0}` (try SIGUSR2, SIGHUP, 15...)")]
    UnknownSignal(String),
    /// `resurrect` without a usable dump.
    #[error(transparent)]
    Dump(#[from] DumpError),
    /// A request the connection answers itself, sent on to the supervisor.
    #[error("the connection answers this request, not the supervisor")]
    NotForSupervisor,
}

impl Refusal {
    /// How the client classifies it (its exit status, the HTTP status).
    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            Refusal::NoMatch { .. }
            | Refusal::NoneRunning
            | Refusal::NoAppMatches(_)
            | Refusal::NoAppNamed(_)
            | Refusal::Dump(_) => ErrorKind::NotFound,
            Refusal::Port(_) | Refusal::StartConflicts(_) | Refusal::NameTaken(_) => {
                ErrorKind::Conflict
            }
            Refusal::TooManyInstances { .. }
            | Refusal::ScaleToNone(_)
            | Refusal::Conf(_)
            | Refusal::BadName(_)
            | Refusal::RenameSeveral
            | Refusal::UnknownSignal(_)
            | Refusal::NotForSupervisor => ErrorKind::Invalid,
        }
    }

    /// The error the client gets.
    pub(super) fn wire(&self) -> WireError {
        WireError {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

impl From<Refusal> for WireError {
    fn from(refusal: Refusal) -> WireError {
        refusal.wire()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_words_and_kind() {
        let cases = [
            (
                Refusal::NoMatch {
                    unknown: "api".into(),
                    hint: "known apps: web".into(),
                },
                ErrorKind::NotFound,
                "no app matches api (known apps: web); nothing was changed",
            ),
            (
                Refusal::StartConflicts(vec!["a".into(), "b".into()]),
                ErrorKind::Conflict,
                "a\nb\nnothing was started",
            ),
            (
                Refusal::ScaleToNone("api".into()),
                ErrorKind::Invalid,
                "an app keeps at least one instance; use `kelpie delete api` to remove it",
            ),
            (
                Refusal::NameTaken("web".into()),
                ErrorKind::Conflict,
                "an app is already named `web`; nothing was changed",
            ),
        ];
        for (refusal, kind, words) in cases {
            let wire = WireError::from(refusal);
            assert_eq!((wire.kind, wire.message.as_str()), (kind, words));
        }
    }
}
