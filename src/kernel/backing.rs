//! The payload's own access to a guest page whose host page cannot be touched (a
//! file page past the end of its file): Linux raises SIGBUS/BUS_ADRERR at the
//! address accessed.
//!
//! KVM_RUN then fails with EFAULT and, on PVM, says nothing of the address
//! (KVM_EXIT_MEMORY_FAULT is not reported and the guest's CR2 is not set). So km
//! finds the guest pages whose host pages lie past the end of their file
//! ([`GuestMemory::file_pages_past_eof`]), hides them from the payload (their
//! page-table entries go, as for watchpoints) and lets the instruction run again:
//! it now takes a guest page fault, whose CR2 is the exact address. km shows the
//! pages again and raises SIGBUS there if that host page still faults (else the
//! access simply runs again: the file grew meanwhile, or another thread faulted on
//! a private copy). Limits: an access that KVM cannot serve for another reason
//! (no file page past EOF) gets SIGBUS with address 0; while pages are hidden, a
//! watchpoint on them is shown with them.
//!
//! [`GuestMemory::file_pages_past_eof`]: crate::memory::GuestMemory::file_pages_past_eof

use std::cell::Cell;
use std::ops::Range;
use std::sync::Mutex;

use anyhow::Result;

use super::lock;
use super::process::Guest;
use super::signals::{self, SigInfo};

/// Guest ranges hidden to learn a faulting address.
static HIDDEN: Mutex<Vec<Range<u64>>> = Mutex::new(Vec::new());

/// The hidden ranges' lock, held by a forking thread across the host fork (a
/// thread hiding or showing pages at that moment would leave it locked in the
/// child for ever). Taken before the address space's lock, as here.
pub fn hold_for_fork() -> std::sync::MutexGuard<'static, Vec<Range<u64>>> {
    lock(&HIDDEN)
}

thread_local! {
    /// This thread hid pages after KVM_RUN failed and has not faulted on them yet.
    static PROBING: Cell<bool> = const { Cell::new(false) };
}

/// What a guest page fault means here.
pub enum PageFault {
    /// Not at a hidden page: the payload's own SIGSEGV.
    NotHidden,
    /// At a hidden page whose host page is fine now: run the access again.
    Retry,
    /// At a page past the end of its file: this SIGBUS.
    Bus(SigInfo),
}

/// Sets the protection of the parts of `ranges` the payload maps: its own
/// (`hide == false`) or none.
fn set_visible(guest: &Guest, ranges: &[Range<u64>], hide: bool) -> Result<()> {
    let mm = lock(&guest.mm);
    for r in ranges {
        for (start, vma) in mm.vmas().filter(|(s, v)| *s < r.end && r.start < v.end) {
            let prot = if hide { 0 } else { vma.prot };
            guest
                .vm
                .protect(start.max(r.start)..vma.end.min(r.end), prot)?;
        }
    }
    Ok(())
}

/// After KVM_RUN failed with EFAULT: hides the file pages past EOF so that running
/// the access again tells its address. Returns false if there is nothing to hide
/// (or this thread's access already ran into hidden pages in vain): the address
/// cannot be learnt.
pub fn hide_unbacked(guest: &Guest) -> Result<bool> {
    let mut hidden = lock(&HIDDEN);
    if PROBING.get() && !hidden.is_empty() {
        PROBING.set(false);
        return Ok(false);
    }
    let found = guest.vm.mem.file_pages_past_eof();
    if found.is_empty() {
        return Ok(false);
    }
    set_visible(guest, &found, true)?;
    hidden.extend(found);
    PROBING.set(true);
    Ok(true)
}

/// A guest page fault at `addr`: if it hit a hidden page, shows the hidden pages
/// again and tells whether the access gets SIGBUS.
pub fn page_fault(guest: &Guest, addr: u64) -> Result<PageFault> {
    let mut hidden = lock(&HIDDEN);
    if !hidden.iter().any(|r| r.contains(&addr)) {
        return Ok(PageFault::NotHidden);
    }
    set_visible(guest, &hidden, false)?;
    hidden.clear();
    PROBING.set(false);
    if guest.vm.mem.backing_readable(addr) {
        return Ok(PageFault::Retry);
    }
    Ok(PageFault::Bus(bus_error(addr)))
}

/// SIGBUS/BUS_ADRERR at `addr`.
pub fn bus_error(addr: u64) -> SigInfo {
    signals::info_fault(libc::SIGBUS, libc::BUS_ADRERR, addr)
}
