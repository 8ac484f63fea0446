//! Read and access watchpoints by hiding pages: the page-table entry of a watched
//! page is removed (the payload's own mapping is untouched), an access the mapping
//! allows faults into km, which lets that one instruction through and reports the
//! access. See `crate::kernel::ptrace` for the state these functions use.

use anyhow::Result;

use crate::kernel::lock;
use crate::kernel::process::Guest;
use crate::kernel::ptrace::{WatchKind, WatchStep};
use crate::memory::page_align_down;

/// x86 page-fault error code bits.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 1 << 1;
const PF_FETCH: u64 = 1 << 4;

/// Whether the page fault at `addr` with `error_code` comes from a page hidden for
/// a watchpoint, by an access the payload's mapping allows (so it is km's to handle,
/// not the payload's SIGSEGV).
pub fn watched_fault(guest: &Guest, addr: u64, error_code: u64) -> bool {
    let Some(d) = guest.debugger.as_ref() else {
        return false;
    };
    if error_code & PF_PRESENT != 0 || !d.hides(addr) {
        return false;
    }
    let Some((_, vma)) = lock(&guest.mm).vma_at(addr) else {
        return false;
    };
    let need = if error_code & PF_FETCH != 0 {
        libc::PROT_EXEC
    } else if error_code & PF_WRITE != 0 {
        libc::PROT_WRITE
    } else {
        // x86 pages cannot be write- or execute-only: any protection reads.
        libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC
    };
    vma.prot & need != 0
}

/// Lets the faulting access at `addr` (by the instruction about to be single-stepped)
/// through: shows its page and notes whether it hits a watchpoint.
pub fn begin_watch_step(
    guest: &Guest,
    step: &mut WatchStep,
    addr: u64,
    error_code: u64,
) -> Result<()> {
    let d = guest.debugger.as_ref().expect("watched faults need gdb");
    let page = page_align_down(addr);
    guest.show_page(page)?;
    step.pages.push(page);
    if step.hit.is_none() {
        step.hit = d.access_hit(addr, error_code & PF_WRITE != 0);
    }
    Ok(())
}

/// Ends an instruction's watch step: hides its pages again (those still watched) and
/// returns the watchpoint it hit.
pub fn end_watch_step(guest: &Guest, step: WatchStep) -> Result<Option<(WatchKind, u64)>> {
    let hidden = guest
        .debugger
        .as_ref()
        .map(|d| d.hidden_pages())
        .unwrap_or_default();
    for page in step.pages {
        if hidden.contains(&page) {
            guest.hide_page(page)?;
        }
    }
    Ok(step.hit)
}
