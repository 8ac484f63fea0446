//! Linux behaviour CPython's regrtest found km getting wrong (issue 13), each case
//! a small C reproducer (tests/payloads/pycompat.c) compared with native in the
//! same run.

mod common;

use std::ffi::OsStr;

use common::{assert_passes_like_native, assert_runs_alike, km, native, payload, run, text};

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

/// test_subprocess's test_close_fds_when_max_fd_is_lowered: descriptors above a
/// soft RLIMIT_NOFILE lowered below them survive a fork child's execve, and the
/// new program forks and execs in turn (km placed them for its re-execution under
/// the lowered limit and failed with EINVAL; a fork child km could not open its
/// VM's descriptors).
#[test]
fn descriptors_above_a_lowered_nofile_limit_survive_execve() {
    for out in run_case("highfds") {
        assert!(
            out.contains("after exec: 20 of the 20 descriptors 20..39 open\n"),
            "{out}"
        );
        assert!(
            out.contains("grandchild: soft limit 29, hard limit the same as before\n"),
            "{out}"
        );
        assert!(
            out.contains("grandchild: opened 26, the last at 28, then: EMFILE\n"),
            "{out}"
        );
        assert!(
            out.contains("grandchild status 0\nchild status 0\n"),
            "{out}"
        );
    }
}

/// The payload's RLIMIT_NOFILE is its own (km's descriptors are not bound by it)
/// and binds the guest's descriptor numbers as Linux does.
#[test]
fn nofile_limit_binds_guest_descriptor_numbers() {
    for out in run_case("nofile") {
        // Whole lines but the limits file's, whose hard limit is the host's.
        for line in [
            "soft above hard: EINVAL\n",
            "limits file: Max open files            24 ",
            "3 passed: recvmsg 1, MSG_CTRUNC 1, control length 24, descriptors 1\n",
            "2 passed: recvmsg 1, MSG_CTRUNC 1, control length 0, descriptors 0\n",
            "open: EMFILE\n",
            "pipe: EMFILE\n",
            "socket: EMFILE\n",
            "dup: EMFILE\n",
            "F_DUPFD 0: EMFILE\n",
            "eventfd: EMFILE\n",
            "epoll_create1: EMFILE\n",
            "memfd_create: EMFILE\n",
            "dup2 to 24: EBADF\n",
            "dup3 to 1000: EBADF\n",
            "dup2 to 23: ok\n",
            "F_DUPFD 24: EINVAL\n",
            "F_DUPFD_CLOEXEC 5000: EINVAL\n",
            "F_DUPFD of a closed descriptor, 24: EBADF\n",
            "poll 24: ok\n",
            "poll 25: EINVAL\n",
            "F_DUPFD 23 after a close: 23\n",
            "fork child: soft limit 24, hard limit the same as before\n",
            "fork child: opened 21, the last at 23, then: EMFILE\n",
            "exec: soft limit 24, hard limit the same as before\n",
            "exec: opened 21, the last at 23, then: EMFILE\n",
            "lowered twice: soft limit 8, hard limit the same as before\n",
            "at 8: opened 5, the last at 7, then: EMFILE\n",
        ] {
            assert!(out.contains(line), "{line:?} missing: {out}");
        }
    }
}

/// km started under a low hard RLIMIT_NOFILE (`ulimit -n 64` in a shell) runs the
/// highfds case as natively: km's own descriptors fit beside the payload's.
#[test]
fn low_hard_nofile_limit_from_the_shell() {
    let exe = payload("pycompat.glibc");
    let limited = |cmd: &std::process::Command| {
        let mut sh = std::process::Command::new("sh");
        sh.args(["-c", "ulimit -n 64 && exec \"$@\"", "sh"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(std::process::Stdio::null());
        sh
    };
    let native_out = run(&mut limited(native(&exe).arg("highfds")));
    let km_out = run(&mut limited(km().arg(&exe).arg("highfds")));
    assert_runs_alike(&exe, &native_out, &km_out);
    let out = text(&km_out.stdout);
    assert!(
        out.contains("after exec: 20 of the 20 descriptors 20..39 open\n")
            && out.ends_with("highfds done\n"),
        "{out}{}",
        text(&km_out.stderr)
    );
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
