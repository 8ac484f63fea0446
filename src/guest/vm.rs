//! The guest machine: a KVM VM with the guest's memory, page tables and system
//! region (descriptor tables, landing pads), and its vCPUs.

use std::ops::Range;
use std::sync::Mutex;

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};

use super::landing_pad::{self, CpuArea, PT_POOL, SYS_BASE, SYS_SIZE};
use super::mm::{IMAGE_SIZE, UPPER_SIZE};
use super::paging::{PTE_ACCESSED, PTE_DIRTY, PTE_NX, PTE_USER, PTE_WRITE, PageTables, Stale};
use super::vcpu::Vcpu;
use crate::kvm::{Backend, KvmVm};
use crate::memory::{Growth, GuestMemory, RegionKind};
use crate::trace;
use crate::trace::Category;

/// Lowest address a payload may map (Linux's default vm.mmap_min_addr).
pub const MMAP_MIN_ADDR: u64 = 0x10000;

/// Which side of [`Vm::fork`] this is.
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(i32),
    /// The child, with its own VM over its copy of the guest's memory, or why it
    /// could not have one.
    Child(Result<Box<Vm>>),
}

pub struct Vm {
    pub kvm: KvmVm,
    pub mem: GuestMemory,
    /// Page tables; the lock also serializes memory commits.
    pt: Mutex<PageTables>,
}

impl Vm {
    /// Creates the VM (on `kvm`, a /dev/kvm descriptor km inherited, or else on
    /// /dev/kvm opened here) and installs the system region, in the place it has
    /// between the mmap area and the image (`GuestMemory::new`). `known_cpuid`:
    /// see [`KvmVm::new`].
    pub fn new(kvm: Option<OwnedFd>, known_cpuid: Option<&[u8]>) -> Result<Self> {
        Self::on(KvmVm::new(kvm, known_cpuid)?)
    }

    /// A new, empty VM for the program an execve loads in place of this VM's
    /// (same /dev/kvm, CPUID and backend).
    pub fn for_exec(&self) -> Result<Self> {
        Self::on(self.kvm.recreate()?)
    }

    /// The guest's memory and system region on the new KVM VM `kvm`.
    fn on(kvm: KvmVm) -> Result<Self> {
        let mut mem = GuestMemory::new(&[
            (RegionKind::Upper, UPPER_SIZE),
            (RegionKind::System, SYS_SIZE),
            (RegionKind::Image, IMAGE_SIZE),
        ])?;
        let sys = mem.reserve(RegionKind::System, SYS_BASE, SYS_SIZE, Growth::Up)?;
        mem.commit(kvm.fd(), sys, SYS_BASE..SYS_BASE + SYS_SIZE)?;
        let mut pt = PageTables::new(&mem, PT_POOL)?;
        landing_pad::install_system(&mem, &mut pt)?;
        Ok(Vm {
            kvm,
            mem,
            pt: Mutex::new(pt),
        })
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
        if let Some(new) = self.mem.commit(self.kvm.fd(), region, want)? {
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
        self.set_entries(range, prot, 0, false)
    }

    /// [`Vm::protect`] for a range whose host memory is private (anonymous or a
    /// MAP_PRIVATE file mapping, which km maps readable and writable on the host).
    /// When only leaf entries changed, the stale translations are dropped through
    /// KVM's MMU notifier (`GuestMemory::invalidate_translations`: a host mprotect
    /// there and back), which zaps those pages' translations on every vCPU, instead
    /// of a flush of everything (a memslot change: milliseconds on a loaded PVM host,
    /// and every vCPU then faults its whole working set in again).
    pub fn protect_private(&self, range: Range<u64>, prot: i32) -> Result<()> {
        self.set_entries(range, prot, 0, true)
    }

    /// [`Vm::protect`] for pages km fills before the payload runs (a loaded ELF
    /// image, a restored snapshot): their entries start out accessed, and KVM's
    /// shadow MMU, which prefetches only accessed entries, then maps up to 8
    /// neighbours on each fault; dirty too, so that it maps a writable neighbour
    /// writable, and a first write there takes no fault of its own. Changing them
    /// later costs a flush, as for any accessed entry.
    pub fn protect_loaded(&self, range: Range<u64>, prot: i32) -> Result<()> {
        self.set_entries(range, prot, PTE_ACCESSED | PTE_DIRTY, false)
    }

    fn set_entries(&self, range: Range<u64>, prot: i32, extra: u64, private: bool) -> Result<()> {
        let flags =
            (prot & (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) != 0).then(|| {
                let mut f = PTE_USER | extra;
                if prot & libc::PROT_WRITE != 0 {
                    f |= PTE_WRITE;
                }
                if prot & libc::PROT_EXEC == 0 {
                    f |= PTE_NX;
                }
                f
            });
        let mut pt = self.page_tables();
        let stale = pt.set(&self.mem, range.clone(), flags)?;
        if stale == Stale::Leaves && private && self.mem.invalidate_translations(range.clone())? {
            trace!(
                Category::Mem,
                "protect {:#x}..{:#x} {prot:#x}: translations dropped by the host mprotect",
                range.start,
                range.end
            );
        } else if stale != Stale::None {
            trace!(
                Category::Mem,
                "protect {:#x}..{:#x} {prot:#x}: flushing translations", range.start, range.end
            );
            self.mem.flush_translations(self.kvm.fd())?;
        }
        Ok(())
    }

    /// Unmaps the committed, page-aligned `range` from the guest page tables, then
    /// gives its host memory back (`GuestMemory::discard`: fresh zero pages). That
    /// replacement of the host mapping makes KVM drop every translation of those
    /// pages (its MMU notifier), so no flush of all vCPUs is needed unless the
    /// discard fails.
    pub fn unmap_discarding(&self, range: Range<u64>) -> Result<()> {
        let mut pt = self.page_tables();
        let stale = pt.set(&self.mem, range.clone(), None)?;
        let discarded = self.mem.discard(range.clone());
        if stale != Stale::None && discarded.is_err() {
            self.mem.flush_translations(self.kvm.fd())?;
        }
        discarded
    }

    /// Forks km with the page tables held still. In the child, a new VM is built
    /// over the child's copy of guest memory: same regions, same page tables, no
    /// vCPUs yet; the child gets the error if that fails, and must report it and
    /// exit (never run on as the parent). The child lets go of the parent's KVM
    /// objects the fork copied (`kvm::held`).
    pub fn fork(&self) -> Result<Forked> {
        let pt = self.page_tables();
        let pid = crate::memory::host::fork().context("forking km")?;
        if pid != 0 {
            return Ok(Forked::Parent(pid));
        }
        // The parent's KVM objects, copied by the fork, go once the child has its
        // own VM (made from the parent's /dev/kvm descriptor) and nothing points
        // at the parent's vCPUs any more.
        let parents = crate::kvm::held::take_all();
        let pt = pt.clone();
        let child = self.child_vm(pt).map(Box::new);
        crate::kvm::kick::forget_parent();
        crate::kvm::held::let_go(parents);
        Ok(Forked::Child(child))
    }

    /// In a forked km: a new VM over the child's copy of this VM's memory.
    fn child_vm(&self, pt: PageTables) -> Result<Vm> {
        let kvm = self.kvm.recreate()?;
        let mem = self.mem.fork_into(kvm.fd())?;
        Ok(Vm {
            kvm,
            mem,
            pt: Mutex::new(pt),
        })
    }

    fn page_tables(&self) -> std::sync::MutexGuard<'_, PageTables> {
        self.pt.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates vCPU `id` with its landing pad, ready to run user code. The
    /// first one registers what start-up committed with KVM
    /// ([`GuestMemory::expose`]) before it runs.
    pub fn create_vcpu(&self, id: u32) -> Result<Vcpu> {
        self.mem.expose(self.kvm.fd())?;
        let area = CpuArea::new(id, self.kvm.backend == Backend::Hardware);
        area.install(&self.mem, &mut self.page_tables())?;
        let mut kvm = self.kvm.create_vcpu(&area.setup(self.page_table_root()))?;
        kvm.first_run()?;
        Ok(Vcpu { kvm, area })
    }

    pub fn page_table_root(&self) -> u64 {
        self.page_tables().root()
    }
}
