//! The KVM virtual machine: backend detection, CPUID, guest memory and page tables.

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VmFd};

use crate::landing_pad::{self, CpuArea, PT_POOL, SYS_BASE, SYS_SIZE};
use crate::memory::{Growth, GuestMemory, RegionKind};
use crate::paging::{PTE_NX, PTE_USER, PTE_WRITE, PageTables};
use crate::trace;
use crate::trace::Category;
use crate::vcpu::Vcpu;

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

/// Lowest address a payload may map (Linux's default vm.mmap_min_addr).
pub const MMAP_MIN_ADDR: u64 = 0x10000;

/// Which side of [`Vm::fork`] this is.
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child, with its own VM over its copy of the guest's memory, or why it
    /// could not have one.
    Child(Result<Vm>),
}

pub struct Vm {
    fd: VmFd,
    pub backend: Backend,
    cpuid: CpuId,
    pub mem: GuestMemory,
    /// Page tables; the lock also serializes memory commits.
    pt: Mutex<PageTables>,
}

impl Vm {
    /// Opens /dev/kvm, creates the VM and installs the system region.
    pub fn new() -> Result<Self> {
        let kvm = Kvm::new().context("opening /dev/kvm")?;
        let fd = kvm.create_vm().context("KVM_CREATE_VM")?;
        let backend = Backend::detect();
        trace!(
            Category::Kvm,
            "backend {:?}, KVM API {}",
            backend,
            kvm.get_api_version()
        );
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .context("KVM_GET_SUPPORTED_CPUID")?;
        let mut mem = GuestMemory::new()?;
        let sys = mem.reserve(RegionKind::System, SYS_BASE, SYS_SIZE, Growth::Up)?;
        mem.commit(&fd, sys, SYS_BASE..SYS_BASE + SYS_SIZE)?;
        let mut pt = PageTables::new(&mem, PT_POOL)?;
        landing_pad::install_system(&mem, &mut pt)?;
        Ok(Vm {
            fd,
            backend,
            cpuid,
            mem,
            pt: Mutex::new(pt),
        })
    }

    /// Supported CPUID entry `(function, index)`, as given to the guest.
    pub fn cpuid(&self, function: u32, index: u32) -> Option<kvm_bindings::kvm_cpuid_entry2> {
        self.cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .copied()
    }

    /// Reserves a user region of the guest address space.
    pub fn reserve(
        &mut self,
        kind: RegionKind,
        base: u64,
        size: u64,
        growth: Growth,
    ) -> Result<usize> {
        let idx = self.mem.reserve(kind, base, size, growth)?;
        trace!(
            Category::Mem,
            "reserved {kind:?} region {base:#x}..{:#x}",
            base + size
        );
        Ok(idx)
    }

    /// Backs `want` with memslots (page-table entries come with [`Vm::protect`]).
    pub fn commit(&self, region: usize, want: Range<u64>) -> Result<()> {
        let _serial = self.page_tables();
        if let Some(new) = self.mem.commit(&self.fd, region, want)? {
            trace!(
                Category::Mem,
                "committed {:#x}..{:#x} ({:?})",
                new.start,
                new.end,
                self.mem.region(region).kind
            );
        }
        Ok(())
    }

    /// Gives the committed, page-aligned `range` the protection `prot` (PROT_* bits;
    /// PROT_NONE unmaps it) in the guest page tables. When a live entry changes, every
    /// vCPU's cached translations are dropped before this returns, so no vCPU keeps
    /// using an old mapping.
    pub fn protect(&self, range: Range<u64>, prot: i32) -> Result<()> {
        let flags =
            (prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) != 0).then(|| {
                let mut f = PTE_USER;
                if prot & libc::PROT_WRITE != 0 {
                    f |= PTE_WRITE;
                }
                if prot & libc::PROT_EXEC == 0 {
                    f |= PTE_NX;
                }
                f
            });
        let mut pt = self.page_tables();
        if pt.set(&self.mem, range.clone(), flags)? {
            trace!(
                Category::Mem,
                "protect {:#x}..{:#x} {prot:#x}: flushing translations", range.start, range.end
            );
            self.mem.flush_translations(&self.fd)?;
        }
        Ok(())
    }

    /// Forks km with the page tables held still. In the child, a new VM is built
    /// over the child's copy of guest memory: same regions, same page tables, no
    /// vCPUs yet; the child gets the error if that fails, and must report it and
    /// exit (never run on as the parent).
    pub fn fork(&self) -> Result<Forked> {
        let pt = self.page_tables();
        let pid = crate::memory::host::fork().context("forking km")?;
        if pid != 0 {
            return Ok(Forked::Parent(pid));
        }
        let pt = pt.clone();
        Ok(Forked::Child(self.child_vm(pt)))
    }

    /// In a forked km: a new VM over the child's copy of this VM's memory.
    fn child_vm(&self, pt: PageTables) -> Result<Vm> {
        let kvm = Kvm::new().context("opening /dev/kvm in the forked km")?;
        let fd = kvm.create_vm().context("KVM_CREATE_VM in the forked km")?;
        let mem = self.mem.fork_into(&fd)?;
        Ok(Vm {
            fd,
            backend: self.backend,
            cpuid: self.cpuid.clone(),
            mem,
            pt: Mutex::new(pt),
        })
    }

    fn page_tables(&self) -> std::sync::MutexGuard<'_, PageTables> {
        self.pt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates vCPU `id` with its landing pad, ready to run user code.
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu> {
        let area = CpuArea::new(id);
        area.install(&self.mem, &mut self.page_tables())?;
        let fd = self
            .fd
            .create_vcpu(id as u64)
            .with_context(|| format!("KVM_CREATE_VCPU {id}"))?;
        fd.set_cpuid2(&self.cpuid).context("KVM_SET_CPUID2")?;
        let mut vcpu = Vcpu::new(fd, area, self)?;
        vcpu.first_run()?;
        Ok(vcpu)
    }

    pub fn page_table_root(&self) -> u64 {
        self.page_tables().root()
    }
}
