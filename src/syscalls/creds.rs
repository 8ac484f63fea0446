//! Who the process is and how it is treated: user and group ids, supplementary
//! groups, scheduling priority and policy, resource usage and times, prctl and
//! personality. Guest pids and ids are the host's: these go to the host (for the
//! km process, which is the payload's process).

use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::kernel::answers;
use crate::memory::host;

/// Linux's NGROUPS_MAX.
const NGROUPS_MAX: u64 = 65536;

fn ints(nr: libc::c_long, a: &[u64; 6]) -> SysResult {
    host::int_syscall(nr, [a[0], a[1], a[2], a[3]])
}

/// A set*id call on the calling thread's credentials (its host thread's); the
/// ids the landing pad answers in the guest follow.
fn set_ids(ctx: &Ctx<'_>, nr: libc::c_long, a: &[u64; 6]) -> SysResult {
    let result = ints(nr, a);
    answers::publish(ctx.guest, ctx.thread).map_err(|_| Errno::FAULT)?;
    result
}

pub fn setuid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    set_ids(ctx, libc::SYS_setuid, a)
}

pub fn setgid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    set_ids(ctx, libc::SYS_setgid, a)
}

pub fn setreuid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    set_ids(ctx, libc::SYS_setreuid, a)
}

pub fn setregid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    set_ids(ctx, libc::SYS_setregid, a)
}

pub fn setresuid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    set_ids(ctx, libc::SYS_setresuid, a)
}

pub fn setresgid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    set_ids(ctx, libc::SYS_setresgid, a)
}

pub fn setfsuid(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_setfsuid, a)
}

pub fn setfsgid(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_setfsgid, a)
}

fn getres(ctx: &Ctx<'_>, a: &[u64; 6], gid: bool) -> SysResult {
    let ids = host::getres_ids(gid)?;
    for (addr, id) in a[..3].iter().zip(ids) {
        ctx.write_obj(*addr, id)?;
    }
    Ok(0)
}

pub fn getresuid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    getres(ctx, a, false)
}

pub fn getresgid(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    getres(ctx, a, true)
}

pub fn getgroups(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let size = a[0] as i32;
    if size < 0 {
        return Err(Errno::INVAL);
    }
    let groups: Vec<u32> = rustix::process::getgroups()?
        .iter()
        .map(|g| g.as_raw())
        .collect();
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::INVAL);
    }
    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_ne_bytes()).collect();
    ctx.write_bytes(a[1], &bytes)?;
    Ok(groups.len() as u64)
}

pub fn setgroups(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[0] > NGROUPS_MAX {
        return Err(Errno::INVAL);
    }
    let bytes = ctx.read_bytes(a[1], a[0] as usize * 4)?;
    let groups: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes(c.try_into().expect("4 bytes")))
        .collect();
    host::setgroups(&groups)?;
    Ok(0)
}

pub fn getpriority(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_getpriority, a)
}

pub fn setpriority(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_setpriority, a)
}

pub fn sched_get_priority_max(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_sched_get_priority_max, a)
}

pub fn sched_get_priority_min(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_sched_get_priority_min, a)
}

pub fn sched_getscheduler(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ints(libc::SYS_sched_getscheduler, a)
}

/// A pid argument of the sched_* calls: negative is EINVAL before anything else.
fn sched_pid(arg: u64) -> Result<i32, Errno> {
    let pid = arg as i32;
    if pid < 0 { Err(Errno::INVAL) } else { Ok(pid) }
}

/// The priority in a guest `struct sched_param` (NULL is EINVAL, as on Linux).
fn sched_priority(ctx: &Ctx<'_>, addr: u64) -> Result<i32, Errno> {
    if addr == 0 {
        return Err(Errno::INVAL);
    }
    ctx.read_obj(addr)
}

pub fn sched_getparam(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let pid = sched_pid(a[0])?;
    if a[1] == 0 {
        return Err(Errno::INVAL);
    }
    let priority = host::sched_getparam(pid)?;
    ctx.write_obj(a[1], priority)?;
    Ok(0)
}

pub fn sched_setparam(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let pid = sched_pid(a[0])?;
    host::sched_setparam(pid, None, sched_priority(ctx, a[1])?)?;
    Ok(0)
}

pub fn sched_setscheduler(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let pid = sched_pid(a[0])?;
    let policy = a[1] as i32;
    host::sched_setparam(pid, Some(policy), sched_priority(ctx, a[2])?)?;
    Ok(0)
}

pub fn sched_rr_get_interval(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let interval = host::sched_rr_get_interval(sched_pid(a[0])?)?;
    ctx.write_obj(a[1], interval)?;
    Ok(0)
}

pub fn getrusage(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let who = a[0] as i32;
    if ![
        libc::RUSAGE_SELF,
        libc::RUSAGE_CHILDREN,
        libc::RUSAGE_THREAD,
    ]
    .contains(&who)
    {
        return Err(Errno::INVAL);
    }
    if who == libc::RUSAGE_CHILDREN {
        // Children the payload waited for count once their host processes are
        // reaped (`kernel::children`).
        crate::kernel::children::reap_waited();
    }
    let usage = host::getrusage(who)?;
    ctx.write_bytes(a[1], &usage)?;
    Ok(0)
}

pub fn times(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    // The children's times, as for getrusage(RUSAGE_CHILDREN).
    if a[0] != 0 {
        crate::kernel::children::reap_waited();
    }
    let (ticks, tms) = host::times()?;
    if a[0] != 0 {
        ctx.write_bytes(a[0], &tms)?;
    }
    Ok(ticks)
}

/// personality: km runs Linux programs only; asking (0xffffffff) or setting
/// PER_LINUX gives PER_LINUX.
pub fn personality(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    match a[0] as u32 {
        0 | 0xffff_ffff => Ok(0),
        _ => Err(Errno::INVAL),
    }
}

/// prctl: the thread's name (the host thread's, so `ps -L` and /proc show it),
/// and the process-wide settings the host keeps for km's process. Anything that
/// would bind km itself (seccomp, memory map layout) is refused.
pub fn prctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    const PR_SET_PDEATHSIG: u64 = 1;
    const PR_GET_PDEATHSIG: u64 = 2;
    const PR_GET_DUMPABLE: u64 = 3;
    const PR_SET_DUMPABLE: u64 = 4;
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const PR_SET_CHILD_SUBREAPER: u64 = 36;
    const PR_GET_CHILD_SUBREAPER: u64 = 37;
    const PR_SET_NO_NEW_PRIVS: u64 = 38;
    const PR_GET_NO_NEW_PRIVS: u64 = 39;
    const NAME_LEN: usize = 16;
    match a[0] {
        PR_SET_NAME => {
            // Up to 15 bytes before the NUL; a longer name is cut, as on Linux.
            let mut name = Vec::new();
            for i in 0..NAME_LEN as u64 - 1 {
                match ctx.read_obj::<u8>(a[1] + i)? {
                    0 => break,
                    b => name.push(b),
                }
            }
            let name = std::ffi::CString::new(name).expect("NUL stops the copy");
            rustix::thread::set_name(&name)?;
            Ok(0)
        }
        PR_GET_NAME => {
            let name = rustix::thread::name()?;
            let mut bytes = name.as_bytes_with_nul().to_vec();
            bytes.resize(NAME_LEN, 0);
            ctx.write_bytes(a[1], &bytes)?;
            Ok(0)
        }
        PR_GET_PDEATHSIG | PR_GET_CHILD_SUBREAPER => {
            let value = host::prctl_get(a[0] as i32)?;
            ctx.write_obj(a[1], value)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG
        | PR_GET_DUMPABLE
        | PR_SET_DUMPABLE
        | PR_SET_CHILD_SUBREAPER
        | PR_SET_NO_NEW_PRIVS
        | PR_GET_NO_NEW_PRIVS => host::prctl_int(a[0] as i32, a[1]),
        _ => Err(Errno::INVAL),
    }
}
