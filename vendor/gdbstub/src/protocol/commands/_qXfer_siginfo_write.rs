use super::prelude::*;
use crate::protocol::common::hex::decode_bin_buf;

/// `qXfer:siginfo:write::offset:data`, with `data` in binary encoding.
#[derive(Debug)]
pub struct qXferSiginfoWrite<'a> {
    pub offset: u64,
    pub data: &'a [u8],
}

impl<'a> ParseCommand<'a> for qXferSiginfoWrite<'a> {
    #[inline(always)]
    fn from_packet(buf: PacketBuf<'a>) -> Option<Self> {
        let body = buf.into_body();

        // the annex (between the first two ':') must be empty
        let mut body = body.splitn_mut(4, |&b| b == b':');
        if !body.next()?.is_empty() || !body.next()?.is_empty() {
            return None;
        }
        let offset = decode_hex(body.next()?).ok()?;
        let data = decode_bin_buf(body.next()?)?;

        Some(qXferSiginfoWrite { offset, data })
    }
}
