//! Signal behaviour real programs rely on (issue 13), each compared with the same
//! run natively: the temporary masks of pselect6/ppoll/epoll_pwait and GNU make's
//! `-j2`, which waits for its children exactly that way; queued real-time signals
//! and sigqueue; a signal to the own process taken by its sender; a child killed
//! right after fork; signals kept across execve; signalfd; a signal sent from
//! outside to a payload waiting for it, many times over at varying moments (none
//! may be lost).

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

/// km delivers every signal a thread sends its own process to that thread before
/// kill returns, as Linux prefers to. Linux only prefers it: on a loaded machine a
/// spinning thread natively takes one of the 200 in about 1 run of 15, or the caller
/// returns from kill first (the payload's stderr names the round). So the native
/// run must show the preference, and km must deliver every round that way.
#[test]
fn a_signal_to_the_own_process_runs_on_the_sender_before_kill_returns() {
    let all = "selfkill: 200 of 200 handled before kill returned, 200 on the caller\ndone\n";
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("sigcompat.{libc}"));
        let (native_out, native_code, native_err) =
            run_guarded(native(&exe).arg("selfkill"), "native");
        let on_caller = native_out
            .split_whitespace()
            .rev()
            .nth(4)
            .and_then(|n| n.parse::<u32>().ok());
        assert!(
            native_code == Some(0) && on_caller.is_some_and(|n| n >= 150),
            "{libc} natively: {native_out}{native_err}"
        );
        let (km_out, km_code, km_err) = run_guarded(km().arg(&exe).arg("selfkill"), "km");
        assert_eq!(km_out, all, "{libc} under km; km stderr: {km_err}");
        assert_eq!(km_code, Some(0), "{libc} under km");
    }
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

/// How a run of the hostsig payload ended.
#[derive(Debug, PartialEq)]
enum Ending {
    /// Its handler ran for this signal (exit status 3, "handled N").
    Handled(i32),
    /// This signal killed it (sent before the handler was installed).
    Killed(i32),
}

/// Longest a signalled payload may take to end before its signal counts as lost
/// (km under load): a guard against hanging, not a speed check.
const LOST_LIMIT: Duration = Duration::from_secs(120);

/// Starts `cmd` (the hostsig payload), waits for its "ready" line when
/// `after_ready`, sleeps `delay` and sends `sig`; fails the test if the payload
/// does not end (the signal was lost).
fn signal_once(cmd: &mut Command, sig: i32, after_ready: bool, delay: Duration) -> Ending {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::ExitStatusExt;
    // stdin stays an open, empty pipe until the end (the "read" mode waits on it).
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawning");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    if after_ready {
        stdout.read_line(&mut seen).unwrap();
        assert_eq!(seen, "ready\n");
    }
    std::thread::sleep(delay);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let signal = rustix::process::Signal::from_named_raw(sig).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let what = format!("signal {sig} after {delay:?} (after ready: {after_ready})");
    let status = wait_for(&mut child, LOST_LIMIT, &what);
    stdout.read_to_string(&mut seen).unwrap();
    match (status.code(), status.signal()) {
        (Some(3), _) => {
            assert!(
                seen.ends_with(&format!("handled {sig}\n")),
                "{what}: {seen}"
            );
            Ending::Handled(sig)
        }
        (_, Some(killer)) if killer == sig => Ending::Killed(sig),
        _ => panic!("{what}: {status:?}, output {seen:?}"),
    }
}

/// The hostsig payload in each mode, signalled from outside 60 times natively and
/// 60 times under km at the same moments (a fixed pseudo-random series): at once
/// or up to 30 ms after start, before the payload may have its handler, and up to
/// 0.5 ms after it says it waits. Every run must end: by its handler, or by the
/// signal's default action when it came before the handler (then natively too).
/// A signal that came while the thread was between its write of "ready" and its
/// read was lost in 1 to 6% of such runs (its kick spent in the landing pad, the
/// read then served as if none were pending); this test failed in 2 of 3 runs
/// before the fix.
#[test]
fn signals_from_outside_are_never_lost() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for (i, mode) in ["pause", "sigsuspend", "threads", "read"]
        .into_iter()
        .enumerate()
    {
        let exe = payload(&format!(
            "hostsig.{}",
            if i % 2 == 0 { "musl" } else { "glibc" }
        ));
        let (mut native_early, mut km_early) = (Vec::new(), Vec::new());
        for n in 0..60 {
            let sig = if n % 2 == 0 {
                libc::SIGTERM
            } else {
                libc::SIGUSR2
            };
            let after_ready = n % 4 >= 2;
            let delay = Duration::from_micros(if after_ready { next(500) } else { next(30_000) });
            let native_end = signal_once(native(&exe).arg(mode), sig, after_ready, delay);
            let km_end = signal_once(km().arg(&exe).arg(mode), sig, after_ready, delay);
            if after_ready {
                assert_eq!(native_end, Ending::Handled(sig), "{mode} natively");
                assert_eq!(km_end, Ending::Handled(sig), "{mode} under km, run {n}");
            } else {
                native_early.push(native_end);
                km_early.push(km_end);
            }
        }
        // Early signals end both ways natively: the handler, or the default action.
        assert!(
            native_early.iter().any(|e| matches!(e, Ending::Handled(_))),
            "{mode}: natively no early signal met the handler: {native_early:?}"
        );
        assert!(!km_early.is_empty());
    }
}

/// The state letter of process `pid` in /proc/PID/stat ('T': stopped).
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    after.trim_start().chars().next().unwrap_or('?')
}

/// Waits up to 60 s for process `pid` to be stopped (`stopped`) or not.
fn await_stopped(pid: u32, stopped: bool, what: &str) {
    for _ in 0..6000 {
        if (proc_state(pid) == 'T') == stopped {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "{what}: state {} (stopped expected: {stopped})",
        proc_state(pid)
    );
}

/// A payload stopped from outside, as `kill -STOP` and a terminal's Ctrl-Z
/// (SIGTSTP) do, is seen stopped in /proc/PID/stat and stays so; `kill -CONT`
/// resumes it and runs its SIGCONT handler, natively and under km. The payload
/// runs in a process group of its own, whose parent (the test) is in another
/// group of the session, so that the group is not orphaned and SIGTSTP stops it.
#[test]
fn stops_and_continues_from_outside() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::CommandExt;
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("jobstop.{libc}"));
        for (who, mut cmd) in [("native", native(&exe)), ("km", km())] {
            if who == "km" {
                cmd.arg(&exe);
            }
            let mut child = cmd
                .arg("outside")
                .process_group(0)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawning");
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut seen = String::new();
            stdout.read_line(&mut seen).unwrap();
            assert_eq!(seen, "ready\n", "{who} {libc}");
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            for stop in [libc::SIGSTOP, libc::SIGTSTP] {
                let what = format!("{who} {libc}: signal {stop}");
                let signal = rustix::process::Signal::from_named_raw(stop).unwrap();
                rustix::process::kill_process(pid, signal).unwrap();
                await_stopped(child.id(), true, &what);
                std::thread::sleep(Duration::from_millis(100));
                assert_eq!(proc_state(child.id()), 'T', "{what}: stays stopped");
                rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
                await_stopped(child.id(), false, &what);
                // The handler has run before the next stop (a stop signal sent
                // earlier would discard the SIGCONT still pending).
                stdout.read_line(&mut seen).unwrap();
            }
            let status = wait_for(&mut child, HANG_LIMIT, who);
            stdout.read_to_string(&mut seen).unwrap();
            assert!(status.success(), "{who} {libc}: {status:?}");
            assert_eq!(seen, "ready\ncontinued 1\ncontinued 2\n", "{who} {libc}");
        }
    }
}
