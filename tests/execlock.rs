//! POSIX record locks held across execve stay held, as on Linux (the process is
//! the same): a payload locks a file and execs itself twice; after each exec
//! another process sees the lock with F_GETLK, and sees it gone after an unlock.
//! Compared with native.

mod common;

use std::ffi::OsStr;

use common::{assert_passes_like_native, payload};

#[test]
fn record_locks_survive_execve() {
    for libc in ["glibc", "musl"] {
        let scratch = format!("execlock-{libc}");
        let out = assert_passes_like_native(
            &payload(&format!("execlock.{libc}")),
            &[] as &[&OsStr],
            Some(&scratch),
            "execlock done",
        );
        for line in [
            "after one exec: write lock by the program, bytes 0+10",
            "after two execs: write lock by the program, bytes 0+10",
            "after unlocking: not locked",
        ] {
            assert!(out.contains(line), "{libc}: no {line:?} in {out}");
        }
    }
}
