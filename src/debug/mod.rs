//! Layer 6, debugging: what a guest thread does at a debug event. It parks for gdb
//! (all-stop, through the state in `crate::kernel::ptrace`), single-steps for gdb's
//! step and for watchpoints, stops at `catch syscall` entries and returns, and hides
//! pages for read and access watchpoints ([`watch`]); on hardware KVM it programs
//! each vCPU's debug registers. The thread loop (`crate::run`)
//! asks these functions at each exit; they see threads as data.

pub mod watch;

use anyhow::Result;
use kvm_bindings::kvm_regs;

use crate::guest::landing_pad::{CpuArea, ExceptionFrame, SYS_BASE, SYS_SIZE};
use crate::kernel::process::{ForkedChild, Guest, Thread};
use crate::kernel::ptrace::{self, Event, HwPoint, WatchKind};
use crate::kernel::signals::{self, Point, SigInfo};
use crate::kvm::debugregs::slot_hit;
use crate::kvm::{RF, TF};
use crate::trace;
use crate::trace::Category;

/// The x86 exception vectors km's debugging handles itself.
const BREAKPOINT_VECTOR: u64 = 3;
const DEBUG_VECTOR: u64 = 1;
const PAGE_FAULT_VECTOR: u64 = 14;
/// The `int3` instruction.
const INT3: u8 = 0xcc;

/// What debugging made of a CPU exception.
pub enum Exception {
    /// Consumed (a breakpoint, a step, a watched page): the thread goes on from
    /// where it stands now.
    Handled,
    /// gdb saw the exception's signal and passed it on (with `info`, which gdb may
    /// have edited): raise it at `at`, where the thread stands now.
    Passed { info: SigInfo, at: Point },
    /// Not a debug event: the payload gets the exception's signal as without gdb.
    Payload,
}

/// A new thread of a payload under gdb: it single-steps from its first
/// instruction when write watchpoints are set (it never parked when gdb set them).
pub fn thread_started(guest: &Guest, thread: &mut Thread) -> Result<()> {
    if let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) {
        load_debug_regs(d, thread)?;
    }
    if guest
        .debugger
        .as_ref()
        .is_some_and(|d| d.attached() && d.watching())
    {
        set_stepping(thread, true)?;
    }
    Ok(())
}

/// Parks the first thread before its first instruction (`km -g`).
pub fn initial_stop(guest: &Guest, thread: &mut Thread) -> Result<()> {
    if let Some(d) = &guest.debugger {
        d.request_stop();
        // gdb's $_siginfo shows the SIGTRAP execve sends a traced process.
        let exec_trap = signals::info_from_self(libc::SIGTRAP, signals::SI_USER);
        let signal = debug_park(guest, thread, Point::Interrupted, |_| Some(exec_trap))?;
        inject(thread, signal);
    }
    Ok(())
}

/// A CPU exception `frame` (with `cr2` for page faults), which means signal `info`
/// to the payload, seen first by debugging.
pub fn exception(
    guest: &Guest,
    thread: &mut Thread,
    mut frame: ExceptionFrame,
    cr2: u64,
    info: &SigInfo,
) -> Result<Exception> {
    if frame.vector == PAGE_FAULT_VECTOR && watch::watched_fault(guest, cr2, frame.error_code) {
        // An access to a page hidden for watchpoints: let this instruction through.
        let step = thread.watch_step.get_or_insert_default();
        watch::begin_watch_step(guest, step, cr2, frame.error_code)?;
        set_stepping(thread, true)?;
        let mut regs = signals::user_context(thread, Point::Exception(frame))?;
        regs.rflags |= TF;
        thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
        return Ok(Exception::Handled);
    }
    if frame.vector == DEBUG_VECTOR && thread.stepping {
        let regs = signals::user_context(thread, Point::Exception(frame))?;
        if (SYS_BASE..SYS_BASE + SYS_SIZE).contains(&frame.rip) {
            // Stepping through the landing pad: keep going until user code.
            thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
            return Ok(Exception::Handled);
        }
        match step_event(guest, thread)? {
            Some(event) => stop(guest, thread, event, Point::Exception(frame))?,
            None => {
                let regs = continue_after_step(guest, thread, regs)?;
                thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
            }
        }
        return Ok(Exception::Handled);
    }
    if let Some(step) = thread.watch_step.take() {
        // The instruction let through a hidden page raised something else.
        watch::end_watch_step(guest, step)?;
        set_stepping(thread, needs_stepping(guest, thread))?;
    }
    let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) else {
        return Ok(Exception::Payload);
    };
    if frame.vector == BREAKPOINT_VECTOR && d.has_breakpoint(frame.rip - 1) {
        frame.rip -= 1;
        stop(
            guest,
            thread,
            Event::Breakpoint(thread.tid),
            Point::Exception(frame),
        )?;
        return Ok(Exception::Handled);
    }
    if frame.vector == BREAKPOINT_VECTOR && late_breakpoint(guest, d, &frame) {
        // A #BP of a breakpoint gdb has removed since, delivered late: on PVM a #BP
        // raised just before a stop can reach the guest after it. The thread goes
        // on at the breakpoint's address, now holding the original instruction.
        if d.had_breakpoint(frame.rip - 1) {
            frame.rip -= 1;
        }
        let regs = signals::user_context(thread, Point::Exception(frame))?;
        thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
        return Ok(Exception::Handled);
    }
    let sig = signals::signo(info);
    if d.passes(sig) {
        return Ok(Exception::Payload);
    }
    d.report(Event::Signal(thread.tid, sig));
    match debug_park(guest, thread, Point::Exception(frame), |_| Some(*info))? {
        Some(info) if signals::signo(&info) == sig => Ok(Exception::Passed {
            info,
            at: resumed_point(guest, thread)?,
        }),
        other => {
            // gdb chose another signal or none: resume where it stands.
            inject(thread, other);
            Ok(Exception::Handled)
        }
    }
}

/// Where a thread that gdb resumed from an exception stop stands: still in the
/// exception stub, about to return to the user context gdb left (a signal frame
/// is built from the stub's frame), or in user code when it single-steps.
fn resumed_point(guest: &Guest, thread: &Thread) -> Result<Point> {
    Ok(if CpuArea::in_stubs(thread.vcpu.regs()?.rip) {
        Point::Exception(thread.vcpu.area.exception(&guest.vm.mem)?)
    } else {
        Point::Interrupted
    })
}

/// After a syscall returned (`point`): stops at its return for `catch syscall`, or
/// ends a single-step there. Returns the point the thread goes on from.
pub fn syscall_returned(guest: &Guest, thread: &mut Thread, point: Point) -> Result<Point> {
    let Point::Syscall { nr, restart, .. } = point else {
        return Ok(point);
    };
    if let Some(child) = thread.forked.take() {
        forked(guest, thread, child, point)?;
        return Ok(Point::Interrupted);
    }
    if catches_syscall(guest, nr) {
        // `catch syscall`: stop at its return, then go on.
        stop(guest, thread, Event::SyscallReturn(thread.tid, nr), point)?;
        return Ok(Point::Interrupted);
    }
    if thread.stepping && !restart {
        step_after_syscall(guest, thread, point)?;
        return Ok(Point::Interrupted);
    }
    Ok(point)
}

/// After a fork under gdb (as its return): stops with the fork event, gdb then
/// detaches the child or takes it over (`crate::kernel::ptrace::ForkDecision`).
/// A vfork parent then waits for its child's exec or exit and stops again
/// (vfork-done), as Linux's ptrace reports it.
fn forked(guest: &Guest, thread: &mut Thread, child: ForkedChild, point: Point) -> Result<()> {
    let event = Event::Fork {
        tid: thread.tid,
        child: child.pid,
        vfork: child.vfork_release.is_some(),
    };
    if guest.debugger.as_ref().is_some_and(|d| d.attached()) {
        stop(guest, thread, event, point)?;
    }
    if let Some(release) = child.vfork_release {
        crate::syscalls::wait_for_vfork_child(&release);
        if guest.debugger.as_ref().is_some_and(|d| d.attached()) {
            stop(
                guest,
                thread,
                Event::VForkDone(thread.tid),
                Point::Interrupted,
            )?;
        }
    }
    Ok(())
}

/// After a kick ended KVM_RUN: arms the single-step again (an immediate exit drops
/// KVM's pending one), and stops a thread that has just executed one of gdb's
/// `int3`s whose #BP did not reach the guest (see [`interrupted_after_breakpoint`])
/// at that breakpoint, before anything (a stop, a signal) sets its registers.
/// `ran`: the guest ran before the kick (else it cannot have executed anything).
pub fn interrupted(guest: &Guest, thread: &mut Thread, ran: bool) -> Result<()> {
    if thread.stepping {
        thread.vcpu.set_single_step(true)?;
    }
    if ran && interrupted_after_breakpoint(guest, thread)? {
        stop(
            guest,
            thread,
            Event::Breakpoint(thread.tid),
            Point::Interrupted,
        )?;
    }
    Ok(())
}

/// When gdb asked every thread to stop: parks this one, stopped at `point`.
/// Returns the point it goes on from, or `None` when it sits in an exception stub
/// and must first run to the stub's exit (a few instructions on).
pub fn park_if_stopping(guest: &Guest, thread: &mut Thread, point: Point) -> Result<Option<Point>> {
    if !guest.debugger.as_ref().is_some_and(|d| d.stopping()) {
        return Ok(Some(point));
    }
    let point = user_point(guest, thread, point)?;
    if matches!(point, Point::Interrupted) && thread.vcpu.in_landing_pad()? {
        return Ok(None);
    }
    // gdb's $_siginfo shows the SIGSTOP gdbserver stops the other threads with.
    let stop = signals::info_from_self(libc::SIGSTOP, signals::SI_TKILL);
    let signal = debug_park(guest, thread, point, |_| Some(stop))?;
    inject(thread, signal);
    Ok(Some(Point::Interrupted))
}

/// Whether `thread`, interrupted, has just executed the `int3` of a breakpoint
/// whose #BP never reached the guest: on PVM a kick can end KVM_RUN between the two,
/// and registers set afterwards (for a stop, a signal frame) drop the pending
/// exception. The thread is then moved back onto the breakpoint, as its #BP would
/// have been.
fn interrupted_after_breakpoint(guest: &Guest, thread: &Thread) -> Result<bool> {
    let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) else {
        return Ok(false);
    };
    // A thread that single-steps may stand one byte past a breakpoint because it
    // stepped the original instruction there (gdb's step over it): only a running
    // thread can be told by its position.
    if thread.stepping {
        return Ok(false);
    }
    // One register read: a thread in km's own code (pad or stub) is not past one.
    let mut regs = thread.vcpu.regs()?;
    if (SYS_BASE..SYS_BASE + SYS_SIZE).contains(&regs.rip)
        || !d.has_breakpoint(regs.rip.wrapping_sub(1))
    {
        return Ok(false);
    }
    regs.rip -= 1;
    thread.vcpu.set_regs(&regs)?;
    Ok(true)
}

/// Whether the #BP in `frame`, at no breakpoint of gdb's, comes from one gdb
/// removed, with no int3 there now (not the payload's own): delivered after (`rip`
/// one past it) or at (`rip` on it) the breakpoint's address.
fn late_breakpoint(guest: &Guest, d: &ptrace::Debugger, frame: &ExceptionFrame) -> bool {
    let at = frame.rip.wrapping_sub(1);
    (d.had_breakpoint(at) || d.had_breakpoint(frame.rip))
        && guest.vm.mem.read_obj::<u8>(at).is_ok_and(|b| b != INT3)
}

/// Signal `info` about to be delivered to `thread` at `point`: gdb sees it first
/// (as a ptrace signal-delivery stop) and resumes the thread with the signal to
/// deliver instead (the same, another, or none), unless gdb passes it without a
/// stop. Returns that signal and the point the thread stands at now.
pub fn signal_stop(
    guest: &Guest,
    thread: &mut Thread,
    info: SigInfo,
    point: Point,
) -> Result<(Option<SigInfo>, Point)> {
    let sig = signals::signo(&info);
    let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) else {
        return Ok((Some(info), point));
    };
    if sig == libc::SIGKILL || d.passes(sig) {
        return Ok((Some(info), point));
    }
    d.report(Event::Signal(thread.tid, sig));
    let delivered = debug_park(guest, thread, point, |_| Some(info))?;
    Ok((delivered, Point::Interrupted))
}

/// A signal handler's frame was just set up: a thread gdb was single-stepping
/// stops at the handler's first instruction, as Linux reports such a step.
pub fn handler_entered(guest: &Guest, thread: &mut Thread) -> Result<()> {
    if thread.gdb_step {
        stop(guest, thread, Event::Step(thread.tid), Point::Interrupted)?;
    }
    Ok(())
}

/// Reports `event` to gdb and parks the thread at `point` until gdb resumes it.
fn stop(guest: &Guest, thread: &mut Thread, event: Event, point: Point) -> Result<()> {
    let d = guest.debugger.as_ref().expect("debug events need gdb");
    d.report(event);
    let signal = debug_park(guest, thread, point, |rip| trap_info(event, rip))?;
    inject(thread, signal);
    Ok(())
}

/// `si_code` of a syscall stop (ptrace's PTRACE_O_TRACESYSGOOD, as gdbserver sets).
const SYSCALL_TRAP: i32 = libc::SIGTRAP | 0x80;

/// The SIGTRAP siginfo Linux shows a debugger for `event` at user RIP `rip`:
/// an int3 (SI_KERNEL), a single-step (TRAP_TRACE at the next instruction), a
/// watchpoint (TRAP_HWBKPT, as from a debug register), a syscall stop or a
/// fork, vfork or exec event.
fn trap_info(event: Event, rip: u64) -> Option<SigInfo> {
    Some(match event {
        Event::Breakpoint(_) => signals::info(libc::SIGTRAP, signals::SI_KERNEL),
        Event::HwBreakpoint(_) => signals::info_fault(libc::SIGTRAP, signals::TRAP_HWBKPT, rip),
        Event::Step(_) => signals::info_fault(libc::SIGTRAP, signals::TRAP_TRACE, rip),
        Event::Watch(..) => signals::info_fault(libc::SIGTRAP, signals::TRAP_HWBKPT, rip),
        Event::SyscallEntry(..) | Event::SyscallReturn(..) => {
            signals::info(libc::SIGTRAP, SYSCALL_TRAP)
        }
        Event::Fork { vfork, .. } => ptrace_event(if vfork { 2 } else { 1 }),
        Event::VForkDone(_) => ptrace_event(5),
        Event::Exec(_) => ptrace_event(4),
        Event::Signal(..) | Event::Exited(_) | Event::Killed(_) => return None,
    })
}

/// The siginfo of a ptrace event stop (PTRACE_EVENT_FORK 1, _VFORK 2, _EXEC 4,
/// _VFORK_DONE 5): SIGTRAP with `si_code` SIGTRAP | event << 8, as Linux reports it.
fn ptrace_event(event: i32) -> SigInfo {
    signals::info(libc::SIGTRAP, libc::SIGTRAP | event << 8)
}

/// A system call made while single-stepping ends the step at the instruction after
/// `syscall`, as under Linux. KVM's pending single-step does not survive the
/// hypercall's I/O exit (seen on PVM), so km ends the step itself: it stops for gdb,
/// or re-enters user code after the syscall, stepping on if still needed.
fn step_after_syscall(guest: &Guest, thread: &mut Thread, point: Point) -> Result<()> {
    match step_event(guest, thread)? {
        Some(event) => stop(guest, thread, event, point)?,
        None => {
            let regs = continue_after_step(guest, thread, signals::user_context(thread, point)?)?;
            thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
        }
    }
    Ok(())
}

/// A KVM_EXIT_DEBUG at a user instruction (hardware KVM), with DR6: a debug
/// register slot hit (see [`debug_register_hit`]), or a single-step done, which
/// stops for gdb or goes on stepping or running.
pub fn after_kvm_debug(guest: &Guest, thread: &mut Thread, dr6: u64) -> Result<()> {
    if let Some(slot) = slot_hit(dr6) {
        return debug_register_hit(guest, thread, slot);
    }
    match step_event(guest, thread)? {
        Some(event) => stop(guest, thread, event, Point::Interrupted)?,
        None => {
            let regs = continue_after_step(guest, thread, thread.vcpu.regs()?)?;
            thread.vcpu.set_regs(&regs)?;
        }
    }
    Ok(())
}

/// The user-visible point of a thread stopped at `point`: inside its syscall pad,
/// the syscall done (result loaded next) or not yet made (to be re-executed).
pub fn user_point(guest: &Guest, thread: &Thread, point: Point) -> Result<Point> {
    if !matches!(point, Point::Interrupted) {
        return Ok(point);
    }
    Ok(stop_point_in_pad(guest, thread)?.unwrap_or(point))
}

/// The syscall point of a thread interrupted inside its syscall pad (see
/// [`user_point`]).
fn stop_point_in_pad(guest: &Guest, thread: &Thread) -> Result<Option<Point>> {
    let regs = thread.vcpu.regs()?;
    Ok(match thread.vcpu.area.after_hypercall(regs.rip) {
        Some(true) => {
            let req = thread.vcpu.area.request(&guest.vm.mem)?;
            let result = thread.vcpu.area.result(&guest.vm.mem)?;
            Some(Point::Syscall {
                nr: req.nr,
                result,
                restart: false,
            })
        }
        // Nothing happened yet: resume at the `syscall` instruction itself.
        Some(false) => Some(Point::Syscall {
            nr: regs.rax,
            result: 0,
            restart: true,
        }),
        None => None,
    })
}

/// What a finished single-step of `thread` means for gdb: the end of gdb's own step,
/// an access to a watched address, or nothing (keep going). A step over a page
/// hidden for watchpoints ends here: the page is hidden again. A write is the one
/// noted while the instruction ran alone (`watch::end_own_step`); what a syscall
/// changes is not (Linux's debug registers do not see the kernel's writes).
fn step_event(guest: &Guest, thread: &mut Thread) -> Result<Option<Event>> {
    let hit = match thread.watch_step.take() {
        Some(step) => watch::end_watch_step(guest, step)?,
        None => None,
    };
    let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) else {
        // gdb went away during its step: nobody waits for its end.
        thread.gdb_step = false;
        return Ok(None);
    };
    if let Some((kind, addr)) = hit {
        return Ok(Some(Event::Watch(thread.tid, kind, addr)));
    }
    if let Some(addr) = thread.watch_wrote.take().filter(|_| d.watching()) {
        return Ok(Some(Event::Watch(thread.tid, WatchKind::Write, addr)));
    }
    Ok(thread.gdb_step.then_some(Event::Step(thread.tid)))
}

/// Whether `thread` must run instruction by instruction: for gdb's step, for write
/// watchpoints, or to finish an instruction let through a hidden page.
fn needs_stepping(guest: &Guest, thread: &Thread) -> bool {
    thread.gdb_step
        || thread.watch_step.is_some()
        || guest.debugger.as_ref().is_some_and(|d| d.watching())
}

/// Turns KVM's single-step for `thread` on or off.
fn set_stepping(thread: &mut Thread, on: bool) -> Result<()> {
    if on != thread.stepping {
        thread.vcpu.set_single_step(on)?;
        thread.stepping = on;
    }
    Ok(())
}

/// After a single-step that stops nothing: keeps stepping if still needed, else
/// stops, and returns `regs` (the user context to resume) with TF to match.
fn continue_after_step(guest: &Guest, thread: &mut Thread, mut regs: kvm_regs) -> Result<kvm_regs> {
    set_stepping(thread, needs_stepping(guest, thread))?;
    if thread.stepping {
        regs.rflags |= TF;
    } else {
        regs.rflags &= !TF;
    }
    Ok(regs)
}

/// Parks `thread` for gdb showing user registers `regs` (and `orig_rax`, and the
/// signal it stopped with) until gdb resumes it; then arms the single-step gdb
/// asked for. The caller resumes the vCPU. Returns gdb's resume and the FS base
/// the thread had when it parked.
fn park(
    guest: &Guest,
    d: &ptrace::Debugger,
    thread: &mut Thread,
    mut regs: kvm_regs,
    orig_rax: u64,
    siginfo: Option<SigInfo>,
) -> Result<(ptrace::Resume, u64)> {
    regs.rflags &= !TF;
    let (fs_base, gs_base) = thread.vcpu.segment_bases()?;
    let parked = ptrace::Parked {
        regs,
        orig_rax,
        fs_base,
        gs_base,
        xsave: thread.vcpu.xsave()?,
        dirty: false,
        siginfo,
    };
    trace!(
        Category::Kvm,
        "thread {} parks for gdb at {:#x}", thread.tid, regs.rip
    );
    let resume = d.park(thread.tid, parked);
    load_debug_regs(d, thread)?;
    thread.gdb_step = resume.action == ptrace::Action::Step;
    set_stepping(thread, needs_stepping(guest, thread))?;
    Ok((resume, fs_base))
}

/// Parks `thread` (stopped at `point`, with the siginfo `siginfo` gives for its
/// user RIP) for gdb and resumes it with the registers and action gdb left: the
/// vCPU re-enters user code exactly there. Returns the signal gdb asked to
/// deliver, if any.
fn debug_park(
    guest: &Guest,
    thread: &mut Thread,
    point: Point,
    siginfo: impl FnOnce(u64) -> Option<SigInfo>,
) -> Result<Option<SigInfo>> {
    let Some(d) = &guest.debugger else {
        return Ok(None);
    };
    let mut regs = signals::user_context(thread, point)?;
    if let Point::Syscall {
        nr, restart: true, ..
    } = point
    {
        // Interrupted by the stop: show (and later resume) the thread at its syscall.
        regs.rip -= 2;
        regs.rax = nr;
    }
    let orig_rax = match point {
        Point::Syscall { nr, .. } => nr,
        _ => u64::MAX,
    };
    let (resume, fs_base) = park(guest, d, thread, regs, orig_rax, siginfo(regs.rip))?;
    let mut regs = resume.regs;
    if thread.stepping {
        regs.rflags |= TF;
    }
    if d.hw_break_at(regs.rip) {
        // Resuming at an `hbreak`: its instruction runs once without firing it.
        regs.rflags |= RF;
    }
    trace!(
        Category::Kvm,
        "thread {} resumes from gdb at {:#x} ({:?}, flags {:#x})",
        thread.tid,
        regs.rip,
        resume.action,
        regs.rflags
    );
    if let Some(xsave) = &resume.xsave {
        thread.vcpu.set_xsave(xsave)?;
        if resume.fs_base != fs_base {
            thread.vcpu.set_fs_base(resume.fs_base)?;
        }
    }
    thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
    Ok(resumed_with(&resume))
}

/// The signal gdb resumed a thread with, as ptrace delivers it: the one the
/// thread stopped with keeps its siginfo (as gdb left it), another one comes
/// from the debugger (SI_USER).
fn resumed_with(resume: &ptrace::Resume) -> Option<SigInfo> {
    let sig = resume.signal?;
    Some(match resume.siginfo {
        Some(info) if signals::signo(&info) == sig => info,
        _ => signals::info(sig, signals::SI_USER),
    })
}

fn catches_syscall(guest: &Guest, nr: u64) -> bool {
    guest
        .debugger
        .as_ref()
        .is_some_and(|d| d.catches_syscall(nr))
}

/// `catch syscall` at entry: the thread stops as Linux shows a syscall-entry stop
/// (after the `syscall` instruction, RAX = -ENOSYS, orig_rax = the number) before km
/// serves it. Register changes gdb makes there do not change the syscall.
pub fn catch_syscall_entry(guest: &Guest, thread: &mut Thread, nr: u64) -> Result<()> {
    let Some(d) = guest.debugger.as_ref().filter(|d| d.catches_syscall(nr)) else {
        return Ok(());
    };
    let event = Event::SyscallEntry(thread.tid, nr);
    d.report(event);
    let point = Point::Syscall {
        nr,
        result: (-(libc::ENOSYS as i64)) as u64,
        restart: false,
    };
    let regs = signals::user_context(thread, point)?;
    // A step from here runs the syscall and stops after it, as on Linux.
    let siginfo = trap_info(event, regs.rip);
    let (resume, _) = park(guest, d, thread, regs, nr, siginfo)?;
    inject(thread, resumed_with(&resume));
    Ok(())
}

/// A signal gdb asked to deliver when it resumed a thread parked at a stop: it is
/// delivered next, without another stop (as with ptrace's PTRACE_CONT).
fn inject(thread: &mut Thread, signal: Option<SigInfo>) {
    if signal.is_some() {
        thread.forced_signal = signal;
    }
}

/// Programs `thread`'s vCPU with gdb's debug-register slots (none are taken where
/// debug registers do not fire, as on PVM).
fn load_debug_regs(d: &ptrace::Debugger, thread: &mut Thread) -> Result<()> {
    thread.vcpu.set_debug_regs(d.debug_regs())
}

/// Debug-register slot `slot` fired on `thread`: an `hbreak` (before its
/// instruction) or a watchpoint (after the access) stops for gdb. A slot gdb has
/// freed since, or a hit after gdb went away, is ignored.
fn debug_register_hit(guest: &Guest, thread: &mut Thread, slot: usize) -> Result<()> {
    let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) else {
        return Ok(());
    };
    let event = match d.hw_point(slot) {
        Some(HwPoint::Break(_)) => Event::HwBreakpoint(thread.tid),
        Some(HwPoint::Watch(kind, addr, _)) => Event::Watch(thread.tid, kind, addr),
        None => return Ok(()),
    };
    stop(guest, thread, event, Point::Interrupted)
}
