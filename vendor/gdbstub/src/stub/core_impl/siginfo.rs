use super::prelude::*;
use crate::protocol::commands::ext::Siginfo;

impl<T: Target, C: Connection> GdbStubImpl<T, C> {
    pub(crate) fn handle_siginfo(
        &mut self,
        res: &mut ResponseWriter<'_, C>,
        target: &mut T,
        command: Siginfo<'_>,
    ) -> Result<HandlerStatus, Error<T::Error, C::Error>> {
        let ops = match target.support_siginfo() {
            Some(ops) => ops,
            None => return Ok(HandlerStatus::Handled),
        };

        crate::__dead_code_marker!("siginfo", "impl");

        let handler_status = match command {
            Siginfo::qXferSiginfoRead(cmd) => {
                let ret = ops
                    .read_siginfo(self.current_mem_tid, cmd.offset, cmd.length, cmd.buf)
                    .handle_error()?;
                if ret == 0 {
                    res.write_str("l")?;
                } else {
                    res.write_str("m")?;
                    res.write_binary(cmd.buf.get(..ret).ok_or(Error::PacketBufferOverflow)?)?;
                }
                HandlerStatus::Handled
            }
            Siginfo::qXferSiginfoWrite(cmd) => {
                let ret = ops
                    .write_siginfo(self.current_mem_tid, cmd.offset, cmd.data)
                    .handle_error()?;
                res.write_num(ret)?;
                HandlerStatus::Handled
            }
        };

        Ok(handler_status)
    }
}
