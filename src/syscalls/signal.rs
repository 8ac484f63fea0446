//! Signal syscalls. Dispositions and the mask are recorded; a signal the payload sends
//! itself takes its default action (terminate, or ignore for SIGCHLD/SIGCONT/SIGURG/
//! SIGWINCH and the stop signals). Running handlers is the signals work.

use rustix::io::Errno;

use super::{Ctx, Outcome, SysResult};
use crate::process::lock;

const SIGSET_SIZE: u64 = 8;
const SIG_DFL: u64 = 0;

fn check_sigset_size(size: u64) -> Result<(), Errno> {
    if size != SIGSET_SIZE {
        Err(Errno::INVAL)
    } else {
        Ok(())
    }
}

/// Records handlers (delivery comes with the signals work).
pub fn rt_sigaction(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    check_sigset_size(a[3])?;
    let sig = a[0];
    if !(1..=64).contains(&sig)
        || (a[1] != 0 && (sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64))
    {
        return Err(Errno::INVAL);
    }
    let new = if a[1] != 0 {
        Some(ctx.read_obj::<[u8; 32]>(a[1])?)
    } else {
        None
    };
    let slot = (sig - 1) as usize;
    let old = lock(&ctx.guest.signals).actions[slot];
    if a[2] != 0 {
        ctx.write_obj(a[2], old)?;
    }
    if let Some(new) = new {
        lock(&ctx.guest.signals).actions[slot] = new;
    }
    Ok(0)
}

/// rt_sigprocmask(2); unblocking a pending fatal signal ends the payload.
pub fn rt_sigprocmask(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    check_sigset_size(a[3])?;
    let old = ctx.thread.sigmask;
    let set = if a[1] != 0 {
        Some(ctx.read_obj::<u64>(a[1])?)
    } else {
        None
    };
    if a[2] != 0 {
        ctx.write_obj(a[2], old)?;
    }
    if let Some(set) = set {
        let unblockable = (1u64 << (libc::SIGKILL - 1)) | (1u64 << (libc::SIGSTOP - 1));
        ctx.thread.sigmask = match a[0] as i32 {
            libc::SIG_BLOCK => old | set,
            libc::SIG_UNBLOCK => old & !set,
            libc::SIG_SETMASK => set,
            _ => return Err(Errno::INVAL),
        } & !unblockable;
    }
    Ok(take_pending(ctx).map_or(Outcome::Return(0), Outcome::Kill))
}

/// The lowest pending, now unblocked signal whose default action is fatal.
fn take_pending(ctx: &mut Ctx<'_>) -> Option<i32> {
    let mut signals = lock(&ctx.guest.signals);
    let ready = signals.pending & !ctx.thread.sigmask;
    if ready == 0 {
        return None;
    }
    let sig = ready.trailing_zeros() as u64 + 1;
    signals.pending &= !(1 << (sig - 1));
    drop(signals);
    is_fatal(ctx, sig).then_some(sig as i32)
}

fn own_pid() -> u64 {
    rustix::process::getpid().as_raw_nonzero().get() as u64
}

/// What happens when the payload sends itself `sig`.
fn self_signal(ctx: &mut Ctx<'_>, sig: u64) -> Result<Option<i32>, Errno> {
    if sig > 64 {
        return Err(Errno::INVAL);
    }
    if sig == 0 {
        return Ok(None);
    }
    if ctx.thread.sigmask & (1 << (sig - 1)) != 0 {
        lock(&ctx.guest.signals).pending |= 1 << (sig - 1);
        return Ok(None);
    }
    Ok(is_fatal(ctx, sig).then_some(sig as i32))
}

/// Whether `sig` kills the payload: SIGKILL, or a default action of terminate.
fn is_fatal(ctx: &Ctx<'_>, sig: u64) -> bool {
    let handler = u64::from_ne_bytes(
        lock(&ctx.guest.signals).actions[(sig - 1) as usize][..8]
            .try_into()
            .expect("8 bytes"),
    );
    let ignored_by_default = matches!(
        sig as i32,
        libc::SIGCHLD
            | libc::SIGCONT
            | libc::SIGURG
            | libc::SIGWINCH
            | libc::SIGSTOP
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
    );
    sig as i32 == libc::SIGKILL || (handler == SIG_DFL && !ignored_by_default)
}

/// kill(2): to the payload itself (its pid, 0 or -1), or passed to the host.
pub fn kill(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    let pid = a[0] as i32;
    if pid == 0 || pid == -1 || pid as u64 == own_pid() {
        return Ok(self_signal(ctx, a[1])?.map_or(Outcome::Return(0), Outcome::Kill));
    }
    let target = rustix::process::Pid::from_raw(pid.abs()).ok_or(Errno::SRCH)?;
    let signal = rustix::process::Signal::from_named_raw(a[1] as i32).ok_or(Errno::INVAL)?;
    if pid < 0 {
        rustix::process::kill_process_group(target, signal)?;
    } else {
        rustix::process::kill_process(target, signal)?;
    }
    Ok(Outcome::Return(0))
}

/// tkill/tgkill to one of the payload's threads (`tgid` is `u64::MAX` for tkill).
pub fn tgkill(ctx: &mut Ctx<'_>, tgid: u64, tid: u64, sig: u64) -> Result<Outcome, Errno> {
    if !ctx.guest.is_live(tid as i32) || (tgid != own_pid() && tgid != u64::MAX) {
        return Err(Errno::SRCH);
    }
    Ok(self_signal(ctx, sig)?.map_or(Outcome::Return(0), Outcome::Kill))
}

const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;
/// Linux's MINSIGSTKSZ.
const MIN_SIGSTKSZ: u64 = 2048;

/// sigaltstack(2): records the thread's alternate signal stack (`stack_t`).
pub fn sigaltstack(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let new = if a[0] != 0 {
        Some(ctx.read_obj::<[u64; 3]>(a[0])?)
    } else {
        None
    };
    if a[1] != 0 {
        let (sp, size) = ctx.thread.altstack;
        let flags = if size == 0 { SS_DISABLE } else { 0 };
        ctx.write_obj(a[1], [sp, flags as u64, size])?;
    }
    if let Some([sp, flags, size]) = new {
        let flags = flags as u32;
        if flags & !(SS_DISABLE | SS_ONSTACK | (1 << 31)) != 0 {
            return Err(Errno::INVAL);
        }
        ctx.thread.altstack = if flags & SS_DISABLE != 0 {
            (0, 0)
        } else if size < MIN_SIGSTKSZ {
            return Err(Errno::NOMEM);
        } else {
            (sp, size)
        };
    }
    Ok(0)
}
