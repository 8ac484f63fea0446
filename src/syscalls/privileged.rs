//! Calls that need a capability km never grants the payload: setting the system
//! clock (CAP_SYS_TIME), the host or domain name (CAP_SYS_ADMIN) and the root
//! directory (CAP_SYS_CHROOT). A payload is a guest of the host, whatever uid km
//! runs as, so these fail as Linux fails them for a caller without the
//! capability, after the checks Linux makes before the capability's.

use rustix::fs::FileType;
use rustix::io::Errno;

use super::fs::path_target;
use super::{Ctx, SysResult};

/// Linux's `struct timespec` as clock_settime reads it.
fn valid_timespec(ctx: &Ctx<'_>, addr: u64) -> Result<(), Errno> {
    let [_, nsec]: [i64; 2] = ctx.read_obj(addr)?;
    if !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::INVAL);
    }
    Ok(())
}

pub fn clock_settime(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    valid_timespec(ctx, a[1])?;
    if a[0] as i32 != libc::CLOCK_REALTIME {
        return Err(Errno::INVAL);
    }
    Err(Errno::PERM)
}

pub fn settimeofday(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[0] != 0 {
        let [_, usec]: [i64; 2] = ctx.read_obj(a[0])?;
        if !(0..1_000_000).contains(&usec) {
            return Err(Errno::INVAL);
        }
    }
    Err(Errno::PERM)
}

/// sethostname and setdomainname: Linux checks the capability first.
pub fn set_name(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Err(Errno::PERM)
}

/// chroot: the path must reach a directory (ENOENT, ENOTDIR, EFAULT... as Linux)
/// before the capability is checked.
pub fn chroot(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = ctx.read_path(a[0])?;
    let target = path_target(ctx, libc::AT_FDCWD as u64, &path, 0)?;
    let stat = rustix::fs::fstat(&target)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
        return Err(Errno::NOTDIR);
    }
    Err(Errno::PERM)
}
