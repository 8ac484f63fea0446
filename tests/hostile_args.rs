//! Hostile arguments (issue 10): crafted structures and lengths get Linux's errno
//! and km survives them; mappings larger than Linux would grant get ENOMEM; fork
//! under a process limit gets EAGAIN. Every case runs natively too, and the
//! outputs must match.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{km, native, payload, text};

const LIBCS: [&str; 2] = ["musl", "glibc"];
/// Longer than any case needs: a km that loops or hangs fails instead of blocking.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion within TIME_LIMIT (killed and failed past it).
fn run_limited(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning");
    let start = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collecting output");
            panic!(
                "{cmd:?} still running after {TIME_LIMIT:?}; stdout: {}stderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collecting output")
}

/// Runs `hostile MODE` natively and under km (each through `wrap`), asserts both
/// exit 0 with the same output and returns it.
fn same_as_native(libc: &str, mode: &str, wrap: impl Fn(Command) -> Command) -> String {
    let exe = payload(&format!("hostile.{libc}"));
    let native_out = run_limited(wrap(native(&exe)).arg(mode));
    let mut under_km = km();
    under_km.arg(&exe);
    let km_out = run_limited(wrap(under_km).arg(mode));
    let stdout = text(&km_out.stdout);
    assert_eq!(
        stdout,
        text(&native_out.stdout),
        "hostile.{libc} {mode}: km's output differs from native; km stderr: {}",
        text(&km_out.stderr)
    );
    for (who, out) in [("native", &native_out), ("km", &km_out)] {
        assert!(
            out.status.success(),
            "hostile.{libc} {mode} ({who}): {:?}; stderr: {}",
            out.status,
            text(&out.stderr)
        );
    }
    stdout
}

fn assert_lines(stdout: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            stdout.lines().any(|l| l == *line),
            "expected {line:?} in:\n{stdout}"
        );
    }
}

#[test]
fn crafted_cmsgs_get_einval_and_km_survives() {
    for libc in LIBCS {
        let out = same_as_native(libc, "cmsg", |c| c);
        assert_lines(
            &out,
            &[
                "one SCM_RIGHTS: ok 1",
                "cmsg_len below the header: EINVAL",
                "cmsg_len past the buffer: EINVAL",
                "cmsg_len 2^64-1: EINVAL",
                "cmsg_len 2^64-8: EINVAL",
                "second cmsg_len 2^64-16: EINVAL",
                "controllen 2^64-1: ENOBUFS",
                "after all that, a plain send: ok 1",
            ],
        );
    }
}

#[test]
fn crafted_structures_get_linuxs_errno() {
    for libc in LIBCS {
        let out = same_as_native(libc, "structs", |c| c);
        // A sample the comparison with native covers too: these are Linux's.
        assert_lines(
            &out,
            &[
                "sendmsg iovlen 1025: EMSGSIZE",
                "sendmsg msghdr at 2^64-8: EFAULT",
                "writev negative length after a bad buffer: EINVAL",
                "preadv iovcnt 2^32+1: ok 0",
                "epoll_wait events across the end of memory: ok 0",
                "poll nfds 2^40: ok 0",
                "select nfds 2^30: ok 0",
                "clone3 size 8192: E2BIG",
                "clone3 stack size without a stack: EINVAL",
                "execve argv across the end of memory: EFAULT",
                "mremap old length 2^63: EINVAL",
                "readlink bufsiz 2^32+4 (an int: 4): ok 4",
            ],
        );
        assert_eq!(out.lines().count(), 47, "every case printed:\n{out}");
    }
}

#[test]
fn mapping_larger_than_ram_and_swap_gets_enomem() {
    for libc in LIBCS {
        let out = same_as_native(libc, "overcommit", |c| c);
        if out.starts_with("overcommit: skipped") {
            eprintln!("hostile.{libc}: {out}");
            continue;
        }
        assert_lines(
            &out,
            &[
                "mmap private writable larger than RAM+swap: ENOMEM",
                "mmap shared anonymous larger than RAM+swap: ENOMEM",
                "mprotect it writable: ENOMEM",
                "mmap MAP_NORESERVE larger than RAM+swap: ok 0",
                "mremap growing past RAM+swap: ENOMEM",
                "brk past RAM+swap: unchanged",
                "mmap 1 MiB afterwards: ok 0",
            ],
        );
    }
}

/// The payload's RLIMIT_AS and RLIMIT_DATA bind its own mappings as on Linux; km
/// keeps them for the guest instead of applying them to itself (it aborted on its
/// own allocations when the payload lowered them).
#[test]
fn address_space_and_data_limits_bind_the_payload() {
    for libc in LIBCS {
        let out = same_as_native(libc, "rlimit", |c| c);
        assert_lines(
            &out,
            &[
                "lower RLIMIT_AS: 0",
                "mmap 1 GiB: ENOMEM",
                "mmap 16 MiB: ok",
                "soft above hard: -1 EINVAL",
                "RLIMIT_AS now: 512 MiB",
                "lower RLIMIT_DATA: 0",
                "mmap 128 MiB private writable: ENOMEM",
                "mmap 128 MiB read-only: ok",
                "malloc 100 KiB: ok",
            ],
        );
    }
}

/// A pids cgroup of the test's own (v1, or v2 with the pids controller), removed
/// when dropped.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn new() -> Option<PidsCgroup> {
        let name = format!("km-hostile-{}", std::process::id());
        let own_v2 = std::fs::read_to_string("/proc/self/cgroup")
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix("0::")
                    .map(|p| p.trim_start_matches('/').to_string())
            });
        let mut parents = vec![PathBuf::from("/sys/fs/cgroup/pids")];
        if let Some(own) = own_v2 {
            parents.push(Path::new("/sys/fs/cgroup").join(&own));
            parents.push(Path::new("/sys/fs/cgroup/unified").join(&own));
        }
        parents.into_iter().find_map(|parent| {
            let dir = parent.join(&name);
            std::fs::create_dir(&dir).ok()?;
            let group = PidsCgroup(dir);
            group.set_max(1000).then_some(group)
        })
    }

    fn set_max(&self, max: u32) -> bool {
        std::fs::write(self.0.join("pids.max"), max.to_string()).is_ok()
    }

    /// `cmd` started inside the cgroup.
    fn inside(&self, cmd: Command) -> Command {
        let procs = self.0.join("cgroup.procs");
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(format!("echo $$ > '{}' && exec \"$@\"", procs.display()))
            .arg("sh")
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::null());
        sh
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The last processes may take a moment to leave.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn fork_under_a_pids_limit_gets_eagain() {
    let Some(group) = PidsCgroup::new() else {
        eprintln!(
            "skipped: no writable pids cgroup (v1 /sys/fs/cgroup/pids or this process's v2 \
             cgroup with the pids controller); RLIMIT_NPROC is not enforced for root"
        );
        return;
    };
    // Every limit from "km cannot fork at all" up to a few children, so the limit
    // falls at each point of a child km's set-up (its VM, vCPU, clock thread).
    for max in 3..=12 {
        assert!(group.set_max(max), "setting pids.max");
        for libc in LIBCS {
            let out = same_as_native(libc, "forklimit", |c| group.inside(c));
            assert_eq!(
                out, "fork stopped by: EAGAIN\nchildren that did not run: 0\n",
                "pids.max {max}, hostile.{libc}"
            );
        }
    }
}
