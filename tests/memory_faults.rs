//! Guest memory whose host page faults (a shared file mapping past the end of its
//! truncated file): syscalls get EFAULT and km lives on; the payload's own access
//! gets SIGBUS/BUS_ADRERR at the address it touched, as on Linux.

mod common;

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use common::{assert_passes_like_native, km, native, payload, run, scratch, text};

const LIBCS: [&str; 2] = ["musl", "glibc"];

/// The file mapped MAP_SHARED, then MAP_PRIVATE (the payload's MODE-private).
const SHARINGS: [&str; 2] = ["", "-private"];

/// The syscalls the payload passes a pointer into the page past EOF.
const SYSCALLS: [&str; 14] = [
    "getrandom",
    "newfstatat",
    "newfstatat path",
    "clock_gettime",
    "pread64",
    "uname",
    "pipe",
    "getcwd",
    "open",
    "sysinfo",
    "read",
    "write",
    "futex",
    "touch after the syscalls: signal 7 BUS_ADRERR at page+8",
];

#[test]
fn syscalls_on_a_page_past_eof_get_efault() {
    for (libc, sharing) in LIBCS.iter().flat_map(|l| SHARINGS.map(|s| (l, s))) {
        let exe = payload(&format!("truncmap.{libc}"));
        let mode = format!("syscalls{sharing}");
        let name = format!("truncmap-{mode}-{libc}");
        let out = assert_passes_like_native(&exe, &[OsStr::new(&mode)], Some(&name), "done");
        for call in &SYSCALLS[..SYSCALLS.len() - 1] {
            let line = format!("{call}: EFAULT");
            assert!(out.lines().any(|l| l == line), "{libc}: no {line:?}: {out}");
        }
        assert!(out.contains(SYSCALLS[SYSCALLS.len() - 1]), "{libc}: {out}");
        assert!(out.contains("first page: first page"), "{libc}: {out}");
    }
}

/// Threads faulting at once take turns: none finds another's stand-in page.
#[test]
fn threads_faulting_together_all_get_efault() {
    for libc in LIBCS {
        let exe = payload(&format!("truncmap.{libc}"));
        let name = format!("truncmap-threads-{libc}");
        let out = assert_passes_like_native(&exe, &[OsStr::new("threads")], Some(&name), "done");
        for line in [
            "threads: 1600 of 1600 calls got EFAULT",
            "touch after the threads: signal 7 BUS_ADRERR at page+0",
        ] {
            assert!(out.lines().any(|l| l == line), "{libc}: no {line:?}: {out}");
        }
    }
}

#[test]
fn a_sigbus_handler_sees_bus_adrerr_at_the_address() {
    for (libc, sharing) in LIBCS.iter().flat_map(|l| SHARINGS.map(|s| (l, s))) {
        let exe = payload(&format!("truncmap.{libc}"));
        let mode = format!("handler{sharing}");
        let name = format!("truncmap-{mode}-{libc}");
        let out = assert_passes_like_native(&exe, &[OsStr::new(&mode)], Some(&name), "done");
        for line in [
            "read: signal 7 BUS_ADRERR at page+123",
            "write: signal 7 BUS_ADRERR at page+4000",
            "read again: signal 7 BUS_ADRERR at page+0",
        ] {
            assert!(out.lines().any(|l| l == line), "{libc}: no {line:?}: {out}");
        }
    }
}

/// The address the payload says it touches ("touching page+77 at 0x...").
fn touched(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("touching page+77 at "))
        .unwrap_or_else(|| panic!("no address printed: {stdout}"))
        .to_string()
}

#[test]
fn touching_a_page_past_eof_dies_of_sigbus_with_a_core() {
    for libc in LIBCS {
        let exe = payload(&format!("truncmap.{libc}"));
        let dir = scratch(&format!("truncmap-touch-{libc}"));
        let native_out = run(native(&exe).arg("touch").arg(&dir));
        assert_eq!(
            native_out.status.signal(),
            Some(libc::SIGBUS),
            "{libc} native"
        );
        touched(&text(&native_out.stdout));

        let out = run(km()
            .current_dir(&dir)
            .args(["--crash-report=stderr", "--coredump=kmcore"])
            .arg(&exe)
            .arg("touch")
            .arg(&dir));
        let (stdout, report) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.signal(), Some(libc::SIGBUS), "{libc}: {report}");
        let addr = touched(&stdout);
        assert!(
            report.contains("killed by SIGBUS (signal 7)"),
            "{libc}: {report}"
        );
        assert!(
            report.contains(&format!("fault address {addr} (BUS_ADRERR)")),
            "{libc}: {report}"
        );
        assert!(report.contains("in main at truncmap.c"), "{libc}: {report}");
        assert!(report.contains("core dumped to kmcore"), "{libc}: {report}");
        let shown = Command::new("gdb")
            .args(["-batch", "-nx"])
            .arg(&exe)
            .arg(dir.join("kmcore"))
            .args([
                "-ex",
                "print $_siginfo.si_code",
                "-ex",
                "print $_siginfo._sifields._sigfault.si_addr",
            ])
            .output()
            .expect("gdb is needed for this test (Debian package gdb)");
        let shown = text(&shown.stdout) + &text(&shown.stderr);
        assert!(
            shown.contains("Program terminated with signal SIGBUS"),
            "{libc}: {shown}"
        );
        assert!(
            shown.contains("= 2\n"),
            "{libc}: si_code is not BUS_ADRERR: {shown}"
        );
        assert!(
            shown.contains(&addr),
            "{libc}: si_addr is not {addr}: {shown}"
        );
    }
}

#[test]
fn a_signal_frame_on_a_page_past_eof_is_sigsegv() {
    for libc in LIBCS {
        let exe = payload(&format!("truncmap.{libc}"));
        let dir = scratch(&format!("truncmap-altstack-{libc}"));
        let native_out = run(native(&exe).arg("altstack").arg(&dir));
        let out = run(km().current_dir(&dir).arg(&exe).arg("altstack").arg(&dir));
        assert_eq!(
            native_out.status.signal(),
            Some(libc::SIGSEGV),
            "{libc} native"
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGSEGV),
            "{libc}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), text(&native_out.stdout), "{libc}");
        assert_eq!(text(&out.stdout), "raising SIGUSR1\n", "{libc}");
    }
}
