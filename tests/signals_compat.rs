//! Signal behaviour real programs rely on (issue 13), each compared with the same
//! run natively: the temporary masks of pselect6/ppoll/epoll_pwait and GNU make's
//! `-j2`, which waits for its children exactly that way; queued real-time signals
//! and sigqueue; a signal to the own process taken by its sender; a child killed
//! right after fork; signals kept across execve; signalfd.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Longest a run may take before it counts as hung (km under load, gcc re-executed
/// per process): a guard against hanging forever, not a speed check.
const HANG_LIMIT: Duration = Duration::from_secs(600);

/// Runs `cmd` to its end (failing the test if it hangs); returns stdout and the
/// exit code (`None` when killed by a signal).
fn run_guarded(cmd: &mut Command, who: &str) -> (String, Option<i32>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut s).unwrap();
        s
    });
    let status = wait_for(&mut child, HANG_LIMIT, who);
    (
        text(&out.join().unwrap()),
        status.code(),
        text(&err.join().unwrap()),
    )
}

/// Runs payload sigcompat.LIBC in `mode` natively and under km; both must print the
/// same and end with `done`.
fn sigcompat_like_native(mode: &str) {
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("sigcompat.{libc}"));
        let (native_out, native_code, _) = run_guarded(native(&exe).arg(mode), "native");
        let (km_out, km_code, km_err) = run_guarded(km().arg(&exe).arg(mode), "km");
        assert_eq!(km_out, native_out, "{libc} {mode}; km stderr: {km_err}");
        assert_eq!(km_code, native_code, "{libc} {mode} exit status");
        assert!(
            native_out.ends_with("done\n") && native_code == Some(0),
            "{libc} {mode} natively: {native_out}"
        );
    }
}

#[test]
fn waits_apply_their_temporary_signal_mask() {
    sigcompat_like_native("pwait");
}

/// A copy of the small C project in tests/makeproj in a fresh directory.
fn make_project(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/makeproj");
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

/// The names of the files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn make_j2_builds_a_project_like_native() {
    let native_dir = make_project("make_j2_native");
    let (native_out, native_code, native_err) = run_guarded(
        Command::new("/usr/bin/make")
            .args(["-s", "-j2"])
            .current_dir(&native_dir)
            .stdin(Stdio::null()),
        "native make",
    );
    assert_eq!(native_code, Some(0), "native make: {native_err}");
    let km_dir = make_project("make_j2_km");
    let (km_out, km_code, km_err) = run_guarded(
        km().args(["/usr/bin/make", "-s", "-j2"])
            .current_dir(&km_dir),
        "make -j2 under km",
    );
    assert_eq!(km_out, native_out, "make's output; km stderr: {km_err}");
    assert_eq!(km_code, native_code, "make's status; km stderr: {km_err}");
    assert_eq!(listing(&km_dir), listing(&native_dir));
    let result = |dir: &Path| std::fs::read_to_string(dir.join("result.txt")).unwrap();
    assert_eq!(result(&km_dir), result(&native_dir));
}

#[test]
fn realtime_signals_queue_with_their_values() {
    sigcompat_like_native("rtqueue");
}

#[test]
fn a_signal_to_the_own_process_runs_on_the_sender_before_kill_returns() {
    sigcompat_like_native("selfkill");
}

#[test]
fn a_child_killed_right_after_fork_dies_of_the_signal() {
    sigcompat_like_native("earlykill");
}

#[test]
fn execve_keeps_blocked_and_pending_signals() {
    sigcompat_like_native("exec");
}

#[test]
fn signalfd_reads_pending_signals_and_wakes_poll_and_epoll() {
    sigcompat_like_native("signalfd");
}
