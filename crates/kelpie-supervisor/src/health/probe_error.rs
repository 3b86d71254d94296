//! Why a probe found the process unhealthy. Its text is the reason the instance reports (in
//! `describe`, the log, the restart's cause), short and meant for people: an I/O error is
//! shown without its ` (os error N)` tail.

use super::plain;
use std::io;

/// Why one probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The check's URL cannot be used.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// No answer (connection, status line, the command's exit) within the check's timeout.
    #[error("no answer within {ms} ms from {from}")]
    NoAnswer {
        /// The timeout.
        ms: u128,
        /// What was asked: the URL or `host:port`.
        from: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve {host}: {}", plain(.cause))]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        cause: io::Error,
    },
    /// The host name resolves to no address at all.
    #[error("{host} resolves to no address")]
    NoAddress {
        /// The host.
        host: String,
    },
    /// Nothing listens there.
    #[error("connection refused by {at}")]
    Refused {
        /// `host:port`.
        at: String,
    },
    /// Connecting failed otherwise (unreachable, reset...).
    #[error("cannot connect to {at}: {}", plain(.cause))]
    Connect {
        /// `host:port`.
        at: String,
        /// The error.
        cause: io::Error,
    },
    /// The HTTP request could not be sent.
    #[error("cannot send the request to {at}: {}", plain(.cause))]
    Send {
        /// `host:port`.
        at: String,
        /// The error.
        cause: io::Error,
    },
    /// The answer could not be read.
    #[error("cannot read the answer from {url}: {}", plain(.cause))]
    Read {
        /// The URL.
        url: String,
        /// The error.
        cause: io::Error,
    },
    /// The server closed the connection before any answer.
    #[error("{url} closed the connection without answering")]
    Closed {
        /// The URL.
        url: String,
    },
    /// What came back is not an HTTP status line.
    #[error("not an HTTP answer from {url}: {start:?}")]
    NotHttp {
        /// The URL.
        url: String,
        /// The start of what came, trimmed.
        start: String,
    },
    /// An HTTP status other than the expected one.
    #[error("HTTP {code} from {url} (expected {})", expected_text(*.expected))]
    Status {
        /// The status.
        code: u16,
        /// The URL.
        url: String,
        /// The status the check expects; `None`: any 2xx or 3xx.
        expected: Option<u16>,
    },
    /// The command of an `exec` check could not be started (its working directory missing,
    /// no shell, the user it runs as...).
    #[error("exec `{command}` could not start in {cwd}: {}", plain(.cause))]
    ExecStart {
        /// The command.
        command: String,
        /// Where it was to run.
        cwd: String,
        /// The error.
        cause: io::Error,
    },
    /// The command started, but waiting for it failed.
    #[error("exec `{command}`: cannot wait for it: {}", plain(.cause))]
    ExecWait {
        /// The command.
        command: String,
        /// The error.
        cause: io::Error,
    },
    /// The command did not finish within the timeout (its process group was killed).
    #[error("exec `{command}` timed out after {ms} ms")]
    ExecTimeout {
        /// The command.
        command: String,
        /// The timeout.
        ms: u128,
    },
    /// The command ran and failed.
    #[error("exec `{command}` {ended}{}", stderr_text(.stderr.as_deref()))]
    ExecFailed {
        /// The command.
        command: String,
        /// How it ended.
        ended: Ended,
        /// The first line it wrote to stderr, shortened.
        stderr: Option<String>,
    },
}

/// How a failed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    /// It exited with this code (not 0).
    #[error("exited with code {0}")]
    Code(i32),
    /// A signal killed it.
    #[error("was killed by {}", kelpie_sys::signal_name(*.0))]
    Signal(i32),
    /// Neither (not seen in practice).
    #[error("failed")]
    Unknown,
}

/// Why an HTTP check's URL cannot be used: the probe cannot run at all.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not `http://` (there is no TLS client in the daemon).
    #[error("not an http:// URL: {0}")]
    NotHttp(String),
    /// An IPv6 address without its `]`.
    #[error("unclosed [ in {0}")]
    Unclosed(String),
    /// A port that is not a number from 1 to 65535.
    #[error("bad port in {0}")]
    Port(String),
    /// A host that is empty or has characters a host cannot have.
    #[error("bad host in {0}")]
    Host(String),
}

fn expected_text(expected: Option<u16>) -> String {
    match expected {
        Some(want) => want.to_string(),
        None => "2xx or 3xx".to_string(),
    }
}

fn stderr_text(line: Option<&str>) -> String {
    line.map(|line| format!(": {line}")).unwrap_or_default()
}
