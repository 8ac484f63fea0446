//! signalfd descriptors. The guest's descriptor is the read end of a host pipe,
//! so that poll, select and epoll wait on it like on any other; km holds the write
//! end and keeps one byte in the pipe exactly while a signal of the descriptor's
//! mask is pending (brought up to date before every wait on host descriptors and
//! after every read). A read takes the pending signals as `signalfd_siginfo`
//! records. Limits: a signalfd shared with a fork child shares its readiness, and
//! after execve it is a plain pipe.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use rustix::io::Errno;

use super::lock;
use super::process::{Guest, Thread};
use super::signals::{self, SigInfo, UNBLOCKABLE};

/// Size of `struct signalfd_siginfo`.
pub const RECORD_SIZE: usize = 128;

/// One signalfd: its pipe and mask.
pub struct SignalFd {
    /// The guest's end (the read end), as its descriptor table holds it.
    read_end: Weak<OwnedFd>,
    /// km's end, non-blocking.
    write_end: OwnedFd,
    mask: u64,
    /// Whether a byte is in the pipe.
    ready: bool,
}

static SIGNALFDS: Mutex<Vec<SignalFd>> = Mutex::new(Vec::new());
/// The signalfd list's lock, held by a forking thread across the host fork: a
/// thread polling a signalfd at that moment would leave it locked in the child
/// for ever. Held while no other lock is taken.
pub fn hold_for_fork() -> std::sync::MutexGuard<'static, Vec<SignalFd>> {
    lock(&SIGNALFDS)
}

/// Whether any signalfd was ever created (waits skip the lock otherwise).
static ANY: AtomicBool = AtomicBool::new(false);

/// The pipe behind a new signalfd: (the guest's read end, km's write end).
pub fn pipe(nonblock: bool) -> Result<(OwnedFd, OwnedFd), Errno> {
    let flags = rustix::pipe::PipeFlags::CLOEXEC
        | if nonblock {
            rustix::pipe::PipeFlags::NONBLOCK
        } else {
            rustix::pipe::PipeFlags::empty()
        };
    let (read_end, write_end) = rustix::pipe::pipe_with(flags)?;
    let mut write_flags = rustix::fs::fcntl_getfl(&write_end)?;
    write_flags |= rustix::fs::OFlags::NONBLOCK;
    rustix::fs::fcntl_setfl(&write_end, write_flags)?;
    Ok((read_end, write_end))
}

/// Makes `read_end`, as the guest's descriptor table holds it, a signalfd for
/// `mask` whose readiness km sets through `write_end`.
pub fn register(read_end: &Arc<OwnedFd>, write_end: OwnedFd, mask: u64) {
    let mut list = lock(&SIGNALFDS);
    list.retain(|s| s.read_end.strong_count() > 0);
    list.push(SignalFd {
        read_end: Arc::downgrade(read_end),
        write_end,
        mask: mask & !UNBLOCKABLE,
        ready: false,
    });
    ANY.store(true, Ordering::SeqCst);
}

fn find<'a>(list: &'a mut [SignalFd], fd: &Arc<OwnedFd>) -> Option<&'a mut SignalFd> {
    list.iter_mut()
        .find(|s| s.read_end.upgrade().is_some_and(|r| Arc::ptr_eq(&r, fd)))
}

/// The mask of `fd` if it is a signalfd.
pub fn mask(fd: &Arc<OwnedFd>) -> Option<u64> {
    if !ANY.load(Ordering::SeqCst) {
        return None;
    }
    find(&mut lock(&SIGNALFDS), fd).map(|s| s.mask)
}

/// Gives signalfd `fd` a new mask; EINVAL when `fd` is no signalfd.
pub fn set_mask(fd: &Arc<OwnedFd>, mask: u64) -> Result<(), Errno> {
    let mut list = lock(&SIGNALFDS);
    let s = find(&mut list, fd).ok_or(Errno::INVAL)?;
    s.mask = mask & !UNBLOCKABLE;
    Ok(())
}

/// Puts a byte in each signalfd's pipe while a signal of its mask is pending for
/// `thread` or its process, and takes it out otherwise.
pub fn refresh(guest: &Guest, thread: &Thread) {
    if !ANY.load(Ordering::SeqCst) {
        return;
    }
    let pending = signals::pending(guest, thread);
    let mut list = lock(&SIGNALFDS);
    for s in list.iter_mut() {
        let Some(read_end) = s.read_end.upgrade() else {
            continue;
        };
        let want = pending & s.mask != 0;
        if want == s.ready {
            continue;
        }
        // The write end is non-blocking and the pipe holds at most this one byte;
        // the read end holds it when `ready`, so neither call blocks.
        let done = if want {
            rustix::io::write(&s.write_end, &[0u8])
        } else {
            rustix::io::read(&*read_end, &mut [0u8])
        };
        if done == Ok(1) {
            s.ready = want;
        }
    }
}

/// Takes up to `max` pending signals of `mask` for `thread` as signalfd records.
pub fn take(guest: &Guest, thread: &Thread, mask: u64, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() / RECORD_SIZE < max {
        let Some(info) = signals::take(guest, thread, mask) else {
            break;
        };
        out.extend_from_slice(&record(&info));
    }
    refresh(guest, thread);
    out
}

/// si_code of a POSIX timer's signal.
const SI_TIMER: i32 = -2;

/// `struct signalfd_siginfo` for `info`, with the fields its siginfo layout has
/// (Linux's signalfd_copyinfo).
fn record(info: &SigInfo) -> [u8; RECORD_SIZE] {
    let code = signals::code(info);
    let sig = signals::signo(info);
    let mut r = [0u8; RECORD_SIZE];
    // (siginfo offset, record offset, bytes).
    let mut copy = |from: usize, to: usize, len: usize| {
        r[to..to + len].copy_from_slice(&info[from..from + len]);
    };
    // ssi_signo, ssi_errno, ssi_code.
    copy(0, 0, 12);
    let from_kernel = code > 0 && code < signals::SI_KERNEL;
    match sig {
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
            if from_kernel =>
        {
            // ssi_addr.
            copy(16, 72, 8);
        }
        libc::SIGPOLL if from_kernel => {
            // ssi_band, ssi_fd.
            copy(16, 28, 4);
            copy(24, 20, 4);
        }
        libc::SIGCHLD if from_kernel => {
            // ssi_pid, ssi_uid, ssi_status, ssi_utime, ssi_stime.
            copy(16, 12, 8);
            copy(24, 40, 4);
            copy(32, 56, 16);
        }
        _ if code == SI_TIMER => {
            // ssi_tid, ssi_overrun, ssi_int, ssi_ptr.
            copy(16, 24, 4);
            copy(20, 32, 4);
            copy(24, 44, 4);
            copy(24, 48, 8);
        }
        _ if code < 0 => {
            // ssi_pid, ssi_uid, ssi_int, ssi_ptr (sigqueue's value).
            copy(16, 12, 8);
            copy(24, 44, 4);
            copy(24, 48, 8);
        }
        _ => {
            // ssi_pid, ssi_uid.
            copy(16, 12, 8);
        }
    }
    r
}
