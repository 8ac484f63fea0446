//! The KVM objects this process holds: the descriptors of /dev/kvm, of its VMs
//! and vCPUs, and the vCPUs' run pages, recorded where they are made and
//! forgotten where they go. A host fork copies all of them into the child km,
//! which builds a VM of its own and must let go of its parent's: each one keeps
//! the parent's VM alive (its memory and shadow page tables in the host kernel)
//! as long as the child lives, and every generation of a fork chain would add
//! its own ([`take_all`] and [`let_go`]).
//!
//! The record is a fixed table of atomics, not a lock: a thread of the parent
//! that was recording at the fork leaves no lock taken in the child (only that
//! one object, made as the fork happened, stays unrecorded and held).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Most objects recorded at once (two per VM, its descriptor and its /dev/kvm
/// copy's, and two per vCPU, its descriptor and run page; twice over while an
/// execve in place builds the next VM); beyond, an object is held unrecorded: a
/// fork child then keeps it.
const SLOTS: usize = 1024;

/// One object: `addr` holds a descriptor's key (see [`FD_TAG`]) or a run page
/// mapping's address, with its length in `len`; 0 while the slot is free.
struct Slot {
    addr: AtomicUsize,
    len: AtomicUsize,
}

/// Descriptors are kept as their number plus one with this bit, run pages at
/// their (page-aligned, never odd) address.
const FD_TAG: usize = 1 << 63;

static SLOTS_TABLE: [Slot; SLOTS] = [const {
    Slot {
        addr: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
    }
}; SLOTS];

/// A KVM object of the parent's, taken out of the record by [`take_all`].
#[derive(Debug, Clone, Copy)]
pub enum Object {
    Fd(RawFd),
    Run { addr: usize, len: usize },
}

fn record(key: usize, len: usize) {
    for slot in &SLOTS_TABLE {
        if slot
            .addr
            .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            slot.len.store(len, Ordering::Release);
            return;
        }
    }
}

fn forget(key: usize) {
    for slot in &SLOTS_TABLE {
        if slot
            .addr
            .compare_exchange(key, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return;
        }
    }
}

fn fd_key(fd: RawFd) -> usize {
    FD_TAG | (fd as usize + 1)
}

/// Records descriptor `fd`, a KVM object's.
pub fn hold_fd(fd: RawFd) {
    record(fd_key(fd), 0);
}

/// Forgets descriptor `fd`, about to be closed.
pub fn release_fd(fd: RawFd) {
    forget(fd_key(fd));
}

/// Records a vCPU's run page mapping, `len` bytes at `addr`.
pub fn hold_run(addr: usize, len: usize) {
    record(addr, len);
}

/// Forgets the run page mapping at `addr`, about to be unmapped.
pub fn release_run(addr: usize) {
    forget(addr);
}

/// In a forked km, before it makes a VM of its own: takes every object
/// recorded (the parent's) out of the record, for [`let_go`].
pub fn take_all() -> Vec<Object> {
    SLOTS_TABLE
        .iter()
        .filter_map(|slot| {
            let key = slot.addr.swap(0, Ordering::AcqRel);
            match key {
                0 => None,
                k if k & FD_TAG != 0 => Some(Object::Fd(((k & !FD_TAG) - 1) as RawFd)),
                addr => Some(Object::Run {
                    addr,
                    len: slot.len.load(Ordering::Acquire),
                }),
            }
        })
        .collect()
}

/// In a forked km, once nothing can use them (`kick::forget_parent` has run):
/// unmaps and closes the parent's objects [`take_all`] took.
pub fn let_go(parents: Vec<Object>) {
    for object in parents {
        match object {
            // SAFETY: the descriptor belongs to a KVM object of the parent's,
            // whose copy in this process (in memory the fork copied) is never
            // dropped or used here, so nothing else closes or uses the number.
            Object::Fd(fd) => unsafe {
                libc::close(fd);
            },
            // SAFETY: as above, the mapping is a parent vCPU's run page, which
            // nothing in this process reads or writes any more.
            Object::Run { addr, len } => unsafe {
                libc::munmap(addr as *mut libc::c_void, len);
            },
        }
    }
}
