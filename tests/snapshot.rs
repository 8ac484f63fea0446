//! Snapshots (docs/snapshots.md): a payload takes one through KM_SNAPSHOT (505)
//! or km_cli asks for one from outside; `km FILE` resumes it. The restored
//! payload must print what the original (and a native run) prints after the
//! snapshot point, and the call returns 1 there, 0 in the original.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    assert_lines_in_order, free_port, km_only_stdio as km, native, payload, run, scratch, text,
    wait_for,
};

/// How long a payload under test may take.
const LIMIT: Duration = Duration::from_secs(120);

/// km_cli, built once (it is another package of the workspace).
fn km_cli() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "-q", "-p", "km_cli"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo");
        assert!(status.success(), "building km_cli failed");
        Path::new(env!("CARGO_BIN_EXE_km")).with_file_name("km_cli")
    })
}

/// The lines after the "snapshot returned" line (or after "waiting").
fn after_snapshot(out: &str) -> Vec<&str> {
    out.lines()
        .skip_while(|l| !l.starts_with("snapshot returned") && *l != "waiting")
        .skip(1)
        .collect()
}

/// The payload of `tests/payloads/snapstate.c` taken into a snapshot that ends
/// it, in `dir`; the snapshot and what the payload prints natively after the
/// call.
fn state_snapshot(dir: &Path) -> (PathBuf, String) {
    ending_snapshot(dir, "snapstate.glibc")
}

/// Payload `name` (which takes a snapshot that ends it) taken into a snapshot
/// in `dir`; the snapshot and what the payload prints natively after the call.
fn ending_snapshot(dir: &Path, name: &str) -> (PathBuf, String) {
    let exe = payload(name);
    let native_out = text(&run(&mut native(&exe)).stdout);
    assert!(
        native_out.starts_with("snapshot returned -1 Function not implemented\n"),
        "{native_out}"
    );
    let out = run(km().current_dir(dir).arg(&exe));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "the payload ends inside the call");
    (dir.join("kmsnap"), after_snapshot(&native_out).join("\n"))
}

/// Restores `snap`, in `dir`, and returns its output (it must exit 0).
fn restore(snap: &Path, dir: &Path) -> Output {
    let out = run(km().current_dir(dir).arg(snap));
    assert!(
        out.status.success(),
        "restoring {}: {:?}\n{}{}",
        snap.display(),
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// What the payload prints natively after its (failed) snapshot call.
fn native_rest(dir: &Path) -> String {
    let exe = payload("snapshot.glibc");
    let out = run(native(&exe).arg(dir.join("native-file")).arg("live"));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("snapshot returned -1 Function not implemented"),
        "{stdout}"
    );
    after_snapshot(&stdout).join("\n")
}

#[test]
fn a_live_snapshot_resumes_threads_heap_file_socket_eventfd_and_handler() {
    let dir = scratch("snapshot-live");
    let (snap, out) = live_snapshot(&dir);
    let original = text(&out.stdout);
    assert!(original.starts_with("snapshot returned 0\n"), "{original}");
    let rest = after_snapshot(&original).join("\n");
    assert_eq!(rest, native_rest(&dir));
    for line in [
        "file from offset 4: 456789",
        "listener accepts: yes",
        "eventfd counter: 5",
        "handler ran for signal 10",
        "thread 3: 109",
        "through the pipe: 1",
        "done",
    ] {
        assert!(rest.contains(line), "{line:?} missing: {rest}");
    }
    let restored = text(&restore(&snap, &dir).stdout);
    assert!(restored.starts_with("snapshot returned 1\n"), "{restored}");
    assert_eq!(after_snapshot(&restored).join("\n"), rest);
}

#[test]
fn a_snapshot_that_ends_the_payload_resumes_from_the_call() {
    let dir = scratch("snapshot-end");
    let out = run(km()
        .current_dir(&dir)
        .arg(payload("snapshot.glibc"))
        .arg(dir.join("file"))
        .arg("end"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "", "the payload ends inside the call");
    // The default file is kmsnap in the working directory.
    let restored = text(&restore(&dir.join("kmsnap"), &dir).stdout);
    assert!(restored.starts_with("snapshot returned 1\n"), "{restored}");
    assert_eq!(after_snapshot(&restored).join("\n"), native_rest(&dir));
}

/// Starts `snapshot.glibc FILE MODE` (FILE in `dir`) under km writing to `snap`
/// and listening on `sock`, its output piped.
fn start_managed(dir: &Path, snap: &Path, sock: &Path, mode: &str) -> Child {
    km().arg(format!("--snapshot={}", snap.display()))
        .arg(format!("--mgtpipe={}", sock.display()))
        .arg(payload("snapshot.glibc"))
        .arg(dir.join("file"))
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning km")
}

/// Starts the payload waiting for SIGUSR2 under km with `--mgtpipe`, and waits
/// until it says so.
fn start_waiting(dir: &Path, snap: &Path, sock: &Path) -> Child {
    let mut child = start_managed(dir, snap, sock, "wait");
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"waiting\n") {
        use std::io::Read;
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "km ended early");
        seen.push(byte[0]);
    }
    child.stdout = Some(stdout);
    child
}

/// Lets the payload waiting in `dir` go on (it waits for `file.go`).
fn release(dir: &Path) {
    std::fs::write(dir.join("file.go"), "").unwrap();
}

/// The rest of `child`'s output once it ends with status 0.
fn finish(mut child: Child) -> String {
    use std::io::Read;
    let status = wait_for(&mut child, LIMIT, "km");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{status:?}: {out}");
    out
}

#[test]
fn km_cli_snapshots_a_running_payload_with_and_without_resuming_it() {
    let dir = scratch("snapshot-cli");
    let expected = native_rest(&dir);
    for resume in [true, false] {
        let (snap, sock) = (dir.join("snap"), dir.join("mgt.sock"));
        let outdir = dir.join(format!("out-{resume}"));
        std::fs::create_dir_all(&outdir).unwrap();
        let _ = std::fs::remove_file(dir.join("file.go"));
        let child = start_waiting(&dir, &snap, &sock);
        let mut cli = Command::new(km_cli());
        cli.arg("-s").arg(&sock).arg("-d").arg(&outdir);
        if resume {
            cli.arg("-r");
        }
        let out = run(&mut cli);
        let written = outdir.join("snap");
        assert!(out.status.success(), "km_cli: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), written.display().to_string());
        if resume {
            release(&dir);
            assert_eq!(finish(child).trim_end(), expected);
        } else {
            assert_eq!(finish(child), "", "the payload ends with the snapshot");
        }
        // The restored payload goes on waiting for the file, there by now.
        release(&dir);
        let restored = km().arg(&written).stdout(Stdio::piped()).spawn().unwrap();
        assert_eq!(finish(restored).trim_end(), expected);
    }
}

#[test]
fn km_cli_reports_a_refusal() {
    let dir = scratch("snapshot-cli-refused");
    let sock = dir.join("none.sock");
    let out = run(Command::new(km_cli()).arg("-s").arg(&sock));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("km_cli: connecting to"), "{err}");
}

#[test]
fn an_unsupported_descriptor_fails_the_call_and_the_payload_goes_on() {
    refused_and_goes_on("snapshot-unsupported", "unsupported", |l| {
        l.contains("fd ") && l.contains("[timerfd]") && l.ends_with("cannot be restored")
    });
}

#[test]
fn a_posix_timer_fails_the_call_and_the_payload_goes_on() {
    refused_and_goes_on("snapshot-timer", "timer", |l| {
        l.contains("POSIX timer(s) (timer_create): cannot be restored")
    });
}

/// The snapshot payload holding what km cannot restore (`what`: its argument)
/// takes a live snapshot: the call fails with ENOTSUP, the payload goes on as
/// natively, a `-V snapshot` line `says` why, and no file is left.
fn refused_and_goes_on(scratch_name: &str, what: &str, says: impl Fn(&str) -> bool) {
    let dir = scratch(scratch_name);
    let snap = dir.join("snap");
    let out = run(km()
        .arg("-Vsnapshot")
        .arg(format!("--snapshot={}", snap.display()))
        .arg(payload("snapshot.glibc"))
        .arg(dir.join("file"))
        .arg("live")
        .arg(what));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("snapshot returned -1 Operation not supported\n"),
        "{stdout}"
    );
    assert_eq!(after_snapshot(&stdout).join("\n"), native_rest(&dir));
    let trace = text(&out.stderr);
    assert!(trace.lines().any(says), "{trace}");
    assert!(!snap.exists(), "no snapshot file is left");
}

/// A snapshot of the live payload, which must succeed; the snapshot's path and
/// the original run's output.
fn live_snapshot(dir: &Path) -> (PathBuf, std::process::Output) {
    let snap = dir.join("snap");
    let out = run(km()
        .arg(format!("--snapshot={}", snap.display()))
        .arg(payload("snapshot.glibc"))
        .arg(dir.join("file"))
        .arg("live"));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    (snap, out)
}

/// Asserts that km refuses `file` with one line on stderr and status 125.
fn assert_refused(file: &Path, what: &str) {
    let out = run(km().arg(file));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("km: "), "{what}: {err}");
    assert_eq!(text(&out.stdout), "", "{what}");
}

#[test]
fn truncated_or_corrupt_snapshots_are_refused() {
    let dir = scratch("snapshot-corrupt");
    let (snap, _) = live_snapshot(&dir);
    let bytes = std::fs::read(&snap).unwrap();
    let truncated = dir.join("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&truncated, "truncated");
    let note = bytes
        .windows(13)
        .position(|w| w == b"km-snapshot-1")
        .expect("km's note");
    let mut corrupt = bytes.clone();
    // A line of km's note that is not valid.
    let image = note
        + bytes[note..]
            .windows(6)
            .position(|w| w == b"image ")
            .unwrap();
    corrupt[image + 6] = b'x';
    let corrupt_file = dir.join("corrupt");
    std::fs::write(&corrupt_file, &corrupt).unwrap();
    assert_refused(&corrupt_file, "corrupt note");
    let mut headers = bytes;
    // e_phnum far past the file.
    headers[56] = 0xff;
    headers[57] = 0xff;
    let bad_headers = dir.join("bad-headers");
    std::fs::write(&bad_headers, &headers).unwrap();
    assert_refused(&bad_headers, "bad program headers");
}

/// A Python program that takes a snapshot with kontain.snapshots.take() while
/// a second thread waits, then prints what it imported and computed.
const PYTHON_PROGRAM: &str = r#"
import sys, threading, json, decimal
sys.path.insert(0, sys.argv[1])
from kontain import snapshots
ready, go = threading.Event(), threading.Event()
def worker():
    ready.set()
    go.wait()
    print("worker", json.dumps({"sum": sum(range(10))}), flush=True)
t = threading.Thread(target=worker, name="waiter", daemon=True)
t.start()
ready.wait()
r = snapshots.take(live=True, label="py", description="a test")
print("take returned", r, decimal.Decimal("1.10") + 1, flush=True)
go.set()
t.join()
"#;

#[test]
fn a_python_program_resumes_from_its_snapshot_and_gdb_reads_it() {
    let dir = scratch("snapshot-python");
    let script = dir.join("prog.py");
    std::fs::write(&script, PYTHON_PROGRAM).unwrap();
    let python = Path::new("/usr/bin/python3");
    let out = run(km()
        .current_dir(&dir)
        .arg(python)
        .arg(&script)
        .arg(env!("CARGO_MANIFEST_DIR")));
    let original = text(&out.stdout);
    assert!(out.status.success(), "{original}{}", text(&out.stderr));
    assert_eq!(original, "take returned 0 2.10\nworker {\"sum\": 45}\n");
    let snap = dir.join("kmsnap");
    let restored = text(&restore(&snap, &dir).stdout);
    assert_eq!(restored, "take returned 1 2.10\nworker {\"sum\": 45}\n");
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "info threads"])
        .arg(python)
        .arg(&snap)
        .output()
        .expect("gdb is needed for this test (Debian package gdb)");
    let threads = text(&gdb.stdout);
    let listed = threads
        .lines()
        .filter(|l| {
            l.trim_start()
                .trim_start_matches('*')
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit())
        })
        .count();
    assert_eq!(listed, 2, "{threads}{}", text(&gdb.stderr));
}

/// Also the dispositions a query in the guest reads.
#[test]
fn gs_base_pending_signals_and_an_interval_timer_come_back() {
    let dir = scratch("snapshot-state");
    let (snap, expected) = state_snapshot(&dir);
    for line in [
        "GS base: the word, %gs:0 = 0x1234abcd5678ef00",
        "a new thread's %gs:0 = 0x1234abcd5678ef00",
        "a fork child's %gs:0 = 0x1234abcd5678ef00",
        "pending: SIGUSR1 1, SIGUSR2 1, SIGRTMIN 1, SIGALRM 0",
        "interval timer armed, under 600 s left: yes",
        "handled: SIGUSR1 1, SIGUSR2 1, SIGRTMIN 2",
        "alarm had between 1 and 600 s left: yes",
        "signal 10: 0, handler on_signal",
        "signal 14: 0, handler on_signal",
    ] {
        assert!(
            expected.contains(line),
            "{line:?} missing natively: {expected}"
        );
    }
    let restored = text(&restore(&snap, &dir).stdout);
    assert!(restored.starts_with("snapshot returned 1\n"), "{restored}");
    assert_eq!(after_snapshot(&restored).join("\n"), expected);
}

/// A restored thread keeps its place in its C library: pthread_kill reaches it
/// (glibc's and musl's cached thread id of it is its new id) and it unlocks the
/// robust error-checking mutex it held across the snapshot (the mutex's owner
/// id too), while another thread's unlock is refused; as natively.
#[test]
fn restored_threads_are_known_by_their_new_ids() {
    for name in ["snaptids.glibc", "snaptids.musl"] {
        let dir = scratch(&format!("snapshot-{name}"));
        let (snap, expected) = ending_snapshot(&dir, name);
        for line in [
            "the handler ran on the worker: yes",
            "main unlocks the worker's mutex: Operation not permitted",
            "worker unlocks it again: Operation not permitted",
            "done",
        ] {
            assert!(
                expected.contains(line),
                "{name}: {line:?} missing natively: {expected}"
            );
        }
        let restored = text(&restore(&snap, &dir).stdout);
        assert!(
            restored.starts_with("snapshot returned 1\n"),
            "{name}: {restored}"
        );
        assert_eq!(after_snapshot(&restored).join("\n"), expected, "{name}");
    }
}

/// A snapshot of a restored payload holds the pages the restore had not
/// brought in yet: a heap within the budget km copies in the background (20
/// MiB), and one past it (80 MiB), left to first touch.
#[test]
fn a_restored_payload_snapshots_all_its_memory() {
    let exe = payload("resnap.glibc");
    for mib in ["20", "80"] {
        let dir = scratch(&format!("snapshot-again-{mib}"));
        let native_out = text(&run(native(&exe).arg(mib)).stdout);
        assert_eq!(native_out, "snapshots returned -1 and -1, 0 bytes differ\n");
        let (first, second) = (dir.join("first"), dir.join("second"));
        let snapshot = |to: &Path, what: &Path| {
            let mut cmd = km();
            cmd.current_dir(&dir)
                .arg(format!("--snapshot={}", to.display()));
            let out = run(cmd.arg(what).arg(mib));
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), "", "the payload ends inside the call");
        };
        snapshot(&first, &exe);
        snapshot(&second, &first);
        let restored = text(&restore(&second, &dir).stdout);
        assert_eq!(
            restored, "snapshots returned 1 and 1, 0 bytes differ\n",
            "{mib} MiB"
        );
    }
}

/// A restored payload that changes its memory at once, while km still copies
/// the restored pages in (`tests/payloads/snapfill.c`): a fork child sees every
/// byte, memory unmapped and mapped over (anonymous, a file shared) reads as
/// the new mapping and leaves the file unmodified, mremap and the break keep
/// what they must; as natively, restored several times.
#[test]
fn memory_changed_while_the_restore_copies_it_in() {
    let dir = scratch("snapshot-fill");
    let exe = payload("snapfill.glibc");
    let native_out = text(&run(native(&exe).current_dir(&dir)).stdout);
    assert!(
        native_out.starts_with("snapshot returned -1 Function not implemented\n"),
        "{native_out}"
    );
    let expected = after_snapshot(&native_out).join("\n");
    for line in [
        "fork child: every byte right",
        "mapped over: 0 non-zero bytes",
        "file mapped over: 0 wrong bytes",
        "file modified: no",
        "moved: 0 wrong bytes, 0 non-zero after them",
        "break: 0 wrong bytes, 0 non-zero after them",
        "a: 0 wrong bytes",
    ] {
        assert!(
            expected.contains(line),
            "{line:?} missing natively: {expected}"
        );
    }
    let out = run(km().current_dir(&dir).arg(&exe));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for _ in 0..3 {
        let restored = text(&restore(&dir.join("kmsnap"), &dir).stdout);
        assert!(
            restored.starts_with("snapshot returned 1 Success\n"),
            "{restored}"
        );
        assert_eq!(after_snapshot(&restored).join("\n"), expected);
    }
}

/// The gdb session `km -g` gives a restored payload, in order (substrings of
/// whole lines).
const RESTORED_UNDER_GDB: &[&str] = &[
    // Held where the snapshot call returns.
    " in syscall ()",
    "Thread 2 \"km\" hit Breakpoint 1, thread_gs (arg=0x0) at ../tests/payloads/snapstate.c:",
    "#0  thread_gs (arg=0x0) at ../tests/payloads/snapstate.c:",
    "$1 = 0x1234abcd5678ef00",
    "exited normally",
];

#[test]
fn gdb_debugs_a_restored_payload() {
    let dir = scratch("snapshot-gdb");
    let (snap, expected) = state_snapshot(&dir);
    let port = free_port();
    let mut restored = km()
        .current_dir(&dir)
        .arg(format!("-g{port}"))
        .arg(&snap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning km");
    let mut err = std::io::BufReader::new(restored.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for gdb") {
        line.clear();
        use std::io::BufRead;
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "km ended before listening"
        );
    }
    let gdb = Command::new("timeout")
        .arg("60")
        .args(["gdb", "-batch", "-nx"])
        .args(["-ex", &format!("target remote :{port}")])
        .args(["-ex", "handle SIGUSR1 SIGUSR2 SIG34 nostop noprint pass"])
        .args(["-ex", "break thread_gs"])
        .args(["-ex", "continue"])
        .args(["-ex", "bt"])
        // The word at the GS base: 0x1234abcd5678ef00.
        .args(["-ex", "print/x *(unsigned long *)$gs_base"])
        .args(["-ex", "delete"])
        .args(["-ex", "continue"])
        .arg(payload("snapstate.glibc"))
        .output()
        .expect("gdb is needed for this test (Debian package gdb)");
    let shown = text(&gdb.stdout) + &text(&gdb.stderr);
    assert_lines_in_order(&shown, "gdb on the restored payload", RESTORED_UNDER_GDB);
    let out = finish(restored);
    assert!(out.starts_with("snapshot returned 1\n"), "{out}");
    assert_eq!(after_snapshot(&out).join("\n"), expected);
}

#[test]
fn a_second_snapshot_while_one_is_written_is_refused_with_ebusy() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = scratch("snapshot-busy");
    let (snap, sock) = (dir.join("snap"), dir.join("mgt.sock"));
    // km writes the snapshot into snap.part, here a FIFO of one page that
    // nobody reads yet: the payload's snapshot stays in progress, with no
    // timing involved, until the test reads it.
    let fifo = dir.join("snap.part");
    let made = run(Command::new("mkfifo").arg(&fifo));
    assert!(made.status.success(), "mkfifo: {}", text(&made.stderr));
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    rustix::pipe::fcntl_setpipe_size(&reader, 4096).unwrap();
    rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::empty()).unwrap();
    let payload_run = start_managed(&dir, &snap, &sock, "live");
    // The first bytes of the snapshot: it is being written (and km waits for
    // room in the FIFO). A FIFO that never had a writer polls as not ready.
    let mut ready = [rustix::event::PollFd::new(
        &reader,
        rustix::event::PollFlags::IN,
    )];
    let deadline = rustix::event::Timespec {
        tv_sec: LIMIT.as_secs() as i64,
        tv_nsec: 0,
    };
    let polled = rustix::event::poll(&mut ready, Some(&deadline)).unwrap();
    assert_eq!(polled, 1, "km did not start writing its snapshot");
    let mut first = [0u8; 1];
    reader.read_exact(&mut first).unwrap();
    let refused = run(Command::new(km_cli()).arg("-s").arg(&sock).arg("-r"));
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    let err = text(&refused.stderr);
    assert!(err.to_lowercase().contains("busy"), "{err}");
    // The rest of the first snapshot, which then fails (a FIFO cannot hold its
    // holes): the payload gets the error and goes on.
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).unwrap();
    let out = finish(payload_run);
    assert!(
        out.starts_with("snapshot returned -1 Illegal seek\n"),
        "{out}"
    );
    assert_eq!(after_snapshot(&out).join("\n"), native_rest(&dir));
}
