use super::prelude::*;
use crate::protocol::common::lists::ArgListHex;

/// `QProgramSignals:signal[;signal]...`: the signals the inferior may receive
/// (an empty list allows none).
#[derive(Debug)]
pub struct QProgramSignals<'a>(pub ArgListHex<'a>);

impl<'a> ParseCommand<'a> for QProgramSignals<'a> {
    #[inline(always)]
    fn from_packet(buf: PacketBuf<'a>) -> Option<Self> {
        match buf.into_body() {
            [b':', signals @ ..] => Some(QProgramSignals(ArgListHex::from_packet(signals)?)),
            _ => None,
        }
    }
}
