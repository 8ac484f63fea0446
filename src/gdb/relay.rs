//! `detach-on-fork off`: one stub serves gdb for the payload and for the fork
//! children gdb keeps, each its own km process. The fork child waits for gdb's
//! decision on a socket pair whose other end its parent's stub holds
//! (`crate::kernel::ptrace::ForkDecision`); the first time gdb reaches into
//! the child (its registers, its memory, a resume), the stub tells it to stay
//! under gdb through this stub, and from then on relays gdb's requests for the
//! child's threads over that socket ([`Relay`]); the child km answers them with
//! its own target (`super::relay_server`). Thread ids are host tids, unique
//! across the processes, so a thread id tells which process a request is for.
//!
//! The wire format: each message is a 4-byte little-endian length and that
//! many bytes. A request is an operation byte and its fields (8-byte
//! little-endian words, then raw bytes); a reply is a status byte (0: done,
//! otherwise an errno) and its fields.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::kernel::ptrace::{Action, Event, WatchKind};

/// The largest message either side accepts (a register set, a memory read
/// within gdb's packet size, a thread list).
pub const MAX_MESSAGE: usize = 1 << 20;

/// The reply status of a request the child's target refused without an errno.
pub const NON_FATAL: u8 = 255;

/// The operations the parent's stub asks of a fork child's km.
pub mod op {
    pub const READ_REGISTERS: u8 = b'g';
    pub const WRITE_REGISTERS: u8 = b'G';
    pub const READ_MEMORY: u8 = b'm';
    pub const WRITE_MEMORY: u8 = b'M';
    pub const INSERT_POINT: u8 = b'Z';
    pub const REMOVE_POINT: u8 = b'z';
    pub const THREADS: u8 = b't';
    pub const RESUME: u8 = b'c';
    pub const NEXT_EVENT: u8 = b'e';
    pub const PAUSE: u8 = b'p';
    pub const KILL: u8 = b'k';
    pub const DETACH: u8 = b'D';
    pub const EXEC_FILE: u8 = b'x';
    /// Open a file for gdb (`vFile:open` of the child's /proc entries): the
    /// descriptor comes with one byte after the reply (SCM_RIGHTS).
    pub const OPEN_FILE: u8 = b'o';
    /// Serve gdb directly from now on: its connection follows, passed with
    /// one byte (SCM_RIGHTS).
    pub const TAKE_OVER: u8 = b'T';
}

/// A message being built.
pub struct Message(Vec<u8>);

impl Message {
    pub fn new(first: u8) -> Self {
        Message(vec![first])
    }

    pub fn word(mut self, w: u64) -> Self {
        self.0.extend_from_slice(&w.to_le_bytes());
        self
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// Writes the message to `stream`.
    pub fn send(&self, stream: &mut UnixStream) -> io::Result<()> {
        let len = u32::try_from(self.0.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        stream.write_all(&len.to_le_bytes())?;
        stream.write_all(&self.0)
    }
}

/// A message received, read from the front.
pub struct Received {
    data: Vec<u8>,
    at: usize,
}

impl Received {
    /// Reads one message from `stream`, refusing one longer than [`MAX_MESSAGE`].
    pub fn read(stream: &mut UnixStream) -> io::Result<Self> {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("relay message of {len} bytes"),
            ));
        }
        let mut data = vec![0u8; len];
        stream.read_exact(&mut data)?;
        Ok(Received { data, at: 0 })
    }

    fn malformed() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, "malformed relay message")
    }

    pub fn byte(&mut self) -> io::Result<u8> {
        let b = *self.data.get(self.at).ok_or_else(Self::malformed)?;
        self.at += 1;
        Ok(b)
    }

    pub fn word(&mut self) -> io::Result<u64> {
        let end = self.at.checked_add(8).ok_or_else(Self::malformed)?;
        let w = self.data.get(self.at..end).ok_or_else(Self::malformed)?;
        self.at = end;
        Ok(u64::from_le_bytes(w.try_into().expect("8 bytes")))
    }

    /// A word that must fit an i32 (a tid, a signal, a status).
    pub fn int(&mut self) -> io::Result<i32> {
        i32::try_from(self.word()? as i64).map_err(|_| Self::malformed())
    }

    /// A length that must fit in what is left of a message.
    pub fn length(&mut self) -> io::Result<usize> {
        usize::try_from(self.word()?)
            .ok()
            .filter(|&n| n <= MAX_MESSAGE)
            .ok_or_else(Self::malformed)
    }

    /// `n` raw bytes.
    pub fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.at.checked_add(n).ok_or_else(Self::malformed)?;
        let b = self.data.get(self.at..end).ok_or_else(Self::malformed)?;
        self.at = end;
        Ok(b)
    }

    /// The bytes left.
    pub fn rest(&mut self) -> &[u8] {
        let rest = &self.data[self.at..];
        self.at = self.data.len();
        rest
    }
}

/// A resume action on the wire: continue or step, and the signal (0: none).
pub fn action_word(action: Action) -> u64 {
    match action {
        Action::Continue => 0,
        Action::Step => 1,
    }
}

pub fn action_of(word: u64) -> io::Result<Action> {
    match word {
        0 => Ok(Action::Continue),
        1 => Ok(Action::Step),
        _ => Err(Received::malformed()),
    }
}

/// Appends `event` to `m`: a tag and three words.
pub fn put_event(m: Message, event: Event) -> Message {
    let watch = |k: WatchKind| match k {
        WatchKind::Write => 0,
        WatchKind::Read => 1,
        WatchKind::Access => 2,
    };
    let (tag, t, a, b): (u8, i32, u64, u64) = match event {
        Event::Breakpoint(t) => (1, t, 0, 0),
        Event::Step(t) => (2, t, 0, 0),
        Event::Watch(t, kind, addr) => (3, t, watch(kind), addr),
        Event::Signal(t, sig) => (4, t, sig as u64, 0),
        Event::Exited(status) => (5, 0, status as u64, 0),
        Event::SyscallEntry(t, nr) => (6, t, nr, 0),
        Event::SyscallReturn(t, nr) => (7, t, nr, 0),
        Event::Killed(sig) => (8, 0, sig as u64, 0),
        Event::Fork { tid, child, vfork } => (9, tid, child as u64, vfork as u64),
        Event::VForkDone(t) => (10, t, 0, 0),
        Event::Exec(t) => (11, t, 0, 0),
        Event::HwBreakpoint(t) => (12, t, 0, 0),
    };
    m.bytes(&[tag]).word(t as u64).word(a).word(b)
}

/// Reads an event [`put_event`] wrote.
pub fn take_event(r: &mut Received) -> io::Result<Event> {
    let tag = r.byte()?;
    let t = r.int()?;
    let a = r.word()?;
    let b = r.word()?;
    let int = |w: u64| i32::try_from(w).map_err(|_| Received::malformed());
    Ok(match tag {
        1 => Event::Breakpoint(t),
        2 => Event::Step(t),
        3 => Event::Watch(
            t,
            match a {
                0 => WatchKind::Write,
                1 => WatchKind::Read,
                _ => WatchKind::Access,
            },
            b,
        ),
        4 => Event::Signal(t, int(a)?),
        5 => Event::Exited(int(a)?),
        6 => Event::SyscallEntry(t, a),
        7 => Event::SyscallReturn(t, a),
        8 => Event::Killed(int(a)?),
        9 => Event::Fork {
            tid: t,
            child: int(a)?,
            vfork: b != 0,
        },
        10 => Event::VForkDone(t),
        11 => Event::Exec(t),
        12 => Event::HwBreakpoint(t),
        _ => return Err(Received::malformed()),
    })
}

/// The parent's side of a fork child gdb keeps: the socket to the child's km
/// and the child's threads as of its last stop.
pub struct Relay {
    _registered: crate::kernel::private_fds::Registered,
    stream: UnixStream,
    pub threads: Vec<(i32, Vec<u8>)>,
    /// The program the child runs (absolute path).
    pub exe: Vec<u8>,
}

/// A failed request: the errno the child gave, or a broken channel.
#[derive(Debug)]
pub enum RelayError {
    Errno(u8),
    Lost(io::Error),
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Errno(n) => write!(f, "the fork child's km refused it (errno {n})"),
            RelayError::Lost(e) => write!(f, "the channel to the fork child's km broke: {e}"),
        }
    }
}

impl From<io::Error> for RelayError {
    fn from(e: io::Error) -> Self {
        RelayError::Lost(e)
    }
}

impl Relay {
    /// The relay over `channel` (the decision channel of a fork child just
    /// told [`crate::kernel::ptrace::ForkDecision::Relay`]), with its threads.
    pub fn new(channel: OwnedFd) -> Result<Self, RelayError> {
        let stream = UnixStream::from(channel);
        let mut relay = Relay {
            _registered: crate::kernel::private_fds::register(stream.as_raw_fd()),
            stream,
            threads: Vec::new(),
            exe: Vec::new(),
        };
        relay.refresh_threads()?;
        relay.refresh_exe()?;
        Ok(relay)
    }

    /// Sends `request` and returns the reply's fields, or the child's errno.
    pub fn call(&mut self, request: Message) -> Result<Received, RelayError> {
        request.send(&mut self.stream)?;
        let mut reply = Received::read(&mut self.stream)?;
        match reply.byte()? {
            0 => Ok(reply),
            errno => Err(RelayError::Errno(errno)),
        }
    }

    pub fn owns(&self, tid: i32) -> bool {
        self.threads.iter().any(|(t, _)| *t == tid)
    }

    /// Asks the child for its threads and their names.
    pub fn refresh_threads(&mut self) -> Result<(), RelayError> {
        let mut reply = self.call(Message::new(op::THREADS))?;
        let n = reply.length()?;
        let mut threads = Vec::new();
        for _ in 0..n {
            let tid = reply.int()?;
            let len = reply.length()?;
            threads.push((tid, reply.take(len)?.to_vec()));
        }
        self.threads = threads;
        Ok(())
    }

    /// Asks the child which program it runs (after an exec).
    pub fn refresh_exe(&mut self) -> Result<(), RelayError> {
        self.exe = self.call(Message::new(op::EXEC_FILE))?.rest().to_vec();
        Ok(())
    }

    /// Hands gdb's connection `conn` to the child, which serves gdb itself from
    /// now on (gdb detached this process and follows the child).
    pub fn hand_over(mut self, conn: BorrowedFd<'_>) -> Result<(), RelayError> {
        self.call(Message::new(op::TAKE_OVER))?;
        send_descriptor(&self.stream, conn)?;
        Ok(())
    }

    /// Opens `path` (read-only) in the child, as the child's km would open it
    /// for gdb: its /proc entries show the child's view.
    pub fn open_file(&mut self, path: &[u8]) -> Result<OwnedFd, RelayError> {
        self.call(Message::new(op::OPEN_FILE).bytes(path))?;
        Ok(receive_descriptor(&self.stream)?)
    }

    /// The child's next event, if it has one to report now.
    pub fn next_event(&mut self) -> Result<Option<Event>, RelayError> {
        let mut reply = self.call(Message::new(op::NEXT_EVENT))?;
        match reply.byte()? {
            0 => Ok(None),
            _ => Ok(Some(take_event(&mut reply)?)),
        }
    }

    pub fn read_registers(&mut self, tid: i32) -> Result<Vec<u8>, RelayError> {
        let mut reply = self.call(Message::new(op::READ_REGISTERS).word(tid as u64))?;
        Ok(reply.rest().to_vec())
    }

    pub fn write_registers(&mut self, tid: i32, regs: &[u8]) -> Result<(), RelayError> {
        let m = Message::new(op::WRITE_REGISTERS)
            .word(tid as u64)
            .bytes(regs);
        self.call(m).map(drop)
    }

    /// Reads the child's memory at `addr` into `buf`; returns how much it read.
    pub fn read_memory(
        &mut self,
        tid: i32,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<usize, RelayError> {
        let m = Message::new(op::READ_MEMORY)
            .word(tid as u64)
            .word(addr)
            .word(buf.len() as u64);
        let mut reply = self.call(m)?;
        let got = reply.rest();
        let n = got.len().min(buf.len());
        buf[..n].copy_from_slice(&got[..n]);
        Ok(n)
    }

    pub fn write_memory(&mut self, tid: i32, addr: u64, data: &[u8]) -> Result<(), RelayError> {
        let m = Message::new(op::WRITE_MEMORY)
            .word(tid as u64)
            .word(addr)
            .bytes(data);
        self.call(m).map(drop)
    }

    /// Inserts (`add`) or removes a breakpoint or watchpoint of gdb's `Z` type
    /// `kind` in the child; returns whether the child did.
    pub fn point(&mut self, add: bool, kind: u8, addr: u64, len: u64) -> Result<bool, RelayError> {
        let op = if add {
            op::INSERT_POINT
        } else {
            op::REMOVE_POINT
        };
        let m = Message::new(op).word(kind as u64).word(addr).word(len);
        Ok(self.call(m)?.byte()? != 0)
    }

    /// Stops every thread of the child (another process stopped).
    pub fn pause(&mut self) -> Result<(), RelayError> {
        self.call(Message::new(op::PAUSE)).map(drop)
    }

    /// Kills the child (gdb's `kill`); the channel closes.
    pub fn kill(&mut self) -> Result<(), RelayError> {
        self.call(Message::new(op::KILL)).map(drop)
    }

    /// Lets the child run free, without gdb.
    pub fn detach(&mut self) -> Result<(), RelayError> {
        self.call(Message::new(op::DETACH)).map(drop)
    }

    /// Resumes the child's threads with `actions`; with `lock_others`, only those.
    pub fn resume(
        &mut self,
        actions: &[(i32, Action, Option<i32>)],
        lock_others: bool,
    ) -> Result<(), RelayError> {
        let mut m = Message::new(op::RESUME)
            .word(lock_others as u64)
            .word(actions.len() as u64);
        for &(tid, action, signal) in actions {
            m = m
                .word(tid as u64)
                .word(action_word(action))
                .word(signal.unwrap_or(0) as u64);
        }
        self.call(m).map(drop)
    }
}

/// Sends descriptor `fd` over `stream` with one byte.
pub fn send_descriptor(stream: &UnixStream, fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    sendmsg(
        stream,
        &[io::IoSlice::new(&[0])],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives the descriptor [`send_descriptor`] sent over `stream`.
pub fn receive_descriptor(stream: &UnixStream) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = loop {
        match recvmsg(
            stream.as_fd(),
            &mut [io::IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            got => break got?,
        }
    };
    if got.bytes == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    received.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor came"))
}
