//! What a crash leaves behind, compared with Linux in the same run: the kmcore's
//! size on disk against the native core of the same crash and gdb reading it from
//! another directory, RLIMIT_CORE, where the crash report goes, and the fault
//! codes and alternate-stack flags a handler sees.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{assert_passes_like_native, payload, run, scratch, text, write_executable};

const LIBCS: [&str; 3] = ["glibc", "musl", "dynamic"];

/// Runs `program args` in `dir` with RLIMIT_CORE set to `core_limit` (a `ulimit -c`
/// value) and stdin closed; stdout and stderr are piped.
fn with_core_limit(dir: &Path, core_limit: &str, program: &OsStr, args: &[&OsStr]) -> Output {
    run(Command::new("sh")
        .current_dir(dir)
        .arg("-c")
        .arg(format!("ulimit -c {core_limit} && exec \"$@\""))
        .arg("sh")
        .arg(program)
        .args(args)
        .stdin(Stdio::null()))
}

fn km_path() -> &'static OsStr {
    OsStr::new(env!("CARGO_BIN_EXE_km"))
}

/// The files in `dir` whose name starts with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

/// Bytes a file takes on disk (holes take none).
fn on_disk(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Whether the host writes a crashed program's core as `core*` in its working
/// directory (kernel.core_pattern), so that a test can read it.
fn native_cores_here() -> bool {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    pattern.starts_with("core") && !pattern.contains('/')
}

/// `gdb -batch exe core -ex bt` run in `cwd`; returns everything gdb printed.
fn gdb_bt(cwd: &Path, exe: &Path, core: &Path) -> String {
    let out = Command::new("gdb")
        .current_dir(cwd)
        .args(["-batch", "-nx"])
        .arg(exe)
        .arg(core)
        .args(["-ex", "bt"])
        .stdin(Stdio::null())
        .output()
        .expect("gdb is needed for these tests (Debian package gdb)");
    text(&out.stdout) + &text(&out.stderr)
}

/// The function of each line of the backtrace (`#N  [0x... in ]NAME (...`), from
/// its last `#0` (gdb shows frame 0 once when it opens the core).
fn frames(bt: &str) -> Vec<String> {
    let lines: Vec<&str> = bt.lines().collect();
    let last_top = lines
        .iter()
        .rposition(|l| l.starts_with("#0 "))
        .unwrap_or(0);
    lines[last_top..]
        .iter()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.split_once("  ")?.1;
            let rest = rest.split_once(" in ").map_or(rest, |(_, r)| r);
            Some(rest.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// A dynamic program's crash, from a relative path: the kmcore takes at most twice
/// the disk space of the native core of the same crash, and gdb run from another
/// directory reads it without a warning, with the backtrace the native core shows.
#[test]
fn kmcore_of_a_dynamic_crash_is_near_native_size_and_opens_anywhere() {
    if !native_cores_here() {
        eprintln!(
            "skipped: kernel.core_pattern does not put native cores in the working directory"
        );
        return;
    }
    for how in ["null", "threads"] {
        let base = scratch(&format!("crash-size-{how}"));
        let exe = base.join("fault.dynamic");
        let bytes = std::fs::read(payload("fault.dynamic")).unwrap();
        write_executable(&exe, &bytes, 0);
        let (native_dir, km_dir, elsewhere) =
            (base.join("native"), base.join("km"), base.join("elsewhere"));
        for d in [&native_dir, &km_dir, &elsewhere] {
            std::fs::create_dir(d).unwrap();
        }
        let relative = OsStr::new("../fault.dynamic");
        let how = OsStr::new(how);

        let out = with_core_limit(&native_dir, "unlimited", relative, &[how]);
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "native {how:?}");
        let native_core = files_starting(&native_dir, "core");
        assert_eq!(native_core.len(), 1, "one native core: {native_core:?}");
        let native_core = &native_core[0];

        let out = with_core_limit(&km_dir, "unlimited", km_path(), &[relative, how]);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "{}",
            text(&out.stderr)
        );
        let kmcore = km_dir.join("kmcore");
        assert!(kmcore.exists(), "no kmcore: {}", text(&out.stderr));

        let (native_size, km_size) = (on_disk(native_core), on_disk(&kmcore));
        eprintln!("{how:?}: native core {native_size} bytes on disk, kmcore {km_size}");
        assert!(
            km_size <= 2 * native_size,
            "{how:?}: kmcore takes {km_size} bytes on disk, the native core {native_size}"
        );

        let native_bt = gdb_bt(&elsewhere, &exe, native_core);
        let km_bt = gdb_bt(&elsewhere, &exe, &kmcore);
        let warnings: Vec<&str> = km_bt
            .lines()
            .filter(|l| l.to_lowercase().contains("warning"))
            .collect();
        assert!(warnings.is_empty(), "{how:?}: gdb warned:\n{km_bt}");
        let expected = frames(&native_bt);
        assert!(
            expected.starts_with(&["level2".to_string(), "level1".into(), "main".into()]),
            "native backtrace:\n{native_bt}"
        );
        assert_eq!(
            frames(&km_bt),
            expected,
            "{how:?}:\n{km_bt}\nnative:\n{native_bt}"
        );
    }
}

/// With RLIMIT_CORE 0 a crash leaves no kmcore (as Linux leaves no core), unless
/// `--coredump=FILE` names one; with the limit raised, the default kmcore is back,
/// unless the payload lowered its own limit to 0.
#[test]
fn rlimit_core_zero_leaves_no_kmcore_unless_one_is_named() {
    let exe = payload("crashrules.glibc");
    let cases: [(&str, &str, &[&str], bool); 4] = [
        ("0", "stderr", &[], false),
        ("0", "stderr", &["--coredump=kmcore"], true),
        ("unlimited", "stderr", &[], true),
        ("unlimited", "nocore", &[], false),
    ];
    for (limit, how, options, written) in cases {
        let args = [exe.as_os_str(), OsStr::new(how)];
        let dir = scratch(&format!("crash-rlimit-{limit}-{how}-{}", options.len()));
        let native_out = with_core_limit(&dir, limit, exe.as_os_str(), &args[1..]);
        assert_eq!(native_out.status.signal(), Some(libc::SIGSEGV));
        let native_cores = files_starting(&dir, "core");
        for core in &native_cores {
            std::fs::remove_file(core).unwrap();
        }
        let mut km_args: Vec<&OsStr> = options.iter().map(OsStr::new).collect();
        km_args.extend(args);
        let out = with_core_limit(&dir, limit, km_path(), &km_args);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(
            dir.join("kmcore").exists(),
            written,
            "ulimit -c {limit}, {how}, options {options:?}"
        );
        if options.is_empty() && native_cores_here() {
            assert_eq!(
                !native_cores.is_empty(),
                written,
                "natively, ulimit -c {limit}, {how}: cores {native_cores:?}"
            );
        }
    }
}

/// A crash with stderr piped leaves the payload's stderr exactly as natively; the
/// report goes to the --km-log-to file when one is given, to stderr when asked.
#[test]
fn crash_report_leaves_a_piped_stderr_alone() {
    for libc in LIBCS {
        let exe = payload(&format!("crashrules.{libc}"));
        let dir = scratch(&format!("crash-stderr-{libc}"));
        let native_out = run(Command::new(&exe).arg("stderr").stdin(Stdio::null()));
        assert_eq!(native_out.status.signal(), Some(libc::SIGSEGV));
        let native_err = text(&native_out.stderr);
        assert_eq!(native_err, "the payload's own line on stderr\n");

        let km = |options: &[&str]| {
            run(Command::new(km_path())
                .current_dir(&dir)
                .args(options)
                .arg(&exe)
                .arg("stderr")
                .stdin(Stdio::null()))
        };
        let out = km(&["--no-coredump"]);
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
        assert_eq!(text(&out.stderr), native_err, "{libc}: default");

        let log = dir.join("km.log");
        let log_to = format!("--km-log-to={}", log.display());
        let out = km(&["--no-coredump", &log_to]);
        assert_eq!(text(&out.stderr), native_err, "{libc}: with a log file");
        let logged = std::fs::read_to_string(&log).expect("the report in the log file");
        assert!(logged.contains("killed by SIGSEGV (signal 11)"), "{logged}");
        assert!(logged.contains("in main at crashrules.c:"), "{logged}");

        let out = km(&["--no-coredump", "--crash-report=stderr"]);
        let err = text(&out.stderr);
        assert!(err.starts_with(&native_err), "{libc}: {err}");
        assert!(
            err.contains("killed by SIGSEGV (signal 11)"),
            "{libc}: {err}"
        );
    }
}

/// On a terminal the report is printed by default (`script` gives km a pty).
#[test]
fn crash_report_is_printed_on_a_terminal() {
    let dir = scratch("crash-tty");
    let command = format!(
        "{} --no-coredump {} stderr",
        km_path().to_string_lossy(),
        payload("crashrules.glibc").display()
    );
    let out = run(Command::new("script")
        .current_dir(&dir)
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null()));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("the payload's own line on stderr"),
        "{shown}"
    );
    assert!(shown.contains("killed by SIGSEGV (signal 11)"), "{shown}");
    assert!(shown.contains("in main at crashrules.c:"), "{shown}");
}

/// si_code is SEGV_ACCERR for a fault on a mapped page (PROT_NONE or read-only)
/// and SEGV_MAPERR only for an unmapped one, as natively.
#[test]
fn fault_codes_match_native() {
    for libc in LIBCS {
        let exe = payload(&format!("crashrules.{libc}"));
        let out = assert_passes_like_native(&exe, &[OsStr::new("codes")], None, "codes done");
        assert!(out.contains("read PROT_NONE: SEGV_ACCERR"), "{out}");
        assert!(out.contains("read unmapped: SEGV_MAPERR"), "{out}");
    }
}

/// sigaltstack in a handler on the alternate stack reports SS_ONSTACK and refuses
/// changes with EPERM; its argument errors are Linux's.
#[test]
fn sigaltstack_matches_native() {
    for libc in LIBCS {
        let exe = payload(&format!("crashrules.{libc}"));
        let out = assert_passes_like_native(&exe, &[OsStr::new("altstack")], None, "altstack done");
        assert!(out.contains("in handler: flags SS_ONSTACK"), "{out}");
    }
}
