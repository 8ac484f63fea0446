//! The payload's view of itself in /proc: the files that would otherwise describe
//! km (its executable, mappings, auxiliary vector, command line, signal state and
//! descriptors) are answered from the guest's own state. Which path gets which is
//! decided by the /proc rule (`procrule.rs`).

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::guest::mm::{Vma, VmaKind};
use crate::kernel::lock;
use crate::kernel::process::{Guest, Thread};

/// A file of the payload's own /proc/<pid> that km answers with the guest's view.
pub enum SelfPath {
    Exe,
    Maps,
    Smaps,
    Auxv,
    Cmdline,
    Environ,
    /// The host's status with the guest's signal state.
    Status,
    /// The host's stat without km's addresses.
    Stat,
    /// The host's limits with the guest's own (`guest::limits`).
    Limits,
    /// The link `fd/N` itself (read as the guest descriptor's target).
    Fd(i32),
}

/// The target of the payload's `fd/N` link: what the guest descriptor `n` is.
pub fn fd_target(guest: &Guest, n: i32) -> Result<Vec<u8>, Errno> {
    let fd = lock(&guest.fds).get(n).map_err(|_| Errno::NOENT)?;
    let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
    Ok(rustix::fs::readlink(via, Vec::new())?.into_bytes())
}

/// An entry of a directory km lists for the guest: its position (the directory
/// offset that lists it first), name and d_type.
pub struct Dirent {
    pub pos: u64,
    pub name: String,
    pub kind: u8,
}

/// getdents64 records for the `entries` (in position order) at or after position
/// `from`, at most `max` bytes; returns them and the position after the last one
/// (`None` when none fit or none are left). Each record's d_off is that position,
/// so listing resumes by position, not by count: an entry removed meanwhile
/// (a descriptor closed while a program lists /proc/self/fd) skips no other.
pub fn dirents(entries: &[Dirent], from: u64, max: usize) -> (Vec<u8>, Option<u64>) {
    let mut out = Vec::new();
    let mut next = None;
    for e in entries.iter().filter(|e| e.pos >= from) {
        // d_ino, d_off, d_reclen, d_type, the name with its NUL, padded to 8.
        let reclen = (8 + 8 + 2 + 1 + e.name.len() + 1).next_multiple_of(8);
        if out.len() + reclen > max {
            break;
        }
        let after = e.pos.saturating_add(1);
        out.extend_from_slice(&after.to_ne_bytes());
        out.extend_from_slice(&after.to_ne_bytes());
        out.extend_from_slice(&(reclen as u16).to_ne_bytes());
        out.push(e.kind);
        out.extend_from_slice(e.name.as_bytes());
        out.resize(out.len() + reclen - (8 + 8 + 2 + 1 + e.name.len()), 0);
        next = Some(after);
    }
    (out, next)
}

/// The contents of a generated file as `thread` sees it (a debugger reads the
/// signal state of no thread in particular).
pub fn contents(guest: &Guest, thread: Option<&Thread>, which: &SelfPath) -> Vec<u8> {
    match which {
        SelfPath::Maps => maps(guest, false),
        SelfPath::Smaps => maps(guest, true),
        SelfPath::Auxv => guest.config.auxv.clone(),
        SelfPath::Cmdline => cmdline(guest),
        SelfPath::Environ => guest.config.environ.clone(),
        SelfPath::Status => status(guest, thread),
        SelfPath::Stat => stat(),
        SelfPath::Limits => limits(),
        SelfPath::Exe | SelfPath::Fd(_) => Vec::new(),
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

/// An open file for the guest's view `which`, opened with `flags` (as `thread`,
/// if any, sees it).
pub fn open_view(
    guest: &Guest,
    thread: Option<&Thread>,
    which: &SelfPath,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    match which {
        SelfPath::Exe => {
            rustix::fs::open(&guest.config.exe, flags | OFlags::CLOEXEC, Mode::empty())
        }
        // The link itself, opened without following it.
        SelfPath::Fd(_) => Err(Errno::LOOP),
        generated => {
            if flags.intersects(OFlags::WRONLY | OFlags::RDWR) {
                return Err(Errno::ACCESS);
            }
            if flags.contains(OFlags::DIRECTORY) {
                return Err(Errno::NOTDIR);
            }
            file_with(&contents(guest, thread, generated))
        }
    }
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
/// /proc/self/limits: km's, with the rows of the limits km keeps for the guest
/// written as Linux writes them.
fn limits() -> Vec<u8> {
    const KEPT: [(&str, u32); 4] = [
        ("Max data size", libc::RLIMIT_DATA),
        ("Max address space", libc::RLIMIT_AS),
        ("Max open files", libc::RLIMIT_NOFILE),
        ("Max pending signals", libc::RLIMIT_SIGPENDING),
    ];
    let show = |v: u64| {
        if v == crate::guest::limits::INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let host = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let mut out = String::with_capacity(host.len());
    for line in host.lines() {
        let kept = KEPT
            .iter()
            .find(|(name, _)| line.starts_with(name))
            .and_then(|&(name, r)| Some((name, crate::guest::limits::get(r)?)));
        match kept {
            Some((name, (soft, hard))) => {
                // The units column follows the name's 26 and two values' 21 each.
                let units = line.get(68..).unwrap_or("").trim_end();
                let (soft, hard) = (show(soft), show(hard));
                out.push_str(&format!("{name:<25} {soft:<20} {hard:<20} {units:<10}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

fn status(guest: &Guest, thread: Option<&Thread>) -> Vec<u8> {
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
            Some("SigPnd") => Some(thread.map_or(0, |t| t.handle.pending.bits())),
            Some("ShdPnd") => Some(guest.pending.bits()),
            Some("SigBlk") => Some(thread.map_or(0, |t| t.sigmask)),
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

/// /proc/self/stat fields that hold addresses in km (start and end of code, stack,
/// stack and instruction pointers, data, brk, arguments, environment), counted from
/// 1 as in proc(5); Linux shows 0 there to readers it does not trust either.
const STAT_ADDRESSES: [usize; 12] = [26, 27, 28, 29, 30, 45, 46, 47, 48, 49, 50, 51];

/// /proc/self/stat: km's own with its addresses zeroed.
fn stat() -> Vec<u8> {
    let host = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The name (field 2) may hold spaces and parentheses: fields count after its ')'.
    let Some(close) = host.rfind(')') else {
        return host.into_bytes();
    };
    let (head, tail) = host.split_at(close + 1);
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let fields: Vec<&str> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if STAT_ADDRESSES.contains(&(i + 3)) {
                "0"
            } else {
                f
            }
        })
        .collect();
    format!("{head} {}\n", fields.join(" ")).into_bytes()
}

/// /proc/self/maps in Linux's format, from the guest's mappings; with `sizes`, as
/// smaps: each mapping followed by its size (km counts no resident pages per
/// mapping, so only the sizes Linux always gives).
fn maps(guest: &Guest, sizes: bool) -> Vec<u8> {
    let mm = lock(&guest.mm);
    let mut out = Vec::new();
    for (start, vma) in mm.vmas() {
        let _ = writeln!(out, "{}", map_line(start, vma));
        if sizes {
            let kb = (vma.end - start) / 1024;
            let _ = write!(
                out,
                "Size:           {kb:8} kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\n"
            );
        }
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
