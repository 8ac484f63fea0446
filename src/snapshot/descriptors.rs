//! The payload's descriptors in a snapshot: what each one is ([`capture`]) and
//! the same again in the restored payload ([`reopen`]). Standard descriptors
//! (0, 1, 2) are the restoring km's own; anything km cannot reopen makes the
//! snapshot fail with ENOTSUP, named in the `-V snapshot` trace.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;

use anyhow::{Context, Result, bail};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::state::{Descriptor, EpollEntry, Fd};
use crate::kernel::fdtable::FdTable;
use crate::kernel::lock;
use crate::kernel::process::Guest;
use crate::memory::host;
use crate::trace;
use crate::trace::Category;

/// What /proc/self/fd names an eventfd and an epoll instance.
const EVENTFD_LINK: &str = "anon_inode:[eventfd]";
const EPOLL_LINK: &str = "anon_inode:[eventpoll]";
/// The backlog a listening socket gets again (Linux does not tell the old one).
const BACKLOG: i32 = 128;

/// Every guest descriptor as a restore reopens it, and the epoll interest lists.
pub fn capture(guest: &Guest) -> Result<(Vec<Fd>, Vec<EpollEntry>), Errno> {
    let table: Vec<(i32, std::sync::Arc<OwnedFd>, bool)> = {
        let fds = lock(&guest.fds);
        fds.numbers()
            .into_iter()
            .filter_map(|n| Some((n, fds.get(n).ok()?, fds.cloexec(n).ok()?)))
            .collect()
    };
    let guest_number: HashMap<i32, i32> = table
        .iter()
        .map(|(n, fd, _)| (fd.as_raw_fd(), *n))
        .collect();
    let mut fds = Vec::new();
    let mut epoll = Vec::new();
    for (number, fd, cloexec) in &table {
        let what = if *number <= 2 {
            Descriptor::Stdio
        } else {
            match describe(fd.as_fd()) {
                Ok(Some(what)) => what,
                Ok(None) => {
                    epoll.extend(interest_list(*number, fd.as_fd(), &guest_number)?);
                    continue;
                }
                Err(why) => {
                    trace!(Category::Snapshot, "fd {number}: {why}: cannot be restored");
                    return Err(Errno::NOTSUP);
                }
            }
        };
        fds.push(Fd {
            number: *number,
            cloexec: *cloexec,
            what,
        });
    }
    check_pipes(&fds)?;
    // Epoll descriptors go last, once their targets exist again.
    for (number, _, cloexec) in table
        .iter()
        .filter(|(n, ..)| epoll.iter().any(|e| e.epoll == *n))
    {
        fds.push(Fd {
            number: *number,
            cloexec: *cloexec,
            what: Descriptor::Path {
                path: EPOLL_LINK.into(),
                flags: 0,
                offset: None,
            },
        });
    }
    Ok((fds, epoll))
}

/// Refuses a pipe one end of which is outside the payload (a restore could not
/// give it back).
fn check_pipes(fds: &[Fd]) -> Result<(), Errno> {
    let has_end = |id: u64, write: bool| {
        fds.iter().any(
            |f| matches!(f.what, Descriptor::Pipe { id: i, write: w, .. } if i == id && w == write),
        )
    };
    for fd in fds {
        if let Descriptor::Pipe { id, write, .. } = fd.what
            && !has_end(id, !write)
        {
            trace!(
                Category::Snapshot,
                "fd {}: pipe:[{id}]: its other end is not the payload's: cannot be restored",
                fd.number
            );
            return Err(Errno::NOTSUP);
        }
    }
    Ok(())
}

/// What `fd` is, `None` for an epoll instance, or why it cannot be restored.
fn describe(fd: BorrowedFd<'_>) -> Result<Option<Descriptor>, String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| format!("unreadable ({e})"))?
        .to_string_lossy()
        .into_owned();
    let stat = rustix::fs::fstat(fd).map_err(|e| format!("{link} ({e})"))?;
    let flags = rustix::fs::fcntl_getfl(fd)
        .map_err(|e| format!("{link} ({e})"))?
        .bits() as i32;
    let by_path = |offset| Descriptor::Path {
        path: link.clone(),
        flags,
        offset,
    };
    Ok(Some(match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile if !link.ends_with(" (deleted)") && link.starts_with('/') => {
            let offset = rustix::fs::seek(fd, rustix::fs::SeekFrom::Current(0))
                .map_err(|e| format!("{link} ({e})"))?;
            by_path(Some(offset))
        }
        FileType::Directory if link.starts_with('/') => by_path(None),
        FileType::CharacterDevice if link.starts_with("/dev/") => by_path(None),
        FileType::Socket => socket(fd, flags).map_err(|e| format!("{link}: {e}"))?,
        _ if link == EVENTFD_LINK => Descriptor::Eventfd {
            count: fdinfo_field(fd, "eventfd-count:")
                .and_then(|v| u64::from_str_radix(&v, 16).ok())
                .ok_or_else(|| format!("{link}: no counter in fdinfo"))?,
            flags,
        },
        _ if link == EPOLL_LINK => return Ok(None),
        FileType::Fifo if link.starts_with("pipe:[") => pipe_end(fd, &link, flags)?,
        _ => return Err(link),
    }))
}

/// An end of the pipe `link` names (`pipe:[INODE]`), which must be empty: its
/// contents would be lost.
fn pipe_end(fd: BorrowedFd<'_>, link: &str, flags: i32) -> Result<Descriptor, String> {
    let id = link
        .trim_start_matches("pipe:[")
        .trim_end_matches(']')
        .parse()
        .map_err(|_| format!("{link}: no inode"))?;
    let write = flags & libc::O_ACCMODE == libc::O_WRONLY;
    if !write && rustix::io::ioctl_fionread(fd).map_err(|e| format!("{link} ({e})"))? != 0 {
        return Err(format!("{link} holds unread data"));
    }
    Ok(Descriptor::Pipe { id, write, flags })
}

/// The first value of `key` in /proc/self/fdinfo for `fd`.
fn fdinfo_field(fd: BorrowedFd<'_>, key: &str) -> Option<String> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
}

fn sockopt_int(fd: BorrowedFd<'_>, name: i32) -> Result<i32, Errno> {
    let v = host::getsockopt(fd, libc::SOL_SOCKET, name, 4)?;
    Ok(i32::from_ne_bytes(v.try_into().map_err(|_| Errno::INVAL)?))
}

/// A socket: listening, bound datagram, or connected (reset on restore).
fn socket(fd: BorrowedFd<'_>, flags: i32) -> Result<Descriptor, String> {
    let opt = |name| sockopt_int(fd, name).map_err(|e| e.to_string());
    let (domain, kind, protocol) = (
        opt(libc::SO_DOMAIN)?,
        opt(libc::SO_TYPE)?,
        opt(libc::SO_PROTOCOL)?,
    );
    let address = host::sockname(fd, 128, false)
        .map_err(|e| e.to_string())?
        .bytes;
    if opt(libc::SO_ACCEPTCONN)? != 0 {
        return Ok(Descriptor::Listener {
            domain,
            kind,
            protocol,
            address,
            backlog: BACKLOG,
            flags,
        });
    }
    if host::sockname(fd, 128, true).is_ok() {
        return Ok(Descriptor::Reset { domain, kind });
    }
    if kind == libc::SOCK_DGRAM {
        return Ok(Descriptor::Datagram {
            domain,
            kind,
            protocol,
            address,
            flags,
        });
    }
    Err("neither listening nor connected".into())
}

/// An epoll instance's interest list, by guest descriptor numbers.
fn interest_list(
    epoll: i32,
    fd: BorrowedFd<'_>,
    guest_number: &HashMap<i32, i32>,
) -> Result<Vec<EpollEntry>, Errno> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|_| Errno::NOTSUP)?;
    info.lines()
        .filter(|l| l.starts_with("tfd:"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let field = |key: &str| f.iter().position(|w| *w == key).and_then(|i| f.get(i + 1));
            let host_fd: i32 = field("tfd:")
                .and_then(|v| v.parse().ok())
                .ok_or(Errno::NOTSUP)?;
            let target = *guest_number.get(&host_fd).ok_or_else(|| {
                trace!(
                    Category::Snapshot,
                    "fd {epoll}: epoll watches a descriptor the payload closed"
                );
                Errno::NOTSUP
            })?;
            let hex = |key| {
                field(key)
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
                    .ok_or(Errno::NOTSUP)
            };
            Ok(EpollEntry {
                epoll,
                target,
                events: hex("events:")? as u32,
                data: hex("data:")?,
            })
        })
        .collect()
}

/// Reopens the snapshot's descriptors `fds` in `table` (whose standard
/// descriptors are already the restoring km's) and refills the epoll sets.
pub fn reopen(table: &mut FdTable, fds: &[Fd], epoll: &[EpollEntry]) -> Result<()> {
    let mut pipes: HashMap<u64, (OwnedFd, OwnedFd)> = HashMap::new();
    for fd in fds.iter().filter(|fd| fd.what != Descriptor::Stdio) {
        let host = match &fd.what {
            Descriptor::Pipe { id, write, flags } => pipe_again(&mut pipes, *id, *write, *flags),
            what => open(what),
        }
        .with_context(|| format!("reopening fd {} ({:?})", fd.number, fd.what))?;
        table
            .insert_at(fd.number, host, fd.cloexec)
            .with_context(|| format!("placing fd {}", fd.number))?;
    }
    for e in epoll {
        let ep = table
            .get(e.epoll)
            .with_context(|| format!("epoll fd {}", e.epoll))?;
        let target = table
            .get(e.target)
            .with_context(|| format!("epoll target fd {}", e.target))?;
        rustix::event::epoll::add(
            &*ep,
            &*target,
            rustix::event::epoll::EventData::new_u64(e.data),
            rustix::event::epoll::EventFlags::from_bits_retain(e.events),
        )
        .with_context(|| format!("adding fd {} to epoll fd {}", e.target, e.epoll))?;
    }
    Ok(())
}

/// An end of a new pipe standing for the snapshot's pipe `id` (made at its
/// first end), with the status flags `flags`.
fn pipe_again(
    pipes: &mut HashMap<u64, (OwnedFd, OwnedFd)>,
    id: u64,
    write: bool,
    flags: i32,
) -> Result<OwnedFd> {
    let ends = match pipes.entry(id) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
        }
    };
    let end = if write { &ends.1 } else { &ends.0 };
    let dup = rustix::io::fcntl_dupfd_cloexec(end, 0)?;
    let status = OFlags::from_bits_retain(flags as u32) & OFlags::NONBLOCK;
    rustix::fs::fcntl_setfl(&dup, status)?;
    Ok(dup)
}

/// A host descriptor like the one `what` describes.
fn open(what: &Descriptor) -> Result<OwnedFd> {
    Ok(match what {
        Descriptor::Stdio | Descriptor::Pipe { .. } => {
            bail!("standard descriptors and pipes are made elsewhere")
        }
        Descriptor::Path { path, .. } if path == EPOLL_LINK => {
            rustix::event::epoll::create(rustix::event::epoll::CreateFlags::CLOEXEC)?
        }
        Descriptor::Path {
            path,
            flags,
            offset,
        } => {
            let kept = OFlags::from_bits_retain(*flags as u32)
                - (OFlags::CREATE | OFlags::TRUNC | OFlags::EXCL);
            let fd = rustix::fs::open(path.as_str(), kept | OFlags::CLOEXEC, Mode::empty())?;
            if let Some(offset) = offset {
                rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(*offset))?;
            }
            fd
        }
        Descriptor::Listener {
            domain,
            kind,
            protocol,
            address,
            backlog,
            flags,
        } => {
            let fd = bound_socket(*domain, *kind, *protocol, address, *flags)?;
            rustix::net::listen(&fd, *backlog)?;
            fd
        }
        Descriptor::Datagram {
            domain,
            kind,
            protocol,
            address,
            flags,
        } => bound_socket(*domain, *kind, *protocol, address, *flags)?,
        Descriptor::Reset { kind, .. } => reset_socket(*kind)?,
        Descriptor::Eventfd { count, flags } => {
            let efd_flags = (*flags & libc::O_NONBLOCK) as u64 | libc::EFD_CLOEXEC as u64;
            let fd = host::fd_syscall(libc::SYS_eventfd2, [0, efd_flags])?;
            if *count != 0 {
                rustix::io::write(&fd, &count.to_ne_bytes())?;
            }
            fd
        }
    })
}

/// A socket of `domain`, `kind` and `protocol` bound to `address` (a UNIX
/// socket's file, left by the payload that took the snapshot, is replaced).
fn bound_socket(
    domain: i32,
    kind: i32,
    protocol: i32,
    address: &[u8],
    flags: i32,
) -> Result<OwnedFd> {
    let socket_flags = if flags & libc::O_NONBLOCK != 0 {
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
    } else {
        SocketFlags::CLOEXEC
    };
    let fd = rustix::net::socket_with(
        AddressFamily::from_raw(domain as u16),
        SocketType::from_raw(kind as u32),
        socket_flags,
        std::num::NonZeroU32::new(protocol as u32).map(rustix::net::Protocol::from_raw),
    )?;
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    }
    if domain == libc::AF_UNIX {
        remove_stale_socket(address);
    }
    host::with_sockaddr(fd.as_fd(), address, libc::bind)?;
    Ok(fd)
}

/// Removes the socket file a UNIX address names (not an abstract one).
fn remove_stale_socket(address: &[u8]) {
    let path = &address[address.len().min(2)..];
    let path = path.split(|&b| b == 0).next().unwrap_or_default();
    if path.is_empty() {
        return;
    }
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if is_socket {
        let _ = std::fs::remove_file(path);
    }
}

/// A connected socket whose peer has reset the connection: its next use fails
/// with ECONNRESET. Made over loopback: a listener, a connection, and the
/// accepted end closed with a zero linger time (which sends a reset).
fn reset_socket(kind: i32) -> Result<OwnedFd> {
    if kind != libc::SOCK_STREAM {
        bail!("only stream sockets are reset");
    }
    let loopback = std::net::TcpListener::bind("127.0.0.1:0").context("a loopback listener")?;
    let client = std::net::TcpStream::connect(loopback.local_addr()?)?;
    let (accepted, _) = loopback.accept()?;
    rustix::net::sockopt::set_socket_linger(&accepted, Some(std::time::Duration::ZERO))?;
    drop(accepted);
    // Wait for the reset to arrive (poll leaves the pending error in place).
    let mut wait = [rustix::event::PollFd::new(
        &client,
        rustix::event::PollFlags::IN,
    )];
    let limit = rustix::time::Timespec {
        tv_sec: 5,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut wait, Some(&limit))?;
    Ok(OwnedFd::from(client))
}
