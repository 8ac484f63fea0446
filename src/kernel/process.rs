//! The guest process: what its threads share ([`Guest`]) and what each thread owns
//! ([`Thread`]), plus the bookkeeping of live threads and parked vCPUs.
//!
//! Each guest thread is one vCPU driven by its own host thread, so a thread blocked in
//! a host syscall never stops the others. The process ends when a thread calls
//! exit_group, when it is killed, or when its last thread exits: km then exits with
//! the payload's status (see [`exit_process`] and `crash::die`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use rustix::io::Errno;
use vm_memory::{ByteValued, VolatileSlice};

use super::children;
use super::fdtable::FdTable;
use super::lock;
use super::ptrace::{Debugger, Event, WatchStep};
use super::signals::{PendingQueue, SigAction, SigInfo};
use crate::guest::mm::AddressSpace;
use crate::guest::vcpu::Vcpu;
use crate::guest::vdso::{self, Clocks};
use crate::guest::vm::Vm;
use crate::kvm::kick;
use crate::memory::PAGE_SIZE;

/// Runs a guest thread until it exits (`crate::run::run_thread`, given by the layer
/// above so that the kernel can start threads without knowing the exit loop).
pub type ThreadRunner = fn(Arc<Guest>, Thread, bool);

/// How a km goes on with a gdb session begun by another km (its fork parent, or
/// the km it replaced through execve).
#[derive(Debug, Clone, Copy)]
pub struct Handover {
    /// km started the payload for this gdb (`-g`), rather than gdb attaching.
    pub launched: bool,
    /// gdb waits for a stop reply (the exec's, which the new km queued);
    /// otherwise it sends its next packet.
    pub running: bool,
    /// The connection is the fork parent's stub, which relays gdb's requests
    /// for this process (`detach-on-fork off`), not gdb's own.
    pub relay: bool,
}

/// Serves gdb on a connection taken over from another km (`crate::gdb::take_over`,
/// given by start-up, as the stub sits above the kernel).
pub type SessionTaker = fn(&Arc<Guest>, std::os::fd::OwnedFd, Handover) -> Result<()>;

static SESSION_TAKER: std::sync::OnceLock<SessionTaker> = std::sync::OnceLock::new();

/// Start-up names the function that takes a gdb session over.
pub fn set_session_taker(taker: SessionTaker) {
    let _ = SESSION_TAKER.set(taker);
}

/// Serves gdb on `conn`, a session another km began (see [`Handover`]).
pub fn take_over_session(
    guest: &Arc<Guest>,
    conn: std::os::fd::OwnedFd,
    handover: Handover,
) -> Result<()> {
    let taker = SESSION_TAKER
        .get()
        .ok_or_else(|| anyhow::anyhow!("no gdb stub in this km"))?;
    taker(guest, conn, handover)
}

/// Runs a vfork child (a thread whose [`Thread::vfork_child`] is set) until it
/// execs or exits, which ends its host process (`crate::run::run_vfork_child`,
/// given by start-up as the exit loop sits above the kernel).
pub type VforkRunner = fn(&Arc<Guest>, &mut Thread) -> !;

static VFORK_RUNNER: std::sync::OnceLock<VforkRunner> = std::sync::OnceLock::new();

/// Start-up names the function that runs vfork children.
pub fn set_vfork_runner(runner: VforkRunner) {
    let _ = VFORK_RUNNER.set(runner);
}

/// Runs `thread`, a vfork child, in this host process until it execs or exits.
pub fn run_vfork_child(guest: &Arc<Guest>, thread: &mut Thread) -> ! {
    match VFORK_RUNNER.get() {
        Some(runner) => runner(guest, thread),
        None => crate::memory::host::exit_now(crate::KM_ERROR_STATUS as i32),
    }
}

/// What a vfork child has of its own while it runs on its parent's thread and
/// memory: the process state Linux's vfork child does not share (its descriptor
/// table and signal dispositions; its pid, working directory and identity are
/// its host process's).
pub struct VforkChild {
    pub fds: Mutex<FdTable>,
    pub signals: Mutex<Signals>,
    /// The signals it sent itself (the process's pending ones are its parent's).
    pub pending: PendingQueue,
    /// Its copy of the pipe its parent km adopted for its exit report, which its
    /// execve passes on to the new km (`kernel::children`).
    pub report: Option<std::os::fd::RawFd>,
}

/// Signal dispositions, shared by all threads.
#[derive(Clone)]
pub struct Signals {
    pub actions: [SigAction; 64],
}

impl Signals {
    /// The dispositions an execve leaves: an ignored signal stays ignored, every
    /// other is the default again, without flags, mask or restorer (Linux's
    /// flush_signal_handlers).
    pub fn after_exec(&self) -> Signals {
        Signals {
            actions: self.actions.map(|a| SigAction {
                handler: if a.handler == libc::SIG_IGN as u64 {
                    a.handler
                } else {
                    libc::SIG_DFL as u64
                },
                ..SigAction::default()
            }),
        }
    }
}

/// What other threads may touch of a thread: its id and its pending signals.
pub struct ThreadHandle {
    pub tid: i32,
    pub pending: PendingQueue,
}

/// Live threads, vCPUs parked for reuse, and host threads waiting for a new
/// guest thread to run.
struct Threads {
    live: HashMap<i32, Arc<ThreadHandle>>,
    idle: Vec<Vcpu>,
    next_vcpu: u32,
    spares: Vec<Arc<Spare>>,
    /// Spare host threads started that are not waiting yet.
    starting: usize,
}

/// Most spare host threads kept waiting for a guest thread: a clone finding one
/// skips creating a host thread and waiting for it to start.
const MAX_SPARES: usize = 4;
/// Spare host threads a thread's end makes sure are waiting or starting: two,
/// so that a thread created right after another ended (a create+join loop)
/// takes a spare started one thread earlier, not the one its predecessor's end
/// is still starting.
const SPARES_AHEAD: usize = 2;

/// A spare host thread, which has run no guest thread yet, waiting for one.
pub struct Spare {
    /// Its host tid, which the guest thread it runs takes.
    pub tid: i32,
    next: Mutex<Option<Assignment>>,
    given: Condvar,
}

/// What a waiting spare is told to do.
pub enum Assignment {
    /// Run this guest thread under this name (comm).
    Run(Box<Thread>, std::ffi::CString),
    /// End.
    Quit,
}

impl Spare {
    /// Hands the spare its next assignment.
    pub fn assign(&self, what: Assignment) {
        *lock(&self.next) = Some(what);
        self.given.notify_one();
    }
}

/// How the payload was started, and km's policies for it.
#[derive(Clone)]
pub struct Config {
    /// The payload as named on the command line, for messages.
    pub name: String,
    pub argv: Vec<String>,
    /// The ELF file running, absolute (/proc/self/exe, gdb's exec-file).
    pub exe: std::path::PathBuf,
    /// The environment given to the payload, NUL-terminated strings
    /// (/proc/self/environ: km's own may hold what `--putenv` kept from it).
    pub environ: Vec<u8>,
    /// km's vDSO data page, when the payload has the vDSO.
    pub vvar: Option<u64>,
    /// km's options to repeat when the payload's execve re-executes km.
    pub exec_options: Vec<std::ffi::OsString>,
    /// The auxiliary vector given to the payload (for core files).
    pub auxv: Vec<u8>,
    /// `--kill-unimpl-scall`: an unimplemented syscall kills with SIGSYS.
    pub kill_unimpl: bool,
    /// Where a core-dumping signal writes the kmcore (`None`: no core).
    pub core_path: Option<std::path::PathBuf>,
    /// Write the kmcore even when RLIMIT_CORE is 0 (`--coredump=FILE` was given).
    pub core_despite_rlimit: bool,
    /// Where the crash report goes when a signal kills the payload.
    pub crash_report: crate::trace::Sink,
    /// Where a snapshot is written (`--snapshot`, absolute).
    pub snapshot_path: std::path::PathBuf,
    /// The payload gets the vDSO (not `--no-vdso`).
    pub vdso: bool,
    /// An execve may load the new program in place rather than re-execute km:
    /// no km thread serves this payload from outside (`--mgtpipe`), and not
    /// `--exec-reexec`.
    pub exec_in_place: bool,
}

/// What a thread stopped for a core dump or a snapshot reports.
#[derive(Clone)]
pub struct StoppedThread {
    pub core: km_coredump::Thread,
    /// Stopped in a blocking syscall the stop interrupted: it is made again on
    /// resumption (the registers show it returned EINTR).
    pub restart: bool,
    pub altstack: (u64, u64),
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
}

/// An all-stop request: every thread reports its state and waits until the
/// requester releases it (a snapshot) or ends the process (a core dump).
#[derive(Default)]
struct StopAll {
    requested: AtomicBool,
    reports: Mutex<Vec<StoppedThread>>,
    arrived: Condvar,
    released: Condvar,
}

/// State shared by every thread of the payload.
pub struct Guest {
    pub config: Config,
    /// Set when the payload runs under gdb.
    pub debugger: Option<Arc<Debugger>>,
    pub vm: Vm,
    pub mm: Mutex<AddressSpace>,
    pub fds: Mutex<FdTable>,
    pub signals: Mutex<Signals>,
    /// Signals sent to the process as a whole.
    pub pending: PendingQueue,
    threads: Mutex<Threads>,
    stop: StopAll,
    /// Unimplemented syscalls already named in the trace.
    pub unimpl_seen: Mutex<HashSet<u64>>,
    /// The vDSO's clocks, once started.
    pub clocks: OnceLock<Clocks>,
    /// POSIX timers (timer_create) the payload holds: host timers km cannot
    /// carry into a snapshot. A fork child and a new program start with none.
    pub posix_timers: AtomicUsize,
    /// Linux AIO contexts (io_setup).
    pub aio: Mutex<crate::kernel::aio::AioContexts>,
    runner: ThreadRunner,
    /// A thread changed per-thread host state that a new thread inherits from
    /// its creator (credentials, affinity, priority...): from then on threads
    /// may differ in it, and a waiting spare would not have its creator's, so
    /// no spare is kept.
    threads_differ: AtomicBool,
}

/// One guest thread: its vCPU and per-thread kernel state.
pub struct Thread {
    pub tid: i32,
    pub handle: Arc<ThreadHandle>,
    pub vcpu: Vcpu,
    /// The address set_tid_address / CLONE_CHILD_CLEARTID registered.
    pub clear_child_tid: u64,
    /// set_robust_list's head and length.
    pub robust_list: (u64, u64),
    pub sigmask: u64,
    /// KVM single-step is on for this vCPU (a gdb step, or watchpoints).
    pub stepping: bool,
    /// The current single-step is gdb's (its end is reported as a step).
    pub gdb_step: bool,
    /// The instruction being single-stepped was let through pages hidden for read
    /// and access watchpoints.
    pub watch_step: Option<WatchStep>,
    /// The write watchpoint whose bytes this thread's last instruction changed,
    /// until its single-step ends and reports it.
    pub watch_wrote: Option<u64>,
    /// The mask to restore after a handler interrupts rt_sigsuspend.
    pub saved_mask: Option<u64>,
    /// A signal delivered before any pending one and without a debugger stop: a
    /// CPU fault's (a debugger already saw it) or one gdb resumed the thread with.
    pub forced_signal: Option<SigInfo>,
    /// sigaltstack: base and size (size 0: disabled).
    pub altstack: (u64, u64),
    /// The process this thread has just forked under gdb, reported to gdb when
    /// the syscall returns.
    pub forked: Option<ForkedChild>,
    /// Set while this thread runs a vfork child, in the child's host process.
    pub vfork_child: Option<Box<VforkChild>>,
    /// The FS and GS bases a new thread's vCPU gets on the thread's own host
    /// thread before it first runs (see `run::run_thread`).
    pub start_bases: Option<(u64, u64)>,
}

/// A process forked under gdb (see [`Thread::forked`]).
pub struct ForkedChild {
    pub pid: i32,
    /// A vfork's wait for the child's exec or exit, which comes after gdb's
    /// stop: the pipe that reaches end of file then.
    pub vfork_release: Option<std::os::fd::OwnedFd>,
}

impl Thread {
    /// A thread with signal mask `sigmask` and no other per-thread kernel state yet.
    pub fn new(tid: i32, handle: Arc<ThreadHandle>, vcpu: Vcpu, sigmask: u64) -> Thread {
        Thread {
            tid,
            handle,
            vcpu,
            clear_child_tid: 0,
            robust_list: (0, 0),
            sigmask,
            stepping: false,
            gdb_step: false,
            watch_step: None,
            watch_wrote: None,
            saved_mask: None,
            forced_signal: None,
            altstack: (0, 0),
            forked: None,
            vfork_child: None,
            start_bases: None,
        }
    }

    /// The descriptor table this thread's process uses.
    pub fn fds<'a>(&'a self, guest: &'a Guest) -> MutexGuard<'a, FdTable> {
        match &self.vfork_child {
            Some(child) => lock(&child.fds),
            None => lock(&guest.fds),
        }
    }

    /// The signal dispositions of this thread's process.
    pub fn signals<'a>(&'a self, guest: &'a Guest) -> MutexGuard<'a, Signals> {
        match &self.vfork_child {
            Some(child) => lock(&child.signals),
            None => lock(&guest.signals),
        }
    }
}

impl Guest {
    pub fn new(
        config: Config,
        vm: Vm,
        mm: AddressSpace,
        fds: FdTable,
        debugger: Option<Arc<Debugger>>,
        runner: ThreadRunner,
    ) -> Self {
        Guest {
            runner,
            config,
            debugger,
            vm,
            mm: Mutex::new(mm),
            fds: Mutex::new(fds),
            signals: Mutex::new(Signals {
                actions: [SigAction::default(); 64],
            }),
            pending: PendingQueue::default(),
            threads: Mutex::new(Threads {
                live: HashMap::new(),
                idle: Vec::new(),
                next_vcpu: 0,
                spares: Vec::new(),
                starting: 0,
            }),
            stop: StopAll::default(),
            unimpl_seen: Mutex::new(HashSet::new()),
            posix_timers: AtomicUsize::new(0),
            threads_differ: AtomicBool::new(false),
            clocks: OnceLock::new(),
            aio: Mutex::new(HashMap::new()),
        }
    }

    /// Starts the vDSO's clocks (if the payload has the vDSO), relating the TSC of
    /// `vcpu` to the host's.
    pub fn start_clocks(&self, vcpu: &Vcpu) -> Result<()> {
        if let Some(vvar) = self.config.vvar {
            let _ = self.clocks.set(vdso::start(vvar, vcpu, &self.vm.mem)?);
        }
        Ok(())
    }

    /// At a VM exit of `thread`: starts the clocks' refresh thread once it is due
    /// (not in a vfork child, whose process shares its parent's memory).
    pub fn tick_clocks(self: &Arc<Self>, thread: &Thread) {
        if let (Some(clocks), None) = (self.clocks.get(), &thread.vfork_child) {
            clocks.tick(self, |g| &g.vm.mem);
        }
    }

    /// The guest of a forked km: a copy of this one's state in the child's own VM,
    /// without threads (the caller adds the forking one) and without a debugger.
    /// The guest of a fork child km; `debugger`: gdb may take it over.
    /// `unimpl_seen`: the parent's, copied before the fork.
    pub fn forked(
        &self,
        vm: Vm,
        mm: AddressSpace,
        (fds, signals, unimpl_seen): (FdTable, Signals, HashSet<u64>),
        debugger: Option<Arc<Debugger>>,
    ) -> Guest {
        Guest {
            signals: Mutex::new(signals),
            unimpl_seen: Mutex::new(unimpl_seen),
            ..Guest::new(self.config.clone(), vm, mm, fds, debugger, self.runner)
        }
    }

    /// Guest memory `[addr, addr + len)`, which the payload has mapped with `prot`.
    pub fn user_slice(&self, addr: u64, len: usize, prot: i32) -> Result<VolatileSlice<'_>, Errno> {
        lock(&self.mm).check(addr, len as u64, prot)?;
        Ok(self.vm.mem.slice(addr, len)?)
    }

    /// Writes `val` to the payload's writable memory at `addr`.
    pub fn write_user<T: ByteValued>(&self, addr: u64, val: T) -> Result<(), Errno> {
        let s = self.user_slice(addr, size_of::<T>(), libc::PROT_WRITE)?;
        Ok(crate::memory::write_obj(addr, &s, val)?)
    }

    /// Runs `thread` on the calling host thread until it exits (`initial_stop`:
    /// parked for gdb before its first instruction), and the programs it execs in
    /// place after it: this reference goes with the program it belongs to.
    pub fn run(self: Arc<Self>, thread: Thread, initial_stop: bool) {
        let runner = self.runner;
        runner(self, thread, initial_stop)
    }

    /// The guest of the program an execve loads in place of this one's: the new
    /// program's `config`, `vm` and `mm`, and nothing of the process's state yet
    /// (see [`Guest::take_process_state`]).
    pub fn for_exec(&self, config: Config, vm: Vm, mm: AddressSpace) -> Guest {
        Guest::new(config, vm, mm, FdTable::default(), None, self.runner)
    }

    /// An execve in place, past its point of no return: this guest (built by
    /// [`Guest::for_exec`]) takes what the process keeps from `old`: its
    /// descriptors (those with FD_CLOEXEC close), its pending signals and its
    /// ignored ones (every other disposition is the default again). `old`'s
    /// spare host threads end.
    pub fn take_process_state(&self, old: &Guest) {
        let differ = old.threads_differ.load(Ordering::SeqCst);
        self.threads_differ.store(differ, Ordering::SeqCst);
        old.host_state_changed();
        let mut fds = std::mem::take(&mut *lock(&old.fds));
        fds.close_on_exec();
        *lock(&self.fds) = fds;
        let signals = lock(&old.signals).after_exec();
        *lock(&self.signals) = signals;
        old.pending.move_to(&self.pending);
    }

    /// Hides `page` from the payload (its page-table entry goes, its mapping
    /// stays): every access faults. Returns false, changing nothing, if the payload
    /// does not map the page.
    pub fn hide_page(&self, page: u64) -> Result<bool> {
        let mm = lock(&self.mm);
        if mm.vma_at(page).is_none() {
            return Ok(false);
        }
        self.vm.protect(page..page + PAGE_SIZE, 0)?;
        Ok(true)
    }

    /// Gives `page` back the protection of the payload's mapping (none if it has
    /// gone).
    pub fn show_page(&self, page: u64) -> Result<()> {
        let mm = lock(&self.mm);
        let prot = mm.vma_at(page).map_or(0, |(_, vma)| vma.prot);
        self.vm.protect(page..page + PAGE_SIZE, prot)
    }

    /// Returns an unused vCPU to the pool.
    pub fn park_vcpu(&self, vcpu: Vcpu) {
        lock(&self.threads).idle.push(vcpu);
    }

    /// A vCPU for a new thread: a parked one, or a fresh one.
    pub fn take_vcpu(&self) -> Result<Vcpu> {
        let mut t = lock(&self.threads);
        if let Some(vcpu) = t.idle.pop() {
            return Ok(vcpu);
        }
        let id = t.next_vcpu;
        t.next_vcpu += 1;
        drop(t);
        crate::stats::count(crate::stats::Event::VcpuCreated);
        self.vm.create_vcpu(id)
    }

    /// A thread changed per-thread host state that new threads inherit from
    /// their creator (see [`Guest::take_spare`]).
    pub fn host_state_changed(&self) {
        self.threads_differ.store(true, Ordering::SeqCst);
        for spare in lock(&self.threads).spares.drain(..) {
            spare.assign(Assignment::Quit);
        }
    }

    fn keeps_spares(&self) -> bool {
        self.debugger.is_none() && !self.threads_differ.load(Ordering::SeqCst)
    }

    /// How many spare host threads to start as a thread ends: one, or up to
    /// [`SPARES_AHEAD`] waiting or starting, while fewer than [`MAX_SPARES`]
    /// are and spares are kept (see [`Guest::take_spare`]). Counted as starting
    /// until each calls [`Guest::wait_for_thread`] (or [`Guest::spare_failed`]).
    pub fn spares_to_start(&self) -> usize {
        if !self.keeps_spares() {
            return 0;
        }
        let mut t = lock(&self.threads);
        let have = t.spares.len() + t.starting;
        let n = SPARES_AHEAD
            .saturating_sub(have)
            .max(1)
            .min(MAX_SPARES.saturating_sub(have));
        t.starting += n;
        n
    }

    /// A spare counted by [`Guest::spares_to_start`] could not be started.
    pub fn spare_failed(&self) {
        let mut t = lock(&self.threads);
        t.starting = t.starting.saturating_sub(1);
    }

    /// Called by a spare host thread: waits for a guest thread to run, or returns
    /// `None` when the host thread should end (enough spares wait already, gdb is
    /// attached, or per-thread host state changed).
    pub fn wait_for_thread(&self, tid: i32) -> Option<(Thread, std::ffi::CString)> {
        let spare = Arc::new(Spare {
            tid,
            next: Mutex::new(None),
            given: Condvar::new(),
        });
        {
            let mut t = lock(&self.threads);
            t.starting = t.starting.saturating_sub(1);
            if t.spares.len() >= MAX_SPARES || !self.keeps_spares() {
                return None;
            }
            t.spares.push(spare.clone());
        }
        let mut next = lock(&spare.next);
        loop {
            match next.take() {
                Some(Assignment::Run(thread, comm)) => return Some((*thread, comm)),
                Some(Assignment::Quit) => return None,
                None => next = spare.given.wait(next).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    /// A waiting spare for a new thread. Its per-thread host state is its
    /// creator's only while no thread changed its own: after that, new threads
    /// get new host threads, which inherit their creator's.
    pub fn take_spare(&self) -> Option<Arc<Spare>> {
        lock(&self.threads).spares.pop()
    }

    /// Records a thread as running; returns its handle.
    pub fn thread_started(&self, tid: i32) -> Arc<ThreadHandle> {
        let handle = Arc::new(ThreadHandle {
            tid,
            pending: PendingQueue::default(),
        });
        let mut t = lock(&self.threads);
        t.live.insert(tid, handle.clone());
        if let Some(d) = &self.debugger {
            d.set_live(t.live.len());
        }
        handle
    }

    /// The running thread `tid`.
    pub fn thread(&self, tid: i32) -> Option<Arc<ThreadHandle>> {
        lock(&self.threads).live.get(&tid).cloned()
    }

    /// The tids of the running threads, in order.
    pub fn thread_ids(&self) -> Vec<i32> {
        let mut tids: Vec<i32> = lock(&self.threads).live.keys().copied().collect();
        tids.sort_unstable();
        tids
    }

    /// Whether another thread asked every thread to stop (for a core dump).
    pub fn stop_requested(&self) -> bool {
        self.stop.requested.load(Ordering::SeqCst)
            || self.debugger.as_ref().is_some_and(|d| d.stopping())
    }

    /// Whether a core dump asked every thread to stop for good.
    pub fn dump_requested(&self) -> bool {
        self.stop.requested.load(Ordering::SeqCst)
    }

    /// Asks every other thread to stop and report; returns their states, waiting at
    /// most `timeout` for them.
    pub fn stop_others(&self, timeout: Duration) -> Vec<StoppedThread> {
        self.stop_threads(timeout, 1)
    }

    /// Asks every thread to stop and report, for a km thread (not the payload's);
    /// returns their states, waiting at most `timeout` for them.
    pub fn stop_all(&self, timeout: Duration) -> Vec<StoppedThread> {
        self.stop_threads(timeout, 0)
    }

    /// Stops the live threads but the `asking` ones (0 or the caller).
    fn stop_threads(&self, timeout: Duration, asking: usize) -> Vec<StoppedThread> {
        self.stop.requested.store(true, Ordering::SeqCst);
        // Alone (a single-threaded payload's execve): nobody to kick, and a
        // kick of the caller itself would only be one more signal to take.
        if lock(&self.threads).live.len() > asking {
            kick::kick_all();
        }
        let deadline = Instant::now() + timeout;
        let mut reports = lock(&self.stop.reports);
        loop {
            let others = lock(&self.threads).live.len().saturating_sub(asking);
            let left = deadline.saturating_duration_since(Instant::now());
            if reports.len() >= others || left.is_zero() {
                return reports.clone();
            }
            // A kick only interrupts a blocking call already in progress.
            kick::kick_all_but(&reports.iter().map(|r| r.core.tid).collect::<Vec<_>>());
            reports = self
                .stop
                .arrived
                .wait_timeout(reports, left.min(Duration::from_millis(20)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Reports this thread's state to the thread that asked for a stop, and waits
    /// until [`Guest::resume_others`] (a core dump never resumes: the process ends).
    pub fn report_and_wait(&self, state: StoppedThread) {
        let mut reports = lock(&self.stop.reports);
        reports.push(state);
        self.stop.arrived.notify_all();
        while self.stop.requested.load(Ordering::SeqCst) {
            reports = self
                .stop
                .released
                .wait(reports)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Lets the threads [`Guest::stop_others`] stopped run on.
    pub fn resume_others(&self) {
        let mut reports = lock(&self.stop.reports);
        reports.clear();
        self.stop.requested.store(false, Ordering::SeqCst);
        self.stop.released.notify_all();
    }

    /// A thread exited with `status`: park its vCPU; the last thread ends the process.
    pub fn thread_exited(&self, thread: Thread, status: i32) {
        let mut t = lock(&self.threads);
        t.live.remove(&thread.tid);
        if let Some(d) = &self.debugger {
            d.set_live(t.live.len());
        }
        if t.live.is_empty() {
            drop(t);
            exit_payload(self, status);
        }
        t.idle.push(thread.vcpu);
    }
}

/// Ends km with the payload's exit status (a payload killed by a signal ends in
/// `crash::die`).
pub fn exit_process(status: i32) -> ! {
    std::process::exit(status & 0xff)
}

/// The payload exited: tell gdb first when it is attached.
pub fn exit_payload(guest: &Guest, status: i32) -> ! {
    if crate::stats::on() {
        crate::stats::report(&guest.config.name, &format!("exit {}", status & 0xff));
    }
    if let Some(d) = &guest.debugger {
        d.report_end(Event::Exited(status & 0xff), Duration::from_secs(2));
    }
    // A fork child tells its parent km before its teardown (`kernel::children`),
    // once no other thread runs and the payload's descriptors are closed, as they
    // are on Linux when the parent's wait returns.
    if children::reports() && lock(&guest.threads).live.len() <= 1 {
        lock(&guest.fds).close_range(0..=i32::MAX, false);
        children::report_exit(status);
    }
    children::reap_waited();
    exit_process(status)
}
