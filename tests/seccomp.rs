//! km's seccomp filter: a host syscall outside km's allow-list kills km (not just
//! the payload) with a message naming it, and a running km is under the filter
//! (two BPF programs: the allow-list, and clone3's ENOSYS).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{km, text};

const CHILD: &str = "KM_SECCOMP_TEST_CHILD";

/// Runs in a child test process only: installs km's filter, then makes a host
/// call km never needs (chroot); the filter must kill the process by SIGSYS.
/// A thread started before that shows km's own calls still work.
#[test]
fn forbidden_call_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let filters = km::seccomp::compile().expect("compiling km's filter");
    km::seccomp::install(filters).expect("installing km's filter");
    println!("filter installed, pid {}", std::process::id());
    // Threads still start: glibc's clone3 gets ENOSYS and it falls back to clone.
    let joined = std::thread::spawn(|| 7).join().unwrap();
    println!("thread returned {joined}");
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
    assert!(stdout.contains("thread returned 7"), "{stdout}{stderr}");
    assert!(!stdout.contains("chroot returned"), "{stdout}{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{stdout}{stderr}");
    let line = format!(
        "km: host syscall {} refused by km's seccomp filter",
        libc::SYS_chroot
    );
    assert!(stderr.contains(&line), "{stderr}");
}

/// `Seccomp_filters:` in a /proc/PID/status text: how many filters the process
/// runs under (the test itself may run under a container's).
fn filters(status: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Seccomp_filters in /proc/PID/status")
}

fn own_filters() -> u32 {
    filters(&std::fs::read_to_string("/proc/self/status").unwrap())
}

/// How many filters a km running `args` has once it runs `sleep` (km names itself
/// after its payload), has started its clock thread (the filter comes after it)
/// and `settle` has passed; polls until there are `until` filters, if given.
fn filters_of_running_km(args: &[&str], until: Option<u32>) -> u32 {
    let mut child = km().args(args).spawn().unwrap();
    let path = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = 0;
    while Instant::now() < deadline {
        let s = std::fs::read_to_string(&path).unwrap_or_default();
        let started = s.starts_with("Name:\tsleep") && !s.contains("\nThreads:\t1\n");
        if started {
            if until.is_none() {
                std::thread::sleep(Duration::from_millis(300));
            }
            found = filters(&std::fs::read_to_string(&path).unwrap());
            if until.is_none_or(|n| n == found) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    found
}

#[test]
fn km_runs_its_payload_under_the_filter_unless_told_not_to() {
    let own = own_filters();
    let sleep = ["/bin/sleep", "10"];
    assert_eq!(filters_of_running_km(&sleep, Some(own + 2)), own + 2);
    let unfiltered = [&["--no-seccomp"][..], &sleep[..]].concat();
    assert_eq!(filters_of_running_km(&unfiltered, None), own);
}

/// The payload's execve re-executes km, which keeps its parent's two filters
/// (not two more per execve).
#[test]
fn an_execed_km_keeps_its_parents_filters() {
    let own = own_filters();
    let exec = ["/bin/sh", "-c", "exec /bin/sleep 10"];
    assert_eq!(filters_of_running_km(&exec, None), own + 2);
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
