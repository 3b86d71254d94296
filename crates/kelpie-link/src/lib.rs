//! What a running process can tell Kelpie besides its output: readiness over systemd's
//! `NOTIFY_SOCKET` (any language), and Node's IPC channel (`process.send('ready')`, the cluster
//! shim's `listening`, PM2's `shutdown` message the other way). One link per process: a reload
//! runs two processes of one instance at once, and each must be told apart.
//!
//! A crate of its own, below the supervisor, with what a process's link needs beside it: the
//! listening sockets and their port registry ([`sockets`]), the spread of connections between
//! an app's processes ([`balance`]), readiness by a listening port ([`readiness`]), and the
//! parts of profiles on their way to whoever asked ([`profile_parts`]).

use kelpie_base::{clock, daemon_log, mailbox, room, tasks};
use kelpie_keeper as keeper;

pub mod balance;
pub mod profile_parts;
pub mod readiness;
pub mod sockets;

mod ipc;
mod notify;
mod pacer;

pub use notify::{
    adopt_shared as adopt_notify_sockets, keep_in_keeper as keep_notify_sockets,
    keep_own_now as keep_own_notify_socket_now, remove_socket_dir as remove_notify_socket_dir,
    shared_sockets as notify_sockets,
};

use crate::sockets::ClaimedSockets;
use ipc::run_ipc;
use kelpie_core::forensics::NotifyLine;
use kelpie_core::ListenAddress;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Something a process said.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessSignal {
    /// `READY=1`, or `process.send('ready')`.
    Ready,
    /// The Node shim saw the app's main module run (its first tick, or for an ES module its
    /// evaluation, top-level awaits included): a Node app that asked for no other readiness
    /// is online then, so a command that follows `start` finds the app's handlers installed.
    MainRan,
    /// The Node shim's shared server is listening (a Node app in cluster mode is ready then,
    /// as in PM2).
    Listening,
    /// A line of its output matched the app's `ready_pattern`.
    ReadyLine,
    /// Its process group listens on the app's port (apps binding it with `SO_REUSEPORT`).
    PortOpen,
    /// `WATCHDOG=1`: the process is alive (systemd's watchdog keep-alive).
    Watchdog,
    /// `STATUS=...` or `X_KELPIE_METRIC=...`: what the process publishes about itself, or a
    /// metric line Kelpie could not take (see `kelpie_core::forensics::parse_notify_line`).
    /// Boxed, as is `Message`'s: every link's channel allocates room for 32 signals at once,
    /// so the signal's size is paid per app (16 bytes, not 40).
    Published(Box<NotifyLine>),
    /// A message for whoever follows the event bus, routed as PM2 routes it:
    /// `process.send({type, data})` (both truthy) goes under that type (`process:msg`,
    /// `process:exception`, `axm:reply`, `human:event`...); anything else (`{topic, data}`, a
    /// string) as `process:msg` with `raw`, here `{"raw": <the message>}`.
    Message(Box<serde_json::Value>),
}

/// What a process's PM2 SDK (`@pm2/io`, pmx, tx2) said for the manager itself: metrics,
/// actions, options, its Node version. Written by the link's IPC task as each message comes
/// (an app sends its metrics every second: no other task is woken for them), read by `list`.
pub type SharedSdk = Arc<std::sync::Mutex<kelpie_core::SdkState>>;

/// What one IPC message is for.
#[derive(Debug, PartialEq)]
enum Routed {
    /// Something for the instance (readiness, a message for the bus).
    Signal(ProcessSignal),
    /// The SDK's state, kept by the link.
    Sdk(kelpie_core::SdkMessage),
}

/// What the child needs to reach its link: variables and descriptors to place.
#[derive(Default)]
pub struct ChildEnds {
    /// Variables to add to its environment.
    pub env: Vec<(String, String)>,
    /// Descriptors and the numbers they get in the child.
    pub fds: Vec<(OwnedFd, RawFd)>,
    /// The portable backend's notify socket of this process, a file.
    notify_file: Option<String>,
}

impl ChildEnds {
    /// Let only the process's user (`uid`, or the daemon's own) send to its notify socket
    /// before it starts (see `notify::only_for`).
    pub fn notify_socket_for(&self, uid: Option<u32>) -> std::io::Result<()> {
        self.notify_file
            .as_deref()
            .map_or(Ok(()), |file| notify::only_for(file, uid))
    }
}

/// The daemon's ends of a link as descriptors: what `kelpie update` carries across the exec,
/// so the process keeps the same `NOTIFY_SOCKET` and IPC channel under the new daemon. (The
/// shared notify socket travels once, apart: [`notify_sockets`].)
pub struct LinkFds {
    /// The process's own notify socket, given by a daemon from before the shared one.
    pub notify: Option<OwnedFd>,
    /// The daemon's end of the Node IPC channel.
    pub ipc: Option<OwnedFd>,
    /// What the process's PM2 SDK said so far (its actions were registered once, at its start:
    /// the next daemon could not learn them again).
    pub sdk: kelpie_core::SdkState,
}

/// The daemon's side of one process's link.
pub struct ProcessLink {
    signals: crate::mailbox::Receiver<ProcessSignal>,
    sender: crate::mailbox::Sender<ProcessSignal>,
    /// JSON lines to write to the Node IPC channel.
    ipc: Option<mpsc::UnboundedSender<String>>,
    /// Tasks that work for it (a port watch): they end with it.
    tasks: crate::tasks::Helpers,
    /// The task reading the Node IPC channel (ended with the link): it ends by itself when
    /// the process's end of the channel closes.
    ipc_task: Option<crate::tasks::Owned<()>>,
    /// Where the notify thread sends what the process says there (once it is known by pid).
    registration: Option<notify::Registration>,
    /// The process's own notify socket: the portable backend's (see [`ProcessLink::open`]), or
    /// one handed over by a daemon from before the shared one (also read by the notify thread).
    dedicated: Option<Arc<OwnedFd>>,
    /// The file of a dedicated socket this daemon bound, removed with the link.
    socket_file: Option<notify::SocketFile>,
    /// A second descriptor of the IPC channel's end (read and written by tasks), for a
    /// hand-over, and the one the keeper is given a copy of.
    ipc_fd: Option<Arc<OwnedFd>>,
    /// What the process's PM2 SDK said.
    sdk: SharedSdk,
    /// Told when the process has exited: what it sent last is read now, even if paced.
    exited: Arc<tokio::sync::Notify>,
}

/// Numbers of the processes in their apps' spread of connections: unique in this daemon.
static NEXT_LINK: AtomicU64 = AtomicU64::new(0);

/// Longest wait, after a process exited, for the end of its IPC channel (what it said last).
const LAST_WORDS_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

impl ProcessLink {
    /// A link for a process about to start: its `NOTIFY_SOCKET` names the daemon's shared
    /// socket (what it sends there reaches this link once [`ProcessLink::attach`] gave its
    /// pid) and, with `ipc_fd`, a Node IPC channel whose child end goes at that number. With
    /// `claims`, the process may ask for its app's shared sockets over the channel.
    pub fn open(
        ipc_fd: Option<RawFd>,
        claims: Option<Arc<ClaimedSockets>>,
    ) -> std::io::Result<(ProcessLink, ChildEnds)> {
        let mut ends = ChildEnds::default();
        // The portable backend's shared socket cannot tell senders apart: each process has its
        // own there (docs/platforms.md, "Readiness").
        let (notify_name, dedicated, socket_file) = if kelpie_sys::platform::portable() {
            let (path, socket, file) = notify::dedicated_socket()?;
            ends.notify_file = Some(path.clone());
            (path, Some(socket), Some(file))
        } else {
            (notify::socket_name()?, None, None)
        };
        ends.env.push(("NOTIFY_SOCKET".into(), notify_name));
        let ipc = match ipc_fd {
            Some(fd) => {
                let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
                ends.fds.push((OwnedFd::from(theirs), fd));
                ends.env.push(("NODE_CHANNEL_FD".into(), fd.to_string()));
                ends.env
                    .push(("NODE_CHANNEL_SERIALIZATION_MODE".into(), "json".into()));
                Some(OwnedFd::from(ours))
            }
            None => None,
        };
        let mut link = ProcessLink::resume(
            LinkFds {
                notify: dedicated,
                ipc,
                sdk: kelpie_core::SdkState::default(),
            },
            claims,
        )?;
        link.socket_file = socket_file;
        Ok((link, ends))
    }

    /// The link of a process from its descriptors: a new one's, or one handed over by the
    /// daemon this one replaced (then [`ProcessLink::attach`] it to its pid).
    pub fn resume(
        fds: LinkFds,
        claims: Option<Arc<ClaimedSockets>>,
    ) -> std::io::Result<ProcessLink> {
        let (sender, signals) = crate::mailbox::channel();
        let mut link = ProcessLink {
            signals,
            sender,
            ipc: None,
            tasks: crate::tasks::Helpers::default(),
            ipc_task: None,
            registration: None,
            dedicated: fds.notify.map(Arc::new),
            socket_file: None,
            ipc_fd: fds
                .ipc
                .as_ref()
                .map(OwnedFd::try_clone)
                .transpose()?
                .map(Arc::new),
            sdk: Arc::new(std::sync::Mutex::new(fds.sdk)),
            exited: Arc::default(),
        };
        if let Some(ours) = fds.ipc {
            let ours = std::os::unix::net::UnixStream::from(ours);
            ours.set_nonblocking(true)?;
            let ours = tokio::net::UnixStream::from_std(ours)?;
            let (outgoing, to_write) = mpsc::unbounded_channel();
            link.ipc = Some(outgoing);
            link.ipc_task = Some(crate::tasks::spawn(run_ipc(
                ours,
                link.sender.clone(),
                to_write,
                claims,
                link.sdk.clone(),
                link.exited.clone(),
            )));
        }
        Ok(link)
    }

    /// The process is `pid`: what it (or a process of its group, or a descendant) sends on
    /// `NOTIFY_SOCKET` comes to this link from now on, and what it sent before, if recent.
    pub fn attach(&mut self, pid: u32) {
        self.registration = Some(notify::register(
            pid,
            self.sender.clone(),
            self.dedicated.clone(),
        ));
    }

    /// The process has exited: what it sent on its IPC channel before its end and that was
    /// not received yet (an uncaught exception, reported just before the exit), read to the
    /// channel's end without waiting for the pacer; bounded by [`LAST_WORDS_WAIT`] (a child
    /// may hold the channel open). Before a restart, so that it comes before it.
    pub async fn last_words(&mut self) -> Vec<ProcessSignal> {
        self.exited.notify_one();
        if let Some(task) = self.ipc_task.as_mut() {
            if tokio::time::timeout(LAST_WORDS_WAIT, task).await.is_ok() {
                self.ipc_task = None;
            }
        }
        let mut said = Vec::new();
        while let Ok(signal) = self.signals.try_recv() {
            said.push(signal);
        }
        said
    }

    /// What the process's PM2 SDK said, as the link keeps it.
    pub fn sdk(&self) -> SharedSdk {
        self.sdk.clone()
    }

    /// Stop reading and give the sockets up, for the next daemon.
    pub fn into_fds(mut self) -> std::io::Result<LinkFds> {
        if let Some(file) = self.socket_file.take() {
            file.keep();
        }
        let sdk = self
            .sdk
            .lock()
            .map(|mut sdk| {
                sdk.settle();
                sdk.clone()
            })
            .unwrap_or_default();
        Ok(LinkFds {
            notify: self
                .dedicated
                .as_ref()
                .map(|socket| socket.as_fd().try_clone_to_owned())
                .transpose()?,
            ipc: self
                .ipc_fd
                .take()
                .map(|end| Arc::try_unwrap(end).or_else(|shared| shared.try_clone()))
                .transpose()?,
            sdk,
        })
    }

    /// The IPC end, for the keeper to hold a copy of (the shared notify socket it holds once).
    /// Shared, not copied: the keeper's client knows it by its number while the link lives.
    pub fn ipc_fd(&self) -> Option<Arc<OwnedFd>> {
        self.ipc_fd.clone()
    }

    /// The process's own notify socket, if a daemon from before the shared one gave it one:
    /// the keeper holds it with the process.
    pub fn dedicated_fd(&self) -> Option<Arc<OwnedFd>> {
        self.dedicated.clone()
    }

    /// A sender for other sources of readiness (the log reader, the port watch).
    pub fn sender(&self) -> crate::mailbox::Sender<ProcessSignal> {
        self.sender.clone()
    }

    /// Run `task` while the link lives.
    pub fn hold(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// The next thing the process said.
    pub async fn recv(&mut self) -> Option<ProcessSignal> {
        self.signals.recv().await
    }

    /// Send a message (a JSON value) over the IPC channel; false without one.
    pub fn send_message(&self, message: &serde_json::Value) -> bool {
        match &self.ipc {
            Some(ipc) => ipc.send(format!("{message}\n")).is_ok(),
            None => false,
        }
    }
}

/// A process of an app in the spread of its connections (see [`crate::balance`]): it leaves it
/// when its channel closes or the link is dropped.
struct Presence {
    claims: Arc<ClaimedSockets>,
    process: u64,
}

impl Drop for Presence {
    fn drop(&mut self) {
        self.claims.leave(self.process);
    }
}

/// The Node shim telling how many connections its shared servers hold:
/// `{"kelpie":"connections","n":16}`. Answered, when the process holds more than its share,
/// with `{"cmd":"NODE_KELPIE_BALANCE","keep":8}`.
fn connections_report(value: &serde_json::Value) -> Option<u64> {
    if value.get("kelpie")?.as_str()? != "connections" {
        return None;
    }
    value.get("n")?.as_u64()
}

/// The Node shim asking for the app's shared socket of an address (on the app's `listen()`).
#[derive(Debug, Clone, PartialEq)]
struct SocketRequest {
    /// The shim's number for the request, returned with the answer.
    seq: u64,
    address: ListenAddress,
}

/// `{"kelpie":"listen","seq":1,"port":3000,"host":"127.0.0.1"}` (no host: every address).
fn socket_request(value: &serde_json::Value) -> Option<SocketRequest> {
    if value.get("kelpie")?.as_str()? != "listen" {
        return None;
    }
    let seq = value.get("seq")?.as_u64()?;
    let port = u16::try_from(value.get("port")?.as_u64()?).ok()?;
    let host = value
        .get("host")
        .and_then(|h| h.as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string);
    Some(SocketRequest {
        seq,
        address: ListenAddress::Tcp { host, port },
    })
}

/// Give the process the app's socket for the request's address (bound now if no instance
/// asked before), as Node passes a handle over its IPC channel: one JSON line sent with the
/// descriptor attached (`SCM_RIGHTS`). Node acknowledges with `NODE_HANDLE_ACK`, which is
/// ignored. A socket that cannot be bound is answered with the error, no descriptor.
async fn answer_socket_request(
    stream: &tokio::net::UnixStream,
    claims: &ClaimedSockets,
    request: SocketRequest,
) -> std::io::Result<()> {
    let (line, socket) = match claims.claim(&request.address) {
        Ok(socket) => (
            serde_json::json!({
                "cmd": "NODE_HANDLE",
                "type": "net.Native",
                "msg": {"cmd": "NODE_KELPIE_SOCKET", "seq": request.seq},
            }),
            Some(socket),
        ),
        Err(e) => (
            serde_json::json!({
                "cmd": "NODE_KELPIE_SOCKET",
                "seq": request.seq,
                "code": e.code(),
                "errno": e.errno.map(|n| -n),
                "message": e.message,
            }),
            None,
        ),
    };
    let bytes = format!("{line}\n").into_bytes();
    let fds: Vec<_> = socket.iter().map(|s| s.fd()).collect();
    let borrowed = stream.as_fd();
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            kelpie_sys::send_stream_with_fds(borrowed, &bytes, &fds)
        }) {
            Ok(sent) => break sent,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    // A short write sent the descriptor with its first bytes; the rest follows plainly.
    let mut rest = &bytes[sent..];
    while !rest.is_empty() {
        stream.writable().await?;
        match stream.try_write(rest) {
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What one IPC message (`size` bytes of JSON) means to Kelpie, routed by PM2's rule: `type`
/// and `data` both truthy make a typed message (the SDK's own types are kept, the others go
/// on the bus); otherwise an object with `node_version` is the app's Node version; the shim's
/// own messages (`{kelpie: ...}`) and `"ready"` are Kelpie's; anything else is a `process:msg`
/// with `raw`.
fn ipc_signal(mut value: serde_json::Value, size: usize) -> Option<Routed> {
    use kelpie_core::SdkMessage;
    use serde_json::Value;
    if value.as_str() == Some("ready") {
        return Some(Routed::Signal(ProcessSignal::Ready));
    }
    match value.get("kelpie").and_then(|k| k.as_str()) {
        Some("listening") => return Some(Routed::Signal(ProcessSignal::Listening)),
        Some("main-ran") => return Some(Routed::Signal(ProcessSignal::MainRan)),
        Some(_) => return None,
        None => {}
    }
    let truthy = |v: &Value| match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    };
    let typed = value.get("type").is_some_and(truthy) && value.get("data").is_some_and(truthy);
    if typed {
        let kind = value["type"].as_str().unwrap_or_default();
        let for_the_manager = matches!(
            kind,
            "axm:monitor" | "axm:action" | "axm:option:configuration" | "axm:option:setPID"
        );
        if !for_the_manager {
            return Some(Routed::Signal(ProcessSignal::Message(Box::new(value))));
        }
        // Kept by the daemon: bounded (the bus's messages pass through, they are not kept).
        if size > kelpie_core::sdk::SDK_MESSAGE_MAX {
            return None;
        }
        let kind = kind.to_string();
        // Moved out, not copied: an app sends its metrics every second.
        return match (kind.as_str(), value["data"].take()) {
            ("axm:monitor", Value::Object(metrics)) => {
                Some(Routed::Sdk(SdkMessage::Monitor(metrics)))
            }
            ("axm:action", registration) => Some(Routed::Sdk(SdkMessage::Action(registration))),
            ("axm:option:configuration", Value::Object(options)) => {
                Some(Routed::Sdk(SdkMessage::Options(options)))
            }
            // PM2 filters `axm:option:setPID` (nothing sends it) and data of another shape.
            _ => None,
        };
    }
    if let Some(version) = value.get_mut("node_version") {
        return Some(Routed::Sdk(SdkMessage::NodeVersion(version.take())));
    }
    Some(Routed::Signal(ProcessSignal::Message(Box::new(
        serde_json::json!({ "raw": value }),
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// Every process's link keeps its queue's buffer once a message came: what it carries stays
    /// small (large payloads are boxed; an instance's mailbox, the same in `instance/tests.rs`).
    #[test]
    fn what_a_link_and_a_mailbox_carry_stays_small() {
        assert!(std::mem::size_of::<ProcessSignal>() <= 16);
    }

    #[test]
    fn ipc_messages_are_recognised() {
        let routed = |line: &str| ipc_signal(serde_json::from_str(line).expect("JSON"), line.len());
        let signal = |line: &str| match routed(line) {
            Some(Routed::Signal(signal)) => Some(signal),
            Some(Routed::Sdk(_)) => panic!("not a signal: {line}"),
            None => None,
        };
        let sdk = |line: &str| match routed(line) {
            Some(Routed::Sdk(said)) => Some(said),
            _ => None,
        };
        assert_eq!(signal("\"ready\""), Some(ProcessSignal::Ready));
        assert_eq!(
            signal(r#"{"kelpie":"listening","address":{"port":3000}}"#),
            Some(ProcessSignal::Listening)
        );
        assert_eq!(
            signal(r#"{"kelpie":"main-ran"}"#),
            Some(ProcessSignal::MainRan)
        );
        // Without data, or untyped: `process:msg` with `raw`, as PM2 relays it.
        assert_eq!(
            signal(r#"{"type":"process:msg"}"#),
            Some(ProcessSignal::Message(Box::new(
                serde_json::json!({"raw": {"type": "process:msg"}})
            )))
        );
        assert_eq!(
            signal(r#"{"topic":"t","data":{"a":1}}"#),
            Some(ProcessSignal::Message(Box::new(
                serde_json::json!({"raw": {"topic": "t", "data": {"a": 1}}})
            )))
        );
        assert_eq!(
            sdk(r#"{"type":"axm:monitor","data":{"m":{"value":1}}}"#),
            Some(kelpie_core::SdkMessage::Monitor(
                serde_json::from_str(r#"{"m":{"value":1}}"#).expect("JSON")
            ))
        );
        assert_eq!(
            sdk(r#"{"node_version":"20.20.2"}"#),
            Some(kelpie_core::SdkMessage::NodeVersion(serde_json::json!(
                "20.20.2"
            )))
        );
        assert_eq!(signal(r#"{"type":"axm:option:setPID","data":1}"#), None);
        let message = r#"{"type":"process:msg","data":{"n":1}}"#;
        assert_eq!(
            signal(message),
            Some(ProcessSignal::Message(Box::new(
                serde_json::from_str(message).expect("JSON")
            )))
        );
        let request = |line: &str| socket_request(&serde_json::from_str(line).expect("JSON"));
        assert_eq!(
            request(r#"{"kelpie":"listen","seq":7,"port":3000,"host":"127.0.0.1"}"#),
            Some(SocketRequest {
                seq: 7,
                address: ListenAddress::Tcp {
                    host: Some("127.0.0.1".into()),
                    port: 3000
                }
            })
        );
        assert_eq!(
            request(r#"{"kelpie":"listen","seq":1,"port":3000}"#).map(|r| r.address),
            Some(ListenAddress::Tcp {
                host: None,
                port: 3000
            })
        );
        assert_eq!(request(r#"{"kelpie":"listen","seq":1,"port":70000}"#), None);
        let connections =
            |line: &str| connections_report(&serde_json::from_str(line).expect("JSON"));
        assert_eq!(connections(r#"{"kelpie":"connections","n":16}"#), Some(16));
        assert_eq!(connections(r#"{"kelpie":"connections","n":-1}"#), None);
        assert_eq!(connections(r#"{"kelpie":"listening","n":16}"#), None);
        assert_eq!(
            request(r#"{"kelpie":"listening","seq":1,"port":3000}"#),
            None
        );
    }

    #[tokio::test]
    async fn notify_ready_and_ipc_messages_reach_the_link() {
        use std::os::linux::net::SocketAddrExt;
        let (mut link, ends) = ProcessLink::open(Some(4), None).expect("open");
        let notify = ends
            .env
            .iter()
            .find(|(k, _)| k == "NOTIFY_SOCKET")
            .map(|(_, v)| v.clone())
            .expect("NOTIFY_SOCKET");
        let name = notify.strip_prefix('@').expect("abstract");
        let client = std::os::unix::net::UnixDatagram::unbound().expect("socket");
        let address =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        client
            .send_to_addr(
                b"STATUS=warming up\nX_KELPIE_METRIC=queue_depth=3\nMAINPID=1\nREADY=1",
                &address,
            )
            .expect("send");
        // Sent before the process is known by its pid (this test's): kept for it until then.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        link.attach(std::process::id());
        assert_eq!(
            link.recv().await,
            Some(ProcessSignal::Published(Box::new(NotifyLine::Status(
                "warming up".into()
            ))))
        );
        assert_eq!(
            link.recv().await,
            Some(ProcessSignal::Published(Box::new(NotifyLine::Metric(
                "queue_depth".into(),
                Some(3.0)
            ))))
        );
        assert_eq!(link.recv().await, Some(ProcessSignal::Ready));
        client.send_to_addr(b"WATCHDOG=1", &address).expect("send");
        assert_eq!(link.recv().await, Some(ProcessSignal::Watchdog));

        let (theirs, _) = ends.fds.into_iter().next().expect("ipc end");
        let theirs = std::os::unix::net::UnixStream::from(theirs);
        theirs.set_nonblocking(true).expect("nonblocking");
        let mut theirs = tokio::net::UnixStream::from_std(theirs).expect("tokio");
        theirs.write_all(b"\"ready\"\n").await.expect("write");
        assert_eq!(link.recv().await, Some(ProcessSignal::Ready));
        assert!(link.send_message(&serde_json::json!("shutdown")));
        let mut line = String::new();
        BufReader::new(theirs)
            .read_line(&mut line)
            .await
            .expect("read");
        assert_eq!(line, "\"shutdown\"\n");
    }

    /// A process that sends metrics is paced: its metrics are kept, what else it says still
    /// arrives (within a period), a message for it is written at once, and its last words
    /// before its exit are read.
    #[tokio::test]
    async fn a_paced_channel_keeps_metrics_and_misses_nothing() {
        use std::time::Duration;
        let (mut link, ends) = ProcessLink::open(Some(4), None).expect("open");
        let (theirs, _) = ends.fds.into_iter().next().expect("ipc end");
        let theirs = std::os::unix::net::UnixStream::from(theirs);
        theirs.set_nonblocking(true).expect("nonblocking");
        let theirs = tokio::net::UnixStream::from_std(theirs).expect("tokio");
        let (read, mut write) = theirs.into_split();
        let mut read = BufReader::new(read);
        let metrics = |n: u32| {
            format!("{{\"type\":\"axm:monitor\",\"data\":{{\"reqs\":{{\"value\":{n}}}}}}}\n")
        };
        let value = |link: &ProcessLink| {
            let sdk = link.sdk();
            let mut state = sdk.lock().expect("sdk");
            state.settle();
            state.monitor.get("reqs").map(|m| m["value"].clone())
        };
        write.write_all(metrics(1).as_bytes()).await.expect("write");
        let within = |d| tokio::time::timeout(Duration::from_secs(d), std::future::pending::<()>());
        let _ = within(1).await;
        assert_eq!(value(&link), Some(serde_json::json!(1)));
        // Paced now: more metrics, then something else.
        write.write_all(metrics(2).as_bytes()).await.expect("write");
        write
            .write_all(b"{\"type\":\"process:msg\",\"data\":{\"n\":1}}\n")
            .await
            .expect("write");
        let said = tokio::time::timeout(Duration::from_secs(2), link.recv())
            .await
            .expect("the message arrives within a period");
        assert_eq!(
            said,
            Some(ProcessSignal::Message(Box::new(
                serde_json::json!({"type": "process:msg", "data": {"n": 1}})
            )))
        );
        assert_eq!(value(&link), Some(serde_json::json!(2)));
        // Paced again, then a message for the process.
        write.write_all(metrics(3).as_bytes()).await.expect("write");
        let _ = within(1).await;
        assert!(link.send_message(&serde_json::json!("shutdown")));
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(2), read.read_line(&mut line))
            .await
            .expect("written within a period")
            .expect("read");
        assert_eq!(line, "\"shutdown\"\n");
        // Paced again; its last words, then its end: read at once when told it exited.
        write.write_all(metrics(4).as_bytes()).await.expect("write");
        let _ = within(1).await;
        write
            .write_all(b"{\"type\":\"process:exception\",\"data\":{\"message\":\"x\"}}\n")
            .await
            .expect("write");
        drop(write);
        drop(read);
        let said = link.last_words().await;
        assert!(
            matches!(&said[..], [ProcessSignal::Message(m)] if m["type"] == "process:exception"),
            "{said:?}"
        );
    }
}
