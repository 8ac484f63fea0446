//! Signal syscalls: dispositions, masks, sending, waiting, sigreturn and timers. The
//! delivery machinery is in `crate::kernel::signals`.

use std::sync::atomic::Ordering;

use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::{Ctx, Outcome, SysResult};
use crate::kernel::signalfd;
use crate::kernel::signals::{self, SI_TKILL, SI_USER, SigAction, SigInfo, UNBLOCKABLE};
use crate::kvm::kick;
use crate::memory::host;

const SIGSET_SIZE: u64 = 8;
/// The longest host sleep of a thread waiting for a signal between two looks. A
/// kick ends the sleep at once (and is sent again until the thread has looked, see
/// `kvm::kick`), so this only bounds the cost of a wake-up km failed to send.
const WAIT_SLICE: Duration = Duration::from_secs(1);

fn check_sigset_size(size: u64) -> Result<(), Errno> {
    if size != SIGSET_SIZE {
        Err(Errno::INVAL)
    } else {
        Ok(())
    }
}

/// The temporary mask a wait passes at `addr` (null: none), as Linux's
/// set_user_sigmask reads it: EINVAL for a size other than a sigset's.
pub fn read_temporary_mask(ctx: &Ctx<'_>, addr: u64, size: u64) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    check_sigset_size(size)?;
    Ok(Some(ctx.read_obj(addr)?))
}

/// Runs wait `f` under the temporary mask `mask` (if any). The thread's own mask
/// comes back when `f` returns, unless it was interrupted: then the signal is
/// delivered under the temporary mask first (its frame saves the own one).
pub fn with_temporary_mask(
    ctx: &mut Ctx<'_>,
    mask: Option<u64>,
    f: impl FnOnce(&mut Ctx<'_>) -> SysResult,
) -> SysResult {
    let Some(mask) = mask else {
        return f(ctx);
    };
    signals::set_temporary_mask(ctx.thread, mask);
    let result = f(ctx);
    if result != Err(Errno::INTR) {
        signals::restore_saved_mask(ctx.thread);
    }
    result
}

/// A signal number argument: Linux takes an `int` (the register's low 32 bits).
fn check_signal(sig: u64) -> Result<i32, Errno> {
    let sig = sig as u32 as i32;
    if (1..=64).contains(&sig) {
        Ok(sig)
    } else {
        Err(Errno::INVAL)
    }
}

pub fn rt_sigaction(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    check_sigset_size(a[3])?;
    let sig = check_signal(a[0])?;
    if a[1] != 0 && signals::bit(sig) & UNBLOCKABLE != 0 {
        return Err(Errno::INVAL);
    }
    let new = if a[1] != 0 {
        Some(SigAction::from_words(ctx.read_obj(a[1])?))
    } else {
        None
    };
    let slot = (sig - 1) as usize;
    let old = ctx.thread.signals(ctx.guest).actions[slot];
    if a[2] != 0 {
        ctx.write_obj(a[2], old.words())?;
    }
    if let Some(mut new) = new {
        new.mask &= !UNBLOCKABLE;
        new.flags &= signals::KNOWN_FLAGS;
        let mut process = ctx.thread.signals(ctx.guest);
        signals::set_action(ctx.guest, ctx.thread, &mut process, sig, new)
            .map_err(|_| Errno::FAULT)?;
        drop(process);
        if sig == libc::SIGCHLD {
            kick::mirror_sigchld(new.reaps_children()).map_err(|_| Errno::INVAL)?;
        }
        kick::mirror_job_control(sig, new.handler == signals::SIG_IGN).map_err(|_| Errno::INVAL)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    check_sigset_size(a[3])?;
    let old = ctx.thread.sigmask;
    let set = if a[1] != 0 {
        Some(ctx.read_obj::<u64>(a[1])?)
    } else {
        None
    };
    if let Some(set) = set {
        ctx.thread.sigmask = match a[0] as i32 {
            libc::SIG_BLOCK => old | set,
            libc::SIG_UNBLOCK => old & !set,
            libc::SIG_SETMASK => set,
            _ => return Err(Errno::INVAL),
        } & !UNBLOCKABLE;
    }
    if a[2] != 0 {
        ctx.write_obj(a[2], old)?;
    }
    Ok(0)
}

/// rt_sigpending(set, size): unlike the other calls, Linux takes any size up to
/// the set's 8 bytes and writes that many.
pub fn rt_sigpending(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let size = usize::try_from(a[1])
        .ok()
        .filter(|&n| n <= size_of::<u64>())
        .ok_or(Errno::INVAL)?;
    let pending = signals::pending(ctx.guest, ctx.thread) & ctx.thread.sigmask;
    ctx.write_bytes(a[0], &pending.to_le_bytes()[..size])?;
    Ok(0)
}

/// One host sleep until a kick (a signal queued for the payload, a stop request)
/// interrupts it, `deadline` passes, or [`WAIT_SLICE`] ends. The caller looks at
/// what it waits for (after `Ctx::wait_ends`) before each sleep.
fn sleep_until_kicked(deadline: Option<Instant>) {
    let slice = deadline.map_or(WAIT_SLICE, |d| {
        d.saturating_duration_since(Instant::now()).min(WAIT_SLICE)
    });
    let request = rustix::time::Timespec {
        tv_sec: slice.as_secs() as i64,
        tv_nsec: i64::from(slice.subsec_nanos()),
    };
    // Interrupted (the kick) or slept out: either way the caller looks again.
    let _ = rustix::thread::nanosleep(&request);
}

/// Sleeps until a signal is deliverable to the thread.
fn wait_for_signal(ctx: &Ctx<'_>) {
    while !ctx.wait_ends() {
        sleep_until_kicked(None);
    }
}

/// rt_sigsuspend: waits with a temporary mask; the handler's frame saves the old one.
pub fn rt_sigsuspend(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    check_sigset_size(a[1])?;
    let mask: u64 = ctx.read_obj(a[0])?;
    signals::set_temporary_mask(ctx.thread, mask);
    wait_for_signal(ctx);
    Err(Errno::INTR)
}

pub fn pause(ctx: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    wait_for_signal(ctx);
    Err(Errno::INTR)
}

/// rt_sigtimedwait(set, info, timeout): takes a pending signal from `set` without
/// running its handler.
pub fn rt_sigtimedwait(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    check_sigset_size(a[3])?;
    let set = ctx.read_obj::<u64>(a[0])? & !UNBLOCKABLE;
    let deadline = ctx.read_deadline(a[2])?;
    loop {
        // Acknowledges kicks before looking at the set: a signal queued after the
        // look kicks again and ends the sleep.
        let interrupted = ctx.wait_ends();
        if let Some(info) = signals::take(ctx.guest, ctx.thread, set) {
            if a[1] != 0 {
                ctx.write_bytes(a[1], &info)?;
            }
            return Ok(signals::signo(&info) as u64);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Errno::AGAIN);
        }
        if interrupted {
            return Err(Errno::INTR);
        }
        sleep_until_kicked(deadline);
    }
}

/// Most records one read of a signalfd returns (fewer than fit is fine to its
/// readers), which bounds km's buffer whatever the guest's count.
const SIGNALFD_RECORDS_PER_READ: u64 = 1024;

/// signalfd4(fd, mask, sizemask, flags): a new signalfd (`fd` -1) or a new mask
/// for signalfd `fd`.
pub fn signalfd4(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    check_sigset_size(a[2])?;
    let mask: u64 = ctx.read_obj(a[1])?;
    let flags = a[3] as i32;
    if flags & !(libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) != 0 {
        return Err(Errno::INVAL);
    }
    if a[0] as i32 != -1 {
        signalfd::set_mask(&ctx.fd(a[0])?, mask)?;
        return Ok(a[0] as i32 as u64);
    }
    let (read_end, write_end) = signalfd::pipe(flags & libc::SFD_NONBLOCK != 0)?;
    let mut fds = ctx.thread.fds(ctx.guest);
    let n = fds.insert(read_end, flags & libc::SFD_CLOEXEC != 0, 0)?;
    let read_end = fds.get(n)?;
    drop(fds);
    signalfd::register(&read_end, write_end, mask);
    Ok(n as u64)
}

pub fn signalfd(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    signalfd4(ctx, &[a[0], a[1], a[2], 0, 0, 0])
}

/// read(2) on signalfd `fd` with `mask`: as many pending signals of the mask as
/// `count` holds records for, waiting for the first unless `fd` is non-blocking.
pub fn read_signalfd(
    ctx: &mut Ctx<'_>,
    fd: &std::os::fd::OwnedFd,
    mask: u64,
    buf: u64,
    count: u64,
) -> SysResult {
    if count < signalfd::RECORD_SIZE as u64 {
        return Err(Errno::INVAL);
    }
    let max = (count / signalfd::RECORD_SIZE as u64).min(SIGNALFD_RECORDS_PER_READ) as usize;
    let nonblocking = rustix::fs::fcntl_getfl(fd)?.contains(rustix::fs::OFlags::NONBLOCK);
    loop {
        // Kicks acknowledged before the look, as in rt_sigtimedwait.
        let interrupted = !nonblocking && ctx.wait_ends();
        let records = signalfd::take(ctx.guest, ctx.thread, mask, max);
        if !records.is_empty() {
            ctx.write_bytes(buf, &records)?;
            return Ok(records.len() as u64);
        }
        if nonblocking {
            return Err(Errno::AGAIN);
        }
        if interrupted {
            return Err(Errno::INTR);
        }
        sleep_until_kicked(None);
    }
}

pub fn rt_sigreturn(ctx: &mut Ctx<'_>, _: &[u64; 6]) -> Result<Outcome, Errno> {
    match signals::sigreturn(ctx.guest, ctx.thread) {
        Ok(()) => Ok(Outcome::Resumed),
        // A corrupt frame: Linux kills with SIGSEGV.
        Err(_) => Ok(Outcome::Kill(libc::SIGSEGV)),
    }
}

fn own_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// kill(2). The payload itself (its pid) gets the signal through km; other
/// processes (fork children are km processes too) through the host. A process group
/// holding the payload (0, or -its pgid) is signalled member by member so that the
/// payload's own share goes through km once; -1 is every other process, as on Linux.
pub fn kill(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let pid = a[0] as i32;
    let sig = a[1];
    if sig > 64 {
        return Err(Errno::INVAL);
    }
    let sig = sig as i32;
    let own = own_pid();
    let own_group = rustix::process::getpgrp().as_raw_nonzero().get();
    let to_self = |ctx: &Ctx<'_>| {
        if sig != 0 {
            let info = signals::info_from(sig, SI_USER, own, uid());
            signals::send_from_within(ctx.guest, ctx.thread, info)?;
        }
        Ok::<_, Errno>(())
    };
    match pid {
        p if p == own => to_self(ctx)?,
        p if p == 0 || p == -own_group => {
            for member in host::group_members(own_group) {
                if member != own {
                    // A member that has exited since the listing is no error.
                    let _ = host::kill(member, sig);
                }
            }
            to_self(ctx)?;
        }
        i32::MIN => return Err(Errno::SRCH),
        // A child the payload has waited for is gone, though km may still be
        // tearing its host process down.
        p if crate::kernel::children::waited_for(p) => return Err(Errno::SRCH),
        p => host::kill(p, sig)?,
    }
    Ok(0)
}

/// Sends `sig` with the siginfo `info` makes for it to thread `tid` of the payload
/// (of process `tgid` when given).
fn signal_thread(
    ctx: &mut Ctx<'_>,
    tgid: Option<u64>,
    tid: u64,
    sig: u64,
    info: impl FnOnce(i32) -> SigInfo,
) -> SysResult {
    if sig > 64 || tid as i32 <= 0 {
        return Err(Errno::INVAL);
    }
    if tgid.is_some_and(|g| g as i32 != own_pid()) {
        return Err(Errno::SRCH);
    }
    // A vfork child's own tid is its pid; the other tids are its parent's threads.
    if ctx.thread.vfork_child.is_some() && tid as i32 == own_pid() {
        if sig != 0 {
            signals::send_from_within(ctx.guest, ctx.thread, info(sig as i32))?;
        }
        return Ok(0);
    }
    let target = ctx.guest.thread(tid as i32).ok_or(Errno::SRCH)?;
    if sig != 0 {
        target.pending.add(info(sig as i32))?;
        if target.tid != ctx.thread.tid {
            kick::kick(target.tid);
        }
    }
    Ok(0)
}

fn tkill_info(sig: i32) -> SigInfo {
    signals::info_from(sig, SI_TKILL, own_pid(), uid())
}

pub fn tkill(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    signal_thread(ctx, None, a[0], a[1], tkill_info)
}

pub fn tgkill(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    signal_thread(ctx, Some(a[0]), a[1], a[2], tkill_info)
}

/// The siginfo the payload passes at `addr` to rt_sigqueueinfo/rt_tgsigqueueinfo.
fn read_siginfo(ctx: &Ctx<'_>, addr: u64) -> Result<SigInfo, Errno> {
    let bytes = ctx.read_bytes(addr, size_of::<SigInfo>())?;
    Ok(bytes.as_slice().try_into().expect("a siginfo's size"))
}

/// As on Linux, only a signal to the sender itself (`to_self`) may claim to come
/// from the kernel or from kill/tgkill (si_code >= 0 or SI_TKILL): EPERM.
fn check_code(info: &SigInfo, to_self: bool) -> Result<(), Errno> {
    let code = signals::code(info);
    if (code >= 0 || code == SI_TKILL) && !to_self {
        return Err(Errno::PERM);
    }
    Ok(())
}

/// rt_sigqueueinfo(pid, sig, info): `sig` with the payload's own siginfo (sigqueue's
/// SI_QUEUE and value) to a process: the payload itself through km, any other
/// through the host.
pub fn rt_sigqueueinfo(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let pid = a[0] as i32;
    let own = own_pid();
    let mut info = read_siginfo(ctx, a[2])?;
    check_code(&info, pid == own)?;
    if a[1] > 64 {
        return Err(Errno::INVAL);
    }
    let sig = a[1] as i32;
    if pid != own {
        host::rt_sigqueueinfo(pid, sig, &info)?;
    } else if sig != 0 {
        signals::set_signo(&mut info, sig);
        signals::send_from_within(ctx.guest, ctx.thread, info)?;
    }
    Ok(0)
}

/// rt_tgsigqueueinfo(tgid, tid, sig, info): as rt_sigqueueinfo, to one thread.
pub fn rt_tgsigqueueinfo(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let mut info = read_siginfo(ctx, a[3])?;
    if a[0] as i32 <= 0 || a[1] as i32 <= 0 {
        return Err(Errno::INVAL);
    }
    check_code(&info, a[1] as i32 == ctx.thread.tid)?;
    signal_thread(ctx, Some(a[0]), a[1], a[2], |sig| {
        signals::set_signo(&mut info, sig);
        info
    })
}

/// alarm(2) as ITIMER_REAL on km: the host's SIGALRM is forwarded to the payload.
pub fn alarm(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let new = [0, 0, a[0].min(i32::MAX as u64), 0];
    let old = host::setitimer(libc::ITIMER_REAL, Some(new))?;
    // Whole seconds left, rounded up as alarm does.
    Ok(old[2] + u64::from(old[3] != 0))
}

pub fn setitimer(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let new = if a[1] != 0 {
        Some(ctx.read_obj::<[u64; 4]>(a[1])?)
    } else {
        None
    };
    let old = host::setitimer(a[0] as i32, new)?;
    if a[2] != 0 {
        ctx.write_obj(a[2], old)?;
    }
    Ok(0)
}

pub fn getitimer(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let cur = host::getitimer(a[0] as i32)?;
    ctx.write_obj(a[1], cur)?;
    Ok(0)
}

/// timer_create on km: the host timer's signal is forwarded to the payload.
pub fn timer_create(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let event = if a[1] != 0 {
        let bytes = ctx.read_bytes(a[1], 64)?;
        Some(<[u8; 64]>::try_from(bytes.as_slice()).expect("64 bytes"))
    } else {
        None
    };
    let id = host::timer_create(a[0] as i32, event)?;
    ctx.guest.posix_timers.fetch_add(1, Ordering::SeqCst);
    ctx.write_obj(a[2], id)?;
    Ok(0)
}

/// The payload's timer `id`: km's own timers (the re-kick timers of `kvm::kick`)
/// are none of its own, EINVAL as for an id that names no timer.
fn guest_timer(id: u64) -> Result<i32, Errno> {
    let id = id as i32;
    if kick::is_rekick_timer(id) {
        return Err(Errno::INVAL);
    }
    Ok(id)
}

pub fn timer_settime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let new = ctx.read_obj::<[u64; 4]>(a[2])?;
    let id = guest_timer(a[0])?;
    let old = host::timer_settime(id, a[1] as i32, new)?;
    if a[3] != 0 {
        ctx.write_obj(a[3], old)?;
    }
    Ok(0)
}

pub fn timer_gettime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let cur = host::timer_gettime(guest_timer(a[0])?)?;
    ctx.write_obj(a[1], cur)?;
    Ok(0)
}

pub fn timer_getoverrun(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    Ok(host::timer_call(libc::SYS_timer_getoverrun, guest_timer(a[0])?)? as u64)
}

pub fn timer_delete(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    host::timer_call(libc::SYS_timer_delete, guest_timer(a[0])?)?;
    let _ = ctx
        .guest
        .posix_timers
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    Ok(0)
}

const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
const SS_AUTODISARM: u32 = 1 << 31;
/// Linux's MINSIGSTKSZ.
const MIN_SIGSTKSZ: u64 = 2048;

/// sigaltstack(2): records the thread's alternate signal stack (`stack_t`). As on
/// Linux, a thread running on its alternate stack sees SS_ONSTACK and cannot
/// change it (EPERM), and the old stack is reported only when the call succeeds.
pub fn sigaltstack(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let new = if a[0] != 0 {
        Some(ctx.read_obj::<[u64; 3]>(a[0])?)
    } else {
        None
    };
    let sp = ctx.thread.vcpu.regs().map_err(|_| Errno::AGAIN)?.rsp;
    let old = ctx.thread.altstack;
    let on_stack = signals::on_altstack(old, sp);
    if let Some([base, flags, size]) = new {
        if on_stack {
            return Err(Errno::PERM);
        }
        ctx.thread.altstack = match flags as u32 & !SS_AUTODISARM {
            SS_DISABLE => (0, 0),
            0 | SS_ONSTACK if size < MIN_SIGSTKSZ => return Err(Errno::NOMEM),
            0 | SS_ONSTACK => (base, size),
            _ => return Err(Errno::INVAL),
        };
    }
    if a[1] != 0 {
        let flags = if old.1 == 0 {
            SS_DISABLE
        } else if on_stack {
            SS_ONSTACK
        } else {
            0
        };
        ctx.write_obj(a[1], [old.0, flags as u64, old.1])?;
    }
    Ok(0)
}
