//! execve and execveat: the new program is resolved and checked here (so that a
//! missing file, a bad interpreter or a non-executable file is the caller's errno),
//! then `exec::in_place` loads it in a new VM, or `exec::replace` re-executes km
//! on it.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;

use rustix::io::Errno;

use super::{Ctx, Outcome, procrule};
use crate::kernel::exec;
use crate::trace;
use crate::trace::Category;

/// Linux's MAX_ARG_STRLEN (one string) and the total it allows for argv and envp
/// with the default 8 MiB stack (a quarter of it).
const MAX_ARG_STRLEN: usize = 32 * 4096;
const MAX_ARGS_TOTAL: usize = 2 << 20;

/// A NULL-terminated array of string pointers (argv or envp); a null array is empty.
fn string_array(ctx: &Ctx<'_>, mut addr: u64, total: &mut usize) -> Result<Vec<CString>, Errno> {
    let mut out = Vec::new();
    if addr == 0 {
        return Ok(out);
    }
    loop {
        let p: u64 = ctx.read_obj(addr)?;
        if p == 0 {
            return Ok(out);
        }
        let arg = ctx.read_cstring(p, MAX_ARG_STRLEN, Errno::TOOBIG)?;
        *total += arg.as_bytes().len() + 1 + 8;
        if *total > MAX_ARGS_TOTAL {
            return Err(Errno::TOOBIG);
        }
        out.push(arg);
        addr = addr.checked_add(8).ok_or(Errno::FAULT)?;
    }
}

fn do_execve(ctx: &mut Ctx<'_>, path: CString, argv: u64, envp: u64) -> Result<Outcome, Errno> {
    let path = procrule::exec_path(ctx.guest, &path)?;
    let path = CString::new(path).map_err(|_| Errno::INVAL)?;
    let mut total = 0;
    let mut argv = string_array(ctx, argv, &mut total)?;
    if argv.is_empty() {
        // As Linux since 5.18: an empty argv gets an empty argv[0].
        argv.push(CString::default());
    }
    let envp = string_array(ctx, envp, &mut total)?;
    let program = exec::resolve(OsStr::from_bytes(path.as_bytes()), argv).map_err(|e| {
        trace!(Category::Load, "execve {path:?}: {e}");
        e.errno
    })?;
    trace!(
        Category::Load,
        "execve {path:?}: running {:?}", program.path
    );
    if let Some(next) = exec::in_place(ctx.guest, ctx.thread, &program, &envp)? {
        return Ok(Outcome::Exec(next));
    }
    let errno = exec::replace(ctx.guest, ctx.thread, &program, &envp);
    // Past the point of no return (other threads are gone): end the payload, as
    // Linux does when execve fails that late.
    crate::eprintln_whole!(
        "km: {}: re-executing km for {:?}: {errno}",
        ctx.guest.config.name,
        program.path
    );
    Ok(Outcome::Kill(libc::SIGKILL))
}

pub fn execve(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    let path = ctx.read_path(a[0])?;
    do_execve(ctx, path, a[1], a[2])
}

/// execveat: a path relative to a directory descriptor (resolved through
/// /proc/self/fd, then made absolute, as the new km will not have the descriptor),
/// or the descriptor itself with AT_EMPTY_PATH.
pub fn execveat(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    let flags = a[4] as i32;
    if flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::INVAL);
    }
    let empty = flags & libc::AT_EMPTY_PATH != 0 && ctx.read_obj::<u8>(a[1])? == 0;
    let path = if empty {
        CString::default()
    } else {
        ctx.read_path(a[1])?
    };
    if path.as_bytes().first() == Some(&b'/') || a[0] as i32 == libc::AT_FDCWD {
        return do_execve(ctx, path, a[2], a[3]);
    }
    let dir = ctx.fd(a[0])?;
    let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&*dir));
    let joined = if empty {
        std::path::PathBuf::from(via)
    } else {
        std::path::Path::new(&via).join(OsStr::from_bytes(path.as_bytes()))
    };
    if flags & libc::AT_SYMLINK_NOFOLLOW != 0
        && std::fs::symlink_metadata(&joined).is_ok_and(|m| m.file_type().is_symlink())
    {
        return Err(Errno::LOOP);
    }
    let real = std::fs::canonicalize(&joined)
        .map_err(|e| Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
    let real = CString::new(real.as_os_str().as_bytes()).map_err(|_| Errno::INVAL)?;
    do_execve(ctx, real, a[2], a[3])
}
