//! What a program name means, the way execve reads it: an ELF executable (with the
//! dynamic linker it names) or a `#!` script whose interpreter is resolved in turn;
//! and how a payload's execve replaces it.
//!
//! A payload's execve loads the new program in place ([`in_place`]) when the
//! process allows it: a new VM, the same km. The process keeps its pid, parent,
//! children, process group, cwd, limits, descriptors without FD_CLOEXEC, signal
//! mask, pending signals and ignored signals, as on Linux. Otherwise (other
//! threads, gdb, a vfork child...) it re-executes km itself (`/proc/self/exe`)
//! on the new program ([`replace`]): the new km starts from a clean VM, and what
//! Linux carries across execve is handed over the way Linux would hand it to km
//! itself: descriptors without FD_CLOEXEC at their guest numbers (km adopts its
//! inherited descriptors at start-up), the signal mask as km's mask, ignored
//! signals as ignored; km's own options are repeated on the new command line.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Condvar, Mutex};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::guest::loader::{self, ElfFile};
use crate::guest::mm::AddressSpace;
use crate::guest::vm::Vm;
use crate::guest::{stack, vdso};
use crate::kernel::process::{Config, Guest, Thread};
use crate::trace;
use crate::trace::Category;

/// Linux's BINPRM_BUF_SIZE: how much of a `#!` line counts.
const SHEBANG_MAX: usize = 256;
/// `#!` rewrites Linux's exec_binprm allows (a sixth is ELOOP): five scripts may
/// chain before the ELF file.
const MAX_REWRITES: usize = 5;
/// How much of an ELF file km reads for its headers (they are at its start).
const HEAD_MAX: u64 = 64 << 10;
/// The largest dynamic linker km reads (glibc's and musl's are under 1 MiB).
const INTERP_MAX: u64 = 64 << 20;

/// A resolved program: the ELF file to load and the arguments it gets.
pub struct Program {
    /// The ELF file (the interpreter of a script).
    pub path: OsString,
    pub argv: Vec<CString>,
    pub elf: ElfFile,
    /// The dynamic linker's path and file, when the program names one.
    pub interp: Option<(String, ElfFile)>,
}

/// Why a program cannot be run: the errno execve returns, and a message for km.
#[derive(Debug)]
pub struct Error {
    pub errno: Errno,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

fn error(errno: Errno, message: impl Into<String>) -> Error {
    Error {
        errno,
        message: message.into(),
    }
}

fn io_error(e: std::io::Error) -> Error {
    let errno = Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO));
    error(errno, e.to_string())
}

fn errno_error(e: Errno) -> Error {
    io_error(e.into())
}

/// What a non-regular file is, for messages.
fn kind(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "a directory",
        FileType::CharacterDevice => "a character device",
        FileType::BlockDevice => "a block device",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        _ => "not a regular file",
    }
}

/// Opens `path` as Linux's open_exec opens a program or an interpreter, without
/// blocking (a FIFO opens at once), then checks the opened file: it must be regular
/// and executable (EACCES otherwise).
fn open_exec(path: &OsStr) -> Result<File, Error> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(errno_error)?;
    let mode = rustix::fs::fstat(&fd).map_err(errno_error)?.st_mode;
    let file_type = FileType::from_raw_mode(mode);
    if file_type != FileType::RegularFile {
        return Err(error(
            Errno::ACCESS,
            format!("not a regular file ({})", kind(file_type)),
        ));
    }
    let executable =
        mode & 0o111 != 0 && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok();
    if !executable {
        return Err(error(Errno::ACCESS, "permission denied (not executable)"));
    }
    Ok(File::from(fd))
}

/// Reads the rest of `file` onto `data`, stopping past `max` bytes in all; false if
/// the file is larger than that.
fn read_at_most(file: &mut File, data: &mut Vec<u8>, max: u64) -> Result<bool, Error> {
    let left = max.saturating_sub(data.len() as u64);
    file.take(left.saturating_add(1))
        .read_to_end(data)
        .map_err(io_error)?;
    Ok(data.len() as u64 <= max)
}

/// Resolves `path` run with `argv` as execve does.
pub fn resolve(path: &OsStr, argv: Vec<CString>) -> Result<Program, Error> {
    resolve_at(path, argv, 0)
}

fn resolve_at(path: &OsStr, argv: Vec<CString>, depth: usize) -> Result<Program, Error> {
    if depth > MAX_REWRITES {
        return Err(error(Errno::LOOP, "too many levels of #! interpreters"));
    }
    let mut file = open_exec(path)?;
    let mut data = Vec::new();
    read_at_most(&mut file, &mut data, SHEBANG_MAX as u64)?;
    if let Some(line) = data.strip_prefix(b"#!") {
        let (interp, arg) = shebang(line)?;
        let mut args = vec![interp.clone()];
        args.extend(arg);
        args.push(CString::new(path.as_bytes()).map_err(|_| error(Errno::INVAL, "NUL in path"))?);
        args.extend(argv.into_iter().skip(1));
        let interp = OsStr::from_bytes(interp.as_bytes()).to_owned();
        return resolve_at(&interp, args, depth + 1).map_err(|e| Error {
            message: format!("interpreter {}: {}", interp.to_string_lossy(), e.message),
            ..e
        });
    }
    if !data.starts_with(&object::elf::ELFMAG) {
        return Err(error(Errno::NOEXEC, "not an ELF file"));
    }
    let elf = read_headers(file, data)?;
    let interp = loader::interp_of(&elf.head, elf.len)
        .map_err(|e| error(Errno::NOEXEC, format!("{e:#}")))?;
    let interp = interp.map(|name| read_interp(&name)).transpose()?;
    Ok(Program {
        path: path.to_owned(),
        argv,
        elf,
        interp,
    })
}

/// `file` with its first bytes (some already in `head`) read: the headers
/// (read up to [`HEAD_MAX`]; the whole file when they lie beyond, which only an
/// unusual file does).
fn read_headers(mut file: File, mut head: Vec<u8>) -> Result<ElfFile, Error> {
    let len = file.metadata().map_err(io_error)?.len();
    if read_at_most(&mut file, &mut head, HEAD_MAX)? {
        return Ok(ElfFile { head, len, file });
    }
    let elf = ElfFile { head, len, file };
    if loader::interp_of(&elf.head, elf.len).is_ok() {
        return Ok(elf);
    }
    let ElfFile {
        mut head, mut file, ..
    } = elf;
    file.read_to_end(&mut head).map_err(io_error)?;
    Ok(ElfFile { head, len, file })
}

/// Reads and checks the dynamic linker `name` (PT_INTERP) with the errno Linux's
/// binfmt_elf gives: open_exec's (ENOENT; EACCES for a file that is not a regular,
/// executable one), ELIBBAD for a file that is no usable linker (here also one over
/// [`INTERP_MAX`]).
fn read_interp(name: &str) -> Result<(String, ElfFile), Error> {
    let in_linker = |e: Error| Error {
        message: format!("dynamic linker {name}: {}", e.message),
        ..e
    };
    let file = open_exec(OsStr::new(name)).map_err(in_linker)?;
    let size = file.metadata().map_err(|e| in_linker(io_error(e)))?.len();
    // The size is checked first (nothing is read).
    if size > INTERP_MAX {
        return Err(in_linker(error(
            Errno::LIBBAD,
            format!("larger than {} MiB", INTERP_MAX >> 20),
        )));
    }
    let elf = read_headers(file, Vec::new()).map_err(in_linker)?;
    loader::check_interp(name, &elf.head, elf.len)
        .map_err(|e| error(Errno::LIBBAD, format!("{e:#}")))?;
    Ok((name.to_owned(), elf))
}

/// The interpreter and optional argument of a `#!` line (after the `#!`), split as
/// Linux's binfmt_script does: the line ends at a newline (or the end of the first
/// [`SHEBANG_MAX`] bytes) and loses its trailing blanks; the name, after leading
/// blanks, ends at a blank or a NUL; what follows a blank, from its first non-blank
/// byte to a NUL, is one argument.
fn shebang(line: &[u8]) -> Result<(CString, Option<CString>), Error> {
    let line = &line[..line.len().min(SHEBANG_MAX - 2)];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = &line[..line[..end]
        .iter()
        .rposition(|b| !blank(b))
        .map_or(0, |i| i + 1)];
    let line = &line[line.iter().position(|b| !blank(b)).unwrap_or(line.len())..];
    let name_end = line
        .iter()
        .position(|b| blank(b) || *b == 0)
        .unwrap_or(line.len());
    let (name, rest) = line.split_at(name_end);
    if name.is_empty() {
        return Err(error(Errno::NOEXEC, "empty #! line"));
    }
    let arg = match rest.split_first() {
        Some((b, rest)) if blank(b) => {
            let rest = &rest[rest.iter().position(|b| !blank(b)).unwrap_or(rest.len())..];
            Some(&rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())])
        }
        _ => None,
    };
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| error(Errno::NOEXEC, "NUL in #! line"));
    Ok((cstr(name)?, arg.map(cstr).transpose()?))
}

/// A program loaded into a new VM, ready for its first vCPU.
pub struct Loaded {
    pub mm: AddressSpace,
    /// km's configuration for it: the program's part, and the policies given.
    pub config: Config,
    pub entry: u64,
    pub rsp: u64,
}

/// Loads `program` into `vm` as Linux's execve does: its segments (and its
/// dynamic linker's), the vDSO unless `policies` leave it out, and the initial
/// stack with `execfn` (AT_EXECFN), the program's arguments and `envp`.
/// `policies`: km's part of the configuration.
pub fn load(
    vm: &mut Vm,
    program: &Program,
    execfn: &CString,
    envp: &[CString],
    policies: Config,
) -> anyhow::Result<Loaded> {
    // The executable by its absolute path, as Linux names it in a core's NT_FILE.
    let exe = std::fs::canonicalize(&program.path)?;
    let (mut image, mut mm) = loader::load(
        vm,
        &exe.to_string_lossy(),
        &program.elf,
        program.interp.as_ref().map(|(n, elf)| (n.as_str(), elf)),
    )?;
    let vdso = match policies.vdso {
        true => Some(vdso::map(vm, &mut mm)?),
        false => None,
    };
    image.vdso = vdso.map_or(0, |v| v.base);
    let exec = stack::Exec {
        execfn,
        argv: &program.argv,
        envp,
    };
    let (rsp, auxv) = stack::build(vm, &image, &exec)?;
    let config = Config {
        name: program.path.to_string_lossy().into_owned(),
        argv: program
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exe,
        environ: envp
            .iter()
            .flat_map(|e| e.as_bytes_with_nul())
            .copied()
            .collect(),
        vvar: vdso.map(|v| v.vvar),
        auxv,
        ..policies
    };
    Ok(Loaded {
        mm,
        config,
        entry: image.entry,
        rsp,
    })
}

/// Makes km look like the payload to `ps` and /proc: its command line and its name
/// (the program file's name, at most 15 bytes, as Linux sets it on execve).
pub fn show_as(program: &Program) {
    crate::memory::host::show_command_line(&program.argv);
    let name = std::path::Path::new(&program.path)
        .file_name()
        .map(|n| n.as_bytes()[..n.len().min(15)].to_vec())
        .and_then(|n| CString::new(n).ok());
    if let Some(name) = name {
        let _ = rustix::thread::set_name(&name);
    }
}

/// The new program's guest and its only thread, ready to run: what an execve in
/// place hands the exit loop.
pub type Replacement = Box<(Arc<Guest>, Thread)>;

/// Replaces the payload by `program` (already resolved) with environment `envp`
/// in this km, on a new VM, when the process allows it: `thread` is its only
/// thread and its first (its tid the pid, which the new program's thread keeps),
/// not a vfork child's, without gdb, a km thread serving it from outside
/// (`--mgtpipe`), POSIX timers (which the exec must delete), AIO contexts or
/// System V IPC (whose undoing the host does at km's end), and with a command
/// line that fits km's (what `ps` shows is written there). `None` when it does
/// not: the caller re-executes km. An errno when the new program could not be
/// loaded: nothing of the process changed, and its execve fails with it.
pub fn in_place(
    guest: &Guest,
    thread: &Thread,
    program: &Program,
    envp: &[CString],
) -> Result<Option<Replacement>, Errno> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let eligible = guest.config.exec_in_place
        && guest.debugger.is_none()
        && thread.vfork_child.is_none()
        && thread.tid == pid
        && guest.thread_ids() == [thread.tid]
        && guest.posix_timers.load(std::sync::atomic::Ordering::SeqCst) == 0
        && crate::kernel::lock(&guest.aio).is_empty()
        && !crate::kernel::children::has_exit_effects()
        && crate::memory::host::command_line_fits(&program.argv);
    if !eligible {
        return Ok(None);
    }
    // An earlier exec's guest still being let go (its thread behind on a busy
    // host) keeps its regions in the fault handler's table: at most the old and
    // the new guest hold them at once.
    settle_retired();
    let sources = crate::stats::sources_kept();
    let execfn = CString::new(program.path.as_bytes()).map_err(|_| Errno::NOENT)?;
    let ready = guest.vm.for_exec().and_then(|mut vm| {
        let loaded = load(&mut vm, program, &execfn, envp, guest.config.clone())?;
        let next = guest.for_exec(loaded.config, vm, loaded.mm);
        let vcpu = next.take_vcpu()?;
        next.start_clocks(&vcpu)?;
        vcpu.start(loaded.entry, loaded.rsp)?;
        Ok((next, vcpu))
    });
    let (next, vcpu) = ready.map_err(|e| {
        trace!(Category::Load, "execve {:?} in place: {e:#}", program.path);
        load_errno(&e)
    })?;
    // The point of no return: the process's state moves to the new program.
    crate::stats::after_exec(&guest.config.name, sources);
    next.take_process_state(guest);
    show_as(program);
    let handle = next.thread_started(thread.tid);
    thread.handle.pending.move_to(&handle.pending);
    let main = Thread::new(thread.tid, handle, vcpu, thread.sigmask);
    trace!(Category::Load, "execve {:?}: loaded in place", program.path);
    Ok(Some(Box::new((Arc::new(next), main))))
}

/// Guests of programs an execve replaced in place that [`retire`] is still
/// letting go, and the wake of a fork that waits for them.
static RETIRING: Mutex<usize> = Mutex::new(0);
static RETIRED: Condvar = Condvar::new();

/// Lets `old`, the guest of a program an execve replaced in place, go on a
/// thread of its own: the teardown of its VM and memory (300-450 µs on this
/// host) then overlaps the new program's start. Here, if no thread can be
/// made. A fork waits for it first ([`settle_retired`]).
pub fn retire(old: Arc<Guest>) {
    *crate::kernel::lock(&RETIRING) += 1;
    let retiring = std::thread::Builder::new()
        .name("km-retire".into())
        .spawn(move || {
            drop(old);
            retired();
        });
    // A thread not made dropped `old` already.
    if retiring.is_err() {
        retired();
    }
}

fn retired() {
    *crate::kernel::lock(&RETIRING) -= 1;
    RETIRED.notify_all();
}

/// Before a host fork: waits until the guests [`retire`] lets go are gone. The
/// thread dropping one would not exist in the child, whose copy of it would
/// then keep that program's memory for as long as the child lives.
pub fn settle_retired() {
    let mut retiring = crate::kernel::lock(&RETIRING);
    while *retiring > 0 {
        retiring = RETIRED.wait(retiring).unwrap_or_else(|e| e.into_inner());
    }
}

/// The errno of a failure to build the new program's VM: the host's (ENOMEM
/// most often) where there is one, ENOEXEC otherwise (the file changed since
/// it was checked).
fn load_errno(e: &anyhow::Error) -> Errno {
    e.chain()
        .find_map(|cause| {
            cause.downcast_ref::<Errno>().copied().or_else(|| {
                cause
                    .downcast_ref::<std::io::Error>()
                    .and_then(std::io::Error::raw_os_error)
                    .or_else(|| cause.downcast_ref::<kvm_ioctls::Error>().map(|e| e.errno()))
                    .map(Errno::from_raw_os_error)
            })
        })
        .unwrap_or(Errno::NOEXEC)
}

/// How long other threads get to stop before an execve goes ahead without them.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Replaces the payload by `program` (already resolved, so known to be loadable)
/// with environment `envp`, by re-executing km. Returns only when the host execve
/// fails, after other threads have stopped for good: the caller ends the payload.
pub fn replace(
    guest: &crate::kernel::process::Guest,
    thread: &crate::kernel::process::Thread,
    program: &Program,
    envp: &[CString],
) -> Errno {
    use crate::memory::host;

    // Linux's de_thread: every other thread is gone before the new program starts.
    // A vfork child's process has no other thread (its parent's are not its own).
    let vfork_child = thread.vfork_child.is_some();
    if !vfork_child {
        guest.stop_others(STOP_TIMEOUT);
        // The new km does not know which children the payload has waited for.
        crate::kernel::children::reap_waited();
    }
    crate::stats::report(&guest.config.name, "execve");
    let kept = thread.fds(guest).inherited_by_exec();
    // Those already at their number (as inherited) stay, as placing one would close
    // it, and a close drops the payload's record locks on its file. The others are
    // placed at their numbers from temporary copies, which, like the copies km
    // passes on (/dev/kvm, gdb's connection), sit at numbers none is placed at, so
    // that placing one never closes another or those. No number above the guest's
    // is needed: km's descriptor limit may be below a guest number kept in place.
    let (in_place, to_place): (Vec<_>, Vec<_>) = kept
        .iter()
        .partition(|(n, fd)| std::os::fd::AsRawFd::as_raw_fd(&**fd) == *n);
    for (_, fd) in &in_place {
        if let Err(e) = host::keep_on_exec(std::os::fd::AsFd::as_fd(&**fd)) {
            return e;
        }
    }
    let kvm_fd = guest.vm.kvm.kvm_fd();
    let targets: std::collections::BTreeSet<i32> = to_place.iter().map(|(n, _)| *n).collect();
    if let Err(e) = hold_numbers(kvm_fd, &targets) {
        return e;
    }
    // From 3: a number km's closed stdio left free is the new program's to reopen.
    let kvm = match host::inheritable_copy(kvm_fd, 3) {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    // The pipe a fork or vfork child reports its exit on goes on to the new km
    // (the exec keeps the pid: the payload stays its parent's child), at a
    // number no descriptor is placed at. It gives way to the payload's: without
    // a number for it (a low RLIMIT_NOFILE) the new km reports nothing, and the
    // parent sees the host's end of the process.
    let mut report = match &thread.vfork_child {
        Some(child) => child.report.and_then(|n| {
            let copy = host::dup_cloexec_from(n, 3).ok()?;
            host::keep_on_exec(std::os::fd::AsFd::as_fd(&copy))
                .ok()
                .map(|()| copy)
        }),
        None => crate::kernel::children::pipe_for_exec(3).ok().flatten(),
    };
    // KVM's CPUID for the new km, which then need not ask KVM again (an
    // optimisation: without a number for it, the new km asks).
    let mut cpuid = cpuid_for_exec(guest);
    let mut temps = Vec::with_capacity(to_place.len());
    for (n, fd) in &to_place {
        let mut copy = rustix::io::fcntl_dupfd_cloexec(fd, 3);
        // The payload's descriptors come first: km's own give way, the CPUID's
        // then the report's.
        while matches!(copy, Err(Errno::MFILE)) && (cpuid.is_some() || report.is_some()) {
            if cpuid.take().is_none() {
                report = None;
            }
            copy = rustix::io::fcntl_dupfd_cloexec(fd, 3);
        }
        match copy {
            Ok(t) => temps.push((*n, t)),
            Err(e) => return e,
        }
    }
    let lock_keepers = match keep_locks_across_exec(&kept, &temps) {
        Ok(keepers) => keepers,
        Err(e) => return e,
    };
    for (n, t) in &temps {
        if let Err(e) = host::place_fd(std::os::fd::AsFd::as_fd(t), *n) {
            return e;
        }
    }
    let closed_stdio: Vec<String> = (0..=2)
        .filter(|n| !kept.iter().any(|(k, _)| k == n))
        .map(|n| {
            host::close_on_exec(n);
            n.to_string()
        })
        .collect();
    let ignored = thread
        .signals(guest)
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.handler == libc::SIG_IGN as u64)
        .fold(0u64, |m, (i, _)| m | 1 << i);
    crate::kvm::kick::prepare_exec(ignored, !vfork_child);
    // A real-time signal queued more than once is kept once.
    let pending = crate::kernel::signals::pending(guest, thread);

    let mut args: Vec<CString> = vec![c"km".into()];
    for opt in &guest.config.exec_options {
        args.push(CString::new(opt.as_bytes()).expect("km options have no NUL"));
    }
    let kvm_fd = format!("--kvm-fd={}", std::os::fd::AsRawFd::as_raw_fd(&kvm));
    args.push(CString::new(kvm_fd).expect("a number has no NUL"));
    if let Some(pipe) = &report {
        let option = format!("--exit-report={}", std::os::fd::AsRawFd::as_raw_fd(pipe));
        args.push(CString::new(option).expect("a number has no NUL"));
    }
    if let Some(pipe) = &cpuid {
        let option = format!("--kvm-cpuid={}", std::os::fd::AsRawFd::as_raw_fd(pipe));
        args.push(CString::new(option).expect("a number has no NUL"));
    }
    // Under gdb, the new km goes on with the session and reports the exec.
    let session = match gdb_session(guest) {
        Ok(session) => session,
        Err(e) => return e,
    };
    // A relay passed on stays whole: no request is left half answered.
    let _turn = guest.debugger.as_ref().map(|d| d.relay_turn());
    if let Some((fd, launched, relayed)) = &session {
        let how = match (*relayed, *launched) {
            (false, true) => "run",
            (false, false) => "attach",
            (true, true) => "relay-run",
            (true, false) => "relay-attach",
        };
        let option = format!(
            "--gdb-session={},{how}",
            std::os::fd::AsRawFd::as_raw_fd(fd)
        );
        args.push(CString::new(option).expect("a number has no NUL"));
    }
    if !lock_keepers.is_empty() {
        let numbers: Vec<String> = lock_keepers.iter().map(|n| n.to_string()).collect();
        let option = format!("--lock-keepers={}", numbers.join(","));
        args.push(CString::new(option).expect("numbers have no NUL"));
    }
    if !closed_stdio.is_empty() {
        let option = format!("--closed-stdio={}", closed_stdio.join(","));
        args.push(CString::new(option).expect("numbers have no NUL"));
    }
    let limits = crate::guest::limits::exec_option();
    args.push(CString::new(limits).expect("numbers have no NUL"));
    let signals = format!("--exec-signals={}:{pending}:{ignored}", thread.sigmask);
    args.push(CString::new(signals).expect("numbers have no NUL"));
    // One argument with `=`: an argv[0] may start with '-' (a login shell's does).
    let mut argv0 = b"--argv0=".to_vec();
    argv0.extend_from_slice(program.argv.first().map_or(&b""[..], |a| a.as_bytes()));
    args.push(CString::new(argv0).expect("argv strings have no NUL"));
    args.push(c"--".into());
    args.push(CString::new(program.path.as_bytes()).expect("resolved paths have no NUL"));
    args.extend(program.argv.iter().skip(1).cloned());
    host::execve(c"/proc/self/exe", &args, envp)
}

/// A pipe holding KVM's supported CPUID for the km an execve starts
/// (`--kvm-cpuid`), its read end at a number from 3 up that stays open across
/// the exec (the write end is closed, so the new km reads to end of file).
fn cpuid_for_exec(guest: &crate::kernel::process::Guest) -> Option<std::os::fd::OwnedFd> {
    let bytes = guest.vm.kvm.cpuid_for_exec()?;
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).ok()?;
    // A pipe holds 64 KiB, KVM's answer about 3 KiB: the write does not block.
    if rustix::io::write(&write, &bytes).ok()? != bytes.len() {
        return None;
    }
    crate::memory::host::inheritable_copy(std::os::fd::AsFd::as_fd(&read), 3).ok()
}

/// Host descriptors km keeps open, and never closes, for files the payload holds
/// POSIX record locks on: those locks belong to the process and go at the first
/// close of any of its descriptors for the file, and Linux keeps them across
/// execve, where km's own copies of the payload's descriptors would close.
static LOCK_KEEPERS: std::sync::Mutex<Vec<std::os::fd::OwnedFd>> =
    std::sync::Mutex::new(Vec::new());

/// A km re-executed for execve keeps the descriptors its predecessor kept for the
/// payload's record locks (`--lock-keepers`).
pub fn keep_for_locks(fds: Vec<std::os::fd::OwnedFd>) {
    crate::kernel::lock(&LOCK_KEEPERS).extend(fds);
}

/// Before the host execve: of km's copies of the descriptors the exec keeps
/// (`kept`, with their temporary copies `temps`) and of the ones already kept for
/// locks, those of files the payload holds POSIX locks on are made to survive the
/// exec instead of closing (which would drop the locks). Returns their numbers,
/// which the new km keeps. A table copy whose number a kept descriptor is placed
/// at is replaced all the same.
fn keep_locks_across_exec(
    kept: &[(i32, std::sync::Arc<std::os::fd::OwnedFd>)],
    temps: &[(i32, std::os::fd::OwnedFd)],
) -> Result<Vec<i32>, Errno> {
    use crate::memory::host;
    use std::os::fd::{AsFd, AsRawFd};

    let targets: Vec<i32> = kept.iter().map(|(n, _)| *n).collect();
    let keepers = crate::kernel::lock(&LOCK_KEEPERS);
    let copies = kept
        .iter()
        .map(|(_, fd)| fd.as_fd())
        .chain(temps.iter().map(|(_, temp)| temp.as_fd()))
        .chain(keepers.iter().map(|fd| fd.as_fd()));
    let mut numbers = Vec::new();
    for fd in copies {
        let n = fd.as_raw_fd();
        if !targets.contains(&n) && !numbers.contains(&n) && host::holds_posix_lock(fd) {
            host::keep_on_exec(fd)?;
            numbers.push(n);
        }
    }
    Ok(numbers)
}

/// Before placing the descriptors an execve keeps at `targets`: every free host
/// number up to the highest of them gets a close-on-exec copy of `fd` (km's
/// /dev/kvm descriptor), so that the copies km makes meanwhile go elsewhere. Those
/// at `targets` are left for the placing to replace (and never closed by km);
/// the others are closed again. Other threads are stopped.
fn hold_numbers(
    fd: std::os::fd::BorrowedFd<'_>,
    targets: &std::collections::BTreeSet<i32>,
) -> Result<(), Errno> {
    let Some(&top) = targets.last() else {
        return Ok(());
    };
    let mut others = Vec::new();
    loop {
        let copy = rustix::io::fcntl_dupfd_cloexec(fd, 0)?;
        let n = std::os::fd::AsRawFd::as_raw_fd(&copy);
        if n > top {
            return Ok(());
        }
        if targets.contains(&n) {
            // Replaced by the descriptor placed at `n`, or closed by the exec.
            let _ = std::os::fd::IntoRawFd::into_raw_fd(copy);
        } else {
            others.push(copy);
        }
    }
}

/// The live gdb session's connection (or a fork parent's relay), copied at a
/// number (not a kept descriptor's) that survives execve, whether km started the
/// payload for gdb, and whether it is a relay.
fn gdb_session(
    guest: &crate::kernel::process::Guest,
) -> Result<Option<(std::os::fd::OwnedFd, bool, bool)>, Errno> {
    let Some((fd, launched, relayed)) = guest.debugger.as_ref().and_then(|d| d.exec_session())
    else {
        return Ok(None);
    };
    let copy = crate::memory::host::dup_cloexec_from(fd, 3)?;
    rustix::io::fcntl_setfd(&copy, rustix::io::FdFlags::empty())?;
    Ok(Some((copy, launched, relayed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_split_as_linux_does() {
        let (name, arg) = shebang(b" /bin/sh  -e -x \nrest").unwrap();
        assert_eq!(name.as_bytes(), b"/bin/sh");
        assert_eq!(arg.unwrap().as_bytes(), b"-e -x");
        let (name, arg) = shebang(b"/usr/bin/env\n").unwrap();
        assert_eq!(name.as_bytes(), b"/usr/bin/env");
        assert!(arg.is_none());
        assert_eq!(shebang(b"  \n").unwrap_err().errno, Errno::NOEXEC);
        // Only blanks and tabs separate; a NUL ends the name or the argument.
        let (name, arg) = shebang(b"/bin/sh\r\n").unwrap();
        assert_eq!(name.as_bytes(), b"/bin/sh\r");
        assert!(arg.is_none());
        let (name, arg) = shebang(b"/x\t5 \0\0 6").unwrap();
        assert_eq!(name.as_bytes(), b"/x");
        assert_eq!(arg.unwrap().as_bytes(), b"5 ");
        let (name, arg) = shebang(b"/x\0 5").unwrap();
        assert_eq!(name.as_bytes(), b"/x");
        assert!(arg.is_none());
    }
}
