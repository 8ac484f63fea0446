//! km's own seccomp filter: defence in depth behind the VM boundary.
//!
//! Once set-up is done, km allows itself only the host syscalls it makes: its own
//! work (KVM ioctls, guest memory, threads, signals, the gdb socket, core files) and
//! those it makes on behalf of the payload (the syscall table's handlers, fork and
//! the re-execution of km for execve). Anything else (ptrace, process_vm_*, kexec,
//! modules, bpf, perf, mount, namespaces, keyrings, ...) raises SIGSYS, whose
//! handler (`vcpu::kick::install_sigsys_report`) names the call and km dies by it.
//! The filter is built with `seccompiler`, the BPF compiler of Firecracker, which
//! is maintained for exactly this use (a VMM's own threads). It is inherited by
//! fork and execve, so a km re-executed for the payload's execve runs under its
//! parent's filters (and skips installing its own, see `Cli::seccomp_inherited`).
//! docs/security.md lists the allow-list; a test keeps both in step.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// `(number, name)` pairs for syscalls allowed whatever their arguments.
macro_rules! syscalls {
    ($($nr:ident),* $(,)?) => {
        &[$((libc::$nr, stringify!($nr)),)*]
    };
}

/// A group of allowed syscalls and why km needs them (the table in docs/security.md).
pub struct Group {
    pub purpose: &'static str,
    pub calls: &'static [(libc::c_long, &'static str)],
}

/// Every syscall km may make, by purpose. `ioctl` and `prctl` are allowed only
/// with the requests in [`IOCTLS`] and the options in [`PRCTLS`].
pub const ALLOWED: &[Group] = &[
    Group {
        purpose: "KVM and guest memory, the payload's System V segments, semaphores and message queues (ioctl restricted, see below)",
        calls: syscalls!(
            SYS_ioctl,
            SYS_mmap,
            SYS_munmap,
            SYS_mprotect,
            SYS_mremap,
            SYS_shmget,
            SYS_shmat,
            SYS_shmdt,
            SYS_shmctl,
            SYS_semget,
            SYS_semtimedop,
            SYS_semctl,
            SYS_msgget,
            SYS_msgsnd,
            SYS_msgrcv,
            SYS_msgctl,
            SYS_madvise,
            SYS_msync,
            SYS_mlock,
            SYS_mlock2,
            SYS_munlock,
            SYS_mlockall,
            SYS_munlockall,
            SYS_mincore,
            SYS_brk,
        ),
    },
    Group {
        purpose: "threads, futexes, time",
        calls: syscalls!(
            SYS_clone,
            SYS_clone3,
            SYS_futex,
            SYS_set_robust_list,
            SYS_get_robust_list,
            SYS_set_tid_address,
            SYS_rseq,
            SYS_exit,
            SYS_exit_group,
            SYS_gettid,
            SYS_sched_yield,
            SYS_membarrier,
            SYS_sched_getaffinity,
            SYS_sched_setaffinity,
            SYS_getcpu,
            SYS_arch_prctl,
            SYS_prctl,
            SYS_nanosleep,
            SYS_restart_syscall,
            SYS_clock_nanosleep,
            SYS_clock_gettime,
            SYS_clock_getres,
            SYS_gettimeofday,
            SYS_time,
        ),
    },
    Group {
        purpose: "signals and timers (km's own, and forwarded to and from the payload)",
        calls: syscalls!(
            SYS_rt_sigaction,
            SYS_rt_sigprocmask,
            SYS_rt_sigreturn,
            SYS_rt_sigpending,
            SYS_rt_sigsuspend,
            SYS_rt_sigtimedwait,
            SYS_sigaltstack,
            SYS_pause,
            SYS_kill,
            SYS_tkill,
            SYS_tgkill,
            SYS_rt_sigqueueinfo,
            SYS_alarm,
            SYS_setitimer,
            SYS_getitimer,
            SYS_timer_create,
            SYS_timer_settime,
            SYS_timer_gettime,
            SYS_timer_getoverrun,
            SYS_timer_delete,
        ),
    },
    Group {
        purpose: "files and descriptors (the payload's, km's start-up, core files)",
        calls: syscalls!(
            SYS_read,
            SYS_write,
            SYS_readv,
            SYS_writev,
            SYS_pread64,
            SYS_pwrite64,
            SYS_preadv,
            SYS_pwritev,
            SYS_preadv2,
            SYS_pwritev2,
            SYS_open,
            SYS_openat,
            SYS_openat2,
            SYS_creat,
            SYS_close,
            SYS_close_range,
            SYS_lseek,
            SYS_fstat,
            SYS_stat,
            SYS_lstat,
            SYS_newfstatat,
            SYS_statx,
            SYS_statfs,
            SYS_fstatfs,
            SYS_access,
            SYS_faccessat,
            SYS_faccessat2,
            SYS_getdents64,
            SYS_getcwd,
            SYS_chdir,
            SYS_fchdir,
            SYS_mkdir,
            SYS_mkdirat,
            SYS_rmdir,
            SYS_unlink,
            SYS_unlinkat,
            SYS_rename,
            SYS_renameat,
            SYS_renameat2,
            SYS_readlink,
            SYS_readlinkat,
            SYS_symlink,
            SYS_symlinkat,
            SYS_link,
            SYS_linkat,
            SYS_chmod,
            SYS_fchmod,
            SYS_fchmodat,
            SYS_chown,
            SYS_lchown,
            SYS_fchown,
            SYS_fchownat,
            SYS_umask,
            SYS_utimensat,
            SYS_utimes,
            SYS_futimesat,
            SYS_utime,
            SYS_mknod,
            SYS_mknodat,
            SYS_truncate,
            SYS_ftruncate,
            SYS_fallocate,
            SYS_fsync,
            SYS_fdatasync,
            SYS_sync,
            SYS_syncfs,
            SYS_sync_file_range,
            SYS_fadvise64,
            SYS_readahead,
            SYS_flock,
            SYS_fcntl,
            SYS_dup,
            SYS_dup2,
            SYS_dup3,
            SYS_pipe,
            SYS_pipe2,
            SYS_sendfile,
            SYS_copy_file_range,
            SYS_splice,
            SYS_tee,
            SYS_vmsplice,
            SYS_getxattr,
            SYS_lgetxattr,
            SYS_fgetxattr,
            SYS_listxattr,
            SYS_llistxattr,
            SYS_flistxattr,
            SYS_setxattr,
            SYS_lsetxattr,
            SYS_fsetxattr,
            SYS_removexattr,
            SYS_lremovexattr,
            SYS_fremovexattr,
            SYS_eventfd,
            SYS_eventfd2,
            SYS_pidfd_open,
            SYS_timerfd_create,
            SYS_timerfd_settime,
            SYS_timerfd_gettime,
            SYS_memfd_create,
            SYS_inotify_init,
            SYS_inotify_init1,
            SYS_inotify_add_watch,
            SYS_inotify_rm_watch,
            SYS_poll,
            SYS_ppoll,
            SYS_select,
            SYS_pselect6,
            SYS_epoll_create,
            SYS_epoll_create1,
            SYS_epoll_ctl,
            SYS_epoll_wait,
            SYS_epoll_pwait,
        ),
    },
    Group {
        purpose: "sockets (the payload's, and the gdb stub's)",
        calls: syscalls!(
            SYS_socket,
            SYS_socketpair,
            SYS_bind,
            SYS_connect,
            SYS_listen,
            SYS_accept,
            SYS_accept4,
            SYS_getsockname,
            SYS_getpeername,
            SYS_setsockopt,
            SYS_getsockopt,
            SYS_sendto,
            SYS_recvfrom,
            SYS_sendmsg,
            SYS_sendmmsg,
            SYS_recvmsg,
            SYS_shutdown,
        ),
    },
    Group {
        purpose: "processes, credentials, limits (fork and execve re-execute km)",
        calls: syscalls!(
            SYS_fork,
            SYS_vfork,
            SYS_execve,
            SYS_wait4,
            SYS_waitid,
            SYS_getpid,
            SYS_getppid,
            SYS_setpgid,
            SYS_getpgid,
            SYS_getpgrp,
            SYS_setsid,
            SYS_getsid,
            SYS_getuid,
            SYS_geteuid,
            SYS_getgid,
            SYS_getegid,
            SYS_getresuid,
            SYS_getresgid,
            SYS_getgroups,
            SYS_setuid,
            SYS_setgid,
            SYS_setreuid,
            SYS_setregid,
            SYS_setresuid,
            SYS_setresgid,
            SYS_setfsuid,
            SYS_setfsgid,
            SYS_setgroups,
            SYS_getpriority,
            SYS_setpriority,
            SYS_sched_getscheduler,
            SYS_sched_getparam,
            SYS_sched_setparam,
            SYS_sched_setscheduler,
            SYS_sched_rr_get_interval,
            SYS_sched_get_priority_max,
            SYS_sched_get_priority_min,
            SYS_getrusage,
            SYS_times,
            SYS_getrlimit,
            SYS_prlimit64,
            SYS_uname,
            SYS_sysinfo,
            SYS_getrandom,
        ),
    },
];

/// The ioctl requests km makes: the payload's (`syscalls/ioctl.rs`: FIONBIO,
/// FIOASYNC, FIONREAD, TIOCOUTQ, the terminal and pty requests, the socket-interface
/// queries) and FIOCLEX and FIONCLEX for km's own descriptors (the gdb socket).
/// KVM's requests (type 0xAE, on km's KVM descriptors) are allowed as a class.
pub const IOCTLS: &[(u64, &str)] = &[
    (libc::FIONBIO, "FIONBIO"),
    (libc::FIOCLEX, "FIOCLEX"),
    (libc::FIONCLEX, "FIONCLEX"),
    (libc::FIOASYNC, "FIOASYNC"),
    (libc::FIONREAD, "FIONREAD"),
    (libc::TIOCOUTQ, "TIOCOUTQ"),
    (libc::TCGETS, "TCGETS"),
    (libc::TCSETS, "TCSETS"),
    (libc::TCSETSW, "TCSETSW"),
    (libc::TCSETSF, "TCSETSF"),
    (libc::TCFLSH, "TCFLSH"),
    (libc::TCXONC, "TCXONC"),
    (libc::TIOCGWINSZ, "TIOCGWINSZ"),
    (libc::TIOCSWINSZ, "TIOCSWINSZ"),
    (libc::TIOCGPGRP, "TIOCGPGRP"),
    (libc::TIOCSPGRP, "TIOCSPGRP"),
    (libc::TIOCSCTTY, "TIOCSCTTY"),
    (libc::TIOCNOTTY, "TIOCNOTTY"),
    (libc::TIOCGPTN, "TIOCGPTN"),
    (libc::TIOCSPTLCK, "TIOCSPTLCK"),
    (libc::TIOCGPTPEER, "TIOCGPTPEER"),
    (libc::SIOCGIFNAME, "SIOCGIFNAME"),
    (libc::SIOCGIFINDEX, "SIOCGIFINDEX"),
    (libc::SIOCGIFFLAGS, "SIOCGIFFLAGS"),
    (libc::SIOCGIFADDR, "SIOCGIFADDR"),
    (libc::SIOCGIFDSTADDR, "SIOCGIFDSTADDR"),
    (libc::SIOCGIFBRDADDR, "SIOCGIFBRDADDR"),
    (libc::SIOCGIFNETMASK, "SIOCGIFNETMASK"),
    (libc::SIOCGIFMTU, "SIOCGIFMTU"),
    (libc::SIOCGIFHWADDR, "SIOCGIFHWADDR"),
    (libc::SIOCGIFCONF, "SIOCGIFCONF"),
];

/// The type byte of KVM's ioctl requests (`_IO(KVMIO, n)`, KVMIO = 0xAE).
const KVM_IOCTL_TYPE: u64 = 0xae;

/// The prctl options km makes: thread names, and the options the payload's prctl
/// passes on (PR_SET_NO_NEW_PRIVS is also how the filter is installed).
pub const PRCTLS: &[(i32, &str)] = &[
    (libc::PR_SET_PDEATHSIG, "PR_SET_PDEATHSIG"),
    (libc::PR_GET_PDEATHSIG, "PR_GET_PDEATHSIG"),
    (libc::PR_GET_DUMPABLE, "PR_GET_DUMPABLE"),
    (libc::PR_SET_DUMPABLE, "PR_SET_DUMPABLE"),
    (libc::PR_SET_NAME, "PR_SET_NAME"),
    (libc::PR_GET_NAME, "PR_GET_NAME"),
    (libc::PR_SET_CHILD_SUBREAPER, "PR_SET_CHILD_SUBREAPER"),
    (libc::PR_GET_CHILD_SUBREAPER, "PR_GET_CHILD_SUBREAPER"),
    (libc::PR_SET_NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS"),
    (libc::PR_GET_NO_NEW_PRIVS, "PR_GET_NO_NEW_PRIVS"),
    (PR_GET_AUXV, "PR_GET_AUXV"),
];

/// prctl(PR_GET_AUXV), which a km re-executed under the filter makes at start-up
/// (Rust's runtime reads the auxiliary vector with it; Linux 6.4).
const PR_GET_AUXV: i32 = 0x4155_5856;

/// A condition on argument `arg` (its low 32 bits, as the kernel reads an int).
fn low_word(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule> {
    let cond = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .context("building a seccomp condition")?;
    SeccompRule::new(vec![cond]).context("building a seccomp rule")
}

fn ioctl_rules() -> Result<Vec<SeccompRule>> {
    let mut rules = vec![low_word(
        1,
        SeccompCmpOp::MaskedEq(0xff00),
        KVM_IOCTL_TYPE << 8,
    )?];
    for (request, _) in IOCTLS {
        rules.push(low_word(1, SeccompCmpOp::Eq, *request)?);
    }
    Ok(rules)
}

fn prctl_rules() -> Result<Vec<SeccompRule>> {
    PRCTLS
        .iter()
        .map(|(option, _)| low_word(0, SeccompCmpOp::Eq, *option as u64))
        .collect()
}

/// The clone flags that create namespaces: km's clone never passes them.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWTIME) as u64;

/// clone (threads, fork) without namespace flags.
fn clone_rules() -> Result<Vec<SeccompRule>> {
    let cond = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS),
        0,
    )
    .context("building a seccomp condition")?;
    Ok(vec![
        SeccompRule::new(vec![cond]).context("building a seccomp rule")?,
    ])
}

fn compile_filter(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram> {
    let filter = SeccompFilter::new(rules, mismatch, matched, seccompiler::TargetArch::x86_64)
        .context("building km's seccomp filter")?;
    filter.try_into().context("compiling km's seccomp filter")
}

/// km's filter as a BPF program: the allow-list, SIGSYS for anything else.
fn program() -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (nr, _) in ALLOWED.iter().flat_map(|g| g.calls) {
        rules.insert(*nr, Vec::new());
    }
    rules.insert(libc::SYS_ioctl, ioctl_rules()?);
    rules.insert(libc::SYS_prctl, prctl_rules()?);
    rules.insert(libc::SYS_clone, clone_rules()?);
    compile_filter(rules, SeccompAction::Trap, SeccompAction::Allow)
}

/// A second filter: clone3 fails with ENOSYS. Its flags sit in memory, out of a
/// filter's reach, so km's threads are made with clone (glibc falls back to it),
/// whose flags the first filter checks. The kernel applies the stricter answer of
/// the two filters, so clone3 gets ENOSYS although the allow-list names it.
fn clone3_refusal() -> Result<BpfProgram> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    compile_filter(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )
}

/// km's two filters, compiled: about a millisecond of CPU, so start-up compiles
/// them on a thread of its own ([`compile`]) while it builds the VM.
pub struct Filters {
    program: BpfProgram,
    clone3: BpfProgram,
}

fn filters() -> Result<Filters> {
    Ok(Filters {
        program: program()?,
        clone3: clone3_refusal()?,
    })
}

/// km's filters, compiled or being compiled (see [`compile`]).
pub enum Compiling {
    Done(Result<Filters>),
    Running(std::thread::JoinHandle<Result<Filters>>),
}

/// Compiles km's filters, on a short-lived thread (`km-seccomp`) when
/// `in_background` (not when km must stay single-threaded, as `--sandbox`
/// needs it until it drops its identity); [`install`] takes what it made.
pub fn compile(in_background: bool) -> Result<Compiling> {
    if !in_background {
        return Ok(Compiling::Done(filters()));
    }
    let thread = std::thread::Builder::new()
        .name("km-seccomp".into())
        .spawn(filters)
        .context("starting the thread that compiles km's seccomp filter")?;
    Ok(Compiling::Running(thread))
}

/// Installs km's filters, once `compiling` made them, on every thread of km
/// (TSYNC), with the SIGSYS handler that reports a refused call.
pub fn install(compiling: Compiling) -> Result<()> {
    let filters = match compiling {
        Compiling::Done(filters) => filters,
        Compiling::Running(thread) => thread
            .join()
            .map_err(|_| anyhow::anyhow!("compiling km's seccomp filter panicked"))?,
    }?;
    crate::kvm::kick::install_sigsys_report()?;
    // The allow-list refuses seccomp itself, so it goes last.
    seccompiler::apply_filter_all_threads(&filters.clone3)
        .context("installing km's clone3 filter")?;
    seccompiler::apply_filter_all_threads(&filters.program)
        .context("installing km's seccomp filter")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/security.md lists exactly the allowed syscalls, ioctls and prctls.
    #[test]
    fn the_documented_allow_list_is_the_filter() {
        let doc = include_str!("../docs/security.md");
        let documented = |name: &str| doc.contains(&format!("`{name}`"));
        for (_, name) in ALLOWED.iter().flat_map(|g| g.calls) {
            let name = name.strip_prefix("SYS_").unwrap();
            assert!(documented(name), "{name} is allowed but not documented");
        }
        for name in IOCTLS.iter().map(|i| i.1).chain(PRCTLS.iter().map(|p| p.1)) {
            assert!(documented(name), "{name} is allowed but not documented");
        }
        let mut names: Vec<_> = ALLOWED.iter().flat_map(|g| g.calls).collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total, "a syscall is listed twice");
    }

    /// Every request the payload's ioctl passes to the host is allowed.
    #[test]
    fn the_payload_ioctls_are_allowed() {
        for (request, name) in crate::syscalls::ioctl::host_requests() {
            assert!(
                IOCTLS.contains(&(request, name)),
                "{name} is served but not allowed"
            );
        }
    }

    #[test]
    fn never_allowed_calls_are_not_in_the_list() {
        let forbidden = [
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_reboot,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_userfaultfd,
            libc::SYS_iopl,
            libc::SYS_ioperm,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_seccomp,
            libc::SYS_open_by_handle_at,
            libc::SYS_io_uring_setup,
            libc::SYS_pidfd_getfd,
            libc::SYS_kcmp,
        ];
        for (nr, name) in ALLOWED.iter().flat_map(|g| g.calls) {
            assert!(!forbidden.contains(nr), "{name} must never be allowed");
        }
    }
}
