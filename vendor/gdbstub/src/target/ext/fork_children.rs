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
}

define_ext!(ForkChildrenOps, ForkChildren);
