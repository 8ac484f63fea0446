//! Real programs: Debian's dynamically linked executables, fork, exec
//! and wait, `#!` scripts, symlink invocation, and the payload's view of itself in
//! /proc. Each is run natively and under km, and the outputs must match.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;

/// Runs `exe args` natively and under km in `dir`; asserts the same stdout and exit
/// status and returns km's stdout.
fn same_in(dir: &Path, exe: &Path, args: &[&OsStr]) -> String {
    let native_out = run(native(exe).args(args).current_dir(dir));
    let km_out = run(km().arg(exe).args(args).current_dir(dir));
    assert_eq!(
        text(&km_out.stdout),
        text(&native_out.stdout),
        "{} {args:?}: output differs from native; km stderr: {}",
        exe.display(),
        text(&km_out.stderr)
    );
    assert_eq!(
        km_out.status.code(),
        native_out.status.code(),
        "{} {args:?}: status; km stderr: {}",
        exe.display(),
        text(&km_out.stderr)
    );
    text(&km_out.stdout)
}

fn os(args: &[&'static str]) -> Vec<&'static OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

#[test]
fn fork_exec_wait_spawn_and_proc_self() {
    let dir = scratch("procs");
    let hello = payload("hello.glibc");
    let out = same_in(&dir, &payload("procs.dynamic"), &[hello.as_os_str()]);
    for line in [
        "child: exited 107",
        "killed child: killed by Terminated",
        "child sees its parent: 1",
        "exec of a missing file: No such file or directory",
        "exec of a non-executable file: Permission denied",
        "exec of an executable that is no program: Exec format error",
        "exec'd: argv[0]: -renamed",
        "exec'd: env: ONLY=this",
        "vfork child ran first\nvfork parent resumed\nvfork child: exited 6",
        // Native output (same_in) also checks SigIgn: SIGUSR1, SIGPIPE (which km's
        // own runtime ignores, so an exec'ing km passes it on explicitly) and what
        // km inherited.
        "SigBlk:\t0000000000000800\nSigIgn:",
        "posix_spawn: exited 3",
        "system: exited 4",
        "SIGCHLD ignored: waitpid gives -1 (No child processes)",
        "close_range CLOEXEC: 0 1",
        "close_range closed: 1 1",
        "kill(0): parent got 1, child got 1",
        "/proc/self/exe is the program: 1",
        "/proc/self/maps shows the program's text: 1",
        "/proc/self/cmdline has argv[1]: 1",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn exec_from_a_multithreaded_process() {
    let dir = scratch("exec-threads");
    let out = same_in(&dir, &payload("execthreads.dynamic"), &[]);
    assert_eq!(out, "exec'd from a process with 5 threads\n");
}

#[test]
fn debian_ls_and_sh_pipelines() {
    // One level down, so that `..` is this test's own directory: the shared scratch
    // directory's link count changes as tests running alongside add theirs.
    let dir = scratch("debian-ls").join("tree");
    std::fs::create_dir(&dir).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::write(dir.join("file.txt"), "some bytes\n").unwrap();
    std::os::unix::fs::symlink("file.txt", dir.join("link")).unwrap();
    let out = same_in(
        &dir,
        Path::new("/bin/ls"),
        &os(&["-la", "--time-style=+", "."]),
    );
    assert!(
        out.contains("file.txt") && out.contains("link -> file.txt"),
        "{out}"
    );
    let out = same_in(
        &dir,
        Path::new("/bin/sh"),
        &os(&["-c", "echo a | tr a b; ls | sort -r | head -2; exit 3"]),
    );
    assert!(out.starts_with("b\nsub\nlink\n"), "{out}");
    // The payload's own descriptors, not km's (KVM's would show): the same as the
    // native listing, which also holds whatever the test runner passed on.
    let out = same_in(&dir, Path::new("/bin/ls"), &os(&["/proc/self/fd"]));
    assert!(out.starts_with("0\n1\n") && out.contains("\n2\n"), "{out}");
}

#[test]
fn debian_python3_json_hashlib_threads_subprocess() {
    let script = r#"
import hashlib, json, subprocess, threading
out = {}
def work(i):
    out[i] = hashlib.sha256(str(i).encode()).hexdigest()[:12]
threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
child = subprocess.run(["/bin/echo", "from a child"], capture_output=True, text=True)
rc = subprocess.call(["/bin/sh", "-c", "exit 5"])
print(json.dumps({"hashes": out, "child": child.stdout.strip(), "rc": rc}, sort_keys=True))
"#;
    let dir = scratch("python");
    let out = same_in(
        &dir,
        Path::new("/usr/bin/python3"),
        &[OsStr::new("-c"), OsStr::new(script)],
    );
    assert!(
        out.contains(r#""child": "from a child""#) && out.contains(r#""rc": 5"#),
        "{out}"
    );
}

/// Debian's python3-sysv-ipc (System V semaphores, message queues and shared
/// memory from Python): a semaphore, messages by type, one from a fork child, a
/// non-blocking receive on an empty queue, a blocking one a timer signal ends
/// after its handler ran, a shared memory segment.
#[test]
fn debian_python3_sysv_ipc() {
    let script = r#"
import os, signal, sysv_ipc
s = sysv_ipc.Semaphore(None, sysv_ipc.IPC_CREX, initial_value=1)
s.acquire(); print("acquired, value", s.value); s.release(); print("released, value", s.value)
q = sysv_ipc.MessageQueue(None, sysv_ipc.IPC_CREX)
q.send(b"hello", type=3); q.send(b"world", type=1)
print("received", q.receive(type=3), q.receive())
pid = os.fork()
if pid == 0:
    q.send(b"from the child", type=7); os._exit(0)
print("parent got", q.receive(type=7)); os.waitpid(pid, 0)
try:
    q.receive(block=False)
except sysv_ipc.BusyError as e:
    print("empty:", type(e).__name__)
signal.signal(signal.SIGALRM, lambda *a: print("alarm handler"))
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    q.receive()
except sysv_ipc.Error as e:
    print("interrupted:", type(e).__name__)
m = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=4096)
m.write(b"shared"); print("shm", m.read(6))
m.detach(); m.remove(); q.remove(); s.remove()
print("done")
"#;
    let dir = scratch("python-sysv");
    let out = same_in(
        &dir,
        Path::new("/usr/bin/python3"),
        &[OsStr::new("-c"), OsStr::new(script)],
    );
    assert!(
        out.contains("parent got (b'from the child', 7)\n")
            && out.contains("alarm handler\ninterrupted: Error\n")
            && out.ends_with("done\n"),
        "{out} (python3-sysv-ipc missing? scripts/install-deps installs it)"
    );
}

#[test]
fn debian_sqlite3_in_memory() {
    let dir = scratch("sqlite");
    let sql = "create table t(a, b); insert into t values (1, 'x'), (2, 'y'), (3, 'z'); \
               select count(*), sum(a), group_concat(b) from t; select b from t where a > 1 order by a desc;";
    let out = same_in(
        &dir,
        Path::new("/usr/bin/sqlite3"),
        &[OsStr::new(":memory:"), OsStr::new(sql)],
    );
    assert_eq!(out, "3|6|x,y,z\nz\ny\n");
}

#[test]
fn shebang_scripts_run_directly_and_from_the_payload() {
    let dir = scratch("shebang");
    let script = dir.join("greet.sh");
    write_executable(
        &script,
        b"#!/bin/sh -e\necho \"script $0 got $# args: $*\"\n",
        0,
    );
    let out = same_in(&dir, &script, &os(&["one", "two"]));
    assert!(out.contains("got 2 args: one two"), "{out}");
    let out = same_in(
        &dir,
        Path::new("/bin/sh"),
        &os(&["-c", "./greet.sh from-sh"]),
    );
    assert!(
        out.contains("script ./greet.sh got 1 args: from-sh"),
        "{out}"
    );
}

#[test]
fn symlink_to_km_runs_name_dot_km() {
    let dir = scratch("symlink");
    std::fs::copy(payload("hello.dynamic"), dir.join("greeter.km")).unwrap();
    let link = dir.join("greeter");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_km"), &link).unwrap();
    let out = run(std::process::Command::new(&link).args(["x", "y z"]));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("machine: kontain_VM"),
        "ran under km: {stdout}"
    );
    assert!(
        stdout.contains(&format!("argv[0]: {}", link.display())),
        "{stdout}"
    );
    assert!(stdout.contains("argv[2]: y z"), "{stdout}");
    // A #! line naming the link runs the payload with the script as an argument.
    let script = dir.join("via-link");
    write_executable(&script, format!("#!{}\n", link.display()).as_bytes(), 0);
    let out = run(&mut std::process::Command::new(&script));
    assert!(
        text(&out.stdout).contains(&format!("argv[1]: {}", script.display())),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn ps_shows_the_payload_not_km() {
    let mut child = km().args(["/bin/sleep", "5"]).spawn().expect("spawning km");
    let proc_dir = Path::new("/proc").join(child.id().to_string());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let (mut comm, mut cmdline) = (String::new(), Vec::new());
    while std::time::Instant::now() < deadline {
        comm = std::fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
        cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
        if comm.trim() == "sleep" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(comm.trim(), "sleep");
    let args: Vec<&[u8]> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(args, [&b"/bin/sleep"[..], b"5"], "{:?}", text(&cmdline));
}

#[test]
fn crash_report_unwinds_through_shared_libraries() {
    let dir = scratch("dynamic-crash");
    let out = run(km()
        .args(["--no-coredump", "--crash-report=stderr"])
        .arg(payload("fault.dynamic"))
        .arg("abort")
        .current_dir(&dir));
    let err = text(&out.stderr);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGABRT),
        "{err}"
    );
    let frames: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .collect();
    let at = |what: &str| {
        frames
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no frame with {what:?} in:\n{err}"))
    };
    // abort() in libc, called from the program's own frames, called from libc's
    // start-up code: each frame named from the file it is in.
    let abort = at("in abort from /");
    let level2 = at("in level2 at fault.c:19");
    let main = at("in main at fault.c:49");
    let start = at("in __libc_start_main from /");
    assert!(abort < level2 && level2 < main && main < start, "{err}");
}

/// Limits the payload lowers stay with it across execve, as on Linux: km keeps
/// RLIMIT_AS/DATA for the guest and hands them to the km that execve re-executes.
#[test]
fn lowered_memory_limits_survive_execve() {
    let dir = scratch("limits-exec");
    let out = same_in(
        &dir,
        Path::new("/bin/sh"),
        &os(&[
            "-c",
            "ulimit -v 524288; ulimit -d 262144; exec sh -c 'ulimit -v; ulimit -d'",
        ]),
    );
    assert_eq!(out, "524288\n262144\n");
}

/// bash's process substitution hands programs `/dev/fd/N`, a path through the
/// /dev/fd symlink into /proc/self/fd: km resolves it to the payload's descriptor
/// N whatever host descriptor backs it (after an exec in place, not the same
/// number), as it does /dev/stdin and /proc/self/fd/N.
#[test]
fn bash_process_substitution_and_dev_fd() {
    let dir = scratch("devfd");
    std::fs::write(dir.join("file.txt"), "some bytes\n").unwrap();
    let script = r#"diff <(seq 3) <(seq 4); paste <(seq 2) <(printf 'a\nb\n')
exec 57<file.txt; cat /dev/fd/57; echo via stdin | cat /dev/stdin
exec /bin/bash -c 'cat /dev/fd/57; exec 3<file.txt; wc -c /dev/fd/3 </dev/null; cat <(echo after exec)'"#;
    let out = same_in(&dir, Path::new("/bin/bash"), &os(&["-c", script]));
    assert_eq!(
        out,
        "3a4\n> 4\n1\ta\n2\tb\nsome bytes\nvia stdin\nsome bytes\n11 /dev/fd/3\nafter exec\n"
    );
}

/// After an exec, `ps` and /proc/PID/cmdline show the new program's whole command
/// line, also one longer than km's own (which km then re-executes itself for).
#[test]
fn a_long_command_line_after_an_exec_shows_whole() {
    // From a script file, with no environment: km's own command line (and the
    // environment after it) is short.
    let dir = scratch("longexec");
    let script = dir.join("longexec.sh");
    let zeros = vec!["0"; 300].join(" ");
    std::fs::write(&script, format!("exec /bin/sleep 30 {zeros}\n")).unwrap();
    let mut child = km()
        .env_clear()
        .arg("/bin/sh")
        .arg(&script)
        .spawn()
        .unwrap();
    let want = format!("/bin/sleep\x0030\x00{}", zeros.replace(' ', "\x00"));
    let path = format!("/proc/{}/cmdline", child.id());
    let mut shown = String::new();
    for _ in 0..100 {
        shown = String::from_utf8_lossy(&std::fs::read(&path).unwrap_or_default()).into_owned();
        if shown.starts_with("/bin/sleep") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(shown.trim_end_matches('\0'), want);
}
