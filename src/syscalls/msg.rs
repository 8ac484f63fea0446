//! sendmsg, recvmsg and sendmmsg: the guest's `struct msghdr` read in one piece and
//! written back field by field, its buffers as checked guest memory, and descriptors
//! passed in SCM_RIGHTS control messages translated between guest numbers and km's
//! host descriptors both ways.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use rustix::io::Errno;

use super::fs::{IOV_MAX, iov_slices};
use super::net::read_sockaddr;
use super::{Ctx, SysResult};
use crate::memory::host;

/// Offsets in `struct msghdr` of the fields km writes back.
const MSG_NAMELEN: u64 = 8;
const MSG_CONTROLLEN: u64 = 40;
const MSG_FLAGS: u64 = 48;
/// Offset in `struct mmsghdr` of the count sent.
const MMSG_LEN: u64 = 56;
/// Size of `struct mmsghdr` (a msghdr and the count sent).
const MMSGHDR_SIZE: u64 = 64;
/// Largest address and control data km passes (the kernel's optmem limit is similar).
const NAME_MAX: u64 = 128;
const CONTROL_MAX: u64 = 64 << 10;
/// Size of `struct cmsghdr` (len, level, type).
const CMSG_HEADER: usize = 16;

/// One control message of a `msg_control` buffer.
struct Cmsg {
    /// Offset of the data in the buffer.
    data: usize,
    len: usize,
    level: i32,
    kind: i32,
}

/// The control messages in `control`, checked as Linux's CMSG_OK does: each
/// `cmsg_len` covers at least its header and stays inside the buffer (EINVAL).
fn cmsgs(control: &[u8]) -> Result<Vec<Cmsg>, Errno> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while control.len().saturating_sub(at) >= CMSG_HEADER {
        let field = |o: usize, n: usize| &control[at + o..at + o + n];
        let len = u64::from_ne_bytes(field(0, 8).try_into().expect("8 bytes"));
        let room = (control.len() - at) as u64;
        if len < CMSG_HEADER as u64 || len > room {
            return Err(Errno::INVAL);
        }
        let len = len as usize;
        out.push(Cmsg {
            data: at + CMSG_HEADER,
            len: len - CMSG_HEADER,
            level: i32::from_ne_bytes(field(8, 4).try_into().expect("4 bytes")),
            kind: i32::from_ne_bytes(field(12, 4).try_into().expect("4 bytes")),
        });
        // `len` is at most the buffer's length, so aligning it cannot overflow.
        at += len.next_multiple_of(8);
    }
    Ok(out)
}

impl Cmsg {
    fn is_rights(&self) -> bool {
        self.level == libc::SOL_SOCKET && self.kind == libc::SCM_RIGHTS
    }
}

/// Rewrites the guest descriptors in SCM_RIGHTS messages of `control` as km's host
/// descriptors; returns those (to keep them open across the call).
fn fds_to_host(ctx: &Ctx<'_>, control: &mut [u8]) -> Result<Vec<Arc<OwnedFd>>, Errno> {
    let mut held = Vec::new();
    for cmsg in cmsgs(control)?.iter().filter(|c| c.is_rights()) {
        for slot in control[cmsg.data..cmsg.data + cmsg.len].chunks_exact_mut(4) {
            let guest = i32::from_ne_bytes((&*slot).try_into().expect("4 bytes"));
            let host = ctx.thread.fds(ctx.guest).get(guest)?;
            slot.copy_from_slice(&host.as_raw_fd().to_ne_bytes());
            held.push(host);
        }
    }
    Ok(held)
}

/// Installs the descriptors received in SCM_RIGHTS messages of `control` in the
/// guest's table and rewrites them as guest numbers. One that does not fit (no
/// free number below the guest's RLIMIT_NOFILE) ends it as Linux's
/// scm_detach_fds does: the message keeps those installed before it (or goes,
/// with none), the rest are closed, the control data ends there, and the result
/// is true (the caller sets MSG_CTRUNC).
fn fds_to_guest(ctx: &Ctx<'_>, control: &mut Vec<u8>, cloexec: bool) -> Result<bool, Errno> {
    let mut end = None;
    for cmsg in cmsgs(control)?.iter().filter(|c| c.is_rights()) {
        let header = cmsg.data - CMSG_HEADER;
        for i in 0..cmsg.len / 4 {
            let slot = cmsg.data + 4 * i..cmsg.data + 4 * i + 4;
            let host = i32::from_ne_bytes(control[slot.clone()].try_into().expect("4 bytes"));
            // Adopted even when dropped, so that it is closed.
            let fd = host::adopt_received_fd(host);
            if end.is_some() {
                continue;
            }
            match ctx.thread.fds(ctx.guest).insert(fd, cloexec, 0) {
                Ok(guest) => control[slot].copy_from_slice(&guest.to_ne_bytes()),
                Err(_) if i == 0 => end = Some(header),
                Err(_) => {
                    let len = CMSG_HEADER + 4 * i;
                    control[header..header + 8].copy_from_slice(&(len as u64).to_ne_bytes());
                    end = Some((header + len.next_multiple_of(8)).min(control.len()));
                }
            }
        }
    }
    if let Some(end) = end {
        control.truncate(end);
    }
    Ok(end.is_some())
}

/// The fields of a guest `struct msghdr` km reads.
struct MsgHdr {
    name: u64,
    name_len: u32,
    iov: u64,
    iov_len: u64,
    control: u64,
    control_len: u64,
}

impl MsgHdr {
    /// The msghdr at `hdr`, read in one piece (EFAULT unless all of it is readable).
    fn read(ctx: &Ctx<'_>, hdr: u64) -> Result<MsgHdr, Errno> {
        let [name, name_len, iov, iov_len, control, control_len, _flags]: [u64; 7] =
            ctx.read_obj(hdr)?;
        let name_len = name_len as u32;
        if (name_len as i32) < 0 {
            // msg_namelen is an int to Linux.
            return Err(Errno::INVAL);
        }
        if iov_len > IOV_MAX {
            return Err(Errno::MSGSIZE);
        }
        Ok(MsgHdr {
            name,
            // Linux cuts a longer address length to a sockaddr_storage.
            name_len: if name == 0 {
                0
            } else {
                name_len.min(NAME_MAX as u32)
            },
            iov,
            iov_len,
            control,
            control_len,
        })
    }
}

/// One sendmsg of the guest msghdr at `hdr`.
fn send_one(ctx: &Ctx<'_>, fd: &OwnedFd, hdr: u64, flags: i32) -> SysResult {
    let msg = MsgHdr::read(ctx, hdr)?;
    let name = if msg.name_len > 0 {
        Some(read_sockaddr(ctx, msg.name, msg.name_len as u64)?)
    } else {
        None
    };
    let bufs = iov_slices(ctx, msg.iov, msg.iov_len, true)?;
    if msg.control_len > CONTROL_MAX {
        return Err(Errno::NOBUFS);
    }
    let mut control = if msg.control != 0 && msg.control_len > 0 {
        ctx.read_bytes(msg.control, msg.control_len as usize)?
    } else {
        Vec::new()
    };
    let _held = fds_to_host(ctx, &mut control)?;
    Ok(host::sendmsg(fd.as_fd(), name.as_deref(), &bufs, &control, flags)? as u64)
}

pub fn sendmsg(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    send_one(ctx, &fd, a[1], a[2] as i32)
}

/// sendmmsg: the messages one by one; the count sent, or the first error if none
/// was.
pub fn sendmmsg(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let count = a[2].min(IOV_MAX);
    let mut sent = 0;
    for i in 0..count {
        // i < IOV_MAX (UIO_MAXIOV, sendmmsg's cap too): the offset cannot overflow,
        // the guest's base can.
        let hdr = a[1].checked_add(i * MMSGHDR_SIZE).ok_or(Errno::FAULT);
        match hdr.and_then(|hdr| send_one(ctx, &fd, hdr, a[3] as i32).map(|n| (hdr, n))) {
            Ok((hdr, n)) => {
                ctx.write_obj(hdr + MMSG_LEN, n as u32)?;
                sent += 1;
            }
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(sent)
}

pub fn recvmsg(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    Ok(recv_one(ctx, &fd, a[1], a[2] as i32)? as u64)
}

/// Receives one message into the guest's msghdr at `hdr`; its length.
fn recv_one(ctx: &Ctx<'_>, fd: &OwnedFd, hdr: u64, flags: i32) -> Result<usize, Errno> {
    let msg = MsgHdr::read(ctx, hdr)?;
    let name_cap = msg.name_len as usize;
    let bufs = iov_slices(ctx, msg.iov, msg.iov_len, false)?;
    let control_cap = if msg.control != 0 {
        msg.control_len.min(CONTROL_MAX) as usize
    } else {
        0
    };
    let mut got = host::recvmsg(fd.as_fd(), name_cap, &bufs, control_cap, flags)?;
    let cut = fds_to_guest(ctx, &mut got.control, flags & libc::MSG_CMSG_CLOEXEC != 0)?;
    if name_cap > 0 {
        ctx.write_bytes(msg.name, &got.name)?;
        ctx.write_obj(hdr + MSG_NAMELEN, got.name_len)?;
    }
    if control_cap > 0 {
        ctx.write_bytes(msg.control, &got.control)?;
    }
    ctx.write_obj(hdr + MSG_CONTROLLEN, got.control.len() as u64)?;
    // km always asks for close-on-exec host descriptors; the guest sees its own flag.
    let mut flags_out = got.flags & !(libc::MSG_CMSG_CLOEXEC & !flags);
    if cut {
        flags_out |= libc::MSG_CTRUNC;
    }
    ctx.write_obj(hdr + MSG_FLAGS, flags_out)?;
    Ok(got.len)
}

/// recvmmsg(fd, msgvec, vlen, flags, timeout): messages one by one, as sendmmsg;
/// after the first, MSG_WAITFORONE makes the rest non-blocking, and a timeout is
/// checked after each message (as Linux does). The count received, or the first
/// error if none was.
pub fn recvmmsg(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let flags = a[3] as i32;
    let deadline = if a[4] != 0 {
        let [sec, nsec]: [i64; 2] = ctx.read_obj(a[4])?;
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Errno::INVAL);
        }
        let limit = std::time::Duration::new(sec as u64, nsec as u32);
        Some(
            std::time::Instant::now()
                .checked_add(limit)
                .ok_or(Errno::INVAL)?,
        )
    } else {
        None
    };
    let count = a[2].min(IOV_MAX);
    let mut received = 0;
    for i in 0..count {
        let mut flags_i = flags & !libc::MSG_WAITFORONE;
        if i > 0 && flags & libc::MSG_WAITFORONE != 0 {
            flags_i |= libc::MSG_DONTWAIT;
        }
        // i < IOV_MAX: the offset cannot overflow, the guest's base can.
        let hdr = a[1].checked_add(i * MMSGHDR_SIZE).ok_or(Errno::FAULT);
        match hdr.and_then(|hdr| recv_one(ctx, &fd, hdr, flags_i).map(|n| (hdr, n))) {
            Ok((hdr, n)) => {
                ctx.write_obj(hdr + MMSG_LEN, n as u32)?;
                received += 1;
            }
            Err(e) if received == 0 => return Err(e),
            Err(_) => break,
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    Ok(received)
}
