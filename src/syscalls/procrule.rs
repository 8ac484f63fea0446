//! The one rule for /proc: a path the guest (or gdb) names is resolved on the host
//! to the object it lands on, and what the guest gets there is decided on that
//! object, never on the path's spelling.
//!
//! An object in procfs is placed by its own path (`/proc/self/fd/N` of the O_PATH
//! descriptor, which the kernel writes as `/proc/<pid>/...` however the guest got
//! there). The payload's pid is km's, so km's own `/proc/<pid>` and its tasks serve
//! the guest's view (generated files, the guest's descriptors and threads, a few
//! harmless host files) and refuse everything else with EACCES; another km's
//! `/proc/<pid>` shows only harmless files; other processes pass through.
//!
//! Paths are first opened by the host without magic links (one call); only one that
//! lands in procfs, crosses a magic link (`fd/N`, `exe`, `cwd`, ...) or fails near
//! /proc is walked component by component here, with magic links replaced by what
//! they mean for the guest.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::procfs::{self, SelfPath};
use crate::kernel::lock;
use crate::kernel::process::{Guest, Thread};

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// Linux's MAXSYMLINKS: symlinks followed in one resolution.
const MAX_LINKS: u32 = 40;

/// Files of km's own /proc/<pid> passed through: they describe the payload as well
/// as km (ids, mounts, scheduling) and reveal nothing of km's memory.
const OWN_HARMLESS: &[&[u8]] = &[
    b"",
    b"task",
    b"fd",
    b"fdinfo",
    b"statm",
    b"comm",
    b"mountinfo",
    b"mounts",
    b"mountstats",
    b"cgroup",
    b"cwd",
    b"root",
    b"oom_score",
    b"oom_score_adj",
    b"oom_adj",
    b"io",
    b"sched",
    b"schedstat",
    b"cpuset",
    b"loginuid",
    b"sessionid",
    b"uid_map",
    b"gid_map",
    b"setgroups",
    b"timerslack_ns",
    b"children",
    b"net",
];

/// What another payload may see of a km process: what `ps` reads.
const OTHER_KM_HARMLESS: &[&[u8]] = &[b"", b"task", b"cmdline", b"stat", b"status", b"comm"];

/// What the guest gets at a resolved path.
pub enum Access {
    /// The host object itself.
    Host,
    /// The guest's view in place of the host's file.
    Serve(SelfPath),
}

/// A resolved path: an O_PATH descriptor of the host object, and what the guest gets.
pub struct Resolved {
    pub fd: OwnedFd,
    pub access: Access,
}

/// Whose /proc/<pid> directory an object is in.
enum Whose<'a> {
    /// Not under a /proc/<pid> (the procfs root, /proc/meminfo, ...).
    Nobody,
    /// The payload (km's pid or a guest thread): the rest of the path, below any
    /// `task/<tid>/`.
    Payload(&'a [u8]),
    /// Another km (the rest of the path).
    OtherKm(&'a [u8]),
    /// One of km's own threads that runs no guest code.
    KmThread,
    /// Any other process.
    Other,
}

/// Resolves `path` (relative to `dir`; the last component followed if `follow`).
/// An empty path is the object `dir` itself.
pub fn resolve(
    guest: &Guest,
    dir: BorrowedFd<'_>,
    path: &CStr,
    follow: bool,
) -> Result<Resolved, Errno> {
    if path.is_empty() {
        let fd = rustix::fs::openat(dir, c".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .or_else(|_| rustix::io::fcntl_dupfd_cloexec(dir, 0))?;
        let access = classify(guest, fd.as_fd())?;
        return Ok(Resolved { fd, access });
    }
    match outside_proc(dir, path, follow)? {
        Some(fd) => Ok(Resolved {
            fd,
            access: Access::Host,
        }),
        None => walk(guest, dir, path.to_bytes(), follow),
    }
}

/// The host's own resolution of `path` when it lands outside procfs without
/// crossing a magic link (`None`: it must be walked here).
fn outside_proc(dir: BorrowedFd<'_>, path: &CStr, follow: bool) -> Result<Option<OwnedFd>, Errno> {
    let nofollow = if follow {
        OFlags::empty()
    } else {
        OFlags::NOFOLLOW
    };
    let flags = OFlags::PATH | OFlags::CLOEXEC | nofollow;
    match rustix::fs::openat2(dir, path, flags, Mode::empty(), ResolveFlags::NO_MAGICLINKS) {
        Ok(fd) if !in_procfs(fd.as_fd()) => Ok(Some(fd)),
        Ok(_) | Err(Errno::LOOP) => Ok(None),
        Err(e) if !near_proc(dir, path) => Err(e),
        Err(_) => Ok(None),
    }
}

/// The program execve runs for `path`: the path itself when it reaches no /proc,
/// the payload's program for its /proc/<pid>/exe, the object's own path when the
/// way there crossed /proc (its magic links mean something else to the new km);
/// nothing in procfs runs.
pub fn exec_path(guest: &Guest, path: &CStr) -> Result<Vec<u8>, Errno> {
    if outside_proc(rustix::fs::CWD, path, true)?.is_some() {
        return Ok(path.to_bytes().to_vec());
    }
    let found = walk(guest, rustix::fs::CWD, path.to_bytes(), true)?;
    match found.access {
        Access::Host if !in_procfs(found.fd.as_fd()) => host_path(found.fd.as_fd()),
        Access::Serve(SelfPath::Exe) => Ok(procfs::exe(guest)),
        Access::Host | Access::Serve(_) => Err(Errno::ACCESS),
    }
}

/// Opens `path` for the guest with `flags` (O_CLOEXEC always on the host side), as
/// `thread` (if any) sees its /proc.
pub fn open(
    guest: &Guest,
    thread: Option<&Thread>,
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let (flags, mode) = as_open_would(flags, mode);
    let how = flags | OFlags::CLOEXEC;
    let host_error = match rustix::fs::openat2(dir, path, how, mode, ResolveFlags::NO_MAGICLINKS) {
        Ok(fd) if !in_procfs(fd.as_fd()) => return Ok(fd),
        // Opened without reading anything; dropped, and decided below.
        Ok(_) | Err(Errno::LOOP) => None,
        Err(e) if !near_proc(dir, path) => return Err(e),
        Err(e) => Some(e),
    };
    // A path the host could not open and the walk finds nothing at either: the
    // host's reason (EROFS, EACCES, ...) is the one Linux would give.
    let found = match resolve(guest, dir, path, !flags.contains(OFlags::NOFOLLOW)) {
        Err(Errno::NOENT) if flags.contains(OFlags::CREATE) => {
            return create_below(guest, dir, path, how, mode);
        }
        found => found.map_err(|e| host_error.unwrap_or(e))?,
    };
    if flags.contains(OFlags::CREATE | OFlags::EXCL) {
        return Err(Errno::EXIST);
    }
    match found.access {
        Access::Serve(SelfPath::Fd(_)) if flags.contains(OFlags::PATH) => Ok(found.fd),
        Access::Serve(view) => procfs::open_view(guest, thread, &view, flags),
        Access::Host if flags.contains(OFlags::PATH) => Ok(found.fd),
        Access::Host if is_symlink(found.fd.as_fd()) => Err(Errno::LOOP),
        Access::Host => reopen(found.fd.as_fd(), flags - OFlags::CREATE),
    }
}

/// [`open`] for openat2, with the payload's RESOLVE_* flags (`resolve`, not empty),
/// which the host enforces on its own resolution; km adds RESOLVE_NO_MAGICLINKS
/// (km's magic links are not the payload's). An object in procfs reached that way
/// crossed no magic link: the guest gets its view of it, found by the object's own
/// path. A path the host cannot resolve (a loop, or near /proc) but the /proc walk
/// can crossed one of the payload's magic links: ELOOP under NO_MAGICLINKS or
/// NO_SYMLINKS, EXDEV under BENEATH or IN_ROOT (Linux's scoped lookups refuse magic
/// links), else opened as [`open`] does, NO_XDEV checked on the object's mount.
pub fn open_resolving(
    guest: &Guest,
    thread: Option<&Thread>,
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: OFlags,
    mode: Mode,
    rflags: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let how = flags | OFlags::CLOEXEC;
    let host_error =
        match rustix::fs::openat2(dir, path, how, mode, rflags | ResolveFlags::NO_MAGICLINKS) {
            Ok(fd) if !in_procfs(fd.as_fd()) => return Ok(fd),
            Ok(fd) => {
                let at = CString::new(host_path(fd.as_fd())?).map_err(|_| Errno::INVAL)?;
                drop(fd);
                return open(guest, thread, rustix::fs::CWD, &at, flags, mode);
            }
            Err(e) if e == Errno::LOOP || (e == Errno::NOENT && near_proc(dir, path)) => e,
            Err(e) => return Err(e),
        };
    if resolve(guest, dir, path, !flags.contains(OFlags::NOFOLLOW)).is_err() {
        return Err(host_error);
    }
    if rflags.intersects(ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_SYMLINKS) {
        return Err(Errno::LOOP);
    }
    if rflags.intersects(ResolveFlags::BENEATH | ResolveFlags::IN_ROOT) {
        return Err(Errno::XDEV);
    }
    let fd = open(guest, thread, dir, path, flags, mode)?;
    if rflags.contains(ResolveFlags::NO_XDEV) && mount_id(fd.as_fd())? != mount_id(dir)? {
        return Err(Errno::XDEV);
    }
    Ok(fd)
}

/// The id of the mount `fd`'s object is on.
fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let flags = rustix::fs::AtFlags::EMPTY_PATH;
    Ok(rustix::fs::statx(fd, c"", flags, rustix::fs::StatxFlags::MNT_ID)?.stx_mnt_id)
}

/// Creates the file `path` names (its last component missing) in the directory the
/// rest of it resolves to, as O_CREAT does through a path with magic links.
fn create_below(
    guest: &Guest,
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let bytes = path.to_bytes();
    let (parent, name) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &bytes[1..]),
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&b"."[..], bytes),
    };
    if name.is_empty() {
        return Err(Errno::ISDIR);
    }
    let parent = CString::new(parent).map_err(|_| Errno::INVAL)?;
    let found = resolve(guest, dir, &parent, true)?;
    if !matches!(found.access, Access::Host) || in_procfs(found.fd.as_fd()) {
        return Err(Errno::ACCESS);
    }
    let created = rustix::fs::openat2(&found.fd, name, flags, mode, ResolveFlags::NO_MAGICLINKS)?;
    // A symlink put there meanwhile may lead into /proc: nothing there is created.
    if in_procfs(created.as_fd()) {
        return Err(Errno::ACCESS);
    }
    Ok(created)
}

/// What readlink gives at a resolved path (EINVAL for what is no symlink).
pub fn link_text(guest: &Guest, found: &Resolved) -> Result<Vec<u8>, Errno> {
    match &found.access {
        Access::Serve(SelfPath::Exe) => Ok(procfs::exe(guest)),
        Access::Serve(SelfPath::Fd(n)) => procfs::fd_target(guest, *n),
        Access::Host if is_symlink(found.fd.as_fd()) => {
            Ok(rustix::fs::readlinkat(&found.fd, c"", Vec::new())?.into_bytes())
        }
        Access::Serve(_) | Access::Host => Err(Errno::INVAL),
    }
}

/// The flags and mode open(2) goes on with (openat2 refuses what open ignores):
/// unknown flags dropped, only the path flags with O_PATH, the mode only when a
/// file may be created.
fn as_open_would(flags: OFlags, mode: Mode) -> (OFlags, Mode) {
    /// Linux's VALID_OPEN_FLAGS and O_PATH_FLAGS.
    const VALID: u32 = 0o37777703;
    let path_flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::PATH | OFlags::CLOEXEC;
    let mut flags = OFlags::from_bits_retain(flags.bits() & VALID);
    if flags.contains(OFlags::PATH) {
        flags &= path_flags;
    }
    let creates = flags.contains(OFlags::CREATE) || flags.contains(OFlags::TMPFILE);
    let mode = if creates {
        Mode::from_raw_mode(mode.as_raw_mode() & 0o7777)
    } else {
        Mode::empty()
    };
    (flags, mode)
}

/// A new open file for the object behind O_PATH descriptor `fd`.
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlags) -> Result<OwnedFd, Errno> {
    let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::open(via, flags | OFlags::CLOEXEC, Mode::empty())
}

fn in_procfs(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type == PROC_SUPER_MAGIC)
}

fn is_symlink(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Symlink)
}

/// Whether a failed host resolution may have had the guest's /proc in the way (a
/// guest descriptor number that km does not have): the path mentions it, is in
/// /dev (whose `fd`, `stdin`, `stdout` and `stderr` are symlinks to
/// /proc/self/fd: bash's process substitution hands programs `/dev/fd/63`), or it
/// is relative to a directory in procfs. An absolute path starts at km's root,
/// never in procfs (km does not chroot), so its failure costs no look at `dir`:
/// a program searching its paths (python's modules, gcc's headers) fails
/// mostly on absolute ones.
fn near_proc(dir: BorrowedFd<'_>, path: &CStr) -> bool {
    let path = path.to_bytes();
    path.windows(4).any(|w| w == b"proc")
        || path.starts_with(b"/dev/")
        || (!path.starts_with(b"/")
            && rustix::fs::openat(dir, c".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
                .is_ok_and(|d| in_procfs(d.as_fd())))
}

/// The path the kernel gives for the object behind `fd`.
fn host_path(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::readlink(via, Vec::new())?.into_bytes())
}

/// Walks `path` one component at a time from `dir`.
fn walk(guest: &Guest, dir: BorrowedFd<'_>, path: &[u8], follow: bool) -> Result<Resolved, Errno> {
    let mut cur = start(dir, path)?;
    let mut todo = components(path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        let last = todo.is_empty();
        let (mut next, view) = match guest_fd_dir(guest, cur.as_fd())? {
            Some(info) => guest_fd_entry(guest, &name, info, last && !follow)?,
            None => (step(cur.as_fd(), &name)?, None),
        };
        if view.is_none() && is_symlink(next.as_fd()) && (!last || follow) {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP);
            }
            match link_target(guest, cur.as_fd(), &name, next.as_fd())? {
                Jump::Object(object) => next = object,
                Jump::Text(target) => {
                    if target.first() == Some(&b'/') {
                        cur = start(dir, b"/")?;
                    }
                    todo.extend(components(&target));
                    continue;
                }
            }
        }
        if last {
            let access = match view {
                Some(view) => Access::Serve(view),
                None => classify(guest, next.as_fd())?,
            };
            return Ok(Resolved { fd: next, access });
        }
        cur = next;
    }
    // Only "/" or "." and the like: the start itself.
    let access = classify(guest, cur.as_fd())?;
    Ok(Resolved { fd: cur, access })
}

/// Where a walk of `path` starts: the root for an absolute path, else `dir`.
fn start(dir: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
    let (at, name) = if path.first() == Some(&b'/') {
        (rustix::fs::CWD, c"/")
    } else {
        (dir, c".")
    };
    rustix::fs::openat(at, name, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
}

/// The components of `path`, last first (a stack to pop).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// One component below `dir`, not following it and crossing no magic link.
fn step(dir: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat2(dir, name, flags, Mode::empty(), ResolveFlags::NO_MAGICLINKS)
}

/// Where following a symlink leads.
enum Jump {
    /// On to this path.
    Text(Vec<u8>),
    /// To this object (another process's magic link, followed by the host).
    Object(OwnedFd),
}

/// Where symlink `link` (entry `name` of `dir`) leads: the payload's magic links
/// (`exe`, `cwd`, `root`) to what they mean for the guest; another km's and the
/// payload's other ones (namespaces, map_files) are refused.
fn link_target(
    guest: &Guest,
    dir: BorrowedFd<'_>,
    name: &[u8],
    link: BorrowedFd<'_>,
) -> Result<Jump, Errno> {
    if in_procfs(link) {
        match whose(guest, &host_path(link)?)? {
            Whose::Payload(b"exe") => return Ok(Jump::Text(procfs::exe(guest))),
            Whose::Payload(b"cwd") => {
                return Ok(Jump::Text(
                    rustix::process::getcwd(Vec::new())?.into_bytes(),
                ));
            }
            Whose::Payload(b"root") => return Ok(Jump::Text(b"/".to_vec())),
            Whose::Payload(_) | Whose::OtherKm(_) | Whose::KmThread => return Err(Errno::ACCESS),
            Whose::Other => {
                let flags = OFlags::PATH | OFlags::CLOEXEC;
                return Ok(Jump::Object(rustix::fs::openat(
                    dir,
                    name,
                    flags,
                    Mode::empty(),
                )?));
            }
            Whose::Nobody => {}
        }
    }
    Ok(Jump::Text(
        rustix::fs::readlinkat(link, c"", Vec::new())?.into_bytes(),
    ))
}

/// Whether `dir` is the payload's `fd` (`Some(false)`) or `fdinfo` (`Some(true)`)
/// directory, whose entries are named by guest descriptor numbers.
fn guest_fd_dir(guest: &Guest, dir: BorrowedFd<'_>) -> Result<Option<bool>, Errno> {
    if !in_procfs(dir) {
        return Ok(None);
    }
    Ok(match whose(guest, &host_path(dir)?)? {
        Whose::Payload(b"fd") => Some(false),
        Whose::Payload(b"fdinfo") => Some(true),
        _ => None,
    })
}

/// Entry `name` of the payload's fd (or fdinfo, with `info`) directory: the guest
/// descriptor's object, or with `link` the symlink itself (read as the guest's).
fn guest_fd_entry(
    guest: &Guest,
    name: &[u8],
    info: bool,
    link: bool,
) -> Result<(OwnedFd, Option<SelfPath>), Errno> {
    let n: i32 = std::str::from_utf8(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n >= 0)
        .ok_or(Errno::NOENT)?;
    let host = lock(&guest.fds).get(n).map_err(|_| Errno::NOENT)?;
    let raw = host.as_raw_fd();
    if info {
        let via = format!("/proc/self/fdinfo/{raw}");
        let fd = rustix::fs::open(via, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        return Ok((fd, None));
    }
    if link {
        let via = format!("/proc/self/fd/{raw}");
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(via, flags, Mode::empty())?;
        return Ok((fd, Some(SelfPath::Fd(n))));
    }
    Ok((rustix::io::fcntl_dupfd_cloexec(&*host, 0)?, None))
}

/// What the guest gets at the object behind `fd`, decided by where it is.
fn classify(guest: &Guest, fd: BorrowedFd<'_>) -> Result<Access, Errno> {
    if !in_procfs(fd) {
        return Ok(Access::Host);
    }
    match whose(guest, &host_path(fd)?)? {
        Whose::Nobody | Whose::Other => Ok(Access::Host),
        Whose::Payload(rest) => payload_file(rest),
        Whose::OtherKm(rest) => other_km_file(rest),
        Whose::KmThread => Err(Errno::NOENT),
    }
}

/// The payload's own file `rest` (below /proc/<pid>/ or its task/<tid>/).
fn payload_file(rest: &[u8]) -> Result<Access, Errno> {
    let view = match rest {
        b"exe" => SelfPath::Exe,
        b"maps" => SelfPath::Maps,
        b"smaps" => SelfPath::Smaps,
        b"auxv" => SelfPath::Auxv,
        b"cmdline" => SelfPath::Cmdline,
        b"environ" => SelfPath::Environ,
        b"status" => SelfPath::Status,
        b"stat" => SelfPath::Stat,
        b"limits" => SelfPath::Limits,
        _ if harmless(rest) => return Ok(Access::Host),
        _ => return Err(Errno::ACCESS),
    };
    Ok(Access::Serve(view))
}

fn harmless(rest: &[u8]) -> bool {
    OWN_HARMLESS.contains(&rest)
        || rest.starts_with(b"net/")
        || rest
            .strip_prefix(b"fdinfo/")
            .is_some_and(|n| n.iter().all(u8::is_ascii_digit))
}

/// Another km's file `rest`: only what `ps` shows.
fn other_km_file(rest: &[u8]) -> Result<Access, Errno> {
    let below_task = match rest.strip_prefix(b"task/") {
        Some(t) => t.splitn(2, |&b| b == b'/').nth(1).unwrap_or(b""),
        None => rest,
    };
    if OTHER_KM_HARMLESS.contains(&below_task) {
        Ok(Access::Host)
    } else {
        Err(Errno::ACCESS)
    }
}

/// Places a procfs path (`/proc/<pid>/...`).
fn whose<'a>(guest: &Guest, path: &'a [u8]) -> Result<Whose<'a>, Errno> {
    let Some(below) = path.strip_prefix(b"/proc/") else {
        return Ok(Whose::Nobody);
    };
    let (pid, rest) = split_first(below);
    let Some(pid) = number(pid) else {
        return Ok(Whose::Nobody);
    };
    let own = rustix::process::getpid().as_raw_nonzero().get();
    if pid == own || guest.thread(pid).is_some() {
        return payload_rest(guest, rest);
    }
    if is_km_thread(pid) {
        return Ok(Whose::KmThread);
    }
    if is_km(pid) {
        return Ok(Whose::OtherKm(rest));
    }
    Ok(Whose::Other)
}

/// The payload's path below /proc/<pid>/, with a `task/<tid>/` of a guest thread
/// taken off (km's other threads are not there for the guest).
fn payload_rest<'a>(guest: &Guest, rest: &'a [u8]) -> Result<Whose<'a>, Errno> {
    let Some(task) = rest.strip_prefix(b"task/") else {
        return Ok(Whose::Payload(rest));
    };
    let (tid, below) = split_first(task);
    match number(tid) {
        Some(tid) if guest.thread(tid).is_some() => Ok(Whose::Payload(below)),
        _ => Err(Errno::NOENT),
    }
}

fn split_first(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().position(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, b""),
    }
}

fn number(name: &[u8]) -> Option<i32> {
    std::str::from_utf8(name)
        .ok()?
        .parse()
        .ok()
        .filter(|n| *n > 0)
}

fn is_km_thread(tid: i32) -> bool {
    rustix::fs::stat(format!("/proc/self/task/{tid}")).is_ok()
}

/// Whether process `pid` runs km's executable (same device and inode).
fn is_km(pid: i32) -> bool {
    static KM: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    let identity = |path: &str| rustix::fs::stat(path).ok().map(|s| (s.st_dev, s.st_ino));
    let km = KM.get_or_init(|| identity("/proc/self/exe"));
    km.is_some() && identity(&format!("/proc/{pid}/exe")) == *km
}

/// The entries the guest lists in directory `fd` when it is the payload's `fd`,
/// `fdinfo` or `task` directory (names and d_type), else `None`.
pub fn guest_listing(guest: &Guest, fd: BorrowedFd<'_>) -> Option<Vec<procfs::Dirent>> {
    const DT_DIR: u8 = 4;
    const DT_REG: u8 = 8;
    const DT_LNK: u8 = 10;
    if !in_procfs(fd) {
        return None;
    }
    let path = host_path(fd).ok()?;
    let (numbers, kind) = match whose(guest, &path).ok()? {
        Whose::Payload(b"fd") => (lock(&guest.fds).numbers(), DT_LNK),
        Whose::Payload(b"fdinfo") => (lock(&guest.fds).numbers(), DT_REG),
        Whose::Payload(b"task") => (guest.thread_ids(), DT_DIR),
        _ => return None,
    };
    let entry = |pos: u64, name: String, kind: u8| procfs::Dirent { pos, name, kind };
    // As Linux, "." and ".." at positions 0 and 1, then each number n at n + 2.
    let mut entries = vec![entry(0, ".".into(), DT_DIR), entry(1, "..".into(), DT_DIR)];
    entries.extend(
        numbers
            .into_iter()
            .map(|n| entry(n as u64 + 2, n.to_string(), kind)),
    );
    Some(entries)
}

/// Whether the O_PATH object `fd` is the payload's (a host file outside procfs,
/// or in the payload's own /proc/<pid>), as the debugger may read.
fn payloads_or_host(guest: &Guest, fd: BorrowedFd<'_>) -> bool {
    !in_procfs(fd) || host_path(fd).is_ok_and(|p| matches!(whose(guest, &p), Ok(Whose::Payload(_))))
}

/// A debugger's path as a C string (gdb names the payload by its real pid, km's).
fn debugger_path(path: &[u8]) -> Result<CString, Errno> {
    CString::new(path).map_err(|_| Errno::INVAL)
}

/// The file a debugger reads at `path` (`info proc mappings` reads /proc/PID/maps):
/// a regular host file or the payload's own /proc view, read-only.
pub fn open_for_debugger(guest: &Guest, path: &[u8]) -> Result<OwnedFd, Errno> {
    let found = resolve(guest, rustix::fs::CWD, &debugger_path(path)?, true)?;
    match found.access {
        Access::Serve(view) => procfs::open_view(guest, None, &view, OFlags::RDONLY),
        Access::Host if payloads_or_host(guest, found.fd.as_fd()) && is_regular(&found.fd) => {
            reopen(found.fd.as_fd(), OFlags::RDONLY)
        }
        Access::Host => Err(Errno::ACCESS),
    }
}

/// The link a debugger reads at `path` (`info proc` reads /proc/PID/exe and cwd).
pub fn readlink_for_debugger(guest: &Guest, path: &[u8]) -> Result<Vec<u8>, Errno> {
    let found = resolve(guest, rustix::fs::CWD, &debugger_path(path)?, false)?;
    if !payloads_or_host(guest, found.fd.as_fd()) {
        return Err(Errno::ACCESS);
    }
    link_text(guest, &found)
}

fn is_regular(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::RegularFile)
}
