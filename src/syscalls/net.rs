//! Sockets, served on host sockets. Socket addresses are copied between guest memory
//! and km buffers; data moves straight between guest memory and the host socket.

use std::os::fd::AsFd;

use rustix::io::Errno;
use rustix::net::{AddressFamily, Protocol, Shutdown, SocketFlags, SocketType};

use super::{Ctx, SysResult};
use crate::memory::host::{self, SockAddrOut};

/// Largest socket address km copies (sizeof(struct sockaddr_storage)).
const SOCKADDR_MAX: u64 = 128;
/// Largest socket option value km copies.
const SOCKOPT_MAX: u64 = 4096;
const TYPE_FLAGS: u32 = (libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u32;

fn parts(ty: u64) -> (SocketType, SocketFlags, bool) {
    let ty = ty as u32;
    let flags = SocketFlags::from_bits_retain(ty & TYPE_FLAGS);
    (
        SocketType::from_raw(ty & !TYPE_FLAGS),
        flags | SocketFlags::CLOEXEC,
        flags.contains(SocketFlags::CLOEXEC),
    )
}

fn protocol(p: u64) -> Option<Protocol> {
    std::num::NonZeroU32::new(p as u32).map(Protocol::from_raw)
}

pub fn socket(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (ty, flags, cloexec) = parts(a[1]);
    let fd = rustix::net::socket_with(
        AddressFamily::from_raw(a[0] as u16),
        ty,
        flags,
        protocol(a[2]),
    )?;
    Ok(ctx.thread.fds(ctx.guest).insert(fd, cloexec, 0)? as u64)
}

pub fn socketpair(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (ty, flags, cloexec) = parts(a[1]);
    ctx.writable(a[3], 8)?;
    let (x, y) = rustix::net::socketpair(
        AddressFamily::from_raw(a[0] as u16),
        ty,
        flags,
        protocol(a[2]),
    )?;
    let mut fds = ctx.thread.fds(ctx.guest);
    let x = fds.insert(x, cloexec, 0)?;
    let y = match fds.insert(y, cloexec, 0) {
        Ok(y) => y,
        Err(e) => {
            fds.close(x)?;
            return Err(e);
        }
    };
    drop(fds);
    ctx.write_obj(a[3], [x, y])?;
    Ok(0)
}

/// The socket address at `addr`, `len` bytes long (an int to Linux: only its low
/// 32 bits count, and a negative or too long one is EINVAL).
pub(super) fn read_sockaddr(ctx: &Ctx<'_>, addr: u64, len: u64) -> Result<Vec<u8>, Errno> {
    let len = len as u32 as u64;
    if len > SOCKADDR_MAX {
        return Err(Errno::INVAL);
    }
    ctx.read_bytes(addr, len as usize)
}

pub fn bind(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let addr = read_sockaddr(ctx, a[1], a[2])?;
    host::with_sockaddr(fd.as_fd(), &addr, libc::bind)?;
    Ok(0)
}

pub fn connect(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let addr = read_sockaddr(ctx, a[1], a[2])?;
    host::with_sockaddr(fd.as_fd(), &addr, libc::connect)?;
    Ok(0)
}

pub fn listen(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    rustix::net::listen(ctx.fd(a[0])?, a[1] as i32)?;
    Ok(0)
}

/// The buffer length behind a `socklen_t *` argument, if the pointer is non-null.
fn addr_len(ctx: &Ctx<'_>, addr: u64, len_ptr: u64) -> Result<Option<usize>, Errno> {
    if addr == 0 || len_ptr == 0 {
        return Ok(None);
    }
    let len: i32 = ctx.read_obj(len_ptr)?;
    if len < 0 {
        return Err(Errno::INVAL);
    }
    Ok(Some((len as u64).min(SOCKADDR_MAX) as usize))
}

/// Writes a returned address and its full length back to the guest.
fn put_addr(ctx: &Ctx<'_>, addr: u64, len_ptr: u64, out: &SockAddrOut) -> Result<(), Errno> {
    ctx.write_bytes(addr, &out.bytes)?;
    ctx.write_obj(len_ptr, out.len)
}

fn do_accept4(ctx: &mut Ctx<'_>, a: &[u64; 6], flags: u64) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let len = addr_len(ctx, a[1], a[2])?;
    let flags = flags as i32;
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::INVAL);
    }
    let (new, peer) = host::accept4(fd.as_fd(), len, flags | libc::SOCK_CLOEXEC)?;
    let n = ctx
        .thread
        .fds(ctx.guest)
        .insert(new, flags & libc::SOCK_CLOEXEC != 0, 0)?;
    if let Some(peer) = peer {
        put_addr(ctx, a[1], a[2], &peer)?;
    }
    Ok(n as u64)
}

pub fn accept(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_accept4(ctx, a, 0)
}

pub fn accept4(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_accept4(ctx, a, a[3])
}

fn do_sockname(ctx: &mut Ctx<'_>, a: &[u64; 6], peer: bool) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let len = addr_len(ctx, a[1], a[2])?.ok_or(Errno::FAULT)?;
    let out = host::sockname(fd.as_fd(), len, peer)?;
    put_addr(ctx, a[1], a[2], &out)?;
    Ok(0)
}

pub fn getsockname(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_sockname(ctx, a, false)
}

pub fn getpeername(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_sockname(ctx, a, true)
}

pub fn setsockopt(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    if a[4] > SOCKOPT_MAX {
        return Err(Errno::INVAL);
    }
    let value = ctx.read_bytes(a[3], a[4] as usize)?;
    host::setsockopt(fd.as_fd(), a[1] as i32, a[2] as i32, &value)?;
    Ok(0)
}

pub fn getsockopt(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let len: i32 = ctx.read_obj(a[4])?;
    if len < 0 {
        return Err(Errno::INVAL);
    }
    let value = host::getsockopt(
        fd.as_fd(),
        a[1] as i32,
        a[2] as i32,
        (len as u64).min(SOCKOPT_MAX) as usize,
    )?;
    ctx.write_bytes(a[3], &value)?;
    ctx.write_obj(a[4], value.len() as u32)?;
    Ok(0)
}

pub fn sendto(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let buf = ctx.readable(a[1], a[2] as usize)?;
    let addr = if a[4] != 0 {
        Some(read_sockaddr(ctx, a[4], a[5])?)
    } else {
        None
    };
    Ok(host::sendto(fd.as_fd(), &buf, a[3] as i32, addr.as_deref())? as u64)
}

pub fn recvfrom(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let buf = ctx.writable(a[1], a[2] as usize)?;
    let len = addr_len(ctx, a[4], a[5])?;
    let (n, from) = host::recvfrom(fd.as_fd(), &buf, a[3] as i32, len)?;
    if let Some(from) = from {
        put_addr(ctx, a[4], a[5], &from)?;
    }
    Ok(n as u64)
}

pub fn shutdown(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let how = match a[1] as i32 {
        libc::SHUT_RD => Shutdown::Read,
        libc::SHUT_WR => Shutdown::Write,
        libc::SHUT_RDWR => Shutdown::Both,
        _ => return Err(Errno::INVAL),
    };
    rustix::net::shutdown(ctx.fd(a[0])?, how)?;
    Ok(0)
}
