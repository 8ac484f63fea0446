//! km's own seccomp filter: defence in depth behind the VM boundary.
//!
//! Once set-up is done, km allows itself only the host syscalls it makes: its own
//! work (KVM ioctls, guest memory, threads, signals, the gdb socket, core files) and
//! those it makes on behalf of the payload (the syscall table's handlers, fork and
//! the re-execution of km for execve). Anything else (ptrace, process_vm_*, kexec,
//! modules, bpf, perf, mount, namespaces, keyrings, ...) raises SIGSYS, whose
//! handler (`vcpu::kick::install_sigsys_report`) names the call and km dies by it.
//! The allow-list is compiled as a search tree on the syscall number (`tree`: a
//! dozen instructions per call, 164 in all where a chain had 1436); the
//! small clone3 filter and the installation (TSYNC) are `seccompiler`'s,
//! Firecracker's crate for a VMM's own threads. The filters are inherited by
//! fork and execve, so a km re-executed for the payload's execve runs under its
//! parent's filters (and skips installing its own, see `Cli::seccomp_inherited`).
//! docs/security.md lists the allow-list; a test keeps both in step.

use std::collections::BTreeMap;

mod tree;

use anyhow::{Context, Result};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
use tree::ArgRule;

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

/// ioctl: KVM's requests (by their type byte) and the requests in [`IOCTLS`].
fn ioctl_rule() -> ArgRule {
    let mut any_of = vec![(0xff00, (KVM_IOCTL_TYPE << 8) as u32)];
    any_of.extend(
        IOCTLS
            .iter()
            .map(|(request, _)| (u32::MAX, *request as u32)),
    );
    ArgRule { arg: 1, any_of }
}

/// prctl: the options in [`PRCTLS`].
fn prctl_rule() -> ArgRule {
    let any_of = PRCTLS
        .iter()
        .map(|(option, _)| (u32::MAX, *option as u32))
        .collect();
    ArgRule { arg: 0, any_of }
}

/// The clone flags that create namespaces: km's clone never passes them (all
/// in the low 32 bits, which is what clone's flags are).
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWTIME) as u32;

/// clone (threads, fork) without namespace flags.
fn clone_rule() -> ArgRule {
    ArgRule {
        arg: 0,
        any_of: vec![(NAMESPACE_FLAGS, 0)],
    }
}

/// The allow-list with the rules its checked calls' arguments must meet.
fn allowed() -> Vec<(u32, Option<ArgRule>)> {
    ALLOWED
        .iter()
        .flat_map(|g| g.calls)
        .map(|&(nr, _)| {
            let rule = match nr {
                libc::SYS_ioctl => Some(ioctl_rule()),
                libc::SYS_prctl => Some(prctl_rule()),
                libc::SYS_clone => Some(clone_rule()),
                _ => None,
            };
            (nr as u32, rule)
        })
        .collect()
}

/// km's filter as a BPF program: the allow-list, SIGSYS for anything else.
fn program() -> Result<BpfProgram> {
    tree::compile(&allowed()).map_err(|e| anyhow::anyhow!("compiling km's seccomp filter: {e}"))
}

/// A second filter: clone3 fails with ENOSYS. Its flags sit in memory, out of a
/// filter's reach, so km's threads are made with clone (glibc falls back to it),
/// whose flags the first filter checks. The kernel applies the stricter answer of
/// the two filters, so clone3 gets ENOSYS although the allow-list names it.
fn clone3_refusal() -> Result<BpfProgram> {
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        seccompiler::TargetArch::x86_64,
    )
    .context("building km's clone3 filter")?;
    filter.try_into().context("compiling km's clone3 filter")
}

/// km's two filters, compiled (tens of microseconds) by [`compile`].
pub struct Filters {
    program: BpfProgram,
    clone3: BpfProgram,
}

/// Compiles km's filters; [`install`] installs them.
pub fn compile() -> Result<Filters> {
    Ok(Filters {
        program: program()?,
        clone3: clone3_refusal()?,
    })
}

/// Installs km's filters on every thread of km (TSYNC), with the SIGSYS
/// handler that reports a refused call.
pub fn install(filters: Filters) -> Result<()> {
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
        let doc = include_str!("../../docs/security.md");
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

    /// The compiled filter allows the list, with its argument rules, and nothing
    /// else; and it stays small (the kernel's install time grows with it).
    #[test]
    fn the_filter_allows_the_list_and_nothing_else() {
        use tree::interpret::run;
        let program = program().unwrap();
        assert!(program.len() < 300, "{} instructions", program.len());
        let x86_64 = tree::AUDIT_ARCH_X86_64;
        let answer = |nr: i64, arg0: u64, arg1: u64| {
            run(&program, nr as u32, x86_64, [arg0, arg1, 0, 0, 0, 0])
        };
        let allowed: Vec<i64> = ALLOWED.iter().flat_map(|g| g.calls).map(|c| c.0).collect();
        let (allow, trap) = (libc::SECCOMP_RET_ALLOW, libc::SECCOMP_RET_TRAP);
        for nr in 0..1024 {
            let plain = allowed.contains(&nr)
                && ![libc::SYS_ioctl, libc::SYS_prctl, libc::SYS_clone].contains(&nr);
            let want = if plain { allow } else { trap };
            assert_eq!(answer(nr, u64::MAX, u64::MAX), want, "syscall {nr}");
        }
        let kvm_run = 0xae80;
        for (request, name) in IOCTLS
            .iter()
            .map(|(r, n)| (*r, *n))
            .chain([(kvm_run, "KVM_RUN")])
        {
            assert_eq!(answer(libc::SYS_ioctl, 3, request), allow, "{name}");
        }
        assert_eq!(answer(libc::SYS_ioctl, 3, libc::TIOCSTI), trap);
        for (option, name) in PRCTLS {
            assert_eq!(answer(libc::SYS_prctl, *option as u64, 0), allow, "{name}");
        }
        assert_eq!(
            answer(libc::SYS_prctl, libc::PR_SET_SECCOMP as u64, 0),
            trap
        );
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(answer(libc::SYS_clone, thread, 0), allow);
        assert_eq!(answer(libc::SYS_clone, libc::SIGCHLD as u64, 0), allow);
        let new_user = libc::CLONE_NEWUSER as u64;
        assert_eq!(answer(libc::SYS_clone, thread | new_user, 0), trap);
        assert_eq!(run(&program, 0x4000_0000, x86_64, [0; 6]), trap, "x32");
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
