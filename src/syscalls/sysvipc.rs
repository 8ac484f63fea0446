//! System V shared memory: shmget, shmat, shmdt, shmctl. Segments are the host's
//! (guest pids are host pids, and a fork child km shares the parent's attachments
//! as Linux's child does), so keys, ids, permissions and IPC_STAT's counts are
//! Linux's own; km only moves an attachment into guest memory and copies the
//! structures through checked guest memory.

use std::sync::Arc;

use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::guest::mm::{PROT_READ, PROT_WRITE, SegmentRequest};
use crate::kernel::lock;
use crate::memory::{PAGE_SIZE, SysvSegment, host};

/// Size of `struct shmid_ds` (IPC_STAT, SHM_STAT, IPC_SET).
const SHMID_DS_SIZE: usize = 112;
/// Size of `struct shminfo` (IPC_INFO).
const SHMINFO_SIZE: usize = 72;
/// Size of `struct shm_info` (SHM_INFO).
const SHM_INFO_SIZE: usize = 48;
// Linux's shmctl commands the libc crate does not name.
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;

pub fn shmget(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    host::int_syscall(
        libc::SYS_shmget,
        [a[0] as i32 as u64, a[1], a[2] as i32 as u64, 0],
    )
}

pub fn shmat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, addr, flags) = (a[0] as i32, a[1], a[2] as i32);
    // Attachments are dropped as km's process ends (`kernel::children`).
    crate::kernel::children::exit_has_effects();
    let known = libc::SHM_RDONLY | libc::SHM_RND | libc::SHM_REMAP | libc::SHM_EXEC;
    if id < 0 || flags & !known != 0 {
        return Err(Errno::INVAL);
    }
    let at = match addr {
        0 if flags & libc::SHM_REMAP != 0 => return Err(Errno::INVAL),
        0 => None,
        addr if flags & libc::SHM_RND != 0 => Some(addr & !(PAGE_SIZE - 1)),
        addr if addr % PAGE_SIZE != 0 => return Err(Errno::INVAL),
        addr => Some(addr),
    };
    let readonly = flags & libc::SHM_RDONLY != 0;
    let segment = SysvSegment::attach(id, readonly)?;
    let prot = if readonly {
        PROT_READ
    } else {
        PROT_READ | PROT_WRITE
    } | if flags & libc::SHM_EXEC != 0 {
        libc::PROT_EXEC
    } else {
        0
    };
    let name: Arc<str> = Arc::from(format!("/SYSV{id:08x} (deleted)"));
    let vm = &ctx.guest.vm;
    let req = SegmentRequest {
        at,
        len: segment.guest_len(),
        prot,
        remap: flags & libc::SHM_REMAP != 0,
        name,
    };
    lock(&ctx.guest.mm).attach_segment(vm, req, |range| vm.mem.place_sysv(range, segment))
}

pub fn shmdt(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let mut mm = lock(&ctx.guest.mm);
    let range = mm.segment_at(a[0]).ok_or(Errno::INVAL)?;
    mm.munmap(&ctx.guest.vm, range)?;
    Ok(0)
}

pub fn shmctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    // IPC_64 is implied on x86-64, where Linux refuses it in cmd (EINVAL below).
    let (id, cmd, buf) = (a[0] as i32, a[1] as i32, a[2]);
    let len = match cmd {
        libc::IPC_RMID | libc::SHM_LOCK | libc::SHM_UNLOCK => 0,
        libc::IPC_INFO => SHMINFO_SIZE,
        SHM_INFO => SHM_INFO_SIZE,
        libc::IPC_SET | libc::IPC_STAT | SHM_STAT | SHM_STAT_ANY => SHMID_DS_SIZE,
        _ => return Err(Errno::INVAL),
    };
    if cmd == libc::IPC_SET {
        let ds = ctx.read_bytes(buf, len)?;
        return Ok(host::shmctl(id, cmd, ds)?.0);
    }
    if len > 0 {
        ctx.writable(buf, len)?;
    }
    let (r, out) = host::shmctl(id, cmd, vec![0u8; len])?;
    if len > 0 {
        ctx.write_bytes(buf, &out)?;
    }
    Ok(r)
}
