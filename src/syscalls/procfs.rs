//! The payload's view of itself in /proc: the files that would otherwise describe
//! km (its executable, mappings, auxiliary vector, command line, signal state and
//! descriptors) are answered from the guest's own state.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::io::Errno;

use super::Ctx;
use crate::guest::mm::{Vma, VmaKind};
use crate::kernel::lock;
use crate::kernel::process::{Guest, Thread};

/// A /proc path that names the payload itself.
pub enum SelfPath {
    Exe,
    Maps,
    Auxv,
    Cmdline,
    /// The host's status with the guest's signal state.
    Status,
    /// `fd/N` and what follows it.
    Fd(i32, Vec<u8>),
}

/// Parses `/proc/self/...`, `/proc/thread-self/...` or `/proc/PID/...` with the
/// payload's own pid; `None` for every other path (served by the host).
pub fn self_path(path: &[u8]) -> Option<SelfPath> {
    let rest = path.strip_prefix(b"/proc/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (who, mut file) = (&rest[..slash], &rest[slash + 1..]);
    let own = rustix::process::getpid().as_raw_nonzero().get().to_string();
    if who != b"self" && who != b"thread-self" && who != own.as_bytes() {
        return None;
    }
    // A thread's own directory (task/TID/) shows the process's mappings and so on.
    if let Some(task) = file.strip_prefix(b"task/") {
        let end = task.iter().position(|&b| b == b'/')?;
        if !task[..end].iter().all(u8::is_ascii_digit) {
            return None;
        }
        file = &task[end + 1..];
    }
    Some(match file {
        b"exe" => SelfPath::Exe,
        b"maps" => SelfPath::Maps,
        b"auxv" => SelfPath::Auxv,
        b"cmdline" => SelfPath::Cmdline,
        b"status" => SelfPath::Status,
        _ => {
            let fd = file.strip_prefix(b"fd/")?;
            let end = fd.iter().position(|&b| b == b'/').unwrap_or(fd.len());
            let n = std::str::from_utf8(&fd[..end]).ok()?.parse().ok()?;
            SelfPath::Fd(n, fd[end..].to_vec())
        }
    })
}

/// The host path behind guest descriptor `n` (plus `rest`), through km's own /proc.
pub fn host_fd_path(ctx: &Ctx<'_>, n: i32, rest: &[u8]) -> Result<CString, Errno> {
    let fd = lock(&ctx.guest.fds).get(n).map_err(|_| Errno::NOENT)?;
    let mut path = format!("/proc/self/fd/{}", fd.as_raw_fd()).into_bytes();
    path.extend_from_slice(rest);
    CString::new(path).map_err(|_| Errno::INVAL)
}

/// Whether host descriptor `fd` is km's own /proc/PID/fd directory (which the guest
/// opened as /proc/self/fd): its listing must be the guest's descriptors.
pub fn is_own_fd_dir(fd: BorrowedFd<'_>) -> bool {
    let own = format!("/proc/{}/fd", rustix::process::getpid().as_raw_nonzero());
    rustix::fs::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()), Vec::new())
        .is_ok_and(|target| target.as_bytes() == own.as_bytes())
}

/// getdents64 records for the guest's /proc/self/fd from entry `from` on (".",
/// "..", then one symlink per guest descriptor), at most `max` bytes; returns them
/// and how many entries they hold.
pub fn fd_dirents(guest: &Guest, from: usize, max: usize) -> (Vec<u8>, usize) {
    const DT_DIR: u8 = 4;
    const DT_LNK: u8 = 10;
    let mut entries: Vec<(String, u8)> = vec![(".".into(), DT_DIR), ("..".into(), DT_DIR)];
    entries.extend(
        lock(&guest.fds)
            .numbers()
            .into_iter()
            .map(|n| (n.to_string(), DT_LNK)),
    );
    let mut out = Vec::new();
    let mut taken = 0;
    for (i, (name, kind)) in entries.iter().enumerate().skip(from) {
        // d_ino, d_off, d_reclen, d_type, the name with its NUL, padded to 8.
        let reclen = (8 + 8 + 2 + 1 + name.len() + 1).next_multiple_of(8);
        if out.len() + reclen > max {
            break;
        }
        out.extend_from_slice(&(i as u64 + 1).to_ne_bytes());
        out.extend_from_slice(&(i as i64 + 1).to_ne_bytes());
        out.extend_from_slice(&(reclen as u16).to_ne_bytes());
        out.push(*kind);
        out.extend_from_slice(name.as_bytes());
        out.resize(out.len() + reclen - (8 + 8 + 2 + 1 + name.len()), 0);
        taken += 1;
    }
    (out, taken)
}

/// The contents of a generated file (maps, auxv, cmdline, status) as `thread` sees it.
pub fn contents(guest: &Guest, thread: &Thread, which: &SelfPath) -> Vec<u8> {
    match which {
        SelfPath::Status => status(guest, thread),
        other => contents_without_thread(guest, other),
    }
}

/// What a debugger sees at a path it reads through km (gdb's host I/O).
pub enum DebuggerView {
    /// This host path.
    Host(Vec<u8>),
    /// These bytes (a generated file's contents, or a link's target).
    Bytes(Vec<u8>),
}

/// gdb names the process by the stub's pid 1, which here means the payload.
fn debugger_path(path: &[u8]) -> Vec<u8> {
    match path.strip_prefix(b"/proc/1/") {
        Some(rest) => [&b"/proc/self/"[..], rest].concat(),
        None => path.to_vec(),
    }
}

/// The file a debugger opens at `path` (`info proc mappings` reads /proc/1/maps).
pub fn open_for_debugger(guest: &Guest, path: &[u8]) -> DebuggerView {
    let path = debugger_path(path);
    match self_path(&path) {
        Some(SelfPath::Exe) => DebuggerView::Host(exe(guest)),
        Some(which @ (SelfPath::Maps | SelfPath::Auxv | SelfPath::Cmdline)) => {
            DebuggerView::Bytes(contents_without_thread(guest, &which))
        }
        _ => DebuggerView::Host(path),
    }
}

/// The link a debugger reads at `path` (`info proc` reads /proc/1/exe and cwd).
pub fn readlink_for_debugger(guest: &Guest, path: &[u8]) -> DebuggerView {
    let path = debugger_path(path);
    match self_path(&path) {
        Some(SelfPath::Exe) => DebuggerView::Bytes(exe(guest)),
        _ => DebuggerView::Host(path),
    }
}

fn contents_without_thread(guest: &Guest, which: &SelfPath) -> Vec<u8> {
    match which {
        SelfPath::Maps => maps(guest),
        SelfPath::Auxv => guest.config.auxv.clone(),
        SelfPath::Cmdline => cmdline(guest),
        SelfPath::Exe | SelfPath::Status | SelfPath::Fd(..) => Vec::new(),
    }
}

fn cmdline(guest: &Guest) -> Vec<u8> {
    guest
        .config
        .argv
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect()
}

/// An open, read-only, seekable file holding `bytes` (a sealed-off memfd).
pub fn file_with(bytes: &[u8]) -> Result<OwnedFd, Errno> {
    let fd = rustix::fs::memfd_create(c"km-proc", rustix::fs::MemfdFlags::CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes).map_err(|_| Errno::IO)?;
    let fd = OwnedFd::from(file);
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
    Ok(fd)
}

/// /proc/self/status: km's own (name, ids, memory and threads are right: km shows as
/// the payload and its memory is the guest's), with the signal lines the guest's.
fn status(guest: &Guest, thread: &Thread) -> Vec<u8> {
    let host = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let actions = lock(&guest.signals).actions;
    let with = |pred: &dyn Fn(u64) -> bool| {
        (0..64)
            .filter(|&i| pred(actions[i].handler))
            .fold(0u64, |m, i| m | 1 << i)
    };
    let ignored = with(&|h| h == libc::SIG_IGN as u64);
    let caught = with(&|h| h != libc::SIG_IGN as u64 && h != libc::SIG_DFL as u64);
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let value = match line.split_once(':').map(|(k, _)| k) {
            Some("SigPnd") => Some(thread.handle.pending.bits()),
            Some("ShdPnd") => Some(guest.pending.bits()),
            Some("SigBlk") => Some(thread.sigmask),
            Some("SigIgn") => Some(ignored),
            Some("SigCgt") => Some(caught),
            _ => None,
        };
        match value {
            Some(v) => {
                let key = line.split_once(':').map_or(line, |(k, _)| k);
                out.push_str(&format!("{key}:\t{v:016x}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

/// /proc/self/maps in Linux's format, from the guest's mappings.
fn maps(guest: &Guest) -> Vec<u8> {
    let mm = lock(&guest.mm);
    let mut out = Vec::new();
    for (start, vma) in mm.vmas() {
        let _ = writeln!(out, "{}", map_line(start, vma));
    }
    out
}

fn map_line(start: u64, vma: &Vma) -> String {
    let flag = |p: i32, c: char| if vma.prot & p != 0 { c } else { '-' };
    let perms: String = [
        flag(libc::PROT_READ, 'r'),
        flag(libc::PROT_WRITE, 'w'),
        flag(libc::PROT_EXEC, 'x'),
        if vma.shared { 's' } else { 'p' },
    ]
    .into_iter()
    .collect();
    let (offset, dev, inode, name) = match (&vma.file, vma.kind) {
        (Some((path, offset)), _) => {
            let (dev, inode) = std::fs::metadata(&**path).map_or((0, 0), |m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            });
            let name = std::path::absolute(&**path).map_or_else(
                |_| path.to_string(),
                |p| p.as_os_str().to_string_lossy().into_owned(),
            );
            (*offset, dev, inode, name)
        }
        (None, VmaKind::Heap) => (0, 0, 0, "[heap]".to_string()),
        (None, VmaKind::Stack) => (0, 0, 0, "[stack]".to_string()),
        (None, VmaKind::Vdso) => (0, 0, 0, "[vdso]".to_string()),
        (None, _) => (0, 0, 0, String::new()),
    };
    let major = libc::major(dev);
    let minor = libc::minor(dev);
    let head = format!(
        "{start:08x}-{:08x} {perms} {offset:08x} {major:02x}:{minor:02x} {inode}",
        vma.end
    );
    if name.is_empty() {
        head
    } else {
        format!("{head:<72} {name}")
    }
}

/// The target of /proc/self/exe.
pub fn exe(guest: &Guest) -> Vec<u8> {
    guest.config.exe.as_os_str().as_bytes().to_vec()
}
