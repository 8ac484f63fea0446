//! km's seccomp filter: a host syscall outside km's allow-list kills km (not just
//! the payload) with a message naming it, and a running km is under the filter.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{km, text};

const CHILD: &str = "KM_SECCOMP_TEST_CHILD";

/// Runs in a child test process only: installs km's filter, then makes a host
/// call km never needs (chroot); the filter must kill the process by SIGSYS.
#[test]
fn forbidden_call_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    km::seccomp::install().expect("installing km's filter");
    println!("filter installed, pid {}", std::process::id());
    let r = std::os::unix::fs::chroot("/nonexistent-km-seccomp-test");
    println!("chroot returned {r:?}: the filter did not stop it");
}

#[test]
fn a_forbidden_host_call_kills_km_by_sigsys_with_a_message() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "forbidden_call_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("filter installed"), "{stdout}{stderr}");
    assert!(!stdout.contains("chroot returned"), "{stdout}{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{stdout}{stderr}");
    let line = format!(
        "km: host syscall {} refused by km's seccomp filter",
        libc::SYS_chroot
    );
    assert!(stderr.contains(&line), "{stderr}");
}

/// The `Seccomp:` mode and `Seccomp_filters:` count in /proc/PID/status of a km
/// running `args`, once it runs `sleep` (km names itself after its payload).
fn seccomp_of_running_km(args: &[&str]) -> (String, String) {
    let mut child = km().args(args).spawn().unwrap();
    let status = format!("/proc/{}/status", child.id());
    let field = |s: &str, name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = (String::new(), String::new());
    while Instant::now() < deadline {
        let s = std::fs::read_to_string(&status).unwrap_or_default();
        found = (field(&s, "Seccomp:"), field(&s, "Seccomp_filters:"));
        // The filter is installed once set-up is done, just before the payload runs.
        if s.starts_with("Name:\tsleep") && found.0 == "2" {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    found
}

#[test]
fn km_runs_its_payload_under_the_filter_unless_told_not_to() {
    let sleep = ["/bin/sleep", "10"];
    assert_eq!(seccomp_of_running_km(&sleep).0, "2");
    assert_eq!(
        seccomp_of_running_km(&[&["--no-seccomp"][..], &sleep[..]].concat()).0,
        "0"
    );
}

/// The payload's execve re-executes km, which keeps its parent's filter (one
/// filter, not one more per execve).
#[test]
fn an_execed_km_keeps_the_one_filter() {
    let found = seccomp_of_running_km(&["/bin/sh", "-c", "exec /bin/sleep 10"]);
    assert_eq!(found, ("2".to_string(), "1".to_string()));
}

/// A payload's fork and execve (a host fork of km, and km re-executed) work under
/// the filter: sh runs a pipeline of programs.
#[test]
fn fork_and_exec_under_the_filter() {
    let out = km()
        .args(["/bin/sh", "-c", "echo done | tr a-z A-Z; ls -d / | cat"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "DONE\n/\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));
}
