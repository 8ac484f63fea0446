//! The payload's address space, modelled on Linux: program image and brk heap low,
//! the main stack high, and the mmap area growing down below the stack.
//!
//! This module keeps the mappings (VMAs) the payload asked for; `memory` provides the
//! host memory behind them and `vm` commits it. A syscall's pointer argument is valid
//! when every byte lies in a VMA with the needed protection ([`AddressSpace::check`]).
//!
//! Every VMA change is mirrored in the guest page tables through `Vm::protect`, so
//! a write to a read-only page, or any access to a PROT_NONE or unmapped page, faults
//! as on Linux; freed memory also goes back to the host (`GuestMemory::discard`).

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use rustix::io::Errno;

use super::admission::{self, Charge};
use crate::guest::vm::{MMAP_MIN_ADDR, Vm};
use crate::memory::{Fault, Growth, HUGE_PAGE_SIZE, RegionKind, page_align_up};
use crate::trace;
use crate::trace::Category;

/// Where the contents of a mapping restored from a snapshot come from: `len`
/// bytes at `offset` in a file, mapped over the range (MAP_PRIVATE, copy-on-write,
/// or MAP_SHARED). A private mapping's pages are populated later, `fill`'s runs
/// of them: the payload runs meanwhile, finding each page the file's until then.
pub struct Contents<'a> {
    pub fd: BorrowedFd<'a>,
    pub offset: u64,
    pub len: u64,
    pub flags: i32,
    pub fill: Option<Fill>,
}

/// How the pages of a private mapping restored from a file are populated.
pub struct Fill {
    /// The file's data in the mapping (file offsets, within its bytes; the rest,
    /// holes, reads as zeroes and needs nothing).
    pub runs: Vec<Range<u64>>,
    /// Made private copies (data the payload writes) rather than mapped as the
    /// page cache holds them.
    pub write: bool,
    /// Populated in the background as soon as the payload runs
    /// ([`AddressSpace::fill_next`]), rather than on first touch (and before a
    /// snapshot or core file reads them, [`AddressSpace::fill_all`]).
    pub background: bool,
}

/// Restored pages the background populates next: the gaps between the pages
/// the payload has touched in a piece ([`AddressSpace::fill_next`]).
pub struct FillPiece {
    gaps: Vec<Range<u64>>,
    write: bool,
}

impl FillPiece {
    /// Populates the piece's pages: private copies made at once for memory
    /// the payload may write, else page-cache pages mapped as they are.
    pub fn populate(&self, vm: &Vm) {
        for gap in &self.gaps {
            if let Err(e) = vm.mem.populate(gap.clone(), self.write) {
                trace!(Category::Mem, "populating restored pages: {e:#}");
            }
        }
    }
}

/// A guest range restored from a snapshot whose pages are not populated yet.
#[derive(Clone)]
struct Unfilled {
    range: Range<u64>,
    write: bool,
    background: bool,
}

/// Top of the main stack; the system region lies above it.
pub const STACK_TOP: u64 = crate::guest::landing_pad::SYS_BASE - HUGE_PAGE_SIZE;
/// End of the user address space (Linux's TASK_SIZE with 4-level paging).
pub const TASK_SIZE: u64 = (1 << 47) - crate::memory::PAGE_SIZE;
/// Main stack size (Linux's default RLIMIT_STACK).
pub const STACK_SIZE: u64 = 8 << 20;
/// The top of the upper region committed at start-up: the stack and the first
/// 56 MiB of the mmap area. Start-up's memslot covers it (one registration for
/// what start-up commits); each later commit registers a memslot of its own,
/// 0.3-0.45 ms on a nested host, which `python3 -c pass` needed for its
/// third 16 MiB. A larger memslot costs only KVM's bookkeeping (8 bytes per
/// 4 KiB page): nothing is allocated or mapped before the payload maps it.
const INITIAL_UPPER: u64 = 64 << 20;
/// The largest brk growth whose pages km faults in at once ([`AddressSpace::brk`]).
const PREFAULTED_BRK_GROWTH: u64 = 256 << 10;
/// Gap between the stack and the top of the mmap area.
const STACK_GAP: u64 = HUGE_PAGE_SIZE;
/// Host reservation for the mmap area and stack.
pub const UPPER_SIZE: u64 = 128 << 30;
/// Where the upper region starts; no mapping crosses this line.
const UPPER_BASE: u64 = STACK_TOP - UPPER_SIZE;
/// Host reservation for the mmap area's continuation below the upper region,
/// committed sparsely: reservations of hundreds of GiB, as on Linux.
const RESERVE_SIZE: u64 = 4 << 40;
/// Host reservation for the program image and its brk heap.
pub const IMAGE_SIZE: u64 = 64 << 30;
/// Where static-PIE programs are loaded (Linux's ELF_ET_DYN_BASE neighbourhood).
pub const PIE_BASE: u64 = 0x5555_5540_0000;

pub const PROT_READ: i32 = libc::PROT_READ;
pub const PROT_WRITE: i32 = libc::PROT_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmaKind {
    Image,
    Heap,
    Stack,
    Anon,
    File,
    /// km's vDSO (and its data page).
    Vdso,
    /// An attached System V shared memory segment.
    SysvShm,
}

#[derive(Debug, Clone)]
pub struct Vma {
    pub end: u64,
    pub prot: i32,
    pub kind: VmaKind,
    /// MAP_SHARED or MAP_PRIVATE.
    pub shared: bool,
    /// The file mapped (or loaded) here and the file offset of the VMA's start.
    pub file: Option<(Arc<str>, u64)>,
}

impl Vma {
    fn new(prot: i32, kind: VmaKind, shared: bool, file: Option<(Arc<str>, u64)>) -> Self {
        Vma {
            end: 0,
            prot,
            kind,
            shared,
            file,
        }
    }

    /// Private writable memory other than the stack: what RLIMIT_DATA limits.
    fn is_data(&self) -> bool {
        self.prot & PROT_WRITE != 0 && !self.shared && self.kind != VmaKind::Stack
    }

    /// This VMA cut to start `by` bytes later.
    fn advanced(&self, by: u64) -> Vma {
        Vma {
            file: self
                .file
                .as_ref()
                .map(|(path, off)| (path.clone(), off + by)),
            ..self.clone()
        }
    }
}

/// A request to map memory (the arguments of mmap after validation).
pub struct MapRequest<'a> {
    pub hint: u64,
    pub len: u64,
    pub prot: i32,
    pub fixed: bool,
    pub noreplace: bool,
    pub shared: bool,
    /// MAP_NORESERVE: not charged against the overcommit policy (unless strict).
    pub noreserve: bool,
    pub file: Option<(BorrowedFd<'a>, u64)>,
    /// The mapped file's name, for core files.
    pub path: Option<Arc<str>>,
}

/// A System V segment to attach (shmat's arguments after validation).
pub struct SegmentRequest {
    /// Where (shmat's address), or `None` for a free range of the mmap area.
    pub at: Option<u64>,
    /// The segment's size.
    pub len: u64,
    pub prot: i32,
    /// SHM_REMAP: replace what is mapped at `at`.
    pub remap: bool,
    /// What /proc/self/maps shows.
    pub name: Arc<str>,
}

#[derive(Clone)]
pub struct AddressSpace {
    vmas: BTreeMap<u64, Vma>,
    image_region: usize,
    upper_region: usize,
    reserve_region: usize,
    brk_start: u64,
    brk: u64,
    mmap_top: u64,
    /// Restored pages still to populate, in the order to populate them.
    unfilled: Vec<Unfilled>,
    /// Held by the background while it populates a piece of `unfilled`.
    filling: Arc<Mutex<()>>,
}

impl AddressSpace {
    /// Reserves the image region for `image` (the span of the program's segments) and
    /// the upper region; [`AddressSpace::commit_initial`] then makes them usable.
    pub fn new(vm: &mut Vm, image: Range<u64>) -> Result<Self> {
        let floor = UPPER_BASE - RESERVE_SIZE;
        let base = crate::memory::huge_align_down(image.start);
        let size = IMAGE_SIZE.min(floor.saturating_sub(base));
        if image.end > base + size || image.start < MMAP_MIN_ADDR {
            anyhow::bail!(
                "segments at {:#x}..{:#x} are outside the guest address space ({MMAP_MIN_ADDR:#x}..{:#x})",
                image.start,
                image.end,
                base + size
            );
        }
        let image_region = vm.reserve(RegionKind::Image, base, size, Growth::Up)?;
        let upper_region = vm.reserve(RegionKind::Upper, UPPER_BASE, UPPER_SIZE, Growth::Down)?;
        let reserve_region =
            vm.reserve(RegionKind::Reserve, floor, RESERVE_SIZE, Growth::Sparse)?;
        let brk = page_align_up(image.end);
        let mut vmas = BTreeMap::new();
        vmas.insert(
            STACK_TOP - STACK_SIZE,
            Vma {
                end: STACK_TOP,
                prot: PROT_READ | PROT_WRITE,
                kind: VmaKind::Stack,
                shared: false,
                file: None,
            },
        );
        Ok(AddressSpace {
            vmas,
            image_region,
            upper_region,
            reserve_region,
            brk_start: brk,
            brk,
            mmap_top: STACK_TOP - STACK_SIZE - STACK_GAP,
            unfilled: Vec::new(),
            filling: Arc::default(),
        })
    }

    /// An address space to fill from a snapshot: the regions [`AddressSpace::new`]
    /// reserves for an image region at `image_base`, no mappings yet, and the
    /// program break between `brk_start` and `brk`.
    pub fn restored(vm: &mut Vm, image_base: u64, brk_start: u64, brk: u64) -> Result<Self> {
        if brk < brk_start || !brk_start.is_multiple_of(crate::memory::PAGE_SIZE) {
            anyhow::bail!("program break {brk_start:#x}..{brk:#x} is not valid");
        }
        let mut mm = AddressSpace::new(vm, image_base..brk_start)?;
        if vm.mem.region(mm.image_region).reserved().start != image_base {
            anyhow::bail!("image region base {image_base:#x} is not 2 MiB aligned");
        }
        mm.vmas.clear();
        mm.brk = brk;
        Ok(mm)
    }

    /// The image region's base and the program break's start and end (what
    /// [`AddressSpace::restored`] takes).
    pub fn image_and_brk(&self, vm: &Vm) -> (u64, u64, u64) {
        let base = vm.mem.region(self.image_region).reserved().start;
        (base, self.brk_start, self.brk)
    }

    /// Maps back a mapping of a snapshot as `vma` at `range`; its first bytes come
    /// from `contents`, the rest is zero.
    pub fn restore_mapping(
        &mut self,
        vm: &Vm,
        range: Range<u64>,
        vma: Vma,
        contents: Contents<'_>,
    ) -> Result<()> {
        let Contents {
            fd,
            offset,
            len,
            flags,
            fill,
        } = contents;
        let aligned = |a: u64| a.is_multiple_of(crate::memory::PAGE_SIZE);
        let valid = range.start < range.end
            && range.start >= MMAP_MIN_ADDR
            && range.end <= TASK_SIZE
            && aligned(range.start)
            && aligned(range.end)
            && aligned(offset)
            && len <= range.end - range.start;
        let region = self.region_for(vm, &range).filter(|_| valid);
        let (Some(region), false) = (region, self.overlaps(&range)) else {
            anyhow::bail!(
                "mapping {:#x}..{:#x} (at {offset:#x} in the file) cannot be placed",
                range.start,
                range.end
            );
        };
        vm.commit(region, range.clone())?;
        // The file's data of writable memory; its holes stay anonymous memory,
        // which the payload's first write there needs no copy of a file page for
        // (and KVM no flush of the page it had mapped for a read).
        let mapped = match &fill {
            Some(fill) if fill.write => fill.runs.clone(),
            _ => std::iter::once(offset..offset.saturating_add(len)).collect(),
        };
        for run in mapped.into_iter().filter(|r| !r.is_empty()) {
            if run.start < offset || run.end > offset.saturating_add(len) {
                anyhow::bail!(
                    "data at {run:#x?} outside the segment's {len:#x} bytes at {offset:#x}"
                );
            }
            let start = range.start + (run.start - offset);
            let stored = start..start + page_align_up(run.end - run.start);
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            vm.mem
                .map_file(stored.clone(), fd, run.start, rw, flags)
                .or_else(|_| {
                    vm.mem
                        .map_file(stored, fd, run.start, libc::PROT_READ, flags)
                })?;
        }
        match &fill {
            // Pages km soon populates writable: their entries start out accessed
            // and dirty, so that KVM maps their neighbours with each fault.
            Some(fill) if fill.write && fill.background => {
                vm.protect_loaded(range.clone(), vma.prot)?
            }
            _ => vm.protect(range.clone(), vma.prot)?,
        }
        let Some(fill) = fill else {
            self.insert(range, vma);
            return Ok(());
        };
        for run in &fill.runs {
            let start = range.start + (run.start - offset);
            self.unfilled.push(Unfilled {
                range: start..start + page_align_up(run.end - run.start),
                write: fill.write,
                background: fill.background,
            });
        }
        self.insert(range, vma);
        Ok(())
    }

    /// Orders the restored pages for the background: writable ones first (a
    /// page the payload reads before it is copied costs KVM a flush when the
    /// payload then writes it), those around `addrs` (the threads' stack
    /// pointers) first among them.
    pub fn fill_first(&mut self, addrs: &[u64]) {
        self.unfilled
            .sort_by_key(|u| (!u.write, !addrs.iter().any(|a| u.range.contains(a))));
    }

    /// Takes the next piece, at most `max` bytes, of the restored pages left to
    /// the background: the pages of it the payload has not touched yet (copying
    /// one that KVM has mapped would make KVM drop its translations, a flush).
    /// `None` once none is left. `pagemap`: km's own (`memory::open_pagemap`),
    /// which tells the touched pages. The caller populates the piece after
    /// releasing the address-space lock, holding [`AddressSpace::filling`]
    /// meanwhile.
    pub fn fill_next(&mut self, vm: &Vm, max: u64, pagemap: Option<&File>) -> Option<FillPiece> {
        let u = self.unfilled.iter_mut().find(|u| u.background)?;
        let piece = u.range.start..u.range.end.min(u.range.start.saturating_add(max));
        u.range.start = piece.end;
        let write = u.write;
        self.unfilled.retain(|u| !u.range.is_empty());
        let mut at = piece.start;
        let touched = pagemap
            .and_then(|p| vm.mem.populated_in(p, piece.clone()))
            .unwrap_or_default();
        let gaps = touched
            .iter()
            .map(|(r, _)| r.clone())
            .chain(std::iter::once(piece.end..piece.end))
            .filter_map(|r| {
                let gap = at..r.start;
                at = r.end;
                (!gap.is_empty()).then_some(gap)
            })
            .collect();
        Some(FillPiece { gaps, write })
    }

    /// What the background holds while it populates a piece without the
    /// address-space lock ([`AddressSpace::settle`] waits for it).
    pub fn filling(&self) -> Arc<Mutex<()>> {
        self.filling.clone()
    }

    /// Waits for the piece of restored pages the background is populating, if
    /// any. Called with the address-space lock held (which the next piece
    /// needs to start) before the host mappings change, and before a fork or a
    /// dump reads the payload's memory: no piece is then populated over
    /// memory that is no longer the snapshot's, and none is half done.
    pub fn settle(&self) {
        drop(self.filling.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Populates every restored page not populated yet, before a snapshot or a
    /// core file reads the payload's memory (which counts a page never populated
    /// as a hole, zero).
    pub fn fill_all(&mut self, vm: &Vm) {
        self.settle();
        for u in std::mem::take(&mut self.unfilled) {
            if let Err(e) = vm.mem.populate(u.range, false) {
                trace!(Category::Mem, "populating restored pages: {e:#}");
            }
        }
    }

    /// Forgets the restored pages in `range`, whose contents are replaced.
    fn unfill(&mut self, range: &Range<u64>) {
        if self.unfilled.is_empty() {
            return;
        }
        self.unfilled = std::mem::take(&mut self.unfilled)
            .into_iter()
            .flat_map(|u| {
                let below = u.range.start..u.range.end.min(range.start);
                let above = u.range.start.max(range.end)..u.range.end;
                [below, above]
                    .into_iter()
                    .filter(|r| !r.is_empty())
                    .map(move |r| Unfilled {
                        range: r,
                        ..u.clone()
                    })
            })
            .collect();
    }

    /// Commits the program image and the main stack, whose pages are mapped
    /// non-executable unless PT_GNU_STACK asks for an executable stack. Page-table
    /// entries made before this call (the image's own) are kept.
    pub fn commit_initial(&mut self, vm: &Vm, image_end: u64, exec_stack: bool) -> Result<()> {
        let stack = STACK_TOP - STACK_SIZE..STACK_TOP;
        let base = vm.mem.region(self.image_region).reserved().start;
        vm.commit(self.image_region, base..image_end)?;
        vm.commit(self.upper_region, STACK_TOP - INITIAL_UPPER..STACK_TOP)?;
        let exec = if exec_stack { libc::PROT_EXEC } else { 0 };
        vm.protect(stack, PROT_READ | PROT_WRITE | exec)
    }

    /// Finds and commits room for `len` bytes in the mmap area (for the dynamic linker,
    /// whose segments the loader then records); returns its start.
    pub fn place(&mut self, vm: &Vm, len: u64) -> Result<u64> {
        let len = page_align_up(len);
        let start = self
            .find_free(len)
            .ok_or_else(|| anyhow::anyhow!("no room for {len:#x} bytes in the mmap area"))?;
        vm.commit(self.upper_region, start..start + len)?;
        Ok(start)
    }

    /// Records a loaded ELF segment: of `file` (its path and the segment's file
    /// offset), or of km's vDSO when `None`.
    pub fn add_loaded_segment(
        &mut self,
        range: Range<u64>,
        prot: i32,
        file: Option<(Arc<str>, u64)>,
    ) {
        let kind = if file.is_some() {
            VmaKind::Image
        } else {
            VmaKind::Vdso
        };
        self.insert(range, Vma::new(prot, kind, false, file));
    }

    fn insert(&mut self, range: Range<u64>, vma: Vma) {
        self.remove(range.clone());
        self.vmas.insert(
            range.start,
            Vma {
                end: range.end,
                ..vma
            },
        );
    }

    /// Every mapping, in address order.
    pub fn vmas(&self) -> impl Iterator<Item = (u64, &Vma)> {
        self.vmas.iter().map(|(s, v)| (*s, v))
    }

    /// Removes `range` from the VMAs, splitting those that straddle its edges.
    fn remove(&mut self, range: Range<u64>) {
        let overlapping: Vec<(u64, Vma)> = self
            .vmas
            .range(..range.end)
            .filter(|(_, v)| v.end > range.start)
            .map(|(s, v)| (*s, v.clone()))
            .collect();
        for (start, vma) in overlapping {
            self.vmas.remove(&start);
            if start < range.start {
                self.vmas.insert(
                    start,
                    Vma {
                        end: range.start,
                        ..vma.clone()
                    },
                );
            }
            if vma.end > range.end {
                self.vmas.insert(range.end, vma.advanced(range.end - start));
            }
        }
    }

    fn overlaps(&self, range: &Range<u64>) -> bool {
        self.vmas
            .range(..range.end)
            .next_back()
            .is_some_and(|(_, v)| v.end > range.start)
    }

    /// The VMAs covering `range`, or `None` if any byte is unmapped.
    fn covering(&self, range: &Range<u64>) -> Option<Vec<(u64, Vma)>> {
        let mut at = range.start;
        let mut out = Vec::new();
        let start = self
            .vmas
            .range(..=range.start)
            .next_back()
            .map_or(range.start, |(s, _)| *s);
        for (s, v) in self.vmas.range(start..range.end) {
            if v.end <= at {
                continue;
            }
            if *s > at {
                return None;
            }
            out.push((*s, v.clone()));
            at = v.end;
            if at >= range.end {
                return Some(out);
            }
        }
        (at >= range.end).then_some(out)
    }

    /// Checks that `[addr, addr + len)` is mapped with at least `prot`.
    pub fn check(&self, addr: u64, len: u64, prot: i32) -> Result<(), Fault> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Fault { addr })?;
        let vmas = self.covering(&(addr..end)).ok_or(Fault { addr })?;
        if vmas.iter().all(|(_, v)| v.prot & prot == prot) {
            Ok(())
        } else {
            Err(Fault { addr })
        }
    }

    /// brk(2): moves the program break, returning the new (or unchanged) break.
    pub fn brk(&mut self, vm: &Vm, want: u64) -> u64 {
        self.settle();
        if want < self.brk_start {
            return self.brk;
        }
        let old_end = page_align_up(self.brk);
        let new_end = page_align_up(want);
        if new_end > old_end {
            let grow = old_end..new_end;
            let rw = PROT_READ | PROT_WRITE;
            let charge = Charge::of_mapping(new_end - old_end, rw, false, false, false);
            if self.overlaps(&grow)
                || self.admit(charge, &grow).is_err()
                || vm
                    .commit(self.image_region, self.brk_start..new_end)
                    .is_err()
            {
                return self.brk;
            }
            // A small growth (malloc's, by its request and its top pad) is
            // nearly all written soon: its host pages are faulted in now and
            // its entries written accessed and dirty, so that KVM's shadow MMU
            // maps up to 8 of them on each fault instead of one (on PVM a KVM
            // fault costs several times the host's own first touch).
            let protected = if new_end - old_end <= PREFAULTED_BRK_GROWTH
                && vm.mem.populate_writable(grow.clone())
            {
                vm.protect_loaded(grow, rw)
            } else {
                vm.protect(grow, rw)
            };
            if protected.is_err() {
                return self.brk;
            }
        } else if new_end < old_end && vm.unmap_discarding(new_end..old_end).is_err() {
            return self.brk;
        }
        if new_end < old_end {
            self.unfill(&(new_end..old_end));
        }
        self.remove(self.brk_start..old_end.max(new_end));
        if new_end > self.brk_start {
            self.insert(
                self.brk_start..new_end,
                Vma::new(PROT_READ | PROT_WRITE, VmaKind::Heap, false, None),
            );
        }
        trace!(Category::Mem, "brk {:#x} -> {want:#x}", self.brk);
        self.brk = want;
        want
    }

    /// Admits `charge` for a new mapping at `range` (which replaces whatever is
    /// mapped there), as Linux's overcommit policy and RLIMIT_AS/RLIMIT_DATA would.
    fn admit(&self, charge: Charge, range: &Range<u64>) -> Result<(), Errno> {
        admission::admit(charge, || {
            let outside = |start: u64, vma: &Vma| {
                let overlap = vma
                    .end
                    .min(range.end)
                    .saturating_sub(start.max(range.start));
                vma.end - start - overlap
            };
            self.vmas().fold((0, 0), |(mapped, data), (start, vma)| {
                let bytes = outside(start, vma);
                (mapped + bytes, data + if vma.is_data() { bytes } else { 0 })
            })
        })
    }

    /// Finds room for `len` bytes in the mmap area (the upper region, then the
    /// reserve below it), top down.
    fn find_free(&self, len: u64) -> Option<u64> {
        let floor = UPPER_BASE - RESERVE_SIZE;
        let mut top = self.mmap_top;
        for (start, vma) in self.vmas.range(..self.mmap_top).rev() {
            if vma.end <= top
                && let Some(at) = fit_in_gap(vma.end..top, len)
            {
                return Some(at);
            }
            top = top.min(*start);
        }
        fit_in_gap(floor..top, len)
    }

    /// Which region a new mapping at `range` can live in.
    fn region_for(&self, vm: &Vm, range: &Range<u64>) -> Option<usize> {
        [self.image_region, self.upper_region, self.reserve_region]
            .into_iter()
            .find(|&r| {
                let reserved = vm.mem.region(r).reserved();
                reserved.start <= range.start && range.end <= reserved.end
            })
    }

    /// mmap(2) after argument validation.
    pub fn mmap(&mut self, vm: &Vm, req: &MapRequest<'_>) -> Result<u64, Errno> {
        self.settle();
        let len = page_align_up(req.len);
        let hinted = req.hint..req.hint.saturating_add(len);
        let usable = |r: &Range<u64>| r.start >= MMAP_MIN_ADDR && self.region_for(vm, r).is_some();
        let start = if req.fixed || req.noreplace {
            if !usable(&hinted) {
                return Err(Errno::NOMEM);
            }
            if req.noreplace && self.overlaps(&hinted) {
                return Err(Errno::EXIST);
            }
            req.hint
        } else if req.hint != 0 && usable(&hinted) && !self.overlaps(&hinted) {
            req.hint
        } else {
            self.find_free(len).ok_or(Errno::NOMEM)?
        };
        let range = start..start + len;
        let region = self.region_for(vm, &range).ok_or(Errno::NOMEM)?;
        let charge =
            Charge::of_mapping(len, req.prot, req.shared, req.file.is_some(), req.noreserve);
        self.admit(charge, &range)?;
        if region != self.reserve_region || req.prot != libc::PROT_NONE {
            vm.commit(region, range.clone()).map_err(|_| Errno::NOMEM)?;
        }
        let replacing = self.overlaps(&range);
        match req.file {
            Some((fd, offset)) => {
                let flags = if req.shared {
                    libc::MAP_SHARED
                } else {
                    libc::MAP_PRIVATE
                };
                let rw = libc::PROT_READ | libc::PROT_WRITE;
                vm.mem
                    .map_file(range.clone(), fd, offset, rw, flags)
                    .or_else(|_| {
                        vm.mem
                            .map_file(range.clone(), fd, offset, libc::PROT_READ, flags)
                    })
                    .map_err(|e| {
                        e.downcast_ref::<std::io::Error>()
                            .and_then(|e| e.raw_os_error())
                            .map_or(Errno::NOMEM, Errno::from_raw_os_error)
                    })?;
            }
            None if req.shared => vm.mem.share(range.clone()).map_err(|_| Errno::NOMEM)?,
            None => {
                if replacing {
                    vm.mem.discard(range.clone()).map_err(|_| Errno::NOMEM)?;
                }
            }
        }
        vm.protect(range.clone(), req.prot)
            .map_err(|_| Errno::NOMEM)?;
        // After protect, which commits the accessible parts of the sparse reserve
        // region; a PROT_NONE reservation there has no host memory to advise.
        if req.file.is_none() && !req.shared && req.prot != libc::PROT_NONE {
            vm.mem
                .prefer_huge_pages(range.clone())
                .map_err(|_| Errno::NOMEM)?;
        }
        let kind = if req.file.is_some() {
            VmaKind::File
        } else {
            VmaKind::Anon
        };
        let file = req.path.clone().zip(req.file.map(|(_, off)| off));
        self.unfill(&range);
        self.insert(range.clone(), Vma::new(req.prot, kind, req.shared, file));
        trace!(
            Category::Mem,
            "mmap {:#x}..{:#x} prot {:#x} {kind:?}", range.start, range.end, req.prot
        );
        Ok(start)
    }

    /// shmat(2) after argument validation: places the segment `req` describes and
    /// backs it with `attach`, which maps the segment over the committed guest range.
    pub fn attach_segment(
        &mut self,
        vm: &Vm,
        req: SegmentRequest,
        attach: impl FnOnce(Range<u64>) -> Result<(), Errno>,
    ) -> Result<u64, Errno> {
        self.settle();
        let SegmentRequest {
            at,
            len,
            prot,
            remap,
            name,
        } = req;
        let len = page_align_up(len);
        let start = match at {
            Some(start) => {
                let range = start..start.checked_add(len).ok_or(Errno::INVAL)?;
                if start < MMAP_MIN_ADDR || self.region_for(vm, &range).is_none() {
                    return Err(Errno::INVAL);
                }
                if !remap && self.overlaps(&range) {
                    return Err(Errno::INVAL);
                }
                start
            }
            None => self.find_free(len).ok_or(Errno::NOMEM)?,
        };
        let range = start..start + len;
        let region = self.region_for(vm, &range).ok_or(Errno::NOMEM)?;
        vm.commit(region, range.clone()).map_err(|_| Errno::NOMEM)?;
        attach(range.clone())?;
        self.unfill(&range);
        vm.protect(range.clone(), prot).map_err(|_| Errno::NOMEM)?;
        self.insert(
            range.clone(),
            Vma::new(prot, VmaKind::SysvShm, true, Some((name, 0))),
        );
        trace!(
            Category::Mem,
            "shmat {:#x}..{:#x} prot {prot:#x}", range.start, range.end
        );
        Ok(start)
    }

    /// The range of the segment attachment that starts at `addr` (shmdt's
    /// argument): its mappings from `addr` on, as far as they continue it.
    pub fn segment_at(&self, addr: u64) -> Option<Range<u64>> {
        let (start, first) = self.vma_at(addr).filter(|(s, _)| *s == addr)?;
        if first.kind != VmaKind::SysvShm {
            return None;
        }
        let mut end = first.end;
        for (s, v) in self.vmas.range(end..) {
            if *s != end || v.kind != VmaKind::SysvShm || v.file != first.advanced(end - start).file
            {
                break;
            }
            end = v.end;
        }
        Some(start..end)
    }

    /// munmap(2): drops the mappings in `range` and gives their memory back to the host.
    pub fn munmap(&mut self, vm: &Vm, range: Range<u64>) -> Result<(), Errno> {
        self.settle();
        let mapped: Vec<Range<u64>> = self
            .vmas
            .range(..range.end)
            .filter(|(_, v)| v.end > range.start)
            .map(|(s, v)| (*s).max(range.start)..v.end.min(range.end))
            .collect();
        // Neighbouring mappings in one region go in one piece: each host remap
        // makes KVM drop translations (and flush) once. A thread's stack and its
        // guard page, unmapped at pthread_join, are two mappings.
        let mut pieces: Vec<Range<u64>> = Vec::with_capacity(mapped.len());
        for r in mapped {
            match pieces.last_mut() {
                Some(last)
                    if last.end == r.start
                        && self.region_for(vm, &(last.start..r.end)).is_some() =>
                {
                    last.end = r.end
                }
                _ => pieces.push(r),
            }
        }
        for r in pieces {
            vm.unmap_discarding(r).map_err(|_| Errno::NOMEM)?;
        }
        self.unfill(&range);
        self.remove(range.clone());
        trace!(Category::Mem, "munmap {:#x}..{:#x}", range.start, range.end);
        Ok(())
    }

    /// mprotect(2): changes the recorded protection of fully mapped `range`.
    /// Private memory made writable is charged as Linux does (ENOMEM if refused).
    pub fn mprotect(&mut self, vm: &Vm, range: Range<u64>, prot: i32) -> Result<(), Errno> {
        self.settle();
        let vmas = self.covering(&range).ok_or(Errno::NOMEM)?;
        if prot & PROT_WRITE != 0 {
            let gaining: u64 = vmas
                .iter()
                .filter(|(_, v)| !v.shared && v.kind != VmaKind::Stack && v.prot & PROT_WRITE == 0)
                .map(|(start, v)| v.end.min(range.end) - (*start).max(range.start))
                .sum();
            if gaining > 0 {
                // Nothing is unmapped: every current mapping counts.
                self.admit(Charge::write_access(gaining), &(range.start..range.start))?;
            }
        }
        // km maps private memory readable and writable on the host (a MAP_PRIVATE
        // file mapping too), which `Vm::protect_private` needs.
        let private = vmas.iter().all(|(_, v)| {
            !v.shared
                && matches!(
                    v.kind,
                    VmaKind::Image | VmaKind::Heap | VmaKind::Stack | VmaKind::Anon | VmaKind::File
                )
        });
        for (start, vma) in vmas {
            let piece = start.max(range.start)..vma.end.min(range.end);
            if prot != libc::PROT_NONE {
                // A sparse region's PROT_NONE pages may have no memslot yet.
                let region = self.region_for(vm, &piece).ok_or(Errno::NOMEM)?;
                vm.commit(region, piece.clone()).map_err(|_| Errno::NOMEM)?;
            }
            let piece_vma = Vma {
                prot,
                ..vma.advanced(piece.start - start)
            };
            self.insert(piece, piece_vma);
        }
        if private {
            vm.protect_private(range, prot)
        } else {
            vm.protect(range, prot)
        }
        .map_err(|_| Errno::NOMEM)
    }

    /// The mapping that contains `addr`.
    pub fn vma_at(&self, addr: u64) -> Option<(u64, Vma)> {
        self.vmas
            .range(..=addr)
            .next_back()
            .filter(|(_, v)| v.end > addr)
            .map(|(s, v)| (*s, v.clone()))
    }

    /// The mapping that contains `addr` as Linux would see it: km does not merge
    /// neighbouring mappings, Linux does when they continue each other (same
    /// protection and kind, and no file or the same file at the next offset), so
    /// one that ends where such a neighbour starts extends to its end.
    pub fn merged_at(&self, addr: u64) -> Option<(u64, Vma)> {
        let (start, mut vma) = self.vma_at(addr)?;
        while let Some(next) = self.vmas.get(&vma.end) {
            let continues = next.prot == vma.prot
                && next.kind == vma.kind
                && next.shared == vma.shared
                && next.file == vma.advanced(vma.end - start).file;
            if !continues {
                break;
            }
            vma.end = next.end;
        }
        Some((start, vma))
    }

    /// Whether every page of `range` is mapped.
    pub fn is_mapped(&self, range: &Range<u64>) -> bool {
        self.covering(range).is_some()
    }

    /// Whether `range` is free of mappings.
    pub fn is_free(&self, range: &Range<u64>) -> bool {
        !self.overlaps(range)
    }

    /// Commits and records an anonymous mapping exactly at `range` (used by mremap to
    /// grow a mapping in place).
    pub fn extend(&mut self, vm: &Vm, range: Range<u64>, like: Vma) -> Result<(), Errno> {
        self.settle();
        let region = self.region_for(vm, &range).ok_or(Errno::NOMEM)?;
        let bytes = range.end - range.start;
        let charge = Charge::of_mapping(bytes, like.prot, like.shared, like.file.is_some(), false);
        self.admit(charge, &range)?;
        vm.commit(region, range.clone()).map_err(|_| Errno::NOMEM)?;
        vm.protect(range.clone(), like.prot)
            .map_err(|_| Errno::NOMEM)?;
        self.insert(range, like);
        Ok(())
    }

    /// MADV_DONTNEED: private anonymous pages in `range` read as zero again and their
    /// host memory is released. Fails with ENOMEM if part of `range` is unmapped.
    pub fn discard_anon(&mut self, vm: &Vm, range: Range<u64>) -> Result<(), Errno> {
        self.settle();
        let vmas = self.covering(&range).ok_or(Errno::NOMEM)?;
        // Neighbouring anonymous mappings in one region go in one piece, as in
        // munmap: glibc's thread exit advises away its stack's guard page and the
        // stack's unused part together.
        let mut pieces: Vec<Range<u64>> = Vec::new();
        for (start, vma) in vmas {
            if vma.kind != VmaKind::File && !vma.shared {
                let piece = start.max(range.start)..vma.end.min(range.end);
                match pieces.last_mut() {
                    Some(last)
                        if last.end == piece.start
                            && self.region_for(vm, &(last.start..piece.end)).is_some() =>
                    {
                        last.end = piece.end
                    }
                    _ => pieces.push(piece),
                }
            }
        }
        for piece in pieces {
            vm.mem.discard(piece.clone()).map_err(|_| Errno::NOMEM)?;
            self.unfill(&piece);
        }
        Ok(())
    }
}

/// Where `len` bytes fit at the top of the free `gap`, without crossing the upper
/// region's base (a mapping lies in one region).
fn fit_in_gap(gap: Range<u64>, len: u64) -> Option<u64> {
    let below = |top: u64| top.checked_sub(len).filter(|&s| s >= gap.start);
    let start = below(gap.end)?;
    if start < UPPER_BASE && UPPER_BASE < gap.end {
        below(UPPER_BASE)
    } else {
        Some(start)
    }
}
