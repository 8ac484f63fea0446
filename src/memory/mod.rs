//! Layer 1, memory: the host reservations behind the guest's address space, its
//! memslots and bounds-checked access to it. Uses no other layer of km.
//!
//! Each [`Region`] is contiguous in guest-virtual, guest-physical and host memory, so
//! translating a guest pointer is a region lookup, never a page-table walk. Regions
//! sit at Linux-like virtual addresses (up to just below 2^47) but get compact
//! guest-physical ranges from [`PHYS_BASE`] up, because hardware KVM rejects
//! guest-physical addresses beyond the CPU's MAXPHYADDR (often 39 to 46 bits). The
//! address space is a handful of regions (the system area, the program image with its heap, the
//! mmap area with the main stack). Each region is one host reservation made with
//! `MAP_NORESERVE` (host pages exist only once touched); only its *committed* part is
//! registered with KVM as memslots, because a memslot costs host kernel memory in
//! proportion to its size. Regions grow in chunks that at least double the committed
//! size, each chunk its own memslot, so growth never re-registers a live slot. A
//! [`Growth::Sparse`] region (the 4 TiB reserve below the mmap area) instead gets
//! a memslot for each run of [`SPARSE_CHUNK`]s the payload makes accessible; its
//! guest-physical range ends above 2^42, which hardware KVM on a CPU with a smaller
//! MAXPHYADDR refuses once a chunk there is committed (untested on hardware KVM).
//!
//! The regions a payload always has (the mmap area, the system area and the image,
//! in that order) are carved out of one host reservation, the *arena*, and get
//! guest-physical ranges in the same order and at the same distances: the top of the
//! mmap area (its committed part, which grows down), the system area and the bottom
//! of the image (which grows up) are then contiguous in both, and a fork child
//! exposes them to its new VM with a single memslot. Each memslot registration
//! waits for an SRCU grace period in KVM (worker threads of the host's), which on a
//! loaded host costs milliseconds.
//!
//! Every access the monitor makes on behalf of the guest goes through
//! [`GuestMemory::slice`], which checks the range against the committed part of one
//! region and hands out a `vm_memory::VolatileSlice`: a bad guest pointer becomes a
//! [`Fault`] (EFAULT for syscalls), never a host fault; a host page that faults
//! under a copy (a file truncated below its mapping) fails that copy the same way
//! ([`faults`]).

mod eof;
pub mod faults;
pub mod host;
mod pagemap;
pub mod sysv;

pub use pagemap::{Backing, open_pagemap};

use std::ops::Range;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use rustix::io::Errno;
use vm_memory::{Bytes, MmapRegion, VolatileMemory, VolatileSlice};

use crate::trace;
use crate::trace::Category;

pub const PAGE_SIZE: u64 = 4096;
pub const HUGE_PAGE_SIZE: u64 = 2 << 20;

pub const fn page_align_down(a: u64) -> u64 {
    a & !(PAGE_SIZE - 1)
}

pub const fn page_align_up(a: u64) -> u64 {
    a.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

pub const fn huge_align_down(a: u64) -> u64 {
    a & !(HUGE_PAGE_SIZE - 1)
}

pub const fn huge_align_up(a: u64) -> u64 {
    a.wrapping_add(HUGE_PAGE_SIZE - 1) & !(HUGE_PAGE_SIZE - 1)
}

/// Where guest-physical space for regions starts; each region's physical range is
/// rounded up to [`PHYS_ALIGN`].
const PHYS_BASE: u64 = 1 << 32;
const PHYS_ALIGN: u64 = 1 << 30;
/// The memslot and guest-physical page used to flush translations (below every
/// region's physical range and far above any slot number regions use).
const FLUSH_SLOT: u32 = 32_000;
const FLUSH_GPA: u64 = 0x1000;

/// A guest access outside committed guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub addr: u64,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "guest address {:#x} is not mapped", self.addr)
    }
}

impl std::error::Error for Fault {}

/// Which way a region's committed part grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    Up,
    Down,
    /// Committed in separate chunks of [`SPARSE_CHUNK`] bytes, each where the
    /// payload makes memory accessible: a huge PROT_NONE reservation costs no
    /// memslot until parts of it are used.
    Sparse,
}

/// The unit in which a [`Growth::Sparse`] region is committed (one memslot per
/// run of new chunks: about 640 KiB of host kernel memory each on PVM).
pub const SPARSE_CHUNK: u64 = 256 << 20;

/// What a region holds; used in traces and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// GDT, IDT, TSSs, landing pads and page tables.
    System,
    /// The program's loaded segments followed by its brk heap.
    Image,
    /// The mmap area growing down, with the main stack at its top.
    Upper,
    /// The mmap area's continuation below the upper region, for reservations that
    /// do not fit there (hundreds of GiB of PROT_NONE, as Go, V8 and allocators
    /// make); committed sparsely.
    Reserve,
}

/// One contiguous host reservation covering guest addresses `[base, base + size)`.
pub struct Region {
    pub kind: RegionKind,
    base: u64,
    /// Guest-physical address of `base`.
    phys: u64,
    /// Shared with the copy a forked km builds over the same (copy-on-write) pages.
    host: Arc<MmapRegion>,
    /// The arena `host` is a part of (which unmaps it once no region uses it).
    arena: Option<Arc<MmapRegion>>,
    growth: Growth,
    /// The committed range; it only grows, and readers on other vCPU threads see it
    /// without a lock.
    committed_start: AtomicU64,
    committed_end: AtomicU64,
    /// For a sparse region: which chunks have memslots. Changed only by commits,
    /// which callers serialize.
    chunks: std::sync::Mutex<Vec<bool>>,
}

impl Drop for Region {
    /// The last owner of the region's host memory (see
    /// [`GuestMemory::disown_parent`]) takes its range off the guarded ones
    /// before the memory is unmapped.
    fn drop(&mut self) {
        if Arc::strong_count(&self.host) == 1 {
            faults::unregister(self.host.as_ptr() as usize);
        }
    }
}

impl Region {
    pub fn reserved(&self) -> Range<u64> {
        self.base..self.base + self.host.size() as u64
    }

    /// The committed range (of a sparse region: from its lowest committed chunk
    /// to its end, which holds uncommitted chunks too; the payload's mappings say
    /// which parts are in use).
    pub fn committed(&self) -> Range<u64> {
        self.committed_start.load(Ordering::Acquire)..self.committed_end.load(Ordering::Acquire)
    }

    /// The runs of committed chunks of a sparse region, as guest ranges.
    fn chunk_runs(&self) -> Vec<Range<u64>> {
        let chunks = self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let mut runs: Vec<Range<u64>> = Vec::new();
        for (i, _) in chunks.iter().enumerate().filter(|(_, c)| **c) {
            let start = self.base + i as u64 * SPARSE_CHUNK;
            match runs.last_mut() {
                Some(run) if run.end == start => run.end += SPARSE_CHUNK,
                _ => runs.push(start..start + SPARSE_CHUNK),
            }
        }
        runs
    }
}

/// One host reservation that holds several regions side by side, each in a place
/// of its own (see the module's documentation).
#[derive(Clone)]
struct Arena {
    map: Arc<MmapRegion>,
    /// Guest-physical address of the reservation's start.
    phys: u64,
    /// Each place: the kind of region it is for, its offset and size.
    places: Vec<(RegionKind, u64, u64)>,
}

/// The guest's memory: regions and the memslots that expose them to KVM.
pub struct GuestMemory {
    regions: Vec<Region>,
    arena: Option<Arena>,
    next_slot: AtomicU32,
    next_phys: u64,
    flush_page: MmapRegion,
    /// Until [`GuestMemory::expose`]: the committed parts (guest-physical range,
    /// host address) not registered with KVM yet, so that start-up registers the
    /// parts that follow each other as one memslot, not one per commit.
    unexposed: std::sync::Mutex<Option<Vec<Part>>>,
}

/// A committed part of guest memory: its guest-physical range and host address.
type Part = (Range<u64>, u64);

impl GuestMemory {
    /// Guest memory whose regions of the kinds in `arena` (each with the largest
    /// size it may be reserved with) lie side by side in that order, in host and in
    /// guest-physical memory; other regions get reservations of their own.
    pub fn new(arena: &[(RegionKind, u64)]) -> Result<Self> {
        let size: u64 = arena.iter().map(|(_, size)| size).sum();
        let arena = match size {
            0 => None,
            _ => Some(Arena {
                map: Arc::new(reserve_host(size).context("reserving host memory for the guest")?),
                phys: PHYS_BASE,
                places: arena
                    .iter()
                    .scan(0, |offset, &(kind, size)| {
                        *offset += size;
                        Some((kind, *offset - size, size))
                    })
                    .collect(),
            }),
        };
        Ok(GuestMemory {
            regions: Vec::new(),
            arena,
            next_slot: AtomicU32::new(0),
            next_phys: PHYS_BASE + size.next_multiple_of(PHYS_ALIGN),
            flush_page: MmapRegion::new(PAGE_SIZE as usize).context("allocating the flush page")?,
            unexposed: std::sync::Mutex::new(Some(Vec::new())),
        })
    }

    /// The host memory and guest-physical address for a new region of `kind` and
    /// `size`: its place in the arena when it has one that is free and large
    /// enough, or else a reservation of its own.
    fn place(
        &mut self,
        kind: RegionKind,
        size: u64,
    ) -> Result<(MmapRegion, u64, Option<Arc<MmapRegion>>)> {
        let free = self.arena.as_ref().and_then(|a| {
            let (_, offset, _) = a
                .places
                .iter()
                .find(|(k, _, room)| *k == kind && size <= *room)?;
            let taken = self.regions.iter().any(|r| {
                r.kind == kind && r.arena.as_ref().is_some_and(|m| Arc::ptr_eq(m, &a.map))
            });
            (!taken).then_some((a, *offset))
        });
        if let Some((a, offset)) = free {
            // SAFETY: `offset..offset + size` lies inside the arena's mapping (a place
            // is within the reservation, and `size` fits the place), which lives as
            // long as this region holds the arena; the region gets the arena's
            // protection and flags.
            let host = unsafe {
                MmapRegion::build_raw(
                    a.map.as_ptr().add(offset as usize),
                    size as usize,
                    a.map.prot(),
                    a.map.flags(),
                )
            }
            .context("carving a region out of the guest's host reservation")?;
            return Ok((host, a.phys + offset, Some(a.map.clone())));
        }
        let host = reserve_host(size)?;
        let phys = self.next_phys;
        self.next_phys += size.next_multiple_of(PHYS_ALIGN);
        Ok((host, phys, None))
    }

    /// Reserves host memory for guest range `[base, base + size)` (huge-page aligned)
    /// with nothing committed yet. Returns the region index.
    pub fn reserve(
        &mut self,
        kind: RegionKind,
        base: u64,
        size: u64,
        growth: Growth,
    ) -> Result<usize> {
        if !base.is_multiple_of(HUGE_PAGE_SIZE) || !size.is_multiple_of(HUGE_PAGE_SIZE) {
            bail!("{kind:?} region {base:#x}+{size:#x} is not 2 MiB aligned");
        }
        if let Some(r) = self
            .regions
            .iter()
            .find(|r| base < r.reserved().end && r.reserved().start < base + size)
        {
            bail!(
                "{kind:?} region {base:#x}..{:#x} overlaps the {:?} region {:#x}..{:#x}",
                base + size,
                r.kind,
                r.reserved().start,
                r.reserved().end
            );
        }
        let (host, phys, arena) = self.place(kind, size).with_context(|| {
            format!("reserving {size:#x} bytes of host memory for the {kind:?} region")
        })?;
        faults::register(host.as_ptr() as usize, host.size())?;
        let edge = match growth {
            Growth::Up => base,
            Growth::Down | Growth::Sparse => base + size,
        };
        let chunks = match growth {
            Growth::Sparse => vec![false; size.div_ceil(SPARSE_CHUNK) as usize],
            _ => Vec::new(),
        };
        self.regions.push(Region {
            kind,
            base,
            phys,
            host: Arc::new(host),
            arena,
            growth,
            committed_start: AtomicU64::new(edge),
            committed_end: AtomicU64::new(edge),
            chunks: std::sync::Mutex::new(chunks),
        });
        Ok(self.regions.len() - 1)
    }

    pub fn region(&self, idx: usize) -> &Region {
        &self.regions[idx]
    }

    /// The guest-physical address behind guest-virtual `addr`.
    pub fn phys(&self, addr: u64) -> Option<u64> {
        let r = &self.regions[self.region_of(addr)?];
        Some(addr - r.base + r.phys)
    }

    /// The guest address of host address `host`, if it lies in a region.
    fn guest_of_host(&self, host: u64) -> Option<u64> {
        self.regions.iter().find_map(|r| {
            let start = r.host.as_ptr() as u64;
            let offset = host.checked_sub(start)?;
            (offset < r.host.size() as u64).then_some(r.base + offset)
        })
    }

    /// The region whose reservation contains `addr`.
    pub fn region_of(&self, addr: u64) -> Option<usize> {
        self.regions
            .iter()
            .position(|r| r.reserved().contains(&addr))
    }

    /// Extends the committed part of region `idx` so that it covers `want` (which must
    /// lie inside the reservation), registering new memslots. Returns the newly
    /// committed guest range, which the caller maps in the guest page tables.
    /// Callers serialize commits (the VM holds its page-table lock around them).
    pub fn commit(&self, vm: &VmFd, idx: usize, want: Range<u64>) -> Result<Option<Range<u64>>> {
        let r = &self.regions[idx];
        if r.growth == Growth::Sparse {
            return self.commit_chunks(vm, r, want);
        }
        let reserved = r.reserved();
        if want.start < reserved.start || want.end > reserved.end {
            bail!(
                "{:?} region cannot hold {:#x}..{:#x} (reserved {:#x}..{:#x})",
                r.kind,
                want.start,
                want.end,
                reserved.start,
                reserved.end
            );
        }
        let have = r.committed();
        let grown = (have.end - have.start).max(HUGE_PAGE_SIZE);
        let new = match r.growth {
            Growth::Up if want.end > have.end => {
                let end = huge_align_up(want.end)
                    .max(have.end + grown)
                    .min(reserved.end);
                have.end..end
            }
            Growth::Down if want.start < have.start => {
                let start = huge_align_down(want.start)
                    .min(have.start.saturating_sub(grown))
                    .max(reserved.start);
                start..have.start
            }
            _ => return Ok(None),
        };
        self.add_slot(vm, r, new.clone())?;
        match r.growth {
            Growth::Up => r.committed_end.store(new.end, Ordering::Release),
            _ => r.committed_start.store(new.start, Ordering::Release),
        }
        Ok(Some(new))
    }

    /// [`GuestMemory::commit`] for a sparse region: a memslot for each run of
    /// chunks of `want` not committed yet. Returns the span of the new ones.
    fn commit_chunks(&self, vm: &VmFd, r: &Region, want: Range<u64>) -> Result<Option<Range<u64>>> {
        if want.is_empty() {
            return Ok(None);
        }
        let first = ((want.start - r.base) / SPARSE_CHUNK) as usize;
        let last = ((want.end - 1 - r.base) / SPARSE_CHUNK) as usize;
        let mut chunks = r.chunks.lock().unwrap_or_else(|e| e.into_inner());
        let mut span: Option<Range<u64>> = None;
        let mut i = first;
        while i <= last {
            if chunks[i] {
                i += 1;
                continue;
            }
            let run_start = i;
            while i <= last && !chunks[i] {
                i += 1;
            }
            let start = r.base + run_start as u64 * SPARSE_CHUNK;
            let end = (r.base + i as u64 * SPARSE_CHUNK).min(r.reserved().end);
            self.add_slot(vm, r, start..end)?;
            chunks[run_start..i].iter_mut().for_each(|c| *c = true);
            r.committed_start.fetch_min(start, Ordering::AcqRel);
            span = Some(span.map_or(start..end, |s| s.start.min(start)..s.end.max(end)));
        }
        Ok(span)
    }

    /// Registers a memslot for guest range `new` of region `r`, which no other
    /// slot covers (before [`GuestMemory::expose`]: notes it for then).
    fn add_slot(&self, vm: &VmFd, r: &Region, new: Range<u64>) -> Result<()> {
        let phys = new.start - r.base + r.phys..new.end - r.base + r.phys;
        let host = r.host.as_ptr() as u64 + (new.start - r.base);
        if let Some(parts) = self
            .unexposed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            parts.push((phys, host));
            return Ok(());
        }
        let next_slot = self.next_slot.load(Ordering::Relaxed);
        // SAFETY: the host range lies inside `r.host`, a mapping owned by this region
        // that lives as long as the VM (regions are never dropped before the VM), and
        // the guest range does not overlap any other slot (regions do not overlap and
        // committed parts only grow into uncommitted space).
        unsafe { register_slot(vm, next_slot, &phys, host) }?;
        self.next_slot.store(next_slot + 1, Ordering::Relaxed);
        Ok(())
    }

    /// In a forked km: the same regions (the child's copy-on-write copy of the
    /// parent's pages) exposed to the child's new VM `vm`, with as few memslots as
    /// their committed parts allow: one for parts that follow each other in both
    /// guest-physical and host memory (the arena's), one for each other part.
    pub fn fork_into(&self, vm: &VmFd) -> Result<GuestMemory> {
        let mut parts: Vec<Part> = Vec::new();
        for r in &self.regions {
            let committed = r.committed();
            let ranges = match r.growth {
                Growth::Sparse => r.chunk_runs(),
                _ if committed.end > committed.start => vec![committed],
                _ => Vec::new(),
            };
            parts.extend(ranges.into_iter().map(|range| {
                let host = r.host.as_ptr() as u64 + (range.start - r.base);
                (
                    range.start - r.base + r.phys..range.end - r.base + r.phys,
                    host,
                )
            }));
        }
        let slots = register_joined(vm, parts)?;
        let regions = self
            .regions
            .iter()
            .map(|r| {
                let committed = r.committed();
                Region {
                    kind: r.kind,
                    base: r.base,
                    phys: r.phys,
                    host: r.host.clone(),
                    arena: r.arena.clone(),
                    growth: r.growth,
                    committed_start: AtomicU64::new(committed.start),
                    committed_end: AtomicU64::new(committed.end),
                    chunks: std::sync::Mutex::new(
                        r.chunks.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                    ),
                }
            })
            .collect();
        let child = GuestMemory {
            next_slot: AtomicU32::new(slots),
            regions,
            arena: self.arena.clone(),
            next_phys: self.next_phys,
            flush_page: MmapRegion::new(PAGE_SIZE as usize).context("allocating the flush page")?,
            unexposed: std::sync::Mutex::new(None),
        };
        child.disown_parent();
        Ok(child)
    }

    /// In a forked km, on the child's copy just built: makes it the only owner of
    /// the host mappings, so that they are unmapped when it goes (an execve that
    /// replaces the payload in place), as a process's memory goes at its exec.
    /// The other references are the parent's, copied by the host fork with its
    /// memory: its other threads do not exist here, and the forking thread's
    /// frames that hold them never return in the child.
    fn disown_parent(&self) {
        let mut own: std::collections::HashMap<*const MmapRegion, (&Arc<MmapRegion>, usize)> =
            std::collections::HashMap::new();
        let arcs = self
            .regions
            .iter()
            .flat_map(|r| std::iter::once(&r.host).chain(r.arena.as_ref()))
            .chain(self.arena.as_ref().map(|a| &a.map));
        for arc in arcs {
            own.entry(Arc::as_ptr(arc)).or_insert((arc, 0)).1 += 1;
        }
        for (ptr, (arc, held)) in own {
            while Arc::strong_count(arc) > held {
                // SAFETY: `ptr` came from a live Arc (`arc`, held here, so the count
                // stays above zero); the reference given up is one of the parent's
                // copies, which (see above) is never dropped or used in this process,
                // and the child has no other thread that could race the count.
                unsafe { Arc::decrement_strong_count(ptr) };
            }
        }
    }

    /// Registers with KVM, before the guest first runs, what was committed
    /// since [`GuestMemory::new`]: the parts that follow each other in both
    /// guest-physical and host memory as one memslot (the arena's, at start-up:
    /// the stack, the system area and the image). Commits register their own
    /// memslots from then on. Nothing the second time.
    pub fn expose(&self, vm: &VmFd) -> Result<()> {
        let mut unexposed = self.unexposed.lock().unwrap_or_else(|e| e.into_inner());
        let Some(parts) = unexposed.take() else {
            return Ok(());
        };
        let slots = register_joined(vm, parts)?;
        self.next_slot.store(slots, Ordering::Relaxed);
        Ok(())
    }

    /// Drops every vCPU's cached guest translations (KVM's shadow page tables on PVM,
    /// its MMU on hardware), after the monitor changed live page-table entries:
    /// registering and deleting a one-page memslot makes KVM zap its MMU for all
    /// vCPUs before the deletion returns.
    pub fn flush_translations(&self, vm: &VmFd) -> Result<()> {
        let mut region = kvm_userspace_memory_region {
            slot: FLUSH_SLOT,
            flags: 0,
            guest_phys_addr: FLUSH_GPA,
            memory_size: PAGE_SIZE,
            userspace_addr: self.flush_page.as_ptr() as u64,
        };
        // SAFETY: the slot is km's own page, which lives as long as the VM, at a
        // guest-physical address no region or page table uses.
        unsafe { vm.set_user_memory_region(region) }.context("registering the flush memslot")?;
        region.memory_size = 0;
        // SAFETY: deleting the slot registered just above.
        unsafe { vm.set_user_memory_region(region) }.context("deleting the flush memslot")?;
        crate::stats::count(crate::stats::Event::MmuFlush);
        Ok(())
    }

    /// Makes KVM drop every vCPU's translations to the host pages behind committed
    /// guest `range`, whose host mapping must be private and readable and writable:
    /// a host mprotect adding PROT_EXEC and one taking it off again each run KVM's
    /// MMU notifier over the range's populated pages, which zaps their shadow (or
    /// nested) entries and flushes the TLBs of the vCPUs that held them. No access
    /// km or KVM makes meanwhile can fail (nothing is taken away), and the pages stay
    /// as they are. Returns false when `range` is not committed memory of one region
    /// or the host refused the first mprotect (a mount without exec, a security
    /// module): the caller must then flush everything.
    pub fn invalidate_translations(&self, range: Range<u64>) -> Result<bool> {
        let len = (range.end - range.start) as usize;
        // A range over two regions, or over uncommitted chunks of the sparse one.
        let Ok(slice) = self.slice(range.start, len) else {
            return Ok(false);
        };
        let host = slice.ptr_guard_mut().as_ptr();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: `host..host+len` is committed guest memory inside a region's
        // reservation (checked by `slice`), privately mapped readable and writable
        // (the caller's contract); adding PROT_EXEC takes no access away.
        let added = unsafe { libc::mprotect(host.cast(), len, rw | libc::PROT_EXEC) } == 0;
        if !added {
            let e = std::io::Error::last_os_error();
            trace!(
                Category::Mem,
                "host mprotect of guest range {:#x}..{:#x} to drop its translations: {e}",
                range.start,
                range.end
            );
        }
        // SAFETY: as above; this restores the mapping's protection (also of the
        // part a refused first call changed).
        if unsafe { libc::mprotect(host.cast(), len, rw) } != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!(
                    "restoring the host protection of guest range {:#x}..{:#x}",
                    range.start, range.end
                )
            });
        }
        if added {
            crate::stats::count(crate::stats::Event::MmuInvalidation);
        }
        Ok(added)
    }

    /// A bounds-checked view of guest range `[addr, addr + len)`, which must lie in the
    /// committed part of one region.
    pub fn slice(&self, addr: u64, len: usize) -> Result<VolatileSlice<'_>, Fault> {
        if len == 0 {
            // An empty buffer is valid wherever it points, as on Linux.
            let any = self.regions.first().ok_or(Fault { addr })?;
            return any.host.get_slice(0, 0).map_err(|_| Fault { addr });
        }
        let end = addr.checked_add(len as u64).ok_or(Fault { addr })?;
        let r = self
            .regions
            .iter()
            .find(|r| {
                let c = r.committed();
                c.start <= addr && end <= c.end && addr < c.end
            })
            .ok_or(Fault { addr })?;
        r.host
            .get_slice((addr - r.base) as usize, len)
            .map_err(|_| Fault { addr })
    }

    pub fn read_obj<T: vm_memory::ByteValued>(&self, addr: u64) -> Result<T, Fault> {
        read_obj(addr, &self.slice(addr, std::mem::size_of::<T>())?)
    }

    pub fn write_obj<T: vm_memory::ByteValued>(&self, addr: u64, val: T) -> Result<(), Fault> {
        write_obj(addr, &self.slice(addr, std::mem::size_of::<T>())?, val)
    }

    /// Stores `new` in the 8-byte word at `addr` (aligned) if it still holds
    /// `current`; returns what it held. For page-table entries, in which vCPUs set
    /// accessed and dirty bits while km edits them.
    pub fn compare_exchange_u64(&self, addr: u64, current: u64, new: u64) -> Result<u64, Fault> {
        let slice = self.slice(addr, size_of::<u64>())?;
        let word = slice
            .get_atomic_ref::<AtomicU64>(0)
            .map_err(|_| Fault { addr })?;
        Ok(word
            .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
            .unwrap_or_else(|held| held))
    }

    pub fn read_bytes(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        copy_to(addr, &self.slice(addr, buf.len())?, buf)
    }

    pub fn write_bytes(&self, addr: u64, buf: &[u8]) -> Result<(), Fault> {
        copy_from(addr, &self.slice(addr, buf.len())?, buf)
    }

    /// Whether km can read the host page behind guest address `addr` (committed,
    /// and not a file page past the end of its file).
    pub fn backing_readable(&self, addr: u64) -> bool {
        self.read_obj::<u8>(page_align_down(addr)).is_ok()
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
    pub fn read_cstr(&self, addr: u64, max: usize) -> Result<Vec<u8>, Fault> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read up to the end of the page so a string ending just before an
            // unmapped page is still readable.
            let chunk = ((page_align_down(at) + PAGE_SIZE - at) as usize).min(max - out.len());
            let mut buf = vec![0u8; chunk];
            self.read_bytes(at, &mut buf)?;
            if let Some(nul) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..nul]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            at += chunk as u64;
        }
        Err(Fault { addr: at })
    }

    /// msync(2) on the host pages behind a committed guest range: a shared file
    /// mapping's changes reach the file.
    pub fn sync_to_file(&self, range: Range<u64>, flags: i32) -> Result<()> {
        let len = (range.end - range.start) as usize;
        let host = self.slice(range.start, len)?.ptr_guard_mut().as_ptr();
        // SAFETY: `host..host+len` is committed guest memory inside a region's
        // reservation (checked by `slice`); msync only writes dirty pages back.
        let rc = unsafe { libc::msync(host.cast(), len, flags) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!("msync of guest range {:#x}..{:#x}", range.start, range.end)
            });
        }
        Ok(())
    }

    /// Gives the host pages behind a committed guest range back to the host kernel and
    /// makes the range read as zeroes again (anonymous, private).
    pub fn discard(&self, range: Range<u64>) -> Result<()> {
        self.remap(
            range,
            None,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE,
        )
    }

    /// Asks the host for transparent huge pages behind the whole 2 MiB blocks of
    /// committed guest range `range` (anonymous memory the payload mapped), so that a
    /// first touch there faults in 2 MiB at once and KVM maps the block with one
    /// large entry (the guest page tables have one for such a block too). Nothing
    /// when the host memory is not aligned like the guest's (Linux places large
    /// anonymous mappings, hence km's reservations, on 2 MiB boundaries).
    pub fn prefer_huge_pages(&self, range: Range<u64>) -> Result<()> {
        let blocks = huge_align_up(range.start)..huge_align_down(range.end);
        if blocks.start >= blocks.end {
            return Ok(());
        }
        let len = (blocks.end - blocks.start) as usize;
        let host = self.slice(blocks.start, len)?.ptr_guard_mut().as_ptr();
        if (host as u64).is_multiple_of(HUGE_PAGE_SIZE) {
            advise_huge_pages(host, len);
        }
        Ok(())
    }

    /// Faults in the host pages behind committed anonymous guest range `range`
    /// as writes would (MADV_POPULATE_WRITE: zeroed pages, present and writable
    /// in km's page tables), without changing contents; false when the host
    /// cannot (before Linux 5.14, or out of memory), and nothing was done then
    /// beyond what the host managed.
    pub fn populate_writable(&self, range: Range<u64>) -> bool {
        let len = (range.end - range.start) as usize;
        let Ok(slice) = self.slice(range.start, len) else {
            return false;
        };
        let host = slice.ptr_guard_mut().as_ptr();
        // SAFETY: `host..host+len` is committed guest memory inside a region's
        // reservation (checked by `slice`); populating changes no contents.
        unsafe { libc::madvise(host.cast(), len, libc::MADV_POPULATE_WRITE) == 0 }
    }

    /// Populates the host pages behind a committed guest range, as a read
    /// (MADV_POPULATE_READ: a file mapping's page-cache pages mapped as they are)
    /// or a write would (MADV_POPULATE_WRITE: a private file mapping's pages
    /// copied) of each page, changing no contents. Where the host cannot
    /// (before Linux 5.14), each page is read once instead.
    pub fn populate(&self, range: Range<u64>, write: bool) -> Result<()> {
        let len = (range.end - range.start) as usize;
        let host = self.slice(range.start, len)?.ptr_guard_mut().as_ptr();
        let advice = if write {
            libc::MADV_POPULATE_WRITE
        } else {
            libc::MADV_POPULATE_READ
        };
        // SAFETY: `host..host+len` is committed guest memory inside a region's
        // reservation (checked by `slice`); populating changes no contents.
        if unsafe { libc::madvise(host.cast(), len, advice) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        trace!(
            Category::Mem,
            "populating {len:#x} bytes at {:#x}: {e}", range.start
        );
        let mut byte = [0u8];
        for page in range.step_by(PAGE_SIZE as usize) {
            // A page that cannot be read (past its file's end) stays as it is.
            let _ = self.read_bytes(page, &mut byte);
        }
        Ok(())
    }

    /// Backs a committed guest range with fresh zeroed shared memory (the guest's
    /// MAP_SHARED|MAP_ANONYMOUS): a fork child's km shares it with this km, as Linux
    /// shares such memory between parent and child.
    pub fn share(&self, range: Range<u64>) -> Result<()> {
        self.remap(
            range,
            None,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
        )
    }

    /// Backs a committed guest range with a host file mapping (MAP_PRIVATE or
    /// MAP_SHARED); KVM follows the change through its MMU notifier.
    pub fn map_file(
        &self,
        range: Range<u64>,
        fd: BorrowedFd<'_>,
        offset: u64,
        prot: i32,
        flags: i32,
    ) -> Result<()> {
        self.remap(range, Some((fd, offset)), prot, flags)
    }

    /// Moves System V segment `segment` over the committed guest range `range`,
    /// which must be exactly as long (the segment's size rounded up to pages).
    pub fn place_sysv(&self, range: Range<u64>, mut segment: SysvSegment) -> Result<(), Errno> {
        let len = (range.end - range.start) as usize;
        if len != segment.len {
            return Err(Errno::INVAL);
        }
        let host = self
            .slice(range.start, len)
            .map_err(|_| Errno::INVAL)?
            .ptr_guard_mut()
            .as_ptr();
        // SAFETY: the source is the segment's own attachment (`segment.len` bytes, all
        // of it); the destination `host..host+len` lies inside a reservation owned by
        // a region (checked by `slice`), which no Rust reference points into, and
        // MREMAP_FIXED replaces exactly those pages.
        let p = unsafe {
            libc::mremap(
                segment.addr as *mut libc::c_void,
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                host,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(last_errno());
        }
        // The attachment now lives in guest memory; munmap there detaches it.
        segment.addr = 0;
        Ok(())
    }

    /// The host address behind guest `range`, which must lie in one region's
    /// reservation, committed or not: replacing host memory needs no memslot (a
    /// sparse region's PROT_NONE parts have none until they are made accessible,
    /// and KVM follows a later memslot to whatever mapping is there then).
    fn reserved_host(&self, range: &Range<u64>) -> Result<*mut u8, Fault> {
        let r = self
            .regions
            .iter()
            .find(|r| {
                let reserved = r.reserved();
                reserved.start <= range.start && range.end <= reserved.end
            })
            .filter(|_| range.start < range.end)
            .ok_or(Fault { addr: range.start })?;
        Ok(r.host
            .get_slice(
                (range.start - r.base) as usize,
                (range.end - range.start) as usize,
            )
            .map_err(|_| Fault { addr: range.start })?
            .ptr_guard_mut()
            .as_ptr())
    }

    fn remap(
        &self,
        range: Range<u64>,
        file: Option<(BorrowedFd<'_>, u64)>,
        prot: i32,
        flags: i32,
    ) -> Result<()> {
        let len = (range.end - range.start) as usize;
        let host = self.reserved_host(&range)?;
        let (fd, off, kind) = match file {
            Some((fd, off)) => (fd.as_raw_fd(), off as libc::off_t, 0),
            None => (-1, 0, libc::MAP_ANONYMOUS | libc::MAP_NORESERVE),
        };
        // SAFETY: `host..host+len` lies inside a reservation owned by a region (checked
        // by `reserved_host`), which no Rust reference points into; MAP_FIXED replaces exactly
        // those pages and nothing outside the guest's memory.
        let p = unsafe {
            libc::mmap(
                host.cast(),
                len,
                prot,
                flags | kind | libc::MAP_FIXED,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            // A MAP_FIXED mapping that fails late (a file whose mmap refuses) has
            // already taken the old pages away: guest memory must never have a
            // hole, so fresh zero pages fill it, as Linux leaves the old mapping
            // lost.
            // SAFETY: `host..host+len` is the same checked guest range as above.
            let unmapped = unsafe { libc::madvise(host.cast(), len, libc::MADV_NORMAL) } != 0;
            if unmapped && file.is_some() {
                self.remap(
                    range.clone(),
                    None,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE,
                )?;
            }
            return Err(error).with_context(|| {
                format!("remapping guest range {:#x}..{:#x}", range.start, range.end)
            });
        }
        Ok(())
    }
}

/// Registers committed parts `(guest-physical range, host address)` as memslots
/// 0, 1, ...: one for each run of parts that follow each other in both
/// guest-physical and host memory. Returns how many slots that took.
fn register_joined(vm: &VmFd, mut parts: Vec<Part>) -> Result<u32> {
    parts.sort_by_key(|(phys, _)| phys.start);
    let mut slots: Vec<Part> = Vec::with_capacity(parts.len());
    for (phys, host) in parts {
        match slots.last_mut() {
            Some((last, last_host))
                if last.end == phys.start && *last_host + (last.end - last.start) == host =>
            {
                last.end = phys.end;
            }
            _ => slots.push((phys, host)),
        }
    }
    for (slot, (phys, host)) in (0u32..).zip(&slots) {
        // SAFETY: the host range is the committed parts of regions whose mappings
        // live as long as the VM (regions are never dropped before it), joined only
        // where they follow each other in host memory too; regions and a sparse
        // region's runs do not overlap in guest-physical memory, so neither do the
        // slots.
        unsafe { register_slot(vm, slot, phys, *host) }?;
    }
    Ok(slots.len() as u32)
}

/// Registers memslot `slot`: guest-physical range `phys` backed by host memory
/// from `host` on.
///
/// # Safety
/// `[host, host + phys.len())` must be mapped for as long as the VM lives, and
/// `phys` must not overlap another memslot of `vm`.
unsafe fn register_slot(vm: &VmFd, slot: u32, phys: &Range<u64>, host: u64) -> Result<()> {
    let region = kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: phys.start,
        memory_size: phys.end - phys.start,
        userspace_addr: host,
    };
    // SAFETY: what the caller promises (see above).
    unsafe { vm.set_user_memory_region(region) }.with_context(|| {
        format!(
            "KVM_SET_USER_MEMORY_REGION slot {slot} for the guest-physical range {:#x}..{:#x}",
            phys.start, phys.end
        )
    })?;
    crate::stats::count(crate::stats::Event::MemslotChange);
    Ok(())
}

/// A `size`-byte host reservation for guest memory: private, anonymous, readable
/// and writable, with no swap reserved (pages exist once touched).
fn reserve_host(size: u64) -> Result<MmapRegion> {
    Ok(MmapRegion::build(
        None,
        usize::try_from(size)?,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
    )?)
}

/// Asks the host for transparent huge pages behind km's mapping `[host, host + len)`
/// of guest memory. A hint: without THP the host refuses it and pages stay 4 KiB.
fn advise_huge_pages(host: *mut u8, len: usize) {
    // SAFETY: MADV_HUGEPAGE changes neither contents nor protection of the range,
    // only how the host kernel backs it.
    if unsafe { libc::madvise(host.cast(), len, libc::MADV_HUGEPAGE) } != 0 {
        let e = std::io::Error::last_os_error();
        trace!(Category::Mem, "MADV_HUGEPAGE on {len:#x} bytes: {e}");
    }
}

/// Copies guest slice `s` (at guest address `addr`) into `buf`, which is as long.
#[allow(clippy::disallowed_methods)] // the guarded copy itself (clippy.toml)
pub fn copy_to(addr: u64, s: &VolatileSlice<'_>, buf: &mut [u8]) -> Result<(), Fault> {
    faults::guarded(|| s.copy_to(buf))
        .map(drop)
        .ok_or(Fault { addr })
}

/// Copies `buf` into guest slice `s` (at guest address `addr`), which is as long.
#[allow(clippy::disallowed_methods)] // the guarded copy itself (clippy.toml)
pub fn copy_from(addr: u64, s: &VolatileSlice<'_>, buf: &[u8]) -> Result<(), Fault> {
    faults::guarded(|| s.copy_from(buf)).ok_or(Fault { addr })
}

/// Reads a `T` from the start of guest slice `s` (at guest address `addr`).
#[allow(clippy::disallowed_methods)] // the guarded copy itself (clippy.toml)
pub fn read_obj<T: vm_memory::ByteValued>(addr: u64, s: &VolatileSlice<'_>) -> Result<T, Fault> {
    faults::guarded(|| s.read_obj(0))
        .and_then(|r| r.ok())
        .ok_or(Fault { addr })
}

/// Writes `val` at the start of guest slice `s` (at guest address `addr`).
#[allow(clippy::disallowed_methods)] // the guarded copy itself (clippy.toml)
pub fn write_obj<T: vm_memory::ByteValued>(
    addr: u64,
    s: &VolatileSlice<'_>,
    val: T,
) -> Result<(), Fault> {
    faults::guarded(|| s.write_obj(val, 0))
        .and_then(|r| r.ok())
        .ok_or(Fault { addr })
}

/// The calling thread's errno.
fn last_errno() -> Errno {
    Errno::from_raw_os_error(
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL),
    )
}

/// A System V shared memory segment attached where the host kernel chose, before
/// it is placed in guest memory ([`GuestMemory::place_sysv`]); detached on drop.
/// While attached, the segment id cannot name another segment, so its size is read
/// after attaching: what is moved into guest memory is exactly the segment.
pub struct SysvSegment {
    addr: usize,
    len: usize,
}

impl SysvSegment {
    /// Attaches segment `id` (read-only with `readonly`); the host's errno (EINVAL,
    /// EACCES, EIDRM...) when it cannot.
    pub fn attach(id: i32, readonly: bool) -> Result<SysvSegment, Errno> {
        let flags = if readonly { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose free host address space, so
        // the attachment replaces nothing.
        let p = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        if p as isize == -1 {
            return Err(last_errno());
        }
        let mut segment = SysvSegment {
            addr: p as usize,
            len: 0,
        };
        // SAFETY: shmid_ds is plain data the kernel fills; IPC_STAT writes one.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: the kernel writes one struct shmid_ds into the km variable.
        if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } < 0 {
            return Err(last_errno());
        }
        segment.len = ds.shm_segsz.div_ceil(PAGE_SIZE as usize) * PAGE_SIZE as usize;
        Ok(segment)
    }

    /// The guest range length the segment takes (its size rounded up to pages).
    pub fn guest_len(&self) -> u64 {
        self.len as u64
    }
}

impl Drop for SysvSegment {
    fn drop(&mut self) {
        if self.addr != 0 {
            // SAFETY: `addr` is this segment's own attachment, which nothing else
            // refers to.
            unsafe { libc::shmdt(self.addr as *const libc::c_void) };
        }
    }
}
