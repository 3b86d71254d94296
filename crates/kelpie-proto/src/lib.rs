//! Kelpie's IPC between the CLI and the daemon.
//!
//! Frames are a 4-byte big-endian length followed by that many bytes of JSON. Every connection
//! starts with a [`Hello`] from each side, whose shape never changes, so any two versions of
//! Kelpie can at least tell each other apart and say so clearly. Then the client sends
//! [`Request`]s and reads one [`Response`] for each.
#![warn(missing_docs)]

mod frame;
mod home;
mod messages;
mod targets;

pub use frame::{decode, encode, read_frame, write_frame, FrameError, MAX_FRAME_LEN};
pub use home::{FileNames, Home, FILE_NAMES_ENV, HOME_ENV, UPDATE_SIGNAL};
pub use messages::{
    BadScaleCount, BusEvent, ChangeRequest, ConfRequest, ConfigSource, DeployOutcome, ErrorKind,
    ErrorsRequest, FlushRequest, Hello, HostFilesystem, HostMetrics, InspectAction, InspectRequest,
    JlistRequest, LogBytes, LogFileInfo, LogStream, LogsRequest, NotifyRequest, ProcessCounters,
    ProcessInfo, ReloadRequest, Request, Response, RestartRequest, SaveRequest, ScaleCount,
    ScaleRequest, SendLineRequest, SendMessageRequest, SignalRequest, SpecChanges,
    StartConfigRequest, StartOutcome, StartRequest, Target, Targets, TriggerReply, TriggerRequest,
    Triggered, WebRequest, WireError, WireLogLine, PROTOCOL_VERSION,
};
pub use targets::{check_pattern, pattern_of, resolve_targets, InvalidPattern, Targetable};
