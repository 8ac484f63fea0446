//! Linux behaviour CPython's regrtest found km getting wrong (issue 13), each case
//! a small C reproducer (tests/payloads/pycompat.c) compared with native in the
//! same run.

mod common;

use std::ffi::OsStr;

use common::{assert_passes_like_native, payload};

const LIBCS: [&str; 2] = ["musl", "glibc"];

/// Runs `pycompat CASE` with each libc natively and under km; returns km's output.
fn run_case(case: &str) -> Vec<String> {
    LIBCS
        .iter()
        .map(|libc| {
            assert_passes_like_native(
                &payload(&format!("pycompat.{libc}")),
                &[OsStr::new(case)],
                None,
                &format!("{case} done"),
            )
        })
        .collect()
}

/// test_posix's TestPosixSpawn.test_close_file: km's runtime reopens a closed
/// standard descriptor on /dev/null, which a re-executed km must not show.
#[test]
fn stdio_closed_before_execve_stays_closed() {
    for out in run_case("closedstdio") {
        assert!(
            out.contains("fork, close 0 and 2, exec: fd 0 Bad file descriptor fd 1 open fd 2 Bad file descriptor, next open() gets 0\n"),
            "{out}"
        );
        assert!(
            out.contains("posix_spawn closing 0: fd 0 Bad file descriptor fd 1 open fd 2 open"),
            "{out}"
        );
    }
}

/// test_signal's PidfdSignalTest.test_pidfd_send_signal: Linux's
/// pidfd_send_signal also takes a /proc/<pid> directory descriptor.
#[test]
fn pidfd_send_signal_takes_proc_pid_directories() {
    for out in run_case("procpidfd") {
        assert!(
            out.contains("own directory, SIGUSR1: ok, handler ran before return: 1\n"),
            "{out}"
        );
        assert!(out.contains("child status 143\n"), "{out}");
        assert!(
            out.contains("reaped child directory: No such process\n"),
            "{out}"
        );
        assert!(
            out.contains("task directory: Bad file descriptor\n"),
            "{out}"
        );
    }
}
