//! Passing open descriptors between processes (`SCM_RIGHTS`) over Unix sequenced-packet
//! sockets: each send is one message with its descriptors, and a receive never mixes two. The
//! daemon and its keeper (which holds the apps' pipes and sockets while no daemon runs) talk
//! this way. std has no stable API for either part.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// Most descriptors one message carries (the kernel's limit is 253).
pub const MAX_FDS_PER_MESSAGE: usize = 16;

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A connected pair of sequenced-packet sockets, both close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: socketpair(2) writes two descriptors into the array we pass, which lives on our
    // stack and has room for exactly two.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: the kernel just returned these two new descriptors; each is owned once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn unix_address(path: &Path) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain old data; all zeroes is a valid (empty) value.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.is_empty() || bytes.len() >= address.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path too long or invalid: {}", path.display()),
        ));
    }
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    let length = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((address, length as libc::socklen_t))
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and returns a new descriptor or -1.
    let fd = check(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: a new descriptor, owned once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A sequenced-packet socket listening at `path` (which must not exist), close-on-exec.
pub fn seqpacket_listen(path: &Path) -> io::Result<OwnedFd> {
    let (address, length) = unix_address(path)?;
    let socket = seqpacket_socket()?;
    // SAFETY: bind(2) reads `length` bytes of `address`, a live local sockaddr_un.
    check(unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_un).cast(),
            length,
        )
    })?;
    // SAFETY: listen(2) on a descriptor we own.
    check(unsafe { libc::listen(socket.as_raw_fd(), 16) })?;
    Ok(socket)
}

/// A sequenced-packet socket connected to the listener at `path`, close-on-exec.
pub fn seqpacket_connect(path: &Path) -> io::Result<OwnedFd> {
    let (address, length) = unix_address(path)?;
    let socket = seqpacket_socket()?;
    // SAFETY: connect(2) reads `length` bytes of `address`, a live local sockaddr_un.
    check(unsafe {
        libc::connect(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_un).cast(),
            length,
        )
    })?;
    Ok(socket)
}

/// Accept one connection on `listener` (blocking unless the listener is non-blocking),
/// close-on-exec.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: accept4(2) with null address pointers writes nothing of ours.
    let fd = check(unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    })?;
    // SAFETY: a new descriptor, owned once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The uid of the process at the other end of a connected Unix socket (`SO_PEERCRED`).
pub fn peer_uid(socket: BorrowedFd<'_>) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut length = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `cred`, a live local ucred, and
    // updates `length`, a live local.
    check(unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut length,
        )
    })?;
    Ok(cred.uid)
}

/// Give a socket a receive timeout, so a peer that stops answering cannot hold us forever.
pub fn set_receive_timeout(socket: BorrowedFd<'_>, timeout: std::time::Duration) -> io::Result<()> {
    let value = libc::timeval {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt reads exactly size_of::<timeval>() bytes from a live local.
    check(unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&value as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Room for the control message of [`MAX_FDS_PER_MESSAGE`] descriptors, aligned for cmsghdr.
#[repr(C)]
struct ControlBuffer {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; 256],
}

fn control_space(fds: usize) -> usize {
    // SAFETY: CMSG_SPACE only computes a size.
    unsafe { libc::CMSG_SPACE((fds * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Send `data` as one message on `socket`, with `fds` attached (at most
/// [`MAX_FDS_PER_MESSAGE`]). Never raises SIGPIPE: a closed peer is an `Err`.
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    send_stream_with_fds(socket, data, fds).map(drop)
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
    let mut control = ControlBuffer {
        _align: [],
        bytes: [0; 256],
    };
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain old data; all zeroes is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    if !fds.is_empty() {
        let space = control_space(fds.len());
        header.msg_control = control.bytes.as_mut_ptr().cast();
        header.msg_controllen = space as _;
        // SAFETY: msg_control points at `control.bytes`, aligned for cmsghdr and at least
        // CMSG_SPACE(fds) bytes long (256 ≥ the space of 16 descriptors), so the first header
        // and its data fit; we write exactly `fds.len()` descriptors into its data.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&header);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len =
                libc::CMSG_LEN((fds.len() * std::mem::size_of::<RawFd>()) as u32) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: the header points at `iov` (which points at `data`) and `control`, all alive
        // for the call; sendmsg only reads them.
        let sent = unsafe { libc::sendmsg(socket.as_raw_fd(), &header, libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            return Ok(sent as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Receive one message from `socket` into `buf`, with the descriptors it carries (made
/// close-on-exec). `Ok((0, []))` means the peer closed. A message longer than `buf` or with
/// more than [`MAX_FDS_PER_MESSAGE`] descriptors is an error (its descriptors are closed).
pub fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut control = ControlBuffer {
        _align: [],
        bytes: [0; 256],
    };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all zeroes is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.bytes.as_mut_ptr().cast();
    header.msg_controllen = control_space(MAX_FDS_PER_MESSAGE) as _;
    let received = loop {
        // SAFETY: the header points at `iov` (over `buf`) and `control`, both alive and
        // writable for the call, with their true lengths.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut header, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to msg_controllen with well-formed headers; the
    // CMSG_* macros walk exactly those, and each SCM_RIGHTS payload holds whole descriptors
    // that are now ours (each taken once).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..payload / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&header, cmsg);
        }
    }
    if header.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message or its descriptors did not fit",
        ));
    }
    Ok((received, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_sent_over_a_pair_reads_what_was_written_to_the_original() {
        let (left, right) = seqpacket_pair().expect("pair");
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
        let (left, right) = seqpacket_pair().expect("pair");
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

    fn own_uid() -> u32 {
        crate::current_uid()
    }

    #[test]
    fn a_listener_accepts_and_passes_several_descriptors() {
        let dir = std::env::temp_dir().join(format!("kelpie-fdpass-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = seqpacket_listen(&path).expect("listen");
        let client = seqpacket_connect(&path).expect("connect");
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
