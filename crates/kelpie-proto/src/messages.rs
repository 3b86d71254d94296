//! The messages themselves.
//!
//! Here: the [`Hello`] that opens every connection. The rest, in `messages/`: the requests
//! (`requests`) and what they act on and carry (`arguments`), the responses (`responses`), the
//! log lines (`logs`), and the events of a `launchBus` stream (`events`).

mod arguments;
mod events;
mod host;
mod logs;
mod requests;
mod responses;

pub use arguments::{BadScaleCount, ConfRequest, ScaleCount, Target};
pub use events::BusEvent;
pub use host::{HostFilesystem, HostMetrics};
pub use logs::{LogBytes, LogFileInfo, LogStream, WireLogLine};
pub use requests::{
    ChangeRequest, ConfigSource, DeployOutcome, ErrorsRequest, FlushRequest, InspectAction,
    InspectRequest, JlistRequest, LogsRequest, NotifyRequest, ReloadRequest, Request,
    RestartRequest, SaveRequest, ScaleRequest, SendLineRequest, SendMessageRequest, SignalRequest,
    SpecChanges, StartConfigRequest, StartRequest, Targets, TriggerRequest, WebRequest,
};
pub use responses::{
    ErrorKind, ProcessCounters, ProcessInfo, Response, StartOutcome, TriggerReply, Triggered,
    WireError,
};

use serde::{Deserialize, Serialize};

/// Version of the request/response vocabulary. Bumped when a change would make an older peer
/// misread a message; the [`Hello`] exchange refuses a mismatch with a clear message.
pub const PROTOCOL_VERSION: u32 = 1;

/// First frame in each direction. Its shape must never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// Kelpie version of the sender (`CARGO_PKG_VERSION`).
    pub version: String,
}

impl Hello {
    /// The Hello of this build.
    pub fn current() -> Self {
        Hello {
            protocol: PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}
