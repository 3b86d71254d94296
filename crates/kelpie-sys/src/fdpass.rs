//! Passing open descriptors between processes (`SCM_RIGHTS`) over Unix sequenced-packet
//! sockets: each send is one message with its descriptors, and a receive never mixes two. The
//! daemon and its keeper (which holds the apps' pipes and sockets while no daemon runs) talk
//! this way. std has no stable API for either part.

#[cfg(target_os = "linux")]
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use crate::portable::message_socket;

/// Most descriptors one message carries (the kernel's limit is 253).
pub const MAX_FDS_PER_MESSAGE: usize = 16;

/// Room for the control message of [`MAX_FDS_PER_MESSAGE`] descriptors.
pub(crate) const CONTROL_SPACE: usize = rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE));

/// A connected pair of sequenced-packet sockets, both close-on-exec (the portable backend:
/// stream sockets that carry the same messages, see `portable/message_socket.rs`).
pub fn message_socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        return Ok(rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?);
    }
    message_socket::pair()
}

/// The address of a socket file; our own message for a path that cannot be one (rustix's
/// would be a bare errno).
fn unix_address(path: &Path) -> io::Result<SocketAddrUnix> {
    use std::os::unix::ffi::OsStrExt;
    // `sun_path` is 108 bytes on Linux, 104 on macOS, the NUL included.
    #[cfg(target_os = "linux")]
    const SUN_PATH_LEN: usize = 108;
    #[cfg(not(target_os = "linux"))]
    const SUN_PATH_LEN: usize = 104;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= SUN_PATH_LEN || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long or invalid: {}", path.display()),
        ));
    }
    Ok(SocketAddrUnix::new(path)?)
}

#[cfg(target_os = "linux")]
fn seqpacket_socket() -> io::Result<OwnedFd> {
    Ok(rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// A sequenced-packet socket listening at `path` (which must not exist), close-on-exec.
pub fn message_socket_listen(path: &Path) -> io::Result<OwnedFd> {
    let address = unix_address(path)?;
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        let socket = seqpacket_socket()?;
        rustix::net::bind(&socket, &address)?;
        rustix::net::listen(&socket, 16)?;
        return Ok(socket);
    }
    message_socket::listen(&address)
}

/// A sequenced-packet socket connected to the listener at `path`, close-on-exec.
pub fn message_socket_connect(path: &Path) -> io::Result<OwnedFd> {
    let address = unix_address(path)?;
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        let socket = seqpacket_socket()?;
        rustix::net::connect(&socket, &address)?;
        return Ok(socket);
    }
    message_socket::connect(&address)
}

/// Accept one connection on `listener` (blocking unless the listener is non-blocking),
/// close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        return Ok(rustix::net::accept_with(listener, SocketFlags::CLOEXEC)?);
    }
    message_socket::accept(listener)
}

/// The uid of the process at the other end of a connected Unix socket (`SO_PEERCRED`).
pub fn peer_uid(socket: BorrowedFd<'_>) -> io::Result<u32> {
    #[cfg(target_os = "linux")]
    return Ok(rustix::net::sockopt::socket_peercred(socket)?.uid.as_raw());
    #[cfg(not(target_os = "linux"))]
    {
        use std::os::fd::AsRawFd;
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: getpeereid(3) writes two integers into live locals.
        if unsafe { libc::getpeereid(socket.as_raw_fd(), &mut uid, &mut gid) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(uid)
    }
}

/// Give a socket a receive timeout, so a peer that stops answering cannot hold us forever.
/// Zero means none, as for `SO_RCVTIMEO` itself (rustix refuses a zero duration).
pub fn set_receive_timeout(socket: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<()> {
    let timeout = (!timeout.is_zero()).then_some(timeout);
    rustix::net::sockopt::set_socket_timeout(socket, rustix::net::sockopt::Timeout::Recv, timeout)?;
    Ok(())
}

/// Give a socket a send timeout: a send that could not queue its message within it fails
/// (`WouldBlock`) instead of waiting for a peer that stopped reading. Zero means none.
pub fn set_send_timeout(socket: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<()> {
    let timeout = (!timeout.is_zero()).then_some(timeout);
    rustix::net::sockopt::set_socket_timeout(socket, rustix::net::sockopt::Timeout::Send, timeout)?;
    Ok(())
}

/// Send `data` as one message on `socket`, with `fds` attached (at most
/// [`MAX_FDS_PER_MESSAGE`]). Never raises SIGPIPE: a closed peer is an `Err`.
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if !crate::platform::portable() {
        return send_stream_with_fds(socket, data, fds).map(drop);
    }
    message_socket::send(socket, data, fds)
}

/// Like [`send_with_fds`], returning how many bytes were sent: on a stream socket that may be
/// fewer than `data` (the descriptors go with the first byte; send the rest plainly). A
/// non-blocking socket that is full gives `WouldBlock`.
pub fn send_stream_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<usize> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many descriptors for one message",
        ));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = SendAncillaryBuffer::new(&mut space);
    // The buffer has room for MAX_FDS_PER_MESSAGE descriptors, checked above.
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors do not fit the control buffer",
        ));
    }
    let iov = [IoSlice::new(data)];
    Ok(rustix::io::retry_on_intr(|| {
        rustix::net::sendmsg(socket, &iov, &mut control, NO_SIGPIPE)
    })?)
}

/// Keeps a send from raising SIGPIPE where the system can (macOS cannot per send: the daemon
/// ignores SIGPIPE there, and a closed peer is an `EPIPE` error all the same).
#[cfg(target_os = "linux")]
pub(crate) const NO_SIGPIPE: SendFlags = SendFlags::NOSIGNAL;
#[cfg(not(target_os = "linux"))]
pub(crate) const NO_SIGPIPE: SendFlags = SendFlags::empty();

/// Receive one message from `socket` into `buf`, with the descriptors it carries (made
/// close-on-exec). `Ok((0, []))` means the peer closed. A message longer than `buf` or with
/// more than [`MAX_FDS_PER_MESSAGE`] descriptors is an error (its descriptors are closed).
pub fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    if crate::platform::portable() {
        return message_socket::recv(socket, buf);
    }
    let mut space = [MaybeUninit::<u8>::uninit(); CONTROL_SPACE];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let received = rustix::io::retry_on_intr(|| {
        rustix::net::recvmsg(socket, &mut iov, &mut control, cmsg_cloexec())
    })?;
    // Take every descriptor that came, so that those of a refused message are closed.
    let fds = received_fds(&mut control);
    // rustix's buffer has a little more room than the descriptors need (for its alignment):
    // more than MAX_FDS_PER_MESSAGE may then fit, and are refused all the same.
    if received
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
        || fds.len() > MAX_FDS_PER_MESSAGE
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message or its descriptors did not fit",
        ));
    }
    Ok((received.bytes, fds))
}

/// Every descriptor a received message carried (owned from here: closed if dropped).
pub(crate) fn received_fds(control: &mut RecvAncillaryBuffer<'_>) -> Vec<OwnedFd> {
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    fds
}

/// `MSG_CMSG_CLOEXEC`, which only Linux's sequenced-packet path uses (the portable one marks
/// the descriptors itself).
fn cmsg_cloexec() -> RecvFlags {
    #[cfg(target_os = "linux")]
    return RecvFlags::CMSG_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    return RecvFlags::empty();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_sent_over_a_pair_reads_what_was_written_to_the_original() {
        let (left, right) = message_socket_pair().expect("pair");
        let (reader, mut writer) = std::io::pipe().expect("pipe");
        send_with_fds(left.as_fd(), b"hello", &[reader.as_fd()]).expect("send");
        drop(reader);
        let mut buf = [0u8; 64];
        let (n, mut fds) = recv_with_fds(right.as_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        writer.write_all(b"through").expect("write");
        drop(writer);
        let mut got = String::new();
        std::fs::File::from(fds.remove(0))
            .read_to_string(&mut got)
            .expect("read");
        assert_eq!(got, "through");
    }

    #[test]
    fn messages_keep_their_boundaries_and_a_closed_peer_reads_as_empty() {
        let (left, right) = message_socket_pair().expect("pair");
        send_with_fds(left.as_fd(), b"one", &[]).expect("send");
        send_with_fds(left.as_fd(), b"two", &[]).expect("send");
        drop(left);
        let mut buf = [0u8; 64];
        let (n, _) = recv_with_fds(right.as_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"one");
        let (n, _) = recv_with_fds(right.as_fd(), &mut buf).expect("recv");
        assert_eq!(&buf[..n], b"two");
        let (n, fds) = recv_with_fds(right.as_fd(), &mut buf).expect("recv");
        assert_eq!((n, fds.len()), (0, 0));
        assert!(
            send_with_fds(right.as_fd(), b"x", &[]).is_err(),
            "no SIGPIPE, an error"
        );
    }

    #[test]
    fn a_message_with_more_descriptors_than_allowed_is_refused() {
        let (left, right) = message_socket_pair().expect("pair");
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let many = vec![reader.as_fd(); MAX_FDS_PER_MESSAGE + 1];
        // Our own send refuses it; a peer that is not us may still send one.
        assert!(send_with_fds(left.as_fd(), b"x", &many).is_err());
        let mut space = [MaybeUninit::<u8>::uninit(); 512];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&many)));
        rustix::net::sendmsg(
            &left,
            &[IoSlice::new(b"x")],
            &mut control,
            SendFlags::empty(),
        )
        .expect("send");
        let mut buf = [0u8; 8];
        let error = recv_with_fds(right.as_fd(), &mut buf).expect_err("too many");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    fn own_uid() -> u32 {
        crate::current_uid()
    }

    #[test]
    fn a_listener_accepts_and_passes_several_descriptors() {
        let dir = std::env::temp_dir().join(format!("kelpie-fdpass-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = message_socket_listen(&path).expect("listen");
        let client = message_socket_connect(&path).expect("connect");
        let server = accept(listener.as_fd()).expect("accept");
        assert_eq!(peer_uid(server.as_fd()).expect("peer"), own_uid());
        let pipes: Vec<_> = (0..3).map(|_| std::io::pipe().expect("pipe")).collect();
        let ends: Vec<BorrowedFd<'_>> = pipes.iter().map(|(r, _)| r.as_fd()).collect();
        send_with_fds(client.as_fd(), b"3", &ends).expect("send");
        let mut buf = [0u8; 8];
        let (_, fds) = recv_with_fds(server.as_fd(), &mut buf).expect("recv");
        assert_eq!(fds.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Which open file a descriptor refers to (its device and inode): enough to recognise it
/// later by its number, without holding a second descriptor of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
}

/// The identity of the file `fd` refers to.
pub fn file_identity(fd: BorrowedFd<'_>) -> io::Result<FileIdentity> {
    let stat = rustix::fs::fstat(fd)?;
    // Their widths differ by system (macOS's `st_dev` is 32 bits).
    #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
    Ok(FileIdentity {
        dev: stat.st_dev as u64,
        ino: stat.st_ino as u64,
    })
}

/// A new descriptor (close-on-exec) of the file open at number `raw` in this process, if it
/// is still the file `identity` names: `None` once that number was closed, or reused for
/// another file.
pub fn dup_if_still(raw: std::os::fd::RawFd, identity: FileIdentity) -> Option<OwnedFd> {
    use std::os::fd::{AsFd, FromRawFd};
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only reads the number: with nothing open there it fails
    // with EBADF, and it never changes the descriptor it copies.
    let copy = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return None;
    }
    // SAFETY: `copy` is a new descriptor made just above, owned by no one else.
    let copy = unsafe { OwnedFd::from_raw_fd(copy) };
    (file_identity(copy.as_fd()).ok()? == identity).then_some(copy)
}
