// use super::prelude::*; // unused
use crate::protocol::common::qxfer::ParseAnnex;
use crate::protocol::common::qxfer::QXferReadBase;

pub type qXferSiginfoRead<'a> = QXferReadBase<'a, SiginfoAnnex>;

#[derive(Debug)]
pub struct SiginfoAnnex;

impl ParseAnnex<'_> for SiginfoAnnex {
    #[inline(always)]
    fn from_buf(buf: &[u8]) -> Option<Self> {
        if buf != b"" {
            return None;
        }

        Some(SiginfoAnnex)
    }
}
