use super::prelude::*;
use crate::protocol::commands::ext::ExecFile;

impl<T: Target, C: Connection> GdbStubImpl<T, C> {
    pub(crate) fn handle_exec_file(
        &mut self,
        res: &mut ResponseWriter<'_, C>,
        target: &mut T,
        command: ExecFile<'_>,
    ) -> Result<HandlerStatus, Error<T::Error, C::Error>> {
        let ops = match target.support_exec_file() {
            Some(ops) => ops,
            None => return Ok(HandlerStatus::Handled),
        };

        crate::__dead_code_marker!("exec_file", "impl");

        let handler_status = match command {
            ExecFile::qXferExecFileRead(cmd) => {
                let ret = ops
                    .get_exec_file(cmd.annex.pid, cmd.offset, cmd.length, cmd.buf)
                    .handle_error()?;
                if ret == 0 {
                    res.write_str("l")?;
                } else {
                    res.write_str("m")?;
                    // TODO: add more specific error variant?
                    res.write_binary(cmd.buf.get(..ret).ok_or(Error::PacketBufferOverflow)?)?;
                }
                HandlerStatus::Handled
            }
        };

        Ok(handler_status)
    }

    /// Writes the path of the program thread `tid`'s process executes, in hex
    /// (the `exec` stop reason).
    pub(crate) fn write_exec_file_hex(
        &mut self,
        res: &mut ResponseWriter<'_, C>,
        target: &mut T,
        tid: crate::common::Tid,
    ) -> Result<(), Error<T::Error, C::Error>> {
        let pid = self.get_thread_pid(target, tid)?;
        let ops = match target.support_exec_file() {
            Some(ops) => ops,
            None => return Err(Error::UnsupportedStopReason),
        };
        let mut buf = [0u8; 64];
        let mut offset = 0u64;
        loop {
            let n = ops
                .get_exec_file(Some(pid), offset, buf.len(), &mut buf)
                .handle_error()?;
            if n == 0 {
                return Ok(());
            }
            res.write_hex_buf(buf.get(..n).ok_or(Error::PacketBufferOverflow)?)?;
            offset += n as u64;
        }
    }
}
