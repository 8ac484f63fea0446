//! An execve leaves nothing of the program before it, as on Linux: after a chain
//! of execs (which km loads in place, on a new VM each time), and after a fork
//! child's exec, the last program's resident memory is its own, km holds its
//! VM and vCPU only, and the program holds exactly the descriptors the execs
//! kept.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{km, native, payload, wait_for};

/// What the last program of a chain shows: its "kept ..." line, its process's
/// resident set in MiB, and how many KVM VMs and vCPUs the process holds.
struct Last {
    kept: String,
    rss: u64,
    vms: usize,
    vcpus: usize,
}

/// Runs `cmd` (the execchain payload) until its last program says its pid;
/// returns what it shows, then lets it end and checks it ended well.
fn last_program(mut cmd: Command, who: &str) -> Last {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the payload");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let kept = lines.next().and_then(Result::ok).unwrap_or_default();
    let pid_line = lines.next().and_then(Result::ok).unwrap_or_default();
    let pid: u32 = pid_line
        .strip_prefix("pid ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{who}: no pid line: {kept:?} {pid_line:?}"));
    // km lets an old program's VM go on a thread of its own, which may still be
    // at it: the process is looked at until it holds one VM at most (for 10 s
    // at most).
    let mut seen = sample(pid, who);
    for _ in 0..100 {
        if seen.1 <= 1 && seen.2 <= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        seen = sample(pid, who);
    }
    drop(child.stdin.take());
    let ended = wait_for(&mut child, Duration::from_secs(60), who);
    assert!(ended.success(), "{who}: {ended}");
    let (rss, vms, vcpus) = seen;
    Last {
        kept,
        rss,
        vms,
        vcpus,
    }
}

/// Process `pid`'s resident set in MiB and how many KVM VMs and vCPUs it holds.
fn sample(pid: u32, who: &str) -> (u64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{who}: no VmRSS in {status}"));
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    let count = |what: &str| links.iter().filter(|l| l.starts_with(what)).count();
    (
        rss_kib >> 10,
        count("anon_inode:kvm-vm"),
        count("anon_inode:kvm-vcpu"),
    )
}

/// The execchain payload `exe` run with `args`, natively (`under_km` false) or
/// under km: what its last program shows.
fn last_of(exe: &Path, args: &[&str], under_km: bool) -> Last {
    let mut cmd = match under_km {
        true => {
            let mut cmd = km();
            cmd.arg(exe);
            cmd
        }
        false => native(exe),
    };
    cmd.args(args);
    last_program(cmd, if under_km { "km" } else { "native" })
}

/// A fork child under km, the last program of `exe`: it holds under 64 MiB
/// (none of the 128 MiB a program before it touched) and one VM and vCPU.
fn assert_child_holds_its_own(exe: &Path, child: &Last) {
    assert!(
        child.rss < 64,
        "{}: the child holds {} MiB",
        exe.display(),
        child.rss
    );
    assert_eq!(
        (child.vms, child.vcpus),
        (1, 1),
        "{}: the child's VMs and vCPUs",
        exe.display()
    );
}

/// Twenty programs in a row, each touching 16 MiB: the last one's resident set
/// stays near one program's (km keeping the earlier programs' memory would
/// hold over 300 MiB).
#[test]
fn an_exec_chain_keeps_no_earlier_programs_memory() {
    let exe = payload("execchain.musl");
    let native = last_of(&exe, &["19", "16"], false);
    let under_km = last_of(&exe, &["19", "16"], true);
    assert_eq!(native.kept, "kept 20 cloexec 1");
    assert_eq!(under_km.kept, native.kept);
    assert!(
        under_km.rss < native.rss + 64,
        "km {} MiB resident after the chain, native {} MiB",
        under_km.rss,
        native.rss
    );
    assert_eq!((under_km.vms, under_km.vcpus), (1, 1), "km's VMs and vCPUs");
}

/// A fork child of a program that touched 128 MiB execs twice: its resident set
/// no longer holds its copy of its parent's memory.
#[test]
fn a_fork_childs_exec_drops_its_copy_of_the_parents_memory() {
    for exe in ["execchain.musl", "execchain.glibc"] {
        let exe = payload(exe);
        let args = ["fork", "2", "128"];
        let native = last_of(&exe, &args, false);
        let under_km = last_of(&exe, &args, true);
        assert_eq!(native.kept, "kept 3 cloexec 1");
        assert_eq!(under_km.kept, native.kept);
        assert_child_holds_its_own(&exe, &under_km);
    }
}

/// A program loaded in place by an execve forks at once, while km may still be
/// letting the program before it (which touched 128 MiB) go: the fork waits
/// for that, and the child holds none of that memory.
#[test]
fn a_fork_right_after_an_exec_copies_nothing_of_the_program_before() {
    for exe in ["execchain.musl", "execchain.glibc"] {
        let exe = payload(exe);
        let under_km = last_of(&exe, &["exec-fork", "128"], true);
        assert_child_holds_its_own(&exe, &under_km);
    }
}

/// Six hundred execs in a row on a busy host (two threads of this test spinning):
/// km lets each old program go on a thread of its own, which the load holds
/// back, and the next exec must not run out of room for its memory while those
/// pile up (it failed with ENOEXEC after a few hundred execs).
#[test]
fn a_long_exec_chain_on_a_busy_host() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let exe = payload("execchain.musl");
    let native = last_of(&exe, &["599", "0"], false);
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let under_km = last_of(&exe, &["599", "0"], true);
    stop.store(true, Ordering::Relaxed);
    spinners.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(native.kept, "kept 600 cloexec 1");
    assert_eq!(under_km.kept, native.kept);
}
