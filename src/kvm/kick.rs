//! Host signals around the vCPU threads: the *kick* that pulls a vCPU thread out of
//! KVM_RUN or out of a blocking host syscall, and the forwarding of signals sent to
//! km (SIGINT, SIGTERM, SIGALRM from a host timer, ...) to the payload.
//!
//! The handlers only touch atomics, `kvm_run.immediate_exit` and raw syscalls, which
//! is what makes them async-signal-safe: a forwarded signal is recorded in
//! [`take_host_pending`]'s set, every vCPU thread is kicked, and each checks for
//! deliverable signals before it enters the guest again. SIGTERM and SIGINT end km
//! at once while the payload is held (stopped under gdb, or waiting for gdb to
//! connect), as no payload thread can take them then.
//!
//! **No lost kick.** A kick interrupts a blocking host call only if it lands while
//! the call is in progress. One that lands after the thread's last look at what
//! kicks are for (signals, stop requests) and before its next blocking call begins
//! runs its handler in between, and the call would then wait with the kick's reason
//! unseen, for ever if nothing else ends it. So the handler also arms a one-shot
//! host timer of the thread's own (created at its first kick), which sends the kick
//! again after 1 ms, then 2, 4, ... up to 1 s, until the thread *acknowledges*:
//! [`acknowledge`], called right before each look (after every KVM_RUN, before the
//! exit loop's checks, and in a syscall's wait before it decides to wait on),
//! disarms it. A kick whose handler ran before an acknowledgement is seen by the
//! look that follows (its sender made its reason visible before sending it); one
//! whose handler ran after it keeps the timer armed until the next, so it ends any
//! blocking call the thread makes meanwhile, whatever that call is. In the common
//! case, the kick lands in KVM_RUN or in the blocking call, this costs arming and
//! disarming the timer; in the race, the signal comes 1 ms late instead of never.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use anyhow::{Result, bail};
use kvm_bindings::kvm_run;

/// Most vCPU threads that can be kicked.
const MAX_THREADS: usize = 1024;
static VCPU_TIDS: [AtomicI32; MAX_THREADS] = [const { AtomicI32::new(0) }; MAX_THREADS];
/// Host signals received and not yet taken for the payload.
static HOST_PENDING: AtomicU64 = AtomicU64::new(0);
/// The first 32 bytes of the last host siginfo of each signal (code, pid/uid or
/// timer id and value), for the payload's siginfo.
static HOST_INFO: [[AtomicU64; 4]; 65] = [const { [const { AtomicU64::new(0) }; 4] }; 65];
/// The payload is held for gdb: no thread of it can take a signal.
static HELD: AtomicBool = AtomicBool::new(false);
/// The thread re-executing km for the payload's execve (0: none). It blocks every
/// signal, and forwarded signals are sent on to it so that they stay pending across
/// the execve (their siginfo is not kept).
static EXEC_TID: AtomicI32 = AtomicI32::new(0);
/// Forwarding handlers running now (an execve waits for them to finish).
static FORWARDING: AtomicI32 = AtomicI32::new(0);

/// The host timers km sends kicks again with, by vCPU slot (-1: none), so that the
/// payload's own timer calls cannot reach them.
static REKICK_TIMERS: [AtomicI32; MAX_THREADS] = [const { AtomicI32::new(-1) }; MAX_THREADS];
/// The first wait before a kick is sent again, and the longest (it doubles).
const REKICK_FIRST_MS: u32 = 1;
const REKICK_MAX_MS: u32 = 1000;
/// The value the re-kick timers carry in their siginfo.
const REKICK_COOKIE: u64 = 0x6b69_636b_6167_6169;
/// Linux's si_code of a POSIX timer's signal, and sigev_notify for one thread.
const SI_TIMER: i32 = -2;
const SIGEV_THREAD_ID: i32 = 4;

thread_local! {
    /// This thread's vCPU run structure, while it drives one.
    static RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
    /// The process whose vCPU thread this is (0: none); a vfork child, which runs
    /// on its parent's thread-local state in a process of its own, is not it.
    static OWNER: AtomicI32 = const { AtomicI32::new(0) };
    /// This thread's host tid, and its vCPU slot (the index in `VCPU_TIDS`).
    static TID: AtomicI32 = const { AtomicI32::new(0) };
    static SLOT: AtomicUsize = const { AtomicUsize::new(usize::MAX) };
    /// This thread's re-kick timer (-1: not created yet).
    static TIMER: AtomicI32 = const { AtomicI32::new(-1) };
    /// The armed re-kick timer's wait in ms; 0: no kick waits to be acknowledged.
    static REKICK_MS: AtomicU32 = const { AtomicU32::new(0) };
}

/// The signal km uses to kick its own vCPU threads.
pub fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

/// Signals sent to km that go to the payload (the rest keep their host meaning).
fn forwarded() -> impl Iterator<Item = i32> {
    [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGPIPE,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGCHLD,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGWINCH,
        libc::SIGIO,
        libc::SIGPWR,
        // Job control: the payload's handlers, or km stops itself (`stop_by`).
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGCONT,
    ]
    .into_iter()
    .chain(kick_signal() + 1..=libc::SIGRTMAX())
}

extern "C" fn on_kick(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo of 128 bytes; a timer's carries
    // si_code at byte 8 and its sigev_value at byte 24.
    let again = !info.is_null()
        && unsafe {
            (*info).si_code == SI_TIMER
                && std::ptr::read_unaligned(info.cast::<u8>().add(24).cast::<u64>())
                    == REKICK_COOKIE
        };
    kicked(again);
}

/// The calling thread was kicked (`again`: by its re-kick timer): its next KVM_RUN
/// ends at once, and the kick is sent again until the thread acknowledges it.
/// Async-signal-safe.
fn kicked(again: bool) {
    let waited = REKICK_MS.with(|w| w.load(Ordering::SeqCst));
    if again && waited == 0 {
        // A timer that fired as the thread acknowledged: nothing waits.
        return;
    }
    let run = RUN.with(|r| r.get());
    if !run.is_null() {
        // SAFETY: `run` is this thread's mapped kvm_run (set by `register` and cleared
        // before the mapping goes away); a volatile byte store is signal-safe.
        unsafe { std::ptr::write_volatile(&raw mut (*run).immediate_exit, 1) };
    }
    if again {
        crate::stats::count(crate::stats::Event::Rekick);
    } else if waited != 0 {
        // The timer is armed already for an earlier kick.
        return;
    }
    // SAFETY: getpid takes no argument.
    let own = OWNER.with(|o| o.load(Ordering::SeqCst)) == unsafe { libc::getpid() };
    if !own {
        return;
    }
    let wait = if again {
        (waited * 2).min(REKICK_MAX_MS)
    } else {
        REKICK_FIRST_MS
    };
    REKICK_MS.with(|w| w.store(wait, Ordering::SeqCst));
    let timer = match TIMER.with(|t| t.load(Ordering::SeqCst)) {
        -1 => match create_rekick_timer() {
            Some(timer) => timer,
            None => {
                REKICK_MS.with(|w| w.store(0, Ordering::SeqCst));
                return;
            }
        },
        timer => timer,
    };
    set_rekick_timer(timer, wait);
}

/// Creates the calling vCPU thread's re-kick timer: one-shot, monotonic, sending the
/// kick signal to this thread with [`REKICK_COOKIE`]. Async-signal-safe.
fn create_rekick_timer() -> Option<i32> {
    /// The kernel's `struct sigevent` (64 bytes) with SIGEV_THREAD_ID's target.
    #[repr(C)]
    struct SigEvent {
        value: u64,
        signo: i32,
        notify: i32,
        tid: i32,
        pad: [i32; 11],
    }
    let event = SigEvent {
        value: REKICK_COOKIE,
        signo: kick_signal(),
        notify: SIGEV_THREAD_ID,
        tid: TID.with(|t| t.load(Ordering::SeqCst)),
        pad: [0; 11],
    };
    let mut id: i32 = -1;
    // SAFETY: `event` is a complete struct sigevent and `id` receives the timer id;
    // both live across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_timer_create,
            libc::CLOCK_MONOTONIC,
            &raw const event,
            &raw mut id,
        )
    };
    if rc != 0 {
        return None;
    }
    TIMER.with(|t| t.store(id, Ordering::SeqCst));
    if let Some(slot) = REKICK_TIMERS.get(SLOT.with(|s| s.load(Ordering::SeqCst))) {
        slot.store(id, Ordering::SeqCst);
    }
    Some(id)
}

/// Arms `timer` to fire once after `ms` milliseconds (0: disarms it).
/// Async-signal-safe.
fn set_rekick_timer(timer: i32, ms: u32) {
    let value = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: i64::from(ms / 1000),
            tv_nsec: i64::from(ms % 1000) * 1_000_000,
        },
    };
    // SAFETY: `value` is a complete itimerspec living across the call; no old value
    // is asked for.
    unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            timer,
            0,
            &raw const value,
            std::ptr::null_mut::<libc::itimerspec>(),
        )
    };
}

/// The calling vCPU thread is about to look at what kicks are for (signals, stop
/// requests) and act on it: kicks that came until now need not be sent again. One
/// that comes after this is sent again until the next call.
pub fn acknowledge() {
    if REKICK_MS.with(|w| w.load(Ordering::SeqCst)) == 0 {
        return;
    }
    // SAFETY: getpid takes no argument.
    if OWNER.with(|o| o.load(Ordering::SeqCst)) != unsafe { libc::getpid() } {
        // A vfork child: the timer is its parent's.
        return;
    }
    // Disarmed first: a kick whose handler runs before the store below is seen by
    // the caller's look, and one after it finds nothing armed and arms the timer.
    let timer = TIMER.with(|t| t.load(Ordering::SeqCst));
    if timer != -1 {
        set_rekick_timer(timer, 0);
    }
    REKICK_MS.with(|w| w.store(0, Ordering::SeqCst));
}

/// Whether host timer `id` is one of km's re-kick timers (the payload's timer
/// calls treat it as no timer of theirs).
pub fn is_rekick_timer(id: i32) -> bool {
    id >= 0
        && REKICK_TIMERS
            .iter()
            .any(|t| t.load(Ordering::Relaxed) == id)
}

extern "C" fn on_forwarded(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if !(1..=64).contains(&sig) {
        return;
    }
    FORWARDING.fetch_add(1, Ordering::SeqCst);
    let exec_tid = EXEC_TID.load(Ordering::SeqCst);
    if exec_tid != 0 {
        // SAFETY: tgkill takes plain integers.
        unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), exec_tid, sig) };
        FORWARDING.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    if !info.is_null() {
        // SAFETY: the kernel passes a valid siginfo of at least 128 bytes.
        let words = unsafe { std::slice::from_raw_parts(info as *const u64, 4) };
        for (slot, w) in HOST_INFO[sig as usize].iter().zip(words) {
            slot.store(*w, Ordering::Relaxed);
        }
    }
    HOST_PENDING.fetch_or(1 << (sig - 1), Ordering::SeqCst);
    FORWARDING.fetch_sub(1, Ordering::SeqCst);
    end_if_held();
    kicked(false);
    kick_all();
}

fn install_handler(sig: i32, action: libc::sighandler_t, flags: i32) -> Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handlers only use async-signal-safe
    // operations; SA_RESTART is left out so blocking host calls return EINTR.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = action;
        sa.sa_flags = flags;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut())
    };
    if rc != 0 {
        bail!(
            "installing the handler for host signal {sig}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Installs km's handlers for the kick and the forwarded signals, then clears km's
/// host mask: signals held pending until now (across the execve that started this
/// km, or sent while it started) reach the handlers, so the payload gets them.
pub fn install() -> Result<()> {
    let handler = on_kick as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
    install_handler(
        kick_signal(),
        handler as libc::sighandler_t,
        libc::SA_SIGINFO,
    )?;
    for sig in forwarded() {
        install_handler(sig, forwarding_handler(), libc::SA_SIGINFO)?;
    }
    // SAFETY: clears the calling thread's mask with an empty set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    Ok(())
}

fn forwarding_handler() -> libc::sighandler_t {
    let handler =
        on_forwarded as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
    handler as libc::sighandler_t
}

/// Mirrors the payload's SIGCHLD disposition on the host where it changes what the
/// host does: when the payload ignores SIGCHLD (or sets SA_NOCLDWAIT), its children
/// (km processes) are reaped automatically and wait gives ECHILD, as on Linux.
pub fn mirror_sigchld(auto_reap: bool) -> Result<()> {
    let flags = libc::SA_SIGINFO | if auto_reap { libc::SA_NOCLDWAIT } else { 0 };
    install_handler(libc::SIGCHLD, forwarding_handler(), flags)
}

/// Mirrors the payload's SIG_IGN of a job-control signal (SIGTSTP, SIGTTIN,
/// SIGTTOU) on the host, where the terminal driver looks at it: a background
/// process that ignores SIGTTOU may write to its terminal and set its foreground
/// group, one that ignores SIGTTIN reads EIO, as a shell under km expects;
/// otherwise km's forwarding handler takes them for the payload.
pub fn mirror_job_control(sig: i32, ignored: bool) -> Result<()> {
    if ![libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU].contains(&sig) {
        return Ok(());
    }
    if ignored {
        raw_handler(sig, Some(libc::SIG_IGN));
        return Ok(());
    }
    install_handler(sig, forwarding_handler(), libc::SA_SIGINFO)
}

/// si_code of a SIGSYS raised by a seccomp filter (Linux's SYS_SECCOMP).
const SYS_SECCOMP: i32 = 1;

/// Writes `km: host syscall NR refused by km's seccomp filter ...` to stderr in one
/// write, without allocating (it runs in a signal handler).
fn report_refused(nr: i32) {
    const HEAD: &[u8] = b"km: host syscall ";
    const TAIL: &[u8] = b" refused by km's seccomp filter (a km bug: please report it; \
--no-seccomp runs km without the filter); km dies by SIGSYS\n";
    let mut digits = [0u8; 11];
    let mut at = digits.len();
    let mut n = nr.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if nr < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    let mut line = [0u8; 256];
    let mut len = 0;
    for part in [HEAD, &digits[at..], TAIL] {
        line[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    // SAFETY: writes `len` initialized bytes of `line` to descriptor 2.
    unsafe { libc::write(2, line.as_ptr().cast(), len) };
}

extern "C" fn on_sigsys(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; for SYS_SECCOMP its _sigsys part
    // holds the call address at byte 16 and the syscall number (an int) at byte 24.
    let (code, nr) = unsafe {
        (
            (*info).si_code,
            std::ptr::read_unaligned(info.cast::<u8>().add(24).cast::<i32>()),
        )
    };
    if code == SYS_SECCOMP {
        report_refused(nr);
    }
    raise_default(sig);
    // SAFETY: _exit ends the process at once; it is async-signal-safe.
    unsafe { libc::_exit(128 + sig) }
}

/// Installs the SIGSYS handler that names a host syscall km's seccomp filter
/// refused before km dies by SIGSYS (any other SIGSYS keeps its default action).
pub fn install_sigsys_report() -> Result<()> {
    let handler = on_sigsys as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
    install_handler(
        libc::SIGSYS,
        handler as libc::sighandler_t,
        libc::SA_SIGINFO,
    )
}

/// Records whether the payload is held for gdb (no thread of it can take a signal).
pub fn hold(held: bool) {
    HELD.store(held, Ordering::SeqCst);
    end_if_held();
}

/// Ends km by SIGTERM or SIGINT, pending from the host, while the payload is held.
/// Async-signal-safe. The handler records a signal before it looks at [`HELD`] and
/// [`hold`] sets it before it looks at the signals: one of them sees both.
fn end_if_held() {
    if !HELD.load(Ordering::SeqCst) {
        return;
    }
    let pending = HOST_PENDING.load(Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGINT] {
        if pending & (1 << (sig - 1)) != 0 {
            raise_default(sig);
            // SAFETY: _exit ends the process at once (async-signal-safe).
            unsafe { libc::_exit(128 + sig) };
        }
    }
}

/// Makes the calling thread kickable while it drives the vCPU whose run structure is
/// `run`; returns the slot to pass to [`unregister`].
pub fn register(run: *mut kvm_run) -> Option<usize> {
    let tid = rustix::thread::gettid().as_raw_nonzero().get();
    let slot = VCPU_TIDS.iter().position(|slot| {
        slot.compare_exchange(0, tid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    TIMER.with(|t| t.store(-1, Ordering::SeqCst));
    REKICK_MS.with(|w| w.store(0, Ordering::SeqCst));
    TID.with(|t| t.store(tid, Ordering::SeqCst));
    SLOT.with(|s| s.store(slot.unwrap_or(usize::MAX), Ordering::SeqCst));
    OWNER.with(|o| {
        o.store(
            rustix::process::getpid().as_raw_nonzero().get(),
            Ordering::SeqCst,
        )
    });
    RUN.with(|r| r.set(run));
    slot
}

pub fn unregister(slot: Option<usize>) {
    RUN.with(|r| r.set(std::ptr::null_mut()));
    OWNER.with(|o| o.store(0, Ordering::SeqCst));
    REKICK_MS.with(|w| w.store(0, Ordering::SeqCst));
    let timer = TIMER.with(|t| t.swap(-1, Ordering::SeqCst));
    if timer != -1 {
        // SAFETY: timer_delete takes the id of this thread's own timer.
        unsafe { libc::syscall(libc::SYS_timer_delete, timer) };
    }
    if let Some(slot) = slot {
        REKICK_TIMERS[slot].store(-1, Ordering::SeqCst);
        VCPU_TIDS[slot].store(0, Ordering::SeqCst);
    }
}

/// In a forked km, whose only thread is the caller: forgets the parent's vCPU
/// threads and the host signals the parent had not yet handed to its payload.
pub fn forget_parent() {
    RUN.with(|r| r.set(std::ptr::null_mut()));
    // The parent's timers are not the child's (a fork copies none).
    OWNER.with(|o| o.store(0, Ordering::SeqCst));
    TIMER.with(|t| t.store(-1, Ordering::SeqCst));
    REKICK_MS.with(|w| w.store(0, Ordering::SeqCst));
    for slot in &REKICK_TIMERS {
        slot.store(-1, Ordering::SeqCst);
    }
    for slot in &VCPU_TIDS {
        slot.store(0, Ordering::SeqCst);
    }
    HOST_PENDING.store(0, Ordering::SeqCst);
    HELD.store(false, Ordering::SeqCst);
    // Handlers the parent's other threads were running are not the child's.
    FORWARDING.store(0, Ordering::SeqCst);
}

/// Kicks host thread `tid` (a vCPU thread of km).
pub fn kick(tid: i32) {
    crate::stats::count(crate::stats::Event::Kick);
    // SAFETY: tgkill takes plain integers.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, kick_signal()) };
}

/// Kicks every vCPU thread.
pub fn kick_all() {
    kick_others(0);
}

/// Kicks every vCPU thread but `me` (a thread about to stop on its own does not
/// need a pending immediate exit, which would also swallow a single-step on PVM).
pub fn kick_others(me: i32) {
    kick_all_but(&[me]);
}

/// Kicks every vCPU thread not in `skip`.
pub fn kick_all_but(skip: &[i32]) {
    for slot in &VCPU_TIDS {
        let tid = slot.load(Ordering::SeqCst);
        if tid != 0 && !skip.contains(&tid) {
            kick(tid);
        }
    }
}

/// Runs `f` with the kick blocked on the calling thread and hands it the thread's
/// mask without the kick, for a host call that takes a mask while it blocks (ppoll,
/// epoll_pwait). A check `f` makes before that call cannot miss a kick then: one
/// sent after the check stays pending and interrupts the call (EINTR).
pub fn with_kick_held<T>(f: impl FnOnce(&libc::sigset_t) -> T) -> T {
    // SAFETY: plain signal-mask calls on the calling thread with km's own sets.
    let (old, open) = unsafe {
        let mut kick: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut kick);
        libc::sigaddset(&mut kick, kick_signal());
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &kick, &mut old);
        let mut open = old;
        libc::sigdelset(&mut open, kick_signal());
        (old, open)
    };
    let result = f(&open);
    // SAFETY: restores the mask read above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

/// Host signals received and not yet taken, without taking them.
pub fn peek_host_pending() -> u64 {
    HOST_PENDING.load(Ordering::Relaxed)
}

/// Takes the set of host signals received since the last call.
pub fn take_host_pending() -> u64 {
    if HOST_PENDING.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    HOST_PENDING.swap(0, Ordering::SeqCst)
}

/// The first 32 bytes of the last host siginfo of `sig`.
pub fn host_info(sig: i32) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(8).zip(&HOST_INFO[sig as usize]) {
        chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
    out
}

/// Ends km by signal `sig` with its default action, as the payload was killed. km's
/// own memory is left out of any host core dump (the payload's is in the kmcore).
pub fn die_by(sig: i32) -> ! {
    raise_default(sig);
    // Signals whose host default is not to terminate end here.
    std::process::exit(128 + sig)
}

/// Stops km (every thread of it) by stop signal `sig` with the host's default
/// action, as the payload's default action asks; returns once a SIGCONT has
/// continued it, or at once when the host discards the stop (SIGTSTP, SIGTTIN or
/// SIGTTOU in an orphaned process group, as Linux discards the payload's). km's
/// parent and a shell see it stopped by `sig`. While it is stopped, km's
/// forwarding handler gives way to the default action for `sig`: another `sig`
/// sent then stops km too.
pub fn stop_by(sig: i32) {
    let forwarding = sig != libc::SIGSTOP;
    if forwarding {
        raw_handler(sig, Some(libc::SIG_DFL));
    }
    // SAFETY: plain signal-mask and signal syscalls on the calling thread; the
    // mask is read into and restored from a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, &mut old);
        // Taken on the way back from tgkill: the stop happens before it returns.
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            sig,
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    if forwarding {
        // Failing leaves the default action: a later `sig` stops km directly.
        let _ = install_handler(sig, forwarding_handler(), libc::SA_SIGINFO);
    }
}

/// Raises `sig` on the calling thread with its default action, without a host
/// core dump of km itself (the payload's is the kmcore); returns only if that
/// action does not terminate. Async-signal-safe: it also ends km from a signal
/// handler.
fn raise_default(sig: i32) {
    // SAFETY: prctl with integer arguments, and open/write/close of a procfs file
    // with a literal path and buffer. A process that is not dumpable leaves no
    // core (with fs.suid_dumpable 0, the default; 2 still gives only a root-owned
    // one), and km's memory is left out of any core anyway.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let fd = libc::open(c"/proc/self/coredump_filter".as_ptr(), libc::O_WRONLY);
        if fd >= 0 {
            libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
    raw_handler(sig, Some(libc::SIG_DFL));
    // SAFETY: plain signal-mask and signal syscalls on the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::syscall(
            libc::SYS_tgkill,
            libc::getpid(),
            libc::syscall(libc::SYS_gettid),
            sig,
        );
    }
}

/// rt_sigaction straight to the kernel (glibc's wrapper refuses its own signals 32
/// and 33): sets `sig`'s handler to `new` if given, returns the old handler.
fn raw_handler(sig: i32, new: Option<libc::sighandler_t>) -> Option<libc::sighandler_t> {
    // struct kernel_sigaction: handler, flags, restorer, mask.
    let mut old = [0u64; 4];
    let new = new.map(|h| [h as u64, 0, 0, 0]);
    let new_ptr = new.as_ref().map_or(std::ptr::null(), |n| n.as_ptr());
    // SAFETY: both pointers are null or point at kernel_sigaction-sized arrays; a
    // handler set here is SIG_IGN or SIG_DFL, never code.
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new_ptr, old.as_mut_ptr(), 8) };
    (rc == 0).then_some(old[0] as libc::sighandler_t)
}

/// The signal state km inherited, which Linux's execve carries to a program: the
/// blocked mask, and the signals whose disposition is SIG_IGN (SIGPIPE excepted:
/// Rust's runtime ignores it in every process before km's code runs). km's host
/// mask stays as it is until [`install`] has installed km's handlers.
pub fn take_inherited() -> (u64, u64) {
    let ignored = (1..=64)
        .filter(|&sig| sig != libc::SIGPIPE && raw_handler(sig, None) == Some(libc::SIG_IGN))
        .fold(0u64, |m, sig| m | 1 << (sig - 1));
    // SAFETY: sigprocmask with a null new set only reads the calling thread's mask
    // into a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        let mask = (1..=64)
            .filter(|&sig| libc::sigismember(&set, sig) == 1)
            .fold(0u64, |m, sig| m | 1 << (sig - 1));
        (mask, ignored)
    }
}

/// Just before execve: makes the signals in `ignored` ignored on the host, so the
/// re-executed km inherits the payload's, and blocks every signal on the calling
/// thread, to which forwarding handlers send every signal from now on: one sent
/// from now on stays pending across the execve until the new km has its handlers
/// (the payload's own mask goes to it as an option). Returns once the handlers
/// that were running have recorded their signals (take them next). A vfork child
/// (`own_memory` false) only ignores and blocks: the forwarding state is its
/// parent's.
pub fn prepare_exec(ignored: u64, own_memory: bool) {
    for sig in 1..=64 {
        if ignored & (1 << (sig - 1)) != 0 && sig != libc::SIGKILL && sig != libc::SIGSTOP {
            raw_handler(sig, Some(libc::SIG_IGN));
        }
    }
    // SAFETY: blocks every signal on this thread with a full set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    if !own_memory {
        // A vfork child's memory is its parent's, whose handlers go on as before.
        return;
    }
    EXEC_TID.store(
        rustix::thread::gettid().as_raw_nonzero().get(),
        Ordering::SeqCst,
    );
    while FORWARDING.load(Ordering::SeqCst) != 0 {
        std::thread::yield_now();
    }
}
