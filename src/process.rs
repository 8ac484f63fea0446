//! Per-payload state the syscalls act on: address space, fds, signal bookkeeping.

use std::collections::HashSet;

use crate::mm::AddressSpace;
use crate::syscalls::fdtable::FdTable;

pub struct Process {
    pub mm: AddressSpace,
    pub fds: FdTable,
    /// `--kill-unimpl-scall`: an unimplemented syscall kills with SIGSYS.
    pub kill_unimpl: bool,
    /// Unimplemented syscalls already named in the trace.
    pub unimpl_seen: HashSet<u64>,
    /// Handlers recorded by rt_sigaction (`struct kernel_sigaction`, 32 bytes each);
    /// delivery is the signals work.
    pub sigactions: [[u8; 32]; 64],
    pub sigmask: u64,
    /// Signals sent while blocked.
    pub sigpending: u64,
    /// The address set_tid_address registered.
    pub clear_child_tid: u64,
}

impl Process {
    pub fn new(mm: AddressSpace, kill_unimpl: bool) -> Self {
        Process {
            mm,
            fds: FdTable::with_stdio(),
            kill_unimpl,
            unimpl_seen: HashSet::new(),
            sigactions: [[0; 32]; 64],
            sigmask: 0,
            sigpending: 0,
            clear_child_tid: 0,
        }
    }
}
