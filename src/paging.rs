//! Guest page tables: 4-level, mapping each region's virtual range onto its
//! guest-physical range.
//!
//! Table pages come from a bump pool in the system region; entries hold
//! guest-physical addresses, which the pool's fixed offset turns back into the
//! virtual addresses km uses to edit them. On the PVM backend the
//! guest's page tables are shadowed by KVM, and the shadow is not told about writes
//! the monitor makes to them; so this module only ever turns non-present entries into
//! present ones (a fresh entry is read by KVM on the first fault). Changing or removing
//! a present entry needs a shadow flush and is left to the memory-model work.

use std::ops::Range;

use anyhow::{Result, bail};

use crate::memory::{Fault, GuestMemory, HUGE_PAGE_SIZE, PAGE_SIZE};

pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_WRITE: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
const PTE_HUGE: u64 = 1 << 7;
pub const PTE_NX: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageSize {
    Small,
    Huge,
}

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

    /// Maps `range` (aligned to `size`) with leaf flags `flags` (PTE_PRESENT is added).
    /// Entries already present are left as they are.
    pub fn map(
        &mut self,
        mem: &GuestMemory,
        range: Range<u64>,
        flags: u64,
        size: PageSize,
    ) -> Result<()> {
        let step = match size {
            PageSize::Small => PAGE_SIZE,
            PageSize::Huge => HUGE_PAGE_SIZE,
        };
        if !range.start.is_multiple_of(step) || !range.end.is_multiple_of(step) {
            bail!(
                "page-table range {:#x}..{:#x} is not aligned to {step:#x}",
                range.start,
                range.end
            );
        }
        let leaf_level = match size {
            PageSize::Small => 3,
            PageSize::Huge => 2,
        };
        let mut va = range.start;
        while va < range.end {
            let mut table = self.pml4;
            for level in 0..leaf_level {
                let slot = table + index(va, level) * 8;
                let entry: u64 = mem.read_obj(slot)?;
                if entry & PTE_PRESENT == 0 {
                    let next = self.alloc(mem)?;
                    mem.write_obj(slot, self.pa(next) | PTE_PRESENT | PTE_WRITE | PTE_USER)?;
                    table = next;
                } else if entry & PTE_HUGE != 0 {
                    bail!("{va:#x} is already inside a 2 MiB mapping");
                } else {
                    table = self.va(entry);
                }
            }
            let slot = table + index(va, leaf_level) * 8;
            let entry: u64 = mem.read_obj(slot)?;
            if entry & PTE_PRESENT == 0 {
                let huge = if size == PageSize::Huge { PTE_HUGE } else { 0 };
                let pa = mem.phys(va).ok_or(Fault { addr: va })?;
                mem.write_obj(slot, pa | flags | huge | PTE_PRESENT)?;
            }
            va += step;
        }
        Ok(())
    }
}

/// Index of `va` in the table at `level` (0 = PML4 ... 3 = PT).
fn index(va: u64, level: u32) -> u64 {
    (va >> (39 - 9 * level)) & 511
}
