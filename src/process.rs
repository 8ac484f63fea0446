//! The guest process: what its threads share ([`Guest`]) and what each thread owns
//! ([`Thread`]), plus the bookkeeping of live threads and parked vCPUs.
//!
//! Each guest thread is one vCPU driven by its own host thread, so a thread blocked in
//! a host syscall never stops the others. The process ends when a thread calls
//! exit_group, when it is killed, or when its last thread exits: km then exits with
//! the payload's status (see [`terminate`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;
use rustix::io::Errno;
use vm_memory::{ByteValued, Bytes, VolatileSlice};

use crate::mm::AddressSpace;
use crate::signals::{PendingQueue, SigAction};
use crate::syscalls::fdtable::FdTable;
use crate::vcpu::{Stop, Vcpu, kick};
use crate::vm::Vm;

/// Locks `m`, ignoring poisoning: a panicking vCPU thread ends the whole process.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Signal dispositions, shared by all threads.
pub struct Signals {
    pub actions: [SigAction; 64],
}

/// What other threads may touch of a thread: its id and its pending signals.
pub struct ThreadHandle {
    pub tid: i32,
    pub pending: PendingQueue,
}

/// Live threads and vCPUs parked for reuse.
struct Threads {
    live: HashMap<i32, Arc<ThreadHandle>>,
    idle: Vec<Vcpu>,
    next_vcpu: u32,
}

/// State shared by every thread of the payload.
pub struct Guest {
    /// The payload as named on the command line, for messages.
    pub name: String,
    pub vm: Vm,
    pub mm: Mutex<AddressSpace>,
    pub fds: Mutex<FdTable>,
    pub signals: Mutex<Signals>,
    /// Signals sent to the process as a whole.
    pub pending: PendingQueue,
    threads: Mutex<Threads>,
    /// `--kill-unimpl-scall`: an unimplemented syscall kills with SIGSYS.
    pub kill_unimpl: bool,
    /// Unimplemented syscalls already named in the trace.
    pub unimpl_seen: Mutex<HashSet<u64>>,
}

/// One guest thread: its vCPU and per-thread kernel state.
pub struct Thread {
    pub tid: i32,
    pub handle: Arc<ThreadHandle>,
    pub vcpu: Vcpu,
    /// The address set_tid_address / CLONE_CHILD_CLEARTID registered.
    pub clear_child_tid: u64,
    /// set_robust_list's head and length.
    pub robust_list: (u64, u64),
    pub sigmask: u64,
    /// The mask to restore after a handler interrupts rt_sigsuspend.
    pub saved_mask: Option<u64>,
    /// sigaltstack: base and size (size 0: disabled).
    pub altstack: (u64, u64),
}

impl Guest {
    pub fn new(name: String, vm: Vm, mm: AddressSpace, kill_unimpl: bool) -> Self {
        Guest {
            name,
            vm,
            mm: Mutex::new(mm),
            fds: Mutex::new(FdTable::with_stdio()),
            signals: Mutex::new(Signals {
                actions: [SigAction::default(); 64],
            }),
            pending: PendingQueue::default(),
            threads: Mutex::new(Threads {
                live: HashMap::new(),
                idle: Vec::new(),
                next_vcpu: 0,
            }),
            kill_unimpl,
            unimpl_seen: Mutex::new(HashSet::new()),
        }
    }

    /// Guest memory `[addr, addr + len)`, which the payload has mapped with `prot`.
    pub fn user_slice(&self, addr: u64, len: usize, prot: i32) -> Result<VolatileSlice<'_>, Errno> {
        lock(&self.mm).check(addr, len as u64, prot)?;
        Ok(self.vm.mem.slice(addr, len)?)
    }

    /// Writes `val` to the payload's writable memory at `addr`.
    pub fn write_user<T: ByteValued>(&self, addr: u64, val: T) -> Result<(), Errno> {
        self.user_slice(addr, size_of::<T>(), libc::PROT_WRITE)?
            .write_obj(val, 0)
            .map_err(|_| Errno::FAULT)
    }

    /// Returns an unused vCPU to the pool.
    pub fn park_vcpu(&self, vcpu: Vcpu) {
        lock(&self.threads).idle.push(vcpu);
    }

    /// A vCPU for a new thread: a parked one, or a fresh one.
    pub fn take_vcpu(&self) -> Result<Vcpu> {
        let mut t = lock(&self.threads);
        if let Some(vcpu) = t.idle.pop() {
            return Ok(vcpu);
        }
        let id = t.next_vcpu;
        t.next_vcpu += 1;
        drop(t);
        self.vm.create_vcpu(id)
    }

    /// Records a thread as running; returns its handle.
    pub fn thread_started(&self, tid: i32) -> Arc<ThreadHandle> {
        let handle = Arc::new(ThreadHandle {
            tid,
            pending: PendingQueue::default(),
        });
        lock(&self.threads).live.insert(tid, handle.clone());
        handle
    }

    /// The running thread `tid`.
    pub fn thread(&self, tid: i32) -> Option<Arc<ThreadHandle>> {
        lock(&self.threads).live.get(&tid).cloned()
    }

    /// A thread exited with `status`: park its vCPU; the last thread ends the process.
    pub fn thread_exited(&self, thread: Thread, status: i32) {
        let mut t = lock(&self.threads);
        t.live.remove(&thread.tid);
        if t.live.is_empty() {
            terminate(self, Stop::Exited(status));
        }
        t.idle.push(thread.vcpu);
    }
}

/// Ends km the way the payload ended: with its exit status, or killed by its signal
/// (re-raised on km, so that a parent sees the same status as for a native process).
pub fn terminate(guest: &Guest, stop: Stop) -> ! {
    match stop {
        Stop::Exited(status) => std::process::exit(status & 0xff),
        Stop::Killed(signal) => {
            let _ = guest;
            kick::die_by(signal)
        }
    }
}
