use super::prelude::*;
use crate::common::Pid;
use crate::common::Tid;
use crate::protocol::commands::ext::ThreadNames;
use crate::target::ext::base::BaseOps;

impl<T: Target, C: Connection> GdbStubImpl<T, C> {
    pub(crate) fn handle_thread_names(
        &mut self,
        res: &mut ResponseWriter<'_, C>,
        target: &mut T,
        command: ThreadNames<'_>,
    ) -> Result<HandlerStatus, Error<T::Error, C::Error>> {
        let pid = match self.features.multiprocess() {
            true => Some(self.get_current_pid(target)?),
            false => None,
        };
        let ops = match target.base_ops() {
            BaseOps::SingleThread(_) => return Ok(HandlerStatus::Handled),
            BaseOps::MultiThread(ops) => match ops.support_thread_names() {
                Some(ops) => ops,
                None => return Ok(HandlerStatus::Handled),
            },
        };

        crate::__dead_code_marker!("thread_names", "impl");

        let handler_status = match command {
            ThreadNames::qXferThreadsRead(cmd) => {
                let length = cmd.length.min(cmd.buf.len());
                let mut xml = XmlWindow::new(cmd.offset, &mut cmd.buf[..length]);
                xml.put(b"<?xml version=\"1.0\"?>\n<threads>\n");
                ops.list_thread_names(&mut |process, tid, name| {
                    xml.thread(pid.map(|own| process.unwrap_or(own)), tid, name)
                })
                .map_err(Error::TargetError)?;
                xml.put(b"</threads>\n");
                let ret = xml.written();
                if ret == 0 {
                    res.write_str("l")?;
                } else {
                    res.write_str("m")?;
                    res.write_binary(cmd.buf.get(..ret).ok_or(Error::PacketBufferOverflow)?)?;
                }
                HandlerStatus::Handled
            }
        };

        Ok(handler_status)
    }
}

/// Writes the part of the thread list document that falls in a qXfer read's
/// window (`offset`, the length of `buf`) into `buf`, without building the
/// whole document.
struct XmlWindow<'a> {
    offset: u64,
    buf: &'a mut [u8],
    /// Where the document written so far ends.
    pos: u64,
}

impl<'a> XmlWindow<'a> {
    fn new(offset: u64, buf: &'a mut [u8]) -> Self {
        XmlWindow {
            offset,
            buf,
            pos: 0,
        }
    }

    /// Appends `bytes` to the document.
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len() as u64);
        let window_end = self.offset.saturating_add(self.buf.len() as u64);
        let from = self.pos.max(self.offset);
        let to = end.min(window_end);
        if from < to {
            let src = &bytes[(from - self.pos) as usize..(to - self.pos) as usize];
            let at = (from - self.offset) as usize;
            self.buf[at..at + src.len()].copy_from_slice(src);
        }
        self.pos = end;
    }

    /// Appends `n` in hex, as thread ids are written in packets.
    fn put_hex(&mut self, n: usize) {
        let mut digits = [0u8; 2 * core::mem::size_of::<usize>()];
        let mut at = digits.len();
        let mut n = n;
        loop {
            at -= 1;
            digits[at] = b"0123456789abcdef"[n % 16];
            n /= 16;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[at..]);
    }

    /// Appends `name` as XML attribute text: markup characters escaped, invalid
    /// UTF-8 and control characters replaced by U+FFFD.
    fn put_escaped(&mut self, name: &[u8]) {
        const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();
        for chunk in name.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '&' => self.put(b"&amp;"),
                    '<' => self.put(b"&lt;"),
                    '>' => self.put(b"&gt;"),
                    '"' => self.put(b"&quot;"),
                    '\'' => self.put(b"&apos;"),
                    c if c.is_control() => self.put(REPLACEMENT),
                    c => self.put(c.encode_utf8(&mut [0; 4]).as_bytes()),
                }
            }
            if !chunk.invalid().is_empty() {
                self.put(REPLACEMENT);
            }
        }
    }

    /// Appends the element of thread `tid` (of process `pid` in multiprocess
    /// mode), named `name`.
    fn thread(&mut self, pid: Option<Pid>, tid: Tid, name: Option<&[u8]>) {
        self.put(b"<thread id=\"");
        if let Some(pid) = pid {
            self.put(b"p");
            self.put_hex(pid.get());
            self.put(b".");
        }
        self.put_hex(tid.get());
        self.put(b"\"");
        if let Some(name) = name {
            self.put(b" name=\"");
            self.put_escaped(name);
            self.put(b"\"");
        }
        self.put(b"/>\n");
    }

    /// How many bytes of the window hold the document.
    fn written(&self) -> usize {
        (self.pos.saturating_sub(self.offset) as usize).min(self.buf.len())
    }
}
