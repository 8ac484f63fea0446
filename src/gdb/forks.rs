//! Processes under gdb: the real pid in gdb's thread ids, and fork children.
//!
//! Guest pids and tids are km's host pids and tids, so gdb names them as Linux
//! gives them (`p<pid>.<tid>`). A fork is a new km process, which waits for gdb's
//! decision (`crate::kernel::ptrace::ForkDecision`): gdb detaches a child it does
//! not follow (`D;<child>`), and the child runs free; when gdb follows the child
//! it detaches the parent (`D;<parent>`): this stub then ends, without reading
//! another byte, and tells the child to take the connection over, which it
//! holds a copy of (`crate::gdb::take_over`); the parent runs free.

use gdbstub::common::{Pid, Tid};
use gdbstub::target::ext::extended_mode::CurrentActivePid;
use gdbstub::target::ext::fork_children::{AfterDetach, ForkChildren};

use super::KmTarget;

/// This km's pid, the payload's.
pub fn own_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

impl CurrentActivePid for KmTarget {
    fn current_active_pid(&mut self) -> Result<Pid, Self::Error> {
        Pid::new(own_pid() as usize).ok_or("a pid is positive")
    }
}

impl ForkChildren for KmTarget {
    fn detach_process(&mut self, pid: Pid) -> Result<AfterDetach, Self::Error> {
        let pid = i32::try_from(pid.get()).map_err(|_| "pid out of range")?;
        if pid == own_pid() {
            // gdb follows the child of the fork it last saw, if that one still waits.
            self.followed = self
                .last_fork
                .take()
                .filter(|child| self.debugger.has_fork_child(*child));
            if self.followed.is_none() {
                self.hand_over_to_relay();
            }
            return Ok(AfterDetach::Disconnect);
        }
        if !self.release_relay(pid, false) {
            self.debugger
                .decide_fork_child(pid, crate::kernel::ptrace::ForkDecision::Free);
        }
        Ok(AfterDetach::KeepServing)
    }

    fn is_unreached_fork_child(&mut self, tid: Tid) -> bool {
        i32::try_from(tid.get()).is_ok_and(|t| self.debugger.has_fork_child(t))
    }

    fn process_of(&mut self, tid: Tid) -> Option<Pid> {
        self.relayed_process(i32::try_from(tid.get()).ok()?)
    }

    fn select_breakpoint_thread(&mut self, tid: Tid) {
        self.point_thread = i32::try_from(tid.get()).ok();
    }
}
