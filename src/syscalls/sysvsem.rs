//! System V semaphores: semget, semop, semtimedop, semctl. Sets are the host's
//! (guest pids are host pids), so keys, ids, permissions, sempid and the counts
//! are Linux's own, and so are SEM_UNDO's adjustments: they belong to km's host
//! process, which is the payload's process (its threads share them; a fork child
//! km starts with none; they apply when km exits, however the payload ends).
//! km copies the arguments through its own buffers, in the order Linux reads
//! them, so the errors come out as Linux gives them.
//!
//! A blocking semop is the host's, made on the calling thread only; a kick ends it
//! with EINTR, and it waits again (for what is left of its timeout) unless a
//! signal is due. Linux never restarts semop after a handler, whatever SA_RESTART
//! says, and neither does km.

use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::memory::sysv::{
    self, GETALL, GETNCNT, GETPID, GETVAL, GETZCNT, SEM_INFO, SEM_STAT, SEM_STAT_ANY, SEMBUF_SIZE,
    SEMID_DS_SIZE, SEMINFO_SIZE, SETALL, SETVAL, SemArg,
};
use crate::memory::{self, host};

/// Where `struct seminfo` holds semopm (an int), and `struct semid64_ds`
/// sem_nsems (an unsigned long).
const SEMOPM_AT: usize = 20;
const NSEMS_AT: usize = 80;

pub fn semget(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    host::int_syscall(libc::SYS_semget, [a[0], a[1], a[2], 0])
}

pub fn semop(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    semtimedop(ctx, &[a[0], a[1], a[2], 0, 0, 0])
}

pub fn semtimedop(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, sops, nsops) = (a[0] as i32, a[1], a[2] as u32);
    // SEM_UNDO's adjustments are made as km's process ends (`kernel::children`).
    crate::kernel::children::exit_has_effects();
    let timeout = match a[3] {
        0 => None,
        addr => Some(ctx.read_obj::<[i64; 2]>(addr)?),
    };
    if nsops < 1 || id < 0 {
        return Err(Errno::INVAL);
    }
    if u64::from(nsops) > semopm()? {
        return Err(Errno::TOOBIG);
    }
    let sops = ctx.read_bytes(sops, nsops as usize * SEMBUF_SIZE)?;
    let timeout = match timeout {
        Some([sec, nsec]) if sec < 0 || !(0..1_000_000_000).contains(&nsec) => {
            return Err(Errno::INVAL);
        }
        Some([sec, nsec]) => Some(Duration::new(sec as u64, nsec as u32)),
        None => None,
    };
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        // What is left of the timeout (all of it when the deadline is too far to
        // represent).
        let left = match (deadline, timeout) {
            (Some(d), _) => Some(d.saturating_duration_since(Instant::now())),
            (None, t) => t,
        };
        let ts = left.map(|t| libc::timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as i64,
        });
        match sysv::semtimedop(id, &sops, ts) {
            Err(Errno::INTR) if !ctx.wait_ends() => {}
            r => return r,
        }
    }
}

/// The host's SEMOPM: the most operations one semop may make.
fn semopm() -> Result<u64, Errno> {
    let mut info = [0u8; SEMINFO_SIZE];
    sysv::semctl(0, 0, libc::IPC_INFO, SemArg::Struct(&mut info))?;
    let at = &info[SEMOPM_AT..SEMOPM_AT + 4];
    Ok(i32::from_ne_bytes(at.try_into().expect("4 bytes")).max(0) as u64)
}

pub fn semctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, num, cmd, arg) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3]);
    if id < 0 {
        return Err(Errno::INVAL);
    }
    match cmd {
        libc::IPC_INFO | SEM_INFO => struct_out(ctx, id, num, cmd, arg, SEMINFO_SIZE),
        libc::IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
            struct_out(ctx, id, num, cmd, arg, SEMID_DS_SIZE)
        }
        libc::IPC_SET => {
            let mut ds = ctx.read_bytes(arg, SEMID_DS_SIZE)?;
            sysv::semctl(id, num, cmd, SemArg::Struct(&mut ds))
        }
        libc::IPC_RMID | GETVAL | GETPID | GETNCNT | GETZCNT => {
            sysv::semctl(id, num, cmd, SemArg::Value(0))
        }
        // The value is the argument's int (its low half on x86-64).
        SETVAL => sysv::semctl(id, num, cmd, SemArg::Value(arg as i32)),
        GETALL | SETALL => values(ctx, id, cmd, arg),
        _ => Err(Errno::INVAL),
    }
}

/// A command that writes a `len`-byte structure to `addr`, as Linux does after
/// the command has succeeded.
fn struct_out(ctx: &Ctx<'_>, id: i32, num: i32, cmd: i32, addr: u64, len: usize) -> SysResult {
    let mut buf = vec![0u8; len];
    let r = sysv::semctl(id, num, cmd, SemArg::Struct(&mut buf))?;
    ctx.write_bytes(addr, &buf)?;
    Ok(r)
}

/// GETALL and SETALL: the set's values, as many as IPC_STAT says it has.
fn values(ctx: &Ctx<'_>, id: i32, cmd: i32, addr: u64) -> SysResult {
    let mut ds = [0u8; SEMID_DS_SIZE];
    sysv::semctl(id, 0, libc::IPC_STAT, SemArg::Struct(&mut ds))?;
    let nsems = u64::from_ne_bytes(ds[NSEMS_AT..NSEMS_AT + 8].try_into().expect("8 bytes"));
    let len = usize::try_from(nsems)
        .ok()
        .and_then(|n| n.checked_mul(2))
        .ok_or(Errno::INVAL)?;
    sysv::with_guarded(len, |buf| {
        if cmd == SETALL {
            let src = ctx.readable(addr, len)?;
            memory::copy_to(addr, &src, buf.bytes_mut())?;
            return sysv::semctl(id, 0, cmd, SemArg::Array(buf));
        }
        let r = sysv::semctl(id, 0, cmd, SemArg::Array(buf))?;
        ctx.write_bytes(addr, buf.bytes())?;
        Ok(r)
    })?
}
