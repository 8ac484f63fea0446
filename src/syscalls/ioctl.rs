//! ioctl by a typed table: every request km serves, with how its argument is passed
//! and the size of the structure it points at. A structure is copied between checked
//! guest memory and a km buffer of exactly that size, and the host ioctl gets the km
//! buffer: no guest pointer ever reaches the host. Unknown requests are ENOTTY, as
//! Linux answers a request a descriptor's driver does not know. One difference: a
//! request that reads a structure from a bad pointer is EFAULT even on a descriptor
//! whose driver would have refused the request first (ENOTTY on Linux).

use std::os::fd::{AsFd, BorrowedFd};

use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::memory::host;

/// How a request's argument is passed, and what km does with it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arg {
    /// A plain integer (or nothing), passed on by value.
    Value,
    /// Points at a structure of this many bytes that the request reads.
    In(usize),
    /// Points at a structure of this many bytes that the request writes.
    Out(usize),
    /// Points at a structure of this many bytes that the request reads and writes.
    InOut(usize),
    /// FIOCLEX (`true`) / FIONCLEX (`false`): close-on-exec in km's descriptor table.
    CloseOnExec(bool),
    /// TIOCGPTPEER: open flags by value; returns a new guest descriptor.
    PtyPeer,
    /// SIOCGIFCONF: `struct ifconf` pointing at a nested buffer of `struct ifreq`s.
    InterfaceList,
}

const INT: usize = 4;
/// The kernel's `struct termios` (TCGETS/TCSETS*; glibc's is larger and converts).
const TERMIOS: usize = 36;
const WINSIZE: usize = 8;
/// `struct ifreq`: a 16-byte name and a 24-byte union without pointers.
const IFREQ: usize = 40;
/// `struct ifconf`: `int ifc_len`, padding, the buffer pointer.
const IFCONF: usize = 16;

/// The requests km serves: (request, name, argument).
const TABLE: &[(u64, &str, Arg)] = &[
    (libc::FIONBIO, "FIONBIO", Arg::In(INT)),
    (libc::FIOASYNC, "FIOASYNC", Arg::In(INT)),
    (libc::FIONREAD, "FIONREAD", Arg::Out(INT)),
    (libc::TIOCOUTQ, "TIOCOUTQ", Arg::Out(INT)),
    (libc::FIOCLEX, "FIOCLEX", Arg::CloseOnExec(true)),
    (libc::FIONCLEX, "FIONCLEX", Arg::CloseOnExec(false)),
    (libc::TCGETS, "TCGETS", Arg::Out(TERMIOS)),
    (libc::TCSETS, "TCSETS", Arg::In(TERMIOS)),
    (libc::TCSETSW, "TCSETSW", Arg::In(TERMIOS)),
    (libc::TCSETSF, "TCSETSF", Arg::In(TERMIOS)),
    (libc::TCFLSH, "TCFLSH", Arg::Value),
    (libc::TCXONC, "TCXONC", Arg::Value),
    (libc::TIOCGWINSZ, "TIOCGWINSZ", Arg::Out(WINSIZE)),
    (libc::TIOCSWINSZ, "TIOCSWINSZ", Arg::In(WINSIZE)),
    (libc::TIOCGPGRP, "TIOCGPGRP", Arg::Out(INT)),
    (libc::TIOCSPGRP, "TIOCSPGRP", Arg::In(INT)),
    (libc::TIOCSCTTY, "TIOCSCTTY", Arg::Value),
    (libc::TIOCNOTTY, "TIOCNOTTY", Arg::Value),
    (libc::TIOCGPTN, "TIOCGPTN", Arg::Out(INT)),
    (libc::TIOCSPTLCK, "TIOCSPTLCK", Arg::In(INT)),
    (libc::TIOCGPTPEER, "TIOCGPTPEER", Arg::PtyPeer),
    (libc::SIOCGIFNAME, "SIOCGIFNAME", Arg::InOut(IFREQ)),
    (libc::SIOCGIFINDEX, "SIOCGIFINDEX", Arg::InOut(IFREQ)),
    (libc::SIOCGIFFLAGS, "SIOCGIFFLAGS", Arg::InOut(IFREQ)),
    (libc::SIOCGIFADDR, "SIOCGIFADDR", Arg::InOut(IFREQ)),
    (libc::SIOCGIFDSTADDR, "SIOCGIFDSTADDR", Arg::InOut(IFREQ)),
    (libc::SIOCGIFBRDADDR, "SIOCGIFBRDADDR", Arg::InOut(IFREQ)),
    (libc::SIOCGIFNETMASK, "SIOCGIFNETMASK", Arg::InOut(IFREQ)),
    (libc::SIOCGIFMTU, "SIOCGIFMTU", Arg::InOut(IFREQ)),
    (libc::SIOCGIFHWADDR, "SIOCGIFHWADDR", Arg::InOut(IFREQ)),
    (libc::SIOCGIFCONF, "SIOCGIFCONF", Arg::InterfaceList),
];

/// The requests km passes to the host (all but the ones on km's own table), for
/// the seccomp allow-list.
pub fn host_requests() -> impl Iterator<Item = (u64, &'static str)> {
    TABLE
        .iter()
        .filter(|(_, _, arg)| !matches!(arg, Arg::CloseOnExec(_)))
        .map(|(nr, name, _)| (*nr, *name))
}

fn lookup(request: u64) -> Option<Arg> {
    TABLE
        .iter()
        .find(|(nr, _, _)| *nr == request)
        .map(|(_, _, arg)| *arg)
}

pub fn ioctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    // The kernel's request is an unsigned int.
    let request = a[1] & 0xffff_ffff;
    let arg = lookup(request).ok_or(Errno::NOTTY)?;
    let fd = fd.as_fd();
    match arg {
        Arg::Value => host::ioctl_value(fd, request, a[2]),
        Arg::In(len) => {
            let mut buf = ctx.read_bytes(a[2], len)?;
            host::ioctl_buffer(fd, request, &mut buf)
        }
        Arg::Out(len) => {
            let mut buf = vec![0u8; len];
            let r = host::ioctl_buffer(fd, request, &mut buf)?;
            ctx.write_bytes(a[2], &buf)?;
            Ok(r)
        }
        Arg::InOut(len) => {
            let mut buf = ctx.read_bytes(a[2], len)?;
            let r = host::ioctl_buffer(fd, request, &mut buf)?;
            ctx.write_bytes(a[2], &buf)?;
            Ok(r)
        }
        Arg::CloseOnExec(on) => {
            ctx.thread.fds(ctx.guest).set_cloexec(a[0] as i32, on)?;
            Ok(0)
        }
        Arg::PtyPeer => pty_peer(ctx, fd, a[2] as i32),
        Arg::InterfaceList => interface_list(ctx, fd, a[2]),
    }
}

/// TIOCGPTPEER: the peer opens on the host and gets the lowest free guest number.
fn pty_peer(ctx: &mut Ctx<'_>, fd: BorrowedFd<'_>, flags: i32) -> SysResult {
    let peer = host::pty_peer(fd, flags)?;
    let cloexec = flags & libc::O_CLOEXEC != 0;
    Ok(ctx.thread.fds(ctx.guest).insert(peer, cloexec, 0)? as u64)
}

/// SIOCGIFCONF: with a null buffer, the length every interface needs; otherwise as
/// many `struct ifreq`s as fit in `ifc_len` bytes, and the length written. km's
/// buffer is bounded by what the host reports it needs, never by the guest's length.
fn interface_list(ctx: &mut Ctx<'_>, fd: BorrowedFd<'_>, arg: u64) -> SysResult {
    let conf = ctx.read_bytes(arg, IFCONF)?;
    let len = i32::from_ne_bytes(conf[0..4].try_into().expect("4 bytes"));
    let buf = u64::from_ne_bytes(conf[8..16].try_into().expect("8 bytes"));
    let (needed, _) = host::ifconf(fd, None)?;
    let written = if buf == 0 {
        needed
    } else {
        let cap = len.clamp(0, needed.max(0)) as usize;
        let (written, entries) = host::ifconf(fd, Some(cap))?;
        ctx.write_bytes(buf, &entries)?;
        written
    };
    ctx.write_obj(arg, written)?;
    Ok(0)
}
