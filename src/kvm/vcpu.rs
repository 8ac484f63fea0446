//! A KVM vCPU as a plain wrapper: long-mode set-up for user code, registers, XSAVE,
//! single-step and debug registers, TSC, and running until the next exit. It knows nothing of guest
//! threads, signals, syscalls or gdb.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use kvm_bindings::{Msrs, kvm_msr_entry, kvm_regs, kvm_run, kvm_segment, kvm_xcrs};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};

use super::debugregs::DebugRegs;
use super::kick;
use super::vm::{Backend, KvmVm};
use crate::trace;
use crate::trace::Category;

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

/// The trap flag in RFLAGS (single-step).
pub const TF: u64 = 1 << 8;

/// Whether a vCPU of this process may hold a GS base other than 0: km gave one
/// another base, or made one on which the guest can write it itself
/// (CR4.FSGSBASE). Until then every GS base is 0, since the guest's only other
/// way to change it, loading a segment selector, loads a base of 0 from km's
/// GDT. A fork child, a copy of km, keeps its parent's; execve starts afresh, as
/// Linux gives the new program a GS base of 0.
static GS_BASE_MAY_BE_SET: AtomicBool = AtomicBool::new(false);

fn note_gs_base(gs: u64) {
    if gs != 0 {
        GS_BASE_MAY_BE_SET.store(true, Ordering::SeqCst);
    }
}
/// The resume flag in RFLAGS: the next instruction runs without its instruction
/// breakpoint firing (the CPU clears it after that instruction).
pub const RF: u64 = 1 << 16;

/// The host's time-stamp counter.
pub fn host_tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86-64.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// The host's enabled XSAVE features (XCR0), which PVM guests run with.
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
    /// A kick (a host signal) interrupted the vCPU; `false` when it came before
    /// KVM_RUN, which then ran no guest code at all.
    Interrupted(bool),
    /// KVM_EXIT_DEBUG at this address: a single-step done, or a debug-register
    /// slot hit (DR6 says which).
    Debug { pc: u64, dr6: u64 },
    /// The guest did something Linux would kill it for with this signal.
    Fatal(i32),
    /// KVM could not reach the host page behind a guest access (a file page past
    /// the end of its file; PVM does not say which: see `kernel::backing`).
    Unbacked,
}

/// Where the guest's descriptor tables, task state and syscall entry are, and the
/// selectors of its segments: what a vCPU needs to start in 64-bit user mode.
pub struct CpuSetup {
    pub id: u32,
    pub cr3: u64,
    pub gdt: (u64, u16),
    pub idt: (u64, u16),
    /// Base, limit and selector of the task state segment.
    pub tss: (u64, u32, u16),
    /// The `syscall` entry point (MSR_LSTAR).
    pub syscall_entry: u64,
    pub kernel_cs: u16,
    pub user_cs: u16,
    pub user_ds: u16,
    pub user32_cs: u16,
}

/// A vCPU's state as [`KvmVcpu::save`] took it.
pub struct SavedCpu {
    regs: kvm_regs,
    sregs: kvm_bindings::kvm_sregs,
    xsave: Vec<u8>,
}

impl Drop for KvmVcpu {
    fn drop(&mut self) {
        super::held::release_fd(self.fd.as_raw_fd());
        super::held::release_run(self.run.as_ptr() as usize);
    }
}

pub struct KvmVcpu {
    fd: VcpuFd,
    /// The vCPU's `kvm_run` (mapped as long as `fd` is open). KVM copies the
    /// general registers into its `s.regs.regs` at the end of every KVM_RUN
    /// (KVM_SYNC_X86_REGS in `kvm_valid_regs`), and loads them from there at the
    /// start of the next one when km marked them dirty: reading and setting
    /// registers costs no ioctl (7-9 µs each on PVM).
    run: NonNull<kvm_run>,
    /// KVM offers that (KVM_CAP_SYNC_REGS); without it, both are ioctls.
    sync: bool,
    /// Whether `s.regs.regs` holds the registers: after a KVM_RUN or a
    /// [`KvmVcpu::set_regs`]; before either, [`KvmVcpu::regs`] asks KVM.
    regs_synced: Cell<bool>,
    pub id: u32,
    /// The user code and data selectors (from [`CpuSetup`]).
    user: (u16, u16),
    /// The FS and GS bases the vCPU holds, when km knows them: read once its
    /// thread has ended ([`KvmVcpu::note_segment_bases`]) or set by km, and
    /// forgotten when guest code runs (it can change them, with a selector load
    /// if not otherwise) or km sets segment registers or one base. A new thread
    /// whose bases are these needs no KVM_SET_MSRS.
    bases: Cell<Option<(u64, u64)>>,
    /// KVM's single-step is on.
    single_step: bool,
    /// The debug registers KVM programs (none enabled: not used).
    debug_regs: DebugRegs,
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

/// A new vCPU's segment and control registers as KVM resets them, asked
/// (KVM_GET_SREGS) of the first vCPU of each kind and reused for the next ones: the
/// reset state is the same for every vCPU of a kind (the bootstrap processor's APIC
/// base differs from the others'), and on PVM every vCPU ioctl costs several
/// microseconds. A fork child inherits the answers, so its vCPU asks nothing.
fn reset_sregs(fd: &VcpuFd, bsp: bool) -> Result<kvm_bindings::kvm_sregs> {
    static RESET: [OnceLock<kvm_bindings::kvm_sregs>; 2] = [OnceLock::new(), OnceLock::new()];
    let cached = &RESET[usize::from(bsp)];
    if let Some(s) = cached.get() {
        return Ok(*s);
    }
    let s = fd.get_sregs().context("KVM_GET_SREGS")?;
    Ok(*cached.get_or_init(|| s))
}

fn msr(index: u32, data: u64) -> kvm_msr_entry {
    kvm_msr_entry {
        index,
        data,
        ..Default::default()
    }
}

// SAFETY: `run` points into the vCPU's own kvm_run mapping, which lives as long
// as `fd` and moves with it; the vCPU is driven by one host thread at a time (it
// is not Sync), like the VcpuFd itself.
unsafe impl Send for KvmVcpu {}

impl KvmVcpu {
    pub(super) fn new(mut fd: VcpuFd, setup: &CpuSetup, vm: &KvmVm) -> Result<KvmVcpu> {
        let has = |f: u32, reg: fn(&kvm_bindings::kvm_cpuid_entry2) -> u32, bit: u32| {
            vm.cpuid(f, 0).is_some_and(|e| reg(&e) & (1 << bit) != 0)
        };
        let xsave = has(1, |e| e.ecx, 26);
        let fsgsbase = has(7, |e| e.ebx, 0);

        let mut s = reset_sregs(&fd, setup.id == 0)?;
        s.cr0 = CR0_PG | CR0_WP | CR0_NE | CR0_ET | CR0_MP | CR0_PE;
        s.cr3 = setup.cr3;
        s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
        if xsave {
            s.cr4 |= CR4_OSXSAVE;
        }
        if fsgsbase {
            s.cr4 |= CR4_FSGSBASE;
            GS_BASE_MAY_BE_SET.store(true, Ordering::SeqCst);
        }
        s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
        (s.gdt.base, s.gdt.limit) = setup.gdt;
        (s.idt.base, s.idt.limit) = setup.idt;
        let (tss_base, tss_limit, tss_selector) = setup.tss;
        s.tr = kvm_segment {
            base: tss_base,
            limit: tss_limit,
            selector: tss_selector,
            type_: 11,
            present: 1,
            ..Default::default()
        };
        s.cs = user_segment(setup.user_cs, true);
        s.ss = user_segment(setup.user_ds, false);
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
        let star = ((setup.user32_cs as u64 & !3) << 48) | ((setup.kernel_cs as u64) << 32);
        let msrs = Msrs::from_entries(&[
            msr(MSR_STAR, star),
            msr(MSR_LSTAR, setup.syscall_entry),
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
            "vcpu {} ready: syscall entry {:#x} xsave {xsave} fsgsbase {fsgsbase}",
            setup.id,
            setup.syscall_entry
        );
        let sync = vm.syncs_regs();
        if sync {
            fd.set_sync_valid_reg(SyncReg::Register);
        }
        let run = NonNull::from(fd.get_kvm_run());
        super::held::hold_fd(fd.as_raw_fd());
        if let Some(len) = vm.run_size() {
            super::held::hold_run(run.as_ptr() as usize, len);
        }
        Ok(KvmVcpu {
            fd,
            run,
            sync,
            regs_synced: Cell::new(false),
            bases: Cell::new(None),
            id: setup.id,
            user: (setup.user_cs, setup.user_ds),
            single_step: false,
            debug_regs: DebugRegs::default(),
        })
    }

    /// Points the vCPU at user code: `rip`, `rsp`, all other registers zero.
    pub fn start(&self, rip: u64, rsp: u64) -> Result<()> {
        self.set_regs(&kvm_regs {
            rip,
            rsp,
            rflags: 0x202,
            ..Default::default()
        })
    }

    pub fn set_fs_base(&self, base: u64) -> Result<()> {
        self.bases.set(None);
        self.set_msrs(&[msr(MSR_FS_BASE, base)])
            .context("KVM_SET_MSRS FS_BASE")
    }

    pub fn set_gs_base(&self, base: u64) -> Result<()> {
        note_gs_base(base);
        self.bases.set(None);
        self.set_msrs(&[msr(MSR_GS_BASE, base)])
            .context("KVM_SET_MSRS GS_BASE")
    }

    /// FS and GS bases at once (a new thread's, a restored one's); no ioctl
    /// when the vCPU is known to hold them already (a parked vCPU whose last
    /// thread had the same thread pointer: a stack the payload's C library
    /// cached, or mapped again at the same address).
    pub fn set_segment_bases(&self, fs: u64, gs: u64) -> Result<()> {
        if self.bases.get() == Some((fs, gs)) {
            return Ok(());
        }
        note_gs_base(gs);
        self.bases.set(None);
        self.set_msrs(&[msr(MSR_FS_BASE, fs), msr(MSR_GS_BASE, gs)])
            .context("KVM_SET_MSRS FS_BASE, GS_BASE")?;
        self.bases.set(Some((fs, gs)));
        Ok(())
    }

    /// Sets every MSR of `entries`, or fails.
    fn set_msrs(&self, entries: &[kvm_msr_entry]) -> Result<()> {
        let msrs = Msrs::from_entries(entries).context("building the MSR list")?;
        let n = self.fd.set_msrs(&msrs)?;
        if n != entries.len() {
            bail!("set {n} of {} MSRs", entries.len());
        }
        Ok(())
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

    /// The vCPU's GS base when km knows it without asking KVM: 0 while no vCPU
    /// of the process can hold another (see [`GS_BASE_MAY_BE_SET`]).
    pub fn known_gs_base(&self) -> Option<u64> {
        (!GS_BASE_MAY_BE_SET.load(Ordering::SeqCst)).then_some(0)
    }

    /// Reads the FS and GS bases of a vCPU whose thread has ended, so that the
    /// next thread on it needs no KVM_SET_MSRS when they are its own (see
    /// [`KvmVcpu::set_segment_bases`]).
    pub fn note_segment_bases(&self) -> Result<()> {
        let bases = self.segment_bases()?;
        self.bases.set(Some(bases));
        Ok(())
    }

    pub fn cr2(&self) -> Result<u64> {
        Ok(self.fd.get_sregs().context("KVM_GET_SREGS")?.cr2)
    }

    /// Turns KVM's single-step on or off. On PVM, TF set by the monitor on a vCPU
    /// leaving an emulated CPL0 stub does not trap, but KVM's single-step does, and
    /// it raises #DB through the guest IDT like TF would.
    pub fn set_single_step(&mut self, on: bool) -> Result<()> {
        self.single_step = on;
        self.set_guest_debug()
    }

    /// Programs the debug registers (hardware KVM; a change only).
    pub fn set_debug_regs(&mut self, regs: DebugRegs) -> Result<()> {
        if regs == self.debug_regs {
            return Ok(());
        }
        self.debug_regs = regs;
        self.set_guest_debug()
    }

    /// KVM_SET_GUEST_DEBUG with the single-step and debug registers km wants.
    fn set_guest_debug(&self) -> Result<()> {
        let mut dbg = kvm_bindings::kvm_guest_debug::default();
        if self.single_step {
            dbg.control |=
                kvm_bindings::KVM_GUESTDBG_ENABLE | kvm_bindings::KVM_GUESTDBG_SINGLESTEP;
        }
        if self.debug_regs.enabled() {
            dbg.control |= kvm_bindings::KVM_GUESTDBG_ENABLE | kvm_bindings::KVM_GUESTDBG_USE_HW_BP;
            dbg.arch.debugreg[..4].copy_from_slice(&self.debug_regs.addr);
            dbg.arch.debugreg[7] = self.debug_regs.dr7;
        }
        // KVM arms its single-step at the current RIP: registers set since the
        // last KVM_RUN must be KVM's first.
        self.load_pending_regs()?;
        self.fd.set_guest_debug(&dbg).context("KVM_SET_GUEST_DEBUG")
    }

    /// Sets `regs` with the vCPU at CPL3: a vCPU in CPL0 code (the hardware-KVM
    /// pad) gets the user code and stack segments first.
    pub fn set_user_regs(&self, regs: &kvm_regs) -> Result<()> {
        let mut s = self.fd.get_sregs().context("KVM_GET_SREGS")?;
        if s.cs.dpl != 3 {
            s.cs = user_segment(self.user.0, true);
            s.ss = user_segment(self.user.1, false);
            self.load_pending_regs()?;
            self.bases.set(None);
            self.fd.set_sregs(&s).context("KVM_SET_SREGS")?;
        }
        self.set_regs(regs)
    }

    /// Everything of the vCPU's state a vfork child may change (general, segment
    /// and control registers, FPU/SSE/AVX), for [`KvmVcpu::restore`] once it is
    /// gone.
    pub fn save(&self) -> Result<SavedCpu> {
        Ok(SavedCpu {
            regs: self.regs()?,
            sregs: self.fd.get_sregs().context("KVM_GET_SREGS")?,
            xsave: self.xsave()?,
        })
    }

    /// Puts back what [`KvmVcpu::save`] saved.
    pub fn restore(&self, saved: &SavedCpu) -> Result<()> {
        self.load_pending_regs()?;
        self.bases.set(None);
        self.fd.set_sregs(&saved.sregs).context("KVM_SET_SREGS")?;
        self.set_regs(&saved.regs)?;
        self.set_xsave(&saved.xsave)
    }

    /// The general registers: as the last KVM_RUN left them, or as set since.
    pub fn regs(&self) -> Result<kvm_regs> {
        if !self.regs_synced.get() {
            return self.fd.get_regs().context("KVM_GET_REGS");
        }
        // SAFETY: `run` is this vCPU's mapped kvm_run (see the field), which KVM
        // writes only during a KVM_RUN of this vCPU, made by the thread holding it.
        Ok(unsafe { (*self.run.as_ptr()).s.regs.regs })
    }

    /// Sets the general registers. KVM loads them at the start of the next
    /// KVM_RUN (or before an ioctl that depends on them: see
    /// [`KvmVcpu::load_pending_regs`]).
    pub fn set_regs(&self, regs: &kvm_regs) -> Result<()> {
        if !self.sync {
            return self.fd.set_regs(regs).context("KVM_SET_REGS");
        }
        // SAFETY: as in `regs`; KVM reads `s.regs.regs` and clears the dirty bit
        // only during a KVM_RUN of this vCPU.
        unsafe {
            let run = self.run.as_ptr();
            (*run).s.regs.regs = *regs;
            (*run).kvm_dirty_regs |= SyncReg::Register as u64;
        }
        self.regs_synced.set(true);
        Ok(())
    }

    /// Hands KVM the registers set since the last KVM_RUN now, for ioctls that
    /// read them (KVM_SET_GUEST_DEBUG's single-step, KVM_SET_SREGS).
    fn load_pending_regs(&self) -> Result<()> {
        let run = self.run.as_ptr();
        // SAFETY: as in `set_regs`.
        let dirty = unsafe { (*run).kvm_dirty_regs } & SyncReg::Register as u64 != 0;
        if !dirty {
            return Ok(());
        }
        let regs = self.regs()?;
        self.fd.set_regs(&regs).context("KVM_SET_REGS")?;
        // SAFETY: as in `set_regs`.
        unsafe { (*run).kvm_dirty_regs &= !(SyncReg::Register as u64) };
        Ok(())
    }

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

    /// The guest TSC's frequency in kHz (KVM_GET_TSC_KHZ): the host's, as km never
    /// sets it, so it is asked once per km (a fork child has its parent's answer).
    pub fn tsc_khz(&self) -> Result<u32> {
        static KHZ: OnceLock<u32> = OnceLock::new();
        if let Some(&khz) = KHZ.get() {
            return Ok(khz);
        }
        let khz = self.fd.get_tsc_khz().context("KVM_GET_TSC_KHZ")?;
        Ok(*KHZ.get_or_init(|| khz))
    }

    /// A KVM_RUN that enters no guest code (immediate_exit): what KVM sets up on a
    /// VM's first run (its NX huge-page recovery thread, which counts against
    /// process limits) is done here, and its failure returned, instead of every
    /// later KVM_RUN failing with EAGAIN.
    pub fn first_run(&mut self) -> Result<()> {
        self.bases.set(None);
        self.fd.set_kvm_immediate_exit(1);
        let ran = self.fd.run().map(|_| ());
        self.fd.set_kvm_immediate_exit(0);
        match ran {
            Err(e) if e.errno() != libc::EINTR => Err(e).context("KVM_RUN (first run)"),
            _ => {
                // KVM stored the registers on its way out, as after every run.
                self.regs_synced.set(self.sync);
                Ok(())
            }
        }
    }

    /// Forgets a kick that came since the last KVM_RUN returned (a host signal
    /// while km served a syscall: SIGCHLD during wait4). The caller then checks what
    /// kicks are for (signals, stop requests) before the vCPU runs again; a kick that
    /// comes after this still ends the next KVM_RUN at once. Spares the KVM_RUN that
    /// would return EINTR at once for something already seen to.
    pub fn forget_kick(&mut self) {
        kick::acknowledge();
        // SAFETY: a volatile store to the vCPU's own mapped kvm_run, whose
        // immediate_exit this thread's kick handler writes (volatile, 0 or 1).
        unsafe { std::ptr::write_volatile(&raw mut self.fd.get_kvm_run().immediate_exit, 0) };
        // The store comes before the checks that follow, as the handler sees them.
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs the vCPU until the guest writes to an I/O port (returned) or does
    /// something that kills it (the signal Linux would send).
    pub fn run_to_exit(&mut self) -> Result<Exit> {
        // A kick already there makes KVM_RUN return at once, before the guest runs.
        // SAFETY: a volatile read of a field of the vCPU's own mapped kvm_run, which
        // kick handlers write only with volatile stores of 0 or 1.
        let kicked_before =
            unsafe { std::ptr::read_volatile(&raw const self.fd.get_kvm_run().immediate_exit) }
                != 0;
        self.bases.set(None);
        let ran = self.fd.run();
        // What the exit is for is looked at from here on (signals at a syscall's
        // entry): earlier kicks need not be sent again.
        kick::acknowledge();
        Ok(match ran {
            Ok(VcpuExit::IoOut(port, _)) => Exit::Io(port),
            Ok(VcpuExit::MmioRead(addr, _)) | Ok(VcpuExit::MmioWrite(addr, _)) => {
                trace!(
                    Category::Kvm,
                    "access to unbacked guest-physical address {addr:#x}"
                );
                Exit::Fatal(libc::SIGSEGV)
            }
            Ok(VcpuExit::Debug(arch)) => Exit::Debug {
                pc: arch.pc,
                dr6: arch.dr6,
            },
            Ok(VcpuExit::Shutdown) => {
                trace!(Category::Kvm, "vcpu {} shut down (triple fault)", self.id);
                Exit::Fatal(libc::SIGSEGV)
            }
            Ok(other) => {
                let what = format!("{other:?}");
                let rip = self.regs().map_or(0, |r| r.rip);
                anyhow::bail!("unexpected KVM exit {what} at rip {rip:#x}");
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                Exit::Interrupted(!kicked_before)
            }
            Err(e) if e.errno() == libc::EFAULT => {
                trace!(Category::Kvm, "KVM_RUN: EFAULT on a guest access");
                Exit::Unbacked
            }
            Err(e) => return Err(e).context("KVM_RUN"),
        })
    }
}
