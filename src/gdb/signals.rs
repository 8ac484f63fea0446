//! Signal numbers as the remote protocol has them (gdb's own numbering, from
//! gdb's include/gdb/signals.def) and as Linux x86-64 has them; the signals gdb
//! passes without a stop (`QPassSignals`) and a stopped thread's siginfo
//! (`qXfer:siginfo`).

use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::pass_signals::{PassSignals, PassedSignals};
use gdbstub::target::ext::siginfo::Siginfo;
use gdbstub::target::{TargetError, TargetResult};

use super::KmTarget;
use crate::kernel::signals::SigInfo;

/// Linux signal `n` (1..=31) is gdb signal `CLASSIC[n - 1]`. Linux's SIGSTKFLT has
/// no gdb number; gdb calls it unknown (143).
const CLASSIC: [u8; 31] = [
    1, 2, 3, 4, 5, 6, 10, 8, 9, 30, 11, 31, 13, 14, 15, 143, 20, 19, 17, 18, 21, 22, 16, 24, 25,
    26, 27, 28, 23, 32, 12,
];
/// gdb's numbers of the real-time signals: SIG32 and SIG64 sit apart, SIG33..SIG63
/// run from 45 up.
const GDB_SIG32: u8 = 77;
const GDB_SIG33: u8 = 45;
const GDB_SIG64: u8 = 78;

/// The gdb number of Linux signal `sig`.
pub fn to_gdb(sig: i32) -> Signal {
    Signal(match sig {
        1..=31 => CLASSIC[sig as usize - 1],
        32 => GDB_SIG32,
        33..=63 => GDB_SIG33 + (sig - 33) as u8,
        64 => GDB_SIG64,
        _ => 143,
    })
}

/// The Linux signal gdb means by `signal` (none for 0 or one Linux lacks).
pub fn from_gdb(signal: Signal) -> Option<i32> {
    (1..=64).find(|&sig| to_gdb(sig) == signal && signal.0 != 143)
}

/// gdb's `handle SIG nostop noprint pass`: km delivers these without a stop
/// (gdb numbers without a Linux signal are ignored, as by gdbserver).
impl PassSignals for KmTarget {
    fn set_pass_signals(&mut self, signals: PassedSignals<'_>) -> TargetResult<(), Self> {
        self.debugger
            .set_passed_signals(signals.filter_map(from_gdb).collect());
        Ok(())
    }
}

/// The bytes of a siginfo from `offset`, at most `length` of them and none past
/// its end; `None` for an offset past its end.
fn siginfo_range(offset: u64, length: usize) -> Option<std::ops::Range<usize>> {
    let size = std::mem::size_of::<SigInfo>();
    let start = usize::try_from(offset).ok().filter(|&o| o <= size)?;
    Some(start..start + length.min(size - start))
}

/// gdb's `$_siginfo`: the siginfo of the signal the selected thread stopped with,
/// as PTRACE_GETSIGINFO gives it to gdbserver; gdb's changes are delivered with
/// that signal if gdb resumes the thread with it.
impl Siginfo for KmTarget {
    fn read_siginfo(
        &mut self,
        tid: Tid,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let info = self
            .debugger
            .with_parked(tid.get() as i32, |p| p.siginfo)
            .flatten()
            .ok_or(TargetError::Errno(libc::EINVAL as u8))?;
        let range = siginfo_range(offset, length.min(buf.len())).unwrap_or(0..0);
        buf[..range.len()].copy_from_slice(&info[range.clone()]);
        Ok(range.len())
    }

    fn write_siginfo(&mut self, tid: Tid, offset: u64, data: &[u8]) -> TargetResult<usize, Self> {
        let range = siginfo_range(offset, data.len())
            .filter(|r| !r.is_empty() || data.is_empty())
            .ok_or(TargetError::Errno(libc::EINVAL as u8))?;
        self.debugger
            .with_parked(tid.get() as i32, |p| {
                p.siginfo.as_mut().map(|info| {
                    info[range.clone()].copy_from_slice(&data[..range.len()]);
                    range.len()
                })
            })
            .flatten()
            .ok_or(TargetError::Errno(libc::EINVAL as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_match_gdb() {
        assert_eq!(to_gdb(libc::SIGUSR1), Signal::SIGUSR1);
        assert_eq!(to_gdb(libc::SIGCHLD), Signal::SIGCHLD);
        assert_eq!(to_gdb(libc::SIGBUS), Signal::SIGBUS);
        assert_eq!(to_gdb(34), Signal::SIG34);
        assert_eq!(to_gdb(64), Signal::SIG64);
        for sig in (1..=64).filter(|&s| s != libc::SIGSTKFLT) {
            assert_eq!(from_gdb(to_gdb(sig)), Some(sig), "signal {sig}");
        }
        assert_eq!(from_gdb(Signal(0)), None);
    }

    #[test]
    fn siginfo_ranges_stay_inside_the_siginfo() {
        assert_eq!(siginfo_range(0, 4096), Some(0..128));
        assert_eq!(siginfo_range(120, 16), Some(120..128));
        assert_eq!(siginfo_range(128, 16), Some(128..128));
        assert_eq!(siginfo_range(129, 1), None);
        assert_eq!(siginfo_range(u64::MAX, usize::MAX), None);
    }
}
