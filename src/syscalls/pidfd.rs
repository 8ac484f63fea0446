//! Process descriptors: pidfd_open, pidfd_send_signal, pidfd_getfd. Guest pids are
//! the host's (a fork child is a km process), so a pidfd is the host's pidfd of
//! that process; signals sent through one go the way kill(2) sends them.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::io::Errno;

use super::{Ctx, SysResult, signal};
use crate::memory::host;

pub fn pidfd_open(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (pid, flags) = (a[0] as i32, a[1]);
    if pid <= 0 || flags & !(libc::O_NONBLOCK as u64) != 0 {
        return Err(Errno::INVAL);
    }
    // A child the payload has waited for is gone (its host process may be ending).
    if crate::kernel::children::waited_for(pid) {
        return Err(Errno::SRCH);
    }
    let fd = host::fd_syscall(libc::SYS_pidfd_open, [pid as u64, flags])?;
    // A pidfd is always close-on-exec.
    Ok(ctx.thread.fds(ctx.guest).insert(fd, true, 0)? as u64)
}

/// The pid a host pidfd refers to (its fdinfo's `Pid:` line); EBADF for any other
/// kind of descriptor, ESRCH once the process is gone (-1 there).
fn pid_of(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .map_err(|_| Errno::BADF)?;
    let pid: i32 = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or(Errno::BADF)?;
    if pid <= 0 { Err(Errno::SRCH) } else { Ok(pid) }
}

/// The process a /proc/<pid> directory descriptor names: EBADF when `fd` is not
/// such a directory (a thread's /proc/<pid>/task/<tid> is not), ESRCH when that
/// process is gone (its directory no longer resolves to the same inode).
fn proc_dir_pid(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    let path =
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| Errno::BADF)?;
    let pid: i32 = path
        .to_str()
        .and_then(|p| p.strip_prefix("/proc/"))
        // A reaped process's directory reads back as "/proc/<pid> (deleted)".
        .map(|n| n.strip_suffix(" (deleted)").unwrap_or(n))
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .filter(|&pid| pid > 0)
        .ok_or(Errno::BADF)?;
    let held = rustix::fs::fstat(fd)?;
    if !rustix::fs::FileType::from_raw_mode(held.st_mode).is_dir() {
        return Err(Errno::BADF);
    }
    match rustix::fs::stat(format!("/proc/{pid}").as_str()) {
        Ok(now) if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino) => Ok(pid),
        _ => Err(Errno::SRCH),
    }
}

/// PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP.
const SIGNAL_FLAGS: u64 = 7;
const PIDFD_SIGNAL_THREAD_GROUP: u64 = 2;

/// pidfd_send_signal(pidfd, sig, info, flags): as kill(pid, sig); `pidfd` may
/// also be a /proc/<pid> directory, as on Linux. Not served
/// (EINVAL): a caller-made siginfo, and signalling one thread or the process group
/// through the pidfd.
pub fn pidfd_send_signal(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[3] & !SIGNAL_FLAGS != 0 {
        return Err(Errno::INVAL);
    }
    let fd = ctx.fd(a[0])?;
    // Linux's pidfd_to_pid: a pidfd, or else a /proc/<pid> directory.
    let pid = match pid_of(fd.as_fd()) {
        Err(Errno::BADF) => proc_dir_pid(fd.as_fd())?,
        other => other?,
    };
    if a[2] != 0 || a[3] & !PIDFD_SIGNAL_THREAD_GROUP != 0 {
        return Err(Errno::INVAL);
    }
    signal::kill(ctx, &[pid as u64, a[1], 0, 0, 0, 0])
}

/// pidfd_getfd: taking another process's descriptor needs ptrace rights over it,
/// which a payload never has over a km process (EPERM, as Linux without them).
pub fn pidfd_getfd(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    pid_of(ctx.fd(a[0])?.as_fd())?;
    if a[2] != 0 {
        return Err(Errno::INVAL);
    }
    Err(Errno::PERM)
}
