//! Linux AIO (io_setup, io_submit, io_getevents, io_cancel, io_destroy), which
//! Kontain's aio test program uses: writes, plain and vectored reads, syncs, a
//! read into a bad buffer, a poll that completes only once its pipe has data and
//! tells an eventfd, io_cancel of a waiting poll, and the errors of bad arguments.
//! Compared with native.

mod common;

use common::{assert_passes_like_native, payload};

#[test]
fn linux_aio_completes_as_on_linux() {
    for libc in ["glibc", "musl"] {
        let out = assert_passes_like_native(
            &payload(&format!("aio.{libc}")),
            &[],
            Some(&format!("aio-{libc}")),
            "aio done",
        );
        for line in [
            "io_setup: ok, context set",
            "writes: 2 events [data 1 res 100] [data 2 res 50]",
            "reads and syncs: 4 events [data 3 res 150] [data 4 res 5] [data 5 res 0] [data 6 res 0]",
            "read back: aaaaa...bbbbb",
            "bad buffer: 1 events [data 7 res -14]",
            "poll before data (50 ms): 0 events",
            "eventfd: ok 1",
            "cancelled poll: 1 events [data 9 res 0]",
            "good then bad: 1",
            "io_destroy: ok",
        ] {
            assert!(out.contains(line), "{libc}: no {line:?} in {out}");
        }
    }
}
