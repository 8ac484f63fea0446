//! fcntl: descriptor flags on km's table, file status flags, record locks, pipe
//! sizes, owners, seals, directory notification and leases on the host descriptor.
//!
//! Guest pids and tids are host pids and tids, and km is the guest's process, so
//! the host's locks, owners and leases mean for the guest what they mean on Linux.
//! A blocking F_SETLKW is a host call made without km's table lock; a kick ends it
//! with EINTR, and the dispatcher waits again unless a signal is due.

use std::os::fd::AsFd;

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::kernel::fdtable;
use crate::memory::host;

/// `struct flock`: l_type (short), l_whence (short), l_start, l_len, l_pid (int).
const FLOCK_SIZE: usize = 32;
/// `struct f_owner_ex`: type, pid (two ints).
const OWNER_EX_SIZE: usize = 8;

pub fn fcntl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = a[0] as i32;
    match a[1] as i32 {
        cmd @ (libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) => {
            let mut fds = ctx.thread.fds(ctx.guest);
            let host = fds.dup_host(fd)?;
            // Linux takes the lowest number as an unsigned int: EINVAL at or past
            // the soft RLIMIT_NOFILE (EMFILE is for no free number below it).
            let min = a[2] as u32;
            if min >= fdtable::limit() as u32 {
                return Err(Errno::INVAL);
            }
            Ok(fds.insert(host, cmd == libc::F_DUPFD_CLOEXEC, min as i32)? as u64)
        }
        libc::F_GETFD => Ok(if ctx.thread.fds(ctx.guest).cloexec(fd)? {
            libc::FD_CLOEXEC as u64
        } else {
            0
        }),
        libc::F_SETFD => {
            let on = a[2] & libc::FD_CLOEXEC as u64 != 0;
            ctx.thread.fds(ctx.guest).set_cloexec(fd, on)?;
            Ok(0)
        }
        libc::F_GETFL => Ok(rustix::fs::fcntl_getfl(ctx.fd(a[0])?)?.bits() as u64),
        libc::F_SETFL => {
            rustix::fs::fcntl_setfl(ctx.fd(a[0])?, OFlags::from_bits_retain(a[2] as u32))?;
            Ok(0)
        }
        cmd @ (libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW) => record_lock(ctx, a[0], cmd, a[2]),
        libc::F_GETOWN => get_owner(ctx, a[0]),
        host::F_GETOWN_EX => {
            let mut owner = [0i32; 2];
            host::fcntl_owner_ex(ctx.fd(a[0])?.as_fd(), host::F_GETOWN_EX, &mut owner)?;
            let bytes: Vec<u8> = owner.iter().flat_map(|v| v.to_ne_bytes()).collect();
            ctx.write_bytes(a[2], &bytes)?;
            Ok(0)
        }
        host::F_SETOWN_EX => {
            let fd = ctx.fd(a[0])?;
            let bytes = ctx.read_bytes(a[2], OWNER_EX_SIZE)?;
            let int = |at: usize| i32::from_ne_bytes(bytes[at..at + 4].try_into().expect("4"));
            let mut owner = [int(0), int(4)];
            host::fcntl_owner_ex(fd.as_fd(), host::F_SETOWN_EX, &mut owner)?;
            Ok(0)
        }
        cmd @ (libc::F_SETOWN
        | libc::F_GETPIPE_SZ
        | libc::F_SETPIPE_SZ
        | libc::F_ADD_SEALS
        | libc::F_GET_SEALS
        | libc::F_NOTIFY
        | libc::F_GETLEASE
        | libc::F_SETLEASE) => host::fcntl_int(ctx.fd(a[0])?.as_fd(), cmd, a[2]),
        _ => {
            ctx.fd(a[0])?;
            Err(Errno::INVAL)
        }
    }
}

/// F_GETOWN through F_GETOWN_EX: the host's F_GETOWN returns a process group as a
/// negative number, which a caller cannot tell from an error; the guest gets the
/// same value Linux's F_GETOWN returns.
fn get_owner(ctx: &mut Ctx<'_>, fd: u64) -> SysResult {
    let mut owner = [0i32; 2];
    host::fcntl_owner_ex(ctx.fd(fd)?.as_fd(), host::F_GETOWN_EX, &mut owner)?;
    let [kind, pid] = owner;
    let value = if kind == host::F_OWNER_PGRP {
        -pid
    } else {
        pid
    };
    Ok(value as i64 as u64)
}

/// A guest `struct flock`, read field by field.
struct Flock {
    bytes: Vec<u8>,
}

impl Flock {
    fn read(ctx: &Ctx<'_>, addr: u64) -> Result<Flock, Errno> {
        Ok(Flock {
            bytes: ctx.read_bytes(addr, FLOCK_SIZE)?,
        })
    }

    fn short(&self, at: usize) -> i16 {
        i16::from_ne_bytes(self.bytes[at..at + 2].try_into().expect("2 bytes"))
    }

    fn long(&self, at: usize) -> i64 {
        i64::from_ne_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    /// The host's `struct flock` with the guest's fields; EINVAL for a type or
    /// origin Linux does not know.
    fn to_host(&self) -> Result<libc::flock, Errno> {
        let l_type = self.short(0);
        let l_whence = self.short(2);
        if ![libc::F_RDLCK, libc::F_WRLCK, libc::F_UNLCK].contains(&(l_type as i32))
            || ![libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END].contains(&(l_whence as i32))
        {
            return Err(Errno::INVAL);
        }
        Ok(libc::flock {
            l_type,
            l_whence,
            l_start: self.long(8),
            l_len: self.long(16),
            l_pid: i32::from_ne_bytes(self.bytes[24..28].try_into().expect("4 bytes")),
        })
    }

    /// The guest's bytes with the fields F_GETLK reports.
    fn with(mut self, lock: &libc::flock) -> Vec<u8> {
        self.bytes[0..2].copy_from_slice(&lock.l_type.to_ne_bytes());
        self.bytes[2..4].copy_from_slice(&lock.l_whence.to_ne_bytes());
        self.bytes[8..16].copy_from_slice(&lock.l_start.to_ne_bytes());
        self.bytes[16..24].copy_from_slice(&lock.l_len.to_ne_bytes());
        self.bytes[24..28].copy_from_slice(&lock.l_pid.to_ne_bytes());
        self.bytes
    }
}

/// F_GETLK/F_SETLK/F_SETLKW and their OFD variants on the host descriptor.
fn record_lock(ctx: &mut Ctx<'_>, fd: u64, cmd: i32, addr: u64) -> SysResult {
    let fd = ctx.fd(fd)?;
    let guest = Flock::read(ctx, addr)?;
    let mut lock = guest.to_host()?;
    host::fcntl_lock(fd.as_fd(), cmd, &mut lock)?;
    if cmd == libc::F_GETLK || cmd == libc::F_OFD_GETLK {
        ctx.write_bytes(addr, &guest.with(&lock))?;
    }
    Ok(0)
}
