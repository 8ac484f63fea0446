//! Guest page tables: 4-level, mapping each region's virtual range onto its
//! guest-physical range, with entries only for what the payload has mapped and with
//! its protections (so a write to a read-only page and any access to an unmapped or
//! PROT_NONE page fault, as on Linux).
//!
//! Table pages come from a bump pool in the system region; entries hold
//! guest-physical addresses, which the pool's fixed offset turns back into the
//! virtual addresses km uses to edit them. [`PageTables::set`] reports whether it
//! changed an entry a vCPU may have cached (in the TLB on hardware, in KVM's shadow
//! page tables on PVM), so the caller must flush (`Vm::protect` does). Only an
//! entry with its accessed bit set can be cached: the CPU sets that bit in every
//! entry of a walk before it caches the translation, and KVM's shadow MMU does the
//! same when it walks and never prefetches an entry not accessed. km writes entries
//! with the bit clear and by compare-and-exchange, so a walk racing with the edit
//! either sees the new entry or leaves the bit set for km to see. Turning a
//! non-present entry present, or changing one never accessed since km wrote it,
//! needs no flush.
//!
//! A change of leaf entries only ([`Stale::Leaves`]) can also be dropped without
//! a flush of everything: KVM's MMU notifier zaps every translation to the host
//! pages behind the range when their host mapping changes (`Vm::protect_private`).
//! A split 2 MiB entry, or a table replaced by a 2 MiB entry ([`Stale::Tables`]),
//! changes the tables' shape, which KVM's shadow pages mirror: that needs the flush.

use std::ops::Range;

use anyhow::{Result, bail};

use crate::memory::{Fault, GuestMemory, HUGE_PAGE_SIZE, PAGE_SIZE};

pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_WRITE: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
const PTE_HUGE: u64 = 1 << 7;
pub const PTE_NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// What a change of entries may have left in vCPUs' cached translations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stale {
    /// Nothing: no accessed entry changed.
    None,
    /// Translations of the changed range's own pages (a leaf entry changed).
    Leaves,
    /// The shape of the tables changed (a 2 MiB entry split or put in place of a
    /// table).
    Tables,
}

#[derive(Clone)]
pub struct PageTables {
    /// Guest-virtual address of the PML4.
    pml4: u64,
    next: u64,
    end: u64,
    /// Guest-physical minus guest-virtual address of pool pages.
    pool_offset: u64,
}

impl PageTables {
    /// Creates an empty PML4 taken from `pool`, a committed guest range.
    pub fn new(mem: &GuestMemory, pool: Range<u64>) -> Result<Self> {
        let pool_pa = mem.phys(pool.start).ok_or(Fault { addr: pool.start })?;
        let mut pt = PageTables {
            pml4: 0,
            next: pool.start,
            end: pool.end,
            pool_offset: pool_pa.wrapping_sub(pool.start),
        };
        pt.pml4 = pt.alloc(mem)?;
        Ok(pt)
    }

    /// The guest-physical address of the PML4, for CR3.
    pub fn root(&self) -> u64 {
        self.pa(self.pml4)
    }

    fn pa(&self, table: u64) -> u64 {
        table.wrapping_add(self.pool_offset)
    }

    fn va(&self, entry: u64) -> u64 {
        (entry & ADDR_MASK).wrapping_sub(self.pool_offset)
    }

    fn alloc(&mut self, mem: &GuestMemory) -> Result<u64> {
        if self.next + PAGE_SIZE > self.end {
            bail!("out of page-table pages ({:#x} used)", self.end);
        }
        let page = self.next;
        self.next += PAGE_SIZE;
        mem.write_bytes(page, &[0u8; PAGE_SIZE as usize])?;
        Ok(page)
    }

    /// The slot of the entry at `level` (2 = PD, 3 = PT) for `va`, creating missing
    /// upper tables. A 2 MiB leaf met on the way to a PT is split into 512 small
    /// entries with the same flags; `stale` becomes [`Stale::Tables`] if the old
    /// entry was accessed.
    fn slot(&mut self, mem: &GuestMemory, va: u64, level: u32, stale: &mut Stale) -> Result<u64> {
        let mut table = self.pml4;
        for l in 0..level {
            let slot = table + index(va, l) * 8;
            let entry: u64 = mem.read_obj(slot)?;
            table = if entry & PTE_PRESENT == 0 {
                let next = self.alloc(mem)?;
                mem.write_obj(slot, self.pa(next) | PTE_PRESENT | PTE_WRITE | PTE_USER)?;
                next
            } else if entry & PTE_HUGE != 0 {
                let next = self.alloc(mem)?;
                let flags = entry & !ADDR_MASK & !PTE_HUGE;
                let base = entry & ADDR_MASK;
                let small: Vec<u8> = (0..512u64)
                    .flat_map(|i| ((base + i * PAGE_SIZE) | flags).to_le_bytes())
                    .collect();
                mem.write_bytes(next, &small)?;
                let table = self.pa(next) | PTE_PRESENT | PTE_WRITE | PTE_USER;
                if replace_entry(mem, slot, table)? {
                    *stale = Stale::Tables;
                }
                next
            } else {
                self.va(entry)
            };
        }
        Ok(table + index(va, level) * 8)
    }

    /// Maps every page of `range` (4 KiB aligned) to its guest-physical address with
    /// leaf `flags` (PTE_PRESENT is added), or unmaps it when `flags` is `None`.
    /// Whole 2 MiB blocks get one large entry. Returns what cached translations
    /// an accessed entry that changed may have left.
    pub fn set(
        &mut self,
        mem: &GuestMemory,
        range: Range<u64>,
        flags: Option<u64>,
    ) -> Result<Stale> {
        if !range.start.is_multiple_of(PAGE_SIZE) || !range.end.is_multiple_of(PAGE_SIZE) {
            bail!(
                "page-table range {:#x}..{:#x} is not page aligned",
                range.start,
                range.end
            );
        }
        let mut stale = Stale::None;
        let mut va = range.start;
        while va < range.end {
            let whole_block = va.is_multiple_of(HUGE_PAGE_SIZE) && va + HUGE_PAGE_SIZE <= range.end;
            let (slot, step, huge) = if whole_block {
                (self.slot(mem, va, 2, &mut stale)?, HUGE_PAGE_SIZE, PTE_HUGE)
            } else {
                (self.slot(mem, va, 3, &mut stale)?, PAGE_SIZE, 0)
            };
            let new = match flags {
                Some(f) => mem.phys(va).ok_or(Fault { addr: va })? | f | huge | PTE_PRESENT,
                None => 0,
            };
            let old: u64 = mem.read_obj(slot)?;
            if replace_entry(mem, slot, new)? {
                // A 2 MiB entry where a table was (present, not huge) reshapes.
                let reshaped = huge != 0 && old & PTE_HUGE == 0;
                stale = stale.max(if reshaped {
                    Stale::Tables
                } else {
                    Stale::Leaves
                });
            }
            va += step;
        }
        Ok(stale)
    }
}

/// Puts `new` in the entry at `slot`; returns whether a vCPU may have cached the
/// entry it replaced (present, accessed, and different in more than the accessed
/// and dirty bits). An entry that differs only in those bits is left as it is, so
/// that its accessed bit goes on telling whether it may be cached.
fn replace_entry(mem: &GuestMemory, slot: u64, new: u64) -> Result<bool, Fault> {
    let mut old: u64 = mem.read_obj(slot)?;
    loop {
        let present = old & PTE_PRESENT != 0;
        if present && (old ^ new) & !(PTE_ACCESSED | PTE_DIRTY) == 0 {
            return Ok(false);
        }
        let held = mem.compare_exchange_u64(slot, old, new)?;
        if held == old {
            return Ok(present && old & PTE_ACCESSED != 0);
        }
        old = held;
    }
}

/// Index of `va` in the table at `level` (0 = PML4 ... 3 = PT).
fn index(va: u64, level: u32) -> u64 {
    (va >> (39 - 9 * level)) & 511
}
