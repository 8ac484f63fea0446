//! Layer 7, the exit loop of one guest thread: run the vCPU, then hand the exit to
//! the layer it belongs to (a syscall to `syscalls`, an exception to `debug` and then
//! `kernel::signals`, a fatal exit to `crash`), then park for gdb and deliver
//! signals. The only place that ties those layers together.
//!
//! The hot path is one KVM_RUN per guest syscall: the landing pad leaves the request
//! in guest memory, so serving it needs no register ioctl at all.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::crash;
use crate::debug;
use crate::guest::landing_pad::{EXC_PORT, HC_PORT, SIGMASK_PORT, SYS_BASE, SYS_SIZE};
use crate::kernel::answers;
use crate::kernel::backing::{self, PageFault};
use crate::kernel::exec::{self, Replacement};
use crate::kernel::process::{Guest, Thread, exit_payload};
use crate::kernel::signals::{self, Point};
use crate::kvm::{Exit, kick};
use crate::snapshot::{self, Taken};
use crate::stats::{self, Event, Span};
use crate::syscalls::{self, Outcome};
use crate::trace;
use crate::trace::Category;

/// Runs `thread` until it exits; exit_group and fatal signals end the whole process
/// from here. `initial_stop`: park for gdb before the first instruction. An execve
/// that loads its program in place goes on here with the new program's guest
/// and thread; the old guest goes on a thread of its own (`exec::retire`).
pub fn run_thread(mut guest: Arc<Guest>, mut thread: Thread, mut initial_stop: bool) {
    while let Some(next) = run_program(&guest, thread, initial_stop) {
        let (new_guest, new_thread) = *next;
        exec::retire(std::mem::replace(&mut guest, new_guest));
        thread = new_thread;
        initial_stop = false;
    }
}

/// Runs `thread` of `guest` until it exits (`None`), or until it execs a program
/// in place (the new program's guest and thread).
fn run_program(guest: &Arc<Guest>, mut thread: Thread, initial_stop: bool) -> Option<Replacement> {
    // Set here rather than by the creator: only this host thread loads the vCPU
    // (a KVM vCPU ioctl from another host thread, on another host CPU, moves it
    // there and back).
    if let Some((fs, gs)) = thread.start_bases.take() {
        or_fail(guest, thread.vcpu.set_segment_bases(fs, gs));
    }
    let kick_slot = thread.vcpu.make_kickable();
    or_fail(guest, debug::thread_started(guest, &mut thread));
    if initial_stop {
        or_fail(guest, debug::initial_stop(guest, &mut thread));
    }
    // A signal that came before the thread could be kicked (a fork child's, sent
    // as soon as fork returned) is delivered before its first instruction.
    or_fail(
        guest,
        deliver_signals(guest, &mut thread, Point::Interrupted),
    );
    or_fail(guest, answers::publish(guest, &thread));
    or_fail(guest, signals::publish_actions(guest).map_err(Into::into));
    let ended = run_until_exit(guest, &mut thread);
    kick::unregister(kick_slot);
    let status = match ended {
        Ended::Exit(status) => status,
        Ended::Exec(next) => return Some(next),
    };
    syscalls::thread_exit_cleanup(guest, &thread);
    // After the wake of a joiner, off its path: the next thread on this vCPU
    // with the same thread pointer then starts without KVM_SET_MSRS. Without
    // them (a failed ioctl) it sets its bases, as any thread does.
    let _ = thread.vcpu.note_segment_bases();
    guest.thread_exited(thread, status);
    None
}

/// Runs a vfork child on its parent's thread, in the child's own host process,
/// until it execs (which does not return) or exits: its process ends then, with
/// no exit handlers, as its memory is its parent's.
pub fn run_vfork_child(guest: &Arc<Guest>, thread: &mut Thread) -> ! {
    match run_until_exit(guest, thread) {
        Ended::Exit(status) => crate::memory::host::exit_now(status & 0xff),
        Ended::Exec(_) => unreachable!("a vfork child's execve re-executes km"),
    }
}

/// How a thread's run ended.
enum Ended {
    /// The thread exited with this status.
    Exit(i32),
    /// The process exec'd a program in place.
    Exec(Replacement),
}

/// Runs `thread` until it exits or execs in place. exit_group and fatal signals
/// end the whole process from here (a vfork child's exit_group is its only
/// thread's exit).
fn run_until_exit(guest: &Arc<Guest>, thread: &mut Thread) -> Ended {
    loop {
        // Under write watchpoints a single-stepping thread runs its instruction
        // alone, so that a change of the watched bytes is its own write.
        let own_step = debug::watch::begin_own_step(guest, thread);
        or_fail(guest, answers::lend(guest, thread));
        let in_run = stats::start();
        let exit = thread.vcpu.run_to_exit();
        stats::spent(Span::InKvmRun, in_run);
        debug::watch::end_own_step(guest, thread, own_step);
        let exit = or_fail(guest, exit);
        or_fail(guest, answers::take_back(guest, thread));
        stats::count(exit_kind(exit));
        guest.tick_clocks(thread);
        let point = match exit {
            Exit::Io(HC_PORT) => match syscall(guest, thread) {
                Served::Point(point) => point,
                Served::ThreadExit(status) => return Ended::Exit(status),
                Served::Exec(next) => return Ended::Exec(next),
            },
            Exit::Io(EXC_PORT) => or_fail(guest, exception(guest, thread)),
            // The pad's rt_sigprocmask unblocked a pending signal: delivered as
            // the call returns.
            Exit::Io(SIGMASK_PORT) => {
                or_fail(guest, thread.vcpu.leave_answer(&guest.vm.mem));
                Point::Interrupted
            }
            Exit::Io(port) => fail(
                guest,
                anyhow::anyhow!("guest wrote to unknown I/O port {port:#x}"),
            ),
            Exit::Interrupted(ran) => {
                // km sees a syscall the pad was answering in the guest.
                or_fail(guest, thread.vcpu.leave_answer(&guest.vm.mem));
                or_fail(guest, debug::interrupted(guest, thread, ran));
                Point::Interrupted
            }
            // KVM's single-step: inside km's own code keep going; in user code
            // (hardware KVM reports steps and debug-register hits this way) the
            // step is done or the hit stops.
            Exit::Debug { pc, .. } if (SYS_BASE..SYS_BASE + SYS_SIZE).contains(&pc) => continue,
            Exit::Debug { dr6, .. } => {
                or_fail(guest, debug::after_kvm_debug(guest, thread, dr6));
                Point::Interrupted
            }
            Exit::Unbacked => {
                if !or_fail(guest, backing::hide_unbacked(guest)) {
                    crash::die(guest, thread, Point::Interrupted, &backing::bus_error(0));
                }
                Point::Interrupted
            }
            Exit::Fatal(signal) => crash::die(
                guest,
                thread,
                Point::Interrupted,
                &signals::info(signal, signals::SI_KERNEL),
            ),
        };
        // Whatever a kick since this exit asked for is looked at from here on.
        thread.vcpu.forget_kick();
        // A vfork child is another process: its parent's core dump is not its own.
        let point = if guest.dump_requested() && thread.vfork_child.is_none() {
            let at = or_fail(guest, debug::user_point(guest, thread, point));
            guest.report_and_wait(crash::stopped_thread(thread, at));
            or_fail(guest, after_stop(guest, thread, point))
        } else {
            point
        };
        let Some(point) = or_fail(guest, debug::park_if_stopping(guest, thread, point)) else {
            // In an exception stub: parked at its exit, a few instructions on.
            continue;
        };
        or_fail(guest, deliver_signals(guest, thread, point));
    }
}

/// The kind of exit `exit` is, for `--stats`.
fn exit_kind(exit: Exit) -> Event {
    match exit {
        Exit::Io(HC_PORT) => Event::SyscallExit,
        Exit::Io(SIGMASK_PORT) => Event::InterruptedExit,
        Exit::Io(_) => Event::ExceptionExit,
        Exit::Interrupted(_) => Event::InterruptedExit,
        Exit::Debug { .. } => Event::StepExit,
        Exit::Unbacked => Event::UnbackedExit,
        Exit::Fatal(_) => Event::FatalExit,
    }
}

/// After a stop for another thread's snapshot, or a job-control stop: a blocking
/// syscall the stop interrupted (and no signal) is made again, as if nothing had
/// happened.
fn after_stop(guest: &Guest, thread: &mut Thread, point: Point) -> Result<Point> {
    let Point::Syscall {
        nr, restart: true, ..
    } = point
    else {
        return Ok(point);
    };
    if signals::deliverable(guest, thread) {
        return Ok(point);
    }
    make_again(guest, thread, nr)
}

/// Points the thread back at its syscall instruction (syscall `nr` is made again
/// when it next runs): the user context before the call, where signals are
/// delivered.
fn make_again(guest: &Guest, thread: &mut Thread, nr: u64) -> Result<Point> {
    let point = Point::Syscall {
        nr,
        result: nr,
        restart: false,
    };
    let mut regs = signals::user_context(thread, point)?;
    regs.rip -= 2;
    regs.rax = nr;
    thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
    Ok(Point::Interrupted)
}

/// What serving a syscall left the thread with.
enum Served {
    /// Go on from this point (signals are delivered there).
    Point(Point),
    /// The thread exited with this status.
    ThreadExit(i32),
    /// The process exec'd a program in place.
    Exec(Replacement),
}

/// The x86 general-protection and page-fault vectors.
const GP_VECTOR: u64 = 13;
const PAGE_FAULT_VECTOR: u64 = 14;

/// Serves the syscall the landing pad left in the request block.
fn syscall(guest: &Arc<Guest>, thread: &mut Thread) -> Served {
    let req = or_fail(
        guest,
        thread
            .vcpu
            .area
            .request(&guest.vm.mem)
            .context("reading the syscall request"),
    );
    // A signal that came while the thread was on its way here had its kick spent
    // where it could not be delivered (inside the landing pad); Linux would have
    // delivered it before the syscall instruction, so it is delivered now and the
    // call made after the handler. Served first, a blocking call would wait with
    // the signal pending (a SIGTERM from outside to a payload entering read() was
    // lost that way).
    if signals::deliverable(guest, thread) {
        return Served::Point(or_fail(guest, make_again(guest, thread, req.nr)));
    }
    or_fail(guest, debug::catch_syscall_entry(guest, thread, req.nr));
    let mut ctx = syscalls::Ctx { guest, thread };
    let serving = stats::start();
    let outcome = syscalls::dispatch(&mut ctx, &req);
    stats::syscall_served(req.nr, serving);
    let value = match outcome {
        Outcome::Return(value) => value,
        // A vfork child borrows its parent's memory and vCPU: nothing of it is its own
        // to capture.
        Outcome::Snapshot(_) if thread.vfork_child.is_some() => (-(libc::ENOTSUP as i64)) as u64,
        Outcome::Snapshot(request) => {
            match snapshot::take(guest, Some(thread), &request, &guest.config.snapshot_path) {
                Ok(Taken::Live) => 0,
                Ok(Taken::End) => exit_payload(guest, 0),
                Err(e) => (-(e.raw_os_error() as i64)) as u64,
            }
        }
        // The handler already set the user context (rt_sigreturn).
        Outcome::Resumed => return Served::Point(Point::Interrupted),
        Outcome::ThreadExit(status) => return Served::ThreadExit(status),
        Outcome::Exec(next) => return Served::Exec(next),
        Outcome::Exit(status) if thread.vfork_child.is_some() => {
            return Served::ThreadExit(status);
        }
        Outcome::Exit(status) => exit_payload(guest, status),
        Outcome::Kill(signal) => crash::die(
            guest,
            thread,
            Point::Syscall {
                nr: req.nr,
                result: 0,
                restart: false,
            },
            &signals::info(signal, signals::SI_KERNEL),
        ),
    };
    or_fail(
        guest,
        thread
            .vcpu
            .area
            .set_result(&guest.vm.mem, value)
            .map_err(Into::into),
    );
    let point = Point::Syscall {
        nr: req.nr,
        result: value,
        restart: value == (-(libc::EINTR as i64)) as u64,
    };
    Served::Point(or_fail(
        guest,
        debug::syscall_returned(guest, thread, point),
    ))
}

/// A CPU exception reported by the stubs: a debug event when gdb is attached
/// (breakpoint, single-step, watched page), else the signal Linux would raise.
fn exception(guest: &Guest, thread: &mut Thread) -> Result<Point> {
    let frame = thread.vcpu.area.exception(&guest.vm.mem)?;
    // The pad's rt_sigprocmask faulted on the payload's pointers: the exit path
    // makes the call again, and km answers it (EFAULT).
    if thread.vcpu.area.in_pad(frame.rip) && matches!(frame.vector, GP_VECTOR | PAGE_FAULT_VECTOR) {
        let user = signals::user_context(thread, Point::Exception(frame))?;
        if let Some(regs) = thread.vcpu.area.leave_answer(&user) {
            thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
            return Ok(Point::Interrupted);
        }
    }
    let cr2 = thread.vcpu.cr2().unwrap_or(0);
    trace!(
        Category::Kvm,
        "thread {}: exception {} error {:#x} at rip {:#x} rsp {:#x} cr2 {cr2:#x}",
        thread.tid,
        frame.vector,
        frame.error_code,
        frame.rip,
        frame.rsp
    );
    let info = match frame.vector {
        // A page hidden to learn where the payload touched a page past EOF.
        PAGE_FAULT_VECTOR => match backing::page_fault(guest, cr2)? {
            PageFault::NotHidden => signals::for_exception(guest, &frame, cr2),
            PageFault::Retry => {
                let regs = signals::user_context(thread, Point::Exception(frame))?;
                thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
                return Ok(Point::Interrupted);
            }
            PageFault::Bus(info) => info,
        },
        _ => signals::for_exception(guest, &frame, cr2),
    };
    let (point, info) = match debug::exception(guest, thread, frame, cr2, &info)? {
        debug::Exception::Handled => return Ok(Point::Interrupted),
        debug::Exception::Passed { info, at } => (at, info),
        debug::Exception::Payload => (Point::Exception(frame), info),
    };
    if let Some(fatal) = signals::raise_fault(guest, thread, info) {
        // After gdb passed the signal the vCPU sits in the stub's exit; the report
        // and core show the faulting user context either way.
        crash::die(guest, thread, Point::Exception(frame), &fatal);
    }
    Ok(point)
}

/// Delivers the thread's pending signals at `point`, each seen by gdb first; a
/// fatal one ends the process. A wait's temporary mask ends here unless a
/// handler's frame saved the thread's own.
fn deliver_signals(guest: &Guest, thread: &mut Thread, point: Point) -> Result<()> {
    if !deliver_pending(guest, thread, point)? {
        signals::restore_saved_mask(thread);
    }
    Ok(())
}

/// Delivers pending signals; true when a handler was entered. As on Linux, more
/// signals pending then nest their frames on the handler's (the last one's handler
/// runs first), except from an exception stub or while gdb steps (one frame, the
/// rest at the next exit).
fn deliver_pending(guest: &Guest, thread: &mut Thread, mut point: Point) -> Result<bool> {
    let mut entered = false;
    loop {
        if !signals::ready(guest, thread, point)? {
            return Ok(entered);
        }
        let info = match thread.forced_signal.take() {
            Some(info) => info,
            None => {
                let Some(info) = signals::take(guest, thread, !thread.sigmask) else {
                    return Ok(entered);
                };
                let (delivered, now) = debug::signal_stop(guest, thread, info, point)?;
                point = now;
                match delivered {
                    Some(info) => info,
                    None => continue,
                }
            }
        };
        match signals::deliver(guest, thread, &info, point)? {
            // Linux restarts a call that a stop or an ignored signal (SIGCONT
            // after a stop) interrupted, unless a handler then runs there.
            signals::Delivery::Ignored | signals::Delivery::Stopped => {
                point = after_stop(guest, thread, point)?
            }
            signals::Delivery::Handler => {
                debug::handler_entered(guest, thread)?;
                if matches!(point, Point::Exception(_)) || thread.gdb_step {
                    return Ok(true);
                }
                entered = true;
                point = Point::Interrupted;
            }
            signals::Delivery::Fatal(fatal) => crash::die(guest, thread, point, &fatal),
        }
    }
}

/// The value of `r`, or the end of km on a monitor failure (see [`fail`]).
fn or_fail<T>(guest: &Guest, r: Result<T>) -> T {
    r.unwrap_or_else(|e| fail(guest, e))
}

/// A monitor failure while running the payload: report it and exit with km's status.
fn fail(guest: &Guest, e: anyhow::Error) -> ! {
    crate::eprintln_whole!("km: {}: {e:#}", guest.config.name);
    std::process::exit(crate::KM_ERROR_STATUS as i32)
}
