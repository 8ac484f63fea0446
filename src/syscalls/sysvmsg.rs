//! System V message queues: msgget, msgsnd, msgrcv, msgctl. Queues are the
//! host's (guest pids are host pids: msg_lspid and msg_lrpid are the payload's),
//! so keys, ids, permissions, limits and the flags (IPC_NOWAIT, MSG_NOERROR,
//! MSG_EXCEPT, MSG_COPY) mean what they mean on Linux. A message goes through a
//! km buffer: `long mtype` and the text, bounded by the host's MSGMAX before any
//! guest memory is read.
//!
//! A blocking msgsnd or msgrcv is the host's, on the calling thread only; a kick
//! ends it with EINTR and the dispatcher makes it again unless a signal is due.
//! After a handler it is EINTR, as on Linux (never restarted).

use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::memory::host;
use crate::memory::sysv::{self, MSG_INFO, MSG_STAT, MSG_STAT_ANY, MSGINFO_SIZE, MSQID_DS_SIZE};

/// Where `struct msginfo` holds msgmax (an int).
const MSGMAX_AT: usize = 8;
/// Size of a message's type (`long mtype`), before its text.
const MTYPE_SIZE: u64 = 8;

pub fn msgget(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    host::int_syscall(libc::SYS_msgget, [a[0], a[1], 0, 0])
}

/// The host's MSGMAX: the longest message text.
fn msgmax() -> Result<u64, Errno> {
    let mut info = [0u8; MSGINFO_SIZE];
    sysv::msgctl(0, libc::IPC_INFO, &mut info)?;
    let at = &info[MSGMAX_AT..MSGMAX_AT + 4];
    Ok(i32::from_ne_bytes(at.try_into().expect("4 bytes")).max(0) as u64)
}

pub fn msgsnd(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, msgp, size, flags) = (a[0] as i32, a[1], a[2], a[3] as i32);
    let mtype: i64 = ctx.read_obj(msgp)?;
    if size > msgmax()? || id < 0 || mtype < 1 {
        return Err(Errno::INVAL);
    }
    let msg = ctx.read_bytes(msgp, (MTYPE_SIZE + size) as usize)?;
    sysv::msgsnd(id, &msg, flags)
}

pub fn msgrcv(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, msgp, size, msgtyp, flags) = (a[0] as i32, a[1], a[2], a[3] as i64, a[4] as i32);
    if id < 0 || (size as i64) < 0 {
        return Err(Errno::INVAL);
    }
    // No message is longer than MSGMAX (unless it was lowered since one was
    // sent: that one does not fit, E2BIG as for a short buffer).
    let text = size.min(msgmax()?);
    sysv::with_guarded((MTYPE_SIZE + text) as usize, |buf| {
        let n = sysv::msgrcv(id, buf, msgtyp, flags)?;
        // As on Linux, a message received into memory the payload cannot write is
        // gone, and the call is EFAULT.
        let got = buf
            .bytes()
            .get(..(MTYPE_SIZE + n) as usize)
            .ok_or(Errno::FAULT)?;
        ctx.write_bytes(msgp, got)?;
        Ok(n)
    })?
}

pub fn msgctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, cmd, addr) = (a[0] as i32, a[1] as i32, a[2]);
    if id < 0 || cmd < 0 {
        return Err(Errno::INVAL);
    }
    let len = match cmd {
        libc::IPC_INFO | MSG_INFO => MSGINFO_SIZE,
        libc::IPC_STAT | MSG_STAT | MSG_STAT_ANY => MSQID_DS_SIZE,
        libc::IPC_SET => {
            let mut ds = ctx.read_bytes(addr, MSQID_DS_SIZE)?;
            return sysv::msgctl(id, cmd, &mut ds);
        }
        libc::IPC_RMID => return sysv::msgctl(id, cmd, &mut []),
        _ => return Err(Errno::INVAL),
    };
    let mut buf = vec![0u8; len];
    let r = sysv::msgctl(id, cmd, &mut buf)?;
    ctx.write_bytes(addr, &buf)?;
    Ok(r)
}
