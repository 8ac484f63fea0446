//! Descriptor requests compared with native in the same run (issue 13): ioctl's
//! typed table, fcntl's record locks and other commands, recvmsg's msg_flags,
//! listing /proc/self/fd while closing descriptors, a fork child's descriptors,
//! descriptors across execve.

mod common;

use common::{assert_passes_like_native, payload};

const LIBCS: [&str; 2] = ["musl", "glibc"];

#[test]
fn ioctls_on_pipes_sockets_ptys_and_interfaces_match_native() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("ioctls.{libc}")),
            &[],
            None,
            "ioctls done",
        );
        for line in [
            "FIONREAD pipe: 5",
            "winsize 33 x 101",
            "child TIOCSCTTY: 0",
            "name of lo's index: lo",
        ] {
            assert!(out.contains(line), "{libc}: missing {line:?}: {out}");
        }
    }
}

#[test]
fn fcntl_locks_owners_seals_and_leases_match_native() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("locks.{libc}")),
            &[],
            Some(&format!("locks-{libc}")),
            "locks done",
        );
        for line in [
            "child sees type F_WRLCK start 0 len 100 owner is parent 1",
            "child F_SETLKW interrupted: -1 Interrupted system call",
            "child F_SETLKW after unlock: 0",
            "OFD owner: type F_WRLCK pid -1",
            "F_GET_SEALS after: 14",
        ] {
            assert!(out.contains(line), "{libc}: missing {line:?}: {out}");
        }
    }
}

#[test]
fn recvmsg_flags_after_scm_rights_match_native() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("rightsflags.{libc}")),
            &[],
            None,
            "rightsflags done",
        );
        assert!(out.contains("plain: received 1, msg_flags 0, "), "{out}");
    }
}

#[test]
fn proc_self_fd_listing_survives_closes_while_listing() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("fdlisting.{libc}")),
            &[],
            None,
            "fdlisting done",
        );
        assert!(out.contains("open before (64-byte pieces): 60\n"), "{out}");
        assert_eq!(out.matches("open after: 0\n").count(), 2, "{out}");
        assert!(out.contains("now fds[3] 1"), "{out}");
    }
}

#[test]
fn fork_child_owns_its_descriptors() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("forkfds.{libc}")),
            &[],
            None,
            "forkfds done",
        );
        assert!(out.contains("pipe: read 3 bytes, then 0\n"), "{out}");
        assert!(out.contains("peer after both closed: 0\n"), "{out}");
    }
}

#[test]
fn execve_keeps_descriptors_at_their_numbers() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("execfds.{libc}")),
            &[],
            Some(&format!("execfds-{libc}")),
            "execfds done",
        );
        assert!(
            out.contains("fd 3 after exec: 16 kept across exec\n"),
            "{out}"
        );
        assert!(out.contains("OFD lock after exec: kept\n"), "{out}");
    }
}
