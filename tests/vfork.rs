//! vfork and clone(CLONE_VM|CLONE_VFORK) children share their parent's memory until
//! they exec or exit, as on Linux: glibc's posix_spawn learns a failed exec's errno
//! from what its child writes, a vfork child's writes are the parent's, and only the
//! vforking thread waits. Each payload run is compared with its native run.

mod common;

use std::ffi::OsStr;

use common::{assert_passes_like_native, payload};

const LIBCS: [&str; 2] = ["glibc", "musl"];

fn passes(libc: &str, mode: &str, last_line: &str) -> String {
    assert_passes_like_native(
        &payload(&format!("vfork.{libc}")),
        &[OsStr::new(mode)],
        None,
        last_line,
    )
}

#[test]
fn posix_spawn_of_a_missing_program_is_enoent() {
    for libc in LIBCS {
        let out = passes(libc, "missing", "posix_spawnp of a missing program");
        assert_eq!(
            out,
            "posix_spawn of a missing program: No such file or directory\n\
             posix_spawnp of a missing program: No such file or directory\n",
            "{libc}"
        );
    }
}

#[test]
fn posix_spawn_file_actions_give_the_child_its_descriptors() {
    for libc in LIBCS {
        let out = passes(libc, "actions", "parent's fd 6 still open: yes");
        for line in [
            "fd 5: open",
            "fd 6: closed",
            "fd 5 starts with ELF",
            "child status: 7",
        ] {
            assert!(out.contains(line), "{libc}: no {line:?} in {out}");
        }
    }
}

#[test]
fn vfork_child_writes_are_the_parents() {
    for libc in LIBCS {
        let out = passes(libc, "global", "child status: 3");
        assert!(out.contains("parent sees global = 42"), "{libc}: {out}");
        let out = passes(libc, "execs", "child status: 7");
        assert!(out.contains("parent sees global = 5"), "{libc}: {out}");
        assert!(
            out.contains("fd 3: closed"),
            "{libc}: the exec'd child ran: {out}"
        );
    }
}

#[test]
fn only_the_vforking_thread_waits_for_the_child() {
    for libc in LIBCS {
        let out = passes(libc, "threads", "child status: 0");
        assert!(
            out.contains("the counting thread ran during the vfork: yes")
                && out.contains("the parent resumed after the child: yes"),
            "{libc}: {out}"
        );
    }
}

#[test]
fn go_os_exec_starts_and_reports_children() {
    if !common::go_payloads_built() {
        return;
    }
    let out = assert_passes_like_native(
        &payload("goexec"),
        &[],
        None,
        "spinning goroutine ran: true",
    );
    for line in [
        "output \"hello\\n\", error <nil>",
        "exit code 3",
        "missing program: fork/exec /nonexistent/program: no such file or directory",
    ] {
        assert!(out.contains(line), "no {line:?} in {out}");
    }
}

/// glibc only: musl's raise signals the thread by its cached tid, which in a vfork
/// child is the parent's (natively, the parent dies of the SIGTERM).
#[test]
fn a_vfork_child_signals_only_itself() {
    let out = passes("glibc", "selfsignals", "child status: 143");
    assert!(out.contains("the child's handler ran 1 time(s)"), "{out}");
}
