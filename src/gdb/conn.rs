//! The connection to gdb: a TCP stream with buffered output and input. gdbstub
//! writes a reply byte by byte; unbuffered, each byte is a system call and, with
//! TCP_NODELAY, a TCP segment of its own, which makes large replies (host-I/O reads
//! of the executable, register sets) slow. Output is sent on flush and before
//! every wait for input. gdbstub flushes each acknowledgement as soon as it is
//! written (a resume's reply comes later, and an execve under gdb may replace km
//! before it: the `+` must not be left in this buffer) and each reply at its end.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use gdbstub::conn::{Connection, ConnectionExt};

pub struct Conn {
    _registered: crate::kernel::private_fds::Registered,
    stream: TcpStream,
    out: Vec<u8>,
    input: Vec<u8>,
    /// How much of `input` was consumed.
    at: usize,
    nonblocking: bool,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            _registered: crate::kernel::private_fds::register(stream.as_raw_fd()),
            stream,
            out: Vec::new(),
            input: Vec::new(),
            at: 0,
            nonblocking: false,
        }
    }

    fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        if self.nonblocking != on {
            self.stream.set_nonblocking(on)?;
            self.nonblocking = on;
        }
        Ok(())
    }

    /// Reads what the stream has (waiting for it unless `nonblocking`); false if
    /// nothing came without waiting. A host signal km handles on this thread (a
    /// fork child's SIGCHLD) interrupts the wait, which then goes on.
    fn fill(&mut self, nonblocking: bool) -> io::Result<bool> {
        self.set_nonblocking(nonblocking)?;
        let mut buf = [0u8; 4096];
        let n = loop {
            match Read::read(&mut self.stream, &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                read => break read?,
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.input.clear();
        self.input.extend_from_slice(&buf[..n]);
        self.at = 0;
        Ok(true)
    }
}

impl Connection for Conn {
    type Error = io::Error;

    fn write(&mut self, byte: u8) -> io::Result<()> {
        self.out.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.set_nonblocking(false)?;
            Write::write_all(&mut self.stream, &self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    fn on_session_start(&mut self) -> io::Result<()> {
        self.stream.set_nodelay(true)
    }
}

impl ConnectionExt for Conn {
    fn read(&mut self) -> io::Result<u8> {
        self.flush()?;
        while self.at == self.input.len() {
            self.fill(false)?;
        }
        self.at += 1;
        Ok(self.input[self.at - 1])
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        self.flush()?;
        if self.at == self.input.len() && !self.fill(true)? {
            return Ok(None);
        }
        Ok(Some(self.input[self.at]))
    }
}
