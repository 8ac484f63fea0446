//! New processes and their reaping: fork, vfork and clone without CLONE_THREAD, wait4
//! and waitid, process groups and sessions.
//!
//! A fork is a host fork of km: the child km gets a copy-on-write copy of the guest's
//! memory (and of km's own state), builds a new VM over it and runs the forking
//! thread's user context with RAX = 0 on a fresh vCPU. Guest pids are host pids, so
//! the parent's wait4 and kill go straight to the host, and the child km's exit
//! status (the payload's, or death by the payload's signal) is what the parent sees.
//! A vfork child instead runs in the parent's memory, on the vforking thread's vCPU,
//! in a host process of its own ([`run_child_in_parent_memory`]).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use kvm_bindings::kvm_regs;
use rustix::io::Errno;

use super::thread::ChildSpec;
use super::{Ctx, SysResult};
use crate::guest::vm::Forked;
use crate::kernel::answers;
use crate::kernel::children::{self, Exited, Seen, Select};
use crate::kernel::fdtable::FdTable;
use crate::kernel::lock;
use crate::kernel::process::{ForkedChild, Guest, Handover, Signals, Thread, VforkChild};
use crate::kernel::ptrace::{Debugger, ForkDecision, Marks};
use crate::kvm::kick;
use crate::kvm::vcpu::SavedCpu;
use crate::memory::host;
use crate::trace;
use crate::trace::Category;

/// Size of `struct rusage`.
const RUSAGE_SIZE: usize = 144;
/// Size of `siginfo_t`.
const SIGINFO_SIZE: usize = 128;

/// In a vfork child: the write end of the pipe its parent waits on. It closes when
/// the child execs (it is close-on-exec) or exits, which releases the parent.
static VFORK_RELEASE: Mutex<Option<OwnedFd>> = Mutex::new(None);

pub fn fork(ctx: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    let spec = ChildSpec::of_caller(ctx, 0, 0, 0, 0, 0)?;
    new_process(ctx, spec, false)
}

pub fn vfork(ctx: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    let spec = ChildSpec::of_caller(ctx, 0, 0, 0, 0, 0)?;
    vfork_process(ctx, spec)
}

/// vfork and clone(CLONE_VM|CLONE_VFORK): the child shares the parent's memory
/// until it execs or exits ([`run_child_in_parent_memory`]). Under gdb, whose
/// fork events follow km processes, and in a vfork child (whose thread is taken),
/// the child gets a copy of memory as a fork child does, and the caller waits.
pub fn vfork_process(ctx: &mut Ctx<'_>, spec: ChildSpec) -> SysResult {
    if ctx.guest.debugger.is_some() || ctx.thread.vfork_child.is_some() {
        return new_process(ctx, spec, true);
    }
    run_child_in_parent_memory(ctx, spec)
}

/// The parent thread's kernel state a vfork child may change while it runs on
/// that thread, put back when the parent resumes.
struct ParentState {
    cpu: SavedCpu,
    sigmask: u64,
    saved_mask: Option<u64>,
    altstack: (u64, u64),
    robust_list: (u64, u64),
    clear_child_tid: u64,
}

impl ParentState {
    fn of(thread: &Thread) -> Result<ParentState, Errno> {
        Ok(ParentState {
            cpu: thread.vcpu.save().map_err(|_| Errno::AGAIN)?,
            sigmask: thread.sigmask,
            saved_mask: thread.saved_mask,
            altstack: thread.altstack,
            robust_list: thread.robust_list,
            clear_child_tid: thread.clear_child_tid,
        })
    }

    /// Gives `thread` back to its parent: the child's own state (its descriptor
    /// table holds host descriptors of the child's process) is dropped without
    /// closing anything here.
    fn restore(self, thread: &mut Thread, guest: &Guest) {
        if let Some(child) = thread.vfork_child.take() {
            let VforkChild { fds, .. } = *child;
            fds.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .forget_host_fds();
        }
        // The parent's own answers replace the child's in the pad.
        let restored = thread
            .vcpu
            .restore(&self.cpu)
            .and_then(|()| answers::publish(guest, thread));
        if let Err(e) = restored {
            crate::eprintln_whole!(
                "km: {}: resuming the parent of a vfork: {e:#}",
                guest.config.name
            );
            crate::kernel::process::exit_process(crate::KM_ERROR_STATUS as i32);
        }
        thread.sigmask = self.sigmask;
        thread.saved_mask = self.saved_mask;
        thread.altstack = self.altstack;
        thread.robust_list = self.robust_list;
        thread.clear_child_tid = self.clear_child_tid;
        thread.forced_signal = None;
    }
}

/// Runs the child of a vfork as Linux does: on the calling thread's vCPU, in the
/// parent's memory (what it writes, the parent sees), in a host process of its own
/// that shares km's memory (`host::vfork_sharing_memory`), so its pid is a real one
/// the parent waits for and kills, and its working directory, identity, session
/// and host descriptors are its own; it gets its own copy of the guest descriptor
/// table and signal dispositions. The calling thread waits (its siblings run on)
/// until the child execs (a new km replaces the child's process) or exits (the
/// process ends with its status), then resumes with its own registers and the
/// child's pid.
fn run_child_in_parent_memory(ctx: &mut Ctx<'_>, spec: ChildSpec) -> SysResult {
    let guest = ctx.guest;
    let thread = &mut *ctx.thread;
    let parent = ParentState::of(thread)?;
    // Held until the child has its own copies: the host numbers stay open in
    // this process, so the child's copy of km's descriptors has them.
    let fds = thread.fds(guest).clone();
    let signals = thread.signals(guest).clone();
    // A child that execs reports its exit to this km as a fork child does, on
    // its copy of this pipe, which its execve passes on (not under gdb, whose
    // vforks take `new_process`, nor in a vfork child: see `vfork_process`).
    let report = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let report_tx = report.1.as_raw_fd();
    let mut failed = None;
    let forked = host::vfork_sharing_memory(&mut || {
        // In the child's process, with the parent thread suspended.
        match start_vfork_child(guest, thread, &spec, &fds, &signals, Some(report_tx)) {
            Ok(()) => crate::kernel::process::run_vfork_child(guest, thread),
            Err(e) => {
                failed = Some(e);
                crate::KM_ERROR_STATUS as i32
            }
        }
    });
    parent.restore(thread, guest);
    drop(fds);
    let (report_rx, report_tx) = report;
    drop(report_tx);
    let pid = forked?;
    if let Some(e) = failed {
        reap(pid);
        return Err(e);
    }
    // The child has exec'd or exited: a child that exited without an exec gave
    // no report and closed its end (the host's wait sees it).
    children::adopt(pid, report_rx);
    if let Some(ptid) = spec.set_ptid {
        guest.write_user(ptid, pid)?;
    }
    trace!(Category::Kvm, "thread {} vforked process {pid}", thread.tid);
    Ok(pid as u64)
}

/// In a vfork child's process: gives the thread the child's own descriptor table
/// (on its copies of the host descriptors) and dispositions, and its user context.
fn start_vfork_child(
    guest: &Guest,
    thread: &mut Thread,
    spec: &ChildSpec,
    fds: &FdTable,
    signals: &Signals,
    report: Option<std::os::fd::RawFd>,
) -> Result<(), Errno> {
    thread.vfork_child = Some(Box::new(VforkChild {
        fds: Mutex::new(fds.vfork_copy()),
        signals: Mutex::new(signals.clone()),
        pending: Default::default(),
        report,
    }));
    thread
        .vcpu
        .enter_user(&guest.vm.mem, &spec.regs)
        .and_then(|()| thread.vcpu.set_segment_bases(spec.fs_base, spec.gs_base))
        .and_then(|()| answers::publish(guest, thread))
        .map_err(|_| Errno::AGAIN)?;
    if let Some(ctid) = spec.set_ctid {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        guest.write_user(ctid, pid)?;
    }
    Ok(())
}

/// Forks the payload: the child continues in `spec`'s context in a new km process;
/// returns the child's pid to the parent. A CLONE_VM child without CLONE_VFORK
/// gets a copy of memory too; with `vfork` (under gdb, see [`vfork_process`]) the
/// parent waits, as Linux's vfork does, until the child execs or exits.
/// The parent returns only once the child km is set up and about to run the
/// payload; a child that could not be set up is reaped and its errno returned, as
/// Linux's fork fails.
pub fn new_process(ctx: &mut Ctx<'_>, spec: ChildSpec, vfork: bool) -> SysResult {
    let guest = ctx.guest;
    let release = if vfork {
        Some(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
    } else {
        None
    };
    let (report_rx, report_tx) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    // Under gdb the child waits for gdb's decision (run free, take the session
    // over, or be served through the parent's stub) on a socket pair of its own,
    // with a copy of gdb's connection.
    let debugger = guest.debugger.as_ref().filter(|d| d.session().is_some());
    // The child reports its exit to this km (`kernel::children`), but not under gdb
    // nor to a vfork child (whose table, in its parent's memory, is the parent's).
    let reports = debugger.is_none() && ctx.thread.vfork_child.is_none();
    let decision = match debugger {
        Some(_) => Some(rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?),
        None => None,
    };
    let xsave = ctx.thread.vcpu.xsave().map_err(|_| Errno::AGAIN)?;
    let mut marks = guest.debugger.as_ref().map(|d| d.marks());
    let fds = ctx.thread.fds(guest).clone();
    let signals = ctx.thread.signals(guest).clone();
    let unimpl_seen = lock(&guest.unimpl_seen).clone();
    // Every lock the child goes on to take is held across the host fork
    // (`host::fork`): one another thread held at that moment would stay locked
    // in the child for ever. The debugger's state first (gdb's thread takes
    // the others under it), then the process's descriptor table, as code that
    // holds it may then take the address space's lock, never the reverse.
    // An earlier program's guest, which an execve replaced in place, is gone
    // first: the child would keep its memory (see `exec::retire`).
    crate::kernel::exec::settle_retired();
    let debugging = guest.debugger.as_ref().map(|d| d.hold_for_fork());
    let mut table = lock(&guest.fds);
    // Pages hidden to find a fault past EOF are hidden and shown with this
    // held, and the address space's lock taken under it.
    let hidden = crate::kernel::backing::hold_for_fork();
    // The address space stays still (no other thread maps or unmaps) across the fork.
    let mm = lock(&guest.mm);
    // Nor does the background populate restored pages (the child would not).
    mm.settle();
    // Locks held while no other is taken (after `settle`, which waits for a
    // thread that may trace).
    let kids = children::hold_for_fork();
    let limits = crate::guest::limits::hold_for_fork();
    let sink = crate::trace::hold_for_fork();
    let signalfds = crate::kernel::signalfd::hold_for_fork();
    let stderr = std::io::stderr().lock();
    let forked = guest.vm.fork();
    drop((stderr, signalfds, sink, limits, hidden, debugging));
    let vm = match forked {
        Ok(Forked::Parent(pid)) => {
            drop(kids);
            drop(mm);
            drop(table);
            drop(report_tx);
            child_ready(pid, &report_rx)?;
            if reports {
                children::adopt(pid, report_rx);
            }
            let release = release.map(|(wait, done)| {
                drop(done);
                wait
            });
            match (debugger, decision) {
                (Some(d), Some((child_end, tell))) => {
                    drop(child_end);
                    d.add_fork_child(pid, tell);
                    // gdb sees the fork before a vfork parent waits for its child.
                    ctx.thread.forked = Some(ForkedChild {
                        pid,
                        vfork_release: release,
                    });
                }
                _ => {
                    if let Some(wait) = release {
                        wait_for_vfork_child(&wait);
                    }
                }
            }
            if let Some(ptid) = spec.set_ptid {
                guest.write_user(ptid, pid)?;
            }
            trace!(
                Category::Kvm,
                "thread {} forked process {pid}", ctx.thread.tid
            );
            return Ok(pid as u64);
        }
        Err(e) => {
            drop((kids, mm, table));
            trace!(Category::Kvm, "fork failed: {e:#}");
            return Err(fork_errno(&e));
        }
        Ok(Forked::Child(vm)) => vm,
    };
    // The child km: only this thread exists; everything is rebuilt from the copies.
    drop(report_rx);
    kids.in_child();
    let vm = *vm.unwrap_or_else(|e| child_failed(&report_tx, &e));
    let gdb = match (debugger, decision) {
        (Some(d), Some((listen, tell))) => {
            drop(tell);
            Some((listen, session_copy(d)))
        }
        _ => None,
    };
    crate::kernel::private_fds::close_in_fork_child();
    if let Some(d) = &guest.debugger {
        d.close_fork_children();
    }
    *lock(&VFORK_RELEASE) = release.map(|(_, done)| done);
    // The parent's descriptor table, copied into this process, must not hold the
    // child's descriptors open (a pipe's write end the child closes must close),
    // nor may copies of the parent's other threads' calls.
    table.close_range(0..=i32::MAX, false);
    drop(table);
    let mut fds = fds;
    if let Err(e) = fds.own_in_fork_child() {
        child_failed(&report_tx, &anyhow::Error::from(e));
    }
    let child_debugger = gdb.as_ref().map(|_| Arc::new(Debugger::detached()));
    let child = Arc::new(guest.forked(vm, mm.clone(), (fds, signals, unimpl_seen), child_debugger));
    drop(mm);
    // gdb takes a vfork child's memory for its parent's, breakpoints included:
    // they stay until gdb's decision (see `follow_by_gdb`).
    let gdb = gdb.map(|(decision, conn)| GdbChild {
        decision,
        conn,
        kept: if vfork { marks.take() } else { None },
    });
    if let Some(marks) = marks {
        clear_marks(&child, marks);
    }
    let altstack = ctx.thread.altstack;
    let sigmask = ctx.thread.sigmask;
    let report = Report {
        pipe: report_tx,
        exit_too: reports,
    };
    run_child(child, spec, &xsave, sigmask, altstack, report, gdb)
}

/// A fork child's pipe to its parent km: its set-up result, and its exit report
/// too when `exit_too`.
struct Report {
    pipe: OwnedFd,
    exit_too: bool,
}

/// A fork child under gdb before gdb's decision: the channel it comes on, a
/// copy of gdb's connection, and the breakpoints a vfork child keeps meanwhile.
struct GdbChild {
    decision: OwnedFd,
    conn: Option<OwnedFd>,
    kept: Option<Marks>,
}

/// Takes gdb's `marks` out of a fork child gdb does not debug.
fn clear_marks(child: &Guest, marks: Marks) {
    if let Err(e) = erase_marks(child, marks) {
        crate::eprintln_whole!(
            "km: {}: clearing gdb's breakpoints in the forked child: {e:#}",
            child.config.name
        );
    }
}

/// In a fork child under gdb: a copy of gdb's connection, taken before the
/// child closes the stub's sockets (`None` if it cannot be copied: the child
/// then cannot be followed and runs free).
fn session_copy(d: &Debugger) -> Option<OwnedFd> {
    // The parent's connection stays open in this copy of its descriptor table
    // until close_in_fork_child, which runs after this.
    host::dup_cloexec(d.session()?.0).ok()
}

/// A vfork parent waits until its child has exec'd or exited: `wait` reaches end
/// of file then (a kick's EINTR waits on).
pub fn wait_for_vfork_child(wait: &OwnedFd) {
    let mut byte = [0u8; 1];
    while matches!(rustix::io::read(wait, &mut byte), Err(Errno::INTR)) {}
}

/// The errno Linux's fork gives for a failure of km's: ENOMEM when memory ran
/// out, EAGAIN otherwise (a process or thread limit, most often).
fn fork_errno(e: &anyhow::Error) -> Errno {
    let nomem = e.chain().any(|cause| {
        cause.downcast_ref::<Errno>() == Some(&Errno::NOMEM)
            || cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.raw_os_error() == Some(libc::ENOMEM))
            || cause
                .downcast_ref::<kvm_ioctls::Error>()
                .is_some_and(|e| e.errno() == libc::ENOMEM)
    });
    if nomem { Errno::NOMEM } else { Errno::AGAIN }
}

/// In the parent: waits for the forked child `pid` to report its set-up (an errno,
/// 0 for ready). A child that failed, or died before reporting, is reaped and its
/// errno (EAGAIN if it gave none) returned.
fn child_ready(pid: i32, report: &OwnedFd) -> Result<(), Errno> {
    let mut word = [0u8; 4];
    let got = loop {
        match rustix::io::read(report, &mut word) {
            Err(Errno::INTR) => {}
            r => break r,
        }
    };
    let errno = match got {
        Ok(4) => i32::from_ne_bytes(word),
        _ => libc::EAGAIN,
    };
    if errno == 0 {
        return Ok(());
    }
    reap(pid);
    Err(Errno::from_raw_os_error(errno))
}

/// Waits for child `pid`, which has ended or is about to, and reaps it.
fn reap(pid: i32) {
    let child = rustix::process::Pid::from_raw(pid);
    while matches!(
        rustix::process::waitpid(child, rustix::process::WaitOptions::empty()),
        Err(Errno::INTR)
    ) {}
}

/// In the child: tells the parent its set-up result (a 4-byte write to a pipe is
/// atomic).
fn report_to_parent(report: &OwnedFd, errno: i32) {
    let _ = rustix::io::write(report, &errno.to_ne_bytes());
}

/// In a child whose set-up failed: reports why to the parent, whose fork then
/// fails with that errno, and exits.
fn child_failed(report: &OwnedFd, e: &anyhow::Error) -> ! {
    trace!(Category::Kvm, "forked child not started: {e:#}");
    report_to_parent(report, fork_errno(e).raw_os_error());
    std::process::exit(crate::KM_ERROR_STATUS as i32)
}

/// Takes gdb's `marks` out of a fork child (which gdb does not follow, as with
/// gdbserver's detach-on-fork): original bytes back under breakpoints, hidden pages
/// shown again.
fn erase_marks(child: &Guest, marks: Marks) -> anyhow::Result<()> {
    for (addr, byte) in marks.breakpoints {
        child.vm.mem.write_bytes(addr, &[byte])?;
    }
    for page in marks.hidden {
        child.show_page(page)?;
    }
    Ok(())
}

/// Runs the forked child's only thread once it is set up, which it reports to the
/// parent over `report`; never returns.
fn run_child(
    guest: Arc<Guest>,
    spec: ChildSpec,
    xsave: &[u8],
    sigmask: u64,
    altstack: (u64, u64),
    report: Report,
    gdb: Option<GdbChild>,
) -> ! {
    let tid = rustix::process::getpid().as_raw_nonzero().get();
    let started = guest.take_vcpu().and_then(|vcpu| {
        // The new VM's TSC differs from the parent's: the clocks start afresh.
        guest.start_clocks(&vcpu)?;
        vcpu.set_regs(&spec.regs)?;
        vcpu.set_segment_bases(spec.fs_base, spec.gs_base)?;
        vcpu.set_xsave(xsave)?;
        Ok(vcpu)
    });
    let vcpu = started.unwrap_or_else(|e| child_failed(&report.pipe, &e));
    report_to_parent(&report.pipe, 0);
    if report.exit_too {
        children::report_to(report.pipe);
    }
    let followed = gdb.is_some_and(|child| follow_by_gdb(&guest, child));
    for addr in [spec.set_ptid, spec.set_ctid].into_iter().flatten() {
        let _ = guest.write_user(addr, tid);
    }
    let handle = guest.thread_started(tid);
    let thread = Thread {
        clear_child_tid: spec.clear_ctid,
        altstack,
        ..Thread::new(tid, handle, vcpu, sigmask)
    };
    guest.run(thread, followed);
    // The child's first thread exited while others run; the last one ends km.
    loop {
        std::thread::park();
    }
}

/// In a fork child under gdb: waits for gdb's decision and, if gdb follows the
/// child, serves it on `conn`, or if gdb keeps both processes, answers the
/// parent's stub on the `decision` channel; true then (the child stops before
/// it runs on). A vfork child gdb debugs keeps its parent's breakpoints, one
/// that runs free loses them.
fn follow_by_gdb(guest: &Arc<Guest>, child: GdbChild) -> bool {
    let GdbChild {
        decision,
        conn,
        mut kept,
    } = child;
    let session = match (ForkDecision::read(&decision), conn) {
        (ForkDecision::TakeOver { launched }, Some(conn)) => Some((conn, launched, false)),
        (ForkDecision::Relay { launched }, _) => Some((decision, launched, true)),
        _ => None,
    };
    let followed = match (session, &guest.debugger) {
        (Some((conn, launched, relay)), Some(d)) => {
            if let Some(marks) = kept.take() {
                d.adopt_breakpoints(marks.breakpoints);
                let hidden = Marks {
                    breakpoints: Vec::new(),
                    hidden: marks.hidden,
                };
                clear_marks(guest, hidden);
            }
            d.attach();
            d.request_stop();
            let handover = Handover {
                launched,
                running: false,
                relay,
            };
            match crate::kernel::process::take_over_session(guest, conn, handover) {
                Ok(()) => true,
                Err(e) => {
                    crate::eprintln_whole!(
                        "km: {}: gdb stub in the fork child: {e:#}",
                        guest.config.name
                    );
                    let adopted = Marks {
                        breakpoints: d.breakpoints(),
                        hidden: Default::default(),
                    };
                    clear_marks(guest, adopted);
                    d.detach();
                    false
                }
            }
        }
        _ => false,
    };
    if let Some(marks) = kept {
        clear_marks(guest, marks);
    }
    followed
}

/// The child's user context: where the parent's syscall returns, with RAX = 0 and
/// without the parent's single-step (TF), which a child never inherits on Linux.
pub fn child_regs(parent: &kvm_regs, stack: u64) -> kvm_regs {
    kvm_regs {
        rip: parent.rcx,
        rflags: parent.r11 & !crate::kvm::TF,
        rsp: if stack != 0 { stack } else { parent.rsp },
        rax: 0,
        ..*parent
    }
}

pub fn wait4(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (pid, status_addr, options, rusage_addr) = (a[0] as i32, a[1], a[2] as i32, a[3]);
    let known = libc::WNOHANG
        | libc::WUNTRACED
        | libc::WCONTINUED
        | libc::__WNOTHREAD
        | libc::__WCLONE
        | libc::__WALL;
    if options & !known != 0 {
        return Err(Errno::INVAL);
    }
    let select = match pid {
        -1 => Some(Select::Any),
        0 => Some(Select::Group(
            rustix::process::getpgrp().as_raw_nonzero().get(),
        )),
        // i32::MIN has no group: the host's answer (ESRCH) stands.
        p if p < 0 => p.checked_neg().map(Select::Group),
        p => Some(Select::Pid(p)),
    };
    let clone_only = options & (libc::__WCLONE | libc::__WALL) == libc::__WCLONE;
    let waited = wait_child(
        ctx,
        select.filter(|_| !clone_only),
        options & libc::WNOHANG != 0,
        false,
        |nohang| {
            let flags = options | if nohang { libc::WNOHANG } else { 0 };
            let (child, status, rusage) = host::wait4(pid, flags, RUSAGE_SIZE)?;
            let ended = libc::WIFEXITED(status) || libc::WIFSIGNALED(status);
            Ok((child, ended, (status, rusage)))
        },
    )?;
    // As on Linux, the child is reaped first; a bad pointer is EFAULT afterwards.
    let (child, status, rusage) = match waited {
        Waited::Nothing => return Ok(0),
        Waited::Host(child, (status, rusage)) => (child, status, rusage),
        Waited::Report(r) => (r.pid, r.code << 8, r.rusage.to_vec()),
    };
    if status_addr != 0 {
        ctx.write_obj(status_addr, status)?;
    }
    if rusage_addr != 0 {
        ctx.write_bytes(rusage_addr, &rusage)?;
    }
    Ok(child as u64)
}

pub fn waitid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (idtype, id, info_addr, options, rusage_addr) =
        (a[0] as u32, a[1] as u32, a[2], a[3] as i32, a[4]);
    let events = libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED;
    let known =
        events | libc::WNOHANG | libc::WNOWAIT | libc::__WNOTHREAD | libc::__WCLONE | libc::__WALL;
    if options & !known != 0 || options & events == 0 {
        return Err(Errno::INVAL);
    }
    let select = match idtype {
        libc::P_ALL => Some(Select::Any),
        libc::P_PID => Some(Select::Pid(id as i32)),
        libc::P_PGID if id == 0 => Some(Select::Group(
            rustix::process::getpgrp().as_raw_nonzero().get(),
        )),
        libc::P_PGID => Some(Select::Group(id as i32)),
        // P_PIDFD: the host's answer, but never for a child already waited for.
        _ => None,
    };
    // A pidfd is the payload's descriptor: the host's number stands for it.
    let pidfd = match idtype {
        libc::P_PIDFD => Some(ctx.fd(u64::from(id))?),
        _ => None,
    };
    let id = pidfd.as_ref().map_or(id, |fd| fd.as_raw_fd() as u32);
    let exits =
        options & libc::WEXITED != 0 && options & (libc::__WCLONE | libc::__WALL) != libc::__WCLONE;
    let waited = wait_child(
        ctx,
        select.filter(|_| exits),
        options & libc::WNOHANG != 0,
        options & libc::WNOWAIT != 0,
        |nohang| {
            let flags = options | if nohang { libc::WNOHANG } else { 0 };
            let (info, rusage) = host::waitid(idtype, id, flags, SIGINFO_SIZE, RUSAGE_SIZE)?;
            let word =
                |at: usize| i32::from_ne_bytes(info[at..at + 4].try_into().expect("4 bytes"));
            // si_pid is 0 when WNOHANG found nothing.
            let (child, code) = (word(16), word(8));
            let ended = matches!(code, libc::CLD_EXITED | libc::CLD_KILLED | libc::CLD_DUMPED);
            Ok((child, ended, (info, rusage)))
        },
    )?;
    let (info, rusage) = match waited {
        Waited::Nothing => (vec![0u8; SIGINFO_SIZE], vec![0u8; RUSAGE_SIZE]),
        Waited::Host(_, found) => found,
        Waited::Report(r) => (exit_siginfo(&r), r.rusage.to_vec()),
    };
    if info_addr != 0 {
        ctx.write_bytes(info_addr, &info)?;
    }
    if rusage_addr != 0 {
        ctx.write_bytes(rusage_addr, &rusage)?;
    }
    Ok(0)
}

/// waitid's siginfo for a child's exit from its report, as the host's would be.
fn exit_siginfo(r: &Exited) -> Vec<u8> {
    let mut info = vec![0u8; SIGINFO_SIZE];
    for (at, word) in [
        (0, libc::SIGCHLD),
        (8, libc::CLD_EXITED),
        (16, r.pid),
        (20, r.uid as i32),
        (24, r.code),
    ] {
        info[at..at + 4].copy_from_slice(&word.to_ne_bytes());
    }
    info
}

/// What a wait found for the payload.
enum Waited<T> {
    /// WNOHANG and no child ready.
    Nothing,
    /// The host's answer for child `pid`.
    Host(i32, T),
    /// A child's exit report (`kernel::children`).
    Report(Exited),
}

/// The payload's wait for the children `select` names (`None`: the host's
/// answer only, as for stops, P_PIDFD or __WCLONE), with exit reports and the
/// host's wait `host_wait(nohang)` (child pid or 0, whether it ended, what it
/// gave) together: a reported child is answered from its report, a child the
/// payload waited for already is hidden. Blocks, unless `nohang`, until a host
/// SIGCHLD (a child's state changed, or its report came) or a signal for the
/// thread; `keep` (WNOWAIT) leaves the child waitable.
fn wait_child<T>(
    ctx: &Ctx<'_>,
    select: Option<Select>,
    nohang: bool,
    keep: bool,
    mut host_wait: impl FnMut(bool) -> Result<(i32, bool, T), Errno>,
) -> Result<Waited<T>, Errno> {
    let guest = ctx.guest;
    // A vfork child's children are its own process's, not those of the table (its
    // parent's); with SIGCHLD ignored the host reaps every child.
    let auto_reap = lock(&guest.signals).actions[(libc::SIGCHLD - 1) as usize].reaps_children();
    if ctx.thread.vfork_child.is_some() || auto_reap {
        let (pid, _, found) = host_wait(nohang)?;
        return Ok(if pid == 0 {
            Waited::Nothing
        } else {
            Waited::Host(pid, found)
        });
    }
    loop {
        let step = kick::with_kick_held(|open| {
            crate::kernel::signals::collect_host_signals(guest);
            if let Some(r) = select.and_then(|s| children::take_report(s, keep)) {
                crate::kernel::signals::raise_reported(guest);
                return Ok(Some(Waited::Report(r)));
            }
            let (pid, ended, found) = host_wait(true)?;
            crate::kernel::signals::raise_reported(guest);
            if pid != 0 {
                return Ok(match children::host_answer(pid, ended, !keep, keep) {
                    Seen::Hidden => None,
                    Seen::Report(r) if select.is_some() => Some(Waited::Report(r)),
                    Seen::Report(_) | Seen::Host => Some(Waited::Host(pid, found)),
                });
            }
            if nohang {
                // A child waited for already may still be ending on the host:
                // once it is gone, the host says whether any other is left.
                return Ok((children::reap_waited() == 0).then_some(Waited::Nothing));
            }
            if ctx.wait_ends() {
                return Err(Errno::INTR);
            }
            // Until a kick: a host SIGCHLD kicks every thread.
            match host::ppoll(&mut [], -1, open) {
                Ok(_) | Err(Errno::INTR) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        if let Some(waited) = step {
            return Ok(waited);
        }
    }
}

fn pid_arg(v: u64) -> Option<rustix::process::Pid> {
    rustix::process::Pid::from_raw(v as i32)
}

pub fn setpgid(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if (a[0] as i32) < 0 || (a[1] as i32) < 0 {
        return Err(Errno::INVAL);
    }
    rustix::process::setpgid(pid_arg(a[0]), pid_arg(a[1]))?;
    Ok(0)
}

pub fn getpgid(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if (a[0] as i32) < 0 {
        return Err(Errno::SRCH);
    }
    Ok(rustix::process::getpgid(pid_arg(a[0]))?
        .as_raw_nonzero()
        .get() as u64)
}

pub fn getpgrp(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::getpgrp().as_raw_nonzero().get() as u64)
}

pub fn setsid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::setsid()?.as_raw_nonzero().get() as u64)
}

pub fn getsid(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if (a[0] as i32) < 0 {
        return Err(Errno::SRCH);
    }
    Ok(rustix::process::getsid(pid_arg(a[0]))?
        .as_raw_nonzero()
        .get() as u64)
}
