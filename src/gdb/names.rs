//! Thread names for gdb's thread list (`qXfer:threads:read`): each guest thread's
//! comm, which km keeps as the name of the host thread that runs it (set by
//! `prctl(PR_SET_NAME)`, by a write to its /proc `comm`, inherited at creation),
//! so gdb shows the names gdbserver shows for the same program on Linux.

use gdbstub::common::{Pid, Tid};
use gdbstub::target::ext::thread_names::ThreadNames;

use super::KmTarget;

/// Linux's TASK_COMM_LEN: a comm and its NUL.
const TASK_COMM_LEN: usize = 16;

/// The comm of km's thread `tid` (a guest thread), as /proc shows it; `None` once
/// the thread is gone.
pub(super) fn comm(tid: i32) -> Option<Vec<u8>> {
    let mut name = std::fs::read(format!("/proc/self/task/{tid}/comm")).ok()?;
    if name.last() == Some(&b'\n') {
        name.pop();
    }
    name.truncate(TASK_COMM_LEN - 1);
    Some(name)
}

impl ThreadNames for KmTarget {
    fn list_thread_names(
        &mut self,
        thread: &mut dyn FnMut(Option<Pid>, Tid, Option<&[u8]>),
    ) -> Result<(), Self::Error> {
        for t in self.debugger.threads() {
            if let Some(tid) = Tid::new(t as usize) {
                thread(None, tid, comm(t).as_deref());
            }
        }
        // The kept fork children's, as each named them at its last stop.
        for (&p, relay) in &self.relays {
            let process = Pid::new(p as usize);
            for (t, name) in &relay.threads {
                if let Some(tid) = Tid::new(*t as usize) {
                    thread(process, tid, Some(name));
                }
            }
        }
        Ok(())
    }
}
