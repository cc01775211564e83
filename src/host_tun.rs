//! The kernel's tun driver and descriptor passing, for the bridge helper (qemu's
//! bridge-helper protocol): open a tap NetworkManager made (`TUNSETIFF`), make it go with its
//! last open descriptor (`TUNSETPERSIST 0`), and hand the descriptor to qemu or libvirt over
//! the UNIX socket they passed (one byte and `SCM_RIGHTS`).
//!
//! The one module allowed `unsafe`: rustix has no tun ioctls, and a descriptor number taken
//! from the command line is a claim about this process's descriptor table that only a check
//! at run time can back. Each `unsafe` block is a single call, with why it is sound beside it.
#![allow(unsafe_code)]

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `_IOW('T', 202, int)`: attach this descriptor to a tun/tap device.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
/// `_IOW('T', 203, int)`: keep the device after its last descriptor closes (1), or not (0).
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
/// `ifr_flags`: a tap (ethernet frames), no packet information header, a virtio-net header,
/// several queues.
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
const IFF_MULTI_QUEUE: i16 = 0x0100;

/// `struct ifreq` as the tun ioctls read it: the name, then `ifr_flags` at the start of the
/// 24-byte union (40 bytes on every 64-bit Linux).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _rest: [u8; 22],
}

/// Why a tap could not be opened or handed over.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open /dev/net/tun: {0}")]
    Device(std::io::Error),
    /// The kernel refused to attach to the tap (EPERM: it is not the caller's).
    #[error("the kernel refused to open tap {name}: {source}")]
    Attach {
        /// The tap.
        name: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The kernel refused to make the tap go with its last descriptor.
    #[error("the kernel refused to make tap {name} transient: {source}")]
    Persist {
        /// The tap.
        name: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// The descriptor number given is not a UNIX socket this process has open.
    #[error("--fd={fd}: {why}")]
    NotASocket {
        /// The number given.
        fd: RawFd,
        /// What it is instead.
        why: String,
    },
    /// Sending the descriptor failed (the caller closed its end).
    #[error("cannot send the tap to the caller over --fd: {0}")]
    Send(std::io::Error),
}

fn name_bytes(name: &str) -> [u8; 16] {
    let mut b = [0u8; 16];
    // Longer names never reach here (Linux names are at most 15 bytes, checked by the caller);
    // a longer one is cut and the kernel then finds no such device.
    let n = name.len().min(15);
    b[..n].copy_from_slice(&name.as_bytes()[..n]);
    b
}

/// Opens existing tap `name` the way qemu does: frames without packet information, with a
/// virtio-net header when `vnet_hdr`, one queue of several when `multi_queue` (it must match
/// how the tap was made).
pub fn open_tap(name: &str, vnet_hdr: bool, multi_queue: bool) -> Result<OwnedFd, TunError> {
    let file = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").map_err(TunError::Device)?;
    let fd = OwnedFd::from(file);
    let mut flags = IFF_TAP | IFF_NO_PI;
    if vnet_hdr {
        flags |= IFF_VNET_HDR;
    }
    if multi_queue {
        flags |= IFF_MULTI_QUEUE;
    }
    let mut req = IfReq { name: name_bytes(name), flags, _rest: [0; 22] };
    // SAFETY: `fd` is an open /dev/net/tun descriptor and TUNSETIFF reads and writes one
    // `struct ifreq`, which `req` is (40 bytes, C layout) and outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(TunError::Attach { name: name.to_string(), source: std::io::Error::last_os_error() });
    }
    Ok(fd)
}

/// Makes the tap behind `fd` go when its last descriptor closes: when the VM that holds it
/// exits, however it exits.
pub fn make_transient(fd: BorrowedFd<'_>, name: &str) -> Result<(), TunError> {
    // SAFETY: TUNSETPERSIST takes its argument by value (an int); no memory is passed.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETPERSIST, 0 as libc::c_ulong) };
    if rc < 0 {
        return Err(TunError::Persist { name: name.to_string(), source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Takes descriptor `fd`, given on the command line (`--fd=N`), as the UNIX socket to hand the
/// tap over: refused unless it is open, not standard input, output or error, and a UNIX
/// socket. Checked before anything changes, so a bad `--fd` creates nothing.
pub fn caller_socket(fd: RawFd) -> Result<OwnedFd, TunError> {
    let bad = |why: &str| TunError::NotASocket { fd, why: why.to_string() };
    if fd < 3 {
        return Err(bad("not a socket (0, 1 and 2 are standard input, output and error)"));
    }
    // F_GETFD is answered for any number: EBADF when nothing is open there.
    // SAFETY: fcntl(F_GETFD) reads no memory and works on any number.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(bad("no such open descriptor"));
    }
    // SAFETY: `fd` is open (just checked) and stays open while borrowed here: nothing in this
    // single-purpose process closes descriptors behind the helper's back.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match rustix::net::getsockname(borrowed) {
        Ok(addr) if addr.address_family() == rustix::net::AddressFamily::UNIX => {}
        Ok(_) => return Err(bad("a socket, but not a UNIX socket")),
        Err(rustix::io::Errno::NOTSOCK) => return Err(bad("not a socket")),
        Err(e) => return Err(bad(&std::io::Error::from(e).to_string())),
    }
    // SAFETY: the descriptor is open and was given to this process for the helper alone
    // (qemu's protocol): taking ownership means it is closed once, here, after the send.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `tap` over `socket` as qemu's bridge helper does: one zero byte carrying the
/// descriptor (`SCM_RIGHTS`).
pub fn send_fd(socket: BorrowedFd<'_>, tap: BorrowedFd<'_>) -> Result<(), TunError> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [tap.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(socket, &[IoSlice::new(&[0u8])], &mut control, SendFlags::NOSIGNAL)
        .map_err(|e| TunError::Send(e.into()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_is_the_kernels_size() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    /// A bad `--fd` is refused before anything happens: standard streams, a closed number,
    /// a file that is not a socket.
    #[test]
    fn only_an_open_unix_socket_is_taken() {
        assert!(matches!(caller_socket(1), Err(TunError::NotASocket { .. })));
        assert!(matches!(caller_socket(987_654), Err(TunError::NotASocket { .. })));
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let err = caller_socket(file.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
    }

    /// The descriptor arrives at the other end of a socket pair with its byte.
    #[test]
    fn a_descriptor_crosses_a_socket_pair() {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        send_fd(a.as_fd(), file.as_fd()).unwrap();
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [9u8; 1];
        let got =
            rustix::net::recvmsg(&b, &mut [std::io::IoSliceMut::new(&mut byte)], &mut control, RecvFlags::empty())
                .unwrap();
        assert_eq!((got.bytes, byte[0]), (1, 0));
        let fds: Vec<OwnedFd> = control
            .drain()
            .filter_map(|m| match m {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds.collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(fds.len(), 1);
    }
}
