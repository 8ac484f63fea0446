//! The syscalls the landing pad answers in the guest, without an exit
//! ([`IN_GUEST`]: getpid, gettid and the user and group ids, which need no host
//! work). Each vCPU's pad page holds the answers of the thread running on it; km
//! writes them whenever they may change: when a thread starts on a vCPU (a new
//! thread, a reused vCPU, a fork child, a restored snapshot), after the set*id
//! calls (credentials are per host thread, as Linux's raw syscalls change them),
//! and when a vfork child takes its parent's vCPU and gives it back. getppid is
//! not among them: the parent's death changes it without km being told.
//!
//! While km must see every syscall (gdb may catch them, `-V hypercall` traces
//! them, `--stats` counts them) the pad answers nothing and every syscall exits.
//!
//! On PVM (CPL3) the pad also answers rt_sigprocmask and set_robust_list from
//! words of the request block, which [`lend`] fills before each entry into the
//! guest and [`take_back`] reads after each exit: inside km the [`Thread`]'s
//! fields stay the thread's state.
//!
//! It also answers rt_sigaction queries from the process's disposition table
//! (`signals::set_action` keeps it), when [`publish`] says the table is the
//! thread's: not in a vfork child, whose dispositions are its own.

use anyhow::Result;

use super::process::{Guest, Thread};
use super::signals::{self, UNBLOCKABLE};
use crate::guest::landing_pad::{IN_GUEST, ROBUST_LIST_HEAD_SIZE, ThreadWords};
use crate::stats;
use crate::trace::{self, Category};

/// Writes `thread`'s answers into its vCPU's pad. Runs on `thread`'s own host
/// thread (in a vfork child, in the child's process), whose ids are the thread's.
pub fn publish(guest: &Guest, thread: &Thread) -> Result<()> {
    let on = guest.debugger.is_none() && !trace::enabled(Category::Hypercall) && !stats::on();
    let values = on.then(|| IN_GUEST.map(|nr| answer(thread, nr)));
    let actions = on && thread.vfork_child.is_none();
    Ok(thread
        .vcpu
        .area
        .set_answers(&guest.vm.mem, values, actions)?)
}

/// What syscall `nr` of [`IN_GUEST`] returns to `thread`.
fn answer(thread: &Thread, nr: u64) -> u64 {
    let pid = || rustix::process::getpid().as_raw_nonzero().get() as u64;
    match nr as i64 {
        libc::SYS_getpid => pid(),
        // A vfork child runs on its parent's thread but is a process of its own.
        libc::SYS_gettid if thread.vfork_child.is_some() => pid(),
        libc::SYS_gettid => thread.tid as u64,
        libc::SYS_getuid => rustix::process::getuid().as_raw().into(),
        libc::SYS_geteuid => rustix::process::geteuid().as_raw().into(),
        libc::SYS_getgid => rustix::process::getgid().as_raw().into(),
        libc::SYS_getegid => rustix::process::getegid().as_raw().into(),
        _ => unreachable!("syscall {nr} is not answered in the guest"),
    }
}

/// Before `thread` enters the guest: its mask, the signals waiting for it (the
/// pad's rt_sigprocmask exits when it unblocks one; a signal that comes later
/// kicks the thread out) and its robust-list head go to its landing pad.
pub fn lend(guest: &Guest, thread: &Thread) -> Result<()> {
    let words = ThreadWords {
        sigmask: thread.sigmask,
        pending: signals::waiting(guest, thread),
        scratch: 0,
        robust_head: thread.robust_list.0,
    };
    Ok(thread.vcpu.area.set_thread_words(&guest.vm.mem, words)?)
}

/// After an exit: the mask and robust-list head as the thread left them in the
/// guest (the payload can write the words itself, so SIGKILL and SIGSTOP are
/// taken out of the mask again).
pub fn take_back(guest: &Guest, thread: &mut Thread) -> Result<()> {
    let words = thread.vcpu.area.thread_words(&guest.vm.mem)?;
    thread.sigmask = words.sigmask & !UNBLOCKABLE;
    if words.robust_head != thread.robust_list.0 {
        thread.robust_list = (words.robust_head, ROBUST_LIST_HEAD_SIZE);
    }
    Ok(())
}
