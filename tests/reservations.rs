//! Reservations larger than the upper region (128 GiB): PROT_NONE, MAP_NORESERVE
//! mappings of hundreds of GiB succeed as on Linux, parts of them made read-write
//! work (also in a fork child), and the rest still faults; a hundred shared
//! anonymous PROT_NONE reservations of 3 to 6 GiB (Kontain's hcallargs test makes
//! them), one page of which a fork child writes for its parent. Compared with native.

mod common;

use common::{assert_passes_like_native, payload};

#[test]
fn huge_prot_none_reservations_work_as_on_linux() {
    for libc in ["glibc", "musl"] {
        let out = assert_passes_like_native(
            &payload(&format!("bigreserve.{libc}")),
            &[],
            None,
            "bigreserve done",
        );
        for line in [
            "reserve 256 GiB: ok, page aligned yes",
            "reserve 1024 GiB: ok, page aligned yes",
            "part at +515 GiB: written and read back",
            "fork child reads the parts: yes",
            "touching the rest: Segmentation fault",
            "two 200 GiB reservations: ok",
            "100 shared reservations: ok, the child's write seen yes",
        ] {
            assert!(out.contains(line), "{libc}: no {line:?} in {out}");
        }
    }
}
