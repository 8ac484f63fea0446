//! Tell the target which signals GDB does not need to see.
use crate::common::Signal;
use crate::target::Target;
use crate::target::TargetResult;

/// Target Extension - Pass signals to the inferior without stopping
/// (`QPassSignals`).
///
/// GDB sends the signals the user set to `handle SIG nostop noprint pass`: the
/// target delivers them to the inferior directly, without reporting a stop.
pub trait PassSignals: Target {
    /// Set the signals to pass; each call replaces the previous set (an empty
    /// iterator passes none).
    fn set_pass_signals(&mut self, signals: PassedSignals<'_>) -> TargetResult<(), Self>;

    /// Support for the signals the inferior may receive (`QProgramSignals`).
    #[inline(always)]
    fn support_program_signals(&mut self) -> Option<ProgramSignalsOps<'_, Self>> {
        None
    }
}

define_ext!(PassSignalsOps, PassSignals);

/// Nested Target Extension - The signals GDB lets the inferior receive
/// (`QProgramSignals`).
///
/// A target that stops a thread for its own purposes with a signal GDB has not
/// seen delivers that signal on resuming the thread only if it is in this set.
pub trait ProgramSignals: PassSignals {
    /// Set the signals the inferior may receive; each call replaces the
    /// previous set.
    fn set_program_signals(&mut self, signals: PassedSignals<'_>) -> TargetResult<(), Self>;
}

define_ext!(ProgramSignalsOps, ProgramSignals);

/// Iterator of GDB signal numbers (see [`Signal`]).
pub struct PassedSignals<'a> {
    pub(crate) inner: &'a mut dyn Iterator<Item = Signal>,
}

impl Iterator for PassedSignals<'_> {
    type Item = Signal;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}
