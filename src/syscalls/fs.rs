//! File and descriptor syscalls, served by the host on km's own descriptors.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, ResolveFlags, SeekFrom};
use rustix::io::Errno;
use vm_memory::{ReadVolatile, VolatileMemoryError, VolatileSlice, WriteVolatile};

use super::{Ctx, SysResult, procfs, procrule};
use crate::memory::host;

/// Linux's MAX_RW_COUNT: the most a single read or write transfers.
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// The most bytes km bounces through its own buffer in one call.
const BOUNCE_MAX: u64 = 16 << 20;
pub(super) const IOV_MAX: u64 = 1024;
/// Size of `struct iovec`.
const IOVEC_SIZE: u64 = 16;
/// statx's flags choosing how to synchronise with a remote file system.
const AT_STATX_SYNC_TYPE: i32 = 0x6000;

fn io_errno(e: VolatileMemoryError) -> Errno {
    match e {
        VolatileMemoryError::IOError(e) => Errno::from_io_error(&e).unwrap_or(Errno::IO),
        _ => Errno::FAULT,
    }
}

fn fd_arg(a: u64) -> i32 {
    a as i32
}

/// A directory argument: km's working directory (AT_FDCWD) or a guest fd.
pub(super) struct Dir(Option<Arc<OwnedFd>>);

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_ref().map_or(rustix::fs::CWD, |fd| fd.as_fd())
    }
}

/// The host directory for a guest dirfd argument.
pub(super) fn dirfd(ctx: &Ctx<'_>, a: u64, path: &CStr) -> Result<Dir, Errno> {
    // An absolute path ignores the directory argument, even an invalid one.
    if a as i32 == libc::AT_FDCWD || path.to_bytes().first() == Some(&b'/') {
        Ok(Dir(None))
    } else {
        ctx.fd(a).map(|fd| Dir(Some(fd)))
    }
}

/// A path argument that may be empty when `flags` contains AT_EMPTY_PATH.
fn path_or_empty(ctx: &Ctx<'_>, addr: u64, flags: u64) -> Result<CString, Errno> {
    if flags & libc::AT_EMPTY_PATH as u64 != 0 && ctx.read_obj::<u8>(addr)? == 0 {
        return Ok(CString::default());
    }
    ctx.read_path(addr)
}

pub fn read(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    if let Some(mask) = crate::kernel::signalfd::mask(&fd) {
        return super::signal::read_signalfd(ctx, &fd, mask, a[1], a[2]);
    }
    let mut fd = fd.as_fd();
    match ctx.writable(a[1], a[2].min(MAX_RW_COUNT) as usize) {
        Ok(mut buf) => fd
            .read_volatile(&mut buf)
            .map(|n| n as u64)
            .map_err(io_errno),
        Err(e) => at_eof(fd).then_some(0).ok_or(e),
    }
}

/// Whether a read from `fd` would return 0 without consuming anything: Linux only
/// faults on a bad buffer once there is data to copy.
fn at_eof(fd: BorrowedFd<'_>) -> bool {
    let Ok(pos) = rustix::fs::seek(fd, SeekFrom::Current(0)) else {
        return false;
    };
    rustix::io::pread(fd, &mut [0u8; 1], pos).is_ok_and(|n| n == 0)
}

pub fn write(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let buf = ctx.readable(a[1], a[2].min(MAX_RW_COUNT) as usize)?;
    let mut fd = fd.as_fd();
    fd.write_volatile(&buf).map(|n| n as u64).map_err(io_errno)
}

/// The guest buffers of the iovec array at `addr` (`count` entries), checked for
/// reading (`from_guest`: the host reads them, as writev) or for writing.
pub(super) fn iov_slices<'a>(
    ctx: &Ctx<'a>,
    addr: u64,
    count: u64,
    from_guest: bool,
) -> Result<Vec<VolatileSlice<'a>>, Errno> {
    if count > IOV_MAX {
        return Err(Errno::INVAL);
    }
    // count <= IOV_MAX: the array's size cannot overflow; the array is checked
    // readable before it is copied.
    let array = ctx.read_bytes(addr, (count * IOVEC_SIZE) as usize)?;
    let iovecs: Vec<(u64, u64)> = array
        .chunks_exact(IOVEC_SIZE as usize)
        .map(|iovec| {
            let word = |at: usize| u64::from_ne_bytes(iovec[at..at + 8].try_into().expect("8"));
            (word(0), word(8))
        })
        .collect();
    // As Linux: any negative length is EINVAL before any buffer faults.
    if iovecs.iter().any(|&(_, len)| len > isize::MAX as u64) {
        return Err(Errno::INVAL);
    }
    iovecs
        .into_iter()
        .map(|(base, len)| {
            if from_guest {
                ctx.readable(base, len as usize)
            } else {
                ctx.writable(base, len as usize)
            }
        })
        .collect()
}

/// readv/writev, or preadv/pwritev at file offset `at`.
fn vectored_io(
    ctx: &mut Ctx<'_>,
    a: &[u64; 6],
    write: bool,
    at: Option<i64>,
    flags: i32,
) -> SysResult {
    let fd = ctx.fd(a[0])?;
    // Linux takes the count as an unsigned int.
    let bufs = iov_slices(ctx, a[1], a[2] as u32 as u64, write)?;
    Ok(host::vectored(fd.as_fd(), &bufs, write, at, flags)? as u64)
}

pub fn readv(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    vectored_io(ctx, a, false, None, 0)
}

pub fn writev(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    vectored_io(ctx, a, true, None, 0)
}

/// The file offset of preadv/pwritev (the low and high halves; x86-64 passes it
/// whole in the first).
fn vectored_offset(a: &[u64; 6]) -> Result<i64, Errno> {
    let offset = a[3] as i64;
    if offset < 0 {
        return Err(Errno::INVAL);
    }
    Ok(offset)
}

pub fn preadv(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let at = vectored_offset(a)?;
    vectored_io(ctx, a, false, Some(at), 0)
}

pub fn pwritev(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let at = vectored_offset(a)?;
    vectored_io(ctx, a, true, Some(at), 0)
}

/// The offset of preadv2/pwritev2: -1 is the file position (as readv/writev).
fn vectored2_offset(a: &[u64; 6]) -> Result<Option<i64>, Errno> {
    match a[3] as i64 {
        -1 => Ok(None),
        o if o < 0 => Err(Errno::INVAL),
        o => Ok(Some(o)),
    }
}

pub fn preadv2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let at = vectored2_offset(a)?;
    vectored_io(ctx, a, false, at, a[5] as i32)
}

pub fn pwritev2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let at = vectored2_offset(a)?;
    vectored_io(ctx, a, true, at, a[5] as i32)
}

pub fn pread64(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let len = a[2].min(BOUNCE_MAX) as usize;
    ctx.writable(a[1], len)?;
    let mut buf = vec![0u8; len];
    let n = rustix::io::pread(ctx.fd(a[0])?, &mut buf, a[3])?;
    ctx.write_bytes(a[1], &buf[..n])?;
    Ok(n as u64)
}

pub fn pwrite64(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let buf = ctx.read_bytes(a[1], a[2].min(BOUNCE_MAX) as usize)?;
    Ok(rustix::io::pwrite(ctx.fd(a[0])?, &buf, a[3])? as u64)
}

pub(super) fn do_openat(
    ctx: &mut Ctx<'_>,
    dir: u64,
    path: u64,
    flags: u64,
    mode: u64,
) -> SysResult {
    let path = ctx.read_path(path)?;
    let flags = OFlags::from_bits_retain(flags as u32);
    let mode = Mode::from_raw_mode(mode as u32);
    open_path(ctx, dir, &path, flags, mode, ResolveFlags::empty())
}

/// Opens `path` (relative to guest dirfd `dir`) through the /proc rule, with
/// openat2's `resolve` flags, and gives the payload a descriptor for it.
pub(super) fn open_path(
    ctx: &mut Ctx<'_>,
    dir: u64,
    path: &CStr,
    flags: OFlags,
    mode: Mode,
    resolve: ResolveFlags,
) -> SysResult {
    // RESOLVE_IN_ROOT resolves even an absolute path from the directory.
    let dir = if resolve.contains(ResolveFlags::IN_ROOT) && dir as i32 != libc::AT_FDCWD {
        Dir(Some(ctx.fd(dir)?))
    } else {
        dirfd(ctx, dir, path)?
    };
    let (guest, thread) = (ctx.guest, Some(&*ctx.thread));
    let fd = if resolve.is_empty() {
        procrule::open(guest, thread, dir.as_fd(), path, flags, mode)?
    } else {
        procrule::open_resolving(guest, thread, dir.as_fd(), path, flags, mode, resolve)?
    };
    Ok(ctx
        .thread
        .fds(ctx.guest)
        .insert(fd, flags.contains(OFlags::CLOEXEC), 0)? as u64)
}

pub fn open(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_openat(ctx, libc::AT_FDCWD as u64, a[0], a[1], a[2])
}

pub fn openat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_openat(ctx, a[0], a[1], a[2], a[3])
}

pub fn close(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ctx.thread.fds(ctx.guest).close(fd_arg(a[0]))?;
    Ok(0)
}

/// close_range(first, last, flags): CLOSE_RANGE_UNSHARE means nothing here (the
/// table is never shared), CLOSE_RANGE_CLOEXEC marks instead of closing.
pub fn close_range(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    const UNSHARE: u64 = 1 << 1;
    const CLOEXEC: u64 = 1 << 2;
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2]);
    if flags & !(UNSHARE | CLOEXEC) != 0 || first > last {
        return Err(Errno::INVAL);
    }
    let Ok(first) = i32::try_from(first) else {
        return Ok(0);
    };
    let last = i32::try_from(last).unwrap_or(i32::MAX);
    ctx.thread
        .fds(ctx.guest)
        .close_range(first..=last, flags & CLOEXEC != 0);
    Ok(0)
}

pub fn lseek(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let off = a[1] as i64;
    let pos = match a[2] as i32 {
        libc::SEEK_SET => SeekFrom::Start(u64::try_from(off).map_err(|_| Errno::INVAL)?),
        libc::SEEK_CUR => SeekFrom::Current(off),
        libc::SEEK_END => SeekFrom::End(off),
        libc::SEEK_DATA => SeekFrom::Data(u64::try_from(off).map_err(|_| Errno::NXIO)?),
        libc::SEEK_HOLE => SeekFrom::Hole(u64::try_from(off).map_err(|_| Errno::NXIO)?),
        _ => return Err(Errno::INVAL),
    };
    rustix::fs::seek(ctx.fd(a[0])?, pos)
}

/// The object a call on `path` (relative to guest dirfd `dir`) acts on, through the
/// /proc rule; with AT_EMPTY_PATH and an empty path, `dir` itself.
pub(super) fn path_target(
    ctx: &Ctx<'_>,
    dir: u64,
    path: &CStr,
    flags: u64,
) -> Result<OwnedFd, Errno> {
    let empty = path.is_empty() && flags & libc::AT_EMPTY_PATH as u64 != 0;
    if empty && dir as i32 != libc::AT_FDCWD {
        return rustix::io::fcntl_dupfd_cloexec(ctx.fd(dir)?.as_fd(), 0);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW as u64 == 0;
    Ok(procrule::resolve(ctx.guest, dirfd(ctx, dir, path)?.as_fd(), path, follow)?.fd)
}

/// The path through which a call that follows links reaches `target` itself.
pub(super) fn via_fd(target: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", target.as_raw_fd())
}

fn do_stat(ctx: &mut Ctx<'_>, dir: u64, path: &CStr, flags: u64, out: u64) -> SysResult {
    let target = path_target(ctx, dir, path, flags)?;
    let st = host::fstatat(target.as_fd(), c"", libc::AT_EMPTY_PATH)?;
    ctx.write_bytes(out, &st)?;
    Ok(0)
}

pub fn fstat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_stat(ctx, a[0], c"", libc::AT_EMPTY_PATH as u64, a[1])
}

pub fn stat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = ctx.read_path(a[0])?;
    do_stat(ctx, libc::AT_FDCWD as u64, &path, 0, a[1])
}

pub fn lstat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = ctx.read_path(a[0])?;
    do_stat(
        ctx,
        libc::AT_FDCWD as u64,
        &path,
        libc::AT_SYMLINK_NOFOLLOW as u64,
        a[1],
    )
}

pub fn newfstatat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = path_or_empty(ctx, a[1], a[3])?;
    do_stat(ctx, a[0], &path, a[3], a[2])
}

pub fn statx(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = path_or_empty(ctx, a[1], a[2])?;
    let target = path_target(ctx, a[0], &path, a[2])?;
    let sync = a[2] as i32 & AT_STATX_SYNC_TYPE;
    let st = host::statx(target.as_fd(), c"", sync | libc::AT_EMPTY_PATH, a[3] as u32)?;
    ctx.write_bytes(a[4], &st)?;
    Ok(0)
}

fn do_access(ctx: &mut Ctx<'_>, dir: u64, path: u64, mode: u64, flags: u64) -> SysResult {
    let path = path_or_empty(ctx, path, flags)?;
    let access = rustix::fs::Access::from_bits(mode as u32).ok_or(Errno::INVAL)?;
    let target = path_target(ctx, dir, &path, flags)?;
    let flags = AtFlags::from_bits_retain(flags as u32) - AtFlags::EMPTY_PATH;
    rustix::fs::accessat(rustix::fs::CWD, via_fd(&target), access, flags)?;
    Ok(0)
}

pub fn access(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_access(ctx, libc::AT_FDCWD as u64, a[0], a[1], 0)
}

pub fn faccessat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_access(ctx, a[0], a[1], a[2], 0)
}

pub fn faccessat2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_access(ctx, a[0], a[1], a[2], a[3])
}

/// The next directory entries of descriptor `a[0]` as getdents64 gives them, at
/// most `a[2]` bytes; the guest buffer `a[1]` is checked writable first.
fn next_dirents(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Vec<u8>, Errno> {
    // The count is an unsigned int to Linux.
    let len = (a[2] as u32 as u64).min(BOUNCE_MAX) as usize;
    ctx.writable(a[1], len)?;
    let fd = ctx.fd(a[0])?;
    if let Some(entries) = procrule::guest_listing(ctx.guest, fd.as_fd()) {
        // The directory's file position is the position of the next entry.
        let from = rustix::fs::seek(&fd, SeekFrom::Current(0))?;
        let (buf, next) = procfs::dirents(&entries, from, len);
        match next {
            Some(next) => rustix::fs::seek(&fd, SeekFrom::Start(next))?,
            None if entries.iter().any(|e| e.pos >= from) => return Err(Errno::INVAL),
            None => from,
        };
        return Ok(buf);
    }
    host::getdents64(fd.as_fd(), len)
}

pub fn getdents64(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let buf = next_dirents(ctx, a)?;
    ctx.write_bytes(a[1], &buf)?;
    Ok(buf.len() as u64)
}

/// getdents (the old call): the entries of getdents64, each rewritten in
/// `struct linux_dirent`'s layout, which has the same length (the type byte moves
/// from before the name to the record's last byte).
pub fn getdents(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let mut buf = next_dirents(ctx, a)?;
    let mut at = 0;
    while at < buf.len() {
        let reclen = buf
            .get(at + 16..at + 18)
            .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]) as usize);
        // Every record holds at least a one-byte name and its NUL.
        let record = buf
            .get_mut(at..at + reclen)
            .filter(|r| r.len() >= 21)
            .ok_or(Errno::IO)?;
        let kind = record[18];
        record.copy_within(19.., 18);
        record[reclen - 1] = kind;
        at += reclen;
    }
    ctx.write_bytes(a[1], &buf)?;
    Ok(buf.len() as u64)
}

pub fn getcwd(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let cwd = rustix::process::getcwd(Vec::new())?;
    let bytes = cwd.as_bytes_with_nul();
    if bytes.len() as u64 > a[1] {
        return Err(Errno::RANGE);
    }
    ctx.write_bytes(a[0], bytes)?;
    Ok(bytes.len() as u64)
}

pub fn chdir(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = ctx.read_path(a[0])?;
    let found = procrule::resolve(ctx.guest, rustix::fs::CWD, &path, true)?;
    match found.access {
        procrule::Access::Host => rustix::process::fchdir(&found.fd)?,
        procrule::Access::Serve(_) => return Err(Errno::NOTDIR),
    }
    Ok(0)
}

pub fn fchdir(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    rustix::process::fchdir(ctx.fd(a[0])?)?;
    Ok(0)
}

fn do_mkdirat(ctx: &mut Ctx<'_>, dir: u64, path: u64, mode: u64) -> SysResult {
    let path = ctx.read_path(path)?;
    rustix::fs::mkdirat(
        dirfd(ctx, dir, &path)?,
        &path,
        Mode::from_raw_mode(mode as u32),
    )?;
    Ok(0)
}

pub fn mkdir(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_mkdirat(ctx, libc::AT_FDCWD as u64, a[0], a[1])
}

pub fn mkdirat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_mkdirat(ctx, a[0], a[1], a[2])
}

fn do_unlinkat(ctx: &mut Ctx<'_>, dir: u64, path: u64, flags: u64) -> SysResult {
    let path = ctx.read_path(path)?;
    let flags = AtFlags::from_bits(flags as u32).ok_or(Errno::INVAL)?;
    rustix::fs::unlinkat(dirfd(ctx, dir, &path)?, &path, flags)?;
    Ok(0)
}

pub fn rmdir(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_unlinkat(ctx, libc::AT_FDCWD as u64, a[0], libc::AT_REMOVEDIR as u64)
}

pub fn unlink(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_unlinkat(ctx, libc::AT_FDCWD as u64, a[0], 0)
}

pub fn unlinkat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_unlinkat(ctx, a[0], a[1], a[2])
}

fn do_renameat(
    ctx: &mut Ctx<'_>,
    olddir: u64,
    old: u64,
    newdir: u64,
    new: u64,
    flags: u64,
) -> SysResult {
    let old = ctx.read_path(old)?;
    let new = ctx.read_path(new)?;
    let flags = RenameFlags::from_bits(flags as u32).ok_or(Errno::INVAL)?;
    rustix::fs::renameat_with(
        dirfd(ctx, olddir, &old)?,
        &old,
        dirfd(ctx, newdir, &new)?,
        &new,
        flags,
    )?;
    Ok(0)
}

pub fn rename(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let cwd = libc::AT_FDCWD as u64;
    do_renameat(ctx, cwd, a[0], cwd, a[1], 0)
}

pub fn renameat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_renameat(ctx, a[0], a[1], a[2], a[3], 0)
}

pub fn renameat2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_renameat(ctx, a[0], a[1], a[2], a[3], a[4])
}

fn do_readlinkat(ctx: &mut Ctx<'_>, dir: u64, path: u64, buf: u64, size: u64) -> SysResult {
    // bufsiz is an int to Linux.
    let size = size as i32;
    if size <= 0 {
        return Err(Errno::INVAL);
    }
    let path = ctx.read_path(path)?;
    let dir = dirfd(ctx, dir, &path)?;
    let found = procrule::resolve(ctx.guest, dir.as_fd(), &path, false)?;
    let target = procrule::link_text(ctx.guest, &found)?;
    let bytes = &target[..];
    let n = bytes.len().min(size as usize);
    ctx.write_bytes(buf, &bytes[..n])?;
    Ok(n as u64)
}

pub fn readlink(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_readlinkat(ctx, libc::AT_FDCWD as u64, a[0], a[1], a[2])
}

pub fn readlinkat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_readlinkat(ctx, a[0], a[1], a[2], a[3])
}

pub fn dup(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let mut fds = ctx.thread.fds(ctx.guest);
    let host = fds.dup_host(fd_arg(a[0]))?;
    Ok(fds.insert(host, false, 0)? as u64)
}

fn do_dup3(ctx: &mut Ctx<'_>, old: i32, new: i32, cloexec: bool) -> SysResult {
    let mut fds = ctx.thread.fds(ctx.guest);
    let host = fds.dup_host(old)?;
    Ok(fds.insert_at(new, host, cloexec)? as u64)
}

pub fn dup2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (old, new) = (fd_arg(a[0]), fd_arg(a[1]));
    if old == new {
        ctx.fd(a[0])?;
        return Ok(new as u64);
    }
    do_dup3(ctx, old, new, false)
}

pub fn dup3(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (old, new) = (fd_arg(a[0]), fd_arg(a[1]));
    if old == new || a[2] & !(libc::O_CLOEXEC as u64) != 0 {
        return Err(Errno::INVAL);
    }
    do_dup3(ctx, old, new, a[2] != 0)
}

fn do_pipe2(ctx: &mut Ctx<'_>, out: u64, flags: u64) -> SysResult {
    let allowed = (libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) as u64;
    if flags & !allowed != 0 {
        return Err(Errno::INVAL);
    }
    ctx.writable(out, 8)?;
    let host_flags =
        rustix::pipe::PipeFlags::from_bits_retain(flags as u32) | rustix::pipe::PipeFlags::CLOEXEC;
    let (r, w) = rustix::pipe::pipe_with(host_flags)?;
    let cloexec = flags & libc::O_CLOEXEC as u64 != 0;
    let mut fds = ctx.thread.fds(ctx.guest);
    let r = fds.insert(r, cloexec, 0)?;
    let w = match fds.insert(w, cloexec, 0) {
        Ok(w) => w,
        Err(e) => {
            fds.close(r)?;
            return Err(e);
        }
    };
    drop(fds);
    ctx.write_obj(out, [r, w])?;
    Ok(0)
}

pub fn pipe(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_pipe2(ctx, a[0], 0)
}

pub fn pipe2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_pipe2(ctx, a[0], a[1])
}

fn do_symlinkat(ctx: &mut Ctx<'_>, target: u64, dir: u64, path: u64) -> SysResult {
    let target = ctx.read_path(target)?;
    let path = ctx.read_path(path)?;
    rustix::fs::symlinkat(&target, dirfd(ctx, dir, &path)?, &path)?;
    Ok(0)
}

pub fn symlink(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_symlinkat(ctx, a[0], libc::AT_FDCWD as u64, a[1])
}

pub fn symlinkat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_symlinkat(ctx, a[0], a[1], a[2])
}

fn do_linkat(
    ctx: &mut Ctx<'_>,
    olddir: u64,
    old: u64,
    newdir: u64,
    new: u64,
    flags: u64,
) -> SysResult {
    let old = ctx.read_path(old)?;
    let new = ctx.read_path(new)?;
    let flags = AtFlags::from_bits(flags as u32).ok_or(Errno::INVAL)?;
    let olddir = dirfd(ctx, olddir, &old)?;
    let newdir = dirfd(ctx, newdir, &new)?;
    if !flags.contains(AtFlags::SYMLINK_FOLLOW) || old.is_empty() {
        rustix::fs::linkat(olddir, &old, newdir, &new, flags)?;
        return Ok(0);
    }
    // Following links: the object through the /proc rule (km's own /proc/self/fd/N
    // must not link km's descriptors into the file system).
    let found = procrule::resolve(ctx.guest, olddir.as_fd(), &old, true)?;
    if !matches!(found.access, procrule::Access::Host) {
        return Err(Errno::XDEV);
    }
    rustix::fs::linkat(rustix::fs::CWD, via_fd(&found.fd), newdir, &new, flags)?;
    Ok(0)
}

pub fn link(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let cwd = libc::AT_FDCWD as u64;
    do_linkat(ctx, cwd, a[0], cwd, a[1], 0)
}

pub fn linkat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_linkat(ctx, a[0], a[1], a[2], a[3], a[4])
}

fn do_chmodat(ctx: &mut Ctx<'_>, dir: u64, path: u64, mode: u64) -> SysResult {
    let path = ctx.read_path(path)?;
    let target = path_target(ctx, dir, &path, 0)?;
    let mode = Mode::from_raw_mode(mode as u32);
    rustix::fs::chmodat(rustix::fs::CWD, via_fd(&target), mode, AtFlags::empty())?;
    Ok(0)
}

pub fn chmod(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_chmodat(ctx, libc::AT_FDCWD as u64, a[0], a[1])
}

pub fn fchmodat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_chmodat(ctx, a[0], a[1], a[2])
}

pub fn fchmod(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    rustix::fs::fchmod(ctx.fd(a[0])?, Mode::from_raw_mode(a[1] as u32))?;
    Ok(0)
}

pub fn ftruncate(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let len = u64::try_from(a[1] as i64).map_err(|_| Errno::INVAL)?;
    rustix::fs::ftruncate(ctx.fd(a[0])?, len)?;
    Ok(0)
}

pub fn truncate(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let len = u64::try_from(a[1] as i64).map_err(|_| Errno::INVAL)?;
    let path = ctx.read_path(a[0])?;
    let (cwd, flags) = (rustix::fs::CWD, OFlags::WRONLY);
    let fd = procrule::open(
        ctx.guest,
        Some(ctx.thread),
        cwd,
        &path,
        flags,
        Mode::empty(),
    )?;
    rustix::fs::ftruncate(&fd, len)?;
    Ok(0)
}

pub fn fsync(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    rustix::fs::fsync(ctx.fd(a[0])?)?;
    Ok(0)
}

pub fn fdatasync(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    rustix::fs::fdatasync(ctx.fd(a[0])?)?;
    Ok(0)
}

pub fn umask(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    Ok(rustix::process::umask(Mode::from_raw_mode(a[0] as u32 & 0o777)).bits() as u64)
}
