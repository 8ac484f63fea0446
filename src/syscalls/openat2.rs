//! openat2(dirfd, path, how, size): `struct open_how` checked as Linux checks it
//! (its size, trailing bytes, unknown flags and resolve bits, the mode), then the
//! open openat makes (`fs::open_path`: the /proc rule, the descriptor table) with
//! the RESOLVE_* flags, which the host enforces.

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{Ctx, SysResult, fs};
use crate::memory::PAGE_SIZE;

/// `struct open_how`'s first published size (flags, mode, resolve).
const OPEN_HOW_SIZE_VER0: u64 = 24;
/// Linux's VALID_OPEN_FLAGS and O_PATH_FLAGS.
const VALID_OPEN_FLAGS: u64 = 0o37777703;
const O_PATH_FLAGS: u64 =
    (libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_PATH | libc::O_CLOEXEC) as u64;
/// O_TMPFILE without O_DIRECTORY (Linux's __O_TMPFILE).
const O_TMPFILE_BIT: u64 = 0o20000000;
/// Every RESOLVE_* flag Linux knows.
const VALID_RESOLVE: u64 = 0x3f;

pub fn openat2(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (dir, path, how, size) = (a[0], a[1], a[2], a[3]);
    if size < OPEN_HOW_SIZE_VER0 {
        return Err(Errno::INVAL);
    }
    if size > PAGE_SIZE {
        return Err(Errno::TOOBIG);
    }
    let bytes = ctx.read_bytes(how, size as usize)?;
    if bytes[OPEN_HOW_SIZE_VER0 as usize..].iter().any(|&b| b != 0) {
        return Err(Errno::TOOBIG);
    }
    let field = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (flags, mode, resolve) = (field(0), field(1), field(2));
    check(flags, mode, resolve)?;
    let path = ctx.read_path(path)?;
    let flags = OFlags::from_bits_retain(flags as u32);
    let mode = Mode::from_raw_mode(mode as u32);
    let resolve = ResolveFlags::from_bits_retain(resolve);
    fs::open_path(ctx, dir, &path, flags, mode, resolve)
}

/// Linux's build_open_flags checks: openat2 refuses what openat ignores.
fn check(flags: u64, mode: u64, resolve: u64) -> Result<(), Errno> {
    let flags = flags & !(libc::O_CLOEXEC as u64);
    if flags & !VALID_OPEN_FLAGS != 0 || resolve & !VALID_RESOLVE != 0 {
        return Err(Errno::INVAL);
    }
    let scoped = ResolveFlags::BENEATH.bits() | ResolveFlags::IN_ROOT.bits();
    if resolve & scoped == scoped {
        return Err(Errno::INVAL);
    }
    let creates = flags & (libc::O_CREAT as u64 | O_TMPFILE_BIT) != 0;
    if (creates && mode & !0o7777 != 0) || (!creates && mode != 0) {
        return Err(Errno::INVAL);
    }
    if flags & O_TMPFILE_BIT != 0 {
        let mask = O_TMPFILE_BIT | libc::O_DIRECTORY as u64 | libc::O_CREAT as u64;
        let writes = flags & libc::O_ACCMODE as u64 != 0;
        if flags & mask != libc::O_TMPFILE as u64 || !writes {
            return Err(Errno::INVAL);
        }
    }
    if flags & libc::O_PATH as u64 != 0 && flags & !O_PATH_FLAGS != 0 {
        return Err(Errno::INVAL);
    }
    let cached = resolve & ResolveFlags::CACHED.bits() != 0;
    if cached && flags & (libc::O_TRUNC as u64 | libc::O_CREAT as u64 | O_TMPFILE_BIT) != 0 {
        return Err(Errno::AGAIN);
    }
    Ok(())
}
