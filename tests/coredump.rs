//! Payloads killed by a signal: km's exit, its crash report, and the kmcore read back
//! by the real gdb (Debian's gdb, installed by .ci/run).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use common::{payload, run, scratch, text};

fn gdb(exe: &Path, core: &Path, commands: &[&str]) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args(["-batch", "-nx"]).arg(exe).arg(core);
    for c in commands {
        cmd.args(["-ex", c]);
    }
    let out = cmd
        .output()
        .expect("gdb is needed for these tests (Debian package gdb)");
    text(&out.stdout) + &text(&out.stderr)
}

/// Runs `fault.LIBC how` under km in a fresh directory, with core files allowed
/// (RLIMIT_CORE unlimited) and the crash report on stderr unless `extra` says where;
/// returns km's output and
/// the directory.
fn crash(libc: &str, how: &str, extra: &[&str]) -> (Output, std::path::PathBuf) {
    let dir = scratch(&format!("core-{libc}-{how}-{}", extra.len()));
    let out = run(Command::new("sh")
        .current_dir(&dir)
        .args(["-c", "ulimit -c unlimited && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_km"))
        .args(
            (!extra.iter().any(|a| a.starts_with("--crash-report")))
                .then_some("--crash-report=stderr"),
        )
        .args(extra)
        .arg(payload(&format!("fault.{libc}")))
        .arg(how)
        .stdin(std::process::Stdio::null()));
    (out, dir)
}

#[test]
fn crashes_leave_a_core_that_gdb_reads() {
    let cases = [
        ("null", libc::SIGSEGV, "SIGSEGV"),
        ("div0", libc::SIGFPE, "SIGFPE"),
        ("ud2", libc::SIGILL, "SIGILL"),
        ("abort", libc::SIGABRT, "SIGABRT"),
    ];
    for libc in ["musl", "glibc"] {
        for (how, signal, name) in cases {
            let (out, dir) = crash(libc, how, &[]);
            assert_eq!(out.status.signal(), Some(signal), "{libc} {how}");
            let report = text(&out.stderr);
            assert!(report.contains(&format!("killed by {name}")), "{report}");
            assert!(report.contains("core dumped to kmcore"), "{report}");
            let core = dir.join("kmcore");
            let exe = payload(&format!("fault.{libc}"));
            let shown = gdb(&exe, &core, &["bt", "info threads", "info registers rip"]);
            assert!(
                shown.contains(&format!("Program terminated with signal {name}")),
                "{shown}"
            );
            assert!(shown.contains("rip            0x"), "{shown}");
            assert!(!shown.contains("warning"), "{shown}");
            // musl's abort has no unwind information (natively too): gdb stops in raise.
            if !(libc == "musl" && how == "abort") {
                for frame in ["level2", "level1", "main"] {
                    assert!(
                        shown.contains(&format!(" {frame} (")),
                        "{libc} {how}: no {frame} in\n{shown}"
                    );
                }
            }
            if how != "abort" {
                assert!(
                    report.contains("in level2 at fault.c:"),
                    "crash report backtrace:\n{report}"
                );
                assert!(report.contains("in level1 at fault.c:"), "{report}");
                assert!(report.contains("in main at fault.c:"), "{report}");
            }
        }
    }
}

#[test]
fn every_thread_is_in_the_core() {
    for libc in ["musl", "glibc"] {
        let (out, dir) = crash(libc, "threads", &[]);
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
        let exe = payload(&format!("fault.{libc}"));
        let shown = gdb(
            &exe,
            &dir.join("kmcore"),
            &["info threads", "thread apply all bt"],
        );
        for n in 1..=3 {
            assert!(
                shown.contains(&format!("\nThread {n} ")),
                "{libc}: thread {n} missing:\n{shown}"
            );
        }
        let first = shown
            .split("\nThread 1 ")
            .nth(1)
            .expect("thread 1 backtrace");
        assert!(
            first.contains(" level2 (") && first.contains(" main ("),
            "{shown}"
        );
        assert!(!shown.contains("warning"), "{shown}");
        if libc == "glibc" {
            assert_eq!(shown.matches(" in waiter (").count(), 2, "{shown}");
        }
    }
}

#[test]
fn core_file_options() {
    let (out, dir) = crash("musl", "null", &["-C", "custom.core"]);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    assert!(dir.join("custom.core").exists() && !dir.join("kmcore").exists());
    let (out, dir) = crash("musl", "null", &["--no-coredump", "--crash-report=none"]);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    assert!(!dir.join("kmcore").exists());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// With core dumps allowed, a crash leaves the kmcore and no host core of km
/// itself (natively the same crash leaves the host's core, so the check can fail).
#[test]
fn no_host_core_of_km_next_to_the_kmcore() {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    if pattern.trim() != "core" {
        eprintln!(
            "skipped: kernel.core_pattern is {pattern:?}, not \"core\": host cores go elsewhere"
        );
        return;
    }
    let exe = payload("fault.glibc");
    let cores = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n == "core" || n.starts_with("core."))
            .collect()
    };
    let native = scratch("core-native-host");
    let out = run(Command::new("sh")
        .current_dir(&native)
        .arg("-c")
        .arg("ulimit -c unlimited && exec \"$0\" null")
        .arg(&exe));
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    assert!(!cores(&native).is_empty(), "natively the host dumps a core");

    let dir = scratch("core-km-host");
    let out = run(Command::new("sh")
        .current_dir(&dir)
        .arg("-c")
        .arg("ulimit -c unlimited && exec \"$0\" \"$1\" null")
        .arg(env!("CARGO_BIN_EXE_km"))
        .arg(&exe));
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    assert!(dir.join("kmcore").exists(), "no kmcore");
    assert_eq!(cores(&dir), Vec::<String>::new(), "a host core of km");
}
