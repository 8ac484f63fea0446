//! Descriptors that are not files: eventfd, timerfd, memfd and inotify, created on
//! the host and installed in the guest's table (their reads, writes and polls are
//! the ordinary ones).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::memory::host;

/// Installs `fd` with the guest's close-on-exec choice (`flags & cloexec_flag`).
fn install(ctx: &Ctx<'_>, fd: OwnedFd, flags: u64, cloexec_flag: i32) -> SysResult {
    let cloexec = flags & cloexec_flag as u64 != 0;
    Ok(ctx.thread.fds(ctx.guest).insert(fd, cloexec, 0)? as u64)
}

pub fn eventfd2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let allowed = (libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE) as u64;
    if a[1] & !allowed != 0 {
        return Err(Errno::INVAL);
    }
    let host_flags = a[1] | libc::EFD_CLOEXEC as u64;
    let fd = host::fd_syscall(libc::SYS_eventfd2, [a[0] as u32 as u64, host_flags])?;
    install(ctx, fd, a[1], libc::EFD_CLOEXEC)
}

pub fn eventfd(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    eventfd2(ctx, &[a[0], 0, 0, 0, 0, 0])
}

pub fn timerfd_create(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let allowed = (libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) as u64;
    if a[1] & !allowed != 0 {
        return Err(Errno::INVAL);
    }
    let host_flags = a[1] | libc::TFD_CLOEXEC as u64;
    let fd = host::fd_syscall(libc::SYS_timerfd_create, [a[0] as i32 as u64, host_flags])?;
    install(ctx, fd, a[1], libc::TFD_CLOEXEC)
}

fn itimerspec(words: [i64; 4]) -> rustix::time::Itimerspec {
    rustix::time::Itimerspec {
        it_interval: rustix::time::Timespec {
            tv_sec: words[0],
            tv_nsec: words[1],
        },
        it_value: rustix::time::Timespec {
            tv_sec: words[2],
            tv_nsec: words[3],
        },
    }
}

fn words(t: &rustix::time::Itimerspec) -> [i64; 4] {
    [
        t.it_interval.tv_sec,
        t.it_interval.tv_nsec,
        t.it_value.tv_sec,
        t.it_value.tv_nsec,
    ]
}

pub fn timerfd_settime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let flags = rustix::time::TimerfdTimerFlags::from_bits(a[1] as u32).ok_or(Errno::INVAL)?;
    let new = itimerspec(ctx.read_obj(a[2])?);
    let old = rustix::time::timerfd_settime(fd.as_fd(), flags, &new)?;
    if a[3] != 0 {
        ctx.write_obj(a[3], words(&old))?;
    }
    Ok(0)
}

pub fn timerfd_gettime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let now = rustix::time::timerfd_gettime(ctx.fd(a[0])?.as_fd())?;
    ctx.write_obj(a[1], words(&now))?;
    Ok(0)
}

pub fn memfd_create(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let name = ctx.read_cstring(a[0], 250, Errno::INVAL)?;
    let flags = rustix::fs::MemfdFlags::from_bits(a[1] as u32).ok_or(Errno::INVAL)?;
    let fd = rustix::fs::memfd_create(&name, flags | rustix::fs::MemfdFlags::CLOEXEC)?;
    install(ctx, fd, a[1], libc::MFD_CLOEXEC as i32)
}

pub fn inotify_init1(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let allowed = (libc::IN_CLOEXEC | libc::IN_NONBLOCK) as u64;
    if a[0] & !allowed != 0 {
        return Err(Errno::INVAL);
    }
    let host_flags = a[0] | libc::IN_CLOEXEC as u64;
    let fd = host::fd_syscall(libc::SYS_inotify_init1, [host_flags, 0])?;
    install(ctx, fd, a[0], libc::IN_CLOEXEC)
}

pub fn inotify_init(ctx: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    inotify_init1(ctx, &[0; 6])
}

pub fn inotify_add_watch(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let path = ctx.read_path(a[1])?;
    let mask = rustix::fs::inotify::WatchFlags::from_bits_retain(a[2] as u32);
    Ok(rustix::fs::inotify::add_watch(fd.as_fd(), &path, mask)? as u64)
}

pub fn inotify_rm_watch(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    host::int_syscall(
        libc::SYS_inotify_rm_watch,
        [fd.as_raw_fd() as u64, a[1] as i32 as u64, 0, 0],
    )
}
