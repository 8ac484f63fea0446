//! Deploying km as users do (docs/deploy.md): `make install` into a DESTDIR, and
//! payloads built with kontain-gcc / kontain-g++ that run the same natively and
//! under km (the km just built and the installed one).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{km, make_install, native, run, scratch, text};
use object::Object;
use object::read::elf::{ElfFile64, ProgramHeader};

const SOURCE: &str = env!("CARGO_MANIFEST_DIR");

fn tool(name: &str) -> PathBuf {
    Path::new(SOURCE).join("tools").join(name)
}

fn payload_source(name: &str) -> PathBuf {
    Path::new(SOURCE).join("tests/payloads").join(name)
}

/// Runs `cmd`, asserting that it succeeds.
fn check(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Builds `source` into `out` with the wrapper `compiler` and `flags`.
fn build(compiler: &Path, flags: &[&str], source: &Path, out: &Path) {
    check(
        Command::new(compiler)
            .args(flags)
            .arg("-o")
            .arg(out)
            .arg(source),
    );
}

/// Runs `exe args` natively and under `km` (a command naming km): the same stdout
/// and exit status. Returns the output.
fn assert_like_native(mut km: Command, exe: &Path, args: &[&str]) -> String {
    let native_out = run(native(exe).args(args));
    let km_out = run(km.arg(exe).args(args));
    common::assert_runs_alike(exe, &native_out, &km_out);
    text(&native_out.stdout)
}

/// Whether `exe` names a dynamic linker, and whether it carries DWARF debug info.
fn linkage(exe: &Path) -> (bool, bool) {
    let data = std::fs::read(exe).unwrap();
    let elf = ElfFile64::<object::LittleEndian>::parse(&*data).unwrap();
    let dynamic = elf
        .elf_program_headers()
        .iter()
        .any(|p| p.p_type(elf.endian()) == object::elf::PT_INTERP);
    (dynamic, elf.section_by_name(".debug_info").is_some())
}

const STATIC_WITH_DEBUG_INFO: (bool, bool) = (false, true);

#[test]
fn kontain_gcc_builds_a_static_payload_with_debug_info() {
    let exe = scratch("kontain-gcc").join("hello.km");
    build(
        &tool("kontain-gcc"),
        &["-O2"],
        &payload_source("kgcc.c"),
        &exe,
    );
    assert_eq!(linkage(&exe), STATIC_WITH_DEBUG_INFO);
    let out = assert_like_native(km(), &exe, &["one", "two words"]);
    assert_eq!(out, "libc: glibc\nargs: one,two words\n");
}

#[test]
fn kontain_gxx_builds_a_static_cxx_payload() {
    let exe = scratch("kontain-gxx").join("hello.km");
    build(&tool("kontain-g++"), &[], &payload_source("kgcc.cc"), &exe);
    assert_eq!(linkage(&exe), STATIC_WITH_DEBUG_INFO);
    let out = assert_like_native(km(), &exe, &["beta", "", "alpha"]);
    assert_eq!(out, "caught: empty word\nalpha: 5\nbeta: 4\n");
}

#[test]
fn kontain_gcc_is_a_makefiles_cc() {
    let dir = scratch("kontain-gcc-make");
    std::fs::copy(payload_source("kgcc.c"), dir.join("main.c")).unwrap();
    // make's built-in rule compiles main.o with $(CC) -c; the link is objects only.
    std::fs::write(
        dir.join("Makefile"),
        "hello.km: main.o\n\t$(CC) -o $@ main.o\n",
    )
    .unwrap();
    check(
        Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&dir)
            .arg(format!("CC={}", tool("kontain-gcc").display())),
    );
    assert!(dir.join("main.o").exists(), "compiled separately");
    let exe = dir.join("hello.km");
    assert_eq!(linkage(&exe), STATIC_WITH_DEBUG_INFO);
    assert_like_native(km(), &exe, &["made"]);
}

#[test]
fn kontain_gcc_dynamic_keeps_dynamic_linking() {
    let exe = scratch("kontain-gcc-dynamic").join("hello.km");
    build(
        &tool("kontain-gcc"),
        &["-dynamic"],
        &payload_source("kgcc.c"),
        &exe,
    );
    assert_eq!(linkage(&exe), (true, true));
    assert_like_native(km(), &exe, &["dynamic"]);
}

#[test]
fn kontain_gcc_alpine_builds_with_musl() {
    let exe = scratch("kontain-gcc-alpine").join("hello.km");
    build(
        &tool("kontain-gcc"),
        &["-alpine"],
        &payload_source("kgcc.c"),
        &exe,
    );
    assert_eq!(linkage(&exe), STATIC_WITH_DEBUG_INFO);
    let out = assert_like_native(km(), &exe, &["musl"]);
    assert_eq!(out, "libc: not glibc\nargs: musl\n");
}

#[test]
fn kontain_gcc_alpine_without_musl_gcc_is_one_clear_line() {
    let dir = scratch("kontain-gcc-no-musl");
    let exe = dir.join("hello.km");
    let out = run(Command::new(tool("kontain-gcc"))
        .env("PATH", &dir)
        .args(["-alpine", "-o"])
        .arg(&exe)
        .arg(payload_source("kgcc.c")));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.starts_with("kontain-gcc: -alpine needs musl-gcc"),
        "{err}"
    );
    assert!(!exe.exists());
}

const INSTALLED: [&str; 7] = [
    "bin/km",
    "bin/krun",
    "bin/kontain-gcc",
    "bin/kontain-g++",
    "share/kontain/vscode/launch.json",
    "share/kontain/vscode/settings.json",
    "share/kontain/vscode/tasks.json",
];

#[test]
fn make_install_into_destdir_and_uninstall() {
    let destdir = scratch("install-destdir");
    let vars = [format!("DESTDIR={}", destdir.display())];
    make_install("install", &vars);
    let prefix = destdir.join("opt/kontain");
    for file in INSTALLED {
        assert!(prefix.join(file).exists(), "{file} installed");
    }

    // The installed km runs a payload the installed kontain-g++ built.
    let bin = prefix.join("bin");
    let exe = destdir.join("hello.km");
    build(
        &bin.join("kontain-g++"),
        &[],
        &payload_source("kgcc.cc"),
        &exe,
    );
    let out = assert_like_native(native(&bin.join("km")), &exe, &["installed"]);
    assert_eq!(out, "installed: 9\n");

    make_install("uninstall", &vars);
    assert!(!prefix.exists(), "uninstall removes the prefix it made");
    assert!(destdir.join("opt").exists(), "and not its parents");
}

#[test]
fn make_install_into_prefix() {
    let prefix = scratch("install-prefix").join("kontain");
    let vars = [format!("PREFIX={}", prefix.display())];
    make_install("install", &vars);
    for file in INSTALLED {
        assert!(prefix.join(file).exists(), "{file} installed");
    }
    let exe = prefix.join("hello.km");
    build(
        &prefix.join("bin/kontain-gcc"),
        &[],
        &payload_source("kgcc.c"),
        &exe,
    );
    let out = assert_like_native(native(&prefix.join("bin/km")), &exe, &["prefix"]);
    assert_eq!(out, "libc: glibc\nargs: prefix\n");
    std::fs::remove_file(&exe).unwrap();
    make_install("uninstall", &vars);
    assert!(!prefix.exists());
}
