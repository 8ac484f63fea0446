use super::prelude::*;
use crate::common::Signal;
use crate::protocol::commands::ext::PassSignals;
use crate::target::ext::pass_signals::PassedSignals;
use crate::target::TargetResult;

/// The GDB signal number `raw` (big-endian bytes), if it fits a [`Signal`].
fn to_signal(raw: &[u8]) -> Option<Signal> {
    let (last, high) = raw.split_last()?;
    high.iter().all(|&b| b == 0).then_some(Signal(*last))
}

/// Calls `set` with the signals in `list` (hex-decoded); fails if one does not
/// fit a [`Signal`].
fn with_signals<'a, T: Target, C: Connection>(
    list: impl Iterator<Item = &'a [u8]>,
    set: impl FnOnce(PassedSignals<'_>) -> TargetResult<(), T>,
) -> Result<(), Error<T::Error, C::Error>> {
    let mut error = false;
    let mut signals = list
        .map(to_signal)
        .take_while(|s| {
            error = s.is_none();
            !error
        })
        .flatten();
    set(PassedSignals {
        inner: &mut signals,
    })
    .handle_error()?;
    if error {
        return Err(Error::TargetMismatch);
    }
    Ok(())
}

impl<T: Target, C: Connection> GdbStubImpl<T, C> {
    pub(crate) fn handle_pass_signals(
        &mut self,
        _res: &mut ResponseWriter<'_, C>,
        target: &mut T,
        command: PassSignals<'_>,
    ) -> Result<HandlerStatus, Error<T::Error, C::Error>> {
        let ops = match target.support_pass_signals() {
            Some(ops) => ops,
            None => return Ok(HandlerStatus::Handled),
        };

        crate::__dead_code_marker!("pass_signals", "impl");

        let handler_status = match command {
            PassSignals::QPassSignals(cmd) => {
                with_signals::<T, C>(cmd.0.into_iter(), |signals| ops.set_pass_signals(signals))?;
                HandlerStatus::NeedsOk
            }
            PassSignals::QProgramSignals(cmd) => match ops.support_program_signals() {
                Some(ops) => {
                    with_signals::<T, C>(cmd.0.into_iter(), |signals| ops.set_program_signals(signals))?;
                    HandlerStatus::NeedsOk
                }
                None => HandlerStatus::Handled,
            },
        };

        Ok(handler_status)
    }
}
