//! A vCPU: long-mode set-up for user code, and the exit loop.
//!
//! The hot path is one KVM_RUN per guest syscall: the landing pad leaves the request
//! in guest memory, so serving it needs no register ioctl at all.

pub mod kick;

use anyhow::{Context, Result};
use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs, kvm_segment, kvm_xcrs};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::landing_pad::{
    CpuArea, EXC_PORT, HC_PORT, KERNEL_CS, SYS_BASE, SYS_SIZE, USER_CS, USER_DS, USER32_CS,
};
use crate::memory::GuestMemory;
use std::sync::Arc;

use crate::crash;
use crate::debug::{self, Event};
use crate::process::{Guest, Thread, exit_payload};
use crate::signals::{self, Point};
use crate::syscalls::{self, Outcome};
use crate::trace;
use crate::trace::Category;
use crate::vm::{Backend, Vm};

const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

const CR0_PE: u64 = 1;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const CR4_FSGSBASE: u64 = 1 << 16;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// RFLAGS bits cleared on `syscall` on hardware KVM (TF, DF, IF, AC, NT, like Linux).
/// On PVM the pad runs at CPL3 and returns with `jmp`, which cannot restore flags, so
/// nothing is masked there.
const HW_SYSCALL_MASK: u64 = 0x4_7700;

/// How a payload's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// exit/exit_group with this status.
    Exited(i32),
    /// Killed by this signal.
    Killed(i32),
}

/// The host's enabled XSAVE features (XCR0), which PVM guests run with.
/// The host's time-stamp counter.
pub fn host_tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86-64.
    unsafe { std::arch::x86_64::_rdtsc() }
}

pub fn host_xcr0() -> u64 {
    if !std::arch::is_x86_feature_detected!("xsave") {
        return 3;
    }
    // SAFETY: XGETBV with ECX = 0 is valid once XSAVE is enabled (checked above).
    unsafe { std::arch::x86_64::_xgetbv(0) }
}

/// Why KVM_RUN returned to km.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The guest wrote to this I/O port (the landing pad's hypercalls).
    Io(u16),
    /// A kick (a host signal) interrupted the vCPU.
    Interrupted,
    /// KVM single-stepped one instruction at this address (KVM_EXIT_DEBUG).
    Debug(u64),
    /// The guest did something Linux would kill it for with this signal.
    Fatal(i32),
}

pub struct Vcpu {
    fd: VcpuFd,
    pub area: CpuArea,
}

fn user_segment(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 11 } else { 3 },
        present: 1,
        dpl: 3,
        db: if code { 0 } else { 1 },
        s: 1,
        l: if code { 1 } else { 0 },
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

fn msr(index: u32, data: u64) -> kvm_msr_entry {
    kvm_msr_entry {
        index,
        data,
        ..Default::default()
    }
}

impl Vcpu {
    pub(crate) fn new(fd: VcpuFd, area: CpuArea, vm: &Vm) -> Result<Vcpu> {
        let has = |f: u32, reg: fn(&kvm_bindings::kvm_cpuid_entry2) -> u32, bit: u32| {
            vm.cpuid(f, 0).is_some_and(|e| reg(&e) & (1 << bit) != 0)
        };
        let xsave = has(1, |e| e.ecx, 26);
        let fsgsbase = has(7, |e| e.ebx, 0);

        let mut s = fd.get_sregs().context("KVM_GET_SREGS")?;
        s.cr0 = CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE;
        s.cr3 = vm.page_table_root();
        s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
        if xsave {
            s.cr4 |= CR4_OSXSAVE;
        }
        if fsgsbase {
            s.cr4 |= CR4_FSGSBASE;
        }
        s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
        s.gdt.base = CpuArea::GDT_BASE;
        s.gdt.limit = CpuArea::GDT_LIMIT;
        s.idt.base = CpuArea::IDT_BASE;
        s.idt.limit = CpuArea::IDT_LIMIT;
        s.tr = kvm_segment {
            base: area.tss(),
            limit: area.tss_limit() as u32,
            selector: area.tss_selector(),
            type_: 11,
            present: 1,
            ..Default::default()
        };
        s.cs = user_segment(USER_CS, true);
        s.ss = user_segment(USER_DS, false);
        // Linux starts 64-bit processes with null DS/ES/FS/GS.
        let null = user_segment(0, false);
        s.ds = null;
        s.es = null;
        s.fs = null;
        s.gs = null;
        fd.set_sregs(&s).context("KVM_SET_SREGS")?;

        let mask = match vm.backend {
            Backend::Pvm => 0,
            Backend::Hardware => HW_SYSCALL_MASK,
        };
        let star = ((USER32_CS as u64 & !3) << 48) | ((KERNEL_CS as u64) << 32);
        let msrs = Msrs::from_entries(&[
            msr(MSR_STAR, star),
            msr(MSR_LSTAR, area.pad()),
            msr(MSR_CSTAR, 0),
            msr(MSR_SYSCALL_MASK, mask),
            msr(MSR_FS_BASE, 0),
            msr(MSR_GS_BASE, 0),
            msr(MSR_KERNEL_GS_BASE, 0),
        ])
        .context("building the MSR list")?;
        let n = fd.set_msrs(&msrs).context("KVM_SET_MSRS")?;
        anyhow::ensure!(n == msrs.as_slice().len(), "KVM_SET_MSRS set only {n} MSRs");

        if xsave && let Some(leaf) = vm.cpuid(0xd, 0) {
            let mut xcrs = kvm_xcrs {
                nr_xcrs: 1,
                ..Default::default()
            };
            xcrs.xcrs[0].xcr = 0;
            xcrs.xcrs[0].value = leaf.eax as u64 | ((leaf.edx as u64) << 32);
            fd.set_xcrs(&xcrs).context("KVM_SET_XCRS")?;
        }
        trace!(
            Category::Kvm,
            "vcpu {} ready: pad {:#x} xsave {xsave} fsgsbase {fsgsbase}",
            area.id,
            area.pad()
        );
        Ok(Vcpu { fd, area })
    }

    /// Points the vCPU at user code: `rip`, `rsp`, all other registers zero.
    pub fn start(&self, rip: u64, rsp: u64) -> Result<()> {
        let regs = kvm_regs {
            rip,
            rsp,
            rflags: 0x202,
            ..Default::default()
        };
        self.fd.set_regs(&regs).context("KVM_SET_REGS")
    }

    pub fn set_fs_base(&self, base: u64) -> Result<()> {
        let msrs =
            Msrs::from_entries(&[msr(MSR_FS_BASE, base)]).context("building the MSR list")?;
        self.fd.set_msrs(&msrs).context("KVM_SET_MSRS FS_BASE")?;
        Ok(())
    }

    pub fn fs_base(&self) -> Result<u64> {
        Ok(self.fd.get_sregs().context("KVM_GET_SREGS")?.fs.base)
    }

    /// Lets a kick interrupt this vCPU while the calling thread drives it.
    pub fn make_kickable(&mut self) -> Option<usize> {
        kick::register(self.fd.get_kvm_run())
    }

    /// The FPU/SSE/AVX state (KVM's XSAVE image, 4 KiB).
    pub fn xsave(&self) -> Result<Vec<u8>> {
        let x = self.fd.get_xsave().context("KVM_GET_XSAVE")?;
        Ok(x.region.iter().flat_map(|w| w.to_ne_bytes()).collect())
    }

    pub fn set_xsave(&self, bytes: &[u8]) -> Result<()> {
        let mut x = kvm_bindings::kvm_xsave::default();
        for (w, c) in x.region.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_ne_bytes(c.try_into().expect("4 bytes"));
        }
        // SAFETY: `x` is a complete kvm_xsave; KVM validates its contents.
        unsafe { self.fd.set_xsave(&x) }.context("KVM_SET_XSAVE")
    }

    /// FS and GS base (the thread pointer is FS base).
    pub fn segment_bases(&self) -> Result<(u64, u64)> {
        let s = self.fd.get_sregs().context("KVM_GET_SREGS")?;
        Ok((s.fs.base, s.gs.base))
    }

    pub fn cr2(&self) -> Result<u64> {
        Ok(self.fd.get_sregs().context("KVM_GET_SREGS")?.cr2)
    }

    /// Whether the vCPU is executing km's own guest code (pad or exception stub).
    pub fn in_landing_pad(&self) -> Result<bool> {
        let rip = self.regs()?.rip;
        Ok((SYS_BASE..SYS_BASE + SYS_SIZE).contains(&rip))
    }

    /// Turns KVM's single-step on or off. On PVM, TF set by the monitor on a vCPU
    /// leaving an emulated CPL0 stub does not trap, but KVM's single-step does, and
    /// it raises #DB through the guest IDT like TF would.
    pub fn set_single_step(&self, on: bool) -> Result<()> {
        let control = if on {
            kvm_bindings::KVM_GUESTDBG_ENABLE | kvm_bindings::KVM_GUESTDBG_SINGLESTEP
        } else {
            0
        };
        let dbg = kvm_bindings::kvm_guest_debug {
            control,
            ..Default::default()
        };
        self.fd.set_guest_debug(&dbg).context("KVM_SET_GUEST_DEBUG")
    }

    /// Resumes user code with exactly `regs`. From an exception stub the vCPU returns
    /// through the stub's `iretq` with an edited frame (which also honours TF for
    /// single-stepping); from the hardware-KVM pad (CPL0) the segments are switched
    /// to user ones; at CPL3 setting the registers is enough.
    pub fn enter_user(&self, mem: &GuestMemory, regs: &kvm_regs) -> Result<()> {
        let current = self.regs()?;
        if CpuArea::in_stubs(current.rip) && regs.rflags & crate::debug::TF == 0 {
            self.area
                .set_exception_return(mem, regs.rip, regs.rsp, regs.rflags)?;
            return self.set_regs(&kvm_regs {
                rip: current.rip,
                rsp: current.rsp,
                rflags: current.rflags,
                ..*regs
            });
        }
        let mut s = self.fd.get_sregs().context("KVM_GET_SREGS")?;
        if s.cs.dpl != 3 {
            s.cs = user_segment(USER_CS, true);
            s.ss = user_segment(USER_DS, false);
            self.fd.set_sregs(&s).context("KVM_SET_SREGS")?;
        }
        self.set_regs(regs)
    }

    pub fn regs(&self) -> Result<kvm_regs> {
        self.fd.get_regs().context("KVM_GET_REGS")
    }

    pub fn set_regs(&self, regs: &kvm_regs) -> Result<()> {
        self.fd.set_regs(regs).context("KVM_SET_REGS")
    }

    /// Runs the vCPU until the guest writes to an I/O port (returned) or does
    /// something that kills it (the signal Linux would send).
    /// Relates this vCPU's TSC to the host's: reads the guest TSC (its MSR, which is
    /// what `rdtsc` returns in the guest on both backends) between two host reads.
    /// Returns (guest TSC, host TSC just before), so the guest value is at most one
    /// ioctl younger than the host's.
    pub fn guest_tsc(&self) -> Result<(u64, u64)> {
        let mut msrs =
            Msrs::from_entries(&[msr(MSR_IA32_TSC, 0)]).context("building the MSR list")?;
        let host = host_tsc();
        self.fd.get_msrs(&mut msrs).context("KVM_GET_MSRS TSC")?;
        Ok((msrs.as_slice()[0].data, host))
    }

    /// The guest TSC's frequency in kHz (KVM_GET_TSC_KHZ).
    pub fn tsc_khz(&self) -> Result<u32> {
        self.fd.get_tsc_khz().context("KVM_GET_TSC_KHZ")
    }

    /// A KVM_RUN that enters no guest code (immediate_exit): what KVM sets up on a
    /// VM's first run (its NX huge-page recovery thread, which counts against
    /// process limits) is done here, and its failure returned, instead of every
    /// later KVM_RUN failing with EAGAIN.
    pub fn first_run(&mut self) -> Result<()> {
        self.fd.set_kvm_immediate_exit(1);
        let ran = self.fd.run().map(|_| ());
        self.fd.set_kvm_immediate_exit(0);
        match ran {
            Err(e) if e.errno() != libc::EINTR => Err(e).context("KVM_RUN (first run)"),
            _ => Ok(()),
        }
    }

    pub fn run_to_exit(&mut self) -> Result<Exit> {
        Ok(match self.fd.run() {
            Ok(VcpuExit::IoOut(port, _)) => Exit::Io(port),
            Ok(VcpuExit::MmioRead(addr, _)) | Ok(VcpuExit::MmioWrite(addr, _)) => {
                trace!(
                    Category::Kvm,
                    "access to unbacked guest-physical address {addr:#x}"
                );
                Exit::Fatal(libc::SIGSEGV)
            }
            Ok(VcpuExit::Debug(arch)) => Exit::Debug(arch.pc),
            Ok(VcpuExit::Shutdown) => {
                trace!(
                    Category::Kvm,
                    "vcpu {} shut down (triple fault)", self.area.id
                );
                Exit::Fatal(libc::SIGSEGV)
            }
            Ok(other) => {
                let what = format!("{other:?}");
                let rip = self.fd.get_regs().map_or(0, |r| r.rip);
                anyhow::bail!("unexpected KVM exit {what} at rip {rip:#x}");
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                Exit::Interrupted
            }
            Err(e) if e.errno() == libc::EFAULT => {
                // KVM could not map the host page behind a guest access (for
                // example a write to a read-only shared file mapping).
                trace!(Category::Kvm, "KVM_RUN: EFAULT on a guest access");
                Exit::Fatal(libc::SIGSEGV)
            }
            Err(e) => return Err(e).context("KVM_RUN"),
        })
    }
}

/// The exit loop of one guest thread: serves its syscalls and exceptions and
/// delivers its signals until it exits. exit_group and fatal signals end the whole
/// process from here. Under gdb, debug events park the thread (see `crate::debug`).
pub fn run_thread(guest: &Arc<Guest>, mut thread: Thread, initial_stop: bool) {
    let kick_slot = thread.vcpu.make_kickable();
    if initial_stop && let Some(d) = &guest.debugger {
        d.request_stop();
        match debug_park(guest, &mut thread, Point::Interrupted) {
            Ok(signal) => inject(&thread, signal),
            Err(e) => fail(guest, e),
        }
    }
    loop {
        let mut point = match thread.vcpu.run_to_exit() {
            Ok(Exit::Io(HC_PORT)) => match thread.vcpu.area.request(&guest.vm.mem) {
                Ok(req) => {
                    if let Err(e) = catch_syscall_entry(guest, &mut thread, req.nr) {
                        fail(guest, e);
                    }
                    let mut ctx = syscalls::Ctx {
                        guest,
                        thread: &mut thread,
                    };
                    match syscalls::dispatch(&mut ctx, &req) {
                        Outcome::Return(value) => {
                            if let Err(e) = thread.vcpu.area.set_result(&guest.vm.mem, value) {
                                fail(guest, e.into());
                            }
                            let restart = value == (-(libc::EINTR as i64)) as u64;
                            let point = Point::Syscall {
                                nr: req.nr,
                                result: value,
                                restart,
                            };
                            if catches_syscall(guest, req.nr) {
                                // `catch syscall`: stop at its return, then go on.
                                let d = guest.debugger.as_ref().expect("catching needs gdb");
                                d.report(Event::SyscallReturn(thread.tid, req.nr));
                                match debug_park(guest, &mut thread, point) {
                                    Ok(signal) => inject(&thread, signal),
                                    Err(e) => fail(guest, e),
                                }
                                Point::Interrupted
                            } else if thread.stepping && !restart {
                                match step_after_syscall(guest, &mut thread, point) {
                                    Ok(()) => Point::Interrupted,
                                    Err(e) => fail(guest, e),
                                }
                            } else {
                                point
                            }
                        }
                        // The handler already set the user context (rt_sigreturn).
                        Outcome::Resumed => Point::Interrupted,
                        Outcome::ThreadExit(status) => {
                            kick::unregister(kick_slot);
                            syscalls::thread_exit_cleanup(guest, &thread);
                            guest.thread_exited(thread, status);
                            return;
                        }
                        Outcome::Exit(status) => exit_payload(guest, status),
                        Outcome::Kill(signal) => crash::die(
                            guest,
                            &thread,
                            Point::Syscall {
                                nr: req.nr,
                                result: 0,
                                restart: false,
                            },
                            &signals::info(signal, signals::SI_KERNEL),
                        ),
                    }
                }
                Err(e) => fail(
                    guest,
                    anyhow::Error::new(e).context("reading the syscall request"),
                ),
            },
            Ok(Exit::Io(EXC_PORT)) => match exception(guest, &mut thread) {
                Ok(point) => point,
                Err(e) => fail(guest, e),
            },
            Ok(Exit::Io(port)) => fail(
                guest,
                anyhow::anyhow!("guest wrote to unknown I/O port {port:#x}"),
            ),
            Ok(Exit::Interrupted) => {
                // An immediate exit drops KVM's pending single-step: arm it again.
                if thread.stepping
                    && let Err(e) = thread.vcpu.set_single_step(true)
                {
                    fail(guest, e);
                }
                Point::Interrupted
            }
            // KVM's single-step: inside km's own code keep going; in user code
            // (hardware KVM reports steps this way) the step is done.
            Ok(Exit::Debug(pc)) if (SYS_BASE..SYS_BASE + SYS_SIZE).contains(&pc) => continue,
            Ok(Exit::Debug(_)) => {
                if let Err(e) = after_kvm_step(guest, &mut thread) {
                    fail(guest, e);
                }
                Point::Interrupted
            }
            Ok(Exit::Fatal(signal)) => crash::die(
                guest,
                &thread,
                Point::Interrupted,
                &signals::info(signal, signals::SI_KERNEL),
            ),
            Err(e) => fail(guest, e),
        };
        if guest.dump_requested() {
            guest.report_and_park(crash::thread_state(&thread, point));
        }
        if guest.debugger.as_ref().is_some_and(|d| d.stopping()) {
            if matches!(point, Point::Interrupted) {
                match stop_point_in_pad(guest, &thread) {
                    Ok(Some(p)) => point = p,
                    Ok(None) => {}
                    Err(e) => fail(guest, e),
                }
            }
            match thread.vcpu.in_landing_pad() {
                // In an exception stub: parked at its exit, a few instructions on.
                Ok(true) if matches!(point, Point::Interrupted) => continue,
                Err(e) => fail(guest, e),
                _ => match debug_park(guest, &mut thread, point) {
                    Ok(signal) => {
                        inject(&thread, signal);
                        point = Point::Interrupted;
                    }
                    Err(e) => fail(guest, e),
                },
            }
        }
        match signals::deliver(guest, &mut thread, point) {
            Ok(None) => {}
            Ok(Some(fatal)) => crash::die(guest, &thread, point, &fatal),
            Err(e) => fail(guest, e),
        }
    }
}

/// A system call made while single-stepping ends the step at the instruction after
/// `syscall`, as under Linux. KVM's pending single-step does not survive the
/// hypercall's I/O exit (seen on PVM), so km ends the step itself: it stops for gdb,
/// or re-enters user code after the syscall, stepping on if still needed.
fn step_after_syscall(guest: &Guest, thread: &mut Thread, point: Point) -> Result<()> {
    match step_event(guest, thread)? {
        Some(event) => {
            let d = guest.debugger.as_ref().expect("step events need gdb");
            d.report(event);
            let signal = debug_park(guest, thread, point)?;
            inject(thread, signal);
        }
        None => {
            let regs = continue_after_step(guest, thread, signals::user_context(thread, point)?)?;
            thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
        }
    }
    Ok(())
}

/// A single-step KVM reported at a user instruction (hardware KVM): stops for gdb,
/// or goes on stepping or running.
fn after_kvm_step(guest: &Guest, thread: &mut Thread) -> Result<()> {
    match step_event(guest, thread)? {
        Some(event) => {
            let d = guest.debugger.as_ref().expect("step events need gdb");
            d.report(event);
            let signal = debug_park(guest, thread, Point::Interrupted)?;
            inject(thread, signal);
        }
        None => {
            let regs = continue_after_step(guest, thread, thread.vcpu.regs()?)?;
            thread.vcpu.set_regs(&regs)?;
        }
    }
    Ok(())
}

/// The user-visible stop point of a thread interrupted inside its syscall pad: the
/// syscall done (result loaded next) or not yet made (to be re-executed).
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
/// hidden for watchpoints ends here: the page is hidden again.
fn step_event(guest: &Guest, thread: &mut Thread) -> Result<Option<Event>> {
    let hit = match thread.watch_step.take() {
        Some(step) => debug::end_watch_step(guest, step)?,
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
    if let Some(addr) = d.watch_hit(|a, buf| guest.vm.mem.read_bytes(a, buf).is_ok()) {
        return Ok(Some(Event::Watch(
            thread.tid,
            debug::WatchKind::Write,
            addr,
        )));
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
        regs.rflags |= debug::TF;
    } else {
        regs.rflags &= !debug::TF;
    }
    Ok(regs)
}

/// The x86 exception vectors km's debugging handles itself.
const DEBUG_VECTOR: u64 = 1;
const PAGE_FAULT_VECTOR: u64 = 14;

/// Handles a CPU exception reported by the stubs: a debug event when gdb is
/// attached (breakpoint, single-step), else the signal Linux would raise.
fn exception(guest: &Guest, thread: &mut Thread) -> Result<Point> {
    let mut frame = thread.vcpu.area.exception(&guest.vm.mem)?;
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
    if frame.vector == PAGE_FAULT_VECTOR && debug::watched_fault(guest, cr2, frame.error_code) {
        // An access to a page hidden for watchpoints: let this instruction through.
        let step = thread.watch_step.get_or_insert_default();
        debug::begin_watch_step(guest, step, cr2, frame.error_code)?;
        set_stepping(thread, true)?;
        let mut regs = signals::user_context(thread, Point::Exception(frame))?;
        regs.rflags |= debug::TF;
        thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
        return Ok(Point::Interrupted);
    }
    if frame.vector == DEBUG_VECTOR && thread.stepping {
        let regs = signals::user_context(thread, Point::Exception(frame))?;
        if (SYS_BASE..SYS_BASE + SYS_SIZE).contains(&frame.rip) {
            // Stepping through the landing pad: keep going until user code.
            thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
            return Ok(Point::Interrupted);
        }
        match step_event(guest, thread)? {
            Some(event) => {
                let d = guest.debugger.as_ref().expect("step events need gdb");
                d.report(event);
                let signal = debug_park(guest, thread, Point::Exception(frame))?;
                inject(thread, signal);
            }
            None => {
                let regs = continue_after_step(guest, thread, regs)?;
                thread.vcpu.enter_user(&guest.vm.mem, &regs)?;
            }
        }
        return Ok(Point::Interrupted);
    }
    if let Some(step) = thread.watch_step.take() {
        // The instruction let through a hidden page raised something else.
        debug::end_watch_step(guest, step)?;
        set_stepping(thread, needs_stepping(guest, thread))?;
    }
    if let Some(d) = guest.debugger.as_ref().filter(|d| d.attached()) {
        match frame.vector {
            3 if d.has_breakpoint(frame.rip - 1) => {
                frame.rip -= 1;
                d.report(Event::Breakpoint(thread.tid));
                let signal = debug_park(guest, thread, Point::Exception(frame))?;
                inject(thread, signal);
                return Ok(Point::Interrupted);
            }
            _ => {
                let info = signals::for_exception(&frame, cr2);
                d.report(Event::Signal(thread.tid, signals::signo(&info)));
                let signal = debug_park(guest, thread, Point::Exception(frame))?;
                if signal != Some(signals::signo(&info)) {
                    // gdb chose not to pass the signal: resume where it stands.
                    return Ok(Point::Interrupted);
                }
                if let Some(fatal) = signals::raise_fault(guest, thread, info) {
                    // The vCPU now sits in the stub's exit; the report and core
                    // show the faulting user context.
                    crash::die(guest, thread, Point::Exception(frame), &fatal);
                }
                return Ok(Point::Interrupted);
            }
        }
    }
    let info = signals::for_exception(&frame, cr2);
    if let Some(fatal) = signals::raise_fault(guest, thread, info) {
        crash::die(guest, thread, Point::Exception(frame), &fatal);
    }
    Ok(Point::Exception(frame))
}

/// Parks `thread` for gdb showing user registers `regs` (and `orig_rax`) until gdb
/// resumes it; then arms the single-step gdb asked for. The caller resumes the vCPU.
/// Returns gdb's resume and the FS base the thread had when it parked.
fn park(
    guest: &Guest,
    d: &debug::Debugger,
    thread: &mut Thread,
    mut regs: kvm_regs,
    orig_rax: u64,
) -> Result<(debug::Resume, u64)> {
    regs.rflags &= !debug::TF;
    let (fs_base, gs_base) = thread.vcpu.segment_bases()?;
    let parked = debug::Parked {
        vcpu: thread.vcpu.area.id,
        regs,
        orig_rax,
        fs_base,
        gs_base,
        xsave: thread.vcpu.xsave()?,
        dirty: false,
    };
    trace!(
        Category::Kvm,
        "thread {} parks for gdb at {:#x}", thread.tid, regs.rip
    );
    let resume = d.park(thread.tid, parked);
    thread.gdb_step = resume.action == debug::Action::Step;
    set_stepping(thread, needs_stepping(guest, thread))?;
    Ok((resume, fs_base))
}

/// Parks `thread` (stopped at `point`) for gdb and resumes it with the registers and
/// action gdb left: the vCPU re-enters user code exactly there. Returns the signal
/// gdb asked to deliver, if any.
fn debug_park(guest: &Guest, thread: &mut Thread, point: Point) -> Result<Option<i32>> {
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
    let (resume, fs_base) = park(guest, d, thread, regs, orig_rax)?;
    let mut regs = resume.regs;
    if thread.stepping {
        regs.rflags |= debug::TF;
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
    Ok(resume.signal)
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
fn catch_syscall_entry(guest: &Guest, thread: &mut Thread, nr: u64) -> Result<()> {
    let Some(d) = guest.debugger.as_ref().filter(|d| d.catches_syscall(nr)) else {
        return Ok(());
    };
    d.report(Event::SyscallEntry(thread.tid, nr));
    let point = Point::Syscall {
        nr,
        result: (-(libc::ENOSYS as i64)) as u64,
        restart: false,
    };
    let regs = signals::user_context(thread, point)?;
    // A step from here runs the syscall and stops after it, as on Linux.
    let (resume, _) = park(guest, d, thread, regs, nr)?;
    inject(thread, resume.signal);
    Ok(())
}

/// A signal gdb asked to deliver when it resumed a thread parked at a stop.
fn inject(thread: &Thread, signal: Option<i32>) {
    if let Some(sig) = signal {
        thread
            .handle
            .pending
            .add(signals::info(sig, signals::SI_USER));
    }
}

/// A monitor failure while running the payload: report it and exit with km's status.
fn fail(guest: &Guest, e: anyhow::Error) -> ! {
    crate::eprintln_whole!("km: {}: {e:#}", guest.config.name);
    std::process::exit(crate::KM_ERROR_STATUS as i32)
}
