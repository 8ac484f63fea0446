//! km: runs an unmodified Linux x86-64 executable as a unikernel in its own KVM VM.
//!
//! The layers, each using only the ones above it in this list (docs/architecture.md;
//! `scripts/modcycles` checks the direction):
//! 1. [`memory`]: host reservations, memslots, bounds-checked guest access;
//! 2. [`kvm`]: the KVM VM and vCPU wrappers;
//! 3. [`guest`]: the machine and what the payload sees in memory (landing pad in
//!    [`guest::landing_pad`], loader, address space, page tables, vDSO);
//! 4. [`kernel`]: the Linux personality (process, threads, signals, descriptors);
//! 5. [`syscalls`]: the syscall table (`syscalls/mod.rs`) and handlers;
//! 6. [`debug`] and [`crash`]: debug events, crash reports and kmcore; [`snapshot`]:
//!    snapshots (a kmcore plus km's note) and their restore;
//! 7. [`run`]: the exit loop;
//! 8. [`cli`], [`gdb`] (the remote-protocol transport) and this file's start-up.
//!
//! [`trace`] is a leaf every layer may use.

pub mod cli;
pub mod crash;
pub mod debug;
pub mod gdb;
pub mod guest;
pub mod kernel;
pub mod kvm;
pub mod memory;
pub mod run;
pub mod sandbox;
pub mod seccomp;
pub mod snapshot;
pub mod stats;
pub mod syscalls;
pub mod trace;

use std::ffi::{CString, OsString};
use std::io::IsTerminal;
use std::os::unix::ffi::OsStrExt;

use anyhow::{Context, Result, bail};

use std::sync::Arc;

use crate::guest::vm::Vm;
use crate::kernel::process::{Config, Guest, Thread};
use crate::kernel::ptrace::Debugger;
use crate::kernel::{exec, lock, signals};
use crate::kvm::kick;

/// The port `-g` and `--gdb-listen` use when none is given.
pub const DEFAULT_GDB_PORT: u16 = 2159;

/// km's exit status when km itself fails (as opposed to the payload).
pub const KM_ERROR_STATUS: u8 = 125;

fn cstring(s: &OsString) -> Result<CString> {
    CString::new(s.as_bytes()).with_context(|| format!("{s:?} contains a NUL byte"))
}

/// What km inherited from its parent that the payload inherits in turn.
pub struct Inherited {
    fds: Vec<(i32, std::os::fd::OwnedFd)>,
    /// The /dev/kvm descriptor named by `--kvm-fd`.
    kvm: Option<std::os::fd::OwnedFd>,
    /// The gdb connection named by `--gdb-session`.
    gdb: Option<std::os::fd::OwnedFd>,
    /// Those named by `--lock-keepers`.
    lock_keepers: Vec<std::os::fd::OwnedFd>,
    /// The pipe named by `--exit-report`.
    exit_report: Option<std::os::fd::OwnedFd>,
    /// The pipe named by `--kvm-cpuid`.
    kvm_cpuid: Option<std::os::fd::OwnedFd>,
    sigmask: u64,
    ignored: u64,
}

impl Inherited {
    /// Takes km's inherited descriptors and signal state; call before km opens
    /// anything or installs a handler. The descriptors the options named by `cli`
    /// (`--kvm-fd`, `--lock-keepers`, `--exit-report`, `--kvm-cpuid`) and
    /// `gdb_fd` are km's, not the payload's.
    pub fn take(cli: &cli::Cli, gdb_fd: Option<i32>) -> Inherited {
        let (kvm_fd, report_fd, cpuid_fd) = (cli.kvm_fd, cli.exit_report, cli.kvm_cpuid);
        let lock_keepers = &cli.lock_keepers;
        let (own, fds) = memory::host::inherited_fds()
            .into_iter()
            .partition::<Vec<_>, _>(|(n, _)| {
                Some(*n) == kvm_fd
                    || Some(*n) == gdb_fd
                    || Some(*n) == report_fd
                    || Some(*n) == cpuid_fd
                    || lock_keepers.contains(n)
            });
        let (mut kvm, mut gdb, mut report, mut cpuid) = (None, None, None, None);
        let mut keepers = Vec::new();
        for (n, fd) in own {
            if Some(n) == kvm_fd {
                kvm = Some(fd);
            } else if Some(n) == gdb_fd {
                gdb = Some(fd);
            } else if Some(n) == report_fd {
                report = Some(fd);
            } else if Some(n) == cpuid_fd {
                cpuid = Some(fd);
            } else {
                keepers.push(fd);
            }
        }
        let (sigmask, ignored) = kick::take_inherited();
        Inherited {
            fds,
            kvm,
            gdb,
            lock_keepers: keepers,
            exit_report: report,
            kvm_cpuid: cpuid,
            sigmask,
            ignored,
        }
    }
}

/// KVM's CPUID as the km that execve replaced passed it (`--kvm-cpuid`).
fn known_cpuid(cli: &cli::Cli, pipe: Option<std::os::fd::OwnedFd>) -> Result<Option<Vec<u8>>> {
    match (cli.kvm_cpuid, pipe) {
        (Some(n), None) => bail!("--kvm-cpuid {n}: no such inherited descriptor"),
        (Some(n), Some(pipe)) => kvm::vm::cpuid_after_exec(pipe)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("--kvm-cpuid {n}: {e}")),
        (None, _) => Ok(None),
    }
}

/// km's policies for the payload from `cli` (the payload's own fields empty).
fn policies(cli: &cli::Cli) -> Result<Config> {
    let core_file = cli.core_file();
    let snapshot_path = std::path::absolute(&cli.snapshot).context("--snapshot")?;
    Ok(Config {
        name: String::new(),
        argv: Vec::new(),
        exe: Default::default(),
        environ: Vec::new(),
        vvar: None,
        auxv: Vec::new(),
        exec_options: cli.exec_options(),
        kill_unimpl: cli.kill_unimpl_scall,
        core_despite_rlimit: core_file.as_ref().is_some_and(|(_, forced)| *forced),
        core_path: core_file.map(|(path, _)| path),
        crash_report: cli.crash_report_sink(std::io::stderr().is_terminal()),
        snapshot_path,
        vdso: !cli.no_vdso,
        exec_in_place: cli.mgtpipe.is_none() && !cli.exec_reexec,
    })
}

/// km's own set-up before the payload runs: signal handlers, fault handling.
fn install_handlers() -> Result<()> {
    kick::install()?;
    kernel::process::set_session_taker(gdb::take_over);
    kernel::process::set_vfork_runner(run::run_vfork_child);
    memory::faults::install()
}

/// Serves `--mgtpipe` requests for `guest` from a km thread.
fn serve_management(cli: &cli::Cli, guest: &Arc<Guest>) -> Result<()> {
    let Some(path) = &cli.mgtpipe else {
        return Ok(());
    };
    let listener = snapshot::mgt::listen(path)?;
    let guest = guest.clone();
    std::thread::Builder::new()
        .name("km-mgt".into())
        .spawn(move || snapshot::mgt::serve(guest, listener))
        .context("starting the management thread")?;
    Ok(())
}

/// The debugger `-g` or `--gdb-listen` asks for.
fn gdb_debugger(cli: &cli::Cli) -> Option<Arc<Debugger>> {
    if cli.gdb_listen {
        Some(Arc::new(Debugger::detached()))
    } else {
        cli.gdb_port.map(|_| Arc::new(Debugger::default()))
    }
}

/// Starts the gdb stub of `-g` (which waits for gdb's connection here, the
/// payload held from its start) or of `--gdb-listen` (gdb attaches when it likes).
fn start_gdb_stub(cli: &cli::Cli, guest: &Arc<Guest>, debugger: &Arc<Debugger>) -> Result<()> {
    let port = cli.gdb_port.unwrap_or(DEFAULT_GDB_PORT);
    if !cli.gdb_listen {
        // Held from the start: SIGTERM or SIGINT while waiting for gdb ends km.
        debugger.request_stop();
    }
    let addr = format!("{}:{port}", cli.gdb_address);
    let listener = gdb::listen(&addr, &guest.config.name, !cli.gdb_listen)?;
    let (guest, debugger) = (guest.clone(), debugger.clone());
    if cli.gdb_listen {
        std::thread::Builder::new()
            .name("km-gdb".into())
            .spawn(move || gdb::serve_attaches(guest, debugger, listener))?;
    } else {
        let stream = gdb::accept(&listener)?;
        std::thread::Builder::new()
            .name("km-gdb".into())
            .spawn(move || gdb::serve_from_start(guest, debugger, stream))?;
    }
    Ok(())
}

/// Loads the payload named by `cli` and runs it; returns only on a monitor error.
pub fn run(cli: &cli::Cli, inherited: Inherited) -> Result<std::convert::Infallible> {
    if cli.seccomp_inherited {
        kick::install_sigsys_report()?;
    }
    let path = &cli.command[0];
    let filters = match cli.no_seccomp || cli.seccomp_inherited {
        true => None,
        false => Some(seccomp::compile()?),
    };
    if snapshot::restore::is_core(std::path::Path::new(path)) {
        return restore(cli, inherited, filters);
    }
    let mut argv = cli
        .command
        .iter()
        .map(cstring)
        .collect::<Result<Vec<_>>>()?;
    if let Some(argv0) = &cli.argv0 {
        argv[0] = cstring(argv0)?;
    }
    let program = exec::resolve(path, argv)?;
    exec::show_as(&program);
    if let Some(n) = cli.kvm_fd
        && inherited.kvm.is_none()
    {
        bail!("--kvm-fd {n}: no such inherited descriptor");
    }
    match (cli.exit_report, inherited.exit_report) {
        (Some(n), None) => bail!("--exit-report {n}: no such inherited descriptor"),
        (Some(n), Some(pipe)) => kernel::children::report_after_exec(pipe)
            .map_err(|e| anyhow::anyhow!("--exit-report {n}: {e}"))?,
        (None, _) => {}
    }
    if let Some(limits) = &cli.guest_limits {
        guest::limits::restore(limits).map_err(anyhow::Error::msg)?;
    }
    let cpuid = known_cpuid(cli, inherited.kvm_cpuid)?;
    let mut vm = Vm::new(inherited.kvm, cpuid.as_deref())?;
    let envp = if cli.putenv.is_empty() {
        std::env::vars_os()
            .map(|(k, v)| cstring(&[k, v].join(std::ffi::OsStr::new("="))))
            .collect::<Result<Vec<_>>>()?
    } else {
        cli.putenv.iter().map(cstring).collect::<Result<Vec<_>>>()?
    };
    let execfn = cstring(path)?;
    let loaded = exec::load(&mut vm, &program, &execfn, &envp, policies(cli)?)?;
    install_handlers()?;
    let session = match (gdb_session(cli)?, inherited.gdb) {
        (Some((_, launched, relay)), Some(conn)) => Some((conn, launched, relay)),
        (Some((n, ..)), None) => bail!("--gdb-session {n}: no such inherited descriptor"),
        (None, _) => None,
    };
    let debugger = session.as_ref().map(|_| Arc::new(Debugger::default()));
    let debugger = debugger.or_else(|| gdb_debugger(cli));
    kernel::exec::keep_for_locks(inherited.lock_keepers);
    let fds = kernel::fdtable::FdTable::inherited(inherited.fds, &cli.closed_stdio);
    let guest = Arc::new(Guest::new(
        loaded.config,
        vm,
        loaded.mm,
        fds,
        debugger.clone(),
        run::run_thread,
    ));
    // After an execve, the ignored set the exec'ing km passed (SIGPIPE included).
    let ignored = cli
        .exec_signals
        .map_or(inherited.ignored, |(_, _, ignored)| ignored);
    for sig in 1..=64 {
        if ignored & signals::bit(sig) != 0 {
            lock(&guest.signals).actions[(sig - 1) as usize].handler = libc::SIG_IGN as u64;
        }
    }
    if ignored & signals::bit(libc::SIGCHLD) != 0 {
        kick::mirror_sigchld(true)?;
    }
    for sig in (1..=64).filter(|&sig| ignored & signals::bit(sig) != 0) {
        kick::mirror_job_control(sig, true)?;
    }
    // An execve keeps the signals pending (their senders' details are not kept).
    let (sigmask, pending, _) = cli.exec_signals.unwrap_or((inherited.sigmask, 0, 0));
    for sig in (1..=64).filter(|&sig| pending & signals::bit(sig) != 0) {
        signals::send_to_process(&guest, signals::info(sig, signals::SI_USER))
            .context("restoring a pending signal")?;
    }
    serve_management(cli, &guest)?;
    if cli.sandbox {
        // Before the first vCPU: its first run starts KVM's worker thread in km.
        sandbox::enter(cli.sandbox_uid, cli.sandbox_gid)?;
    }
    let vcpu = guest.take_vcpu()?;
    guest.start_clocks(&vcpu)?;
    vcpu.start(loaded.entry, loaded.rsp)?;
    let tid = rustix::process::getpid().as_raw_nonzero().get();
    let handle = guest.thread_started(tid);
    let main = Thread::new(tid, handle, vcpu, sigmask);
    if let Some(filters) = filters {
        seccomp::install(filters)?;
    }
    // Ready to run (a gdb stub, below, may hold the first instruction back).
    stats::started();
    let stopped = session.is_some() || (cli.gdb_port.is_some() && !cli.gdb_listen);
    if let Some((conn, launched, relay)) = session {
        // The km an execve started under gdb: the session goes on, with the exec.
        if let Some(debugger) = &debugger {
            debugger.report(kernel::ptrace::Event::Exec(tid));
        }
        let handover = kernel::process::Handover {
            launched,
            running: true,
            relay,
        };
        kernel::process::take_over_session(&guest, conn, handover)?;
    } else if let Some(debugger) = &debugger {
        start_gdb_stub(cli, &guest, debugger)?;
    }
    guest.run(main, stopped);
    // The main thread exited while others run; the last one to exit ends km.
    loop {
        std::thread::park();
    }
}

/// Resumes the snapshot `cli` names: every thread of it, each on its own host
/// thread (the process's first thread on this one); returns only on a monitor
/// error.
fn restore(
    cli: &cli::Cli,
    inherited: Inherited,
    filters: Option<seccomp::Filters>,
) -> Result<std::convert::Infallible> {
    let path = std::path::Path::new(&cli.command[0]);
    let snap = snapshot::restore::Snapshot::open(path)?;
    let state = &snap.state;
    guest::limits::restore(&state.guest_limits).map_err(anyhow::Error::msg)?;
    let argv = state
        .argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).context("an argument with a NUL byte"))
        .collect::<Result<Vec<_>>>()?;
    memory::host::show_command_line(&argv);
    let cpuid = known_cpuid(cli, inherited.kvm_cpuid)?;
    let mut vm = Vm::new(inherited.kvm, cpuid.as_deref())?;
    let mm = snap.address_space(&mut vm)?;
    let fds = snap.descriptors(kernel::fdtable::FdTable::inherited(
        inherited.fds,
        &cli.closed_stdio,
    ))?;
    std::env::set_current_dir(&state.cwd)
        .with_context(|| format!("returning to the directory {}", state.cwd))?;
    install_handlers()?;
    let debugger = gdb_debugger(cli);
    let guest = snap.guest(
        policies(cli)?,
        vm,
        mm,
        fds,
        debugger.clone(),
        run::run_thread,
    )?;
    if lock(&guest.signals).actions[(libc::SIGCHLD - 1) as usize].handler == libc::SIG_IGN as u64 {
        kick::mirror_sigchld(true)?;
    }
    let actions = lock(&guest.signals).actions;
    for (sig, action) in (1..).zip(&actions) {
        kick::mirror_job_control(sig, action.handler == libc::SIG_IGN as u64)?;
    }
    // The pages come in from here on (--sandbox: once km has dropped its identity,
    // which it must do single-threaded).
    if !cli.sandbox {
        snapshot::restore::fill_in_background(&guest)?;
    }
    let main = snap.threads.iter().position(|t| t.extra.main).unwrap_or(0);
    let mut vcpus = Vec::new();
    for t in &snap.threads {
        let vcpu = guest.take_vcpu()?;
        snapshot::restore::resume_on(&vcpu, t)?;
        vcpus.push(vcpu);
    }
    guest.start_clocks(&vcpus[main])?;
    serve_management(cli, &guest)?;
    if cli.sandbox {
        sandbox::enter(cli.sandbox_uid, cli.sandbox_gid)?;
    }
    if let Some(filters) = filters {
        seccomp::install(filters)?;
    }
    if let Some(debugger) = &debugger {
        start_gdb_stub(cli, &guest, debugger)?;
    }
    // Under `-g` every thread parks before its first instruction.
    let stopped = cli.gdb_port.is_some() && !cli.gdb_listen;
    let all_started = Arc::new(std::sync::Barrier::new(vcpus.len()));
    let mut main_thread = None;
    for (i, (vcpu, t)) in vcpus.into_iter().zip(&snap.threads).enumerate() {
        let extra = t.extra;
        let sigmask = t.sigmask;
        let pending = snap.pending(Some(i));
        let old_ids = t.old_ids();
        let start = move |guest: &Arc<Guest>| {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            snapshot::restore::renumber(guest, old_ids, tid);
            let handle = guest.thread_started(tid);
            for info in pending {
                let _ = handle.pending.add(info);
            }
            Thread {
                clear_child_tid: extra.clear_child_tid,
                robust_list: extra.robust_list,
                altstack: extra.altstack,
                ..Thread::new(tid, handle, vcpu, sigmask)
            }
        };
        if i == main {
            main_thread = Some(start);
            continue;
        }
        let (guest, all_started) = (guest.clone(), all_started.clone());
        std::thread::Builder::new().spawn(move || {
            let thread = start(&guest);
            all_started.wait();
            guest.run(thread, stopped);
        })?;
    }
    let thread = main_thread.context("no thread to resume")?(&guest);
    // No thread runs before every one is counted (the last to exit ends km).
    all_started.wait();
    trace!(
        trace::Category::Snapshot,
        "restored {} ({} threads)",
        path.display(),
        snap.threads.len()
    );
    if cli.sandbox {
        snapshot::restore::fill_in_background(&guest)?;
    }
    stats::restored();
    guest.run(thread, stopped);
    loop {
        std::thread::park();
    }
}

/// `--gdb-session=FD,HOW`: the connection's descriptor, whether km started the
/// payload for gdb (`run`) rather than gdb attaching (`attach`), and whether
/// the descriptor is a fork parent's relay (`relay-run`, `relay-attach`).
fn gdb_session(cli: &cli::Cli) -> Result<Option<(i32, bool, bool)>> {
    let Some(value) = &cli.gdb_session else {
        return Ok(None);
    };
    let parsed = value.split_once(',').and_then(|(fd, how)| {
        let (launched, relay) = match how {
            "run" => (true, false),
            "attach" => (false, false),
            "relay-run" => (true, true),
            "relay-attach" => (false, true),
            _ => return None,
        };
        Some((
            fd.parse::<i32>().ok().filter(|fd| *fd > 2)?,
            launched,
            relay,
        ))
    });
    parsed.map(Some).with_context(|| {
        format!(
            "--gdb-session={value}: expected FD,run, FD,attach, FD,relay-run or FD,relay-attach"
        )
    })
}

/// Runs km with parsed arguments; returns the exit status of a failed start (the
/// payload's own status ends km from inside the run).
pub fn main(cli: cli::Cli) -> u8 {
    let session = match gdb_session(&cli) {
        Ok(session) => session,
        Err(e) => {
            crate::eprintln_whole!("km: {e:#}");
            return KM_ERROR_STATUS;
        }
    };
    let inherited = Inherited::take(&cli, session.map(|(fd, ..)| fd));
    guest::limits::init();
    let payload = cli.command[0].to_string_lossy().into_owned();
    if let Err(e) = trace::init(cli.verbose.as_deref(), &cli.log_to) {
        crate::eprintln_whole!("km: {e:#}");
        return KM_ERROR_STATUS;
    }
    if cli.stats {
        stats::enable(cli.log_to.clone());
    }
    let Err(e) = run(&cli, inherited);
    crate::eprintln_whole!("km: {payload}: {e:#}");
    KM_ERROR_STATUS
}
