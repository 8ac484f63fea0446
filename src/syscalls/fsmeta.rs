//! File-system metadata: statfs/fstatfs and extended attributes (`ls -l` reads
//! them for ACLs and security labels, `cp -a` copies them).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use rustix::io::Errno;

use super::fs::{path_target, via_fd};
use super::{Ctx, SysResult};
use crate::memory::host::{self, XattrTarget};

/// Linux's XATTR_SIZE_MAX and XATTR_LIST_MAX.
const XATTR_MAX: u64 = 65536;

pub fn statfs(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let path = ctx.read_path(a[0])?;
    // The /proc rule decides on the object the path reaches (fstatfs takes the
    // O_PATH descriptor it gives).
    let target = path_target(ctx, libc::AT_FDCWD as u64, &path, 0)?;
    let buf = host::statfs(Err(target.as_fd()))?;
    ctx.write_bytes(a[1], &buf)?;
    Ok(0)
}

pub fn fstatfs(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let buf = host::statfs(Err(fd.as_fd()))?;
    ctx.write_bytes(a[1], &buf)?;
    Ok(0)
}

/// The attribute name argument (1..=255 bytes, as Linux checks).
fn xattr_name(ctx: &Ctx<'_>, addr: u64) -> Result<CString, Errno> {
    let name = ctx.read_path(addr).map_err(|e| match e {
        Errno::NOENT | Errno::NAMETOOLONG => Errno::RANGE,
        e => e,
    })?;
    if name.as_bytes().len() > 255 {
        return Err(Errno::RANGE);
    }
    Ok(name)
}

/// Runs an xattr read for `target` and copies the result to the guest buffer
/// `[buf, buf + size)`.
fn read_xattr(
    ctx: &Ctx<'_>,
    target: XattrTarget<'_>,
    name: Option<&CString>,
    buf: u64,
    size: u64,
) -> SysResult {
    let size = size.min(XATTR_MAX) as usize;
    if size > 0 {
        ctx.writable(buf, size)?;
    }
    let (bytes, n) = host::xattr(target, name.map(|n| n.as_c_str()), size)?;
    if size > 0 {
        ctx.write_bytes(buf, &bytes)?;
    }
    Ok(n as u64)
}

/// The object an xattr call on the path at `addr` acts on, as the /proc rule
/// resolves it (so that `/proc/self/fd/N` is the guest's descriptor N, never km's):
/// reached through km's descriptor for it, or for a symlink itself (`follow` off),
/// by the path the rule has vetted.
struct XattrPath {
    _target: OwnedFd,
    path: CString,
    follow: bool,
}

impl XattrPath {
    fn resolve(ctx: &Ctx<'_>, addr: u64, follow: bool) -> Result<XattrPath, Errno> {
        let path = ctx.read_path(addr)?;
        let flags = if follow {
            0
        } else {
            libc::AT_SYMLINK_NOFOLLOW as u64
        };
        let target = path_target(ctx, libc::AT_FDCWD as u64, &path, flags)?;
        let symlink = rustix::fs::fstat(&target)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink());
        if !follow && symlink {
            return Ok(XattrPath {
                _target: target,
                path,
                follow: false,
            });
        }
        let path = CString::new(via_fd(&target)).map_err(|_| Errno::INVAL)?;
        Ok(XattrPath {
            _target: target,
            path,
            follow: true,
        })
    }

    fn target(&self) -> XattrTarget<'_> {
        XattrTarget::Path(&self.path, self.follow)
    }
}

fn path_xattr(ctx: &mut Ctx<'_>, a: &[u64; 6], follow: bool, get: bool) -> SysResult {
    let resolved = XattrPath::resolve(ctx, a[0], follow)?;
    let target = resolved.target();
    if get {
        let name = xattr_name(ctx, a[1])?;
        read_xattr(ctx, target, Some(&name), a[2], a[3])
    } else {
        read_xattr(ctx, target, None, a[1], a[2])
    }
}

pub fn getxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    path_xattr(ctx, a, true, true)
}

pub fn lgetxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    path_xattr(ctx, a, false, true)
}

pub fn listxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    path_xattr(ctx, a, true, false)
}

pub fn llistxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    path_xattr(ctx, a, false, false)
}

pub fn fgetxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    let name = xattr_name(ctx, a[1])?;
    read_xattr(ctx, XattrTarget::Fd(fd.as_fd()), Some(&name), a[2], a[3])
}

pub fn flistxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    read_xattr(ctx, XattrTarget::Fd(fd.as_fd()), None, a[1], a[2])
}

/// Sets (`set`) or removes an attribute of `target`: the name at `name`, the value
/// `[value, value + size)` with `flags`.
fn change(
    ctx: &Ctx<'_>,
    target: XattrTarget<'_>,
    name: u64,
    set: Option<(u64, u64, u64)>,
) -> SysResult {
    let name = xattr_name(ctx, name)?;
    match set {
        Some((value, size, flags)) => {
            if size > XATTR_MAX {
                return Err(Errno::TOOBIG);
            }
            if flags & !((libc::XATTR_CREATE | libc::XATTR_REPLACE) as u64) != 0 {
                return Err(Errno::INVAL);
            }
            let bytes = ctx.read_bytes(value, size as usize)?;
            host::change_xattr(target, &name, Some((&bytes, flags as i32)))?;
        }
        None => host::change_xattr(target, &name, None)?,
    }
    Ok(0)
}

pub fn setxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let resolved = XattrPath::resolve(ctx, a[0], true)?;
    change(ctx, resolved.target(), a[1], Some((a[2], a[3], a[4])))
}

pub fn lsetxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let resolved = XattrPath::resolve(ctx, a[0], false)?;
    change(ctx, resolved.target(), a[1], Some((a[2], a[3], a[4])))
}

pub fn fsetxattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    change(
        ctx,
        XattrTarget::Fd(fd.as_fd()),
        a[1],
        Some((a[2], a[3], a[4])),
    )
}

pub fn removexattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let resolved = XattrPath::resolve(ctx, a[0], true)?;
    change(ctx, resolved.target(), a[1], None)
}

pub fn lremovexattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let resolved = XattrPath::resolve(ctx, a[0], false)?;
    change(ctx, resolved.target(), a[1], None)
}

pub fn fremovexattr(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let fd = ctx.fd(a[0])?;
    change(ctx, XattrTarget::Fd(fd.as_fd()), a[1], None)
}
