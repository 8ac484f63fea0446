//! File operations beyond reading and writing: creat, ownership, timestamps,
//! advice and read-ahead, flock, preallocation, in-kernel copies (sendfile,
//! copy_file_range), device nodes and sync.

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::fs::{dirfd, do_openat, path_target};
use super::{Ctx, SysResult};
use crate::memory::host;

pub fn creat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
    do_openat(ctx, libc::AT_FDCWD as u64, a[0], flags, a[1])
}

/// A uid or gid argument: -1 leaves it unchanged.
fn id(v: u64) -> Option<u32> {
    (v as u32 != u32::MAX).then_some(v as u32)
}

fn do_chownat(ctx: &mut Ctx<'_>, dir: u64, path: u64, uid: u64, gid: u64, flags: u64) -> SysResult {
    let allowed = (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64;
    if flags & !allowed != 0 {
        return Err(Errno::INVAL);
    }
    let flags = AtFlags::from_bits_retain(flags as u32);
    let path = if flags.contains(AtFlags::EMPTY_PATH) && ctx.read_obj::<u8>(path)? == 0 {
        Default::default()
    } else {
        ctx.read_path(path)?
    };
    let owner = id(uid).map(rustix::fs::Uid::from_raw);
    let group = id(gid).map(rustix::fs::Gid::from_raw);
    let target = path_target(ctx, dir, &path, flags.bits() as u64)?;
    rustix::fs::chownat(target, c"", owner, group, AtFlags::EMPTY_PATH)?;
    Ok(0)
}

pub fn chown(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_chownat(ctx, libc::AT_FDCWD as u64, a[0], a[1], a[2], 0)
}

pub fn lchown(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
    do_chownat(ctx, libc::AT_FDCWD as u64, a[0], a[1], a[2], nofollow)
}

pub fn fchownat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_chownat(ctx, a[0], a[1], a[2], a[3], a[4])
}

pub fn fchown(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    host::int_syscall(libc::SYS_fchown, [fd_raw(&fd), a[1], a[2], 0])
}

fn fd_raw(fd: &impl std::os::fd::AsRawFd) -> u64 {
    fd.as_raw_fd() as u64
}

/// utimensat(dirfd, path, times, flags); a null path means `dirfd` itself, null
/// times mean now.
fn do_utimens(
    ctx: &mut Ctx<'_>,
    dir: u64,
    path: u64,
    times: Option<Timestamps>,
    flags: u64,
) -> SysResult {
    let now = || Timespec {
        tv_sec: 0,
        tv_nsec: libc::UTIME_NOW,
    };
    let times = times.unwrap_or_else(|| Timestamps {
        last_access: now(),
        last_modification: now(),
    });
    if path == 0 {
        if dir as i32 == libc::AT_FDCWD {
            return Err(Errno::FAULT);
        }
        rustix::fs::futimens(ctx.fd(dir)?, &times)?;
        return Ok(0);
    }
    let allowed = (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64;
    if flags & !allowed != 0 {
        return Err(Errno::INVAL);
    }
    let path = ctx.read_path(path)?;
    let target = path_target(ctx, dir, &path, flags)?;
    rustix::fs::utimensat(target, c"", &times, AtFlags::EMPTY_PATH)?;
    Ok(0)
}

pub fn utimensat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let times = if a[2] != 0 {
        let [a_sec, a_nsec, m_sec, m_nsec]: [i64; 4] = ctx.read_obj(a[2])?;
        Some(Timestamps {
            last_access: Timespec {
                tv_sec: a_sec,
                tv_nsec: a_nsec,
            },
            last_modification: Timespec {
                tv_sec: m_sec,
                tv_nsec: m_nsec,
            },
        })
    } else {
        None
    };
    do_utimens(ctx, a[0], a[1], times, a[3])
}

/// Two `struct timeval`s (utimes, futimesat) as timestamps.
fn timevals(ctx: &Ctx<'_>, addr: u64) -> Result<Option<Timestamps>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let [a_sec, a_usec, m_sec, m_usec]: [i64; 4] = ctx.read_obj(addr)?;
    if !(0..1_000_000).contains(&a_usec) || !(0..1_000_000).contains(&m_usec) {
        return Err(Errno::INVAL);
    }
    Ok(Some(Timestamps {
        last_access: Timespec {
            tv_sec: a_sec,
            tv_nsec: a_usec * 1000,
        },
        last_modification: Timespec {
            tv_sec: m_sec,
            tv_nsec: m_usec * 1000,
        },
    }))
}

pub fn utimes(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let times = timevals(ctx, a[1])?;
    do_utimens(ctx, libc::AT_FDCWD as u64, a[0], times, 0)
}

pub fn futimesat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let times = timevals(ctx, a[2])?;
    do_utimens(ctx, a[0], a[1], times, 0)
}

pub fn utime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let times = if a[1] != 0 {
        let [actime, modtime]: [i64; 2] = ctx.read_obj(a[1])?;
        Some(Timestamps {
            last_access: Timespec {
                tv_sec: actime,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: modtime,
                tv_nsec: 0,
            },
        })
    } else {
        None
    };
    do_utimens(ctx, libc::AT_FDCWD as u64, a[0], times, 0)
}

/// Descriptor operations that take only integers: the guest descriptor in the
/// first argument becomes km's host descriptor.
fn on_fd(ctx: &Ctx<'_>, nr: libc::c_long, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    host::int_syscall(nr, [fd_raw(&fd), a[1], a[2], a[3]])
}

pub fn fadvise64(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    on_fd(ctx, libc::SYS_fadvise64, a)
}

pub fn readahead(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    on_fd(ctx, libc::SYS_readahead, a)
}

pub fn flock(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    on_fd(ctx, libc::SYS_flock, a)
}

pub fn fallocate(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    on_fd(ctx, libc::SYS_fallocate, a)
}

/// PostgreSQL's checkpointer and initdb ask for dirty ranges to be written back.
pub fn sync_file_range(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    on_fd(ctx, libc::SYS_sync_file_range, a)
}

pub fn syncfs(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    on_fd(ctx, libc::SYS_syncfs, a)
}

pub fn sync(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    rustix::fs::sync();
    Ok(0)
}

/// An in/out file offset argument of sendfile and copy_file_range.
fn read_offset(ctx: &Ctx<'_>, addr: u64) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let off: i64 = ctx.read_obj(addr)?;
    u64::try_from(off).map(Some).map_err(|_| Errno::INVAL)
}

pub fn sendfile(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (out, input) = (ctx.fd(a[0])?, ctx.fd(a[1])?);
    let mut offset = read_offset(ctx, a[2])?;
    let n = rustix::fs::sendfile(out.as_fd(), input.as_fd(), offset.as_mut(), a[3] as usize)?;
    if let Some(off) = offset {
        ctx.write_obj(a[2], off)?;
    }
    Ok(n as u64)
}

/// The calls that move bytes between two descriptors at optional offsets
/// (`fd_in, *off_in, fd_out, *off_out, len, ...`): reads the guest's offsets, runs
/// `call`, and writes the advanced offsets back.
fn transfer(
    ctx: &Ctx<'_>,
    a: &[u64; 6],
    call: impl FnOnce(
        BorrowedFd<'_>,
        Option<&mut u64>,
        BorrowedFd<'_>,
        Option<&mut u64>,
    ) -> Result<usize, Errno>,
) -> SysResult {
    let (input, output) = (ctx.fd(a[0])?, ctx.fd(a[2])?);
    let mut off_in = read_offset(ctx, a[1])?;
    let mut off_out = read_offset(ctx, a[3])?;
    let n = call(
        input.as_fd(),
        off_in.as_mut(),
        output.as_fd(),
        off_out.as_mut(),
    )?;
    if let Some(off) = off_in {
        ctx.write_obj(a[1], off)?;
    }
    if let Some(off) = off_out {
        ctx.write_obj(a[3], off)?;
    }
    Ok(n as u64)
}

pub fn copy_file_range(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[5] != 0 {
        return Err(Errno::INVAL);
    }
    transfer(ctx, a, |input, off_in, output, off_out| {
        rustix::fs::copy_file_range(input, off_in, output, off_out, a[4] as usize)
    })
}

/// The splice flags Linux knows; others are EINVAL.
fn splice_flags(flags: u64) -> Result<rustix::pipe::SpliceFlags, Errno> {
    let flags = u32::try_from(flags).map_err(|_| Errno::INVAL)?;
    rustix::pipe::SpliceFlags::from_bits(flags).ok_or(Errno::INVAL)
}

pub fn splice(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let flags = splice_flags(a[5])?;
    transfer(ctx, a, |input, off_in, output, off_out| {
        rustix::pipe::splice(input, off_in, output, off_out, a[4] as usize, flags)
    })
}

pub fn tee(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (input, output) = (ctx.fd(a[0])?, ctx.fd(a[1])?);
    let n = rustix::pipe::tee(
        input.as_fd(),
        output.as_fd(),
        a[2] as usize,
        splice_flags(a[3])?,
    )?;
    Ok(n as u64)
}

/// vmsplice: guest memory into a pipe's write end, or out of its read end (the
/// pipe end decides, as on Linux).
pub fn vmsplice(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let flags = splice_flags(a[3])?;
    let access = rustix::fs::fcntl_getfl(&fd)? & rustix::fs::OFlags::ACCMODE;
    let into_pipe = access != rustix::fs::OFlags::RDONLY;
    let bufs = super::fs::iov_slices(ctx, a[1], a[2], into_pipe)?;
    Ok(host::vmsplice(fd.as_fd(), &bufs, flags.bits())? as u64)
}

fn do_mknodat(ctx: &mut Ctx<'_>, dir: u64, path: u64, mode: u64, dev: u64) -> SysResult {
    let path = ctx.read_path(path)?;
    let mode = mode as u32;
    let file_type = rustix::fs::FileType::from_raw_mode(if mode & libc::S_IFMT == 0 {
        mode | libc::S_IFREG
    } else {
        mode
    });
    let perms = rustix::fs::Mode::from_raw_mode(mode & !libc::S_IFMT);
    rustix::fs::mknodat(dirfd(ctx, dir, &path)?, &path, file_type, perms, dev)?;
    Ok(0)
}

pub fn mknod(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_mknodat(ctx, libc::AT_FDCWD as u64, a[0], a[1], a[2])
}

pub fn mknodat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_mknodat(ctx, a[0], a[1], a[2], a[3])
}
