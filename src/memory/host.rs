//! Host system calls that fill kernel structures for the guest.
//!
//! Each wrapper has typed arguments (host fds, C strings owned by km) and returns the
//! kernel's bytes in a km-side buffer, which the caller copies into guest memory with
//! a checked write. No guest-supplied value is ever passed to the host as a pointer.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::io::Errno;
use vm_memory::VolatileSlice;

pub(super) fn check(ret: libc::c_long) -> Result<usize, Errno> {
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

/// An ioctl whose argument points at `buf`, a km buffer exactly as long as the
/// structure the request reads or writes (the typed table in `syscalls/ioctl.rs`
/// gives each request's size); returns the ioctl's result.
pub fn ioctl_buffer(fd: BorrowedFd<'_>, request: u64, buf: &mut [u8]) -> Result<u64, Errno> {
    // SAFETY: the request reads and writes at most `buf.len()` bytes at its
    // argument, which is km's own buffer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, buf.as_mut_ptr()) };
    check(r as libc::c_long).map(|n| n as u64)
}

/// The ioctl requests that take their argument as a plain value (or none), which
/// [`ioctl_value`] may make.
const VALUE_IOCTLS: &[u64] = &[libc::TCFLSH, libc::TCXONC, libc::TIOCSCTTY, libc::TIOCNOTTY];

/// An ioctl, one of [`VALUE_IOCTLS`], whose argument is the value `arg`.
pub fn ioctl_value(fd: BorrowedFd<'_>, request: u64, arg: u64) -> Result<u64, Errno> {
    if !VALUE_IOCTLS.contains(&request) {
        return Err(Errno::NOTTY);
    }
    // SAFETY: these requests read no memory through their argument.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg) };
    check(r as libc::c_long).map(|n| n as u64)
}

/// TIOCGPTPEER: a new descriptor for the terminal peer of pty master `fd`, opened
/// with `flags` (and close-on-exec in km).
pub fn pty_peer(fd: BorrowedFd<'_>, flags: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGPTPEER as _,
            flags | libc::O_CLOEXEC,
        )
    };
    let n = check(r as libc::c_long)?;
    // SAFETY: the new descriptor is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(n as RawFd) })
}

/// SIOCGIFCONF into a km buffer of `cap` bytes, or with no buffer (`None`) to learn
/// the length all interfaces need: (the length the kernel reports, the buffer).
pub fn ifconf(fd: BorrowedFd<'_>, cap: Option<usize>) -> Result<(i32, Vec<u8>), Errno> {
    let mut buf = vec![0u8; cap.unwrap_or(0)];
    let mut conf = libc::ifconf {
        ifc_len: i32::try_from(buf.len()).map_err(|_| Errno::INVAL)?,
        ifc_ifcu: libc::__c_anonymous_ifc_ifcu {
            ifcu_buf: if cap.is_some() {
                buf.as_mut_ptr().cast()
            } else {
                std::ptr::null_mut()
            },
        },
    };
    // SAFETY: `conf` points at `buf` with its length (or at no buffer); the kernel
    // writes at most `ifc_len` bytes there and the new length into `conf`.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFCONF as _, &mut conf) };
    check(r as libc::c_long)?;
    buf.truncate((conf.ifc_len.max(0) as usize).min(buf.len()));
    Ok((conf.ifc_len, buf))
}

/// fcntl's record-lock commands (F_GETLK, F_SETLK, F_SETLKW and the OFD ones) on a
/// km-side `struct flock`.
pub fn fcntl_lock(fd: BorrowedFd<'_>, cmd: i32, lock: &mut libc::flock) -> Result<(), Errno> {
    const LOCK_CMDS: [i32; 6] = [
        libc::F_GETLK,
        libc::F_SETLK,
        libc::F_SETLKW,
        libc::F_OFD_GETLK,
        libc::F_OFD_SETLK,
        libc::F_OFD_SETLKW,
    ];
    if !LOCK_CMDS.contains(&cmd) {
        return Err(Errno::INVAL);
    }
    // SAFETY: these commands read and write one struct flock, km's own `lock`.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, lock as *mut libc::flock) };
    check(r as libc::c_long).map(drop)
}

/// fcntl's commands on a `struct f_owner_ex` (not in the libc crate for x86-64).
pub const F_SETOWN_EX: i32 = 15;
pub const F_GETOWN_EX: i32 = 16;
/// `f_owner_ex.type` of a process group owner.
pub const F_OWNER_PGRP: i32 = 2;

/// F_GETOWN_EX / F_SETOWN_EX on a km-side `struct f_owner_ex` (two ints).
pub fn fcntl_owner_ex(fd: BorrowedFd<'_>, cmd: i32, owner: &mut [i32; 2]) -> Result<(), Errno> {
    if cmd != F_GETOWN_EX && cmd != F_SETOWN_EX {
        return Err(Errno::INVAL);
    }
    // SAFETY: these commands read or write one struct f_owner_ex (two ints), km's
    // own `owner`.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, owner.as_mut_ptr()) };
    check(r as libc::c_long).map(drop)
}

/// The fcntl commands that take a plain integer (or nothing), which [`fcntl_int`]
/// may make.
const INT_FCNTLS: &[i32] = &[
    libc::F_GETPIPE_SZ,
    libc::F_SETPIPE_SZ,
    libc::F_SETOWN,
    libc::F_ADD_SEALS,
    libc::F_GET_SEALS,
    libc::F_NOTIFY,
    libc::F_GETLEASE,
    libc::F_SETLEASE,
];

/// fcntl `cmd`, one of [`INT_FCNTLS`], with integer argument `arg`.
pub fn fcntl_int(fd: BorrowedFd<'_>, cmd: i32, arg: u64) -> Result<u64, Errno> {
    if !INT_FCNTLS.contains(&cmd) {
        return Err(Errno::INVAL);
    }
    // SAFETY: these commands read no memory through their argument.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg as libc::c_ulong) };
    check(r as libc::c_long).map(|n| n as u64)
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
/// vectored write reaches a pipe as one write, as on Linux; at file offset `at`
/// (preadv/pwritev) when given.
pub fn vectored(
    fd: BorrowedFd<'_>,
    bufs: &[VolatileSlice<'_>],
    write: bool,
    at: Option<i64>,
    flags: i32,
) -> Result<usize, Errno> {
    let guards: Vec<_> = bufs.iter().map(|b| b.ptr_guard_mut()).collect();
    let iov = iovecs_of(&guards, bufs);
    let (fd, iov, n) = (fd.as_raw_fd(), iov.as_ptr(), iov.len() as libc::c_int);
    // SAFETY: every iovec describes a checked slice of guest memory (from
    // `GuestMemory::slice`), kept mapped by the guards for the duration of the call;
    // the kernel reads or writes only within them.
    let done = unsafe {
        match (write, at, flags) {
            (true, None, 0) => libc::writev(fd, iov, n),
            (false, None, 0) => libc::readv(fd, iov, n),
            (true, Some(off), 0) => libc::pwritev(fd, iov, n, off),
            (false, Some(off), 0) => libc::preadv(fd, iov, n, off),
            (true, at, flags) => libc::pwritev2(fd, iov, n, at.unwrap_or(-1), flags),
            (false, at, flags) => libc::preadv2(fd, iov, n, at.unwrap_or(-1), flags),
        }
    };
    check(done as libc::c_long)
}

/// vmsplice(2) of checked guest memory into (or, on a pipe's read end, out of) a
/// pipe. The pipe may keep references to the pages, as Linux's does to the
/// caller's; km never unmaps guest memory while the payload runs.
pub fn vmsplice(
    fd: BorrowedFd<'_>,
    bufs: &[VolatileSlice<'_>],
    flags: u32,
) -> Result<usize, Errno> {
    let guards: Vec<_> = bufs.iter().map(|b| b.ptr_guard_mut()).collect();
    let iov = iovecs_of(&guards, bufs);
    // SAFETY: as for `vectored`: the iovecs describe checked guest memory only.
    let done = unsafe {
        libc::vmsplice(
            fd.as_raw_fd(),
            iov.as_ptr(),
            iov.len(),
            flags as libc::c_uint,
        )
    };
    check(done as libc::c_long)
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

/// Calls a socket function that takes a socket address argument (bind, connect).
pub fn with_sockaddr(
    fd: BorrowedFd<'_>,
    addr: &[u8],
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> Result<(), Errno> {
    // SAFETY: `addr` is a km buffer of `addr.len()` bytes that the kernel only reads.
    let n = unsafe {
        call(
            fd.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    };
    check(n as libc::c_long).map(drop)
}

/// A socket address returned by the kernel: up to the buffer's length, and the
/// address's full length (which may be larger, as with getsockname).
pub struct SockAddrOut {
    pub bytes: Vec<u8>,
    pub len: u32,
}

fn sockaddr_out(
    len: usize,
    call: impl FnOnce(*mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_long,
) -> Result<(usize, SockAddrOut), Errno> {
    let mut bytes = vec![0u8; len];
    let mut full = len as libc::socklen_t;
    let n = check(call(bytes.as_mut_ptr().cast(), &mut full))?;
    bytes.truncate((full as usize).min(len));
    Ok((n, SockAddrOut { bytes, len: full }))
}

/// getsockname (`peer == false`) or getpeername.
pub fn sockname(fd: BorrowedFd<'_>, len: usize, peer: bool) -> Result<SockAddrOut, Errno> {
    // SAFETY: the kernel writes at most `len` bytes into the `len`-byte buffer and
    // the address length into `full`.
    sockaddr_out(len, |p, l| unsafe {
        if peer {
            libc::getpeername(fd.as_raw_fd(), p, l) as _
        } else {
            libc::getsockname(fd.as_raw_fd(), p, l) as _
        }
    })
    .map(|(_, a)| a)
}

/// accept4; the peer address is returned when `len` is given.
pub fn accept4(
    fd: BorrowedFd<'_>,
    len: Option<usize>,
    flags: i32,
) -> Result<(OwnedFd, Option<SockAddrOut>), Errno> {
    match len {
        // SAFETY: as in `sockname`.
        Some(len) => sockaddr_out(len, |p, l| unsafe {
            libc::accept4(fd.as_raw_fd(), p, l, flags) as _
        })
        .map(|(n, a)| (owned(n), Some(a))),
        // SAFETY: null address pointers are allowed.
        None => check(unsafe {
            libc::accept4(
                fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                flags,
            )
        } as _)
        .map(|n| (owned(n), None)),
    }
}

fn owned(fd: usize) -> OwnedFd {
    // SAFETY: `fd` was just returned by the kernel as a new descriptor of ours.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

pub fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `value.len()` bytes from `value`.
    let n = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    check(n as libc::c_long).map(drop)
}

/// getsockopt with a `len`-byte buffer; returns the value (truncated to its length).
pub fn getsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, len: usize) -> Result<Vec<u8>, Errno> {
    let mut buf = vec![0u8; len];
    let mut out_len = len as libc::socklen_t;
    // SAFETY: the kernel writes at most `out_len` bytes into `buf`.
    let n = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut out_len,
        )
    };
    check(n as libc::c_long)?;
    buf.truncate(out_len as usize);
    Ok(buf)
}

/// sendto from guest memory, with an optional destination address.
pub fn sendto(
    fd: BorrowedFd<'_>,
    buf: &VolatileSlice<'_>,
    flags: i32,
    addr: Option<&[u8]>,
) -> Result<usize, Errno> {
    let guard = buf.ptr_guard();
    let (ap, al) = addr.map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len()));
    // SAFETY: `buf` is checked guest memory kept mapped by the guard; `addr` is a km
    // buffer; the kernel only reads both.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            guard.as_ptr().cast(),
            buf.len(),
            flags,
            ap.cast(),
            al as libc::socklen_t,
        )
    };
    check(n as libc::c_long)
}

/// recvfrom into guest memory; the source address is returned when `len` is given.
pub fn recvfrom(
    fd: BorrowedFd<'_>,
    buf: &VolatileSlice<'_>,
    flags: i32,
    len: Option<usize>,
) -> Result<(usize, Option<SockAddrOut>), Errno> {
    let guard = buf.ptr_guard_mut();
    let (ptr, size) = (guard.as_ptr(), buf.len());
    match len {
        // SAFETY: `buf` is checked guest memory kept mapped by the guard; the address
        // goes to a km buffer as in `sockname`.
        Some(len) => sockaddr_out(len, |p, l| unsafe {
            libc::recvfrom(fd.as_raw_fd(), ptr.cast(), size, flags, p, l) as _
        })
        .map(|(n, a)| (n, Some(a))),
        // SAFETY: as above, without an address.
        None => check(unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                ptr.cast(),
                size,
                flags,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        } as _)
        .map(|n| (n, None)),
    }
}

/// epoll_ctl with a 12-byte `struct epoll_event` (packed on x86-64).
pub fn epoll_ctl(
    epfd: BorrowedFd<'_>,
    op: i32,
    fd: BorrowedFd<'_>,
    event: Option<[u8; 12]>,
) -> Result<(), Errno> {
    let ptr = event.as_ref().map_or(std::ptr::null(), |e| e.as_ptr());
    // SAFETY: `ptr` is null or points at 12 bytes, the size of struct epoll_event.
    let n = unsafe {
        libc::epoll_ctl(
            epfd.as_raw_fd(),
            op,
            fd.as_raw_fd(),
            ptr as *mut libc::epoll_event,
        )
    };
    check(n as libc::c_long).map(drop)
}

/// epoll_wait for up to `max` events, returned as packed 12-byte records.
/// epoll_pwait on a host epoll descriptor: the thread's mask is `mask` while it waits.
pub fn epoll_pwait(
    epfd: BorrowedFd<'_>,
    max: usize,
    timeout_ms: i32,
    mask: &libc::sigset_t,
) -> Result<Vec<u8>, Errno> {
    // SAFETY: the kernel writes at most `max` 12-byte events into the buffer and
    // reads one sigset from `mask`.
    let (mut buf, n) = with_buffer(max * 12, |p| unsafe {
        libc::epoll_pwait(epfd.as_raw_fd(), p.cast(), max as i32, timeout_ms, mask) as _
    })?;
    buf.truncate(n * 12);
    Ok(buf)
}

/// ppoll on host descriptors (`fd` -1 entries are ignored, as by the kernel) with
/// poll's timeout in milliseconds (-1: none); the thread's mask is `mask` while it
/// waits.
pub fn ppoll(
    fds: &mut [libc::pollfd],
    timeout_ms: i32,
    mask: &libc::sigset_t,
) -> Result<usize, Errno> {
    let timeout = (timeout_ms >= 0).then(|| libc::timespec {
        tv_sec: (timeout_ms / 1000).into(),
        tv_nsec: ((timeout_ms % 1000) as i64 * 1_000_000) as _,
    });
    let timeout_ptr = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: `fds` is a km slice of pollfd of the given length; `timeout_ptr` is
    // null or points at a timespec, `mask` at a sigset.
    check(unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            timeout_ptr,
            mask,
        )
    } as _)
}

/// setitimer on km with a `struct itimerval` (4 words); returns the old value.
pub fn setitimer(which: i32, new: Option<[u64; 4]>) -> Result<[u64; 4], Errno> {
    let mut old = [0u64; 4];
    let new_ptr = new.as_ref().map_or(std::ptr::null(), |n| n.as_ptr());
    // SAFETY: `new_ptr` is null or points at 4 words; `old` receives 4 words.
    let n = unsafe { libc::syscall(libc::SYS_setitimer, which, new_ptr, old.as_mut_ptr()) };
    check(n).map(|_| old)
}

pub fn getitimer(which: i32) -> Result<[u64; 4], Errno> {
    let mut cur = [0u64; 4];
    // SAFETY: `cur` receives one struct itimerval (4 words).
    let n = unsafe { libc::syscall(libc::SYS_getitimer, which, cur.as_mut_ptr()) };
    check(n).map(|_| cur)
}

/// timer_create with a copy of the payload's `struct sigevent` (64 bytes).
pub fn timer_create(clock: i32, event: Option<[u8; 64]>) -> Result<i32, Errno> {
    let mut id: i32 = 0;
    let ev = event.as_ref().map_or(std::ptr::null(), |e| e.as_ptr());
    // SAFETY: `ev` is null or points at 64 bytes (struct sigevent); `id` receives
    // the timer id.
    let n = unsafe { libc::syscall(libc::SYS_timer_create, clock, ev, &mut id as *mut i32) };
    check(n).map(|_| id)
}

/// timer_settime with a `struct itimerspec` (4 words); returns the old value.
pub fn timer_settime(id: i32, flags: i32, new: [u64; 4]) -> Result<[u64; 4], Errno> {
    let mut old = [0u64; 4];
    // SAFETY: both pointers point at 4 words owned by this frame.
    let n = unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            id,
            flags,
            new.as_ptr(),
            old.as_mut_ptr(),
        )
    };
    check(n).map(|_| old)
}

pub fn timer_gettime(id: i32) -> Result<[u64; 4], Errno> {
    let mut cur = [0u64; 4];
    // SAFETY: `cur` receives one struct itimerspec.
    let n = unsafe { libc::syscall(libc::SYS_timer_gettime, id, cur.as_mut_ptr()) };
    check(n).map(|_| cur)
}

/// timer_getoverrun or timer_delete.
pub fn timer_call(nr: libc::c_long, id: i32) -> Result<usize, Errno> {
    // SAFETY: both calls take a timer id only.
    check(unsafe { libc::syscall(nr, id) })
}

/// `struct statfs` of the file system holding `path` (statfs) or `fd` (fstatfs).
pub fn statfs(target: Result<&CStr, BorrowedFd<'_>>) -> Result<Vec<u8>, Errno> {
    let len = std::mem::size_of::<libc::statfs>();
    // SAFETY: the kernel writes at most sizeof(struct statfs) bytes into the buffer,
    // which is that long; a path is a valid NUL-terminated string.
    let (buf, _) = with_buffer(len, |p| unsafe {
        match target {
            Ok(path) => libc::statfs(path.as_ptr(), p.cast()) as _,
            Err(fd) => libc::fstatfs(fd.as_raw_fd(), p.cast()) as _,
        }
    })?;
    Ok(buf)
}

/// What an extended-attribute call names: a path (following the last symlink or
/// not) or an open file.
pub enum XattrTarget<'a> {
    Path(&'a CStr, bool),
    Fd(BorrowedFd<'a>),
}

/// getxattr/lgetxattr/fgetxattr (`name: Some`) or listxattr and friends (`None`):
/// the value (or name list) read into a km buffer of `size` bytes, and its length
/// (when `size` is 0, only the length is asked for).
pub fn xattr(
    target: XattrTarget<'_>,
    name: Option<&CStr>,
    size: usize,
) -> Result<(Vec<u8>, usize), Errno> {
    // SAFETY: the kernel writes at most `size` bytes into the buffer, which is that
    // long (a null buffer when `size` is 0 asks only for the length); paths and names
    // are valid NUL-terminated strings.
    let (mut buf, n) = with_buffer(size, |p| unsafe {
        let p = if size == 0 { std::ptr::null_mut() } else { p };
        match (target, name) {
            (XattrTarget::Path(path, true), Some(name)) => {
                libc::getxattr(path.as_ptr(), name.as_ptr(), p, size) as _
            }
            (XattrTarget::Path(path, false), Some(name)) => {
                libc::lgetxattr(path.as_ptr(), name.as_ptr(), p, size) as _
            }
            (XattrTarget::Fd(fd), Some(name)) => {
                libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), p, size) as _
            }
            (XattrTarget::Path(path, true), None) => {
                libc::listxattr(path.as_ptr(), p.cast(), size) as _
            }
            (XattrTarget::Path(path, false), None) => {
                libc::llistxattr(path.as_ptr(), p.cast(), size) as _
            }
            (XattrTarget::Fd(fd), None) => libc::flistxattr(fd.as_raw_fd(), p.cast(), size) as _,
        }
    })?;
    buf.truncate(n);
    Ok((buf, n))
}

/// Forks km. The child continues only in the calling thread: the caller must hold
/// every lock the child goes on to use, and rebuild what belonged to other threads.
pub fn fork() -> Result<i32, Errno> {
    // SAFETY: glibc's fork runs its atfork handlers (malloc's locks among them); the
    // child touches only state the caller has made consistent (see above).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        super::faults::after_fork();
        crate::stats::after_fork();
    }
    check(pid as libc::c_long).map(|p| p as i32)
}

/// Size of the host stack a vfork child runs on (below it, one guard page).
const VFORK_STACK: usize = 2 << 20;

/// Runs `child` in a new host process that shares km's memory (CLONE_VM) but has
/// its own descriptor table, working directory, identity and signal dispositions,
/// as Linux's vfork child does; the calling thread waits (CLONE_VFORK) until that
/// process execs or exits, and gets its pid. Other threads go on running. `child`
/// runs on a stack of its own; its value is the process's exit status should it
/// return. It must not unwind, and shares the caller's thread-local storage (the
/// caller is suspended meanwhile).
pub fn vfork_sharing_memory(child: &mut dyn FnMut() -> i32) -> Result<i32, Errno> {
    let page = super::PAGE_SIZE as usize;
    let len = VFORK_STACK + page;
    // SAFETY: a fresh private anonymous mapping, unmapped below once the child no
    // longer uses it; nothing else refers to it.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(Errno::NOMEM);
    }
    let mut child = child;
    // SAFETY: the guard page lies inside the mapping just made; the stack top is its
    // end, 16-byte aligned. With CLONE_VFORK clone returns only once the child has
    // exec'd or exited, so `child` (borrowed through `arg`) outlives every use the
    // child makes of it, and the stack is unused when it is unmapped.
    let pid = unsafe {
        libc::mprotect(base, page, libc::PROT_NONE);
        let top = base.cast::<u8>().add(len).cast::<libc::c_void>();
        let arg = (&raw mut child).cast::<libc::c_void>();
        let pid = libc::clone(
            vfork_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            arg,
        );
        libc::munmap(base, len);
        pid
    };
    check(pid as libc::c_long).map(|p| p as i32)
}

/// The first function of a vfork child: runs the closure behind `arg`.
extern "C" fn vfork_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the `&mut dyn FnMut` of `vfork_sharing_memory`, whose
    // caller waits, with the closure alive, until this process execs or exits.
    let child = unsafe { &mut *arg.cast::<&mut dyn FnMut() -> i32>() };
    child()
}

/// In a vfork child (see [`vfork_sharing_memory`]), whose descriptor table is a
/// copy of its parent's: an owner of its copy of the parent's descriptor `n`,
/// which the parent keeps open until the child has exec'd or exited.
pub fn own_vfork_copy(n: RawFd) -> OwnedFd {
    // SAFETY: this process's table got its own copy of `n` at the clone (the
    // caller holds the parent's open across it), and nothing else in this process
    // owns that copy: the parent's owners of `n` are never dropped here.
    unsafe { OwnedFd::from_raw_fd(n) }
}

/// Ends this process at once with `status`, running no exit handlers: for a vfork
/// child, whose memory (and so libc's and km's state) is its parent's.
pub fn exit_now(status: i32) -> ! {
    // SAFETY: _exit takes a plain integer and does not return.
    unsafe { libc::_exit(status) }
}

/// wait4 with km-side status and rusage buffers: (pid, status, rusage bytes).
pub fn wait4(pid: i32, options: i32, rusage_len: usize) -> Result<(i32, i32, Vec<u8>), Errno> {
    let mut status = 0i32;
    // SAFETY: the kernel writes one int to `status` and a struct rusage into the
    // buffer, which is `rusage_len` (its size) bytes long.
    let (rusage, pid) = with_buffer(rusage_len, |p| unsafe {
        libc::wait4(pid, &mut status, options, p.cast()) as _
    })?;
    Ok((pid as i32, status, rusage))
}

/// waitpid without status: the pid reaped (or 0 with WNOHANG).
pub fn waitpid(pid: i32, options: i32) -> Result<i32, Errno> {
    // SAFETY: a null status pointer is allowed: the kernel writes nothing then.
    check(unsafe { libc::waitpid(pid, std::ptr::null_mut(), options) } as _).map(|p| p as i32)
}

/// waitid with km-side siginfo and rusage buffers.
pub fn waitid(
    idtype: u32,
    id: u32,
    options: i32,
    info_len: usize,
    rusage_len: usize,
) -> Result<(Vec<u8>, Vec<u8>), Errno> {
    let mut rusage = vec![0u8; rusage_len];
    // SAFETY: the kernel writes a siginfo_t (`info_len` bytes) and a struct rusage
    // (`rusage_len` bytes) into buffers of those sizes.
    let (info, _) = with_buffer(info_len, |p| unsafe {
        libc::syscall(
            libc::SYS_waitid,
            idtype,
            id,
            p,
            options,
            rusage.as_mut_ptr(),
        )
    })?;
    Ok((info, rusage))
}

/// The descriptors km inherited above stdio (what its parent, or the payload's
/// execve, passed on), now owned by the caller and marked close-on-exec on the host
/// (the guest's own flag is kept by the fd table). Call before km opens anything.
pub fn inherited_fds() -> Vec<(i32, OwnedFd)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let numbers: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&n| n > 2)
        .collect();
    let mut out = Vec::new();
    for n in numbers {
        // SAFETY: F_GETFD on a plain number only reads its flags; EBADF (the closed
        // directory descriptor of the listing above) is skipped.
        if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
            continue;
        }
        // SAFETY: `n` is open and nothing in km owns it: km has not opened anything
        // yet and each number is taken once.
        let fd = unsafe { OwnedFd::from_raw_fd(n) };
        let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
        out.push((n, fd));
    }
    out
}

/// Just before execve: makes host descriptor `n` refer to `fd`'s open file, without
/// close-on-exec; whatever km had at `n` is closed. Other threads must be stopped.
pub fn place_fd(fd: BorrowedFd<'_>, n: RawFd) -> Result<(), Errno> {
    // SAFETY: dup2 takes plain numbers; the caller accepts losing km's descriptor at
    // `n` (it is about to execve).
    check(unsafe { libc::dup2(fd.as_raw_fd(), n) } as libc::c_long).map(drop)
}

/// Just before execve: lets host descriptor `n` (km's own) close on exec.
/// Whether this process holds a POSIX record lock on the file behind descriptor
/// `fd` (its fdinfo lists the file's locks with their owners' pids).
pub fn holds_posix_lock(fd: BorrowedFd<'_>) -> bool {
    let me = rustix::process::getpid().as_raw_nonzero().get().to_string();
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).is_ok_and(|info| {
        info.lines().any(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            // lock:  1: POSIX  ADVISORY  WRITE 1234 00:2a:5678 0 EOF
            words.first() == Some(&"lock:")
                && words.get(2) == Some(&"POSIX")
                && words.get(5) == Some(&me.as_str())
        })
    })
}

/// Lets descriptor `fd` survive execve (clears FD_CLOEXEC).
pub fn keep_on_exec(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
}

/// A copy of `fd` at a number from `min` that survives execve (what km passes
/// to the km an execve starts).
pub fn inheritable_copy(fd: BorrowedFd<'_>, min: RawFd) -> Result<OwnedFd, Errno> {
    let copy = rustix::io::fcntl_dupfd_cloexec(fd, min)?;
    keep_on_exec(std::os::fd::AsFd::as_fd(&copy))?;
    Ok(copy)
}

pub fn close_on_exec(n: RawFd) {
    // SAFETY: F_SETFD on a plain number only changes its flags (EBADF is harmless).
    unsafe { libc::fcntl(n, libc::F_SETFD, libc::FD_CLOEXEC) };
}

/// execve(2); returns only on failure.
pub fn execve(path: &CStr, argv: &[std::ffi::CString], envp: &[std::ffi::CString]) -> Errno {
    let argv: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = envp
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: both arrays are NULL-terminated and point at live C strings.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO),
    )
}

/// km's argument area, `[start, end)`, as the kernel reports it (fields 48 and 49
/// of /proc/self/stat), read once: it stays where the host's execve put it.
fn command_line_area() -> Option<(usize, usize)> {
    static AREA: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    *AREA.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name.
        let (_, tail) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
        let (start, end) = (field(48)?, field(49)?);
        (end > start).then_some((start, end))
    })
}

/// Whether [`show_command_line`] can show all of `argv`.
pub fn command_line_fits(argv: &[std::ffi::CString]) -> bool {
    let len: usize = argv.iter().map(|a| a.as_bytes_with_nul().len()).sum();
    command_line_area().is_some_and(|(start, end)| len <= end - start)
}

/// Shows `argv` as km's own command line (what `ps` and /proc/PID/cmdline of km
/// show), written over km's original argument strings: the kernel reads the command
/// line from that memory. Arguments that do not fit are cut; the rest is zeroed.
pub fn show_command_line(argv: &[std::ffi::CString]) {
    let Some((start, end)) = command_line_area() else {
        return;
    };
    let mut bytes: Vec<u8> = argv
        .iter()
        .flat_map(|a| a.as_bytes_with_nul())
        .copied()
        .collect();
    bytes.resize(end - start, 0);
    // SAFETY: [start, end) is this process's own argument area on the initial stack,
    // as the kernel reports it; km read its arguments (std::env::args_os copies them)
    // before this call, and nothing keeps references into the area.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, bytes.len()) };
}

/// kill(2) on the host (any signal number, real-time ones included).
pub fn kill(pid: i32, sig: i32) -> Result<(), Errno> {
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid, sig) } as libc::c_long).map(drop)
}

/// rt_sigqueueinfo to host process `pid` with a copy of the payload's siginfo.
pub fn rt_sigqueueinfo(pid: i32, sig: i32, info: &[u8; 128]) -> Result<(), Errno> {
    // SAFETY: `info` is a 128-byte siginfo the kernel only reads.
    check(unsafe { libc::syscall(libc::SYS_rt_sigqueueinfo, pid, sig, info.as_ptr()) }).map(drop)
}

/// The processes in host process group `pgid`, from /proc (a snapshot).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // Fields after the parenthesised name: state, ppid, pgrp.
                    let tail = stat.rsplit_once(')')?.1;
                    tail.split_whitespace().nth(2)?.parse::<i32>().ok()
                })
                == Some(pgid)
        })
        .collect()
}

/// Closes descriptor `n` by number: for a forked km's copies of descriptors that
/// objects of threads the child does not have still own (and never use again).
/// A close-on-exec copy of descriptor `n`, which this process holds open for the
/// duration of the call (its owner, which the caller knows, closes it only later).
pub fn dup_cloexec(n: RawFd) -> Result<OwnedFd, Errno> {
    dup_cloexec_from(n, 0)
}

/// [`dup_cloexec`] at the lowest free number from `min`.
pub fn dup_cloexec_from(n: RawFd, min: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: `n` stays open until this call returns (see [`dup_cloexec`]); the
    // borrow ends with the call.
    let fd = unsafe { BorrowedFd::borrow_raw(n) };
    rustix::io::fcntl_dupfd_cloexec(fd, min)
}

pub fn close_fd(n: RawFd) {
    // SAFETY: close takes a plain number; the owners of `n` are never dropped or used
    // in this process (their threads exist only in the parent).
    unsafe { libc::close(n) };
}

/// Syscalls whose arguments are all plain integers (descriptors are km's host
/// descriptors), which [`int_syscall`] may make.
const INT_SYSCALLS: &[libc::c_long] = &[
    libc::SYS_flock,
    libc::SYS_membarrier,
    libc::SYS_shmget,
    libc::SYS_semget,
    libc::SYS_msgget,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_readahead,
    libc::SYS_syncfs,
    libc::SYS_sync_file_range,
    libc::SYS_fchown,
    libc::SYS_getpriority,
    libc::SYS_setpriority,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_inotify_rm_watch,
];

/// Syscalls with integer arguments that return a new descriptor.
const FD_SYSCALLS: &[libc::c_long] = &[
    libc::SYS_eventfd2,
    libc::SYS_pidfd_open,
    libc::SYS_timerfd_create,
    libc::SYS_inotify_init1,
];

/// Makes syscall `nr`, one of [`INT_SYSCALLS`], with integer arguments.
pub fn int_syscall(nr: libc::c_long, args: [u64; 4]) -> Result<u64, Errno> {
    if !INT_SYSCALLS.contains(&nr) {
        return Err(Errno::NOSYS);
    }
    // SAFETY: the syscalls allowed here take no pointers, so no argument value can
    // make the kernel touch memory.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3]) };
    check(r).map(|n| n as u64)
}

/// Makes syscall `nr`, one of [`FD_SYSCALLS`], and owns the descriptor it returns.
pub fn fd_syscall(nr: libc::c_long, args: [u64; 2]) -> Result<OwnedFd, Errno> {
    if !FD_SYSCALLS.contains(&nr) {
        return Err(Errno::NOSYS);
    }
    // SAFETY: as for `int_syscall`; the result, when not an error, is a new
    // descriptor nobody else owns.
    let fd = check(unsafe { libc::syscall(nr, args[0], args[1]) })?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// getrusage(who) into a km buffer (`struct rusage`).
pub fn getrusage(who: i32) -> Result<Vec<u8>, Errno> {
    let len = std::mem::size_of::<libc::rusage>();
    // SAFETY: the kernel writes one struct rusage into the buffer, which is that long.
    let (buf, _) = with_buffer(len, |p| unsafe { libc::getrusage(who, p.cast()) as _ })?;
    Ok(buf)
}

/// times() with its `struct tms` in a km buffer: (clock ticks, buffer).
pub fn times() -> Result<(u64, Vec<u8>), Errno> {
    let len = std::mem::size_of::<libc::tms>();
    // SAFETY: the kernel writes one struct tms into the buffer, which is that long.
    let (buf, ticks) = with_buffer(len, |p| unsafe { libc::times(p.cast()) as _ })?;
    Ok((ticks as u64, buf))
}

/// getresuid (`gid: false`) or getresgid: real, effective, saved.
pub fn getres_ids(gid: bool) -> Result<[u32; 3], Errno> {
    let mut ids = [0u32; 3];
    let [r, e, s] = &mut ids;
    // SAFETY: the kernel writes one id into each of the three km variables.
    let rc = unsafe {
        if gid {
            libc::getresgid(r, e, s)
        } else {
            libc::getresuid(r, e, s)
        }
    };
    check(rc as libc::c_long).map(|_| ids)
}

/// setgroups with a km list.
pub fn setgroups(groups: &[u32]) -> Result<(), Errno> {
    // SAFETY: the kernel reads `groups.len()` ids from the km slice.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    check(rc).map(drop)
}

/// prctl options with an integer argument and result (see `syscalls::creds`).
const PRCTL_INT: &[i32] = &[
    libc::PR_SET_PDEATHSIG,
    libc::PR_GET_DUMPABLE,
    libc::PR_SET_DUMPABLE,
    libc::PR_SET_CHILD_SUBREAPER,
    libc::PR_SET_NO_NEW_PRIVS,
    libc::PR_GET_NO_NEW_PRIVS,
];

/// prctl(option, arg) for an option of [`PRCTL_INT`].
pub fn prctl_int(option: i32, arg: u64) -> Result<u64, Errno> {
    if !PRCTL_INT.contains(&option) {
        return Err(Errno::INVAL);
    }
    // SAFETY: these options take an integer, never a pointer.
    let r = unsafe { libc::prctl(option, arg as libc::c_ulong, 0, 0, 0) };
    check(r as libc::c_long).map(|n| n as u64)
}

/// prctl(PR_GET_PDEATHSIG or PR_GET_CHILD_SUBREAPER): the int it stores.
pub fn prctl_get(option: i32) -> Result<i32, Errno> {
    if option != libc::PR_GET_PDEATHSIG && option != libc::PR_GET_CHILD_SUBREAPER {
        return Err(Errno::INVAL);
    }
    let mut value: libc::c_int = 0;
    // SAFETY: both options store one int at the km address given.
    let r = unsafe { libc::prctl(option, &mut value as *mut libc::c_int, 0, 0, 0) };
    check(r as libc::c_long).map(|_| value)
}

/// setxattr/lsetxattr/fsetxattr (`value: Some`) or removexattr and friends (`None`)
/// with km-side name and value.
pub fn change_xattr(
    target: XattrTarget<'_>,
    name: &CStr,
    value: Option<(&[u8], i32)>,
) -> Result<(), Errno> {
    // SAFETY: paths and names are valid NUL-terminated strings and the value is a
    // km slice whose length is passed with it.
    let r = unsafe {
        match (target, value) {
            (XattrTarget::Path(p, true), Some((v, f))) => {
                libc::setxattr(p.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), f)
            }
            (XattrTarget::Path(p, false), Some((v, f))) => {
                libc::lsetxattr(p.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), f)
            }
            (XattrTarget::Fd(fd), Some((v, f))) => {
                libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), v.as_ptr().cast(), v.len(), f)
            }
            (XattrTarget::Path(p, true), None) => libc::removexattr(p.as_ptr(), name.as_ptr()),
            (XattrTarget::Path(p, false), None) => libc::lremovexattr(p.as_ptr(), name.as_ptr()),
            (XattrTarget::Fd(fd), None) => libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()),
        }
    };
    check(r as libc::c_long).map(drop)
}

/// What recvmsg gave back: bytes received, the source address (up to the capacity
/// asked for) and its full length, the control data and the message flags.
pub struct Received {
    pub len: usize,
    pub name: Vec<u8>,
    pub name_len: u32,
    pub control: Vec<u8>,
    pub flags: i32,
}

/// The iovecs of checked guest buffers, whose pointers `guards` keep valid.
fn iovecs_of(
    guards: &[vm_memory::volatile_memory::PtrGuardMut],
    bufs: &[VolatileSlice<'_>],
) -> Vec<libc::iovec> {
    guards
        .iter()
        .zip(bufs)
        .map(|(g, b)| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: b.len(),
        })
        .collect()
}

/// sendmsg over guest buffers, with a km-side address and control data (whose
/// descriptors the caller has already made km's host descriptors).
pub fn sendmsg(
    fd: BorrowedFd<'_>,
    name: Option<&[u8]>,
    bufs: &[VolatileSlice<'_>],
    control: &[u8],
    flags: i32,
) -> Result<usize, Errno> {
    let guards: Vec<_> = bufs.iter().map(|b| b.ptr_guard_mut()).collect();
    let mut iov = iovecs_of(&guards, bufs);
    // SAFETY: a zeroed msghdr is valid; every pointer set below is a km buffer or
    // checked guest memory kept mapped by the guards, with its length.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = name {
        msg.msg_name = name.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = name.len() as libc::socklen_t;
    }
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
    }
    // SAFETY: see above; the kernel only reads through `msg`.
    check(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) } as libc::c_long)
}

/// recvmsg into guest buffers, with km-side address and control buffers of the
/// given capacities; descriptors passed in SCM_RIGHTS arrive close-on-exec.
pub fn recvmsg(
    fd: BorrowedFd<'_>,
    name_cap: usize,
    bufs: &[VolatileSlice<'_>],
    control_cap: usize,
    flags: i32,
) -> Result<Received, Errno> {
    let guards: Vec<_> = bufs.iter().map(|b| b.ptr_guard_mut()).collect();
    let mut iov = iovecs_of(&guards, bufs);
    let mut name = vec![0u8; name_cap];
    let mut control = vec![0u8; control_cap];
    // SAFETY: as for `sendmsg`; the kernel writes within the km buffers' lengths
    // and the guest buffers behind the iovecs.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if name_cap > 0 {
        msg.msg_name = name.as_mut_ptr().cast();
        msg.msg_namelen = name_cap as libc::socklen_t;
    }
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len();
    if control_cap > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_cap;
    }
    // SAFETY: see above.
    let n = check(
        unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) }
            as libc::c_long,
    )?;
    let name_len = if name_cap > 0 { msg.msg_namelen } else { 0 };
    name.truncate((name_len as usize).min(name_cap));
    control.truncate(msg.msg_controllen.min(control_cap));
    Ok(Received {
        len: n,
        name,
        name_len,
        control,
        flags: msg.msg_flags,
    })
}

/// Takes ownership of descriptor `n`, which the kernel just installed for km (an
/// SCM_RIGHTS message that recvmsg received).
pub fn adopt_received_fd(n: RawFd) -> OwnedFd {
    // SAFETY: a descriptor passed in SCM_RIGHTS is new in km's table and owned by
    // nothing else; each is adopted once, as it is read from the control data.
    unsafe { OwnedFd::from_raw_fd(n) }
}

/// sched_getparam(pid): the thread's static (real-time) priority.
pub fn sched_getparam(pid: i32) -> Result<i32, Errno> {
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the kernel writes one struct sched_param into the km variable.
    check(unsafe { libc::sched_getparam(pid, &mut param) } as libc::c_long)?;
    Ok(param.sched_priority)
}

/// sched_setscheduler(pid, policy, priority), or sched_setparam(pid, priority)
/// when `policy` is `None`.
pub fn sched_setparam(pid: i32, policy: Option<i32>, priority: i32) -> Result<(), Errno> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: the kernel reads one struct sched_param from the km variable.
    let r = unsafe {
        match policy {
            Some(policy) => libc::sched_setscheduler(pid, policy, &param),
            None => libc::sched_setparam(pid, &param),
        }
    };
    check(r as libc::c_long).map(drop)
}

/// sched_rr_get_interval(pid): the round-robin time slice (tv_sec, tv_nsec).
pub fn sched_rr_get_interval(pid: i32) -> Result<[i64; 2], Errno> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the kernel writes one struct timespec into the km variable.
    check(unsafe { libc::sched_rr_get_interval(pid, &mut ts) } as libc::c_long)?;
    Ok([ts.tv_sec, ts.tv_nsec])
}

/// shmctl(id, cmd, buf) with `buf` a km buffer (empty: a null pointer): what
/// IPC_SET reads, or where IPC_STAT and the info commands write. Returns the
/// call's result and the buffer.
pub fn shmctl(id: i32, cmd: i32, mut buf: Vec<u8>) -> Result<(u64, Vec<u8>), Errno> {
    let p = if buf.is_empty() {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    // SAFETY: the kernel reads or writes at most one structure of the command's
    // type, and the caller sized `buf` for it.
    let r = unsafe { libc::shmctl(id, cmd, p.cast()) };
    check(r as libc::c_long).map(|n| (n as u64, buf))
}
