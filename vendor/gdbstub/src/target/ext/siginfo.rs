//! Access the signal information (`siginfo_t` on Linux) of a stopped thread.
use crate::common::Tid;
use crate::target::Target;
use crate::target::TargetResult;

/// Target Extension - Read and write the signal information of the thread
/// selected by the GDB client (GDB's `$_siginfo`).
///
/// The object is the target's own layout of the information (on Linux, the
/// 128-byte `siginfo_t` of the signal the thread stopped with). GDB reads it
/// whole; a target with no signal information for `tid` returns an error.
pub trait Siginfo: Target {
    /// Read the signal information of thread `tid` from `offset`.
    ///
    /// Return the number of bytes written into `buf` (which may be less than
    /// `length`).
    ///
    /// If `offset` is greater than the length of the underlying data, return
    /// `Ok(0)`.
    fn read_siginfo(
        &mut self,
        tid: Tid,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self>;

    /// Write `data` at `offset` into the signal information of thread `tid`
    /// (delivered if the thread is resumed with the same signal).
    ///
    /// Return the number of bytes written.
    fn write_siginfo(&mut self, tid: Tid, offset: u64, data: &[u8]) -> TargetResult<usize, Self>;
}

define_ext!(SiginfoOps, Siginfo);
