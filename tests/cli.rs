//! km's own command line and error reporting.

mod common;

use std::io::Write;
use std::path::Path;

use common::{km, payload, run, scratch, text};

const KM_ERROR: i32 = 125;

fn assert_km_error(path: &Path, words: &str) {
    let out = run(km().arg(path));
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(KM_ERROR),
        "{}: {err}",
        path.display()
    );
    assert!(
        err.starts_with(&format!("km: {}: ", path.display())),
        "message names the payload: {err}"
    );
    assert!(err.contains(words), "expected {words:?} in {err:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
}

/// A genuine i386 executable from `gcc -m32` (no libc needed), if this gcc can make one.
fn real_elf32(dir: &Path) -> Option<std::path::PathBuf> {
    let src = dir.join("start32.c");
    std::fs::write(&src, "void _start(void) { for (;;) ; }\n").unwrap();
    let exe = dir.join("elf32-gcc");
    let built = std::process::Command::new("gcc")
        .args(["-m32", "-static", "-nostdlib", "-ffreestanding", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .ok()?;
    built.status.success().then_some(exe)
}

#[test]
fn help_and_version() {
    let help = run(km().arg("--help"));
    assert!(help.status.success());
    for flag in [
        "--verbose",
        "--km-log-to",
        "--putenv",
        "--copyenv",
        "--kill-unimpl-scall",
        "PAYLOAD",
    ] {
        assert!(text(&help.stdout).contains(flag), "--help mentions {flag}");
    }
    let version = run(km().arg("--version"));
    assert!(version.status.success());
    assert!(text(&version.stdout).starts_with("km "));
}

#[test]
fn unknown_option_is_an_error() {
    let out = run(km().arg("--no-such-flag").arg(payload("hello.musl")));
    assert_eq!(out.status.code(), Some(KM_ERROR));
    assert!(text(&out.stderr).contains("--no-such-flag"));
    let none = run(&mut km());
    assert_eq!(none.status.code(), Some(KM_ERROR), "a payload is required");
}

/// Runs `script` with `shell -c`, `$0` being km and `$1` `payload`: how a test
/// gives km descriptors at chosen numbers.
fn km_in_shell(shell: &str, script: &str, payload: &Path) -> std::process::Output {
    run(std::process::Command::new(shell)
        .args(["-c", script])
        .arg(env!("CARGO_BIN_EXE_km"))
        .arg(payload)
        .stdin(std::process::Stdio::null()))
}

/// `--exit-report` (what an exec'ing km passes on: see `kernel::children`) names
/// an inherited pipe's write end; anything else is refused before the payload runs.
#[test]
fn exit_report_takes_only_an_inherited_pipes_write_end() {
    let hello = payload("hello.musl");
    // km's status, after what it printed, on the output of `cat` (km's fd 3
    // may be the pipe into it).
    let under_sh = |redirect: &str, before: &str| {
        let script =
            format!("{before}{{ \"$0\" --exit-report=3 \"$1\" {redirect}; echo exit $?; }} | cat");
        km_in_shell("sh", &script, &hello)
    };
    for (redirect, words) in [
        ("", "--exit-report 3: no such inherited descriptor"),
        (
            "3</dev/null",
            "--exit-report 3: not the write end of a pipe",
        ),
        ("3<&0", "--exit-report 3: not the write end of a pipe"),
    ] {
        // `: |` makes the shell's standard input a pipe's read end.
        let out = under_sh(&format!("{redirect} 2>&1 >/dev/null"), ": | ");
        assert!(
            text(&out.stdout).contains(words) && text(&out.stdout).contains("exit 125"),
            "{redirect}: {}",
            text(&out.stdout)
        );
    }
    // A pipe's write end is taken, and the payload runs to its end.
    let out = under_sh("3>&1 >/dev/null", "");
    assert!(
        text(&out.stdout).contains("exit 0"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn bad_payloads_are_refused_clearly() {
    let dir = scratch("bad-elf");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    assert_km_error(&write("text", b"echo hi\n"), "not an ELF file");
    assert_km_error(
        &write("bad-interpreter", b"#!/nonexistent/sh\necho hi\n"),
        "interpreter /nonexistent/sh: No such file or directory",
    );
    let hello = std::fs::read(payload("hello.musl")).unwrap();
    assert_km_error(&write("truncated-header", &hello[..40]), "truncated");
    assert_km_error(&write("truncated-200", &hello[..200]), "truncated");
    assert_km_error(&write("truncated-segments", &hello[..2000]), "truncated");
    let mut elf32 = hello.clone();
    elf32[4] = 1;
    assert_km_error(&write("elf32", &elf32), "32-bit");
    match real_elf32(&dir) {
        Some(exe) => assert_km_error(&exe, "32-bit"),
        None => eprintln!(
            "no real 32-bit ELF: `gcc -m32` does not work here (only the patched one is tested)"
        ),
    }
    let mut arm = hello.clone();
    arm[18] = 183; // EM_AARCH64
    arm[19] = 0;
    assert_km_error(&write("aarch64", &arm), "not an x86-64 executable");
    let mut dynamic = std::fs::read(payload("hello.dynamic")).unwrap();
    let linker = b"/lib64/ld-linux-x86-64.so.2";
    let at = dynamic
        .windows(linker.len())
        .position(|w| w == linker)
        .expect("PT_INTERP names glibc's linker");
    dynamic[at + linker.len() - 1] = b'9';
    assert_km_error(
        &write("missing-linker", &dynamic),
        "dynamic linker /lib64/ld-linux-x86-64.so.9: No such file",
    );
    // A linker that is not position-independent: PT_INTERP names (relative to the
    // working directory, as the kernel reads it) a static executable.
    let static_linker = b"./static-hello\0";
    dynamic[at..at + static_linker.len()].copy_from_slice(static_linker);
    std::fs::copy(payload("hello.musl"), dir.join("static-hello")).unwrap();
    let odd = write("static-linker", &dynamic);
    let out = run(km().arg(&odd).current_dir(&dir));
    assert_eq!(out.status.code(), Some(KM_ERROR));
    assert!(
        text(&out.stderr).contains("dynamic linker ./static-hello is not position-independent"),
        "{}",
        text(&out.stderr)
    );
    assert_km_error(&dir.join("missing"), "No such file or directory");
    assert_km_error(&dir, "not a regular file");
}

#[test]
fn tracing_by_category() {
    let log = scratch("trace").join("km.log");
    let out = run(km()
        .arg("-Vhypercall|load")
        .arg(format!("--km-log-to={}", log.display()))
        .arg(payload("hello.musl")));
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "traces go to the log file");
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(trace.contains("km [hypercall] uname("), "{trace}");
    assert!(trace.contains("km [load] entry "), "{trace}");
    assert!(!trace.contains("km [kvm]"), "kvm category not selected");

    let all = run(km().arg("-V").arg(payload("hello.musl")));
    let err = text(&all.stderr);
    assert!(err.contains("km [kvm] backend"), "{err}");
    assert!(err.contains("km [mem] committed"), "{err}");
}

/// km is statically linked (.cargo/config.toml): no dynamic linker (PT_INTERP) and
/// no shared library it needs, so it runs in a `FROM scratch` container.
#[test]
fn km_is_statically_linked() {
    use object::read::elf::{Dyn, ElfFile64, ProgramHeader};
    let data = std::fs::read(env!("CARGO_BIN_EXE_km")).unwrap();
    let elf = ElfFile64::<object::LittleEndian>::parse(&*data).expect("km is an ELF64 file");
    let endian = elf.endian();
    let headers = elf.elf_program_headers();
    assert!(
        headers
            .iter()
            .any(|p| p.p_type(endian) == object::elf::PT_LOAD),
        "km has loadable segments"
    );
    assert!(
        !headers
            .iter()
            .any(|p| p.p_type(endian) == object::elf::PT_INTERP),
        "km names a dynamic linker (PT_INTERP): it is dynamically linked"
    );
    for header in headers {
        if let Some(dynamic) = header.dynamic(endian, &*data).unwrap() {
            assert!(
                !dynamic
                    .iter()
                    .any(|d| d.d_tag(endian) == object::elf::DT_NEEDED),
                "km needs shared libraries (DT_NEEDED)"
            );
        }
    }
}

/// A km that execve starts takes KVM's CPUID from the km it replaces
/// (`--kvm-cpuid`, a pipe) rather than asking KVM again, and its payload sees
/// the same CPU; so does a program an execve loads in place (on a VM made like
/// the old one), whose `--stats` report comes after the first program's. A `--kvm-cpuid` that is not a pipe's read end is refused
/// before the payload runs; a pipe without whole entries is noticed, and km
/// asks KVM; a pipe whose writer is still there does not hold km up.
#[test]
fn execve_passes_kvms_cpuid_on() {
    let dir = scratch("kvmcpuid");
    let log = dir.join("km.log");
    let log_to = format!("--km-log-to={}", log.display());
    let trace = |log: &Path| std::fs::read_to_string(log).unwrap_or_default();
    let runs = [
        ("cpuidexec.musl", "--exec-reexec"),
        ("cpuidexec.glibc", "--exec-reexec"),
        ("cpuidexec.musl", "--stats"),
        ("cpuidexec.glibc", "--stats"),
    ];
    for (exe, how) in runs {
        let reexec = how == "--exec-reexec";
        let _ = std::fs::remove_file(&log);
        let out = run(km().args(["-Vkvm|load", &log_to, how]).arg(payload(exe)));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{exe}: {stdout}{}", text(&out.stderr));
        let leaves = |when: &str| -> Vec<String> {
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix(when))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(leaves("before ").len(), 5, "{exe}: {stdout}");
        assert_eq!(
            leaves("before "),
            leaves("after "),
            "{exe}: the CPU changed"
        );
        let trace = trace(&log);
        assert_eq!(
            trace.matches("entries from the km execve replaced").count(),
            usize::from(reexec),
            "{exe} {how}: the exec'd km took the CPUID over: {trace}"
        );
        assert_eq!(
            trace.contains("loaded in place"),
            !reexec,
            "{exe} {how}: {trace}"
        );
        if !reexec {
            // --stats reports the first program at its execve, then the second.
            let reports: Vec<&str> = trace
                .lines()
                .filter(|l| l.starts_with("km stats:"))
                .collect();
            assert!(
                reports.len() == 2
                    && reports[0].ends_with("(execve)")
                    && reports[1].ends_with("(exit 0)"),
                "{exe}: {reports:?}"
            );
        }
    }
    let hello = payload("hello.musl");
    let under_bash = |setup: &str| {
        let _ = std::fs::remove_file(&log);
        let script =
            format!("{setup}\"$0\" -Vkvm {log_to} --kvm-cpuid=3 \"$1\" >/dev/null; echo exit $?");
        km_in_shell("bash", &script, &hello)
    };
    for (setup, words) in [
        ("", "--kvm-cpuid 3: no such inherited descriptor"),
        (
            "exec 3</dev/null; ",
            "--kvm-cpuid 3: not the read end of a pipe",
        ),
    ] {
        let out = under_bash(setup);
        assert!(text(&out.stdout).contains("exit 125"), "{setup}");
        assert!(
            text(&out.stderr).contains(words),
            "{setup}: {}",
            text(&out.stderr)
        );
    }
    // 41 bytes are no whole entry (40 each), and the writer keeps the pipe
    // open for 20 s more.
    let started = std::time::Instant::now();
    let out = under_bash("exec 3< <(head -c 41 /dev/zero; sleep 20 2>/dev/null); ");
    assert!(
        text(&out.stdout).contains("exit 0"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "km waited for the pipe's writer"
    );
    assert!(
        trace(&log).contains("--kvm-cpuid: not whole CPUID entries"),
        "{}",
        trace(&log)
    );
}
