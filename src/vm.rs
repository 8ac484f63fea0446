//! The KVM virtual machine: backend detection, CPUID, guest memory and page tables.

use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use anyhow::{Context, Result, bail};
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

/// Lowest address a payload may map (Linux's default vm.mmap_min_addr).
pub const MMAP_MIN_ADDR: u64 = 0x10000;

/// Which side of [`Vm::fork`] this is.
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child, with its own VM over its copy of the guest's memory.
    Child(Vm),
}

pub struct Vm {
    /// km's /dev/kvm descriptor, kept for a forked or re-executed km (which may
    /// no longer be allowed to open /dev/kvm: `--sandbox`).
    kvm: Kvm,
    fd: VmFd,
    pub backend: Backend,
    cpuid: CpuId,
    pub mem: GuestMemory,
    /// Page tables; the lock also serializes memory commits.
    pt: Mutex<PageTables>,
}

impl Vm {
    /// Creates the VM and installs the system region, on `kvm` (a /dev/kvm
    /// descriptor km inherited) or else on /dev/kvm opened here.
    pub fn new(kvm: Option<OwnedFd>) -> Result<Self> {
        let kvm = match kvm {
            Some(fd) => kvm_from(fd)?,
            None => Kvm::new().context("opening /dev/kvm")?,
        };
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
            kvm,
            fd,
            backend,
            cpuid,
            mem,
            pt: Mutex::new(pt),
        })
    }

    /// km's /dev/kvm descriptor (execve passes it to the re-executed km).
    pub fn kvm_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open as long as `self.kvm`, which the
        // returned borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.kvm.as_raw_fd()) }
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
    /// vCPUs yet.
    pub fn fork(&self) -> Result<Forked> {
        let pt = self.page_tables();
        let pid = crate::memory::host::fork().context("forking km")?;
        if pid != 0 {
            return Ok(Forked::Parent(pid));
        }
        let pt = pt.clone();
        match self.child_vm(pt) {
            Ok(vm) => Ok(Forked::Child(vm)),
            // Never return an error into the child: it would run on as the parent.
            Err(e) => {
                eprintln!("km: forked child: {e:#}");
                std::process::exit(crate::KM_ERROR_STATUS as i32)
            }
        }
    }

    /// In a forked km: a new VM over the child's copy of this VM's memory.
    fn child_vm(&self, pt: PageTables) -> Result<Vm> {
        let kvm = self
            .kvm_fd()
            .try_clone_to_owned()
            .context("duplicating /dev/kvm's descriptor in the forked km")?;
        let kvm = kvm_from(kvm)?;
        let fd = kvm.create_vm().context("KVM_CREATE_VM in the forked km")?;
        let mem = self.mem.fork_into(&fd)?;
        Ok(Vm {
            kvm,
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
        Vcpu::new(fd, area, self)
    }

    pub fn page_table_root(&self) -> u64 {
        self.page_tables().root()
    }
}
