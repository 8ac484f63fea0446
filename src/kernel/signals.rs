//! Signals with Linux semantics: dispositions, pending sets, delivery onto the guest
//! stack in the x86-64 kernel's `rt_sigframe` layout, `rt_sigreturn`, and default
//! actions.
//!
//! A signal is delivered when its thread is about to re-enter the guest: after a
//! syscall, after a CPU exception, or after a kick pulled the vCPU out of KVM_RUN
//! (see `vcpu::kick`). Checking costs two atomic loads when nothing is pending.
//!
//! The frame, from high to low addresses: the XSAVE area of the interrupted context
//! (64-byte aligned), then `rt_sigframe` = { return address (the SA_RESTORER),
//! `ucontext` (flags, link, `uc_stack`, `sigcontext`, `uc_sigmask`), `siginfo` },
//! placed so that the handler starts with RSP + 8 16-byte aligned, as after a call.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use kvm_bindings::kvm_regs;
use rustix::io::Errno;

use crate::guest::landing_pad::{self, ExceptionFrame, USER_CS, USER_DS};
use crate::guest::limits;
use crate::kernel::children;
use crate::kernel::lock;
use crate::kernel::process::{Guest, Signals, Thread};
use crate::kvm::kick;
use crate::memory;
use crate::trace;
use crate::trace::Category;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SA_SIGINFO: u64 = 4;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
pub const SA_RESTORER: u64 = 0x0400_0000;
/// The flags rt_sigaction keeps (Linux's UAPI_SA_FLAGS on x86-64: SA_NOCLDSTOP,
/// SA_NOCLDWAIT, SA_SIGINFO, SA_EXPOSE_TAGBITS, SA_RESTORER, SA_ONSTACK,
/// SA_RESTART, SA_NODEFER, SA_RESETHAND); it clears the others, as glibc's
/// sign-extended `int` flags show.
pub const KNOWN_FLAGS: u64 =
    1 | 2 | SA_SIGINFO | 0x800 | SA_RESTORER | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND;

pub const SI_USER: i32 = 0;
pub const SI_QUEUE: i32 = -1;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
const ILL_ILLOPN: i32 = 2;
const FPE_INTDIV: i32 = 1;
const FPE_FLTINV: i32 = 7;
pub const TRAP_TRACE: i32 = 2;
pub const TRAP_HWBKPT: i32 = 4;
const BUS_ADRALN: i32 = 1;

const UC_SIGCONTEXT_SS: u64 = 2;
const UC_STRICT_RESTORE_SS: u64 = 4;
const SS_ONSTACK: u64 = 1;
const SS_DISABLE: u64 = 2;
/// Bytes below the interrupted RSP that the x86-64 ABI lets functions use.
const RED_ZONE: u64 = 128;
const RT_SIGFRAME_SIZE: u64 = 440;
const UCONTEXT_SIZE: u64 = 304;
/// Room for the XSAVE image (KVM's `struct kvm_xsave`).
pub const FPSTATE_SIZE: u64 = 4096;
/// RFLAGS bits a sigreturn may change (Linux's FIX_EFLAGS) and the ones a handler
/// starts without (TF, DF, RF).
const FIX_EFLAGS: u64 = 0x0004_0dd5 | (1 << 16);
const HANDLER_CLEARS: u64 = (1 << 8) | (1 << 10) | (1 << 16);
const IF: u64 = 1 << 9;

/// `siginfo_t` as the kernel lays it out (128 bytes).
pub type SigInfo = [u8; 128];

pub fn bit(sig: i32) -> u64 {
    1 << (sig - 1)
}

/// Signals that can be neither caught nor blocked.
pub use crate::guest::landing_pad::UNBLOCKABLE;

fn put(info: &mut SigInfo, offset: usize, bytes: &[u8]) {
    info[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// A siginfo with `si_signo` and `si_code` only.
pub fn info(sig: i32, code: i32) -> SigInfo {
    let mut i = [0u8; 128];
    put(&mut i, 0, &sig.to_ne_bytes());
    put(&mut i, 8, &code.to_ne_bytes());
    i
}

/// A siginfo naming its sender (kill, tgkill).
pub fn info_from(sig: i32, code: i32, pid: i32, uid: u32) -> SigInfo {
    let mut i = info(sig, code);
    put(&mut i, 16, &pid.to_ne_bytes());
    put(&mut i, 20, &uid.to_ne_bytes());
    i
}

/// A siginfo sent by the payload's own process (km).
pub fn info_from_self(sig: i32, code: i32) -> SigInfo {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    info_from(sig, code, pid, rustix::process::getuid().as_raw())
}

/// A siginfo for a fault at `addr`.
pub fn info_fault(sig: i32, code: i32, addr: u64) -> SigInfo {
    let mut i = info(sig, code);
    put(&mut i, 16, &addr.to_ne_bytes());
    i
}

pub fn signo(info: &SigInfo) -> i32 {
    i32::from_ne_bytes(info[0..4].try_into().expect("4 bytes"))
}

pub fn code(info: &SigInfo) -> i32 {
    i32::from_ne_bytes(info[8..12].try_into().expect("4 bytes"))
}

/// Sets `si_signo` (a siginfo the payload wrote names the signal sent with it).
pub fn set_signo(info: &mut SigInfo, sig: i32) {
    put(info, 0, &sig.to_ne_bytes());
}

/// `struct kernel_sigaction` as rt_sigaction passes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    pub fn from_words(w: [u64; 4]) -> Self {
        SigAction {
            handler: w[0],
            flags: w[1],
            restorer: w[2],
            mask: w[3],
        }
    }

    pub fn words(&self) -> [u64; 4] {
        [self.handler, self.flags, self.restorer, self.mask]
    }

    /// For SIGCHLD: whether children are reaped without wait (SIG_IGN or
    /// SA_NOCLDWAIT).
    pub fn reaps_children(&self) -> bool {
        self.handler == libc::SIG_IGN as u64 || self.flags & libc::SA_NOCLDWAIT as u64 != 0
    }
}

/// Sets the disposition of `sig` in `signals`, `thread`'s process's (locked by
/// the caller), and, unless they are a vfork child's, in the table from which
/// the landing pad answers rt_sigaction queries.
pub fn set_action(
    guest: &Guest,
    thread: &Thread,
    signals: &mut Signals,
    sig: i32,
    action: SigAction,
) -> Result<(), memory::Fault> {
    signals.actions[(sig - 1) as usize] = action;
    if thread.vfork_child.is_some() {
        return Ok(());
    }
    landing_pad::write_action(&guest.vm.mem, sig, action.words())
}

/// Makes the landing pad's disposition table the process's (when a thread
/// starts: the first of a process, of a fork child, of a restored snapshot).
pub fn publish_actions(guest: &Guest) -> Result<(), memory::Fault> {
    let signals = lock(&guest.signals);
    for (sig, action) in (1..).zip(&signals.actions) {
        landing_pad::write_action(&guest.vm.mem, sig, action.words())?;
    }
    Ok(())
}

/// What a signal does when its handler is SIG_DFL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    /// Terminate and write a core file.
    Core,
    Ignore,
    /// Stop the whole process until SIGCONT (km stops itself on the host).
    Stop,
}

pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        libc::SIGQUIT
        | libc::SIGILL
        | libc::SIGTRAP
        | libc::SIGABRT
        | libc::SIGBUS
        | libc::SIGFPE
        | libc::SIGSEGV
        | libc::SIGSYS
        | libc::SIGXCPU
        | libc::SIGXFSZ => DefaultAction::Core,
        libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => DefaultAction::Stop,
        // SIGCONT's continuing is the host's (it resumes the stopped km whatever
        // its handler); delivered, its default does nothing more.
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH => DefaultAction::Ignore,
        _ => DefaultAction::Terminate,
    }
}

/// The first real-time signal (Linux's SIGRTMIN; libc reserves a few above it).
pub const SIGRTMIN: i32 = 32;
/// Most real-time signals one queue holds whatever RLIMIT_SIGPENDING says (km's
/// bound on the memory a payload can make it hold: 128 bytes each).
const MAX_QUEUED: u64 = 1 << 20;

/// Pending signals: a bit set readable without a lock, and their siginfo (one for a
/// standard signal, every one sent for a real-time signal, in order).
#[derive(Default)]
pub struct PendingQueue {
    bits: AtomicU64,
    info: Mutex<BTreeMap<i32, VecDeque<SigInfo>>>,
}

/// How many real-time signals a queue may hold: the guest's RLIMIT_SIGPENDING.
fn queue_limit() -> u64 {
    limits::get(libc::RLIMIT_SIGPENDING).map_or(MAX_QUEUED, |(soft, _)| soft.min(MAX_QUEUED))
}

impl PendingQueue {
    /// Moves every pending signal of this queue to `to`, which nobody uses yet
    /// (an execve in place keeps them for the new program, siginfo and all).
    pub fn move_to(&self, to: &PendingQueue) {
        let mut from = lock(&self.info);
        let mut into = lock(&to.info);
        for (sig, queue) in std::mem::take(&mut *from) {
            into.entry(sig).or_default().extend(queue);
        }
        to.bits
            .fetch_or(self.bits.swap(0, Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Adds a signal: a standard signal already pending is not queued twice; a
    /// real-time one queues behind those pending. Past RLIMIT_SIGPENDING, as on
    /// Linux, a real-time signal not sent by kill is EAGAIN, any other is only
    /// marked pending (its siginfo lost).
    pub fn add(&self, info: SigInfo) -> Result<(), Errno> {
        let sig = signo(&info);
        let mut map = lock(&self.info);
        let queued: u64 = map.values().map(|q| q.len() as u64).sum();
        let queue = map.entry(sig).or_default();
        if sig < SIGRTMIN {
            if queue.is_empty() {
                queue.push_back(info);
            }
        } else if queued < queue_limit() {
            queue.push_back(info);
        } else if code(&info) != SI_USER {
            return Err(Errno::AGAIN);
        }
        self.bits.fetch_or(bit(sig), Ordering::SeqCst);
        Ok(())
    }

    pub fn bits(&self) -> u64 {
        self.bits.load(Ordering::SeqCst)
    }

    /// Every pending signal's siginfo, lowest signal first and each signal's in
    /// the order they were queued (one that was only marked pending: SI_USER's).
    pub fn contents(&self) -> Vec<SigInfo> {
        let map = lock(&self.info);
        let bits = self.bits();
        (1..=64)
            .filter(|sig| bits & bit(*sig) != 0)
            .flat_map(|sig| match map.get(&sig) {
                Some(queue) if !queue.is_empty() => queue.iter().copied().collect(),
                _ => vec![info(sig, SI_USER)],
            })
            .collect()
    }

    /// Drops the pending signals in `mask` (a SIGCONT discards the stop signals
    /// pending, a stop signal a pending SIGCONT, as on Linux).
    pub fn discard(&self, mask: u64) {
        if self.bits() & mask == 0 {
            return;
        }
        let mut map = lock(&self.info);
        map.retain(|sig, _| bit(*sig) & mask == 0);
        self.bits.fetch_and(!mask, Ordering::SeqCst);
    }

    /// Takes the lowest pending signal in `allowed`.
    pub fn take(&self, allowed: u64) -> Option<SigInfo> {
        if self.bits() & allowed == 0 {
            return None;
        }
        let mut map = lock(&self.info);
        let ready = self.bits() & allowed;
        if ready == 0 {
            return None;
        }
        let sig = ready.trailing_zeros() as i32 + 1;
        let queue = map.entry(sig).or_default();
        let taken = queue.pop_front();
        if queue.is_empty() {
            map.remove(&sig);
            self.bits.fetch_and(!bit(sig), Ordering::SeqCst);
        }
        // A signal marked pending past the queue's limit has no siginfo left.
        Some(taken.unwrap_or_else(|| info(sig, SI_USER)))
    }
}

/// Moves host signals received by km into the payload's process-wide pending set.
pub fn collect_host_signals(guest: &Guest) {
    let mut host = kick::take_host_pending();
    while host != 0 {
        let sig = host.trailing_zeros() as i32 + 1;
        host &= host - 1;
        let mut i: SigInfo = [0u8; 128];
        put(&mut i, 0, &kick::host_info(sig));
        put(&mut i, 0, &sig.to_ne_bytes());
        // A child that reported its exit (`kernel::children`) had its SIGCHLD
        // then; its doorbell and its end on the host are not the payload's.
        if sig == libc::SIGCHLD {
            let pid = i32::from_ne_bytes(i[16..20].try_into().expect("si_pid"));
            let action = lock(&guest.signals).actions[(libc::SIGCHLD - 1) as usize];
            if children::host_sigchld(pid, action.reaps_children()) || children::is_doorbell(&i) {
                continue;
            }
            // km's host handler takes every child's stop and continue; the
            // payload's SA_NOCLDSTOP asks for none of them.
            let stop_or_continue = matches!(code(&i), libc::CLD_STOPPED | libc::CLD_CONTINUED);
            if stop_or_continue && action.flags & libc::SA_NOCLDSTOP as u64 != 0 {
                continue;
            }
        }
        if sig == libc::SIGCONT {
            guest.pending.discard(STOP_SIGNALS);
        } else if bit(sig) & STOP_SIGNALS != 0 {
            guest.pending.discard(bit(libc::SIGCONT));
        }
        // A queued signal past RLIMIT_SIGPENDING is dropped, as Linux refuses it.
        let _ = guest.pending.add(i);
    }
    raise_reported(guest);
}

/// The signals whose default action stops the process.
const STOP_SIGNALS: u64 = (1 << (libc::SIGSTOP - 1))
    | (1 << (libc::SIGTSTP - 1))
    | (1 << (libc::SIGTTIN - 1))
    | (1 << (libc::SIGTTOU - 1));

/// Queues the payload's SIGCHLD for each child whose exit report km has read,
/// with what Linux's would carry (CLD_EXITED, the status, the times).
pub fn raise_reported(guest: &Guest) {
    for exited in children::take_fresh() {
        let mut i = info_from(libc::SIGCHLD, libc::CLD_EXITED, exited.pid, exited.uid);
        put(&mut i, 24, &exited.code.to_ne_bytes());
        let (utime, stime) = exited.ticks();
        put(&mut i, 32, &utime.to_ne_bytes());
        put(&mut i, 40, &stime.to_ne_bytes());
        let _ = guest.pending.add(i);
    }
}

/// The signals pending for `thread` or its process, host ones received by km
/// included (what sigpending reports, and what an execve keeps).
pub fn pending(guest: &Guest, thread: &Thread) -> u64 {
    collect_host_signals(guest);
    // Those of the thread and process a vfork child runs on are its parent's.
    if let Some(child) = &thread.vfork_child {
        return child.pending.bits();
    }
    thread.handle.pending.bits() | guest.pending.bits()
}

/// Queues a signal for the whole process and kicks the threads to take it.
pub fn send_to_process(guest: &Guest, info: SigInfo) -> Result<(), Errno> {
    guest.pending.add(info)?;
    kick::kick_all();
    Ok(())
}

/// Queues a signal the payload sends its own process from `thread`: as on Linux,
/// the sender takes it (before its syscall returns) when it does not block it and
/// the signal is not pending for the process already; else any thread may. A vfork
/// child, whose thread's and process's pending sets are its parent's, keeps it in
/// its own.
pub fn send_from_within(guest: &Guest, thread: &Thread, info: SigInfo) -> Result<(), Errno> {
    let sig = bit(signo(&info));
    if let Some(child) = &thread.vfork_child {
        return child.pending.add(info);
    }
    if thread.sigmask & sig == 0 && guest.pending.bits() & sig == 0 {
        thread.handle.pending.add(info)
    } else {
        send_to_process(guest, info)
    }
}

/// Gives `thread` the temporary mask of a wait (sigsuspend, ppoll, pselect6,
/// epoll_pwait); its own mask is kept until [`restore_saved_mask`] or a handler's
/// frame takes it (a retried wait keeps the first one).
pub fn set_temporary_mask(thread: &mut Thread, mask: u64) {
    let own = thread.sigmask;
    thread.saved_mask.get_or_insert(own);
    thread.sigmask = mask & !UNBLOCKABLE;
}

/// Puts back the mask a temporary one replaced: when the wait returns without
/// EINTR, or no handler ran after it (Linux's restore_saved_sigmask).
pub fn restore_saved_mask(thread: &mut Thread) {
    if let Some(mask) = thread.saved_mask.take() {
        thread.sigmask = mask;
    }
}

/// Where the thread stands when a signal may be delivered.
#[derive(Debug, Clone, Copy)]
pub enum Point {
    /// A syscall returned `result`; `restart` when it was interrupted (EINTR) and
    /// may be restarted under SA_RESTART.
    Syscall { nr: u64, result: u64, restart: bool },
    /// The guest took a CPU exception (the vCPU sits in the exception stub).
    Exception(ExceptionFrame),
    /// A kick pulled the vCPU out of the guest between two instructions.
    Interrupted,
}

/// Whether a signal could be delivered to `thread` now (cheap check).
pub fn deliverable(guest: &Guest, thread: &Thread) -> bool {
    // A host SIGCHLD may be a reported child's, which the payload does not get.
    if thread.vfork_child.is_none() && kick::peek_host_pending() & bit(libc::SIGCHLD) != 0 {
        collect_host_signals(guest);
    }
    thread.forced_signal.is_some() || waiting(guest, thread) & !thread.sigmask != 0
}

/// Whether a blocking call of `thread` ends (EINTR) for a signal: one it can take
/// that is not ignored. Linux discards an ignored signal when it is sent; km
/// discards it when it delivers it, so it must not interrupt a wait meanwhile
/// (another child's SIGCHLD would end a wait for a child with EINTR).
pub fn interrupts(guest: &Guest, thread: &Thread) -> bool {
    if !deliverable(guest, thread) {
        return false;
    }
    if thread.forced_signal.is_some() {
        return true;
    }
    let actions = thread.signals(guest).actions;
    let acting = (1..=64).filter(|sig| {
        let handler = actions[(*sig - 1) as usize].handler;
        !(handler == libc::SIG_IGN as u64
            || handler == libc::SIG_DFL as u64 && default_action(*sig) == DefaultAction::Ignore)
    });
    let acting = acting.fold(0u64, |m, sig| m | bit(sig));
    waiting(guest, thread) & !thread.sigmask & acting != 0
}

/// The signals waiting for `thread`: its own and its process's pending ones and
/// those km's host handlers received (a vfork child's own only).
pub fn waiting(guest: &Guest, thread: &Thread) -> u64 {
    match &thread.vfork_child {
        Some(child) => child.pending.bits(),
        None => thread.handle.pending.bits() | guest.pending.bits() | kick::peek_host_pending(),
    }
}

/// Takes the next signal for `thread` among those `allowed`.
pub fn take(guest: &Guest, thread: &Thread, allowed: u64) -> Option<SigInfo> {
    collect_host_signals(guest);
    // A vfork child takes only what it sent itself.
    if let Some(child) = &thread.vfork_child {
        return child.pending.take(allowed);
    }
    thread
        .handle
        .pending
        .take(allowed)
        .or_else(|| guest.pending.take(allowed))
}

/// The user-mode register state of the thread at `point`.
pub fn user_context(thread: &Thread, point: Point) -> Result<kvm_regs> {
    let mut regs = thread.vcpu.regs()?;
    match point {
        Point::Syscall { result, .. } => {
            regs.rip = regs.rcx;
            regs.rflags = regs.r11;
            regs.rax = result;
        }
        Point::Exception(frame) => {
            regs.rip = frame.rip;
            regs.rsp = frame.rsp;
            regs.rflags = frame.rflags;
        }
        Point::Interrupted => {}
    }
    Ok(regs)
}

/// Whether signals can be delivered to `thread` at `point` now: one is pending
/// and the thread is not between the instructions of its syscall pad (the syscall
/// exit that follows delivers).
pub fn ready(guest: &Guest, thread: &Thread, point: Point) -> Result<bool> {
    if !deliverable(guest, thread) {
        return Ok(false);
    }
    Ok(!(matches!(point, Point::Interrupted) && thread.vcpu.in_landing_pad()?))
}

/// What delivering a signal did.
pub enum Delivery {
    /// Ignored (by its handler or by default): the next one may be delivered.
    Ignored,
    /// The thread now runs the signal's handler.
    Handler,
    /// The process was stopped (on the host) and has been continued since, or
    /// the host discarded the stop (an orphaned process group's SIGTSTP, SIGTTIN
    /// or SIGTTOU).
    Stopped,
    /// The process dies of this signal (the one delivered, or SIGSEGV when its
    /// frame could not be written).
    Fatal(SigInfo),
}

/// Delivers signal `info` to `thread` stopped at `point`.
pub fn deliver(
    guest: &Guest,
    thread: &mut Thread,
    info: &SigInfo,
    point: Point,
) -> Result<Delivery> {
    let sig = signo(info);
    let action = thread.signals(guest).actions[(sig - 1) as usize];
    Ok(match action.handler {
        SIG_IGN => Delivery::Ignored,
        SIG_DFL => match default_action(sig) {
            DefaultAction::Ignore => Delivery::Ignored,
            DefaultAction::Stop => {
                trace!(
                    Category::Kvm,
                    "thread {}: signal {sig} stops km", thread.tid
                );
                kick::stop_by(sig);
                Delivery::Stopped
            }
            DefaultAction::Terminate | DefaultAction::Core => Delivery::Fatal(*info),
        },
        _ => match setup_frame(guest, thread, info, action, point)? {
            None => Delivery::Handler,
            Some(fatal) => Delivery::Fatal(fatal),
        },
    })
}

/// Whether stack pointer `sp` lies on the alternate signal stack `(base, size)`
/// (Linux's on_sig_stack: the stack grows down from `base + size`).
pub fn on_altstack((base, size): (u64, u64), sp: u64) -> bool {
    size != 0 && sp > base && sp - base <= size
}

/// The signal and siginfo Linux gives for CPU exception `frame` (CR2 for #PF). A
/// page fault at an address the payload mapped (PROT_NONE, or a write to a
/// read-only page) is SEGV_ACCERR; only one outside every mapping is SEGV_MAPERR.
pub fn for_exception(guest: &Guest, frame: &ExceptionFrame, cr2: u64) -> SigInfo {
    match frame.vector {
        0 => info_fault(libc::SIGFPE, FPE_INTDIV, frame.rip),
        16 | 19 => info_fault(libc::SIGFPE, FPE_FLTINV, frame.rip),
        1 => info_fault(libc::SIGTRAP, TRAP_TRACE, frame.rip),
        3 => info(libc::SIGTRAP, SI_KERNEL),
        6 => info_fault(libc::SIGILL, ILL_ILLOPN, frame.rip),
        17 => info_fault(libc::SIGBUS, BUS_ADRALN, 0),
        14 => {
            let present = frame.error_code & 1 != 0;
            let code = if present || lock(&guest.mm).vma_at(cr2).is_some() {
                SEGV_ACCERR
            } else {
                SEGV_MAPERR
            };
            info_fault(libc::SIGSEGV, code, cr2)
        }
        _ => info(libc::SIGSEGV, SI_KERNEL),
    }
}

/// Raises a CPU exception's signal in `thread`: delivered next, or returned as
/// fatal when it is blocked, ignored or defaulted (as Linux forces it).
pub fn raise_fault(guest: &Guest, thread: &mut Thread, info: SigInfo) -> Option<SigInfo> {
    let sig = signo(&info);
    let action = thread.signals(guest).actions[(sig - 1) as usize];
    if thread.sigmask & bit(sig) != 0 || action.handler == SIG_IGN || action.handler == SIG_DFL {
        return Some(info);
    }
    thread.forced_signal = Some(info);
    None
}

fn write_user(guest: &Guest, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
    let s = guest.user_slice(addr, bytes.len(), libc::PROT_WRITE)?;
    Ok(memory::copy_from(addr, &s, bytes)?)
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// `sigcontext`'s 18 general registers, in the kernel's order.
fn gregs(r: &kvm_regs) -> [u64; 18] {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.rflags,
    ]
}

fn set_gregs(r: &mut kvm_regs, g: &[u64]) {
    [
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx,
        r.rax, r.rcx, r.rsp, r.rip, r.rflags,
    ] = g[..18].try_into().expect("18 registers");
}

/// Syscalls that SA_RESTART restarts after a handler (Linux's -ERESTARTSYS ones).
fn restartable(nr: u64) -> bool {
    matches!(
        nr as i64,
        libc::SYS_read
            | libc::SYS_readv
            | libc::SYS_write
            | libc::SYS_writev
            | libc::SYS_pread64
            | libc::SYS_pwrite64
            | libc::SYS_ioctl
            | libc::SYS_wait4
            | libc::SYS_open
            | libc::SYS_openat
            | libc::SYS_futex
            | libc::SYS_accept
            | libc::SYS_accept4
            | libc::SYS_connect
            | libc::SYS_recvfrom
            | libc::SYS_sendto
            | libc::SYS_fcntl
    )
}

/// Builds the signal frame for `info` and points the vCPU at the handler.
fn setup_frame(
    guest: &Guest,
    thread: &mut Thread,
    info: &SigInfo,
    action: SigAction,
    point: Point,
) -> Result<Option<SigInfo>> {
    let sig = signo(info);
    let mut user = user_context(thread, point)?;
    if let Point::Syscall {
        nr, restart: true, ..
    } = point
    {
        if action.flags & SA_RESTART != 0 && restartable(nr) {
            // Re-execute the `syscall` instruction (2 bytes) after the handler.
            user.rip -= 2;
            user.rax = nr;
        } else {
            user.rax = (-(libc::EINTR as i64)) as u64;
        }
    }
    let (alt_sp, alt_size) = thread.altstack;
    // The stack pointer and the alternate stack are the guest's: the frame address
    // wraps as Linux's does, and a wrapped frame is unwritable (SIGSEGV below).
    let alt_top = alt_sp.wrapping_add(alt_size);
    let on_alt = on_altstack(thread.altstack, user.rsp);
    let mut sp = if action.flags & SA_ONSTACK != 0 && alt_size != 0 && !on_alt {
        alt_top
    } else {
        user.rsp.wrapping_sub(RED_ZONE)
    };
    sp = sp.wrapping_sub(FPSTATE_SIZE) & !63;
    let fpstate = sp;
    let frame = (sp.wrapping_sub(RT_SIGFRAME_SIZE - 8) & !15).wrapping_sub(8);
    let uc = frame.wrapping_add(8);
    let info_addr = uc.wrapping_add(UCONTEXT_SIZE);

    let (trapno, err, cr2) = match point {
        Point::Exception(f) => (f.vector, f.error_code, thread.vcpu.cr2().unwrap_or(0)),
        _ => (0, 0, 0),
    };
    let old_mask = thread.saved_mask.take().unwrap_or(thread.sigmask);
    let stack_flags = if alt_size == 0 {
        SS_DISABLE
    } else if on_alt {
        SS_ONSTACK
    } else {
        0
    };
    let mut ucontext = words(&[
        UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS,
        0,
        alt_sp,
        stack_flags,
        alt_size,
    ]);
    ucontext.extend(words(&gregs(&user)));
    let segs = (USER_CS as u64) | ((USER_DS as u64) << 48);
    ucontext.extend(words(&[
        segs, err, trapno, old_mask, cr2, fpstate, 0, 0, 0, 0, 0, 0, 0, 0, old_mask,
    ]));
    debug_assert_eq!(ucontext.len() as u64, UCONTEXT_SIZE);
    let restorer = if action.flags & SA_RESTORER != 0 {
        action.restorer
    } else {
        thread.vcpu.area.sigreturn_trampoline()
    };
    let written = write_user(guest, fpstate, &thread.vcpu.xsave()?)
        .and_then(|_| write_user(guest, frame, &restorer.to_ne_bytes()))
        .and_then(|_| write_user(guest, uc, &ucontext))
        .and_then(|_| write_user(guest, info_addr, info));
    if written.is_err() {
        // No room for the frame: Linux kills with SIGSEGV.
        trace!(
            Category::Kvm,
            "signal {sig}: cannot write the frame at {frame:#x}"
        );
        return Ok(Some(info_fault(libc::SIGSEGV, SI_KERNEL, frame)));
    }
    let mut regs = user;
    regs.rip = action.handler;
    regs.rsp = frame;
    regs.rdi = sig as u64;
    regs.rsi = info_addr;
    regs.rdx = uc;
    regs.rax = 0;
    regs.rflags = (user.rflags & !HANDLER_CLEARS) | IF;
    thread.vcpu.enter_user(&guest.vm.mem, &regs)?;

    thread.sigmask |= action.mask & !UNBLOCKABLE;
    if action.flags & SA_NODEFER == 0 {
        thread.sigmask |= bit(sig);
    }
    if action.flags & SA_RESETHAND != 0 {
        // Linux resets the handler only: flags, mask and restorer stay.
        let mut signals = thread.signals(guest);
        let reset = SigAction {
            handler: SIG_DFL,
            ..signals.actions[(sig - 1) as usize]
        };
        set_action(guest, thread, &mut signals, sig, reset)?;
    }
    trace!(
        Category::Kvm,
        "thread {}: signal {sig} -> handler {:#x}, frame {frame:#x}", thread.tid, action.handler
    );
    Ok(None)
}

/// rt_sigreturn: restores the context saved in the frame the handler returns from
/// (RSP points just above the frame's return-address slot).
pub fn sigreturn(guest: &Guest, thread: &mut Thread) -> Result<(), Errno> {
    let regs = thread.vcpu.regs().map_err(|_| Errno::FAULT)?;
    let uc = regs.rsp;
    let mut bytes = vec![0u8; UCONTEXT_SIZE as usize];
    let s = guest.user_slice(uc, bytes.len(), libc::PROT_READ)?;
    memory::copy_to(uc, &s, &mut bytes)?;
    let w: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8")))
        .collect();
    let mut user = regs;
    set_gregs(&mut user, &w[5..23]);
    user.rflags = (regs.rflags & !FIX_EFLAGS) | (user.rflags & FIX_EFLAGS) | IF;
    let fpstate = w[28];
    if fpstate != 0 {
        let mut xsave = vec![0u8; FPSTATE_SIZE as usize];
        let s = guest.user_slice(fpstate, xsave.len(), libc::PROT_READ)?;
        memory::copy_to(fpstate, &s, &mut xsave)?;
        thread.vcpu.set_xsave(&xsave).map_err(|_| Errno::FAULT)?;
    }
    thread.sigmask = w[37] & !UNBLOCKABLE;
    thread
        .vcpu
        .enter_user(&guest.vm.mem, &user)
        .map_err(|_| Errno::FAULT)?;
    Ok(())
}
