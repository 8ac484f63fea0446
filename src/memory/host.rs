//! Host system calls that fill kernel structures for the guest.
//!
//! Each wrapper has typed arguments (host fds, C strings owned by km) and returns the
//! kernel's bytes in a km-side buffer, which the caller copies into guest memory with
//! a checked write. No guest-supplied value is ever passed to the host as a pointer.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;
use vm_memory::VolatileSlice;

fn check(ret: libc::c_long) -> Result<usize, Errno> {
    if ret < 0 {
        Err(Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    } else {
        Ok(ret as usize)
    }
}

/// Runs `call` with a zeroed km buffer of `len` bytes; returns the buffer and the
/// call's non-negative result.
fn with_buffer(
    len: usize,
    call: impl FnOnce(*mut libc::c_void) -> libc::c_long,
) -> Result<(Vec<u8>, usize), Errno> {
    let mut buf = vec![0u8; len];
    let n = check(call(buf.as_mut_ptr().cast()))?;
    Ok((buf, n))
}

/// `struct stat` of `path` relative to `dir` (newfstatat; `rustix::fs::CWD` for AT_FDCWD), or of `dir` itself when
/// `path` is empty and `flags` has AT_EMPTY_PATH.
pub fn fstatat(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> Result<Vec<u8>, Errno> {
    let len = std::mem::size_of::<libc::stat>();
    // SAFETY: the kernel writes at most sizeof(struct stat) bytes into the buffer,
    // which is that long; `path` is a valid NUL-terminated string.
    let (buf, _) = with_buffer(len, |p| unsafe {
        libc::fstatat(dir.as_raw_fd(), path.as_ptr(), p.cast(), flags) as _
    })?;
    Ok(buf)
}

/// `struct statx` of `path` relative to `dir`.
pub fn statx(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mask: u32) -> Result<Vec<u8>, Errno> {
    let len = std::mem::size_of::<libc::statx>();
    // SAFETY: as for fstatat, with a statx-sized buffer.
    let (buf, _) = with_buffer(len, |p| unsafe {
        libc::syscall(
            libc::SYS_statx,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags,
            mask,
            p,
        )
    })?;
    Ok(buf)
}

/// getdents64 into a buffer of at most `len` bytes.
pub fn getdents64(fd: BorrowedFd<'_>, len: usize) -> Result<Vec<u8>, Errno> {
    // SAFETY: the kernel writes at most `len` bytes into the `len`-byte buffer.
    let (mut buf, n) = with_buffer(len, |p| unsafe {
        libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), p, len)
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// An ioctl that writes a `len`-byte structure (TCGETS, TIOCGWINSZ).
pub fn ioctl_read(fd: BorrowedFd<'_>, request: u64, len: usize) -> Result<Vec<u8>, Errno> {
    // SAFETY: only called with requests whose output is exactly `len` bytes.
    let (buf, _) = with_buffer(len, |p| unsafe {
        libc::ioctl(fd.as_raw_fd(), request as _, p) as _
    })?;
    Ok(buf)
}

/// clock_gettime (`res == false`) or clock_getres (`res == true`): a `struct timespec`.
pub fn clock(clock: i32, res: bool) -> Result<Vec<u8>, Errno> {
    let len = std::mem::size_of::<libc::timespec>();
    // SAFETY: the kernel writes one timespec into the timespec-sized buffer.
    let (buf, _) = with_buffer(len, |p| unsafe {
        if res {
            libc::clock_getres(clock, p.cast()) as _
        } else {
            libc::clock_gettime(clock, p.cast()) as _
        }
    })?;
    Ok(buf)
}

/// `struct sysinfo`.
pub fn sysinfo() -> Result<Vec<u8>, Errno> {
    let len = std::mem::size_of::<libc::sysinfo>();
    // SAFETY: the kernel writes one struct sysinfo into the buffer of that size.
    let (buf, _) = with_buffer(len, |p| unsafe { libc::sysinfo(p.cast()) as _ })?;
    Ok(buf)
}

/// prlimit64 on km itself: sets `new` (a `struct rlimit64`) if given, returns the old.
pub fn prlimit(resource: u32, new: Option<[u8; 16]>) -> Result<Vec<u8>, Errno> {
    let new_ptr = new.as_ref().map_or(std::ptr::null(), |n| n.as_ptr());
    // SAFETY: `new_ptr` is null or points at 16 bytes (struct rlimit64); the old
    // value is written into a 16-byte buffer.
    let (buf, _) = with_buffer(16, |p| unsafe {
        libc::syscall(libc::SYS_prlimit64, 0, resource, new_ptr, p)
    })?;
    Ok(buf)
}

/// readv (`write == false`) or writev straight between `fd` and guest memory, so a
/// vectored write reaches a pipe as one write, as on Linux.
pub fn vectored(
    fd: BorrowedFd<'_>,
    bufs: &[VolatileSlice<'_>],
    write: bool,
) -> Result<usize, Errno> {
    let guards: Vec<_> = bufs.iter().map(|b| b.ptr_guard_mut()).collect();
    let iov: Vec<libc::iovec> = guards
        .iter()
        .zip(bufs)
        .map(|(g, b)| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: every iovec describes a checked slice of guest memory (from
    // `GuestMemory::slice`), kept mapped by the guards for the duration of the call;
    // the kernel reads or writes only within them.
    let n = unsafe {
        if write {
            libc::writev(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int)
        } else {
            libc::readv(fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int)
        }
    };
    check(n as libc::c_long)
}

/// The fourth futex argument: a timeout (for the waiting operations) or a count.
pub enum FutexArg4 {
    Timeout(Option<libc::timespec>),
    Val2(u32),
}

/// futex(2) on guest memory: `uaddr` (and `uaddr2`) are checked 4-byte slices of
/// guest memory, which the host kernel sees at their km addresses; every vCPU thread
/// is a thread of km, so the host futex works across guest threads.
pub fn futex(
    uaddr: &VolatileSlice<'_>,
    op: i32,
    val: u32,
    arg4: FutexArg4,
    uaddr2: Option<&VolatileSlice<'_>>,
    val3: u32,
) -> Result<usize, Errno> {
    let guard = uaddr.ptr_guard_mut();
    let guard2 = uaddr2.map(|u| u.ptr_guard_mut());
    let addr2 = guard2.as_ref().map_or(std::ptr::null_mut(), |g| g.as_ptr());
    let arg4 = match &arg4 {
        FutexArg4::Timeout(Some(ts)) => ts as *const libc::timespec as usize,
        FutexArg4::Timeout(None) => 0,
        FutexArg4::Val2(v) => *v as usize,
    };
    // SAFETY: `uaddr` and `uaddr2` are 4-byte guest slices kept mapped by the guards;
    // `arg4` is a count or points at a timespec that lives until the call returns.
    let n = unsafe { libc::syscall(libc::SYS_futex, guard.as_ptr(), op, val, arg4, addr2, val3) };
    check(n)
}

/// sched_getaffinity of host thread `tid` (0: the caller), at most `len` bytes.
pub fn sched_getaffinity(tid: i32, len: usize) -> Result<Vec<u8>, Errno> {
    // SAFETY: the kernel writes at most `len` bytes into the `len`-byte buffer.
    let (mut buf, n) = with_buffer(len, |p| unsafe {
        libc::syscall(libc::SYS_sched_getaffinity, tid, len, p)
    })?;
    buf.truncate(n);
    Ok(buf)
}

/// sched_setaffinity of host thread `tid` (0: the caller).
pub fn sched_setaffinity(tid: i32, mask: &[u8]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `mask.len()` bytes from `mask`.
    let n = unsafe { libc::syscall(libc::SYS_sched_setaffinity, tid, mask.len(), mask.as_ptr()) };
    check(n).map(drop)
}

/// getcpu: the CPU and NUMA node the calling host thread runs on.
pub fn getcpu() -> Result<(u32, u32), Errno> {
    let (mut cpu, mut node) = (0u32, 0u32);
    // SAFETY: both pointers point at u32s owned by this frame.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut u32,
            &mut node as *mut u32,
            0usize,
        )
    };
    check(n).map(|_| (cpu, node))
}
