//! Signal numbers as the remote protocol has them (gdb's own numbering, from
//! gdb's include/gdb/signals.def) and as Linux x86-64 has them.

use gdbstub::common::Signal;

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
}
