//! Name each thread in GDB's thread list (`qXfer:threads:read`).
use crate::common::Pid;
use crate::common::Tid;
use crate::target::Target;

/// Target Extension - List the active threads with their names.
///
/// GDB shows a thread's name in `info threads` (`Thread 1.2 "worker"`), as it
/// shows the names Linux threads give themselves (their `comm`) under
/// gdbserver. `gdbstub` answers `qXfer:threads:read` with the thread list
/// document built from what this method reports.
///
/// When this extension is supported, GDB takes its thread list from that
/// document and no longer asks for `qThreadExtraInfo`.
pub trait ThreadNames: Target {
    /// Call `thread` once for each active thread, with its process when it
    /// is not the target's current one (`None` otherwise; a target debugging
    /// several processes on one connection names the others) and its name as
    /// raw bytes (`None` when it has none).
    ///
    /// `gdbstub` escapes the name for XML; bytes that are not valid UTF-8 and
    /// control characters are shown as U+FFFD.
    fn list_thread_names(
        &mut self,
        thread: &mut dyn FnMut(Option<Pid>, Tid, Option<&[u8]>),
    ) -> Result<(), Self::Error>;
}

define_ext!(ThreadNamesOps, ThreadNames);
