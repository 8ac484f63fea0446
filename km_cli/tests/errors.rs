//! km_cli's refusals are one line on stderr and a non-zero status (the
//! successful requests are tested against a running km in tests/snapshot.rs).
//! Being an integration test, this also makes `cargo test --workspace` build
//! km_cli, which `make install` in km's own tests installs.

use std::process::Command;

#[test]
fn a_socket_nobody_listens_on_is_one_line_and_status_1() {
    let dir = std::env::temp_dir().join(format!("km_cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("no-km-here");
    let out = Command::new(env!("CARGO_BIN_EXE_km_cli"))
        .arg("-s")
        .arg(&socket)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("km_cli: ") && stderr.contains(&*socket.to_string_lossy()),
        "{stderr}"
    );
}

#[test]
fn a_missing_socket_option_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_km_cli")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-s"));
}
