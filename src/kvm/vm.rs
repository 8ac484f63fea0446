//! The KVM virtual machine as a plain wrapper: /dev/kvm, backend detection, CPUID,
//! and vCPU creation. Guest memory registers its memslots on [`KvmVm::fd`].

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use anyhow::{Context, Result, anyhow, bail};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VmFd};

use super::debugregs;
use super::vcpu::{CpuSetup, KvmVcpu};
use crate::trace;
use crate::trace::Category;

/// Which KVM implementation serves `/dev/kvm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// VT-x / AMD-V: `syscall` enters CPL0, debug facilities work.
    Hardware,
    /// kvm-pvm, the software backend: `syscall` stays at CPL3, CPL0 code is emulated.
    Pvm,
}

impl Backend {
    fn detect() -> Backend {
        if Path::new("/sys/module/kvm_pvm").exists() {
            Backend::Pvm
        } else {
            Backend::Hardware
        }
    }

    /// The suffix km appends to the host release in `uname`.
    pub fn release_suffix(self) -> &'static str {
        match self {
            Backend::Hardware => ".kontain.KVM",
            Backend::Pvm => ".kontain.PVM",
        }
    }
}

/// KVM_GET_API_VERSION's answer from every KVM.
const KVM_API_VERSION: i32 = 12;

/// KVM on descriptor `fd` (km's own, duplicated for a fork child, or inherited by
/// a km re-executed for the payload's execve), checked to be /dev/kvm's.
fn kvm_from(fd: OwnedFd) -> Result<Kvm> {
    let raw = fd.into_raw_fd();
    // SAFETY: `raw` was an OwnedFd, so it is open and owned by nobody else; the Kvm
    // takes it over (a descriptor of another kind fails the check below).
    let kvm = unsafe { Kvm::from_raw_fd(raw) };
    if kvm.get_api_version() != KVM_API_VERSION {
        bail!("descriptor {raw} is not /dev/kvm");
    }
    Ok(kvm)
}

/// Records a new VM's descriptors and its /dev/kvm's (see [`super::held`]);
/// [`KvmVm`]'s drop forgets them.
fn held_vm(kvm: &Kvm, fd: &VmFd) {
    super::held::hold_fd(kvm.as_raw_fd());
    super::held::hold_fd(fd.as_raw_fd());
}

impl Drop for KvmVm {
    fn drop(&mut self) {
        super::held::release_fd(self.kvm.as_raw_fd());
        super::held::release_fd(self.fd.as_raw_fd());
    }
}

/// Creates an empty VM on `kvm` with an in-kernel local APIC per vCPU
/// (KVM_CAP_SPLIT_IRQCHIP: no IOAPIC or PIC, no routes) when KVM offers one;
/// returns the VM and whether its vCPUs have the APIC. km's guests take no
/// interrupts, so the APIC stays idle: the point is the host's cost. KVM counts
/// vCPUs without an in-kernel APIC in a global static key, and the host's first
/// and last such vCPU patch kernel text on every CPU (IPIs, which a nested host
/// pays dearly for): with no other VM on one of this project's machines, a
/// vCPU's creation took 204-388 µs without the APIC and 36-46 µs with it
/// (docs/architecture.md).
fn create_vm(kvm: &Kvm) -> Result<(VmFd, bool)> {
    let fd = kvm.create_vm().context("KVM_CREATE_VM")?;
    let split = kvm_bindings::kvm_enable_cap {
        cap: kvm_ioctls::Cap::SplitIrqchip as u32,
        ..Default::default()
    };
    // HLT exits stay off for the guest's own (it never halts: CPL3 cannot, the pad
    // does not): what matters is that KVM then does no asynchronous page faults
    // for a guest that did not ask for them. Those an in-kernel APIC allows
    // otherwise never end at a file page past EOF (the vCPU halts and retries
    // for ever) instead of failing KVM_RUN with EFAULT.
    let no_hlt_exits = kvm_bindings::kvm_enable_cap {
        cap: kvm_bindings::KVM_CAP_X86_DISABLE_EXITS,
        args: [u64::from(kvm_bindings::KVM_X86_DISABLE_EXITS_HLT), 0, 0, 0],
        ..Default::default()
    };
    let lapic = fd
        .enable_cap(&no_hlt_exits)
        .and_then(|()| fd.enable_cap(&split));
    if let Err(e) = &lapic {
        trace!(
            Category::Kvm,
            "no in-kernel local APIC (KVM_CAP_X86_DISABLE_EXITS or KVM_CAP_SPLIT_IRQCHIP: {e})"
        );
    }
    Ok((fd, lapic.is_ok()))
}

/// KVM_GET_STATS_FD: `_IO(KVMIO, 0xce)`, on a VM or a vCPU descriptor.
const KVM_GET_STATS_FD: libc::c_ulong = 0xae << 8 | 0xce;

/// Under `--stats`: hands the statistics descriptor of `kvm_fd` (a VM's, or a
/// vCPU's when `vcpu`) to `stats`, which reads it at the report.
fn keep_stats(kvm_fd: &impl AsRawFd, vcpu: bool) -> Result<()> {
    if !crate::stats::on() {
        return Ok(());
    }
    // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new descriptor.
    let fd = unsafe { libc::ioctl(kvm_fd.as_raw_fd(), KVM_GET_STATS_FD) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("KVM_GET_STATS_FD");
    }
    // SAFETY: `fd` was just returned to km by the kernel and belongs to nobody else.
    crate::stats::add_kvm_source(vcpu, unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}

/// The size of a `kvm_cpuid_entry2`: function, index, flags, the four
/// registers and three words of padding.
const CPUID_ENTRY_SIZE: usize = 40;

/// CPUID entries from [`KvmVm::cpuid_for_exec`]'s bytes; None unless they are
/// whole entries, at least one and at most KVM_MAX_CPUID_ENTRIES of them.
fn cpuid_from_bytes(bytes: &[u8]) -> Option<CpuId> {
    if bytes.is_empty()
        || !bytes.len().is_multiple_of(CPUID_ENTRY_SIZE)
        || bytes.len() / CPUID_ENTRY_SIZE > KVM_MAX_CPUID_ENTRIES
    {
        return None;
    }
    let entries: Vec<kvm_bindings::kvm_cpuid_entry2> = bytes
        .chunks_exact(CPUID_ENTRY_SIZE)
        .map(|e| {
            let w =
                |i: usize| u32::from_ne_bytes(e[i * 4..i * 4 + 4].try_into().unwrap_or_default());
            kvm_bindings::kvm_cpuid_entry2 {
                function: w(0),
                index: w(1),
                flags: w(2),
                eax: w(3),
                ebx: w(4),
                ecx: w(5),
                edx: w(6),
                ..Default::default()
            }
        })
        .collect();
    CpuId::from_entries(&entries).ok()
}

/// In a km re-executed for the payload's execve: what `pipe` (`--kvm-cpuid`)
/// holds, if it is the read end of a pipe. Reads only what is there (its
/// writer wrote it all before the exec), so a pipe still open for writing
/// elsewhere cannot hold km up.
pub fn cpuid_after_exec(pipe: OwnedFd) -> Result<Vec<u8>, String> {
    use rustix::fs::{FileType, OFlags};
    let stat = rustix::fs::fstat(&pipe).map_err(|e| e.to_string())?;
    let flags = rustix::fs::fcntl_getfl(&pipe).map_err(|e| e.to_string())?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Fifo
        || flags & OFlags::RWMODE != OFlags::RDONLY
    {
        return Err("not the read end of a pipe".into());
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while bytes.len() < CPUID_BYTES_MAX {
        let mut ready = [rustix::event::PollFd::new(
            &pipe,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec::default();
        if rustix::event::poll(&mut ready, Some(&zero)).map_err(|e| e.to_string())? == 0 {
            break;
        }
        match rustix::io::read(&pipe, &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(bytes)
}

/// More than KVM_MAX_CPUID_ENTRIES entries: a `--kvm-cpuid` pipe is read no
/// further.
const CPUID_BYTES_MAX: usize = (KVM_MAX_CPUID_ENTRIES + 1) * CPUID_ENTRY_SIZE;

/// Asks KVM_GET_SUPPORTED_CPUID on a thread of its own, on a copy of `kvm`'s
/// descriptor, so that km sets up memory and loads the payload meanwhile: KVM
/// executes `cpuid` for each of some 75 leaves, and on a nested host (these
/// machines) each one traps, a few hundred microseconds in all.
fn query_supported_cpuid(kvm: BorrowedFd<'_>) -> Result<JoinHandle<Result<CpuId, String>>> {
    let copy = kvm
        .try_clone_to_owned()
        .context("duplicating /dev/kvm's descriptor")?;
    // SAFETY: `copy` is a new descriptor of /dev/kvm's that nobody else owns; the
    // Kvm takes it over and closes it when the query ends.
    let copy = unsafe { Kvm::from_raw_fd(copy.into_raw_fd()) };
    std::thread::Builder::new()
        .name("km-cpuid".into())
        .stack_size(CPUID_QUERY_STACK)
        .spawn(move || {
            copy.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                .map_err(|e| e.to_string())
        })
        .context("starting the CPUID query")
}

/// The CPUID query thread's stack: the ioctl and a copy of its answer.
const CPUID_QUERY_STACK: usize = 64 << 10;

pub struct KvmVm {
    /// km's /dev/kvm descriptor, kept for a forked or re-executed km (which may
    /// no longer be allowed to open /dev/kvm: `--sandbox`).
    kvm: Kvm,
    fd: VmFd,
    /// Whether the vCPUs have an in-kernel local APIC ([`create_vm`]).
    lapic: bool,
    pub backend: Backend,
    /// KVM_GET_SUPPORTED_CPUID's answer (or why there is none), once known.
    cpuid: OnceLock<Result<CpuId, String>>,
    /// The thread asking KVM_GET_SUPPORTED_CPUID, until its answer is taken.
    cpuid_query: Mutex<Option<JoinHandle<Result<CpuId, String>>>>,
    /// Whether debug-register hits reach km (probed once, when first asked).
    debug_registers: OnceLock<bool>,
}

impl KvmVm {
    /// Creates an empty VM on `kvm` (a /dev/kvm descriptor km inherited) or else on
    /// /dev/kvm opened here. `known_cpuid`: KVM's supported CPUID as the km that
    /// execve replaced had it ([`KvmVm::cpuid_for_exec`]), asked again when it is
    /// not well-formed.
    pub fn new(kvm: Option<OwnedFd>, known_cpuid: Option<&[u8]>) -> Result<Self> {
        let kvm = match kvm {
            Some(fd) => kvm_from(fd)?,
            None => Kvm::new().context("opening /dev/kvm")?,
        };
        let (fd, lapic) = create_vm(&kvm)?;
        let backend = Backend::detect();
        trace!(
            Category::Kvm,
            "backend {:?}, KVM API {}",
            backend,
            kvm.get_api_version()
        );
        keep_stats(&fd, false)?;
        held_vm(&kvm, &fd);
        let mut vm = KvmVm {
            kvm,
            fd,
            lapic,
            backend,
            cpuid: OnceLock::new(),
            cpuid_query: Mutex::new(None),
            debug_registers: OnceLock::new(),
        };
        match known_cpuid.map(cpuid_from_bytes) {
            Some(Some(cpuid)) => {
                trace!(
                    Category::Kvm,
                    "CPUID: {} entries from the km execve replaced",
                    cpuid.as_slice().len()
                );
                let _ = vm.cpuid.set(Ok(cpuid));
                return Ok(vm);
            }
            Some(None) => trace!(
                Category::Kvm,
                "--kvm-cpuid: not whole CPUID entries; asking KVM"
            ),
            None => {}
        }
        match query_supported_cpuid(vm.kvm_fd()) {
            Ok(query) => *vm.cpuid_query.get_mut().unwrap_or_else(|e| e.into_inner()) = Some(query),
            // No thread to spare (a process limit): asked here.
            Err(e) => {
                trace!(Category::Kvm, "{e:#}");
                let answer = vm
                    .kvm
                    .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                    .map_err(|e| e.to_string());
                let _ = vm.cpuid.set(answer);
            }
        }
        Ok(vm)
    }

    /// The CPUID km gives the guest: KVM_GET_SUPPORTED_CPUID's answer, waited for
    /// here the first time.
    fn supported_cpuid(&self) -> Result<&CpuId> {
        if self.cpuid.get().is_none() {
            let mut query = self.cpuid_query.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(handle) = query.take() {
                let answer = handle
                    .join()
                    .unwrap_or_else(|_| Err("the thread asking it panicked".into()));
                let _ = self.cpuid.set(answer);
            }
        }
        match self.cpuid.get() {
            Some(Ok(cpuid)) => Ok(cpuid),
            Some(Err(e)) => Err(anyhow!("KVM_GET_SUPPORTED_CPUID: {e}")),
            None => Err(anyhow!("KVM_GET_SUPPORTED_CPUID was never asked")),
        }
    }

    /// KVM's supported CPUID entries, as the raw `kvm_cpuid_entry2` array a km
    /// re-executed for the payload's execve takes (`--kvm-cpuid`); None until
    /// KVM has answered.
    pub fn cpuid_for_exec(&self) -> Option<Vec<u8>> {
        let cpuid = self.supported_cpuid().ok()?;
        let mut bytes = Vec::with_capacity(cpuid.as_slice().len() * CPUID_ENTRY_SIZE);
        for e in cpuid.as_slice() {
            let words = [
                e.function, e.index, e.flags, e.eax, e.ebx, e.ecx, e.edx, 0, 0, 0,
            ];
            words
                .iter()
                .for_each(|w| bytes.extend_from_slice(&w.to_ne_bytes()));
        }
        Some(bytes)
    }

    /// A new empty VM like this one: in a forked km (the child cannot use the
    /// parent's VM), or for an execve that loads the new program in place.
    pub fn recreate(&self) -> Result<Self> {
        let kvm = self
            .kvm_fd()
            .try_clone_to_owned()
            .context("duplicating /dev/kvm's descriptor")?;
        let kvm = kvm_from(kvm)?;
        let (fd, lapic) = create_vm(&kvm).context("creating a VM like the payload's")?;
        keep_stats(&fd, false)?;
        // This VM had its answer before any vCPU ran (in a forked km, the thread
        // that asked it does not exist).
        let cpuid = self
            .cpuid
            .get()
            .cloned()
            .context("KVM_GET_SUPPORTED_CPUID was not answered before the first vCPU")?;
        held_vm(&kvm, &fd);
        Ok(KvmVm {
            kvm,
            fd,
            lapic,
            backend: self.backend,
            cpuid: OnceLock::from(cpuid),
            cpuid_query: Mutex::new(None),
            debug_registers: self.debug_registers.clone(),
        })
    }

    /// Whether the vCPUs' debug registers fire and KVM reports their hits
    /// (hardware KVM, unless nested under an emulator that does not arm them).
    pub fn debug_registers_fire(&self) -> bool {
        *self
            .debug_registers
            .get_or_init(|| debugregs::hits_reported(&self.kvm, self.backend))
    }

    /// km's /dev/kvm descriptor (execve passes it to the re-executed km).
    pub fn kvm_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open as long as `self.kvm`, which the
        // returned borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.kvm.as_raw_fd()) }
    }

    /// The VM descriptor, for memslots.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Supported CPUID entry `(function, index)`, as given to the guest.
    /// (None also when KVM could not say: creating a vCPU then fails with why.)
    pub fn cpuid(&self, function: u32, index: u32) -> Option<kvm_bindings::kvm_cpuid_entry2> {
        self.supported_cpuid()
            .ok()?
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .copied()
    }

    /// Creates a vCPU set up by `setup`, ready to run user code.
    /// Whether KVM copies a vCPU's general registers to and from its kvm_run
    /// (KVM_CAP_SYNC_REGS with KVM_SYNC_X86_REGS).
    /// The size of a vCPU's run page mapping (KVM_GET_VCPU_MMAP_SIZE, the same
    /// for every vCPU), once asked.
    pub fn run_size(&self) -> Option<usize> {
        static SIZE: OnceLock<Option<usize>> = OnceLock::new();
        *SIZE.get_or_init(|| self.kvm.get_vcpu_mmap_size().ok())
    }

    pub fn syncs_regs(&self) -> bool {
        let fields = self.fd.check_extension_int(kvm_ioctls::Cap::SyncRegs);
        fields > 0 && fields as u32 & kvm_bindings::KVM_SYNC_X86_REGS != 0
    }

    pub fn create_vcpu(&self, setup: &CpuSetup) -> Result<KvmVcpu> {
        let fd = self
            .fd
            .create_vcpu(setup.id as u64)
            .with_context(|| format!("KVM_CREATE_VCPU {}", setup.id))?;
        fd.set_cpuid2(self.supported_cpuid()?)
            .context("KVM_SET_CPUID2")?;
        // With an in-kernel APIC, every vCPU but the bootstrap one (id 0) would
        // wait for INIT and SIPI.
        if self.lapic && setup.id != 0 {
            let runnable = kvm_bindings::kvm_mp_state {
                mp_state: kvm_bindings::KVM_MP_STATE_RUNNABLE,
            };
            fd.set_mp_state(runnable)
                .with_context(|| format!("KVM_SET_MP_STATE of vCPU {}", setup.id))?;
        }
        keep_stats(&fd, true)?;
        KvmVcpu::new(fd, setup, self)
    }
}
