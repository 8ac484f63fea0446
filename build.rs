//! Builds km's vDSO (src/guest/vdso/), the small shared object km maps into every payload
//! so that clock_gettime and friends need no VM exit. It is C compiled freestanding
//! with the system's C compiler ($CC, else cc), the way Linux builds its own vDSO.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = PathBuf::from("src/guest/vdso");
    for file in ["vdso.c", "vdso.lds"] {
        println!("cargo:rerun-if-changed=src/guest/vdso/{file}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .args([
            "-shared",
            "-nostdlib",
            "-fPIC",
            "-O2",
            "-fno-stack-protector",
            "-fno-builtin",
            "-mno-red-zone",
            "-Wall",
            "-Wl,-soname,linux-vdso.so.1",
            "-Wl,--hash-style=both",
            "-Wl,-Bsymbolic",
            "-Wl,--no-undefined",
            "-Wl,-z,max-page-size=4096",
            "-Wl,-z,noexecstack",
        ])
        .arg(format!("-Wl,-T,{}", src.join("vdso.lds").display()))
        .arg("-o")
        .arg(out.join("vdso.so"))
        .arg(src.join("vdso.c"))
        .status()
        .unwrap_or_else(|e| panic!("running {cc} to build the vDSO (a C compiler is needed): {e}"));
    assert!(status.success(), "building the vDSO with {cc} failed");
}
