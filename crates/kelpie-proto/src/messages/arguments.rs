//! What requests act on and carry: a [`Target`], a [`ScaleCount`], a [`ConfRequest`].

use serde::{Deserialize, Serialize};

/// What a command acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Every app.
    All,
    /// One instance by `pm_id`.
    Id(u32),
    /// Every instance whose name, or else whose namespace, is this.
    Name(String),
    /// Every instance whose name matches this regular expression (`/^api-/` on the command
    /// line).
    Pattern(String),
    /// A word that may be a script's path (`kelpie stop app.js`): the instances named `name`,
    /// else those whose script is `script` (absolute, resolved where the command was typed, as
    /// PM2 does), else the namespace `name`.
    NameOrScript {
        /// The word as typed.
        name: String,
        /// It as an absolute path.
        script: String,
    },
}

/// The instance count `scale` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleCount {
    /// Exactly this many.
    To(u32),
    /// This many more.
    Up(u32),
    /// This many fewer (at least one is kept).
    Down(u32),
}

/// Text that is not `N`, `+N` or `-N` ([`ScaleCount::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected N, +N or -N instances, got `{text}`")]
pub struct BadScaleCount {
    /// The text, trimmed.
    pub text: String,
}

impl ScaleCount {
    /// Read `N`, `+N` or `-N`.
    pub fn parse(text: &str) -> Result<ScaleCount, BadScaleCount> {
        let text = text.trim();
        let number = |digits: &str| {
            digits.parse::<u32>().map_err(|_| BadScaleCount {
                text: text.to_string(),
            })
        };
        match text.as_bytes().first() {
            Some(b'+') => number(&text[1..]).map(ScaleCount::Up),
            Some(b'-') => number(&text[1..]).map(ScaleCount::Down),
            _ => number(text).map(ScaleCount::To),
        }
    }

    /// The count that results from `current` instances.
    pub fn apply(self, current: u32) -> u32 {
        match self {
            ScaleCount::To(n) => n,
            ScaleCount::Up(n) => current.saturating_add(n),
            ScaleCount::Down(n) => current.saturating_sub(n).max(1),
        }
    }
}

/// What a [`Request::Conf`](super::Request::Conf) does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfRequest {
    /// Only answer with the store.
    Get,
    /// Set these keys, in order (`pm2-logrotate` values are checked first: one bad value
    /// changes nothing). Apps named by a key's section are restarted with the section in their
    /// environment.
    Set {
        /// `(key, value)` pairs.
        pairs: Vec<(String, String)>,
    },
    /// Remove a key (`all`: every key).
    Unset {
        /// The key.
        key: String,
    },
}
