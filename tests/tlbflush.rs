//! The translation flush after mprotect and munmap: a page the payload just used
//! faults right after its protection drops or it is unmapped, on the same thread,
//! inside a large page split by mprotect, and on another thread that had read it;
//! compared with the same run natively. ci/hwkvm runs the payload on hardware KVM.

mod common;

use common::{assert_passes_like_native, payload};

#[test]
fn pages_fault_right_after_mprotect_and_munmap() {
    for libc in ["glibc", "musl"] {
        let out =
            assert_passes_like_native(&payload(&format!("tlbflush.{libc}")), &[], None, "done");
        for line in [
            "write after PROT_READ: fault",
            "read after munmap: fault",
            "block: read protected page: fault",
            "block: read page before: ok",
            "other thread: read after PROT_NONE: fault",
            "other thread: read after munmap: fault",
        ] {
            assert!(
                out.contains(&format!("{line}\n")),
                "{libc}: no {line:?} in\n{out}"
            );
        }
    }
}
