//! Layer 4, the kernel: the Linux personality km gives the payload. The process and
//! its threads, signals, descriptors, execve, and the ptrace-like stop/resume state a
//! debugger drives. Uses `memory`, `kvm` and `guest`.

pub mod aio;
pub mod answers;
pub mod backing;
pub mod children;
pub mod exec;
pub mod fdtable;
pub mod private_fds;
pub mod process;
pub mod ptrace;
pub mod signalfd;
pub mod signals;

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning: a panicking vCPU thread ends the whole process.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
