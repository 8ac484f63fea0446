//! The kernel side of debugging, as ptrace is Linux's: all-stop parking of guest
//! threads, their saved state while a debugger looks at them, resume actions, the
//! table of software breakpoints and watchpoints. It holds state only; the thread
//! loop parks threads here (`crate::debug`) and the gdb stub drives it.
//!
//! A thread that hits a debug event (breakpoint, finished single-step, signal)
//! parks and queues the event; every other thread is kicked and parks too (all-stop).
//! While parked, a thread's user registers live here, where the gdb stub reads and
//! writes them; on resume the thread enters the guest with whatever gdb left,
//! single-stepping with RFLAGS.TF when asked to. The guest's own exception path
//! (#BP and #DB through the IDT stubs) is what reports breakpoints and steps, which
//! works on PVM (where KVM_SET_GUEST_DEBUG does not fire) and on hardware KVM alike.
//!
//! Watchpoints use no debug registers either (they do not fire on PVM). Write
//! watchpoints single-step the running threads, one step at a time ([`StepTurns`]),
//! and compare the watched bytes around each step. Read
//! and access watchpoints hide the pages they cover: the page-table entry is removed
//! (the payload's own mapping is untouched), so any access to such a page faults.
//! A fault that the payload's mapping allows is km's: the page is shown again, the
//! thread single-steps the instruction, the page is hidden again and, when the access
//! touched a watched range, the thread stops with a watch event after the instruction,
//! as with a debug register. A fault the mapping does not allow is the payload's own
//! and raises SIGSEGV as without gdb.
//!
//! On hardware KVM, where debug registers fire, `hbreak` and watchpoints of 1, 2, 4
//! or 8 aligned bytes take one of the four debug-register slots instead
//! ([`HwPoint`]); every thread programs its vCPU with them whenever it resumes
//! from a stop or starts. The ones that do not fit there fall back to the above.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::kvm_regs;

use super::lock;
use super::signals::{SigInfo, signo};
use crate::kvm::debugregs::{Condition, DebugRegs, SLOTS, Slot};
use crate::memory::{PAGE_SIZE, page_align_down};

/// How often threads that have not stopped yet are kicked again.
const REKICK: Duration = Duration::from_millis(20);

const INT3: u8 = 0xcc;

/// Why a thread stopped, as reported to gdb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Hit the software breakpoint at its (adjusted) RIP.
    Breakpoint(i32),
    /// Hit a debug-register breakpoint (`hbreak`) at its RIP.
    HwBreakpoint(i32),
    /// Finished a single-step.
    Step(i32),
    /// Accessed the watched range that starts at this address.
    Watch(i32, WatchKind, u64),
    /// About to receive this signal (gdb decides whether it is delivered).
    Signal(i32, i32),
    /// The process exited with this status.
    Exited(i32),
    /// Entered syscall `.1` (gdb's `catch syscall`).
    SyscallEntry(i32, u64),
    /// Returned from syscall `.1`.
    SyscallReturn(i32, u64),
    /// The process was killed by this signal.
    Killed(i32),
    /// Forked (`vfork`: vforked) the process with this pid, which waits for gdb
    /// to detach it or take it over.
    Fork { tid: i32, child: i32, vfork: bool },
    /// The vfork child has exec'd or exited: the parent goes on.
    VForkDone(i32),
    /// Replaced the program with `execve` (reported by the new km).
    Exec(i32),
}

impl Event {
    /// The thread the event belongs to (`None`: the whole process).
    pub fn thread(&self) -> Option<i32> {
        match *self {
            Event::Breakpoint(t)
            | Event::HwBreakpoint(t)
            | Event::Step(t)
            | Event::Watch(t, ..)
            | Event::Signal(t, _)
            | Event::SyscallEntry(t, _)
            | Event::SyscallReturn(t, _)
            | Event::Fork { tid: t, .. }
            | Event::VForkDone(t)
            | Event::Exec(t) => Some(t),
            Event::Exited(_) | Event::Killed(_) => None,
        }
    }
}

/// Which accesses a watchpoint reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    Write,
    Read,
    /// Reads and writes.
    Access,
}

/// What gdb set in a debug-register slot (hardware KVM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HwPoint {
    /// `hbreak` at this address.
    Break(u64),
    /// A watchpoint: kind, address, length.
    Watch(WatchKind, u64, u64),
}

impl HwPoint {
    pub fn slot(&self) -> Slot {
        match *self {
            HwPoint::Break(addr) => Slot {
                addr,
                condition: Condition::Exec,
                len: 1,
            },
            HwPoint::Watch(kind, addr, len) => Slot {
                addr,
                condition: match kind {
                    WatchKind::Write => Condition::Write,
                    // x86 has no read-only condition: gdb tells reads from writes
                    // by the watched value.
                    WatchKind::Read | WatchKind::Access => Condition::ReadWrite,
                },
                len,
            },
        }
    }
}

/// A thread single-stepping one instruction over pages hidden for read and access
/// watchpoints, which it was let to touch.
#[derive(Debug, Default)]
pub struct WatchStep {
    /// The pages shown for this instruction (hidden again once it is done).
    pub pages: Vec<u64>,
    /// The watchpoint the instruction hit, with its address.
    pub hit: Option<(WatchKind, u64)>,
}

/// The bytes at each write watchpoint (address -> bytes) before a thread's
/// single-step: a change after it is that thread's write.
pub type WatchSeen = BTreeMap<u64, Vec<u8>>;

/// Turns at single-stepping while write watchpoints are set: a fair (ticket) lock
/// a thread holds from just before its vCPU runs one instruction until the watched
/// bytes are compared after it. Comparing bytes tells who wrote only when no other
/// thread ran guest code meanwhile (a debug register reports the instruction that
/// wrote; on PVM they do not fire). Held only across one KVM_RUN, never across a
/// park or a syscall, so every waiter gets its turn.
#[derive(Default)]
pub struct StepTurns {
    /// The next ticket to hand out and the ticket whose turn it is.
    tickets: Mutex<(u64, u64)>,
    next_turn: Condvar,
}

/// One thread's turn at single-stepping; the next waiter's comes when it is dropped.
pub struct StepTurn<'a> {
    turns: &'a StepTurns,
}

impl StepTurns {
    /// Waits for the calling thread's turn, after every thread that asked before.
    fn take(&self) -> StepTurn<'_> {
        let mut tickets = lock(&self.tickets);
        let mine = tickets.0;
        tickets.0 += 1;
        while tickets.1 != mine {
            tickets = self
                .next_turn
                .wait(tickets)
                .unwrap_or_else(|e| e.into_inner());
        }
        StepTurn { turns: self }
    }
}

impl Drop for StepTurn<'_> {
    fn drop(&mut self) {
        lock(&self.turns.tickets).1 += 1;
        self.turns.next_turn.notify_all();
    }
}

/// What a parked thread does when gdb resumes the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    #[default]
    Continue,
    Step,
}

/// A parked thread's state.
#[derive(Debug, Clone)]
pub struct Parked {
    pub regs: kvm_regs,
    /// The syscall the thread is in, or u64::MAX.
    pub orig_rax: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub xsave: Vec<u8>,
    /// Whether gdb changed `regs`.
    pub dirty: bool,
    /// The signal the thread stopped with, as ptrace's PTRACE_GETSIGINFO shows it
    /// to gdbserver (gdb's `$_siginfo`, which gdb may edit).
    pub siginfo: Option<SigInfo>,
}

#[derive(Default)]
struct State {
    /// All-stop requested: every running thread parks at its next chance.
    stopping: bool,
    /// Stopped threads, with the resume generation they stopped in: an entry from an
    /// older generation belongs to a thread released but not yet awake.
    parked: BTreeMap<i32, (u64, Parked)>,
    /// Resume actions and signals to deliver, by thread; default Continue.
    actions: HashMap<i32, (Action, Option<i32>)>,
    /// Threads without an action stay stopped (gdb's scheduler locking).
    lock_others: bool,
    /// Bumped on every resume; parked threads wait for it to change.
    generation: u64,
    /// Software breakpoints: address -> original byte.
    breakpoints: BTreeMap<u64, u8>,
    /// Addresses of breakpoints removed in this session.
    removed: BTreeSet<u64>,
    /// Write watchpoints: address -> (length, last seen contents).
    watches: BTreeMap<u64, (usize, Vec<u8>)>,
    /// Read and access watchpoints: address -> (length, kind).
    access_watches: BTreeMap<u64, (u64, WatchKind)>,
    /// Debug-register slots (hardware KVM).
    hw_points: [Option<HwPoint>; SLOTS],
    /// Signals delivered without a stop (gdb's `handle SIG nostop noprint pass`).
    passed: BTreeSet<i32>,
    /// `catch syscall`: off (`None`), every syscall (`Some(None)`), or these.
    catch_syscalls: Option<Option<BTreeSet<u64>>>,
    /// Events not reported yet, oldest first. An event of a thread gdb left stopped
    /// at the last resume waits until gdb resumes that thread (as gdbserver keeps a
    /// thread's pending status).
    events: VecDeque<Event>,
    /// The siginfo of queued signal stops held for the next resume (gdb's Ctrl-C
    /// while stopped), by thread: the thread shows it once its stop is reported.
    held_signals: BTreeMap<i32, SigInfo>,
    /// The threads the last resume left stopped (scheduler locking).
    held: HashSet<i32>,
    /// Threads gdb knows about (live).
    live: usize,
    /// gdb has gone: events are ignored and threads run freely.
    detached: bool,
    /// The stub has told gdb that the process ended.
    finished: bool,
    /// Fork children gdb was told of, waiting for its decision: the pipe each
    /// reads it from (see [`ForkDecision`]).
    fork_children: BTreeMap<i32, OwnedFd>,
    /// The connection's descriptor (a fork child keeps a copy of it, an execve
    /// passes it on) and whether km started the payload for this gdb.
    session: Option<(RawFd, bool)>,
    /// The session's connection is a fork parent's relay, not gdb's: an execve
    /// passes it on, a fork child never takes it over.
    relayed: bool,
}

impl State {
    /// Starts or ends an all-stop; while it lasts the payload is held (SIGTERM and
    /// SIGINT to km end it at once, as no payload thread can take them).
    fn set_stopping(&mut self, on: bool) {
        self.stopping = on;
        crate::kvm::kick::hold(on);
    }
}

/// What a fork child of a payload under gdb waits for before it runs: one byte
/// from its parent, on a socket pair whose other end the parent keeps. End of file (the parent's session ended, or gdb detached
/// the child) lets it run free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkDecision {
    /// Run free, without gdb.
    Free,
    /// Take over the parent's gdb session (gdb follows the child); `launched`
    /// as the parent's (gdb's `quit` kills a payload km started for it).
    TakeOver { launched: bool },
    /// Stay under gdb through the parent's stub, which relays gdb's requests
    /// for this process over the decision channel (`detach-on-fork off`).
    Relay { launched: bool },
}

impl ForkDecision {
    fn byte(self) -> u8 {
        match self {
            ForkDecision::Free => b'F',
            ForkDecision::TakeOver { launched: true } => b'L',
            ForkDecision::TakeOver { launched: false } => b'A',
            ForkDecision::Relay { launched: true } => b'R',
            ForkDecision::Relay { launched: false } => b'r',
        }
    }

    /// Waits on `pipe` for the parent's decision.
    pub fn read(pipe: &OwnedFd) -> ForkDecision {
        let mut byte = [0u8; 1];
        let got = loop {
            match rustix::io::read(pipe, &mut byte) {
                Err(rustix::io::Errno::INTR) => {}
                r => break r,
            }
        };
        match (got, byte[0]) {
            (Ok(1), b'L') => ForkDecision::TakeOver { launched: true },
            (Ok(1), b'A') => ForkDecision::TakeOver { launched: false },
            (Ok(1), b'R') => ForkDecision::Relay { launched: true },
            (Ok(1), b'r') => ForkDecision::Relay { launched: false },
            _ => ForkDecision::Free,
        }
    }
}

/// Debugging state shared by the vCPU threads and the gdb stub.
#[derive(Default)]
pub struct Debugger {
    state: Mutex<State>,
    changed: Condvar,
    /// `catch syscall` is on: lets every syscall skip the state lock otherwise.
    catching: AtomicBool,
    /// Turns at single-stepping while write watchpoints are set.
    step_turns: StepTurns,
    /// Held while a relayed request is answered, and by an execve from the
    /// moment it passes the relay on: no request is ever half served.
    relay_turn: Mutex<()>,
}

/// The debugger's state, held across a host fork ([`Debugger::hold_for_fork`]).
pub struct ForkHold<'a> {
    _state: std::sync::MutexGuard<'a, State>,
}

/// What a parked thread resumes with.
pub struct Resume {
    pub regs: kvm_regs,
    pub fs_base: u64,
    pub dirty: bool,
    pub xsave: Option<Vec<u8>>,
    pub action: Action,
    pub signal: Option<i32>,
    /// The thread's signal information as gdb left it.
    pub siginfo: Option<SigInfo>,
}

impl Debugger {
    pub fn stopping(&self) -> bool {
        lock(&self.state).stopping
    }

    /// Whether gdb is attached (events stop the target).
    pub fn attached(&self) -> bool {
        !lock(&self.state).detached
    }

    /// A debugger that starts detached (`--gdb-listen`: gdb attaches later).
    pub fn detached() -> Self {
        let d = Debugger::default();
        lock(&d.state).detached = true;
        d
    }

    /// gdb connected: debug events stop the target again.
    pub fn attach(&self) {
        let mut s = lock(&self.state);
        s.detached = false;
        s.finished = false;
        s.events.clear();
        s.held_signals.clear();
        s.held.clear();
    }

    /// gdb went away: forget breakpoints (the stub restored their bytes) and let
    /// every thread run; fork children still waiting for gdb run free.
    pub fn detach(&self) {
        let mut s = lock(&self.state);
        s.detached = true;
        s.fork_children.clear();
        s.session = None;
        s.breakpoints.clear();
        s.hw_points = [None; SLOTS];
        s.catch_syscalls = None;
        s.passed.clear();
        self.catching.store(false, Ordering::Relaxed);
        s.set_stopping(false);
        s.actions.clear();
        s.held.clear();
        s.generation += 1;
        self.changed.notify_all();
    }

    /// Records the connection gdb debugs this process over (a fork child keeps
    /// a copy of it, in case gdb follows it; an execve passes it on), and
    /// whether km started the payload for this gdb.
    pub fn set_session(&self, fd: RawFd, launched: bool) {
        let mut s = lock(&self.state);
        s.session = Some((fd, launched));
        s.relayed = false;
    }

    /// Records the relay a fork parent's stub serves this process over
    /// (`crate::gdb`'s relay), which an execve passes on.
    pub fn set_relayed_session(&self, fd: RawFd, launched: bool) {
        let mut s = lock(&self.state);
        s.session = Some((fd, launched));
        s.relayed = true;
    }

    /// The connection of the live gdb session, and whether km started the payload
    /// for it (none while a fork parent relays for this process).
    pub fn session(&self) -> Option<(RawFd, bool)> {
        let s = lock(&self.state);
        s.session.filter(|_| !s.detached && !s.relayed)
    }

    /// What an execve passes on: the live session's connection or relay,
    /// whether km started the payload for gdb, and whether it is a relay.
    pub fn exec_session(&self) -> Option<(RawFd, bool, bool)> {
        let s = lock(&self.state);
        let (fd, launched) = s.session.filter(|_| !s.detached)?;
        Some((fd, launched, s.relayed))
    }

    /// Holds the debugger's state across a host fork of km (see
    /// `syscalls::process::new_process`): every thread's syscall exit asks it
    /// whether gdb is attached, and one asking at the moment of the fork would
    /// leave the child's copy locked for ever (the child then hung at its first
    /// question). Taken before the other locks a fork holds: gdb's thread
    /// reads and writes guest memory under it, never the reverse.
    pub fn hold_for_fork(&self) -> ForkHold<'_> {
        ForkHold {
            _state: lock(&self.state),
        }
    }

    /// The turn to answer a relayed request, or to execve (see `relay_turn`).
    pub fn relay_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.relay_turn)
    }

    /// Keeps fork child `pid`'s decision pipe until gdb decides.
    pub fn add_fork_child(&self, pid: i32, decision: OwnedFd) {
        let mut s = lock(&self.state);
        if !s.detached {
            s.fork_children.insert(pid, decision);
        }
    }

    /// In a fork child km: closes its copies of the parent's decision pipes, so
    /// that a sibling whose parent's session ends sees end of file.
    pub fn close_fork_children(&self) {
        lock(&self.state).fork_children.clear();
    }

    /// Whether `pid` is a fork child waiting for gdb's decision.
    pub fn has_fork_child(&self, pid: i32) -> bool {
        lock(&self.state).fork_children.contains_key(&pid)
    }

    /// Tells fork child `pid` what to do; false if no such child waits.
    pub fn decide_fork_child(&self, pid: i32, decision: ForkDecision) -> bool {
        self.take_fork_child(pid, decision).is_some()
    }

    /// Tells fork child `pid` what to do and returns the channel it was told
    /// on (the relay's, with [`ForkDecision::Relay`]); `None` if no such child
    /// waits.
    pub fn take_fork_child(&self, pid: i32, decision: ForkDecision) -> Option<OwnedFd> {
        let channel = lock(&self.state).fork_children.remove(&pid)?;
        // A child that has died meanwhile is reaped by the parent payload.
        let _ = rustix::io::write(&channel, &[decision.byte()]);
        Some(channel)
    }

    /// The stub reported the end of the process to gdb.
    pub fn finish(&self) {
        lock(&self.state).finished = true;
        self.changed.notify_all();
    }

    /// Reports the end of the process and waits (bounded) until gdb was told.
    pub fn report_end(&self, event: Event, timeout: Duration) {
        self.report(event);
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.state);
        while !s.finished && !s.detached {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every inserted breakpoint, with its original byte.
    pub fn breakpoints(&self) -> Vec<(u64, u8)> {
        lock(&self.state)
            .breakpoints
            .iter()
            .map(|(a, b)| (*a, *b))
            .collect()
    }

    /// Records how many guest threads are alive (for all-stop completeness).
    pub fn set_live(&self, n: usize) {
        lock(&self.state).live = n;
        self.changed.notify_all();
    }

    /// Asks every thread to stop without an event (the stop gdb finds on attach).
    pub fn request_stop(&self) {
        lock(&self.state).set_stopping(true);
    }

    /// Queues `event` and asks every thread to stop.
    pub fn report(&self, event: Event) {
        let mut s = lock(&self.state);
        if s.detached {
            return;
        }
        s.set_stopping(true);
        s.events.push_back(event);
        self.changed.notify_all();
        drop(s);
        crate::kvm::kick::kick_others(rustix::thread::gettid().as_raw_nonzero().get());
    }

    /// Parks the calling thread (`tid`) with `state` until gdb resumes it.
    pub fn park(&self, tid: i32, state: Parked) -> Resume {
        let mut s = lock(&self.state);
        if s.detached {
            return Resume {
                regs: state.regs,
                fs_base: state.fs_base,
                dirty: false,
                xsave: None,
                action: Action::Continue,
                signal: None,
                siginfo: state.siginfo,
            };
        }
        let parked_since = crate::stats::start();
        let mut generation = s.generation;
        s.parked.insert(tid, (generation, state));
        self.changed.notify_all();
        loop {
            while s.generation == generation {
                s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            generation = s.generation;
            if s.detached || !s.lock_others || s.actions.contains_key(&tid) {
                break;
            }
            // Scheduler locking: stay stopped in the new generation.
            if let Some(entry) = s.parked.get_mut(&tid) {
                entry.0 = generation;
            }
            self.changed.notify_all();
        }
        let Some((_, parked)) = s.parked.remove(&tid) else {
            unreachable!("a parked thread's entry stays until it wakes")
        };
        crate::stats::spent(crate::stats::Span::Parked, parked_since);
        let (action, signal) = s.actions.get(&tid).copied().unwrap_or_default();
        Resume {
            regs: parked.regs,
            fs_base: parked.fs_base,
            dirty: parked.dirty,
            xsave: parked.dirty.then_some(parked.xsave),
            action,
            signal,
            siginfo: parked.siginfo,
        }
    }

    /// Threads stopped since the last resume.
    fn stopped(s: &State) -> usize {
        s.parked
            .values()
            .filter(|(g, _)| *g == s.generation)
            .count()
    }

    /// Whether `event` may be reported now: its thread is not one gdb left stopped.
    fn reportable(s: &State, event: &Event) -> bool {
        event.thread().is_none_or(|t| !s.held.contains(&t))
    }

    /// The next reportable event, waiting up to `timeout`, once every live thread is
    /// parked.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.state);
        loop {
            if let Some(i) = s.events.iter().position(|e| Self::reportable(&s, e)) {
                if !s.stopping {
                    // An event queued before the last resume: stop everything again.
                    s.set_stopping(true);
                    drop(s);
                    crate::kvm::kick::kick_all();
                    s = lock(&self.state);
                    continue;
                }
                let all_parked = Self::stopped(&s) >= s.live;
                if all_parked || matches!(s.events[i], Event::Exited(_) | Event::Killed(_)) {
                    return Self::take_event(&mut s, i);
                }
                // A kick only interrupts a blocking call already in progress: kick
                // the threads still running again until they all stop.
                let parked: Vec<i32> = s
                    .parked
                    .iter()
                    .filter(|(_, (g, _))| *g == s.generation)
                    .map(|(t, _)| *t)
                    .collect();
                drop(s);
                crate::kvm::kick::kick_all_but(&parked);
                s = lock(&self.state);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self
                .changed
                .wait_timeout(s, left.min(REKICK))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Removes event `i` to report it: a held signal's stop shows its siginfo.
    fn take_event(s: &mut State, i: usize) -> Option<Event> {
        let event = s.events.remove(i)?;
        if let Event::Signal(t, sig) = event
            && s.held_signals
                .get(&t)
                .is_some_and(|info| signo(info) == sig)
            && let Some((_, parked)) = s.parked.get_mut(&t)
        {
            parked.siginfo = s.held_signals.remove(&t);
        }
        Some(event)
    }

    /// Stops everything (gdb's Ctrl-C) and waits up to `timeout` for it; returns
    /// the thread to report stopped by `siginfo` (SIGINT). When everything is
    /// stopped already, or a stop waits to be reported (gdb's Ctrl-C raced it),
    /// the signal waits instead, as the SIGINT gdbserver sends a stopped process:
    /// gdb learns of it at its next resume, which stops again at once.
    pub fn interrupt(&self, timeout: Duration, siginfo: SigInfo) -> Option<i32> {
        {
            let mut s = lock(&self.state);
            let pending = s.events.iter().any(|e| Self::reportable(&s, e));
            if pending || (s.stopping && Self::stopped(&s) >= s.live) {
                Self::hold_signal(&mut s, siginfo);
                return None;
            }
        }
        let tid = self.pause(timeout)?;
        self.with_parked(tid, |p| p.siginfo = Some(siginfo));
        Some(tid)
    }

    /// Stops every thread without an event and waits up to `timeout` for it;
    /// returns a parked thread. Events that come meanwhile wait for the next
    /// resume (another process on the same gdb connection stopped).
    pub fn pause(&self, timeout: Duration) -> Option<i32> {
        lock(&self.state).set_stopping(true);
        crate::kvm::kick::kick_all();
        self.wait_stopped(timeout)
    }

    /// Queues a stop of a parked thread (the first) for signal `siginfo`, unless
    /// that signal waits already (Linux keeps one of each classic signal).
    fn hold_signal(s: &mut State, siginfo: SigInfo) {
        let sig = signo(&siginfo);
        if s.events
            .iter()
            .any(|e| matches!(e, Event::Signal(_, q) if *q == sig))
        {
            return;
        }
        let Some((&tid, _)) = s.parked.iter().find(|(_, (g, _))| *g == s.generation) else {
            return;
        };
        s.held_signals.insert(tid, siginfo);
        s.events.push_back(Event::Signal(tid, sig));
    }

    /// Waits up to `timeout` for every live thread to park; returns a parked one.
    /// A process whose first thread has not started yet (a fork child taken
    /// under gdb) waits for it too.
    pub fn wait_stopped(&self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.state);
        while (Self::stopped(&s) < s.live || s.live == 0) && !Instant::now().ge(&deadline) {
            let left = deadline.saturating_duration_since(Instant::now());
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.parked.keys().next().copied()
    }

    /// Resumes the parked threads with the actions gdb set; with `lock_others`, only
    /// the threads that have one. As gdbserver does, a resumed thread's event that
    /// gdb has not seen yet is reported instead, resuming nothing; a breakpoint event
    /// whose breakpoint gdb has removed since is dropped (the thread, parked at the
    /// breakpoint's address, runs the original instruction when it resumes).
    pub fn resume(&self, actions: HashMap<i32, (Action, Option<i32>)>, lock_others: bool) {
        let mut s = lock(&self.state);
        let State {
            events,
            parked,
            breakpoints,
            hw_points,
            ..
        } = &mut *s;
        events.retain(|e| match e {
            Event::Breakpoint(t) => parked
                .get(t)
                .is_none_or(|(_, p)| breakpoints.contains_key(&p.regs.rip)),
            Event::HwBreakpoint(t) => parked
                .get(t)
                .is_none_or(|(_, p)| hw_points.contains(&Some(HwPoint::Break(p.regs.rip)))),
            _ => true,
        });
        s.held = if lock_others {
            s.parked
                .keys()
                .filter(|t| !actions.contains_key(t))
                .copied()
                .collect()
        } else {
            HashSet::new()
        };
        if s.events.iter().any(|e| Self::reportable(&s, e)) {
            self.changed.notify_all();
            return;
        }
        s.actions = actions;
        s.lock_others = lock_others;
        s.set_stopping(false);
        s.generation += 1;
        self.changed.notify_all();
    }

    pub fn threads(&self) -> Vec<i32> {
        lock(&self.state).parked.keys().copied().collect()
    }

    pub fn with_parked<T>(&self, tid: i32, f: impl FnOnce(&mut Parked) -> T) -> Option<T> {
        lock(&self.state).parked.get_mut(&tid).map(|(_, p)| f(p))
    }

    /// Whether a breakpoint km inserted sits at `addr`.
    pub fn has_breakpoint(&self, addr: u64) -> bool {
        lock(&self.state).breakpoints.contains_key(&addr)
    }

    /// Inserts a breakpoint: `read`/`write` access guest memory.
    pub fn add_breakpoint(
        &self,
        addr: u64,
        read: impl Fn(u64) -> Option<u8>,
        write: impl Fn(u64, u8) -> bool,
    ) -> bool {
        let mut s = lock(&self.state);
        if s.breakpoints.contains_key(&addr) {
            return true;
        }
        let Some(orig) = read(addr) else { return false };
        if !write(addr, INT3) {
            return false;
        }
        s.breakpoints.insert(addr, orig);
        true
    }

    pub fn remove_breakpoint(&self, addr: u64, write: impl Fn(u64, u8) -> bool) -> bool {
        let mut s = lock(&self.state);
        match s.breakpoints.remove(&addr) {
            Some(orig) => {
                s.removed.insert(addr);
                write(addr, orig)
            }
            None => false,
        }
    }

    /// Whether a breakpoint of this session sat at `addr` and was removed.
    pub fn had_breakpoint(&self, addr: u64) -> bool {
        lock(&self.state).removed.contains(&addr)
    }

    /// Replaces inserted breakpoints in `buf` (guest memory at `addr`) by the
    /// original bytes, so that gdb never sees them.
    pub fn hide_breakpoints(&self, addr: u64, buf: &mut [u8]) {
        let s = lock(&self.state);
        for (&bp, &orig) in s.breakpoints.range(addr..addr + buf.len() as u64) {
            buf[(bp - addr) as usize] = orig;
        }
    }

    /// Watches `len` bytes at `addr` for writes; `read` reads guest memory.
    pub fn add_watch(&self, addr: u64, len: usize, read: impl Fn(u64, &mut [u8]) -> bool) -> bool {
        let mut old = vec![0u8; len];
        if !read(addr, &mut old) {
            return false;
        }
        lock(&self.state).watches.insert(addr, (len, old));
        true
    }

    pub fn remove_watch(&self, addr: u64) -> bool {
        lock(&self.state).watches.remove(&addr).is_some()
    }

    /// Waits for the calling thread's turn to single-step (see [`StepTurns`]).
    pub fn step_turn(&self) -> StepTurn<'_> {
        self.step_turns.take()
    }

    /// Whether write watchpoints are set (threads then run instruction by instruction).
    pub fn watching(&self) -> bool {
        let s = lock(&self.state);
        !s.watches.is_empty() && !s.detached
    }

    /// The first watched address whose contents changed since `seen` was recorded.
    pub fn watch_hit(
        &self,
        seen: &mut WatchSeen,
        read: impl Fn(u64, &mut [u8]) -> bool,
    ) -> Option<u64> {
        let s = lock(&self.state);
        let mut hit = None;
        for (&addr, (len, _)) in s.watches.iter() {
            let mut now = vec![0u8; *len];
            if !read(addr, &mut now) {
                continue;
            }
            if seen.get(&addr).is_some_and(|before| *before != now) && hit.is_none() {
                hit = Some(addr);
            }
            seen.insert(addr, now);
        }
        hit
    }

    /// Records in `seen` what the write watchpoints cover now, before a thread
    /// single-steps (holding its turn).
    pub fn watch_snapshot(&self, seen: &mut WatchSeen, read: impl Fn(u64, &mut [u8]) -> bool) {
        let s = lock(&self.state);
        seen.clear();
        for (&addr, (len, _)) in s.watches.iter() {
            let mut now = vec![0u8; *len];
            if read(addr, &mut now) {
                seen.insert(addr, now);
            }
        }
    }

    /// The pages that read and access watchpoints cover.
    pub fn hidden_pages(&self) -> BTreeSet<u64> {
        let s = lock(&self.state);
        s.access_watches
            .iter()
            .flat_map(|(&addr, &(len, _))| {
                (page_align_down(addr)..addr + len.max(1)).step_by(PAGE_SIZE as usize)
            })
            .collect()
    }

    /// Whether read or access watchpoints hide the page holding `addr`.
    pub fn hides(&self, addr: u64) -> bool {
        let page = page_align_down(addr);
        lock(&self.state)
            .access_watches
            .iter()
            .any(|(&a, &(len, _))| page_align_down(a) <= page && page < a + len.max(1))
    }

    /// The read or access watchpoint that an access at `addr` (a write or not) hits.
    pub fn access_hit(&self, addr: u64, write: bool) -> Option<(WatchKind, u64)> {
        let s = lock(&self.state);
        s.access_watches
            .iter()
            .filter(|&(&a, &(len, _))| (a..a + len).contains(&addr))
            .find(|&(_, &(_, kind))| kind == WatchKind::Access || !write)
            .map(|(&a, &(_, kind))| (kind, a))
    }

    /// Records a read or access watchpoint and returns the pages to hide for it (those
    /// no other watchpoint hides yet).
    pub fn add_access_watch(&self, addr: u64, len: u64, kind: WatchKind) -> Vec<u64> {
        let before = self.hidden_pages();
        lock(&self.state).access_watches.insert(addr, (len, kind));
        self.hidden_pages().difference(&before).copied().collect()
    }

    /// Forgets a read or access watchpoint; returns whether it existed and the pages
    /// to show again (those no other watchpoint hides).
    pub fn remove_access_watch(&self, addr: u64, kind: WatchKind) -> (bool, Vec<u64>) {
        let before = self.hidden_pages();
        let mut s = lock(&self.state);
        let found = s.access_watches.get(&addr).is_some_and(|w| w.1 == kind);
        if found {
            s.access_watches.remove(&addr);
        }
        drop(s);
        let shown = before.difference(&self.hidden_pages()).copied().collect();
        (found, shown)
    }

    /// Takes a free debug-register slot for `point` (true), unless the hardware
    /// cannot watch it or all four are taken (false). Set already: true.
    pub fn add_hw_point(&self, point: HwPoint) -> bool {
        let mut s = lock(&self.state);
        if s.hw_points.contains(&Some(point)) {
            return true;
        }
        if !point.slot().fits() {
            return false;
        }
        match s.hw_points.iter_mut().find(|p| p.is_none()) {
            Some(free) => {
                *free = Some(point);
                true
            }
            None => false,
        }
    }

    /// Frees the slot of `point`; false if it had none.
    pub fn remove_hw_point(&self, point: HwPoint) -> bool {
        let mut s = lock(&self.state);
        match s.hw_points.iter_mut().find(|p| **p == Some(point)) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Whether an `hbreak` holds a debug-register slot at `addr`.
    pub fn hw_break_at(&self, addr: u64) -> bool {
        lock(&self.state)
            .hw_points
            .contains(&Some(HwPoint::Break(addr)))
    }

    /// What debug-register slot `slot` holds.
    pub fn hw_point(&self, slot: usize) -> Option<HwPoint> {
        lock(&self.state).hw_points.get(slot).copied().flatten()
    }

    /// The debug registers every vCPU runs with (none once gdb has gone).
    pub fn debug_regs(&self) -> DebugRegs {
        let s = lock(&self.state);
        if s.detached {
            return DebugRegs::default();
        }
        DebugRegs::new(&s.hw_points.map(|p| p.map(|p| p.slot())))
    }

    /// Forgets every read and access watchpoint; returns the pages to show again.
    pub fn clear_access_watches(&self) -> Vec<u64> {
        let pages = self.hidden_pages();
        lock(&self.state).access_watches.clear();
        pages.into_iter().collect()
    }

    /// Records that gdb wrote `byte` over breakpoint `addr` (kept under the int3).
    pub fn write_under_breakpoint(&self, addr: u64, byte: u8) -> bool {
        let mut s = lock(&self.state);
        match s.breakpoints.get_mut(&addr) {
            Some(orig) => {
                *orig = byte;
                true
            }
            None => false,
        }
    }
}

/// What a debugger left in the payload's memory and page tables: breakpoint bytes
/// (address, original byte) and pages hidden for watchpoints.
#[derive(Default)]
pub struct Marks {
    pub breakpoints: Vec<(u64, u8)>,
    pub hidden: BTreeSet<u64>,
}

impl Debugger {
    /// Sets which syscalls stop the target at entry and return (`catch syscall`).
    pub fn set_catch_syscalls(&self, catch: Option<Option<BTreeSet<u64>>>) {
        self.catching.store(catch.is_some(), Ordering::Relaxed);
        lock(&self.state).catch_syscalls = catch;
    }

    /// Whether syscall `nr` stops the target (gdb attached and catching it).
    pub fn catches_syscall(&self, nr: u64) -> bool {
        if !self.catching.load(Ordering::Relaxed) {
            return false;
        }
        let s = lock(&self.state);
        !s.detached
            && s.catch_syscalls
                .as_ref()
                .is_some_and(|only| only.as_ref().is_none_or(|set| set.contains(&nr)))
    }

    /// Sets the signals delivered without a stop (gdb's QPassSignals).
    pub fn set_passed_signals(&self, signals: BTreeSet<i32>) {
        lock(&self.state).passed = signals;
    }

    /// Whether signal `sig` goes to the payload without stopping it for gdb.
    /// SIGTRAP, SIGILL and SIGSEGV stop all the same, as under gdbserver (which
    /// takes them for possible breakpoint traps and lets gdb pass them on).
    pub fn passes(&self, sig: i32) -> bool {
        !matches!(sig, libc::SIGTRAP | libc::SIGILL | libc::SIGSEGV)
            && lock(&self.state).passed.contains(&sig)
    }

    /// The marks gdb's breakpoints and watchpoints have left now.
    pub fn marks(&self) -> Marks {
        Marks {
            breakpoints: self.breakpoints(),
            hidden: self.hidden_pages(),
        }
    }

    /// Takes over `breakpoints` (address, original byte) that sit in memory
    /// already: a vfork child gdb follows, whose memory gdb takes for its
    /// parent's, with the parent's breakpoints in it.
    pub fn adopt_breakpoints(&self, breakpoints: Vec<(u64, u8)>) {
        lock(&self.state).breakpoints.extend(breakpoints);
    }
}
