//! Watchpoints without debug registers. Write watchpoints: a single-stepping
//! thread runs its instruction alone (its turn, `ptrace::StepTurns`) and a change
//! of the watched bytes across it is its write. Read and access watchpoints hide
//! pages: the page-table entry of a watched page is removed (the payload's own
//! mapping is untouched), an access the mapping allows faults into km, which lets
//! that one instruction through and reports the access. See `crate::kernel::ptrace`
//! for the state these functions use.

use anyhow::Result;

use crate::kernel::lock;
use crate::kernel::process::{Guest, Thread};
use crate::kernel::ptrace::{Debugger, StepTurn, WatchKind, WatchSeen, WatchStep};
use crate::memory::page_align_down;

/// x86 page-fault error code bits.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 1 << 1;
const PF_FETCH: u64 = 1 << 4;

/// One instruction of a thread single-stepping under write watchpoints, run alone:
/// the watched bytes before it, and the thread's turn.
pub struct OwnStep<'a> {
    debugger: &'a Debugger,
    seen: WatchSeen,
    _turn: StepTurn<'a>,
}

/// Before `thread`'s vCPU runs: when it single-steps under write watchpoints, waits
/// for its turn and records the watched bytes.
pub fn begin_own_step<'a>(guest: &'a Guest, thread: &Thread) -> Option<OwnStep<'a>> {
    if !thread.stepping {
        return None;
    }
    let debugger = guest.debugger.as_deref().filter(|d| d.watching())?;
    let turn = debugger.step_turn();
    let mut seen = WatchSeen::new();
    debugger.watch_snapshot(&mut seen, |a, buf| guest.vm.mem.read_bytes(a, buf).is_ok());
    Some(OwnStep {
        debugger,
        seen,
        _turn: turn,
    })
}

/// After the vCPU ran its instruction: notes in `thread` the write watchpoint whose
/// bytes changed (its write, reported when its step ends), and ends its turn.
pub fn end_own_step(guest: &Guest, thread: &mut Thread, step: Option<OwnStep<'_>>) {
    let Some(mut step) = step else {
        return;
    };
    let read = |a, buf: &mut [u8]| guest.vm.mem.read_bytes(a, buf).is_ok();
    if let Some(addr) = step.debugger.watch_hit(&mut step.seen, read) {
        thread.watch_wrote = Some(addr);
    }
}

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
