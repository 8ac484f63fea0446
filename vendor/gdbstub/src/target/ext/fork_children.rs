//! Fork children that gdb knows of (through fork events) but has not attached.
use crate::common::Pid;
use crate::common::Tid;
use crate::target::Target;

/// What is left to debug after `D;pid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterDetach {
    /// Another process is still debugged (gdb detached a fork child it does
    /// not follow): the session goes on.
    KeepServing,
    /// The session ends (gdb detached the last process it debugged here, or
    /// the process it left for a fork child it follows).
    Disconnect,
}

/// Target Extension - Detach single processes, and tell which threads belong
/// to fork children whose memory the target does not reach.
///
/// With fork events, gdb names processes in `D;pid` (detaching a fork child it
/// does not follow, or the parent when it follows the child), and right after
/// a fork event it selects the child's thread (`Hg`) and takes its breakpoints
/// out of the child (`z`). A target whose fork children live in address
/// spaces of their own, which take gdb's breakpoints out themselves, answers
/// those packets without touching the parent.
pub trait ForkChildren: Target {
    /// `D;pid`: detach from process `pid`.
    fn detach_process(&mut self, pid: Pid) -> Result<AfterDetach, Self::Error>;

    /// Whether `tid` is the thread of a fork child that gdb was told of but
    /// that this target's memory and breakpoint operations do not reach.
    /// Breakpoint packets for such a thread are acknowledged without effect.
    fn is_unreached_fork_child(&mut self, tid: Tid) -> bool;

    /// The process of thread `tid` when it is not the target's current
    /// process (a fork child gdb keeps debugging with `detach-on-fork off`,
    /// whose threads the target lists with its own), or `None`. `gdbstub`
    /// writes the thread's id with this pid (`p<pid>.<tid>`) in stop replies.
    fn process_of(&mut self, tid: Tid) -> Option<Pid> {
        let _ = tid;
        None
    }

    /// The thread selected with `Hg` when a breakpoint or watchpoint packet
    /// (`Z`/`z`) arrives, called just before the packet is applied: a target
    /// debugging several processes applies it to that thread's process.
    fn select_breakpoint_thread(&mut self, tid: Tid) {
        let _ = tid;
    }
}

define_ext!(ForkChildrenOps, ForkChildren);
