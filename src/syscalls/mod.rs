//! Layer 5, syscalls: the syscall table (what km does for each Linux x86-64 system
//! call) and its handlers. Uses `memory`, `kvm`, `guest` and `kernel`.
//!
//! [`dispatch`] is called from the exit loop (`crate::run`) with the request the landing pad
//! left in guest memory. Handlers get a [`Ctx`] and return `Ok(value)` or an errno;
//! every guest pointer goes through the `Ctx` accessors, which check it against the
//! address space (EFAULT) before touching guest memory.

mod aio;
mod creds;
mod events;
mod exec;
mod fcntl;
mod files;
mod fs;
mod fsmeta;
mod info;
pub mod ioctl;
mod mem;
mod msg;
mod net;
mod openat2;
mod pidfd;
mod poll;
mod privileged;
mod process;
pub use process::wait_for_vfork_child;
pub mod procfs;
pub mod procrule;
mod signal;
pub mod snapshot;
mod sysvipc;
mod sysvmsg;
mod sysvsem;
mod thread;

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rustix::io::Errno;
use vm_memory::{ByteValued, VolatileSlice};

use crate::guest::landing_pad::SyscallRequest;
use crate::guest::mm::{PROT_READ, PROT_WRITE};
use crate::kernel::lock;
use crate::kernel::process::{Guest, Thread};
use crate::kernel::signals;
use crate::memory::{self, Fault};
use crate::trace;
use crate::trace::Category;

/// What the vCPU loop does after a syscall.
pub enum Outcome {
    /// Resume the guest with this value in RAX.
    Return(u64),
    /// The calling thread exited with this status (exit).
    ThreadExit(i32),
    /// The payload exited with this status (exit_group).
    Exit(i32),
    /// The payload is killed by this signal.
    Kill(i32),
    /// The handler set the vCPU's user context itself (rt_sigreturn).
    Resumed,
    /// The payload asked for a snapshot (KM_SNAPSHOT), which the exit loop takes.
    Snapshot(snapshot::SnapshotRequest),
    /// execve loaded the new program in place: the exit loop runs it.
    Exec(crate::kernel::exec::Replacement),
}

pub type SysResult = Result<u64, Errno>;

pub use thread::exit_cleanup as thread_exit_cleanup;

pub struct Ctx<'a> {
    pub guest: &'a Arc<Guest>,
    pub thread: &'a mut Thread,
}

impl From<Fault> for Errno {
    fn from(_: Fault) -> Errno {
        Errno::FAULT
    }
}

const PATH_MAX: usize = 4096;

impl<'a> Ctx<'a> {
    /// Guest memory the payload may read, `[addr, addr + len)`.
    pub fn readable(&self, addr: u64, len: usize) -> Result<VolatileSlice<'a>, Errno> {
        self.guest.user_slice(addr, len, PROT_READ)
    }

    /// Guest memory the payload may write, `[addr, addr + len)`.
    pub fn writable(&self, addr: u64, len: usize) -> Result<VolatileSlice<'a>, Errno> {
        self.guest.user_slice(addr, len, PROT_WRITE)
    }

    /// Whether a wait must end for the thread (EINTR): a signal it can take and
    /// does not ignore, or a stop request (gdb, a snapshot). A kick with neither
    /// lets it wait on.
    pub fn wait_ends(&self) -> bool {
        // A kick that comes after this ends the next host wait (see `kvm::kick`).
        crate::kvm::kick::acknowledge();
        signals::interrupts(self.guest, self.thread) || self.guest.stop_requested()
    }

    /// The host descriptor behind guest fd `fd`.
    pub fn fd(&self, fd: u64) -> Result<Arc<OwnedFd>, Errno> {
        self.thread.fds(self.guest).get(fd as i32)
    }

    /// A copy of `[addr, addr + len)`, allocated only once the range is known to be
    /// readable guest memory.
    pub fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let s = self.readable(addr, len)?;
        let mut buf = vec![0u8; len];
        memory::copy_to(addr, &s, &mut buf)?;
        Ok(buf)
    }

    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        Ok(memory::copy_from(
            addr,
            &self.writable(addr, bytes.len())?,
            bytes,
        )?)
    }

    pub fn read_obj<T: ByteValued>(&self, addr: u64) -> Result<T, Errno> {
        Ok(memory::read_obj(
            addr,
            &self.readable(addr, size_of::<T>())?,
        )?)
    }

    pub fn write_obj<T: ByteValued>(&self, addr: u64, val: T) -> Result<(), Errno> {
        self.guest.write_user(addr, val)
    }

    /// A NUL-terminated string of at most `max` bytes; a longer one is `too_long`.
    pub fn read_cstring(&self, addr: u64, max: usize, too_long: Errno) -> Result<CString, Errno> {
        // Check the first byte, then read page by page up to `max`.
        self.readable(addr, 1)?;
        let bytes = self.guest.vm.mem.read_cstr(addr, max).map_err(|f| {
            // A string longer than `max` ends the read at `addr + max`.
            if Some(f.addr) == addr.checked_add(max as u64) {
                too_long
            } else {
                Errno::FAULT
            }
        })?;
        Ok(CString::new(bytes).expect("read_cstr stops at NUL"))
    }

    /// The deadline a relative timeout (a timespec at `addr`) sets from now; `None`
    /// for a null pointer (no timeout).
    pub fn read_deadline(&self, addr: u64) -> Result<Option<std::time::Instant>, Errno> {
        if addr == 0 {
            return Ok(None);
        }
        let [sec, nsec]: [i64; 2] = self.read_obj(addr)?;
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Errno::INVAL);
        }
        Ok(Some(
            std::time::Instant::now() + std::time::Duration::new(sec as u64, nsec as u32),
        ))
    }

    /// A NUL-terminated path argument.
    pub fn read_path(&self, addr: u64) -> Result<CString, Errno> {
        let path = self.read_cstring(addr, PATH_MAX, Errno::NAMETOOLONG)?;
        if path.is_empty() {
            return Err(Errno::NOENT);
        }
        Ok(path)
    }
}

/// Whether syscall `nr` (first argument `arg0`) changes state that km keeps in
/// the calling host thread and that a new thread inherits from its creator:
/// credentials, priority, scheduling, affinity, the parent-death signal and
/// no_new_privs.
fn changes_thread_state(nr: i64, arg0: u64) -> bool {
    const PR_SET_PDEATHSIG: u64 = 1;
    const PR_SET_NO_NEW_PRIVS: u64 = 38;
    match nr {
        libc::SYS_setuid
        | libc::SYS_setgid
        | libc::SYS_setreuid
        | libc::SYS_setregid
        | libc::SYS_setresuid
        | libc::SYS_setresgid
        | libc::SYS_setfsuid
        | libc::SYS_setfsgid
        | libc::SYS_setgroups
        | libc::SYS_setpriority
        | libc::SYS_sched_setparam
        | libc::SYS_sched_setscheduler
        | libc::SYS_sched_setaffinity => true,
        libc::SYS_prctl => matches!(arg0, PR_SET_PDEATHSIG | PR_SET_NO_NEW_PRIVS),
        _ => false,
    }
}

/// Serves one syscall.
pub fn dispatch(ctx: &mut Ctx<'_>, req: &SyscallRequest) -> Outcome {
    let a = req.args;
    if changes_thread_state(req.nr as i64, a[0]) {
        ctx.guest.host_state_changed();
    }
    let result = match req.nr as i64 {
        libc::SYS_exit => return Outcome::ThreadExit(a[0] as i32 & 0xff),
        libc::SYS_exit_group => return Outcome::Exit(a[0] as i32 & 0xff),
        libc::SYS_clone => thread::clone(ctx, &a),
        libc::SYS_clone3 => thread::clone3(ctx, &a),
        libc::SYS_execve => exec::execve(ctx, &a),
        libc::SYS_execveat => exec::execveat(ctx, &a),
        libc::SYS_rt_sigreturn => signal::rt_sigreturn(ctx, &a),
        snapshot::KM_SNAPSHOT => snapshot::km_snapshot(ctx, &a),
        nr => match handler(nr) {
            Some((_, h)) => loop {
                // A kick interrupts every vCPU thread's blocking call; one that got
                // no signal of its own goes back to waiting, as on Linux.
                match h(ctx, &a) {
                    Err(Errno::INTR) if !ctx.wait_ends() => {}
                    r => break r.map(Outcome::Return),
                }
            },
            None => {
                if lock(&ctx.guest.unimpl_seen).insert(req.nr) {
                    trace!(
                        Category::Unimpl,
                        "unimplemented syscall {} ({})",
                        req.nr,
                        name(req.nr as i64)
                    );
                }
                if ctx.guest.config.kill_unimpl {
                    return Outcome::Kill(libc::SIGSYS);
                }
                Err(Errno::NOSYS)
            }
        },
    };
    let value = match result {
        Ok(Outcome::Return(v)) => v,
        Ok(other) => return other,
        Err(e) => (-(e.raw_os_error() as i64)) as u64,
    };
    trace!(
        Category::Hypercall,
        "{}({:#x}, {:#x}, {:#x}, {:#x}) = {:#x}",
        name(req.nr as i64),
        a[0],
        a[1],
        a[2],
        a[3],
        value
    );
    Outcome::Return(value)
}

type Handler = fn(&mut Ctx<'_>, &[u64; 6]) -> SysResult;

/// The syscall table.
/// The syscall table: number -> (name, handler).
#[allow(non_upper_case_globals)] // libc spells the syscall numbers SYS_name.
fn handler(nr: i64) -> Option<(&'static str, Handler)> {
    use libc::*;
    Some(match nr {
        SYS_read => ("read", fs::read as Handler),
        SYS_write => ("write", fs::write as Handler),
        SYS_readv => ("readv", fs::readv as Handler),
        SYS_writev => ("writev", fs::writev as Handler),
        SYS_pread64 => ("pread64", fs::pread64 as Handler),
        SYS_pwrite64 => ("pwrite64", fs::pwrite64 as Handler),
        SYS_open => ("open", fs::open as Handler),
        SYS_openat => ("openat", fs::openat as Handler),
        SYS_openat2 => ("openat2", openat2::openat2 as Handler),
        SYS_close => ("close", fs::close as Handler),
        SYS_lseek => ("lseek", fs::lseek as Handler),
        SYS_fstat => ("fstat", fs::fstat as Handler),
        SYS_stat => ("stat", fs::stat as Handler),
        SYS_lstat => ("lstat", fs::lstat as Handler),
        SYS_newfstatat => ("newfstatat", fs::newfstatat as Handler),
        SYS_statx => ("statx", fs::statx as Handler),
        SYS_access => ("access", fs::access as Handler),
        SYS_faccessat => ("faccessat", fs::faccessat as Handler),
        SYS_faccessat2 => ("faccessat2", fs::faccessat2 as Handler),
        SYS_getdents64 => ("getdents64", fs::getdents64 as Handler),
        SYS_getdents => ("getdents", fs::getdents as Handler),
        SYS_getcwd => ("getcwd", fs::getcwd as Handler),
        SYS_chdir => ("chdir", fs::chdir as Handler),
        SYS_fchdir => ("fchdir", fs::fchdir as Handler),
        SYS_mkdir => ("mkdir", fs::mkdir as Handler),
        SYS_mkdirat => ("mkdirat", fs::mkdirat as Handler),
        SYS_rmdir => ("rmdir", fs::rmdir as Handler),
        SYS_unlink => ("unlink", fs::unlink as Handler),
        SYS_unlinkat => ("unlinkat", fs::unlinkat as Handler),
        SYS_rename => ("rename", fs::rename as Handler),
        SYS_renameat => ("renameat", fs::renameat as Handler),
        SYS_renameat2 => ("renameat2", fs::renameat2 as Handler),
        SYS_readlink => ("readlink", fs::readlink as Handler),
        SYS_readlinkat => ("readlinkat", fs::readlinkat as Handler),
        SYS_fcntl => ("fcntl", fcntl::fcntl as Handler),
        SYS_dup => ("dup", fs::dup as Handler),
        SYS_close_range => ("close_range", fs::close_range as Handler),
        SYS_dup2 => ("dup2", fs::dup2 as Handler),
        SYS_dup3 => ("dup3", fs::dup3 as Handler),
        SYS_pipe => ("pipe", fs::pipe as Handler),
        SYS_pipe2 => ("pipe2", fs::pipe2 as Handler),
        SYS_ioctl => ("ioctl", ioctl::ioctl as Handler),
        SYS_symlink => ("symlink", fs::symlink as Handler),
        SYS_symlinkat => ("symlinkat", fs::symlinkat as Handler),
        SYS_link => ("link", fs::link as Handler),
        SYS_linkat => ("linkat", fs::linkat as Handler),
        SYS_chmod => ("chmod", fs::chmod as Handler),
        SYS_fchmodat => ("fchmodat", fs::fchmodat as Handler),
        SYS_fchmod => ("fchmod", fs::fchmod as Handler),
        SYS_ftruncate => ("ftruncate", fs::ftruncate as Handler),
        SYS_truncate => ("truncate", fs::truncate as Handler),
        SYS_fsync => ("fsync", fs::fsync as Handler),
        SYS_io_setup => ("io_setup", aio::io_setup as Handler),
        SYS_io_destroy => ("io_destroy", aio::io_destroy as Handler),
        SYS_io_submit => ("io_submit", aio::io_submit as Handler),
        SYS_io_getevents => ("io_getevents", aio::io_getevents as Handler),
        SYS_io_cancel => ("io_cancel", aio::io_cancel as Handler),
        SYS_fdatasync => ("fdatasync", fs::fdatasync as Handler),
        SYS_umask => ("umask", fs::umask as Handler),
        SYS_preadv => ("preadv", fs::preadv as Handler),
        SYS_pwritev => ("pwritev", fs::pwritev as Handler),
        SYS_preadv2 => ("preadv2", fs::preadv2 as Handler),
        SYS_pwritev2 => ("pwritev2", fs::pwritev2 as Handler),
        SYS_creat => ("creat", files::creat as Handler),
        SYS_chown => ("chown", files::chown as Handler),
        SYS_lchown => ("lchown", files::lchown as Handler),
        SYS_fchown => ("fchown", files::fchown as Handler),
        SYS_fchownat => ("fchownat", files::fchownat as Handler),
        SYS_utimensat => ("utimensat", files::utimensat as Handler),
        SYS_utimes => ("utimes", files::utimes as Handler),
        SYS_futimesat => ("futimesat", files::futimesat as Handler),
        SYS_utime => ("utime", files::utime as Handler),
        SYS_fadvise64 => ("fadvise64", files::fadvise64 as Handler),
        SYS_readahead => ("readahead", files::readahead as Handler),
        SYS_flock => ("flock", files::flock as Handler),
        SYS_fallocate => ("fallocate", files::fallocate as Handler),
        SYS_sync => ("sync", files::sync as Handler),
        SYS_syncfs => ("syncfs", files::syncfs as Handler),
        SYS_sync_file_range => ("sync_file_range", files::sync_file_range as Handler),
        SYS_sendfile => ("sendfile", files::sendfile as Handler),
        SYS_copy_file_range => ("copy_file_range", files::copy_file_range as Handler),
        SYS_splice => ("splice", files::splice as Handler),
        SYS_tee => ("tee", files::tee as Handler),
        SYS_vmsplice => ("vmsplice", files::vmsplice as Handler),
        SYS_pidfd_open => ("pidfd_open", pidfd::pidfd_open as Handler),
        SYS_pidfd_send_signal => ("pidfd_send_signal", pidfd::pidfd_send_signal as Handler),
        SYS_pidfd_getfd => ("pidfd_getfd", pidfd::pidfd_getfd as Handler),
        SYS_membarrier => ("membarrier", thread::membarrier as Handler),
        SYS_shmget => ("shmget", sysvipc::shmget as Handler),
        SYS_shmat => ("shmat", sysvipc::shmat as Handler),
        SYS_shmdt => ("shmdt", sysvipc::shmdt as Handler),
        SYS_shmctl => ("shmctl", sysvipc::shmctl as Handler),
        SYS_semget => ("semget", sysvsem::semget as Handler),
        SYS_semop => ("semop", sysvsem::semop as Handler),
        SYS_semtimedop => ("semtimedop", sysvsem::semtimedop as Handler),
        SYS_semctl => ("semctl", sysvsem::semctl as Handler),
        SYS_msgget => ("msgget", sysvmsg::msgget as Handler),
        SYS_msgsnd => ("msgsnd", sysvmsg::msgsnd as Handler),
        SYS_msgrcv => ("msgrcv", sysvmsg::msgrcv as Handler),
        SYS_msgctl => ("msgctl", sysvmsg::msgctl as Handler),
        SYS_clock_settime => ("clock_settime", privileged::clock_settime as Handler),
        SYS_settimeofday => ("settimeofday", privileged::settimeofday as Handler),
        SYS_sethostname => ("sethostname", privileged::set_name as Handler),
        SYS_setdomainname => ("setdomainname", privileged::set_name as Handler),
        SYS_chroot => ("chroot", privileged::chroot as Handler),
        SYS_mknod => ("mknod", files::mknod as Handler),
        SYS_mknodat => ("mknodat", files::mknodat as Handler),
        SYS_eventfd => ("eventfd", events::eventfd as Handler),
        SYS_eventfd2 => ("eventfd2", events::eventfd2 as Handler),
        SYS_timerfd_create => ("timerfd_create", events::timerfd_create as Handler),
        SYS_timerfd_settime => ("timerfd_settime", events::timerfd_settime as Handler),
        SYS_timerfd_gettime => ("timerfd_gettime", events::timerfd_gettime as Handler),
        SYS_memfd_create => ("memfd_create", events::memfd_create as Handler),
        SYS_inotify_init => ("inotify_init", events::inotify_init as Handler),
        SYS_inotify_init1 => ("inotify_init1", events::inotify_init1 as Handler),
        SYS_inotify_add_watch => ("inotify_add_watch", events::inotify_add_watch as Handler),
        SYS_inotify_rm_watch => ("inotify_rm_watch", events::inotify_rm_watch as Handler),
        SYS_setuid => ("setuid", creds::setuid as Handler),
        SYS_setgid => ("setgid", creds::setgid as Handler),
        SYS_setreuid => ("setreuid", creds::setreuid as Handler),
        SYS_setregid => ("setregid", creds::setregid as Handler),
        SYS_setresuid => ("setresuid", creds::setresuid as Handler),
        SYS_setresgid => ("setresgid", creds::setresgid as Handler),
        SYS_setfsuid => ("setfsuid", creds::setfsuid as Handler),
        SYS_setfsgid => ("setfsgid", creds::setfsgid as Handler),
        SYS_getresuid => ("getresuid", creds::getresuid as Handler),
        SYS_getresgid => ("getresgid", creds::getresgid as Handler),
        SYS_getgroups => ("getgroups", creds::getgroups as Handler),
        SYS_setgroups => ("setgroups", creds::setgroups as Handler),
        SYS_getpriority => ("getpriority", creds::getpriority as Handler),
        SYS_setpriority => ("setpriority", creds::setpriority as Handler),
        SYS_sched_getscheduler => ("sched_getscheduler", creds::sched_getscheduler as Handler),
        SYS_sched_getparam => ("sched_getparam", creds::sched_getparam as Handler),
        SYS_sched_setparam => ("sched_setparam", creds::sched_setparam as Handler),
        SYS_sched_setscheduler => ("sched_setscheduler", creds::sched_setscheduler as Handler),
        SYS_sched_rr_get_interval => (
            "sched_rr_get_interval",
            creds::sched_rr_get_interval as Handler,
        ),
        SYS_getrusage => ("getrusage", creds::getrusage as Handler),
        SYS_times => ("times", creds::times as Handler),
        SYS_personality => ("personality", creds::personality as Handler),
        SYS_prctl => ("prctl", creds::prctl as Handler),
        SYS_statfs => ("statfs", fsmeta::statfs as Handler),
        SYS_fstatfs => ("fstatfs", fsmeta::fstatfs as Handler),
        SYS_getxattr => ("getxattr", fsmeta::getxattr as Handler),
        SYS_lgetxattr => ("lgetxattr", fsmeta::lgetxattr as Handler),
        SYS_fgetxattr => ("fgetxattr", fsmeta::fgetxattr as Handler),
        SYS_listxattr => ("listxattr", fsmeta::listxattr as Handler),
        SYS_llistxattr => ("llistxattr", fsmeta::llistxattr as Handler),
        SYS_flistxattr => ("flistxattr", fsmeta::flistxattr as Handler),
        SYS_setxattr => ("setxattr", fsmeta::setxattr as Handler),
        SYS_lsetxattr => ("lsetxattr", fsmeta::lsetxattr as Handler),
        SYS_fsetxattr => ("fsetxattr", fsmeta::fsetxattr as Handler),
        SYS_removexattr => ("removexattr", fsmeta::removexattr as Handler),
        SYS_lremovexattr => ("lremovexattr", fsmeta::lremovexattr as Handler),
        SYS_fremovexattr => ("fremovexattr", fsmeta::fremovexattr as Handler),
        SYS_fork => ("fork", process::fork as Handler),
        SYS_vfork => ("vfork", process::vfork as Handler),
        SYS_wait4 => ("wait4", process::wait4 as Handler),
        SYS_waitid => ("waitid", process::waitid as Handler),
        SYS_setpgid => ("setpgid", process::setpgid as Handler),
        SYS_getpgid => ("getpgid", process::getpgid as Handler),
        SYS_getpgrp => ("getpgrp", process::getpgrp as Handler),
        SYS_setsid => ("setsid", process::setsid as Handler),
        SYS_getsid => ("getsid", process::getsid as Handler),
        SYS_socket => ("socket", net::socket as Handler),
        SYS_socketpair => ("socketpair", net::socketpair as Handler),
        SYS_bind => ("bind", net::bind as Handler),
        SYS_connect => ("connect", net::connect as Handler),
        SYS_listen => ("listen", net::listen as Handler),
        SYS_accept => ("accept", net::accept as Handler),
        SYS_accept4 => ("accept4", net::accept4 as Handler),
        SYS_getsockname => ("getsockname", net::getsockname as Handler),
        SYS_getpeername => ("getpeername", net::getpeername as Handler),
        SYS_setsockopt => ("setsockopt", net::setsockopt as Handler),
        SYS_getsockopt => ("getsockopt", net::getsockopt as Handler),
        SYS_sendto => ("sendto", net::sendto as Handler),
        SYS_recvfrom => ("recvfrom", net::recvfrom as Handler),
        SYS_sendmsg => ("sendmsg", msg::sendmsg as Handler),
        SYS_sendmmsg => ("sendmmsg", msg::sendmmsg as Handler),
        SYS_recvmmsg => ("recvmmsg", msg::recvmmsg as Handler),
        SYS_recvmsg => ("recvmsg", msg::recvmsg as Handler),
        SYS_shutdown => ("shutdown", net::shutdown as Handler),
        SYS_epoll_create => ("epoll_create", poll::epoll_create as Handler),
        SYS_epoll_create1 => ("epoll_create1", poll::epoll_create1 as Handler),
        SYS_epoll_ctl => ("epoll_ctl", poll::epoll_ctl as Handler),
        SYS_epoll_wait => ("epoll_wait", poll::epoll_wait as Handler),
        SYS_epoll_pwait => ("epoll_pwait", poll::epoll_pwait as Handler),
        SYS_epoll_pwait2 => ("epoll_pwait2", poll::epoll_pwait2 as Handler),
        SYS_poll => ("poll", poll::poll as Handler),
        SYS_ppoll => ("ppoll", poll::ppoll as Handler),
        SYS_select => ("select", poll::select as Handler),
        SYS_pselect6 => ("pselect6", poll::pselect6 as Handler),
        SYS_sigaltstack => ("sigaltstack", signal::sigaltstack as Handler),
        SYS_brk => ("brk", mem::brk as Handler),
        SYS_mmap => ("mmap", mem::mmap as Handler),
        SYS_munmap => ("munmap", mem::munmap as Handler),
        SYS_mprotect => ("mprotect", mem::mprotect as Handler),
        SYS_mremap => ("mremap", mem::mremap as Handler),
        SYS_madvise => ("madvise", mem::madvise as Handler),
        SYS_msync => ("msync", mem::msync as Handler),
        SYS_mlock => ("mlock", mem::mlock as Handler),
        SYS_mlock2 => ("mlock2", mem::mlock as Handler),
        SYS_munlock => ("munlock", mem::mlock as Handler),
        SYS_mlockall => ("mlockall", mem::mlockall as Handler),
        SYS_munlockall => ("munlockall", mem::munlockall as Handler),
        SYS_mincore => ("mincore", mem::mincore as Handler),
        SYS_sched_get_priority_max => (
            "sched_get_priority_max",
            creds::sched_get_priority_max as Handler,
        ),
        SYS_sched_get_priority_min => (
            "sched_get_priority_min",
            creds::sched_get_priority_min as Handler,
        ),
        SYS_arch_prctl => ("arch_prctl", info::arch_prctl as Handler),
        SYS_set_tid_address => ("set_tid_address", thread::set_tid_address as Handler),
        SYS_set_robust_list => ("set_robust_list", thread::set_robust_list as Handler),
        SYS_uname => ("uname", info::uname as Handler),
        SYS_getpid => ("getpid", info::getpid as Handler),
        SYS_gettid => ("gettid", thread::gettid as Handler),
        SYS_futex => ("futex", thread::futex as Handler),
        SYS_get_robust_list => ("get_robust_list", thread::get_robust_list as Handler),
        SYS_sched_getaffinity => ("sched_getaffinity", thread::sched_getaffinity as Handler),
        SYS_sched_setaffinity => ("sched_setaffinity", thread::sched_setaffinity as Handler),
        SYS_getcpu => ("getcpu", thread::getcpu as Handler),
        SYS_getppid => ("getppid", info::getppid as Handler),
        SYS_getuid => ("getuid", info::getuid as Handler),
        SYS_geteuid => ("geteuid", info::geteuid as Handler),
        SYS_getgid => ("getgid", info::getgid as Handler),
        SYS_getegid => ("getegid", info::getegid as Handler),
        SYS_getrandom => ("getrandom", info::getrandom as Handler),
        SYS_clock_gettime => ("clock_gettime", info::clock_gettime as Handler),
        SYS_clock_getres => ("clock_getres", info::clock_getres as Handler),
        SYS_gettimeofday => ("gettimeofday", info::gettimeofday as Handler),
        SYS_time => ("time", info::time as Handler),
        SYS_nanosleep => ("nanosleep", info::nanosleep as Handler),
        SYS_clock_nanosleep => ("clock_nanosleep", info::clock_nanosleep as Handler),
        SYS_prlimit64 => ("prlimit64", info::prlimit64 as Handler),
        SYS_getrlimit => ("getrlimit", info::getrlimit as Handler),
        SYS_sysinfo => ("sysinfo", info::sysinfo as Handler),
        SYS_sched_yield => ("sched_yield", info::sched_yield as Handler),
        SYS_rt_sigaction => ("rt_sigaction", signal::rt_sigaction as Handler),
        SYS_rt_sigprocmask => ("rt_sigprocmask", signal::rt_sigprocmask as Handler),
        SYS_rt_sigpending => ("rt_sigpending", signal::rt_sigpending as Handler),
        SYS_rt_sigsuspend => ("rt_sigsuspend", signal::rt_sigsuspend as Handler),
        SYS_pause => ("pause", signal::pause as Handler),
        SYS_rt_sigtimedwait => ("rt_sigtimedwait", signal::rt_sigtimedwait as Handler),
        SYS_kill => ("kill", signal::kill as Handler),
        SYS_tkill => ("tkill", signal::tkill as Handler),
        SYS_tgkill => ("tgkill", signal::tgkill as Handler),
        SYS_signalfd => ("signalfd", signal::signalfd as Handler),
        SYS_signalfd4 => ("signalfd4", signal::signalfd4 as Handler),
        SYS_rt_sigqueueinfo => ("rt_sigqueueinfo", signal::rt_sigqueueinfo as Handler),
        SYS_rt_tgsigqueueinfo => ("rt_tgsigqueueinfo", signal::rt_tgsigqueueinfo as Handler),
        SYS_alarm => ("alarm", signal::alarm as Handler),
        SYS_setitimer => ("setitimer", signal::setitimer as Handler),
        SYS_getitimer => ("getitimer", signal::getitimer as Handler),
        SYS_timer_create => ("timer_create", signal::timer_create as Handler),
        SYS_timer_settime => ("timer_settime", signal::timer_settime as Handler),
        SYS_timer_gettime => ("timer_gettime", signal::timer_gettime as Handler),
        SYS_timer_getoverrun => ("timer_getoverrun", signal::timer_getoverrun as Handler),
        SYS_timer_delete => ("timer_delete", signal::timer_delete as Handler),
        _ => return None,
    })
}

/// A syscall's name for traces.
#[allow(non_upper_case_globals)]
fn name(nr: i64) -> String {
    use libc::*;
    let special = match nr {
        SYS_exit => "exit",
        SYS_exit_group => "exit_group",
        SYS_rt_sigreturn => "rt_sigreturn",
        SYS_rseq => "rseq",
        SYS_clone => "clone",
        SYS_clone3 => "clone3",
        SYS_execve => "execve",
        SYS_execveat => "execveat",
        snapshot::KM_SNAPSHOT => "km_snapshot",
        _ => {
            return handler(nr).map_or_else(
                || {
                    let known = usize::try_from(nr).ok().and_then(syscalls::Sysno::new);
                    known.map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_string())
                },
                |(n, _)| n.to_string(),
            );
        }
    };
    special.to_string()
}
