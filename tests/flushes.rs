//! km skips the flush of every vCPU's translations where none can be stale (an
//! entry never accessed, an unmap whose host memory is replaced): another thread
//! must still see each change at once, as natively.

mod common;

use common::{assert_same_as_native, payload};

#[test]
fn another_thread_sees_unmaps_and_replacements_at_once() {
    // musl's brk() never moves the break: the heap case is glibc's.
    let cases = ["munmap", "fixed", "file"].map(|how| (how, ["musl", "glibc"].as_slice()));
    for (how, libcs) in cases.into_iter().chain([("brk", ["glibc"].as_slice())]) {
        for libc in libcs {
            assert_same_as_native(
                &payload(&format!("staleread.{libc}")),
                &[how.as_ref()],
                None,
            );
        }
    }
}
