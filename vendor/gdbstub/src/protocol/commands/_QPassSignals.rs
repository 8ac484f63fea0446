use super::prelude::*;
use crate::protocol::common::lists::ArgListHex;

/// `QPassSignals:signal[;signal]...`: the signals to pass to the inferior
/// without stopping (an empty list passes none).
#[derive(Debug)]
pub struct QPassSignals<'a>(pub ArgListHex<'a>);

impl<'a> ParseCommand<'a> for QPassSignals<'a> {
    #[inline(always)]
    fn from_packet(buf: PacketBuf<'a>) -> Option<Self> {
        match buf.into_body() {
            [b':', signals @ ..] => Some(QPassSignals(ArgListHex::from_packet(signals)?)),
            _ => None,
        }
    }
}
