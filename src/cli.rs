//! Command line: `km [options] PAYLOAD [ARGS...]`; option parsing stops at PAYLOAD.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::trace::Sink;

/// Run a Linux x86-64 executable as a unikernel in its own KVM virtual machine.
#[derive(Parser, Debug)]
#[command(
    name = "km",
    version,
    disable_version_flag = true,
    after_help = "Exit status: the payload's; 128+N when it is killed by signal N; 125 when km itself fails."
)]
pub struct Cli {
    /// Trace km's work in categories matching REGEX (kvm, mem, load, hypercall, unimpl, snapshot; all if no REGEX). Write -VREGEX or --verbose=REGEX.
    #[arg(short = 'V', long = "verbose", value_name = "REGEX", num_args = 0..=1, require_equals = true, default_missing_value = ".*")]
    pub verbose: Option<String>,

    /// Where traces go: a file name (appended to), `stderr` or `none`.
    #[arg(
        long = "km-log-to",
        value_name = "FILE|stderr|none",
        default_value = "stderr"
    )]
    pub log_to: Sink,

    /// Give the payload exactly these environment variables (repeatable) instead of km's.
    #[arg(short = 'e', long = "putenv", value_name = "K=V")]
    pub putenv: Vec<OsString>,

    /// At exit (and execve), write to the km log what the payload cost: syscalls with
    /// their count and host time, VM exits by kind, memslot changes, MMU flushes,
    /// kicks, and KVM's own statistics (page faults, MMU, halts...).
    #[arg(long = "stats")]
    pub stats: bool,

    /// Give the payload km's environment (the default).
    #[arg(long = "copyenv", conflicts_with = "putenv")]
    pub copyenv: bool,

    /// Kill the payload with SIGSYS on a syscall km does not implement (default: ENOSYS).
    #[arg(long = "kill-unimpl-scall")]
    pub kill_unimpl_scall: bool,

    /// Where a payload killed by a core-dumping signal leaves its core file
    /// (default: kmcore, written only when RLIMIT_CORE is not 0, as Linux does;
    /// a FILE given here is written whatever the limit).
    #[arg(short = 'C', long = "coredump", value_name = "FILE")]
    pub coredump: Option<std::path::PathBuf>,

    /// Write no core file.
    #[arg(long = "no-coredump")]
    pub no_coredump: bool,

    /// Where the crash report goes when a signal kills the payload: `auto` prints
    /// it on stderr when that is a terminal, else into the --km-log-to file when
    /// one is given, else nowhere (a piped stderr stays the payload's own);
    /// `stderr`; `log` (the --km-log-to destination); `none`.
    #[arg(
        long = "crash-report",
        value_name = "auto|stderr|log|none",
        value_enum,
        default_value = "auto"
    )]
    pub crash_report: CrashReport,

    /// The same as --crash-report=none.
    #[arg(long = "no-crash-report", conflicts_with = "crash_report")]
    pub no_crash_report: bool,

    /// Give the payload no vDSO: clock_gettime, gettimeofday and time then make
    /// syscalls (a VM exit each).
    #[arg(long = "no-vdso")]
    pub no_vdso: bool,

    /// Debug with gdb: stop before the first instruction and wait for `target remote`
    /// on PORT (default 2159). Write -gPORT or --gdb-server-port=PORT.
    #[arg(short = 'g', long = "gdb-server-port", value_name = "PORT", num_args = 0..=1, require_equals = true, default_missing_value = "2159")]
    pub gdb_port: Option<u16>,

    /// Run the payload at once and let gdb attach (and detach) at any time, on the
    /// -g/--gdb-server-port port (default 2159).
    #[arg(long = "gdb-listen")]
    pub gdb_listen: bool,

    /// The address the gdb stub listens on.
    #[arg(long = "gdb-address", value_name = "ADDR", default_value = "127.0.0.1")]
    pub gdb_address: String,

    /// Run km without its seccomp filter (for debugging km: the filter limits km's
    /// own host syscalls to those it needs; see docs/security.md).
    #[arg(long = "no-seccomp")]
    pub no_seccomp: bool,

    /// Internal: this km was re-executed for the payload's execve and runs under
    /// the seccomp filter its parent installed.
    #[arg(long = "seccomp-inherited", hide = true)]
    pub seccomp_inherited: bool,

    /// Internal: the payload's execve always re-executes km, even where km could
    /// load the new program in place (for tests of the re-executing path).
    #[arg(long = "exec-reexec", hide = true)]
    pub exec_reexec: bool,

    /// As root: run the payload as an unprivileged user (--sandbox-uid and
    /// --sandbox-gid, default 65534), with no supplementary groups, capabilities or
    /// new privileges. km opens /dev/kvm and reads the payload first.
    #[arg(long = "sandbox")]
    pub sandbox: bool,

    /// The uid --sandbox runs the payload as.
    #[arg(
        long = "sandbox-uid",
        value_name = "UID",
        default_value_t = 65534,
        requires = "sandbox"
    )]
    pub sandbox_uid: u32,

    /// The gid --sandbox runs the payload as.
    #[arg(
        long = "sandbox-gid",
        value_name = "GID",
        default_value_t = 65534,
        requires = "sandbox"
    )]
    pub sandbox_gid: u32,

    /// Internal: the /dev/kvm descriptor a km re-executed for the payload's execve
    /// inherits (it may not be allowed to open /dev/kvm itself: --sandbox).
    #[arg(long = "kvm-fd", value_name = "FD", hide = true)]
    pub kvm_fd: Option<i32>,

    /// Internal: the gdb connection a km re-executed for the payload's execve goes
    /// on serving, reporting the exec: `FD,run` (km started the payload for gdb)
    /// or `FD,attach` (gdb attached to it); `FD,relay-run` and `FD,relay-attach`
    /// when FD is the relay of a fork parent's stub (gdb's `detach-on-fork off`,
    /// a vfork child gdb follows).
    #[arg(long = "gdb-session", value_name = "FD,HOW", hide = true)]
    pub gdb_session: Option<String>,

    /// Internal: the pipe a km re-executed for the payload's execve reports the
    /// payload's exit on to its parent km, as its predecessor would have (a fork
    /// or vfork child's; see `kernel::children`). It must be a pipe's write end.
    #[arg(long = "exit-report", value_name = "FD", hide = true)]
    pub exit_report: Option<i32>,

    /// Internal: a pipe holding the CPUID entries KVM supports, as the km that
    /// execve replaced had them (KVM_GET_SUPPORTED_CPUID executes some 75 CPUID
    /// instructions, each an exit to the host's hypervisor on a nested host).
    #[arg(long = "kvm-cpuid", value_name = "FD", hide = true)]
    pub kvm_cpuid: Option<i32>,

    /// Internal: the payload's RLIMIT_DATA, RLIMIT_AS, RLIMIT_SIGPENDING and
    /// RLIMIT_NOFILE (soft and hard each) that a km re-executed for its execve
    /// takes over.
    #[arg(long = "guest-limits", value_name = "LIMITS", hide = true)]
    pub guest_limits: Option<String>,

    /// Internal: the payload's signal mask, pending signals and ignored signals
    /// (MASK:PENDING:IGNORED, bit sets) that a km re-executed for its execve takes
    /// over. The ignored set is passed, not read back from the host: Rust's runtime
    /// ignores SIGPIPE in every process, so km cannot tell an inherited SIG_IGN of
    /// SIGPIPE from its own.
    #[arg(long = "exec-signals", value_name = "MASK:PENDING:IGNORED", value_parser = parse_exec_signals, hide = true)]
    pub exec_signals: Option<(u64, u64, u64)>,

    /// Internal: descriptors a km re-executed for execve keeps open (never the
    /// payload's) because the payload holds POSIX record locks on their files.
    #[arg(
        long = "lock-keepers",
        value_name = "FD",
        value_delimiter = ',',
        hide = true
    )]
    pub lock_keepers: Vec<i32>,

    /// Internal: the standard descriptors (0, 1, 2) the payload had closed when its
    /// execve re-executed km; the new program finds them closed, as on Linux (Rust's
    /// start-up reopens a closed one on /dev/null for km itself).
    #[arg(long = "closed-stdio", value_name = "FD", value_delimiter = ',', hide = true,
          value_parser = clap::value_parser!(i32).range(0..=2))]
    pub closed_stdio: Vec<i32>,

    /// Give the payload NAME as argv[0] instead of PAYLOAD (as `exec -a` does).
    #[arg(long = "argv0", value_name = "NAME")]
    pub argv0: Option<OsString>,

    /// Where a snapshot (system call 505, km_cli) is written.
    #[arg(long = "snapshot", value_name = "FILE", default_value = "kmsnap")]
    pub snapshot: PathBuf,

    /// Listen for management requests (km_cli) on a UNIX socket at PATH.
    #[arg(long = "mgtpipe", value_name = "PATH")]
    pub mgtpipe: Option<PathBuf>,

    /// Print the version.
    #[arg(long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,

    /// The executable to run, then its arguments.
    #[arg(value_name = "PAYLOAD", required = true, trailing_var_arg = true, num_args = 1..)]
    pub command: Vec<OsString>,
}

impl Cli {
    /// The options a km re-executed for the payload's execve repeats: tracing, core
    /// files and policies (not the environment, which execve gives, nor gdb's).
    pub fn exec_options(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        if let Some(re) = &self.verbose {
            out.push(format!("--verbose={re}").into());
        }
        match &self.log_to {
            Sink::Stderr => {}
            Sink::Null => out.push("--km-log-to=none".into()),
            Sink::File(path) => out.push(format!("--km-log-to={path}").into()),
        }
        if self.stats {
            out.push("--stats".into());
        }
        if self.kill_unimpl_scall {
            out.push("--kill-unimpl-scall".into());
        }
        if let Some(path) = &self.coredump {
            let mut coredump = OsString::from("--coredump=");
            coredump.push(path);
            out.push(coredump);
        }
        if self.no_coredump {
            out.push("--no-coredump".into());
        }
        let mut snapshot = OsString::from("--snapshot=");
        snapshot
            .push(std::path::absolute(&self.snapshot).unwrap_or_else(|_| self.snapshot.clone()));
        out.push(snapshot);
        if let Some(path) = &self.mgtpipe {
            let mut mgtpipe = OsString::from("--mgtpipe=");
            mgtpipe.push(std::path::absolute(path).unwrap_or_else(|_| path.clone()));
            out.push(mgtpipe);
        }
        if let Some(choice) = self.crash_report_choice().to_possible_value() {
            out.push(format!("--crash-report={}", choice.get_name()).into());
        }
        if self.no_vdso {
            out.push("--no-vdso".into());
        }
        if self.sandbox {
            out.push("--sandbox".into());
            out.push(format!("--sandbox-uid={}", self.sandbox_uid).into());
            out.push(format!("--sandbox-gid={}", self.sandbox_gid).into());
        }
        if self.exec_reexec {
            out.push("--exec-reexec".into());
        }
        out.push(if self.no_seccomp {
            "--no-seccomp".into()
        } else {
            "--seccomp-inherited".into()
        });
        out
    }

    fn crash_report_choice(&self) -> CrashReport {
        if self.no_crash_report {
            CrashReport::None
        } else {
            self.crash_report
        }
    }

    /// Where the crash report goes, given whether km's stderr is a terminal.
    pub fn crash_report_sink(&self, stderr_is_terminal: bool) -> Sink {
        match self.crash_report_choice() {
            CrashReport::Auto if stderr_is_terminal => Sink::Stderr,
            CrashReport::Auto => match &self.log_to {
                Sink::File(path) => Sink::File(path.clone()),
                Sink::Stderr | Sink::Null => Sink::Null,
            },
            CrashReport::Stderr => Sink::Stderr,
            CrashReport::Log => self.log_to.clone(),
            CrashReport::None => Sink::Null,
        }
    }

    /// Where a core file goes, and whether it is written whatever RLIMIT_CORE is
    /// (`None`: no core file).
    pub fn core_file(&self) -> Option<(std::path::PathBuf, bool)> {
        if self.no_coredump {
            return None;
        }
        Some(match &self.coredump {
            Some(path) => (path.clone(), true),
            None => ("kmcore".into(), false),
        })
    }
}

/// `--crash-report`: where the crash report goes.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashReport {
    Auto,
    Stderr,
    Log,
    None,
}

/// Where the command `argv0` was found: itself when it has a slash, else the
/// first match on PATH, as a shell or the kernel (a `#!` line) found it.
/// `--exec-signals`'s MASK:PENDING:IGNORED, three decimal bit sets.
fn parse_exec_signals(s: &str) -> Result<(u64, u64, u64), String> {
    let number = |n: &str| n.parse::<u64>().map_err(|e| format!("{n:?}: {e}"));
    match s.split(':').collect::<Vec<_>>()[..] {
        [mask, pending, ignored] => Ok((number(mask)?, number(pending)?, number(ignored)?)),
        _ => Err("expected MASK:PENDING:IGNORED".into()),
    }
}

fn command_path(argv0: &OsStr) -> Option<PathBuf> {
    if argv0.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(argv0));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(argv0))
        .find(|p| p.symlink_metadata().is_ok())
}

/// km invoked through a symlink `NAME -> km` runs `NAME.km` next to the link with
/// the same arguments (argv[0] as given); returns that command line for km.
pub fn symlink_invocation(args: &[OsString]) -> Option<Vec<OsString>> {
    let argv0 = args.first()?;
    let link = command_path(argv0)?;
    let name = link.file_name()?;
    if name == "km" || !link.symlink_metadata().ok()?.file_type().is_symlink() {
        return None;
    }
    let mut payload = name.to_owned();
    payload.push(".km");
    let mut with_equals = OsString::from("--argv0=");
    with_equals.push(argv0);
    let mut out: Vec<OsString> = vec!["km".into(), with_equals, "--".into()];
    out.push(link.with_file_name(payload).into_os_string());
    out.extend(args[1..].iter().cloned());
    Some(out)
}

/// Rewrites the attached short forms `-VREGEX` and `-gPORT` into their long forms
/// (clap's optional values need `=`), looking only at km's own options, before the payload.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    if let Some(argv0) = args.next() {
        out.push(argv0);
    }
    while let Some(arg) = args.next() {
        let s = arg.to_string_lossy();
        if s == "--" || !s.starts_with('-') {
            out.push(arg);
            break;
        }
        if let Some(re) = s.strip_prefix("-V").filter(|re| !re.starts_with('=')) {
            out.push(if re.is_empty() {
                "--verbose".into()
            } else {
                format!("--verbose={re}").into()
            });
            continue;
        }
        if let Some(port) = s.strip_prefix("-g").filter(|p| !p.starts_with('=')) {
            out.push(if port.is_empty() {
                "--gdb-server-port".into()
            } else {
                format!("--gdb-server-port={port}").into()
            });
            continue;
        }
        let takes_value = matches!(
            s.as_ref(),
            "-e" | "--putenv"
                | "--km-log-to"
                | "-C"
                | "--coredump"
                | "--crash-report"
                | "--gdb-address"
                | "--argv0"
                | "--sandbox-uid"
                | "--sandbox-gid"
        );
        out.push(arg);
        if takes_value && let Some(value) = args.next() {
            out.push(value);
        }
    }
    out.extend(args);
    out
}
