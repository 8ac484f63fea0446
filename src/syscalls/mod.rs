//! The syscall table: what km does for each Linux x86-64 system call.
//!
//! [`dispatch`] is called from the vCPU exit loop with the request the landing pad
//! left in guest memory. Handlers get a [`Ctx`] and return `Ok(value)` or an errno;
//! every guest pointer goes through the `Ctx` accessors, which check it against the
//! address space (EFAULT) before touching guest memory.

pub mod fdtable;
mod fs;
mod info;
mod mem;

use std::ffi::CString;

use rustix::io::Errno;
use vm_memory::{ByteValued, VolatileSlice};

use crate::landing_pad::SyscallRequest;
use crate::memory::Fault;
use crate::mm::{PROT_READ, PROT_WRITE};
use crate::process::Process;
use crate::trace;
use crate::trace::Category;
use crate::vcpu::Vcpu;
use crate::vm::Vm;

/// What the vCPU loop does after a syscall.
pub enum Outcome {
    /// Resume the guest with this value in RAX.
    Return(u64),
    /// The payload exited with this status.
    Exit(i32),
    /// The payload is killed by this signal.
    Kill(i32),
}

pub type SysResult = Result<u64, Errno>;

pub struct Ctx<'a> {
    pub vm: &'a mut Vm,
    pub process: &'a mut Process,
    pub vcpu: &'a Vcpu,
}

impl From<Fault> for Errno {
    fn from(_: Fault) -> Errno {
        Errno::FAULT
    }
}

const PATH_MAX: usize = 4096;

impl Ctx<'_> {
    /// Guest memory the payload may read, `[addr, addr + len)`.
    pub fn readable(&self, addr: u64, len: usize) -> Result<VolatileSlice<'_>, Errno> {
        self.process.mm.check(addr, len as u64, PROT_READ)?;
        Ok(self.vm.mem.slice(addr, len)?)
    }

    /// Guest memory the payload may write, `[addr, addr + len)`.
    pub fn writable(&self, addr: u64, len: usize) -> Result<VolatileSlice<'_>, Errno> {
        self.process.mm.check(addr, len as u64, PROT_WRITE)?;
        Ok(self.vm.mem.slice(addr, len)?)
    }

    pub fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0u8; len];
        self.readable(addr, len)?.copy_to(&mut buf);
        Ok(buf)
    }

    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), Errno> {
        self.writable(addr, bytes.len())?.copy_from(bytes);
        Ok(())
    }

    pub fn read_obj<T: ByteValued>(&self, addr: u64) -> Result<T, Errno> {
        self.process.mm.check(addr, size_of::<T>() as u64, PROT_READ)?;
        Ok(self.vm.mem.read_obj(addr)?)
    }

    pub fn write_obj<T: ByteValued>(&self, addr: u64, val: T) -> Result<(), Errno> {
        self.process.mm.check(addr, size_of::<T>() as u64, PROT_WRITE)?;
        Ok(self.vm.mem.write_obj(addr, val)?)
    }

    /// A NUL-terminated path argument.
    pub fn read_path(&self, addr: u64) -> Result<CString, Errno> {
        // Check the first byte, then read page by page up to PATH_MAX.
        self.process.mm.check(addr, 1, PROT_READ)?;
        let bytes = self.vm.mem.read_cstr(addr, PATH_MAX).map_err(|f| {
            if self.process.mm.check(f.addr, 1, PROT_READ).is_ok() {
                Errno::NAMETOOLONG
            } else {
                Errno::FAULT
            }
        })?;
        if bytes.is_empty() {
            return Err(Errno::NOENT);
        }
        Ok(CString::new(bytes).expect("read_cstr stops at NUL"))
    }
}

/// Serves one syscall.
pub fn dispatch(ctx: &mut Ctx<'_>, req: &SyscallRequest) -> Outcome {
    let a = req.args;
    let result = match req.nr as i64 {
        libc::SYS_exit | libc::SYS_exit_group => return Outcome::Exit(a[0] as i32 & 0xff),
        nr => match handler(nr) {
            Some(h) => h(ctx, &a),
            None => {
                if ctx.process.unimpl_seen.insert(req.nr) {
                    trace!(Category::Unimpl, "unimplemented syscall {} ({})", req.nr, name(req.nr as i64));
                }
                if ctx.process.kill_unimpl {
                    return Outcome::Kill(libc::SIGSYS);
                }
                Err(Errno::NOSYS)
            }
        },
    };
    let value = match result {
        Ok(v) => v,
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
#[allow(non_upper_case_globals)] // libc spells the syscall numbers SYS_name.
fn handler(nr: i64) -> Option<Handler> {
    use libc::*;
    Some(match nr {
        SYS_read => fs::read,
        SYS_write => fs::write,
        SYS_readv => fs::readv,
        SYS_writev => fs::writev,
        SYS_pread64 => fs::pread64,
        SYS_pwrite64 => fs::pwrite64,
        SYS_open => fs::open,
        SYS_openat => fs::openat,
        SYS_close => fs::close,
        SYS_lseek => fs::lseek,
        SYS_fstat => fs::fstat,
        SYS_stat => fs::stat,
        SYS_lstat => fs::lstat,
        SYS_newfstatat => fs::newfstatat,
        SYS_statx => fs::statx,
        SYS_access => fs::access,
        SYS_faccessat => fs::faccessat,
        SYS_faccessat2 => fs::faccessat2,
        SYS_getdents64 => fs::getdents64,
        SYS_getcwd => fs::getcwd,
        SYS_chdir => fs::chdir,
        SYS_fchdir => fs::fchdir,
        SYS_mkdir => fs::mkdir,
        SYS_mkdirat => fs::mkdirat,
        SYS_rmdir => fs::rmdir,
        SYS_unlink => fs::unlink,
        SYS_unlinkat => fs::unlinkat,
        SYS_rename => fs::rename,
        SYS_renameat => fs::renameat,
        SYS_renameat2 => fs::renameat2,
        SYS_readlink => fs::readlink,
        SYS_readlinkat => fs::readlinkat,
        SYS_fcntl => fs::fcntl,
        SYS_dup => fs::dup,
        SYS_dup2 => fs::dup2,
        SYS_dup3 => fs::dup3,
        SYS_pipe => fs::pipe,
        SYS_pipe2 => fs::pipe2,
        SYS_ioctl => fs::ioctl,
        SYS_brk => mem::brk,
        SYS_mmap => mem::mmap,
        SYS_munmap => mem::munmap,
        SYS_mprotect => mem::mprotect,
        SYS_mremap => mem::mremap,
        SYS_madvise => mem::madvise,
        SYS_arch_prctl => info::arch_prctl,
        SYS_set_tid_address => info::set_tid_address,
        SYS_set_robust_list => info::set_robust_list,
        SYS_uname => info::uname,
        SYS_getpid => info::getpid,
        SYS_gettid => info::getpid,
        SYS_getppid => info::getppid,
        SYS_getuid => info::getuid,
        SYS_geteuid => info::geteuid,
        SYS_getgid => info::getgid,
        SYS_getegid => info::getegid,
        SYS_getrandom => info::getrandom,
        SYS_clock_gettime => info::clock_gettime,
        SYS_clock_getres => info::clock_getres,
        SYS_gettimeofday => info::gettimeofday,
        SYS_time => info::time,
        SYS_nanosleep => info::nanosleep,
        SYS_clock_nanosleep => info::clock_nanosleep,
        SYS_prlimit64 => info::prlimit64,
        SYS_getrlimit => info::getrlimit,
        SYS_sysinfo => info::sysinfo,
        SYS_sched_yield => info::sched_yield,
        SYS_rt_sigaction => info::rt_sigaction,
        SYS_rt_sigprocmask => info::rt_sigprocmask,
        _ => return None,
    })
}

/// A syscall's name for traces.
#[allow(non_upper_case_globals)]
fn name(nr: i64) -> String {
    use libc::*;
    let known = [
        (SYS_read, "read"),
        (SYS_write, "write"),
        (SYS_openat, "openat"),
        (SYS_close, "close"),
        (SYS_mmap, "mmap"),
        (SYS_munmap, "munmap"),
        (SYS_brk, "brk"),
        (SYS_ioctl, "ioctl"),
        (SYS_rseq, "rseq"),
        (SYS_clone, "clone"),
        (SYS_clone3, "clone3"),
        (SYS_futex, "futex"),
        (SYS_kill, "kill"),
        (SYS_tgkill, "tgkill"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == nr)
        .map_or_else(|| format!("syscall_{nr}"), |(_, s)| s.to_string())
}
