//! Log lines on the wire: their stream, their bytes (text when they are UTF-8), and an app's log
//! files.

use serde::{Deserialize, Serialize};

/// An app's output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// stdout.
    Out,
    /// stderr.
    Err,
}

impl LogStream {
    /// PM2's name (`out` / `err`), used in JSON log lines.
    pub fn pm2_name(self) -> &'static str {
        match self {
            LogStream::Out => "out",
            LogStream::Err => "err",
        }
    }
}

/// One line of an app's output, as sent to `kelpie logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLogLine {
    /// Instance id.
    pub pm_id: u32,
    /// App name.
    pub app_name: String,
    /// Which stream.
    pub stream: LogStream,
    /// When the daemon read it (ms since the epoch); `None` for lines read back from a file.
    pub at_ms: Option<i64>,
    /// The bytes, without the newline (exact, even when not UTF-8).
    pub bytes: LogBytes,
}

/// Bytes of a log line: a JSON string when they are UTF-8 (nearly always), else base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBytes(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LogBytesRepr {
    Text(String),
    Base64 { b64: String },
}

impl Serialize for LogBytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        match std::str::from_utf8(&self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => LogBytesRepr::Base64 {
                b64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            }
            .serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for LogBytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        match LogBytesRepr::deserialize(deserializer)? {
            LogBytesRepr::Text(text) => Ok(LogBytes(text.into_bytes())),
            LogBytesRepr::Base64 { b64 } => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(LogBytes)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// State of one of an instance's log files, for `describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFileInfo {
    /// `out`, `err` or `combined`.
    pub kind: String,
    /// The file.
    pub path: String,
    /// Lines that never reached it (writer behind, disk full, unwritable).
    pub dropped_lines: u64,
    /// The current problem writing it.
    pub error: Option<String>,
}
