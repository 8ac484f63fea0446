//! Threads: clone as a new vCPU on its own host thread, futexes on the host, and the
//! per-thread bookkeeping (tids, clear_child_tid, robust lists, affinity).

use std::ffi::CString;
use std::sync::Arc;
use std::sync::mpsc;

use kvm_bindings::kvm_regs;
use rustix::io::Errno;

use super::{Ctx, Outcome, SysResult, process};
use crate::guest::landing_pad::ROBUST_LIST_HEAD_SIZE;
use crate::guest::vcpu::Vcpu;
use crate::kernel::process::{Assignment, Guest, Spare, Thread};
use crate::memory::host::{self, FutexArg4};
use crate::stats::{self, Event};
use crate::trace;
use crate::trace::Category;

/// The flags every thread-creating clone carries (glibc, musl and Go all set them).
const THREAD_FLAGS: u64 = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
/// What a new process (clone without CLONE_THREAD) cannot have under km: a file
/// table shared with its parent, a pidfd, tracing, new namespaces.
const UNSUPPORTED_PROCESS_FLAGS: u64 = (libc::CLONE_FILES
    | libc::CLONE_PIDFD
    | libc::CLONE_PTRACE
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
const FUTEX_CMD_MASK: i32 = !(libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME);
/// Largest affinity mask km passes through, in bytes (8192 CPUs).
const AFFINITY_MAX: u64 = 1024;

pub fn gettid(ctx: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    // A vfork child runs on its parent's thread but is a process of its own.
    if ctx.thread.vfork_child.is_some() {
        return Ok(rustix::process::getpid().as_raw_nonzero().get() as u64);
    }
    Ok(ctx.thread.tid as u64)
}

/// membarrier: every guest thread is a km thread, so the host's barrier over km's
/// threads is the guest's.
pub fn membarrier(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    host::int_syscall(libc::SYS_membarrier, [a[0], a[1], a[2], 0])
}

pub fn set_tid_address(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ctx.thread.clear_child_tid = a[0];
    Ok(ctx.thread.tid as u64)
}

pub fn set_robust_list(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[1] != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::INVAL);
    }
    ctx.thread.robust_list = (a[0], a[1]);
    Ok(0)
}

pub fn get_robust_list(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[0] != 0 && a[0] as i32 != ctx.thread.tid {
        return Err(Errno::PERM);
    }
    // The length is always the head's size, as Linux reports it (also before
    // any set_robust_list).
    let (head, _) = ctx.thread.robust_list;
    ctx.write_obj(a[1], head)?;
    ctx.write_obj(a[2], ROBUST_LIST_HEAD_SIZE)?;
    Ok(0)
}

/// clone(flags, stack, parent_tid, child_tid, tls): a thread, or without
/// CLONE_THREAD a new process (see `process::new_process`).
pub fn clone(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    let (flags, stack, ptid, ctid, tls) = (a[0], a[1], a[2], a[3], a[4]);
    let spec = ChildSpec::of_caller(ctx, flags, stack, ptid, ctid, tls)?;
    if flags & libc::CLONE_THREAD as u64 == 0 {
        if flags & UNSUPPORTED_PROCESS_FLAGS != 0 {
            // A child sharing km's fd table or in new namespaces is beyond a fork.
            return Err(Errno::INVAL);
        }
        let vfork = flags & libc::CLONE_VFORK as u64 != 0;
        if vfork && flags & libc::CLONE_VM as u64 != 0 {
            return process::vfork_process(ctx, spec).map(Outcome::Return);
        }
        return process::new_process(ctx, spec, vfork).map(Outcome::Return);
    }
    if flags & THREAD_FLAGS != THREAD_FLAGS {
        return Err(Errno::INVAL);
    }
    // A vfork child's threads would be its parent's in km's bookkeeping but die
    // with the child's process: it gets none (EAGAIN, as under a thread limit).
    if ctx.thread.vfork_child.is_some() {
        return Err(Errno::AGAIN);
    }
    let tid = spawn(ctx.guest, spec)?;
    trace!(
        Category::Kvm,
        "thread {} cloned thread {tid}", ctx.thread.tid
    );
    Ok(Outcome::Return(tid as u64))
}

/// clone3(args, size) for threads: `struct clone_args` gives the same facts as
/// clone's registers (the stack as base and size; set_tid and cgroup are not
/// used). Its size is checked as Linux does: at least the first version, at most a
/// page, and any part past the fields Linux knows must be zero (E2BIG).
pub fn clone3(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    let [
        flags,
        _pidfd,
        child_tid,
        parent_tid,
        _exit_signal,
        stack,
        stack_size,
        tls,
        ..,
    ] = clone3_args(ctx, a[0], a[1])?;
    let top = if stack != 0 {
        stack.checked_add(stack_size).ok_or(Errno::INVAL)?
    } else {
        0
    };
    clone(ctx, &[flags, top, parent_tid, child_tid, tls, 0])
}

/// Sizes of `struct clone_args`: its first version and the one km knows (with
/// set_tid and cgroup).
const CLONE_ARGS_SIZE_VER0: u64 = 64;
const CLONE_ARGS_SIZE_VER2: u64 = 88;
const CLONE_ARGS_SIZE_MAX: u64 = 4096;
const MAX_PID_NS_LEVEL: u64 = 32;
const CSIGNAL: u64 = 0xff;
/// The highest signal number.
const NSIG: u64 = 64;
const CLONE_CLEAR_SIGHAND: u64 = 1 << 32;
const CLONE_INTO_CGROUP: u64 = 1 << 33;

/// clone3's `struct clone_args` at `addr`, `size` bytes long, refused as Linux
/// refuses it: a size out of range or unknown trailing bytes that are not zero
/// (E2BIG), unknown flags, a bad exit signal, set_tid, stack or flag combination
/// (EINVAL).
fn clone3_args(ctx: &Ctx<'_>, addr: u64, size: u64) -> Result<[u64; 11], Errno> {
    if size > CLONE_ARGS_SIZE_MAX {
        return Err(Errno::TOOBIG);
    }
    if size < CLONE_ARGS_SIZE_VER0 {
        return Err(Errno::INVAL);
    }
    let mut raw = [0u8; CLONE_ARGS_SIZE_VER2 as usize];
    let known = size.min(CLONE_ARGS_SIZE_VER2) as usize;
    raw[..known].copy_from_slice(&ctx.read_bytes(addr, known)?);
    if size > CLONE_ARGS_SIZE_VER2 {
        let rest = addr.checked_add(CLONE_ARGS_SIZE_VER2).ok_or(Errno::FAULT)?;
        let trailing = ctx.read_bytes(rest, (size - CLONE_ARGS_SIZE_VER2) as usize)?;
        if trailing.iter().any(|&b| b != 0) {
            return Err(Errno::TOOBIG);
        }
    }
    let mut args = [0u64; 11];
    for (arg, bytes) in args.iter_mut().zip(raw.chunks_exact(8)) {
        *arg = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    }
    let [
        flags,
        _,
        _,
        _,
        exit_signal,
        stack,
        stack_size,
        _,
        set_tid,
        set_tid_size,
        cgroup,
    ] = args;
    let has = |f: u64| flags & f != 0;
    let known_flags = 0xffff_ffff | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP;
    let sighand = libc::CLONE_SIGHAND as u64;
    let refused = set_tid_size > MAX_PID_NS_LEVEL
        || (set_tid == 0) != (set_tid_size == 0)
        || exit_signal > NSIG
        || (has(CLONE_INTO_CGROUP) && (cgroup > i32::MAX as u64 || size < CLONE_ARGS_SIZE_VER2))
        || flags & !known_flags != 0
        || has(libc::CLONE_DETACHED as u64 | CSIGNAL)
        || flags & (sighand | CLONE_CLEAR_SIGHAND) == sighand | CLONE_CLEAR_SIGHAND
        || (has((libc::CLONE_THREAD | libc::CLONE_PARENT) as u64) && exit_signal != 0)
        || (stack == 0) != (stack_size == 0);
    if refused {
        return Err(Errno::INVAL);
    }
    Ok(args)
}

/// The first user context and clone bookkeeping of a new thread or process.
pub struct ChildSpec {
    pub regs: kvm_regs,
    pub fs_base: u64,
    /// The creator's, as Linux gives a new thread or process.
    pub gs_base: u64,
    pub set_ptid: Option<u64>,
    pub set_ctid: Option<u64>,
    pub clear_ctid: u64,
    pub sigmask: u64,
}

impl ChildSpec {
    /// The child of clone(`flags`, `stack`, `ptid`, `ctid`, `tls`) made by the caller:
    /// it resumes where the caller's syscall returns (RCX, flags in R11), on `stack`
    /// if given, with every other register as the caller left it and RAX = 0.
    pub fn of_caller(
        ctx: &Ctx<'_>,
        flags: u64,
        stack: u64,
        ptid: u64,
        ctid: u64,
        tls: u64,
    ) -> Result<ChildSpec, Errno> {
        let parent = ctx.thread.vcpu.regs().map_err(|_| Errno::AGAIN)?;
        let has = |f: i32| flags & f as u64 != 0;
        let vcpu = &ctx.thread.vcpu;
        // With CLONE_SETTLS and a GS base km knows, no KVM_GET_SREGS (7-9 us on
        // PVM) for the caller's bases.
        let (fs_base, gs_base) = match vcpu.known_gs_base() {
            Some(gs) if has(libc::CLONE_SETTLS) => (tls, gs),
            _ => {
                let (fs, gs) = vcpu.segment_bases().map_err(|_| Errno::AGAIN)?;
                (if has(libc::CLONE_SETTLS) { tls } else { fs }, gs)
            }
        };
        Ok(ChildSpec {
            regs: process::child_regs(&parent, stack),
            fs_base,
            gs_base,
            set_ptid: has(libc::CLONE_PARENT_SETTID).then_some(ptid),
            set_ctid: has(libc::CLONE_CHILD_SETTID).then_some(ctid),
            clear_ctid: if has(libc::CLONE_CHILD_CLEARTID) {
                ctid
            } else {
                0
            },
            sigmask: ctx.thread.sigmask,
        })
    }
}

/// Starts a guest thread on a waiting spare, or else on a new host thread;
/// returns its tid once it is set up.
fn spawn(guest: &Arc<Guest>, spec: ChildSpec) -> Result<i32, Errno> {
    // The new thread starts with its creator's name (comm), as on Linux.
    let comm = rustix::thread::name().map_err(|_| Errno::AGAIN)?;
    match guest.take_spare() {
        Some(spare) => {
            stats::count(Event::SpareTaken);
            start_on_spare(guest, &spare, spec, comm)
        }
        None => {
            stats::count(Event::HostThreadStarted);
            start_host_thread(guest, spec, comm)
        }
    }
}

/// Sets the new thread up from its creator's host thread and hands it to
/// `spare`, which is already running: no host thread to create and none to
/// wait for. A failure ends the spare.
fn start_on_spare(
    guest: &Arc<Guest>,
    spare: &Spare,
    spec: ChildSpec,
    comm: CString,
) -> Result<i32, Errno> {
    let started = guest
        .take_vcpu()
        .map_err(|_| Errno::AGAIN)
        .and_then(|vcpu| match set_up(guest, &vcpu, &spec, spare.tid) {
            Ok(()) => Ok(vcpu),
            Err(e) => {
                guest.park_vcpu(vcpu);
                Err(e)
            }
        });
    let vcpu = match started {
        Ok(vcpu) => vcpu,
        Err(e) => {
            spare.assign(Assignment::Quit);
            return Err(e);
        }
    };
    let handle = guest.thread_started(spare.tid);
    let thread = Thread {
        clear_child_tid: spec.clear_ctid,
        start_bases: Some((spec.fs_base, spec.gs_base)),
        ..Thread::new(spare.tid, handle, vcpu, spec.sigmask)
    };
    spare.assign(Assignment::Run(Box::new(thread), comm));
    Ok(spare.tid)
}

/// Gives thread `tid`'s vCPU its first general registers (its FS and GS bases
/// are set on its own host thread: [`Thread::start_bases`]) and writes its tid
/// where clone was asked to.
fn set_up(guest: &Guest, vcpu: &Vcpu, spec: &ChildSpec, tid: i32) -> Result<(), Errno> {
    vcpu.set_regs(&spec.regs).map_err(|_| Errno::AGAIN)?;
    for addr in [spec.set_ptid, spec.set_ctid].into_iter().flatten() {
        guest.write_user(addr, tid)?;
    }
    Ok(())
}

/// Starts a guest thread on a new host thread; returns its tid once it is set up.
fn start_host_thread(guest: &Arc<Guest>, spec: ChildSpec, comm: CString) -> Result<i32, Errno> {
    let vcpu = guest.take_vcpu().map_err(|_| Errno::AGAIN)?;
    let guest = Arc::clone(guest);
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .spawn(move || {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            let ready = rustix::thread::set_name(&comm)
                .map_err(|_| Errno::AGAIN)
                .and_then(|_| set_up(&guest, &vcpu, &spec, tid));
            if let Err(e) = ready {
                guest.park_vcpu(vcpu);
                let _ = tx.send(Err(e));
                return;
            }
            let handle = guest.thread_started(tid);
            let _ = tx.send(Ok(tid));
            let thread = Thread {
                clear_child_tid: spec.clear_ctid,
                start_bases: Some((spec.fs_base, spec.gs_base)),
                ..Thread::new(tid, handle, vcpu, spec.sigmask)
            };
            Arc::clone(&guest).run(thread, false);
            spawn_spare(&guest);
        })
        .map_err(|_| Errno::AGAIN)?;
    rx.recv().map_err(|_| Errno::AGAIN)?
}

/// Starts spare host threads, which wait for the next guest threads, when they
/// are wanted (see [`Guest::spares_to_start`]). Called as a guest thread ends, so
/// spares are created off the next clone's path. A spare has run no guest
/// thread: the tid the next thread takes is new, never one a thread that ended
/// had (Linux does not hand a tid out again soon either, and programs rely on
/// live and recently ended threads having distinct ids).
fn spawn_spare(guest: &Arc<Guest>) {
    for _ in 0..guest.spares_to_start() {
        let spare = Arc::clone(guest);
        // No spare (a thread limit) only means the next clone starts a host thread.
        let started = std::thread::Builder::new().spawn(move || {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            let Some((thread, comm)) = spare.wait_for_thread(tid) else {
                return;
            };
            if rustix::thread::set_name(&comm).is_err() {
                // Cannot happen for a name read from the host; the thread runs under
                // km's name rather than not at all.
                trace!(Category::Kvm, "thread {tid}: could not rename");
            }
            Arc::clone(&spare).run(thread, false);
            spawn_spare(&spare);
        });
        if started.is_err() {
            guest.spare_failed();
        }
    }
}

/// What a thread's exit does before its vCPU is parked: CLONE_CHILD_CLEARTID.
pub fn exit_cleanup(guest: &Guest, thread: &Thread) {
    if thread.clear_child_tid == 0 {
        return;
    }
    if guest.write_user(thread.clear_child_tid, 0i32).is_ok()
        && let Ok(word) = guest.user_slice(thread.clear_child_tid, 4, libc::PROT_WRITE)
    {
        let _ = host::futex(&word, libc::FUTEX_WAKE, 1, FutexArg4::Val2(0), None, 0);
    }
}

pub fn futex(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (uaddr, op, val, arg4, uaddr2, val3) =
        (a[0], a[1] as i32, a[2] as u32, a[3], a[4], a[5] as u32);
    if uaddr % 4 != 0 {
        return Err(Errno::INVAL);
    }
    let word = ctx.readable(uaddr, 4)?;
    let cmd = op & FUTEX_CMD_MASK;
    let waits = matches!(
        cmd,
        libc::FUTEX_WAIT
            | libc::FUTEX_WAIT_BITSET
            | libc::FUTEX_LOCK_PI
            | libc::FUTEX_WAIT_REQUEUE_PI
            | 13 /* LOCK_PI2 */
    );
    let second = matches!(
        cmd,
        libc::FUTEX_REQUEUE
            | libc::FUTEX_CMP_REQUEUE
            | libc::FUTEX_WAKE_OP
            | libc::FUTEX_CMP_REQUEUE_PI
            | libc::FUTEX_WAIT_REQUEUE_PI
    );
    let arg4 = if waits {
        let timeout = if arg4 != 0 {
            let [sec, nsec]: [i64; 2] = ctx.read_obj(arg4)?;
            Some(libc::timespec {
                tv_sec: sec,
                tv_nsec: nsec,
            })
        } else {
            None
        };
        FutexArg4::Timeout(timeout)
    } else {
        FutexArg4::Val2(arg4 as u32)
    };
    let word2 = if second {
        if uaddr2 % 4 != 0 {
            return Err(Errno::INVAL);
        }
        Some(ctx.writable(uaddr2, 4)?)
    } else {
        None
    };
    if let FutexArg4::Timeout(timeout) = arg4
        && matches!(cmd, libc::FUTEX_WAIT | libc::FUTEX_WAIT_BITSET)
    {
        let bitset = if cmd == libc::FUTEX_WAIT {
            libc::FUTEX_BITSET_MATCH_ANY as u32
        } else {
            val3
        };
        return wait(ctx, &word, op, val, timeout, bitset);
    }
    Ok(host::futex(&word, op, val, arg4, word2.as_ref(), val3)? as u64)
}

/// FUTEX_WAIT and FUTEX_WAIT_BITSET, made as a host FUTEX_WAIT_BITSET until an
/// absolute deadline, so that the host waits a kick interrupts without a signal
/// for the thread (it waits on, as on Linux) end when the caller's timeout does. A
/// kick that came before the host wait began is sent again until the thread has
/// looked (`kvm::kick`). Waiting again with the guest's value is what a waiter
/// slow to enter the wait does: a wake that changed the word is never missed.
fn wait(
    ctx: &Ctx<'_>,
    word: &vm_memory::VolatileSlice<'_>,
    op: i32,
    val: u32,
    timeout: Option<libc::timespec>,
    bitset: u32,
) -> SysResult {
    let deadline = match timeout {
        None => None,
        Some(t) if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) => {
            return Err(Errno::INVAL);
        }
        // FUTEX_WAIT's timeout is relative, FUTEX_WAIT_BITSET's absolute.
        Some(t) if op & FUTEX_CMD_MASK == libc::FUTEX_WAIT => {
            let clock = if op & libc::FUTEX_CLOCK_REALTIME != 0 {
                rustix::time::ClockId::Realtime
            } else {
                rustix::time::ClockId::Monotonic
            };
            let now = rustix::time::clock_gettime(clock);
            let ns = (now.tv_sec as i128 + t.tv_sec as i128) * 1_000_000_000
                + now.tv_nsec as i128
                + t.tv_nsec as i128;
            Some(libc::timespec {
                tv_sec: i64::try_from(ns / 1_000_000_000).unwrap_or(i64::MAX),
                tv_nsec: (ns % 1_000_000_000) as i64,
            })
        }
        Some(t) => Some(t),
    };
    let host_op = libc::FUTEX_WAIT_BITSET | (op & !FUTEX_CMD_MASK);
    loop {
        match host::futex(
            word,
            host_op,
            val,
            FutexArg4::Timeout(deadline),
            None,
            bitset,
        ) {
            Err(Errno::INTR) if !ctx.wait_ends() => {}
            r => return r.map(|n| n as u64),
        }
    }
}

/// The host thread behind guest thread `pid` (0 = the caller).
fn host_tid(ctx: &Ctx<'_>, pid: u64) -> Result<i32, Errno> {
    let pid = pid as i32;
    if pid == 0 || pid == ctx.thread.tid {
        Ok(0)
    } else if ctx.guest.thread(pid).is_some() {
        Ok(pid)
    } else {
        Err(Errno::SRCH)
    }
}

pub fn sched_getaffinity(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let tid = host_tid(ctx, a[0])?;
    let mask = host::sched_getaffinity(tid, a[1].min(AFFINITY_MAX) as usize)?;
    ctx.write_bytes(a[2], &mask)?;
    Ok(mask.len() as u64)
}

pub fn sched_setaffinity(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let tid = host_tid(ctx, a[0])?;
    let mask = ctx.read_bytes(a[2], a[1].min(AFFINITY_MAX) as usize)?;
    host::sched_setaffinity(tid, &mask)?;
    Ok(0)
}

pub fn getcpu(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (cpu, node) = host::getcpu()?;
    if a[0] != 0 {
        ctx.write_obj(a[0], cpu)?;
    }
    if a[1] != 0 {
        ctx.write_obj(a[1], node)?;
    }
    Ok(0)
}
