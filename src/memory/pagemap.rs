//! Which guest pages have a host page behind them, from /proc/self/pagemap (one
//! 64-bit entry per host page): a core file leaves out pages that were never
//! populated, as Linux's dumper does.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use super::{GuestMemory, PAGE_SIZE};

const PRESENT: u64 = 1 << 63;
const SWAPPED: u64 = 1 << 62;
/// The page is a file page (or shared anonymous memory), not a private copy.
const FILE_PAGE: u64 = 1 << 61;
/// Entries read at a time.
const BATCH: u64 = 4096;

/// What backs a populated page on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Private memory: anonymous, or a private copy of a file page written to.
    Private,
    /// A page of the mapped file (or shared memory).
    File,
}

fn backing(entry: u64) -> Option<Backing> {
    if entry & (PRESENT | SWAPPED) == 0 {
        None
    } else if entry & PRESENT != 0 && entry & FILE_PAGE != 0 {
        Some(Backing::File)
    } else {
        Some(Backing::Private)
    }
}

/// Appends `page` to `runs`, extending the last run when it is adjacent and alike.
fn push(runs: &mut Vec<(Range<u64>, Backing)>, page: u64, kind: Backing) {
    match runs.last_mut() {
        Some((r, k)) if r.end == page && *k == kind => r.end += PAGE_SIZE,
        _ => runs.push((page..page + PAGE_SIZE, kind)),
    }
}

/// This process's pagemap (a fork child must open its own).
pub fn open_pagemap() -> Option<File> {
    File::open("/proc/self/pagemap").ok()
}

impl GuestMemory {
    /// The host address of guest page `addr` and the end of the committed memory
    /// around it, when it lies in committed memory.
    fn host_of_guest(&self, addr: u64) -> Option<(u64, u64)> {
        self.regions.iter().find_map(|r| {
            let committed = r.committed();
            committed
                .contains(&addr)
                .then(|| (r.host.as_ptr() as u64 + (addr - r.base), committed.end))
        })
    }

    /// The runs of populated pages (resident or swapped out) in the page-aligned
    /// guest range `range`, each with what backs it; `None` when km cannot read its
    /// own pagemap. Uncommitted pages are not populated.
    pub fn populated(&self, range: Range<u64>) -> Option<Vec<(Range<u64>, Backing)>> {
        self.populated_in(&open_pagemap()?, range)
    }

    /// [`GuestMemory::populated`], read from `pagemap`, this process's pagemap
    /// (from [`open_pagemap`]), opened once by a caller that asks many times.
    pub fn populated_in(
        &self,
        pagemap: &File,
        range: Range<u64>,
    ) -> Option<Vec<(Range<u64>, Backing)>> {
        let mut runs = Vec::new();
        let mut entries = vec![0u8; (BATCH * 8) as usize];
        let mut at = range.start;
        while at < range.end {
            let Some((host, committed_end)) = self.host_of_guest(at) else {
                at += PAGE_SIZE;
                continue;
            };
            let n = ((range.end.min(committed_end) - at) / PAGE_SIZE).clamp(1, BATCH);
            let buf = &mut entries[..(n * 8) as usize];
            pagemap.read_exact_at(buf, host / PAGE_SIZE * 8).ok()?;
            for (i, entry) in buf.chunks_exact(8).enumerate() {
                let entry = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
                if let Some(kind) = backing(entry) {
                    push(&mut runs, at + i as u64 * PAGE_SIZE, kind);
                }
            }
            at += n * PAGE_SIZE;
        }
        Some(runs)
    }
}
