//! Payloads that run under km with the same output and status as natively.

mod common;

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;

use common::{assert_passes_like_native, assert_same_as_native, km, native, payload, run, text};

const LIBCS: [&str; 2] = ["musl", "glibc"];

/// Splits hello's output into its uname lines and everything else.
fn split_uname(out: &str) -> (Vec<String>, Vec<String>) {
    let uname = ["sysname:", "nodename:", "release:", "version:", "machine:"];
    out.lines()
        .map(str::to_string)
        .partition(|l| uname.iter().any(|u| l.starts_with(u)))
}

#[test]
fn hello_matches_native_except_uname() {
    let host = rustix::system::uname();
    let host_release = host.release().to_string_lossy().into_owned();
    let variants = [
        "hello.musl",
        "hello.glibc",
        "hello.pie",
        // Dynamically linked: km loads glibc's and musl's dynamic linkers.
        "hello.dynamic",
        "hello.dynmusl",
    ];
    for variant in variants {
        let exe = payload(variant);
        let args = ["one", "two words", "-V", "--help"];
        let native_out = run(native(&exe)
            .args(args)
            .env_clear()
            .env("GREETING", "hi")
            .env("EMPTY", ""));
        // Command::env passes variables sorted by name; give km the same order.
        let km_out = run(km()
            .args(["-e", "EMPTY=", "--putenv", "GREETING=hi"])
            .arg(&exe)
            .args(args));
        assert!(
            km_out.status.success(),
            "{variant}: {}",
            text(&km_out.stderr)
        );
        let (km_uname, km_rest) = split_uname(&text(&km_out.stdout));
        let (native_uname, native_rest) = split_uname(&text(&native_out.stdout));
        assert_eq!(km_rest, native_rest, "{variant}: argv/env differ");
        assert!(
            km_rest.contains(&"argv[3]: -V".to_string()),
            "options after the payload go to it"
        );
        assert_eq!(km_uname[0], "sysname: kontain-runtime");
        assert_eq!(km_uname[1], native_uname[1], "nodename is the host's");
        let release = km_uname[2].strip_prefix("release: ").unwrap();
        assert!(
            release == format!("{host_release}.kontain.PVM")
                || release == format!("{host_release}.kontain.KVM"),
            "{variant}: release {release}"
        );
        assert_eq!(km_uname[3], native_uname[3], "version is the host's");
        assert_eq!(km_uname[4], "machine: kontain_VM");
    }
}

#[test]
fn copyenv_is_the_default() {
    let out = run(km().arg(payload("hello.musl")).env("KM_TEST_MARK", "42"));
    assert!(text(&out.stdout).contains("env: KM_TEST_MARK=42"));
}

#[test]
fn file_operations_and_event_descriptors_match_native() {
    for libc in LIBCS {
        assert_passes_like_native(
            &payload(&format!("fileops.{libc}")),
            &[],
            Some(&format!("fileops-{libc}")),
            "personality 0",
        );
    }
}

#[test]
fn socket_messages_pass_descriptors_and_addresses() {
    for libc in LIBCS {
        assert_passes_like_native(
            &payload(&format!("msgs.{libc}")),
            &[],
            None,
            "sendmmsg: 2 sent 17 17",
        );
    }
}

#[test]
fn file_io_round_trip() {
    for libc in LIBCS {
        assert_passes_like_native(
            &payload(&format!("fileio.{libc}")),
            &[],
            Some(&format!("fileio-{libc}")),
            "open missing: -1 No such file or directory",
        );
    }
}

#[test]
fn mmap_sparse_and_file_backed() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("mmap.{libc}")),
            &[],
            Some(&format!("mmap-{libc}")),
            "bad fd:",
        );
        assert!(
            out.contains("sparse 1 GiB: sum 1552, untouched zero 16"),
            "{out}"
        );
        assert!(out.contains("shared write reaches the file: S"), "{out}");
        assert!(out.contains("grown in place twice: yes yes"), "{out}");
        assert!(
            out.contains("madvise DONTNEED over two mappings: 0, 16384 zero bytes, kept z z"),
            "{out}"
        );
        assert!(
            out.contains("zero old length of a private mapping: Invalid argument"),
            "{out}"
        );
    }
}

#[test]
fn brk_growth_and_malloc() {
    for libc in LIBCS {
        let out = assert_passes_like_native(
            &payload(&format!("brk.{libc}")),
            &[],
            None,
            "malloc checksum",
        );
        assert!(out.starts_with("grew by 10 MiB\n"), "{out}");
        for check in [
            "shrink lands where asked: 1",
            "now 1 MiB above start",
            "regrow: 1",
            "regrown pages nonzero: 0",
            "kept below the break: 1",
            "below the heap refused: 1",
            "back to the start: 1",
        ] {
            assert!(out.contains(&format!("{check}\n")), "{check}: {out}");
        }
    }
}

#[test]
fn bad_pointers_get_efault() {
    for libc in LIBCS {
        let exe = payload(&format!("efault.{libc}"));
        let out = assert_passes_like_native(&exe, &[], None, "still alive");
        for call in [
            "write from 0x10",
            "read pipe into unmapped",
            "stat / into 0x8",
        ] {
            assert!(
                out.contains(&format!("{call}: -1 EFAULT (Bad address)\n")),
                "{call}: {out}"
            );
        }
        assert!(
            out.contains("unknown syscall 1000: -1 ENOSYS (Function not implemented)"),
            "{out}"
        );
    }
}

#[test]
fn exit_status_propagates() {
    for libc in LIBCS {
        let exe = payload(&format!("exitcode.{libc}"));
        for code in ["0", "3", "42", "255", "256"] {
            assert_same_as_native(&exe, &[OsStr::new(code)], None);
            assert_same_as_native(&exe, &[OsStr::new("return"), OsStr::new(code)], None);
        }
    }
}

#[test]
fn faults_kill_like_linux() {
    let cases = [
        ("null", libc::SIGSEGV),
        ("div0", libc::SIGFPE),
        ("ud2", libc::SIGILL),
        ("abort", libc::SIGABRT),
        ("text", libc::SIGSEGV),
    ];
    for libc in LIBCS {
        let exe = payload(&format!("fault.{libc}"));
        for (how, signal) in cases {
            let native_out = run(native(&exe).arg(how));
            assert_eq!(native_out.status.signal(), Some(signal), "native {how}");
            let km_out = run(km().arg(&exe).arg(how));
            // km dies by the payload's signal, so a shell shows 128 + N as for native.
            assert_eq!(
                km_out.status.signal(),
                Some(signal),
                "{libc} {how}: {}",
                text(&km_out.stderr)
            );
        }
        assert_eq!(run(km().arg(&exe)).status.code(), Some(0));
    }
}

#[test]
fn unimplemented_syscall_can_kill() {
    let out = run(km().arg("--kill-unimpl-scall").arg(payload("efault.musl")));
    assert_eq!(out.status.signal(), Some(libc::SIGSYS));
}

#[test]
fn threads_match_native() {
    for libc in LIBCS {
        assert_same_as_native(&payload(&format!("threads.{libc}")), &[], None);
    }
}

#[test]
fn freed_memory_goes_back_to_the_host() {
    for libc in LIBCS {
        let out = run(km().arg(payload(&format!("rss.{libc}"))));
        let line = text(&out.stdout);
        assert!(out.status.success(), "{line} {}", text(&out.stderr));
        let kib: Vec<i64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [before, during, after] = kib[..] else {
            panic!("unexpected output {line:?}")
        };
        assert!(
            during - before > 900 << 10,
            "touching 1 GiB shows in km's RSS: {line}"
        );
        assert!(
            after - before < 64 << 10,
            "freeing it gives it back: {line}"
        );
    }
}

#[test]
fn go_goroutines_timers_and_http() {
    if !common::go_payloads_built() {
        return;
    }
    let exe = payload("gohttp");
    assert_same_as_native(&exe, &[], None);
    let out = text(&run(km().arg(&exe)).stdout);
    assert!(out.contains("http: 200 hello km"), "{out}");
}

#[test]
fn page_protections_are_enforced() {
    for libc in LIBCS {
        let exe = payload(&format!("protect.{libc}"));
        for how in ["ro", "none", "unmapped", "other"] {
            let native_out = run(native(&exe).arg(how));
            assert_eq!(
                native_out.status.signal(),
                Some(libc::SIGSEGV),
                "native {how}"
            );
            let km_out = run(km().arg(&exe).arg(how));
            assert_eq!(
                km_out.status.signal(),
                Some(libc::SIGSEGV),
                "{libc} {how}: {}",
                text(&km_out.stdout)
            );
        }
        assert_same_as_native(&exe, &[OsStr::new("rw")], None);
    }
}

#[test]
fn signal_handlers_match_native() {
    for libc in LIBCS {
        assert_same_as_native(&payload(&format!("signals.{libc}")), &[], None);
    }
}

/// Starts `waiter [mode]` under km, waits for "ready", sends `signal` to km.
/// km starts with SIGINT and SIGTERM at their default actions: a test run in the
/// background of a shell inherits SIGINT ignored, and km rightly hands an ignored
/// signal on to its payload as ignored.
fn signal_km(mode: Option<&str>, signal: i32) -> std::process::Output {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new("env")
        .arg("--default-signal=INT,TERM")
        .arg(env!("CARGO_BIN_EXE_km"))
        .arg(payload("waiter.musl"))
        .args(mode)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn km");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let sig = rustix::process::Signal::from_named_raw(signal).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn host_signals_reach_the_payload() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let out = signal_km(None, signal);
        assert_eq!(
            out.status.signal(),
            Some(signal),
            "default action ends km by {signal}"
        );
        let out = signal_km(Some("handler"), signal);
        assert_eq!(out.status.code(), Some(3));
        let name = if signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        assert_eq!(text(&out.stdout), format!("handled {name}\n"));
    }
}

/// km's vDSO: the clocks agree with the syscalls (also in a fork child, whose VM has
/// its own TSC), CLOCK_MONOTONIC never goes back, and the calls make no exit: the
/// trace shows only the test's own comparison syscalls. With --no-vdso every call
/// is a syscall.
#[test]
fn clocks_come_from_the_vdso_without_exits() {
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("clocks.{libc}"));
        for (vdso, max_calls) in [(true, 100), (false, usize::MAX)] {
            let log = common::scratch(&format!("clocks-{libc}-{vdso}")).join("trace");
            let mut cmd = km();
            cmd.arg("-Vhypercall")
                .arg(format!("--km-log-to={}", log.display()));
            if !vdso {
                cmd.arg("--no-vdso");
            }
            let out = run(cmd.arg(&exe));
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "{libc} vdso={vdso}: {stdout}{}",
                text(&out.stderr)
            );
            assert!(
                stdout.contains("parent: ok") && stdout.contains("child: ok"),
                "{stdout}"
            );
            assert!(
                stdout.contains(if vdso { "vdso: yes" } else { "vdso: no" }),
                "{stdout}"
            );
            let trace = std::fs::read_to_string(&log).unwrap();
            let calls = trace.matches("] clock_gettime(").count();
            if vdso {
                assert!(
                    calls <= max_calls,
                    "{libc}: {calls} clock_gettime exits with the vDSO"
                );
            } else {
                assert!(
                    calls >= 10_000,
                    "{libc}: only {calls} clock_gettime exits without the vDSO"
                );
            }
        }
    }
}

/// km re-anchors the vDSO's clocks from a thread it starts only at the first VM
/// exit after 500 ms: a payload that lives that long gets it, and its clocks
/// still agree with the syscalls a second later; one that ends sooner never starts
/// it (checked when the run took under 500 ms: a loaded machine may stretch it).
#[test]
fn clock_refresh_starts_only_in_a_payload_that_lives_long() {
    for long in [true, false] {
        let log = common::scratch(&format!("clock-refresh-{long}")).join("trace");
        let mut cmd = km();
        cmd.arg("-Vkvm")
            .arg(format!("--km-log-to={}", log.display()))
            .arg(payload("clocks.glibc"));
        if long {
            cmd.arg("long");
        }
        let started = std::time::Instant::now();
        let out = run(&mut cmd);
        let took = started.elapsed();
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "long={long}: {stdout}{}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("parent: ok") && stdout.contains("child: ok"),
            "{stdout}"
        );
        assert_eq!(stdout.contains("parent, refreshed: ok"), long, "{stdout}");
        let pid = stdout
            .lines()
            .find_map(|l| l.strip_prefix("pid: "))
            .expect("the payload prints its pid");
        let trace = std::fs::read_to_string(&log).unwrap();
        let refreshed = trace.contains(&format!("clock refresh thread started in process {pid}\n"));
        if long {
            assert!(refreshed, "long run, pid {pid}: {trace}");
        } else if took < std::time::Duration::from_millis(500) {
            assert!(!refreshed, "short run ({took:?}), pid {pid}: {trace}");
        } else {
            eprintln!("the short run took {took:?}: whether it refreshed is not checked");
        }
    }
}

/// Calls km once answered with ENOSYS (scheduling parameters, preadv2/pwritev2,
/// splice/tee/vmsplice, pidfds, membarrier, the old getdents) give native's
/// results and errnos.
#[test]
fn extra_calls_as_native() {
    let out = assert_same_as_native(&payload("extracalls.glibc"), &[], Some("extracalls"));
    assert!(
        text(&out.stdout).ends_with("done\n"),
        "{}",
        text(&out.stdout)
    );
}

/// What a payload is never privileged for fails with EPERM under km whatever uid
/// km runs as (natively as root these would change the host), and `-V unimpl`
/// names a call km does not serve.
#[test]
fn privileged_calls_are_refused_and_unserved_calls_named() {
    let dir = common::scratch("extracalls-privileged");
    let out = run(km()
        .arg("-Vunimpl")
        .arg(payload("extracalls.glibc"))
        .arg(&dir)
        .arg("privileged"));
    let shown = text(&out.stdout);
    for call in [
        "clock_settime",
        "sethostname",
        "setdomainname",
        "chroot /",
        "pidfd_getfd",
    ] {
        assert!(
            shown.contains(&format!("{call}: EPERM\n")),
            "{call}: {shown}"
        );
    }
    assert!(shown.contains("io_uring_setup: ENOSYS\n"), "{shown}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unimplemented syscall 425 (io_uring_setup)"),
        "{stderr}"
    );
}

/// MAP_SHARED|MAP_ANONYMOUS memory is shared with fork children, as on Linux.
#[test]
fn shared_anonymous_memory_is_shared_with_children() {
    for libc in LIBCS {
        let out = assert_same_as_native(&payload(&format!("shared.{libc}")), &[], None);
        assert!(
            text(&out.stdout).contains("shared page 0: 42, page 1: 7; private: 1"),
            "{}",
            text(&out.stdout)
        );
    }
}

/// System V shared memory: attached twice, shared with a fork child, IPC_STAT's
/// counts, shmdt, IPC_SET, IPC_RMID and the errors, as natively.
#[test]
fn sysv_shared_memory_as_native() {
    let out = assert_same_as_native(&payload("sysvshm.glibc"), &[], None);
    assert!(
        text(&out.stdout).contains("parent sees: from the child"),
        "{}",
        text(&out.stdout)
    );
}

/// System V semaphores and message queues, and openat2: every call's result as
/// natively, including SEM_UNDO undone when a process exits or is killed (not by
/// its fork child's exit), blocking semop/msgrcv/msgsnd interrupted by signals
/// (EINTR, the handler ran) while other threads run, EIDRM for a waiter,
/// MSG_NOERROR and E2BIG, RESOLVE_* flags and struct open_how's checks, EFAULT for
/// garbage pointers.
#[test]
fn sysv_semaphores_queues_and_openat2_as_native() {
    for libc in LIBCS {
        let name = format!("sysvipc.{libc}");
        let out = assert_passes_like_native(&payload(&name), &[], Some(&name), "done");
        for line in [
            "values 1 2 3",
            "semop SEMOPM+1: E2BIG",
            "after its fork child exited: 14",
            "after the child exited: 11",
            "after the child was killed: 11",
            "main thread runs while the thread waits",
            "semop under signals (SA_RESTART): EINTR, handler ran",
            "semtimedop under signals: EINTR, handler ran",
            "waiter after IPC_RMID: EIDRM",
            "MSG_NOERROR: type 5, 5 bytes: hello",
            "too small: E2BIG",
            "empty, IPC_NOWAIT: ENOMSG",
            "msgrcv under signals: EINTR, handler ran",
            "msgsnd under signals: EINTR, handler ran",
            "receive into a bad pointer: EFAULT",
            "beneath escaping by a link: EXDEV",
            "no symlinks: ELOOP",
            "in root absolute link: reads 7: inside",
            "fd link, plain: reads 7: inside",
            "fd entry beneath /proc/self/fd: EXDEV",
            "size 23: EINVAL",
            "size 32, non-zero tail: E2BIG",
            "how bad pointer: EFAULT",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{libc}: no {line:?} in {out}"
            );
        }
    }
}

/// A signal sent to a thread at a random moment of a blocking call (semop,
/// msgrcv, a long clock_nanosleep, a pipe read; 500 rounds each), from before the
/// call to well inside it: a handler that interrupted the call ends it with EINTR,
/// and a signal that runs its handler before the call is sent again, as the call
/// is then made and blocks, natively too. A signal that runs no handler within 1 s
/// is a hang (the payload then wakes the call otherwise and reports it): a kick
/// that came after km's look for signals and before its host call began used to
/// leave the call waiting (up to 12 of 2000 rounds, in 8 runs of 9) until km sent
/// kicks again until the thread has looked (`kvm::kick`). A blocked signal must
/// not interrupt the call, and runs its handler once unblocked. The payload, which
/// made no timer, reaches none of km's re-kick timers through the timer calls.
#[test]
fn a_signal_ends_a_blocking_call_whenever_it_comes() {
    for libc in LIBCS {
        let exe = payload(&format!("kickrace.{libc}"));
        let args = ["500", "1000"];
        let native_out = run(native(&exe).args(args));
        let dir = common::scratch(&format!("kickrace.{libc}"));
        let (out, err) = (dir.join("stdout"), dir.join("stderr"));
        let mut child = km()
            .arg(&exe)
            .args(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn km");
        let status = common::wait_for(
            &mut child,
            std::time::Duration::from_secs(300),
            &format!("kickrace.{libc} under km"),
        );
        let stdout = std::fs::read_to_string(&out).unwrap();
        let stderr = std::fs::read_to_string(&err).unwrap();
        assert_eq!(
            stdout,
            text(&native_out.stdout),
            "{libc}: output differs from native; km's stderr: {stderr}"
        );
        assert_eq!(status.code(), Some(0), "{libc}: {stdout}{stderr}");
        assert_eq!(native_out.status.code(), Some(0), "{libc} native");
    }
}

/// A thread waiting for a signal in sigsuspend, sigwaitinfo, sigtimedwait or a
/// signalfd read wakes when the signal comes, at any moment of the wait: each
/// wait ends by its signal and none takes longer than 200 ms (km's waits used to
/// look for signals every 10 ms; they now sleep until a kick, and a look that
/// missed a kick would find the signal only after the next 1 s slice).
#[test]
fn a_signal_wait_wakes_when_the_signal_comes() {
    for libc in LIBCS {
        let exe = payload(&format!("sigwake.{libc}"));
        assert_passes_like_native(&exe, &["300".as_ref(), "200".as_ref()], None, "done");
    }
}

/// getpid, gettid and the ids, which the landing pad answers in the guest: right
/// on threads, in a fork child before and after set*id calls, in a vfork child and
/// in its parent after it, and in a getpid loop only a timer signal ends.
#[test]
fn in_guest_answers_match_native() {
    for libc in LIBCS {
        let out =
            assert_passes_like_native(&payload(&format!("idcalls.{libc}")), &[], None, "done");
        assert!(!out.contains("WRONG"), "{libc}: {out}");
    }
}

/// rt_sigprocmask, answered by the landing pad in the guest, against Linux: old
/// sets, bad pointers and arguments, pending signals delivered before the
/// unblocking call returns, handlers, sigsuspend, new threads and fork children.
#[test]
fn signal_masks_in_the_guest_match_native() {
    for libc in LIBCS {
        let out =
            assert_passes_like_native(&payload(&format!("sigmask.{libc}")), &[], None, "done");
        assert!(!out.contains("WRONG"), "{libc}: {out}");
    }
}

/// rt_sigaction queries, answered by the landing pad in the guest from the
/// process's disposition table, against Linux: every signal's disposition after
/// changes, SA_RESETHAND, bad pointers and arguments, a query racing another
/// thread's changes, fork and vfork children, execve.
#[test]
fn signal_dispositions_in_the_guest_match_native() {
    for libc in LIBCS {
        let out =
            assert_passes_like_native(&payload(&format!("sigactions.{libc}")), &[], None, "done");
        assert!(out.contains("race: mixed 0, both seen 1"), "{libc}: {out}");
    }
}

/// Runs `exe` with `args` under `-V hypercall` and under `--stats`: each must see
/// `expected` calls of `syscall`.
fn assert_traced_and_counted(exe: &str, args: &[&str], syscall: &str, expected: usize) {
    let exe = payload(exe);
    let out = run(km().arg("-Vhypercall").arg(&exe).args(args));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let traced = text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with(&format!("km [hypercall] {syscall}(")))
        .count();
    assert_eq!(traced, expected, "{}", text(&out.stderr));
    let out = run(km().arg("--stats").arg(&exe).args(args));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats = text(&out.stderr);
    let counted = stats
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{syscall} ")))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<usize>().ok());
    assert_eq!(counted, Some(expected), "{stats}");
}

/// With `-V hypercall` and `--stats` the pad answers no rt_sigprocmask in the
/// guest: each one is traced and counted.
#[test]
fn signal_masks_are_seen_when_tracing_or_counting() {
    assert_traced_and_counted("sigmask.musl", &["loop", "40"], "rt_sigprocmask", 40);
}

/// With `-V hypercall` and `--stats` the pad answers no rt_sigaction query in
/// the guest: each one is traced and counted (and musl's start-up makes none).
#[test]
fn signal_dispositions_are_seen_when_tracing_or_counting() {
    assert_traced_and_counted("sigactions.musl", &["loop", "30"], "rt_sigaction", 30);
}

/// With `-V hypercall` (and `--stats`) every syscall exits, so each getpid the
/// payload makes is traced (and counted): musl's getpid() for the loop's
/// reference value, then the loop's 50.
#[test]
fn in_guest_answers_are_seen_when_tracing_or_counting() {
    assert_traced_and_counted("idcalls.musl", &["loop", "50"], "getpid", 51);
}

/// Reaping fork children, which km answers from the child's exit report before
/// its host process has ended (`kernel::children`): one SIGCHLD per child with its
/// siginfo, a reaped child gone for wait/kill/pidfd_open, WNOHANG, WNOWAIT, process
/// groups, stops and continues, killed, exec'd and vfork children, SIGCHLD ignored
/// and SA_NOCLDWAIT, threads waiting at once, rusage, the child's descriptors
/// closed when the wait returns; fork, vfork and posix_spawn children that exec
/// (once, twice, a program that forks and waits its own children, one killed),
/// whose exec'd km reports their exit too.
#[test]
fn reaping_children_matches_native() {
    for libc in LIBCS {
        assert_passes_like_native(
            &payload(&format!("reaping.{libc}")),
            &[],
            None,
            "reaping done",
        );
    }
}

/// Job-control stops (`jobstop.c`): SIGSTOP raised by a child, seen by
/// waitpid(WUNTRACED), waitid(WSTOPPED|WNOWAIT) and SIGCHLD (CLD_STOPPED, none
/// under SA_NOCLDSTOP); SIGCONT continues it (WIFCONTINUED, CLD_CONTINUED, its
/// handler); SIGTSTP's handler; SIGTSTP discarded in an orphaned group; every
/// thread of a stopped child stopped; a read a stop interrupted goes on.
#[test]
fn job_control_stops_match_native() {
    for libc in LIBCS {
        assert_passes_like_native(
            &payload(&format!("jobstop.{libc}")),
            &[],
            None,
            "jobstop done",
        );
    }
}

/// Forks while other threads are inside km's calls (`forkbusy.c`: waitid,
/// open/close and poll on a signalfd in a loop): a lock such a thread held at
/// the fork (the children table, the descriptor table, signalfd's list) would
/// stay locked in the child km, whose first use of it never returned; every
/// child must start, read the signalfd, exit and be waited for.
#[test]
fn forks_while_other_threads_call_km() {
    for libc in LIBCS {
        assert_passes_like_native(
            &payload(&format!("forkbusy.{libc}")),
            &["300".as_ref()],
            None,
            "300 forks done",
        );
    }
}

/// execve with a null argv: the new program gets an empty argv[0], as Linux
/// gives since 5.18, whether km loads it in place or re-executes itself.
#[test]
fn exec_with_no_arguments_gets_an_empty_argv0() {
    for exe in ["argvzero.musl", "argvzero.glibc"] {
        let exe = payload(exe);
        let native_out = run(&mut native(&exe));
        assert_eq!(text(&native_out.stdout), "argc 1 argv[0] \"\"\n");
        for how in [None, Some("--exec-reexec")] {
            let km_out = run(km().args(how).arg(&exe));
            common::assert_runs_alike(&exe, &native_out, &km_out);
        }
    }
}
