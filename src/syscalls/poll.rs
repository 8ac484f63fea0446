//! Waiting on descriptors: poll/ppoll and epoll, on the host descriptors behind the
//! guest's. epoll's user data is opaque and passes through unchanged.

use std::os::fd::{AsFd, AsRawFd};

use rustix::event::epoll;
use rustix::io::Errno;

use super::signal::{read_temporary_mask, with_temporary_mask};
use super::{Ctx, SysResult};
use crate::guest::mm::TASK_SIZE;
use crate::kernel::{fdtable, signalfd};
use crate::kvm::kick;
use crate::memory::host;

const EPOLL_EVENT_SIZE: u64 = 12;
/// Linux's EP_MAX_EVENTS.
const EP_MAX_EVENTS: u64 = i32::MAX as u64 / EPOLL_EVENT_SIZE;
/// Most events one epoll_wait asks the host for (fewer than asked is fine to
/// epoll's callers), which bounds km's buffer (768 KiB) whatever the guest's
/// maxevents. It is as many as a process of 65536 descriptors can have ready: a
/// caller that waits for all of them at once gets them at once, as on Linux (a
/// second host call would return level-triggered events again, not the rest).
const EVENTS_PER_WAIT: u64 = 1 << 16;
const NSEC_PER_MSEC: i64 = 1_000_000;
const USEC_PER_MSEC: i64 = 1_000;

/// A timeout argument as poll's milliseconds (rounded up; -1 for a null pointer):
/// a timespec (`per_ms` nanoseconds) or a timeval (`per_ms` microseconds).
fn timeout_ms(ctx: &Ctx<'_>, addr: u64, per_ms: i64) -> Result<i32, Errno> {
    if addr == 0 {
        return Ok(-1);
    }
    let [sec, sub]: [i64; 2] = ctx.read_obj(addr)?;
    if sec < 0 || !(0..per_ms * 1000).contains(&sub) {
        return Err(Errno::INVAL);
    }
    Ok((sec
        .saturating_mul(1000)
        .saturating_add((sub + per_ms - 1) / per_ms))
    .min(i32::MAX as i64) as i32)
}

/// A host wait that a signal for the thread interrupts, with no window where a
/// kick goes unseen: `wait(timeout_ms, mask)` blocks with the host mask given. As
/// on Linux, with a signal already pending it only looks (timeout 0) and is EINTR
/// when `nothing` says it found nothing ready.
fn interruptible<T>(
    ctx: &Ctx<'_>,
    timeout_ms: i32,
    wait: impl FnOnce(i32, &libc::sigset_t) -> Result<T, Errno>,
    nothing: impl FnOnce(&T) -> bool,
) -> Result<T, Errno> {
    kick::with_kick_held(|open| {
        signalfd::refresh(ctx.guest, ctx.thread);
        if !ctx.wait_ends() {
            return wait(timeout_ms, open);
        }
        let found = wait(0, open)?;
        if nothing(&found) {
            Err(Errno::INTR)
        } else {
            Ok(found)
        }
    })
}

pub fn epoll_create(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[0] as i32 <= 0 {
        return Err(Errno::INVAL);
    }
    create(ctx, 0)
}

pub fn epoll_create1(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[0] & !(libc::EPOLL_CLOEXEC as u64) != 0 {
        return Err(Errno::INVAL);
    }
    create(ctx, a[0])
}

fn create(ctx: &mut Ctx<'_>, flags: u64) -> SysResult {
    let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    Ok(ctx.thread.fds(ctx.guest).insert(fd, flags != 0, 0)? as u64)
}

pub fn epoll_ctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let epfd = ctx.fd(a[0])?;
    let fd = ctx.fd(a[2])?;
    let event = if a[1] as i32 == libc::EPOLL_CTL_DEL {
        None
    } else {
        Some(ctx.read_obj::<[u8; 12]>(a[3])?)
    };
    host::epoll_ctl(epfd.as_fd(), a[1] as i32, fd.as_fd(), event)?;
    Ok(0)
}

/// epoll_wait(epfd, events, maxevents, timeout). As Linux, the events buffer need
/// only lie in user space until events are written to it (EFAULT then).
fn wait(ctx: &mut Ctx<'_>, epfd: u64, events: u64, max: u64, timeout_ms: i32) -> SysResult {
    // maxevents is an int.
    let max = max as i32;
    if max <= 0 || max as u64 > EP_MAX_EVENTS {
        return Err(Errno::INVAL);
    }
    let max = max as u64;
    let end = events.checked_add(max * EPOLL_EVENT_SIZE);
    if end.is_none_or(|end| end > TASK_SIZE) {
        return Err(Errno::FAULT);
    }
    let epfd = ctx.fd(epfd)?;
    let max = max.min(EVENTS_PER_WAIT) as usize;
    let out = interruptible(
        ctx,
        timeout_ms,
        |timeout, mask| host::epoll_pwait(epfd.as_fd(), max, timeout, mask),
        Vec::is_empty,
    )?;
    ctx.write_bytes(events, &out)?;
    Ok(out.len() as u64 / EPOLL_EVENT_SIZE)
}

pub fn epoll_wait(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    wait(ctx, a[0], a[1], a[2], a[3] as i32)
}

/// epoll_pwait(epfd, events, maxevents, timeout, sigmask, sigsetsize): waits under
/// the temporary mask.
pub fn epoll_pwait(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let mask = read_temporary_mask(ctx, a[4], a[5])?;
    with_temporary_mask(ctx, mask, |ctx| wait(ctx, a[0], a[1], a[2], a[3] as i32))
}

/// epoll_pwait2: epoll_pwait with a timespec timeout (rounded up to milliseconds).
pub fn epoll_pwait2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let timeout = timeout_ms(ctx, a[3], NSEC_PER_MSEC)?;
    let mask = read_temporary_mask(ctx, a[4], a[5])?;
    with_temporary_mask(ctx, mask, |ctx| wait(ctx, a[0], a[1], a[2], timeout))
}

fn do_poll(ctx: &mut Ctx<'_>, fds_addr: u64, nfds: u64, timeout_ms: i32) -> SysResult {
    // nfds is an unsigned int, at most RLIMIT_NOFILE.
    let nfds = nfds as u32 as u64;
    if nfds > fdtable::limit() as u64 {
        return Err(Errno::INVAL);
    }
    let raw = ctx.read_bytes(fds_addr, (nfds * 8) as usize)?;
    let mut held = Vec::new();
    let mut fds: Vec<libc::pollfd> = raw
        .chunks_exact(8)
        .map(|c| {
            let guest_fd = i32::from_ne_bytes(c[0..4].try_into().expect("4 bytes"));
            let events = i16::from_ne_bytes(c[4..6].try_into().expect("2 bytes"));
            let fd = if guest_fd < 0 {
                -1
            } else {
                match ctx.fd(guest_fd as u64) {
                    Ok(f) => {
                        let raw = f.as_raw_fd();
                        held.push(f);
                        raw
                    }
                    // An invalid descriptor polls as POLLNVAL: give the host one
                    // that reports it.
                    Err(_) => i32::MAX,
                }
            };
            libc::pollfd {
                fd,
                events,
                revents: 0,
            }
        })
        .collect();
    let n = interruptible(
        ctx,
        timeout_ms,
        |timeout, mask| host::ppoll(&mut fds, timeout, mask),
        |&n| n == 0,
    )?;
    let mut out = raw;
    for (chunk, p) in out.chunks_exact_mut(8).zip(&fds) {
        chunk[6..8].copy_from_slice(&p.revents.to_ne_bytes());
    }
    ctx.write_bytes(fds_addr, &out)?;
    Ok(n as u64)
}

pub fn poll(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_poll(ctx, a[0], a[1], a[2] as i32)
}

/// ppoll(fds, nfds, timeout, sigmask, sigsetsize): the timeout is a timespec
/// (rounded up to milliseconds); waits under the temporary mask.
pub fn ppoll(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let timeout = timeout_ms(ctx, a[2], NSEC_PER_MSEC)?;
    let mask = read_temporary_mask(ctx, a[3], a[4])?;
    with_temporary_mask(ctx, mask, |ctx| do_poll(ctx, a[0], a[1], timeout))
}

/// The guest's fd_set at `addr` for descriptors below `nfds` (none if null).
fn read_fd_set(ctx: &Ctx<'_>, addr: u64, nfds: usize) -> Result<Option<Vec<u64>>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let words = nfds.div_ceil(64);
    let bytes = ctx.read_bytes(addr, words * 8)?;
    Ok(Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    ))
}

fn has(set: &Option<Vec<u64>>, fd: usize) -> bool {
    set.as_ref()
        .is_some_and(|s| s[fd / 64] & (1 << (fd % 64)) != 0)
}

/// select and pselect6 through the host's poll: `timeout_ms` -1 waits forever.
/// Returns the ready count; the guest's sets are rewritten with the ready ones.
fn do_select(ctx: &mut Ctx<'_>, a: &[u64; 6], timeout_ms: i32) -> SysResult {
    let nfds = a[0] as i32;
    if nfds < 0 {
        return Err(Errno::INVAL);
    }
    // Linux cuts nfds to the size of the descriptor table.
    let nfds = nfds.min(fdtable::limit()) as usize;
    let sets = [
        read_fd_set(ctx, a[1], nfds)?,
        read_fd_set(ctx, a[2], nfds)?,
        read_fd_set(ctx, a[3], nfds)?,
    ];
    let mut held = Vec::new();
    let mut polled = Vec::new();
    for fd in 0..nfds {
        let mut events = 0;
        if has(&sets[0], fd) {
            events |= libc::POLLIN;
        }
        if has(&sets[1], fd) {
            events |= libc::POLLOUT;
        }
        if has(&sets[2], fd) {
            events |= libc::POLLPRI;
        }
        if events == 0 {
            continue;
        }
        let host = ctx.fd(fd as u64)?;
        polled.push((
            fd,
            libc::pollfd {
                fd: host.as_raw_fd(),
                events,
                revents: 0,
            },
        ));
        held.push(host);
    }
    let mut fds: Vec<libc::pollfd> = polled.iter().map(|(_, p)| *p).collect();
    interruptible(
        ctx,
        timeout_ms,
        |timeout, mask| host::ppoll(&mut fds, timeout, mask),
        |&n| n == 0,
    )?;
    let mut ready: [Vec<u64>; 3] = std::array::from_fn(|_| vec![0u64; nfds.div_ceil(64)]);
    let mut count = 0;
    for ((fd, _), p) in polled.iter().zip(&fds) {
        if p.revents & libc::POLLNVAL != 0 {
            return Err(Errno::BADF);
        }
        let hits = [
            p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && has(&sets[0], *fd),
            p.revents & (libc::POLLOUT | libc::POLLERR) != 0 && has(&sets[1], *fd),
            p.revents & libc::POLLPRI != 0 && has(&sets[2], *fd),
        ];
        for (set, hit) in ready.iter_mut().zip(hits) {
            if hit {
                set[fd / 64] |= 1 << (fd % 64);
                count += 1;
            }
        }
    }
    for (addr, set) in a[1..4].iter().zip(&ready) {
        if *addr != 0 {
            let bytes: Vec<u8> = set.iter().flat_map(|w| w.to_ne_bytes()).collect();
            ctx.write_bytes(*addr, &bytes)?;
        }
    }
    Ok(count)
}

pub fn select(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let timeout = timeout_ms(ctx, a[4], USEC_PER_MSEC)?;
    let start = std::time::Instant::now();
    let n = do_select(ctx, a, timeout)?;
    if a[4] != 0 {
        // Linux leaves the time not slept in the timeval.
        let left = (timeout as u128 * 1000).saturating_sub(start.elapsed().as_micros()) as i64;
        ctx.write_obj(a[4], [left / 1_000_000, left % 1_000_000])?;
    }
    Ok(n)
}

/// pselect6(nfds, readfds, writefds, exceptfds, timeout, sig): the timeout is a
/// timespec; `sig` points at { sigmask pointer, its size } (null: no mask), and the
/// wait runs under that temporary mask.
pub fn pselect6(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let timeout = timeout_ms(ctx, a[4], NSEC_PER_MSEC)?;
    let mask = if a[5] == 0 {
        None
    } else {
        let [set, size]: [u64; 2] = ctx.read_obj(a[5])?;
        read_temporary_mask(ctx, set, size)?
    };
    with_temporary_mask(ctx, mask, |ctx| do_select(ctx, a, timeout))
}
