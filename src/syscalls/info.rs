//! Process identity, time, limits, system information and the thread-state syscalls
//! a single-threaded C runtime makes at start-up.

use rustix::io::Errno;
use rustix::thread::ClockId;
use rustix::time::Timespec;

use super::{Ctx, SysResult};
use crate::guest::limits;
use crate::memory::host;

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;
/// Lowest non-canonical user address: FS and GS bases must stay below it.
const USER_ADDR_LIMIT: u64 = 1 << 47;
const BOUNCE_MAX: u64 = 1 << 20;
const UTSNAME_FIELD: usize = 65;
const NSEC_PER_SEC: i64 = 1_000_000_000;

pub fn arch_prctl(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS => {
            if a[1] >= USER_ADDR_LIMIT {
                return Err(Errno::PERM);
            }
            let vcpu = &ctx.thread.vcpu;
            let set = if a[0] == ARCH_SET_FS {
                vcpu.set_fs_base(a[1])
            } else {
                vcpu.set_gs_base(a[1])
            };
            set.map_err(|_| Errno::INVAL)?;
            Ok(0)
        }
        ARCH_GET_FS | ARCH_GET_GS => {
            let (fs, gs) = ctx.thread.vcpu.segment_bases().map_err(|_| Errno::INVAL)?;
            let base = if a[0] == ARCH_GET_FS { fs } else { gs };
            ctx.write_obj(a[1], base)?;
            Ok(0)
        }
        _ => Err(Errno::INVAL),
    }
}

pub fn uname(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let host = rustix::system::uname();
    let release = [
        host.release().to_bytes(),
        ctx.guest.vm.kvm.backend.release_suffix().as_bytes(),
    ]
    .concat();
    let fields: [&[u8]; 6] = [
        b"kontain-runtime",
        host.nodename().to_bytes(),
        &release,
        host.version().to_bytes(),
        b"kontain_VM",
        host.domainname().to_bytes(),
    ];
    let mut out = vec![0u8; 6 * UTSNAME_FIELD];
    for (i, f) in fields.iter().enumerate() {
        let n = f.len().min(UTSNAME_FIELD - 1);
        out[i * UTSNAME_FIELD..i * UTSNAME_FIELD + n].copy_from_slice(&f[..n]);
    }
    ctx.write_bytes(a[0], &out)?;
    Ok(0)
}

pub fn getpid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::getpid().as_raw_nonzero().get() as u64)
}

pub fn getppid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u64))
}

pub fn getuid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::getuid().as_raw() as u64)
}

pub fn geteuid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::geteuid().as_raw() as u64)
}

pub fn getgid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::getgid().as_raw() as u64)
}

pub fn getegid(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(rustix::process::getegid().as_raw() as u64)
}

pub fn getrandom(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let flags = rustix::rand::GetRandomFlags::from_bits(a[2] as u32).ok_or(Errno::INVAL)?;
    let len = a[1].min(BOUNCE_MAX) as usize;
    ctx.writable(a[0], len)?;
    let mut buf = vec![0u8; len];
    let n = rustix::rand::getrandom(&mut buf, flags)?;
    ctx.write_bytes(a[0], &buf[..n])?;
    Ok(n as u64)
}

pub fn clock_gettime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ctx.write_bytes(a[1], &host::clock(a[0] as i32, false)?)?;
    Ok(0)
}

pub fn clock_getres(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let res = host::clock(a[0] as i32, true)?;
    if a[1] != 0 {
        ctx.write_bytes(a[1], &res)?;
    }
    Ok(0)
}

fn realtime() -> Timespec {
    rustix::time::clock_gettime(rustix::time::ClockId::Realtime)
}

pub fn gettimeofday(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[0] != 0 {
        let now = realtime();
        ctx.write_obj(a[0], [now.tv_sec, now.tv_nsec / 1000])?;
    }
    if a[1] != 0 {
        ctx.write_obj(a[1], [0u32; 2])?;
    }
    Ok(0)
}

pub fn time(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let now = realtime().tv_sec;
    if a[0] != 0 {
        ctx.write_obj(a[0], now)?;
    }
    Ok(now as u64)
}

fn read_timespec(ctx: &Ctx<'_>, addr: u64) -> Result<Timespec, Errno> {
    let [sec, nsec]: [i64; 2] = ctx.read_obj(addr)?;
    if sec < 0 || !(0..NSEC_PER_SEC).contains(&nsec) {
        return Err(Errno::INVAL);
    }
    Ok(Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    })
}

/// Sleeps on `clock` until `deadline` (absolute). A kick that brings no signal for
/// this thread resumes the sleep; a deliverable signal ends it with EINTR, writing
/// the time left to `rem` (when non-zero).
fn sleep_until(ctx: &Ctx<'_>, clock: ClockId, deadline: Timespec, rem: u64) -> SysResult {
    loop {
        match rustix::thread::clock_nanosleep_absolute(clock, &deadline) {
            Ok(()) => return Ok(0),
            Err(Errno::INTR) if ctx.wait_ends() => {
                if rem != 0 {
                    let now = rustix::time::clock_gettime(clock_for_gettime(clock));
                    let left = to_nanos(&deadline).saturating_sub(to_nanos(&now)).max(0);
                    ctx.write_obj(rem, [left / NSEC_PER_SEC, left % NSEC_PER_SEC])?;
                }
                return Err(Errno::INTR);
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn to_nanos(t: &Timespec) -> i64 {
    t.tv_sec
        .saturating_mul(NSEC_PER_SEC)
        .saturating_add(t.tv_nsec)
}

fn from_nanos(n: i64) -> Timespec {
    Timespec {
        tv_sec: n / NSEC_PER_SEC,
        tv_nsec: n % NSEC_PER_SEC,
    }
}

fn clock_for_gettime(clock: ClockId) -> rustix::time::ClockId {
    match clock {
        ClockId::Realtime => rustix::time::ClockId::Realtime,
        ClockId::Boottime => rustix::time::ClockId::Boottime,
        _ => rustix::time::ClockId::Monotonic,
    }
}

/// A relative sleep of `req` on `clock`.
fn sleep_for(ctx: &Ctx<'_>, clock: ClockId, req: &Timespec, rem: u64) -> SysResult {
    let now = rustix::time::clock_gettime(clock_for_gettime(clock));
    sleep_until(
        ctx,
        clock,
        from_nanos(to_nanos(&now).saturating_add(to_nanos(req))),
        rem,
    )
}

pub fn nanosleep(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let req = read_timespec(ctx, a[0])?;
    sleep_for(ctx, ClockId::Monotonic, &req, a[1])
}

pub fn clock_nanosleep(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let clock = match a[0] as i32 {
        libc::CLOCK_REALTIME => ClockId::Realtime,
        libc::CLOCK_MONOTONIC => ClockId::Monotonic,
        libc::CLOCK_BOOTTIME => ClockId::Boottime,
        _ => return Err(Errno::INVAL),
    };
    let req = read_timespec(ctx, a[2])?;
    if a[1] & libc::TIMER_ABSTIME as u64 != 0 {
        return sleep_until(ctx, clock, req, 0);
    }
    sleep_for(ctx, clock, &req, a[3])
}

fn do_prlimit(ctx: &mut Ctx<'_>, resource: u64, new: u64, old: u64) -> SysResult {
    // The kernel takes the resource as 32 bits.
    let resource = resource as u32;
    let new = if new != 0 {
        Some(ctx.read_obj::<[u8; 16]>(new)?)
    } else {
        None
    };
    if old != 0 {
        ctx.writable(old, 16)?;
    }
    let prev = if limits::kept(resource) {
        kept_prlimit(resource, new)?
    } else {
        host::prlimit(resource, new)?
    };
    if old != 0 {
        ctx.write_bytes(old, &prev)?;
    }
    Ok(0)
}

/// prlimit of a limit km keeps for the guest (`guest::limits`): `new` is a
/// `struct rlimit64`; returns the previous one.
fn kept_prlimit(resource: u32, new: Option<[u8; 16]>) -> Result<Vec<u8>, Errno> {
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().expect("8 bytes"));
    let prev = match new {
        Some(n) => limits::set(resource, (word(&n[..8]), word(&n[8..])), may_raise_hard())?,
        None => limits::get(resource).ok_or(Errno::INVAL)?,
    };
    Ok([prev.0.to_ne_bytes(), prev.1.to_ne_bytes()].concat())
}

/// Whether km, and so the payload, may raise a hard limit: CAP_SYS_RESOURCE in
/// km's effective set (Linux's check; a root without it, as in a container, may
/// not).
fn may_raise_hard() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(caps.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & 1 << CAP_SYS_RESOURCE != 0)
}

pub fn prlimit64(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let me = rustix::process::getpid().as_raw_nonzero().get() as u64;
    if a[0] != 0 && a[0] != me {
        return Err(Errno::SRCH);
    }
    do_prlimit(ctx, a[1], a[2], a[3])
}

pub fn getrlimit(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    do_prlimit(ctx, a[0], 0, a[1])
}

pub fn sysinfo(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    ctx.write_bytes(a[0], &host::sysinfo()?)?;
    Ok(0)
}

pub fn sched_yield(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    rustix::thread::sched_yield();
    Ok(0)
}
