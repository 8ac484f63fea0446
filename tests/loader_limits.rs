//! What km refuses to load, and how fast: a dynamic linker (PT_INTERP) or `#!`
//! interpreter that is not a regular file or is too large, and `#!` chains deeper
//! than Linux allows, from km's command line (rc 125, one line) and through a
//! payload's execve (the errno Linux gives, compared with native). And km's gdb stub
//! against its own payload: a payload connecting to its own stub is refused, and
//! SIGTERM/SIGINT end km whether the payload runs or is held for gdb.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{free_port, km, native, payload, scratch, text, wait_for, write_executable};

/// How long a refusal may take: it must not read a device or wait on a FIFO.
const PROMPT: Duration = Duration::from_secs(10);

/// A sparse file larger than km's 64 MiB cap for a dynamic linker.
const HUGE: u64 = 1 << 30;

/// The file range of `elf`'s PT_INTERP segment (the dynamic linker's name).
fn interp_range(elf: &[u8]) -> std::ops::Range<usize> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().unwrap()) == 3)
        .map(|ph| u64_at(ph + 8)..u64_at(ph + 8) + u64_at(ph + 32))
        .expect("a dynamic payload has PT_INTERP")
}

/// Writes `dir/name`: the dynamic hello payload with its PT_INTERP pointing at
/// `interp` (relative names are resolved from the working directory, as on Linux).
fn with_interp(dir: &Path, name: &str, interp: &str) -> PathBuf {
    let mut elf = std::fs::read(payload("hello.dynamic")).unwrap();
    let range = interp_range(&elf);
    assert!(
        interp.len() < range.len(),
        "{interp} does not fit PT_INTERP"
    );
    elf[range.clone()].fill(0);
    elf[range.start..range.start + interp.len()].copy_from_slice(interp.as_bytes());
    let path = dir.join(name);
    write_executable(&path, &elf, 0);
    path
}

/// In `dir`: a FIFO, a directory and a huge (sparse, executable) file; returns
/// payloads whose PT_INTERP names each of them, and /dev/zero.
fn bad_linkers(dir: &Path) -> Vec<PathBuf> {
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::fs::create_dir(dir.join("dir")).unwrap();
    let huge = dir.join("huge");
    write_executable(&huge, b"", HUGE);
    [
        ("on-zero", "/dev/zero"),
        ("on-fifo", "./fifo"),
        ("on-dir", "./dir"),
        ("on-huge", "./huge"),
    ]
    .iter()
    .map(|(name, interp)| with_interp(dir, name, interp))
    .collect()
}

/// In `dir`: scripts s1..s7, s1 running the exitcode payload (exit 7) and each
/// next one running the one before: s`k` is `k` levels of `#!`.
fn script_chain(dir: &Path) -> Vec<PathBuf> {
    let mut interp = format!("{} 7", payload("exitcode.glibc").display());
    (1..=7)
        .map(|k| {
            let path = dir.join(format!("s{k}"));
            write_executable(&path, format!("#!{interp}\n").as_bytes(), 0);
            interp = path.display().to_string();
            path
        })
        .collect()
}

/// Runs km on `exe` in `dir`, bounded by [`PROMPT`]; returns its status and stderr.
fn km_in(dir: &Path, exe: &Path) -> (ExitStatus, String) {
    let mut child = km()
        .current_dir(dir)
        .arg(exe)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_for(&mut child, PROMPT, &format!("km {}", exe.display()));
    (status, reader.join().unwrap())
}

/// PT_INTERP naming /dev/zero, a FIFO, a directory or a 1 GiB file: Linux refuses
/// to exec each; km refuses promptly with rc 125 and one line.
#[test]
fn bad_dynamic_linkers_are_refused_promptly() {
    let dir = scratch("loader-limits-linkers");
    for exe in bad_linkers(&dir) {
        let native = native(&exe).current_dir(&dir).status();
        assert!(native.is_err(), "{} runs natively", exe.display());
        let (status, stderr) = km_in(&dir, &exe);
        assert_eq!(status.code(), Some(125), "{}: {stderr}", exe.display());
        assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
        assert!(
            stderr.starts_with("km: ") && stderr.contains("dynamic linker"),
            "{stderr}"
        );
    }
}

/// The same linkers, interpreters that are no regular file and `#!` chains of 1 to 7
/// levels, through the payload's execve: each gives the errno Linux gives (or runs,
/// as natively), and the payload goes on.
#[test]
fn execve_of_bad_interpreters_gives_linux_errno() {
    let dir = scratch("loader-limits-execve");
    let mut targets = bad_linkers(&dir);
    targets.extend(script_chain(&dir));
    for script in ["fifo", "dir"] {
        let path = dir.join(format!("via-{script}"));
        write_executable(&path, format!("#!./{script}\n").as_bytes(), 0);
        targets.push(path);
    }
    targets.extend(["/dev/zero", "./fifo", "./dir", "./missing"].map(PathBuf::from));
    let exe = payload("execfail.glibc");
    let native_out = native(&exe)
        .current_dir(&dir)
        .args(&targets)
        .output()
        .unwrap();
    let mut child = km()
        .current_dir(&dir)
        .arg(&exe)
        .args(&targets)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let status = wait_for(&mut child, PROMPT, "km execfail");
    let shown = reader.join().unwrap();
    assert!(status.success(), "km execfail: {status}");
    let expected = text(&native_out.stdout);
    assert_eq!(shown, expected, "execve outcomes differ from native");
    // The chain limit lies within 1..=7 levels: some ran, the deepest did not.
    assert!(expected.contains("s1: ran, status 0x700"), "{expected}");
    assert!(expected.contains("s7: ELOOP"), "{expected}");
}

/// km's own command line on `#!` chains: runs what Linux runs and refuses with rc
/// 125 (too many levels) what Linux refuses with ELOOP.
#[test]
fn shebang_chain_depth_as_linux() {
    let dir = scratch("loader-limits-chain");
    for script in script_chain(&dir) {
        let (status, stderr) = km_in(&dir, &script);
        match native(&script).status() {
            Ok(native) => assert_eq!(status.code(), native.code(), "{}", script.display()),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{}", script.display());
                assert_eq!(status.code(), Some(125), "{stderr}");
                assert!(stderr.contains("too many levels"), "{stderr}");
            }
        }
    }
}

/// A `#!` line is read as far as Linux reads it (256 bytes): a 1 GiB script whose
/// line ends in NULs runs its interpreter with the argument Linux gives.
#[test]
fn shebang_line_read_is_capped() {
    let dir = scratch("loader-limits-shebang");
    let script = dir.join("big");
    let line = format!("#!{} 5 ", payload("exitcode.glibc").display());
    write_executable(&script, line.as_bytes(), HUGE);
    let native = native(&script).status().unwrap();
    assert_eq!(native.code(), Some(5));
    let (status, stderr) = km_in(&dir, &script);
    assert_eq!(status.code(), native.code(), "{stderr}");
}

/// Sends `sig` to `child`.
fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

/// Lines of `reader`, as they come, on a channel.
fn lines(reader: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `want`; returns the lines up to it.
fn expect_line(rx: &mpsc::Receiver<String>, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(PROMPT) {
            Ok(line) => {
                let done = line.contains(want);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {want:?}; saw {seen:?}"),
        }
    }
}

/// Starts km with `args` on `exe`, output piped; returns it with its stdout and
/// stderr lines.
fn start(
    args: &[String],
    exe: &Path,
    payload_args: &[String],
) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = km()
        .args(args)
        .arg(exe)
        .args(payload_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    (child, out, err)
}

fn assert_killed_by(status: ExitStatus, sig: rustix::process::Signal, who: &str) {
    assert_eq!(status.signal(), Some(sig.as_raw()), "{who}: {status}");
}

/// A payload that connects to its own `--gdb-listen` stub (saying nothing, garbage
/// or a valid packet) is refused at once and runs on; SIGTERM or SIGINT then ends it
/// by that signal (it has no handler), as on Linux.
#[test]
fn self_connecting_payload_is_refused_and_ends_on_signal() {
    use rustix::process::Signal;
    let exe = payload("selfgdb.glibc");
    for (mode, sig) in [
        ("nothing", Signal::TERM),
        ("garbage", Signal::INT),
        ("packet", Signal::TERM),
    ] {
        let port = free_port();
        let (mut child, out, err) = start(
            &["--gdb-listen".into(), format!("-g{port}")],
            &exe,
            &[port.to_string(), mode.into()],
        );
        expect_line(&out, "connected");
        expect_line(&out, "closed by the stub");
        expect_line(&err, "refused a connection from the payload itself");
        signal(&child, sig);
        assert_killed_by(wait_for(&mut child, PROMPT, mode), sig, mode);
    }
}

/// `km -g` waiting for gdb ends on SIGTERM or SIGINT (the payload never ran, so by
/// the signal's default action).
#[test]
fn km_waiting_for_gdb_ends_on_signal() {
    use rustix::process::Signal;
    let exe = payload("waiter.glibc");
    for sig in [Signal::TERM, Signal::INT] {
        let (mut child, _out, err) = start(&[format!("-g{}", free_port())], &exe, &[]);
        expect_line(&err, "waiting for gdb");
        signal(&child, sig);
        assert_killed_by(wait_for(&mut child, PROMPT, "km -g"), sig, "km -g");
    }
}

/// A client that stopped the payload and then says nothing more holds it; SIGTERM
/// still ends km, by SIGTERM.
#[test]
fn payload_stopped_under_gdb_ends_on_sigterm() {
    use rustix::process::Signal;
    let exe = payload("waiter.glibc");
    let port = free_port();
    let (mut child, _out, err) = start(&[format!("-g{port}")], &exe, &[]);
    expect_line(&err, "waiting for gdb");
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"+$?#3f").unwrap();
    client.set_read_timeout(Some(PROMPT)).unwrap();
    let reply = common::read_reply(&mut client);
    assert!(reply.contains("$T05"), "{reply:?}");
    signal(&child, Signal::TERM);
    assert_killed_by(
        wait_for(&mut child, PROMPT, "km stopped"),
        Signal::TERM,
        "km stopped",
    );
}

/// A `--gdb-listen` client that connects and stays silent does not stop the
/// payload: its SIGTERM handler still answers.
#[test]
fn silent_client_does_not_hold_the_payload() {
    use rustix::process::Signal;
    let exe = payload("waiter.glibc");
    let port = free_port();
    let (mut child, out, _err) = start(
        &["--gdb-listen".into(), format!("-g{port}")],
        &exe,
        &["handler".into()],
    );
    expect_line(&out, "ready");
    let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, Signal::TERM);
    expect_line(&out, "handled SIGTERM");
    assert_eq!(
        wait_for(&mut child, PROMPT, "km").code(),
        Some(3),
        "the payload's handler exits 3"
    );
}
