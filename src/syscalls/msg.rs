//! sendmsg, recvmsg and sendmmsg: the guest's `struct msghdr` read and written
//! field by field, its buffers as checked guest memory, and descriptors passed in
//! SCM_RIGHTS control messages translated between guest numbers and km's host
//! descriptors both ways.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

use rustix::io::Errno;

use super::fs::iov_slices;
use super::net::read_sockaddr;
use super::{Ctx, SysResult};
use crate::kernel::lock;
use crate::memory::host;

/// Offsets in `struct msghdr`.
const MSG_NAME: u64 = 0;
const MSG_NAMELEN: u64 = 8;
const MSG_IOV: u64 = 16;
const MSG_IOVLEN: u64 = 24;
const MSG_CONTROL: u64 = 32;
const MSG_CONTROLLEN: u64 = 40;
const MSG_FLAGS: u64 = 48;
/// Size of `struct mmsghdr` (a msghdr and the count sent).
const MMSGHDR_SIZE: u64 = 64;
/// Largest address and control data km passes (the kernel's optmem limit is similar).
const NAME_MAX: u64 = 128;
const CONTROL_MAX: u64 = 64 << 10;
/// Most messages one sendmmsg sends (Linux's UIO_MAXIOV).
const MMSG_MAX: u64 = 1024;
/// Size of `struct cmsghdr` (len, level, type).
const CMSG_HEADER: usize = 16;

/// The control messages in `control`: (offset of the data, data length, level, type).
fn cmsgs(control: &[u8]) -> Vec<(usize, usize, i32, i32)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + CMSG_HEADER <= control.len() {
        let word = |o: usize, n: usize| &control[at + o..at + o + n];
        let len = u64::from_ne_bytes(word(0, 8).try_into().expect("8 bytes")) as usize;
        if len < CMSG_HEADER || at + len > control.len() {
            break;
        }
        let level = i32::from_ne_bytes(word(8, 4).try_into().expect("4 bytes"));
        let kind = i32::from_ne_bytes(word(12, 4).try_into().expect("4 bytes"));
        out.push((at + CMSG_HEADER, len - CMSG_HEADER, level, kind));
        at += len.next_multiple_of(8);
    }
    out
}

fn is_rights(level: i32, kind: i32) -> bool {
    level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS
}

/// Rewrites the guest descriptors in SCM_RIGHTS messages of `control` as km's host
/// descriptors; returns those (to keep them open across the call).
fn fds_to_host(ctx: &Ctx<'_>, control: &mut [u8]) -> Result<Vec<Arc<OwnedFd>>, Errno> {
    let mut held = Vec::new();
    for (data, len, level, kind) in cmsgs(control) {
        if !is_rights(level, kind) {
            continue;
        }
        for slot in control[data..data + len].chunks_exact_mut(4) {
            let guest = i32::from_ne_bytes((&*slot).try_into().expect("4 bytes"));
            let host = lock(&ctx.guest.fds).get(guest)?;
            slot.copy_from_slice(&host.as_raw_fd().to_ne_bytes());
            held.push(host);
        }
    }
    Ok(held)
}

/// Installs the descriptors received in SCM_RIGHTS messages of `control` in the
/// guest's table and rewrites them as guest numbers.
fn fds_to_guest(ctx: &Ctx<'_>, control: &mut [u8], cloexec: bool) -> Result<(), Errno> {
    for (data, len, level, kind) in cmsgs(control) {
        if !is_rights(level, kind) {
            continue;
        }
        for slot in control[data..data + len].chunks_exact_mut(4) {
            let host = i32::from_ne_bytes((&*slot).try_into().expect("4 bytes"));
            let fd = host::adopt_received_fd(host);
            let guest = lock(&ctx.guest.fds).insert(fd, cloexec, 0)?;
            slot.copy_from_slice(&guest.to_ne_bytes());
        }
    }
    Ok(())
}

/// One sendmsg of the guest msghdr at `hdr`.
fn send_one(ctx: &Ctx<'_>, fd: &OwnedFd, hdr: u64, flags: i32) -> SysResult {
    let name_addr: u64 = ctx.read_obj(hdr + MSG_NAME)?;
    let name_len: u32 = ctx.read_obj(hdr + MSG_NAMELEN)?;
    let name = if name_addr != 0 && name_len > 0 {
        Some(read_sockaddr(ctx, name_addr, name_len as u64)?)
    } else {
        None
    };
    let iov: u64 = ctx.read_obj(hdr + MSG_IOV)?;
    let iovlen: u64 = ctx.read_obj(hdr + MSG_IOVLEN)?;
    let bufs = iov_slices(ctx, iov, iovlen, true)?;
    let control_addr: u64 = ctx.read_obj(hdr + MSG_CONTROL)?;
    let control_len: u64 = ctx.read_obj(hdr + MSG_CONTROLLEN)?;
    if control_len > CONTROL_MAX {
        return Err(Errno::NOBUFS);
    }
    let mut control = if control_addr != 0 && control_len > 0 {
        ctx.read_bytes(control_addr, control_len as usize)?
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
    let count = a[2].min(MMSG_MAX);
    let mut sent = 0;
    for i in 0..count {
        let hdr = a[1] + i * MMSGHDR_SIZE;
        match send_one(ctx, &fd, hdr, a[3] as i32) {
            Ok(n) => {
                ctx.write_obj(hdr + 56, n as u32)?;
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
    let (hdr, flags) = (a[1], a[2] as i32);
    let name_addr: u64 = ctx.read_obj(hdr + MSG_NAME)?;
    let name_cap = if name_addr != 0 {
        (ctx.read_obj::<u32>(hdr + MSG_NAMELEN)? as u64).min(NAME_MAX) as usize
    } else {
        0
    };
    let iov: u64 = ctx.read_obj(hdr + MSG_IOV)?;
    let iovlen: u64 = ctx.read_obj(hdr + MSG_IOVLEN)?;
    let bufs = iov_slices(ctx, iov, iovlen, false)?;
    let control_addr: u64 = ctx.read_obj(hdr + MSG_CONTROL)?;
    let control_cap = if control_addr != 0 {
        ctx.read_obj::<u64>(hdr + MSG_CONTROLLEN)?.min(CONTROL_MAX) as usize
    } else {
        0
    };
    let mut got = host::recvmsg(fd.as_fd(), name_cap, &bufs, control_cap, flags)?;
    fds_to_guest(ctx, &mut got.control, flags & libc::MSG_CMSG_CLOEXEC != 0)?;
    if name_cap > 0 {
        ctx.write_bytes(name_addr, &got.name)?;
        ctx.write_obj(hdr + MSG_NAMELEN, got.name_len)?;
    }
    if control_cap > 0 {
        ctx.write_bytes(control_addr, &got.control)?;
    }
    ctx.write_obj(hdr + MSG_CONTROLLEN, got.control.len() as u64)?;
    ctx.write_obj(hdr + MSG_FLAGS, got.flags)?;
    Ok(got.len as u64)
}
