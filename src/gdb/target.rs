//! The gdbstub `Target`: registers and memory of the stopped guest, resume actions
//! and software breakpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::arch::{KmRegs, KmX86_64};
use super::host::HostFiles;
use super::processes::relayed;
use super::relay::Relay;
use gdbstub::arch::Registers;
use gdbstub::common::Pid;
use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::auxv::AuxvOps;
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::exec_file::ExecFileOps;
use gdbstub::target::ext::extended_mode::{
    Args, AttachKind, ExtendedMode, ExtendedModeOps, ShouldTerminate,
};
use gdbstub::target::ext::host_io::HostIoOps;
use gdbstub::target::ext::thread_names::ThreadNamesOps;
use gdbstub::target::{Target, TargetError, TargetResult};

use crate::guest::landing_pad::{USER_CS, USER_DS};
use crate::kernel::process::Guest;
use crate::kernel::ptrace::{self, Action, Debugger, HwPoint};

pub struct KmTarget {
    pub(super) guest: Arc<Guest>,
    pub(super) debugger: Arc<Debugger>,
    pub(super) files: HostFiles,
    pub(super) actions: HashMap<i32, (Action, Option<i32>)>,
    pub(super) lock_others: bool,
    /// Processes gdb continues as a whole (`vCont;c:p<pid>.-1`).
    pub(super) continued: BTreeSet<i32>,
    /// km started the payload for this gdb (`-g`), rather than gdb attaching to
    /// a running one (`--gdb-listen`): gdb's `quit` then kills it, as gdbserver's.
    pub(super) launched: bool,
    /// Addresses of gdb's breakpoints by kind (`break` and `hbreak` share km's int3
    /// at an address both use).
    breakpoints: [BTreeSet<u64>; 2],
    /// The child of the last fork reported to gdb.
    pub(super) last_fork: Option<i32>,
    /// The fork child gdb follows (it detached this process for it): it takes
    /// the session over once this stub has ended.
    pub(super) followed: Option<i32>,
    /// The fork children gdb keeps (`detach-on-fork off`), by pid.
    pub(super) relays: BTreeMap<i32, Relay>,
    /// The thread selected when gdb's last breakpoint packet came.
    pub(super) point_thread: Option<i32>,
}

/// Which of gdb's breakpoint kinds: `Z0` or `Z1`.
#[derive(Clone, Copy)]
enum BreakKind {
    Software = 0,
    Hardware = 1,
}

impl KmTarget {
    /// The target of `guest`; breakpoints already in the debugger (a vfork
    /// child's, taken over from its parent) count as gdb's software ones.
    pub fn new(guest: Arc<Guest>, debugger: Arc<Debugger>, launched: bool) -> Self {
        let inherited = debugger.breakpoints().into_iter().map(|(a, _)| a).collect();
        KmTarget {
            guest,
            debugger,
            launched,
            files: HostFiles::default(),
            actions: HashMap::new(),
            lock_others: false,
            continued: BTreeSet::new(),
            breakpoints: [inherited, BTreeSet::new()],
            last_fork: None,
            followed: None,
            relays: BTreeMap::new(),
            point_thread: None,
        }
    }

    /// Inserts gdb's breakpoint of `kind` at `addr`: an int3, unless one is there.
    fn add_breakpoint(&mut self, addr: u64, kind: BreakKind) -> bool {
        let mem = &self.guest.vm.mem;
        let inserted = self.debugger.add_breakpoint(
            addr,
            |a| mem.read_obj::<u8>(a).ok(),
            |a, b| mem.write_bytes(a, &[b]).is_ok(),
        );
        if inserted {
            self.breakpoints[kind as usize].insert(addr);
        }
        inserted
    }

    /// Removes gdb's breakpoint of `kind` at `addr`: the int3 goes once no kind
    /// uses the address.
    fn remove_breakpoint(&mut self, addr: u64, kind: BreakKind) -> bool {
        if !self.breakpoints[kind as usize].remove(&addr) {
            return false;
        }
        if self.breakpoints.iter().any(|set| set.contains(&addr)) {
            return true;
        }
        let mem = &self.guest.vm.mem;
        self.debugger
            .remove_breakpoint(addr, |a, b| mem.write_bytes(a, &[b]).is_ok())
    }

    pub fn debugger(&self) -> &Debugger {
        &self.debugger
    }

    /// Whether the vCPUs' debug registers fire (hardware KVM, not PVM).
    fn debug_registers_fire(&self) -> bool {
        self.guest.vm.kvm.debug_registers_fire()
    }
}

/// Offsets in the FXSAVE area (the first 512 bytes of the XSAVE image).
const FX_ST0: usize = 32;
const FX_XMM0: usize = 160;
const FX_MXCSR: usize = 24;
/// XSAVE header: XSTATE_BV, the components the image holds (others are in their
/// initial state, all zero for YMM).
const XSTATE_BV: usize = 512;
/// The YMM_Hi128 component (XSAVE feature 2) in the standard format KVM uses.
const XSAVE_YMM_HI: usize = 576;
const YMM_BIT: u64 = 1 << 2;

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

fn u16_at(b: &[u8], o: usize) -> u32 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u32
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

impl Target for KmTarget {
    type Arch = KmX86_64;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_auxv(&mut self) -> Option<AuxvOps<'_, Self>> {
        Some(self)
    }

    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        Some(self)
    }

    fn support_catch_syscalls(
        &mut self,
    ) -> Option<gdbstub::target::ext::catch_syscalls::CatchSyscallsOps<'_, Self>> {
        Some(self)
    }

    fn support_libraries_svr4(
        &mut self,
    ) -> Option<gdbstub::target::ext::libraries::LibrariesSvr4Ops<'_, Self>> {
        Some(self)
    }

    fn support_extended_mode(&mut self) -> Option<ExtendedModeOps<'_, Self>> {
        Some(self)
    }

    fn support_host_io(&mut self) -> Option<HostIoOps<'_, Self>> {
        Some(self)
    }

    fn support_fork_children(
        &mut self,
    ) -> Option<gdbstub::target::ext::fork_children::ForkChildrenOps<'_, Self>> {
        Some(self)
    }

    /// Acknowledgements stay on: a session moves between km processes (to a
    /// fork child gdb follows, to the km an execve starts), and each new stub
    /// then continues it in the mode it started with.
    fn use_no_ack_mode(&self) -> bool {
        false
    }

    /// The km an execve starts goes on with the session and reports the exec.
    fn use_exec_stop_reason(&self) -> bool {
        true
    }

    fn support_siginfo(&mut self) -> Option<gdbstub::target::ext::siginfo::SiginfoOps<'_, Self>> {
        Some(self)
    }

    fn support_pass_signals(
        &mut self,
    ) -> Option<gdbstub::target::ext::pass_signals::PassSignalsOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for KmTarget {
    fn read_registers(&mut self, all: &mut KmRegs, tid: Tid) -> TargetResult<(), Self> {
        if let Some(relay) = self.relay_for(tid.get() as i32) {
            let bytes = relayed(relay.read_registers(tid.get() as i32))?;
            return all
                .gdb_deserialize(&bytes)
                .map_err(|()| TargetError::NonFatal);
        }
        self.debugger
            .with_parked(tid.get() as i32, |p| {
                all.orig_rax = p.orig_rax;
                all.fs_base = p.fs_base;
                all.gs_base = p.gs_base;
                let regs = &mut all.core;
                let r = &p.regs;
                regs.regs = [
                    r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10,
                    r.r11, r.r12, r.r13, r.r14, r.r15,
                ];
                regs.rip = r.rip;
                regs.eflags = r.rflags as u32;
                regs.segments.cs = USER_CS as u32;
                regs.segments.ss = USER_DS as u32;
                let fx = &p.xsave;
                if fx.len() >= 512 {
                    for (i, st) in regs.st.iter_mut().enumerate() {
                        st.copy_from_slice(&fx[FX_ST0 + 16 * i..FX_ST0 + 16 * i + 10]);
                    }
                    regs.fpu.fctrl = u16_at(fx, 0);
                    regs.fpu.fstat = u16_at(fx, 2);
                    regs.fpu.ftag = fx[4] as u32;
                    regs.fpu.fop = u16_at(fx, 6);
                    regs.fpu.fioff = u32_at(fx, 8);
                    regs.fpu.fooff = u32_at(fx, 16);
                    for (i, x) in regs.xmm.iter_mut().enumerate() {
                        *x = u128::from_le_bytes(
                            fx[FX_XMM0 + 16 * i..FX_XMM0 + 16 * i + 16]
                                .try_into()
                                .expect("16"),
                        );
                    }
                    regs.mxcsr = u32_at(fx, FX_MXCSR);
                }
                if fx.len() >= XSAVE_YMM_HI + 256 && u64_at(fx, XSTATE_BV) & YMM_BIT != 0 {
                    for (i, y) in all.ymm_hi.iter_mut().enumerate() {
                        let at = XSAVE_YMM_HI + 16 * i;
                        *y = u128::from_le_bytes(fx[at..at + 16].try_into().expect("16"));
                    }
                }
            })
            .ok_or(TargetError::NonFatal)
    }

    fn write_registers(&mut self, all: &KmRegs, tid: Tid) -> TargetResult<(), Self> {
        if let Some(relay) = self.relay_for(tid.get() as i32) {
            let mut bytes = Vec::new();
            all.gdb_serialize(|b| bytes.push(b.unwrap_or(0)));
            return relayed(relay.write_registers(tid.get() as i32, &bytes));
        }
        self.debugger
            .with_parked(tid.get() as i32, |p| {
                p.fs_base = all.fs_base;
                p.gs_base = all.gs_base;
                let regs = &all.core;
                let r = &mut p.regs;
                [
                    r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10,
                    r.r11, r.r12, r.r13, r.r14, r.r15,
                ] = regs.regs;
                r.rip = regs.rip;
                r.rflags = regs.eflags as u64;
                if p.xsave.len() >= 512 {
                    for (i, x) in regs.xmm.iter().enumerate() {
                        p.xsave[FX_XMM0 + 16 * i..FX_XMM0 + 16 * i + 16]
                            .copy_from_slice(&x.to_le_bytes());
                    }
                    p.xsave[FX_MXCSR..FX_MXCSR + 4].copy_from_slice(&regs.mxcsr.to_le_bytes());
                }
                if super::arch::avx() && p.xsave.len() >= XSAVE_YMM_HI + 256 {
                    for (i, y) in all.ymm_hi.iter().enumerate() {
                        let at = XSAVE_YMM_HI + 16 * i;
                        p.xsave[at..at + 16].copy_from_slice(&y.to_le_bytes());
                    }
                    let bv = u64_at(&p.xsave, XSTATE_BV) | YMM_BIT;
                    p.xsave[XSTATE_BV..XSTATE_BV + 8].copy_from_slice(&bv.to_le_bytes());
                }
                p.dirty = true;
            })
            .ok_or(TargetError::NonFatal)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        if let Some(relay) = self.relay_for(tid.get() as i32) {
            return relayed(relay.read_memory(tid.get() as i32, start, data));
        }
        // gdb may read any mapped memory, whatever its protection.
        let mem = &self.guest.vm.mem;
        let mut n = 0;
        while n < data.len() {
            let at = start + n as u64;
            let chunk =
                (crate::memory::page_align_down(at) + crate::memory::PAGE_SIZE - at) as usize;
            let len = chunk.min(data.len() - n);
            if mem.read_bytes(at, &mut data[n..n + len]).is_err() {
                break;
            }
            n += len;
        }
        if n == 0 && !data.is_empty() {
            return Err(TargetError::Errno(libc::EFAULT as u8));
        }
        self.debugger.hide_breakpoints(start, &mut data[..n]);
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        if let Some(relay) = self.relay_for(tid.get() as i32) {
            return relayed(relay.write_memory(tid.get() as i32, start, data));
        }
        for (i, &b) in data.iter().enumerate() {
            let at = start + i as u64;
            if !self.debugger.write_under_breakpoint(at, b) {
                self.guest
                    .vm
                    .mem
                    .write_bytes(at, &[b])
                    .map_err(|_| TargetError::Errno(libc::EFAULT as u8))?;
            }
        }
        Ok(())
    }

    fn list_active_threads(
        &mut self,
        thread_is_active: &mut dyn FnMut(Tid),
    ) -> Result<(), Self::Error> {
        let relayed = self
            .relays
            .values()
            .flat_map(|r| r.threads.iter().map(|(t, _)| *t));
        for t in self.debugger.threads().into_iter().chain(relayed) {
            if let Some(tid) = Tid::new(t as usize) {
                thread_is_active(tid);
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_names(&mut self) -> Option<ThreadNamesOps<'_, Self>> {
        Some(self)
    }
}

fn signal(s: Option<Signal>) -> Option<i32> {
    s.and_then(super::signals::from_gdb)
}

impl MultiThreadResume for KmTarget {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.resume_processes();
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.actions.clear();
        self.continued.clear();
        self.lock_others = false;
        Ok(())
    }

    fn set_resume_action_continue_process(
        &mut self,
        pid: Pid,
        _signal: Option<Signal>,
    ) -> Result<bool, Self::Error> {
        self.continued
            .insert(i32::try_from(pid.get()).map_err(|_| "pid out of range")?);
        Ok(true)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        sig: Option<Signal>,
    ) -> Result<(), Self::Error> {
        self.actions
            .insert(tid.get() as i32, (Action::Continue, signal(sig)));
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSingleStep for KmTarget {
    fn set_resume_action_step(&mut self, tid: Tid, sig: Option<Signal>) -> Result<(), Self::Error> {
        self.actions
            .insert(tid.get() as i32, (Action::Step, signal(sig)));
        Ok(())
    }
}

impl MultiThreadSchedulerLocking for KmTarget {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.lock_others = true;
        Ok(())
    }
}

impl Breakpoints for KmTarget {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

/// Watchpoints: on hardware KVM in a debug-register slot when one is free and the
/// range fits one. Otherwise (and always on PVM, where debug registers do not fire)
/// write watchpoints single-step the running threads and compare the watched
/// bytes; read and access watchpoints hide the pages they cover (see
/// `crate::debug`).
impl HwWatchpoint for KmTarget {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        gdb_kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        if let Some(relay) = self.point_relay() {
            return relayed(relay.point(true, watch_type(gdb_kind), addr, len));
        }
        if self.debug_registers_fire()
            && self
                .debugger
                .add_hw_point(HwPoint::Watch(watch_kind(gdb_kind), addr, len))
        {
            return Ok(true);
        }
        let kind = watch_kind(gdb_kind);
        if kind == ptrace::WatchKind::Write {
            let mem = &self.guest.vm.mem;
            return Ok(self
                .debugger
                .add_watch(addr, len as usize, |a, buf| mem.read_bytes(a, buf).is_ok()));
        }
        for page in self.debugger.add_access_watch(addr, len, kind) {
            let hidden = self.guest.hide_page(page).map_err(|e| {
                crate::eprintln_whole!(
                    "km: {}: gdb stub: hiding page {page:#x}: {e:#}",
                    self.guest.config.name
                );
                TargetError::<&'static str>::NonFatal
            });
            if !matches!(hidden, Ok(true)) {
                // Not mapped: refuse the watchpoint (gdb says it cannot insert it).
                self.remove_hw_watchpoint(addr, len, gdb_kind)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        if let Some(relay) = self.point_relay() {
            return relayed(relay.point(false, watch_type(kind), addr, len));
        }
        if self
            .debugger
            .remove_hw_point(HwPoint::Watch(watch_kind(kind), addr, len))
        {
            return Ok(true);
        }
        let kind = watch_kind(kind);
        if kind == ptrace::WatchKind::Write {
            return Ok(self.debugger.remove_watch(addr));
        }
        let (found, shown) = self.debugger.remove_access_watch(addr, kind);
        for page in shown {
            self.guest.show_page(page).map_err(|e| {
                crate::eprintln_whole!(
                    "km: {}: gdb stub: showing page {page:#x}: {e:#}",
                    self.guest.config.name
                );
                TargetError::NonFatal
            })?;
        }
        Ok(found)
    }
}

/// gdb's `Z` type of a watchpoint kind.
fn watch_type(kind: WatchKind) -> u8 {
    match kind {
        WatchKind::Write => 2,
        WatchKind::Read => 3,
        WatchKind::ReadWrite => 4,
    }
}

impl SwBreakpoint for KmTarget {
    fn add_sw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        if let Some(relay) = self.point_relay() {
            return relayed(relay.point(true, BreakKind::Software as u8, addr, kind as u64));
        }
        Ok(self.add_breakpoint(addr, BreakKind::Software))
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        if let Some(relay) = self.point_relay() {
            return relayed(relay.point(false, BreakKind::Software as u8, addr, kind as u64));
        }
        Ok(self.remove_breakpoint(addr, BreakKind::Software))
    }
}

/// `hbreak`: on hardware KVM a debug-register slot while one is free. Otherwise
/// (and always on PVM, where debug registers do not fire) km's int3; gdb only needs
/// its semantics (it also works in read-only code, which km writes through the
/// host's view of guest memory).
impl HwBreakpoint for KmTarget {
    fn add_hw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        if let Some(relay) = self.point_relay() {
            return relayed(relay.point(true, BreakKind::Hardware as u8, addr, kind as u64));
        }
        if self.debug_registers_fire() && self.debugger.add_hw_point(HwPoint::Break(addr)) {
            return Ok(true);
        }
        Ok(self.add_breakpoint(addr, BreakKind::Hardware))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        if let Some(relay) = self.point_relay() {
            return relayed(relay.point(false, BreakKind::Hardware as u8, addr, kind as u64));
        }
        if self.debugger.remove_hw_point(HwPoint::Break(addr)) {
            return Ok(true);
        }
        Ok(self.remove_breakpoint(addr, BreakKind::Hardware))
    }
}

/// gdb's watchpoint kind as km's.
fn watch_kind(kind: WatchKind) -> ptrace::WatchKind {
    match kind {
        WatchKind::Write => ptrace::WatchKind::Write,
        WatchKind::Read => ptrace::WatchKind::Read,
        WatchKind::ReadWrite => ptrace::WatchKind::Access,
    }
}

/// Only what tells gdb how the payload came to be debugged (`qAttached`, so that
/// `quit` kills a payload km started and detaches from one gdb attached to), its
/// real pid, and answers `vKill`; km serves one payload and the fork children
/// gdb keeps, so it neither runs nor attaches to others.
impl ExtendedMode for KmTarget {
    fn run(&mut self, _: Option<&[u8]>, _: Args<'_, '_>) -> TargetResult<Pid, Self> {
        Err(TargetError::NonFatal)
    }

    fn attach(&mut self, _: Pid) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }

    fn query_if_attached(&mut self, _: Pid) -> TargetResult<AttachKind, Self> {
        Ok(if self.launched {
            AttachKind::Run
        } else {
            AttachKind::Attach
        })
    }

    /// `vKill` of a kept fork child kills that child; the session goes on.
    fn kill(&mut self, pid: Option<Pid>) -> TargetResult<ShouldTerminate, Self> {
        let child = pid.and_then(|p| i32::try_from(p.get()).ok());
        if child.is_some_and(|p| self.release_relay(p, true)) {
            return Ok(ShouldTerminate::No);
        }
        Ok(ShouldTerminate::Yes)
    }

    fn restart(&mut self) -> Result<(), Self::Error> {
        Err("km cannot restart its payload")
    }

    fn support_current_active_pid(
        &mut self,
    ) -> Option<gdbstub::target::ext::extended_mode::CurrentActivePidOps<'_, Self>> {
        Some(self)
    }
}

/// `catch syscall`: the vCPU threads stop at entry (before km serves the syscall)
/// and at return (see `vcpu::run_thread`).
impl gdbstub::target::ext::catch_syscalls::CatchSyscalls for KmTarget {
    fn enable_catch_syscalls(
        &mut self,
        filter: Option<gdbstub::target::ext::catch_syscalls::SyscallNumbers<'_, u64>>,
    ) -> TargetResult<(), Self> {
        self.debugger
            .set_catch_syscalls(Some(filter.map(|numbers| numbers.collect())));
        Ok(())
    }

    fn disable_catch_syscalls(&mut self) -> TargetResult<(), Self> {
        self.debugger.set_catch_syscalls(None);
        Ok(())
    }
}
