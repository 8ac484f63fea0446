//! `--sandbox`: a payload started by root runs as an unprivileged user, across
//! fork and execve, while it still runs normally.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{km, native, payload, run, scratch, text};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A root-owned file readable and writable by root only, in a fresh directory.
fn root_only_file(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("secret");
    std::fs::write(&file, "secret\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    file
}

fn owner_and_mode(file: &Path) -> (u32, u32) {
    let meta = std::fs::metadata(file).unwrap();
    (meta.uid(), meta.mode() & 0o7777)
}

/// The payload's report on `file`, under km with `options`.
fn identity_under_km(options: &[&str], file: &Path) -> String {
    let out = run(km().args(options).arg(payload("identity.glibc")).arg(file));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn a_sandboxed_payload_cannot_touch_roots_files() {
    if !is_root() {
        eprintln!("skipped: --sandbox needs root");
        return;
    }
    // Without --sandbox the payload has root's identity, as the native program.
    let file = root_only_file("sandbox-root");
    let native_out = run(native(&payload("identity.glibc")).arg(&file));
    let file = root_only_file("sandbox-root");
    let plain = identity_under_km(&[], &file);
    assert_eq!(plain, text(&native_out.stdout));
    assert!(plain.contains("chown ok\nchmod ok\nread ok\n"), "{plain}");
    assert_eq!(owner_and_mode(&file), (65534, 0o666));

    let file = root_only_file("sandbox-root");
    let confined = identity_under_km(&["--sandbox"], &file);
    assert_eq!(
        confined,
        "uid 65534 gid 65534\nchown EPERM\nchmod EPERM\nread EACCES\n\
         uid 65534 gid 65534\nchild status 0\n"
    );
    assert_eq!(owner_and_mode(&file), (0, 0o600));
}

#[test]
fn sandbox_ids_are_chosen_and_programs_still_run() {
    if !is_root() {
        eprintln!("skipped: --sandbox needs root");
        return;
    }
    let file = root_only_file("sandbox-ids");
    let confined = identity_under_km(
        &["--sandbox", "--sandbox-uid", "4321", "--sandbox-gid=4322"],
        &file,
    );
    assert!(
        confined.starts_with("uid 4321 gid 4322\nchown EPERM\n"),
        "{confined}"
    );
    // A shell pipeline (fork, execve, pipes) runs as usual in the sandbox.
    let out = run(km().args([
        "--sandbox",
        "/bin/sh",
        "-c",
        "id -u; echo done | tr a-z A-Z",
    ]));
    assert_eq!(text(&out.stdout), "65534\nDONE\n", "{}", text(&out.stderr));
}
