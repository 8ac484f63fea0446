//! gdb sessions against `km -g`, checked line by line, and the same session against
//! Debian's gdbserver running the payload natively, so that the checks test what gdb
//! shows and not km's quirks.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::Duration;

use common::{assert_lines_in_order, free_port, km, payload, text, wait_for};

/// The lines a session must show, in order (substrings of whole lines).
const EXPECTED: &[&str] = &[
    "Breakpoint 1, compute (n=3) at gdbdemo.c:17",
    "#0  compute (n=3) at gdbdemo.c:17",
    "in main () at gdbdemo.c:38",
    "* 1    Thread ",
    "  2    Thread ",
    "  3    Thread ",
    "18\t    int total = add(base, 1);",
    "add (a=6, b=1) at gdbdemo.c:12",
    "$1 = 6",
    "Value returned is $2 = 7",
    "<compute+",
    "rip            0x",
    "fs_base        0x",
    "atchpoint 2: counter",
    "Old value = 0",
    "New value = 1",
    "exited normally",
];

/// Waits until the server prints the line that says it listens.
fn wait_listening(server: &mut Child, marker: &str) {
    let mut err = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 {
        if line.contains(marker) {
            // Keep draining stderr so the server never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return;
        }
        line.clear();
    }
    panic!("the server ended before listening");
}

/// Longest a session may take before it counts as hung.
const SESSION_LIMIT: Duration = Duration::from_secs(60);

/// Runs gdb-tests/`script` against the server on `port`, gdb reading symbols from
/// `exe` or, without it, fetching the executable from the server; `None` if it hung.
fn session(exe: Option<&Path>, port: u16, script: &str) -> Option<String> {
    let gdb = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            &format!("target remote :{port}"),
            "-x",
        ])
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("gdb-tests")
                .join(script),
        )
        .args(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdb is needed for these tests (Debian package gdb)");
    // gdb's output is read while it runs (a long session fills a pipe); a watchdog
    // kills a session that outlives the limit, while gdb is still unreaped.
    let pid = rustix::process::Pid::from_raw(gdb.id() as i32).expect("gdb's pid");
    let (finished, watch) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let hung = matches!(
            watch.recv_timeout(SESSION_LIMIT),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if hung {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        hung
    });
    let out = gdb.wait_with_output().unwrap();
    drop(finished);
    if watchdog.join().unwrap() {
        return None;
    }
    Some(text(&out.stdout) + &text(&out.stderr))
}

/// Starts `server` (already told its port), waits until it listens (it prints
/// `marker`), runs gdb-tests/`script` against it (see [`session`]) and waits for it
/// to end. Returns what gdb showed and how the server ended; a hung session fails
/// the test.
fn served(
    mut server: Command,
    marker: &str,
    exe: Option<&Path>,
    port: u16,
    script: &str,
    who: &str,
) -> (String, ExitStatus) {
    let mut child = server
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{who}: cannot start the server ({e}); gdbserver comes with Debian's gdbserver")
        });
    wait_listening(&mut child, marker);
    let shown = session(exe, port, script);
    if shown.is_none() {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    (
        shown.unwrap_or_else(|| panic!("{who}: the gdb session hung")),
        status,
    )
}

/// Which server a session runs against.
#[derive(Clone, Copy)]
enum Server {
    /// `km -gPORT`.
    Km,
    /// Debian's gdbserver running the payload natively.
    Gdbserver,
}

/// Runs gdb `script` against `server` running `args` in `dir` (gdb loads `exe` when
/// given); returns what gdb showed and how the server ended.
fn under(
    server: Server,
    dir: &Path,
    args: &[&OsStr],
    exe: Option<&Path>,
    script: &str,
    who: &str,
) -> (String, ExitStatus) {
    let port = free_port();
    let (command, marker) = match server {
        Server::Km => (km_gdb(port, dir, args), "waiting for gdb"),
        Server::Gdbserver => (gdbserver(port, dir, args), "Listening on port"),
    };
    served(command, marker, exe, port, script, who)
}

fn km_gdb(port: u16, dir: &Path, args: &[&OsStr]) -> Command {
    let mut cmd = km();
    cmd.current_dir(dir).arg(format!("-g{port}")).args(args);
    cmd
}

fn gdbserver(port: u16, dir: &Path, args: &[&OsStr]) -> Command {
    let mut cmd = Command::new("gdbserver");
    cmd.current_dir(dir).arg(format!(":{port}")).args(args);
    cmd
}

#[test]
fn gdb_session_under_km_and_gdbserver() {
    let dir = common::scratch("gdb-session");
    // Static glibc and musl, and glibc dynamically linked (gdb finds the libraries
    // through the auxiliary vector and the dynamic linker's link map).
    for libc in ["glibc", "musl", "dynamic"] {
        let exe = payload(&format!("gdbdemo.{libc}"));
        let args = [exe.as_os_str()];

        let who = format!("km {libc}");
        let (shown, status) = under(Server::Km, &dir, &args, Some(&exe), "session.gdb", &who);
        assert_lines_in_order(&shown, &who, EXPECTED);
        assert!(status.success(), "{who}: {status}");

        let who = format!("gdbserver {libc}");
        let (shown, _) = under(
            Server::Gdbserver,
            &dir,
            &args,
            Some(&exe),
            "session.gdb",
            &who,
        );
        assert_lines_in_order(&shown, &who, EXPECTED);
    }
}

/// What a gdb without the executable must show against either server: the file
/// read through host I/O, its symbols, the auxiliary vector.
const NOFILE_EXPECTED: &[&str] = &[
    "Reading symbols from target:",
    "AT_PHDR ",
    "AT_ENTRY             Entry point of program         0x",
    "AT_EXECFN ",
    "AT_NULL ",
    "Breakpoint 1 at 0x",
    "hit Breakpoint 1, compute (n=3) at gdbdemo.c:17",
    "exited normally",
];

/// The thread list of nofile.gdb: every thread has the executable's name.
const NOFILE_THREADS: &[&str] = &[
    " \"gdbdemo.glibc\" compute (n=3) at gdbdemo.c:17",
    " \"gdbdemo.glibc\" ",
    " \"gdbdemo.glibc\" ",
];

#[test]
fn gdb_without_the_executable_fetches_it_and_names_threads() {
    let dir = common::scratch("gdb-nofile");
    let exe = payload("gdbdemo.glibc");
    let args = [exe.as_os_str()];

    let (shown, status) = under(Server::Km, &dir, &args, None, "nofile.gdb", "km");
    assert_lines_in_order(&shown, "km", NOFILE_EXPECTED);
    assert!(
        shown.contains(&format!("Reading {} from remote target", exe.display())),
        "km: gdb did not take the path from qXfer:exec-file:\n{shown}"
    );
    // Threads are named after the executable, as Linux's comm (qXfer:threads).
    assert_lines_in_order(&shown, "km", NOFILE_THREADS);
    assert!(status.success(), "km: {status}");

    let (shown, _) = under(
        Server::Gdbserver,
        &dir,
        &args,
        None,
        "nofile.gdb",
        "gdbserver",
    );
    assert_lines_in_order(&shown, "gdbserver", NOFILE_EXPECTED);
    assert_lines_in_order(&shown, "gdbserver", NOFILE_THREADS);
}

/// Runs gdb-tests/`script` on `exe args` under `km -g` and under gdbserver and
/// checks that both sessions show `expected`; returns what km's showed and how km
/// ended.
fn both_servers(
    exe: &Path,
    args: &[&str],
    script: &str,
    expected: &[&str],
) -> (String, ExitStatus) {
    let dir = common::scratch(script);
    let mut all = vec![exe.as_os_str()];
    all.extend(args.iter().map(OsStr::new));

    let (km_shown, km_status) = under(Server::Km, &dir, &all, Some(exe), script, "km");
    assert_lines_in_order(&km_shown, &format!("km {script}"), expected);

    let (shown, _) = under(
        Server::Gdbserver,
        &dir,
        &all,
        Some(exe),
        script,
        "gdbserver",
    );
    assert_lines_in_order(&shown, &format!("gdbserver {script}"), expected);
    (km_shown, km_status)
}

#[test]
fn ymm_registers_are_read_and_written() {
    if !std::arch::is_x86_feature_detected!("avx") {
        eprintln!("no AVX on this CPU: nothing to test");
        return;
    }
    let exe = payload("debuggee.glibc");
    let dir = common::scratch("avx.gdb");
    let args = [exe.as_os_str(), OsStr::new("avx")];
    let stop = format!(
        "Breakpoint 1, avx_loaded () at ../tests/payloads/debuggee.c:{}",
        debuggee_line("void avx_loaded(void) {") + 1
    );
    let expected = [
        stop.as_str(),
        "$1 = {0x1122334455667788, 0x1122334455667788, 0x1122334455667788, 0x1122334455667788}",
        YMM_WRITTEN,
        // `info registers ymm0` shows the same through every view of the register.
        "v4_int64 = {0x1122334455667788, 0x1122334455667788, 0x1122334455667788, 0x42}",
        "exited normally",
    ];

    let (km_shown, status) = under(Server::Km, &dir, &args, Some(&exe), "avx.gdb", "km");
    assert_lines_in_order(&km_shown, "km avx.gdb", &expected);
    assert!(status.success(), "km: {status}");

    // The reference: on some hosts (seen on an Intel AVX-512 machine) gdbserver itself
    // loses the ymm write, so its capability is checked before its session is held
    // against the expected lines.
    let (shown, _) = under(
        Server::Gdbserver,
        &dir,
        &args,
        Some(&exe),
        "avx.gdb",
        "gdbserver",
    );
    if shown.contains("$1 = {0x1122334455667788") && !shown.contains(YMM_WRITTEN) {
        eprintln!(
            "gdbserver reference skipped: this host's gdbserver does not keep a write to \
             the upper half of ymm0 (km's session was checked):\n{shown}"
        );
        return;
    }
    assert_lines_in_order(&shown, "gdbserver avx.gdb", &expected);
}

/// What gdb prints after `set var $ymm0.v4_int64[3] = 0x42` and a stepi, when the
/// write reached the thread.
const YMM_WRITTEN: &str = "$2 = {0x1122334455667788, 0x1122334455667788, 0x1122334455667788, 0x42}";

/// The line of debuggee.c that holds `code` (tests name lines by their code, so
/// that editing the payload does not break them).
fn debuggee_line(code: &str) -> usize {
    let src = include_str!("payloads/debuggee.c");
    src.lines()
        .position(|l| l.contains(code))
        .unwrap_or_else(|| panic!("debuggee.c has no line with {code:?}"))
        + 1
}

/// A read watchpoint stops after each read of `g`, with its value and line; an access
/// watchpoint reports reads and the write (old and new value).
fn watch_expected() -> Vec<String> {
    let read = debuggee_line("sum += g;");
    // The write is reported after the store, at the end of writer().
    let write = debuggee_line("g = v;") + 1;
    let at = |f: &str| format!(" in {f} at ../tests/payloads/debuggee.c:{read}");
    vec![
        "Hardware read watchpoint 1: g".into(),
        "Hardware read watchpoint 1: g".into(),
        "Value = 5".into(),
        at("reader (n=3)"),
        format!("{read}\t        sum += g;"),
        "Hardware read watchpoint 1: g".into(),
        "Value = 5".into(),
        at("reader (n=3)"),
        "Hardware access (read/write) watchpoint 2: g".into(),
        "Hardware access (read/write) watchpoint 2: g".into(),
        "Value = 5".into(),
        at("reader (n=3)"),
        "Hardware access (read/write) watchpoint 2: g".into(),
        "Old value = 5".into(),
        "New value = 7".into(),
        format!("writer (v=7) at ../tests/payloads/debuggee.c:{write}"),
        "Hardware access (read/write) watchpoint 2: g".into(),
        "Value = 7".into(),
        at("reader (n=1)"),
        "exited normally".into(),
    ]
}

#[test]
fn read_and_access_watchpoints() {
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("debuggee.{libc}"));
        let expected = watch_expected();
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        let (_, status) = both_servers(&exe, &["watch"], "watch.gdb", &expected);
        assert!(status.success(), "km {libc}: {status}");
    }
}

/// With a read watchpoint on a constant (its page hidden from the payload), the
/// payload's own faults stay SIGSEGV: a write to the read-only page and a write to
/// unmapped memory.
#[test]
fn faults_under_a_read_watchpoint_stay_sigsegv() {
    let exe = payload("debuggee.glibc");
    let shown = |code: &str, indent: &str| format!("{}\t{indent}{code}", debuggee_line(code));
    for (args, line) in [
        (
            &["fault"][..],
            shown("*(volatile int *)&ro = other;", "        "),
        ),
        (
            &["fault", "null"][..],
            shown("*(volatile int *)(long)other = 1;", "            "),
        ),
    ] {
        let (_, status) = both_servers(
            &exe,
            args,
            "watchfault.gdb",
            &[
                "Hardware read watchpoint 1: ro",
                "Value = 3",
                &shown("other = *(volatile const int *)&ro;", "        "),
                "Program received signal SIGSEGV, Segmentation fault.",
                &line,
                "Program terminated with signal SIGSEGV, Segmentation fault.",
            ],
        );
        assert_eq!(
            status.signal(),
            Some(libc::SIGSEGV),
            "km {args:?}: {status}"
        );
    }
}

/// `stepi 300` from main steps over system calls (the landing pad) one instruction
/// at a time and ends where it ends natively.
#[test]
fn stepi_steps_over_system_calls() {
    let exe = payload("gdbdemo.glibc");
    let dir = common::scratch("gdb-stepi");
    let args = [exe.as_os_str()];
    let (km_shown, status) = under(Server::Km, &dir, &args, Some(&exe), "stepi.gdb", "km");
    assert!(status.success(), "km: {status}");
    let (native, _) = under(
        Server::Gdbserver,
        &dir,
        &args,
        Some(&exe),
        "stepi.gdb",
        "gdbserver",
    );
    let pc = |shown: &str| {
        assert_lines_in_order(
            shown,
            "stepi",
            &["Breakpoint 1, main ()", "$1 = ", "exited normally"],
        );
        shown
            .lines()
            .find(|l| l.starts_with("$1 = "))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        pc(&km_shown),
        pc(&native),
        "km:\n{km_shown}\ngdbserver:\n{native}"
    );

    // Through several system calls, each step stays a step.
    let exe = payload("debuggee.glibc");
    let args = [exe.as_os_str(), OsStr::new("watch")];
    let (shown, _) = under(Server::Km, &dir, &args, Some(&exe), "stepi-long.gdb", "km");
    assert_lines_in_order(
        &shown,
        "km stepi 1000",
        &["Breakpoint 1, main (", "$1 = (void (*)()) 0x"],
    );
    assert!(
        !shown.contains("exited normally"),
        "km ran off while stepping:\n{shown}"
    );
}

/// What the signal session must show: the fault stops gdb at its line, and
/// continuing delivers it.
const SIGNAL_EXPECTED: &[&str] = &[
    "Program received signal SIGSEGV, Segmentation fault.",
    "level2 (how=",
    "at ../tests/payloads/fault.c:13",
    "Program terminated with signal SIGSEGV, Segmentation fault.",
];

#[test]
fn a_fault_stops_gdb_with_its_signal() {
    let exe = payload("fault.glibc");
    let dir = common::scratch("gdb-signal");

    let km_args = [
        OsStr::new("--coredump=kmcore"),
        exe.as_os_str(),
        OsStr::new("null"),
    ];
    let (shown, status) = under(Server::Km, &dir, &km_args, Some(&exe), "signal.gdb", "km");
    assert_lines_in_order(&shown, "km", SIGNAL_EXPECTED);
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    // The signal gdb passed on killed the payload: its core shows the faulting
    // frame, not km's exception stub.
    let core = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "bt 1"])
        .arg(&exe)
        .arg(dir.join("kmcore"))
        .output()
        .expect("gdb");
    let bt = String::from_utf8_lossy(&core.stdout);
    assert!(
        bt.contains("#0  ") && bt.contains("in level2 ") && bt.contains("fault.c:13"),
        "{bt}"
    );

    let native_args = [exe.as_os_str(), OsStr::new("null")];
    let (shown, _) = under(
        Server::Gdbserver,
        &dir,
        &native_args,
        Some(&exe),
        "signal.gdb",
        "gdbserver",
    );
    assert_lines_in_order(&shown, "gdbserver", SIGNAL_EXPECTED);
}

/// Starts `km --gdb-listen` on the waiter payload (`exe`, which handles SIGTERM) and
/// waits until it runs, before any gdb attaches; returns km and its stdout.
fn listening_waiter(exe: &Path, port: u16) -> (Child, BufReader<ChildStdout>) {
    let mut server = km()
        .arg("--gdb-listen")
        .arg(format!("-g{port}"))
        .arg(exe)
        .arg("handler")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&mut server, "gdb can attach");
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the payload runs before gdb attaches");
    (server, out)
}

#[test]
fn attach_detach_and_attach_again() {
    let exe = payload("waiter.glibc");
    let port = free_port();
    let (mut server, mut out) = listening_waiter(&exe, port);
    let mut line = String::new();
    for round in 1..=2 {
        let shown = Command::new("gdb")
            .args(["-batch", "-nx", "-ex", &format!("target remote :{port}")])
            .args(["-ex", "info threads", "-ex", "bt", "-ex", "detach"])
            .arg(&exe)
            .output()
            .expect("gdb");
        let shown = text(&shown.stdout) + &text(&shown.stderr);
        for want in ["* 1    Thread ", " in pause ()", " in main (", "detached"] {
            assert!(
                shown.contains(want),
                "attach {round}: no {want:?} in\n{shown}"
            );
        }
    }
    // Detached, the payload runs on: its SIGTERM handler answers.
    let pid = rustix::process::Pid::from_raw(server.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "handled SIGTERM\n");
    assert_eq!(server.wait().unwrap().code(), Some(3));
}

/// vscode/`file` (JSON with `//` comment lines).
fn vscode_json(file: &str) -> serde_json::Value {
    let raw = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("vscode")
            .join(file),
    )
    .unwrap();
    let json: String = raw
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{file} parses: {e}"))
}

/// `value` with VS Code's `${config:km.*}` variables taken from settings.json, the
/// one place the payload and port are named.
fn resolved(value: &serde_json::Value) -> String {
    let settings = vscode_json("settings.json");
    let mut s = value.as_str().expect("a string").to_string();
    for key in ["km.program", "km.gdbPort"] {
        let set = settings[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} set"));
        s = s.replace(&format!("${{config:{key}}}"), set);
    }
    assert!(!s.contains("${config:"), "unknown setting in {s}");
    s
}

fn config(name_part: &str) -> serde_json::Value {
    vscode_json("launch.json")["configurations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().contains(name_part))
        .cloned()
        .unwrap_or_else(|| panic!("no launch configuration named like {name_part:?}"))
}

/// Runs gdb's MI interpreter on `exe` with `commands`, as VS Code's cppdbg does.
fn mi(exe: &Path, commands: &[String], dir: &Path) -> String {
    use std::io::Write;
    let mut gdb = Command::new("gdb")
        .args(["--interpreter=mi2", "-nx"])
        .arg(exe)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdb");
    let mut input = gdb.stdin.take().unwrap();
    let script = commands.join("\n") + "\n";
    std::thread::spawn(move || {
        input.write_all(script.as_bytes()).unwrap();
        // Leave time for the commands to run before gdb sees end of input.
        std::thread::sleep(Duration::from_secs(5));
    });
    let out = gdb.wait_with_output().unwrap();
    text(&out.stdout)
}

fn setup_commands(c: &serde_json::Value) -> Vec<String> {
    c["setupCommands"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["text"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn vscode_launch_configurations_work_through_gdb_mi() {
    let exe = payload("gdbdemo.glibc");
    let launch = config("launch payload");
    assert_eq!(launch["type"], "cppdbg");
    // The task starts km the way the configuration connects to it: same payload,
    // same port, and VS Code's background matcher keys.
    let task = &vscode_json("tasks.json")["tasks"][0];
    assert_eq!(task["label"], launch["preLaunchTask"]);
    let args: Vec<String> = task["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(resolved)
        .collect();
    let port_set = resolved(&launch["miDebuggerServerAddress"]);
    assert_eq!(format!("localhost:{}", &args[0][2..]), port_set);
    assert_eq!(args[1], resolved(&launch["program"]));
    let background = task["problemMatcher"]["background"].as_object().unwrap();
    for key in background.keys() {
        assert!(
            ["activeBegin", "beginsPattern", "endsPattern"].contains(&key.as_str()),
            "tasks.json: VS Code knows no background key {key:?}"
        );
    }
    let port = free_port();
    let mut server = km()
        .arg(format!("-g{port}"))
        .arg(&exe)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&mut server, "waiting for gdb");
    let mut commands = setup_commands(&launch);
    commands.extend([
        format!("-target-select remote localhost:{port}"),
        "-break-insert compute".into(),
        "-exec-continue".into(),
        "-stack-list-frames".into(),
        "-exec-continue".into(),
    ]);
    let shown = mi(&exe, &commands, Path::new(env!("CARGO_TARGET_TMPDIR")));
    assert!(server.wait().unwrap().success());
    for want in [
        "^connected",
        "reason=\"breakpoint-hit\"",
        "func=\"compute\"",
        "func=\"main\"",
        "reason=\"exited-normally\"",
    ] {
        assert!(shown.contains(want), "no {want:?} in\n{shown}");
    }

    // The core-file configuration: gdb opens the kmcore of a crashed payload.
    let core_cfg = config("kmcore");
    assert!(
        core_cfg["coreDumpPath"]
            .as_str()
            .unwrap()
            .ends_with("/kmcore")
    );
    let dir = common::scratch("vscode-core");
    let fault = payload("fault.glibc");
    let out = km()
        .current_dir(&dir)
        .arg("--coredump=kmcore")
        .arg(&fault)
        .arg("null")
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGSEGV)
    );
    let shown = mi(
        &fault,
        &[
            "-target-select core kmcore".into(),
            "-stack-list-frames".into(),
        ],
        &dir,
    );
    for want in ["func=\"level2\"", "func=\"level1\"", "func=\"main\""] {
        assert!(shown.contains(want), "no {want:?} in\n{shown}");
    }
}

/// Runs gdb's MI interpreter with `steps`: each command is sent, then the test waits
/// the given time (so that gdb sees it while the target runs). Returns gdb's output.
fn mi_timed(exe: &Path, steps: &[(&str, Duration)]) -> String {
    use std::io::Write;
    let mut gdb = Command::new("gdb")
        .args(["--interpreter=mi2", "-nx"])
        .arg(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gdb");
    let mut input = gdb.stdin.take().unwrap();
    let steps: Vec<(String, Duration)> = steps.iter().map(|(c, d)| (c.to_string(), *d)).collect();
    std::thread::spawn(move || {
        for (command, pause) in steps {
            if writeln!(input, "{command}").is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    let out = gdb.wait_with_output().unwrap();
    text(&out.stdout)
}

/// gdb's Ctrl-C (MI `-exec-interrupt`) stops a payload blocked in a host syscall
/// (sleep), shows where it is, and the payload can be resumed and stopped again.
#[test]
fn interrupt_stops_a_payload_blocked_in_a_host_syscall() {
    let exe = payload("debuggee.glibc");
    let dir = common::scratch("gdb-interrupt");
    let args = [exe.as_os_str(), OsStr::new("sleep")];
    let servers = [
        ("km", km_gdb(free_port(), &dir, &args), "waiting for gdb"),
        (
            "gdbserver",
            gdbserver(free_port(), &dir, &args),
            "Listening on port",
        ),
    ];
    for (who, mut server, marker) in servers {
        let port = server
            .get_args()
            .find_map(|a| {
                let a = a.to_str().unwrap();
                a.strip_prefix("-g")
                    .or(a.strip_prefix(':'))?
                    .parse::<u16>()
                    .ok()
            })
            .unwrap();
        let mut child = server
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(&mut child, marker);
        let short = Duration::from_millis(500);
        let running = Duration::from_millis(1500);
        let target = format!("-target-select remote :{port}");
        let shown = mi_timed(
            &exe,
            &[
                ("-gdb-set mi-async on", Duration::ZERO),
                ("-gdb-set confirm off", Duration::ZERO),
                (&target, short),
                ("-exec-continue", running),
                ("-exec-interrupt", short),
                ("-stack-list-frames", short),
                ("-exec-continue", running),
                ("-exec-interrupt", short),
                ("-stack-list-frames", short),
                ("-interpreter-exec console kill", short),
                ("-gdb-exit", Duration::ZERO),
            ],
        );
        let stops = shown
            .matches("*stopped,reason=\"signal-received\",signal-name=\"SIGINT\"")
            .count();
        assert_eq!(stops, 2, "{who}: two Ctrl-C stops expected in\n{shown}");
        let stacks: Vec<&str> = shown
            .lines()
            .filter(|l| l.starts_with("^done,stack="))
            .collect();
        assert_eq!(
            stacks.len(),
            2,
            "{who}: two backtraces expected in\n{shown}"
        );
        for stack in stacks {
            for want in ["func=\"sleep\"", "func=\"nap\"", "func=\"main\""] {
                assert!(stack.contains(want), "{who}: no {want} in {stack}");
            }
        }
        wait_for(&mut child, Duration::from_secs(10), who);
    }
}

/// A remote-protocol packet with its checksum.
fn packet(body: &str) -> Vec<u8> {
    let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
    format!("${body}#{sum:02x}").into_bytes()
}

/// Clients that send junk, bad checksums or half a packet, or connect while another
/// is attached, end their own session at most: the payload runs to its normal end,
/// and with --gdb-listen a real gdb attaches afterwards.
#[test]
fn broken_clients_do_not_hurt_the_payload() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let exe = payload("gdbdemo.glibc");
    let junk: [&[u8]; 3] = [b"hello world\n", b"$qSupported#00", b"$m4010"];
    for bytes in junk {
        let port = free_port();
        let mut server = km()
            .arg(format!("-g{port}"))
            .arg(&exe)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(&mut server, "waiting for gdb");
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // A second client while the first is attached: refused or never served.
        if let Ok(mut second) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = second.write_all(&packet("?"));
        }
        client.write_all(bytes).unwrap();
        drop(client);
        let status = wait_for(&mut server, Duration::from_secs(20), "km");
        let mut out = String::new();
        server
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let what = String::from_utf8_lossy(bytes);
        assert!(status.success(), "after {what:?}: {status}");
        assert_eq!(out, "compute: 7, counter: 1\n", "after {what:?}");
    }

    let exe = payload("waiter.glibc");
    let port = free_port();
    let (mut server, mut out) = listening_waiter(&exe, port);
    let mut line = String::new();
    // Reads until a whole reply packet (`$...#xx`) came, or 5 s passed.
    let read_reply = |s: &mut TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        common::read_reply(s)
    };
    let mut first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    first.write_all(&packet("?")).unwrap();
    assert!(read_reply(&mut first).contains("$T05thread:"));
    // The second client waits while the first is attached.
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second.write_all(&packet("?")).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        second.read(&mut [0u8; 16]).is_err(),
        "served while another client is attached"
    );
    first.write_all(b"$qSupported#00").unwrap();
    first.write_all(b"$m40").unwrap();
    drop(first);
    // Then it is served, and leaves in the middle of a packet.
    assert!(read_reply(&mut second).contains("$T05thread:"));
    second.write_all(b"$g#6").unwrap();
    drop(second);

    let shown = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", &format!("target remote :{port}")])
        .args(["-ex", "bt", "-ex", "detach"])
        .arg(&exe)
        .output()
        .expect("gdb");
    let shown = text(&shown.stdout) + &text(&shown.stderr);
    for want in [" in pause ()", " in main (", "detached"] {
        assert!(shown.contains(want), "no {want:?} in\n{shown}");
    }
    let pid = rustix::process::Pid::from_raw(server.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "handled SIGTERM\n");
    assert_eq!(
        wait_for(&mut server, Duration::from_secs(10), "km").code(),
        Some(3)
    );
}

/// `stepi` through clone3 (pthread_create) under km and gdbserver: the step ends in
/// the parent, the new thread runs on (no stray SIGTRAP), the payload exits.
#[test]
fn stepping_through_thread_creation() {
    let expected = &[
        "Breakpoint 1, 0x",
        "[New Thread ",
        "in __clone_internal ()",
        "exited normally",
    ];
    let (shown, status) = both_servers(&payload("gdbdemo.glibc"), &[], "clone-step.gdb", expected);
    assert!(!shown.contains("SIGTRAP"), "km:\n{shown}");
    assert!(status.success(), "km: {status}");
}

/// A dynamically linked payload: the stub lists the loaded libraries
/// (qXfer:libraries-svr4) as gdbserver does, and gdb shows them.
#[test]
fn shared_libraries_of_a_dynamic_payload() {
    let expected = &[
        "hit Breakpoint 1, compute (n=3)",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "<library-list-svr4 version=\"1.0\" main-lm=\"0x",
        "exited normally",
    ];
    let (shown, status) = both_servers(&payload("gdbdemo.dynamic"), &[], "libraries.gdb", expected);
    assert!(status.success(), "km: {status}");
    let raw = shown.lines().find(|l| l.starts_with("received:"));
    assert!(raw.is_some_and(|r| r.contains("libc.so.6")), "{shown}");
}

/// A breakpoint in code that both sides of a fork run stops the parent only; the
/// child, which gdb does not follow (as gdbserver detaches it), runs without it
/// and exits 0, which the parent's status reports.
#[test]
fn breakpoints_stay_with_the_parent_across_fork() {
    let expected = &["Breakpoint 1, reader (n=2)", "exited normally"];
    let (shown, status) = both_servers(&payload("debuggee.glibc"), &["fork"], "fork.gdb", expected);
    assert!(
        status.success(),
        "km (the child hit the breakpoint?): {status}\n{shown}"
    );
}

/// Forks under gdb while other threads are inside km's calls (`forkbusy.c`:
/// 300 forks, with threads in waitid, open/close and poll): each thread's
/// syscall exit asks the debugger whether gdb is attached, and a fork that
/// copied the debugger's state while another thread held it left the child km
/// hung at its first question (before the fix, every session of this test
/// did: the alarm ended the payload). Every child now starts and exits, and
/// the payload exits normally, as under gdbserver.
#[test]
fn forks_under_gdb_while_other_threads_call_km() {
    let expected = &[
        "[Detaching after fork from child process ",
        "exited normally]",
    ];
    let (shown, status) = both_servers(
        &payload("forkbusy.glibc"),
        &["300"],
        "fork-busy.gdb",
        expected,
    );
    assert!(!shown.contains("SIGALRM"), "km:\n{shown}");
    assert!(status.success(), "km: {status}\n{shown}");
}

/// `--gdb-listen` on a payload whose fork child outlives it: once the parent km has
/// exited, nothing listens on the port (the child km closed its copy of the socket).
#[test]
fn a_fork_child_does_not_keep_the_gdb_port() {
    let port = free_port();
    let mut server = km()
        .arg("--gdb-listen")
        .arg(format!("-g{port}"))
        .arg(payload("debuggee.glibc"))
        .arg("linger")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_for(&mut server, Duration::from_secs(10), "km");
    assert!(status.success(), "{status}");
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "something still listens on the gdb port after km exited"
    );
}

/// `info proc` and `info proc mappings` show the payload (its command line, exe and
/// mappings, read through the stub's host I/O), and `kill` is reported as a kill;
/// the same script passes against gdbserver.
#[test]
fn info_proc_and_kill() {
    let exe = payload("gdbdemo.glibc");
    let cmdline = format!("cmdline = '{}'", exe.display());
    let exe_line = format!("exe = '{}'", exe.display());
    let expected = [
        "hit Breakpoint 1, compute (n=3)",
        &cmdline,
        &exe_line,
        "Mapped address spaces:",
        "r-xp",
        "[heap]",
        "[stack]",
        " killed]",
    ];
    let (_, status) = both_servers(&exe, &[], "proc.gdb", &expected);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "km: {status}");
}

/// `catch syscall`: a stop at the entry of the payload's first write (RAX -ENOSYS,
/// orig_rax the number) and one at its return, under km and gdbserver (which
/// labels the two stops the other way round, so the labels are km's only).
#[test]
fn catch_syscall_stops_at_entry_and_return() {
    let exe = payload("hello.glibc");
    let expected = [
        "Catchpoint 1 (syscall 'write' [1])",
        "in write ()",
        "$1 = -38",
        "$2 = 1",
        "in write ()",
        "$3 = 1",
        "exited normally",
    ];
    let (shown, status) = both_servers(&exe, &[], "catch-syscall.gdb", &expected);
    assert_lines_in_order(
        &shown,
        "km",
        &["(call to syscall write)", "(returned from syscall write)"],
    );
    assert!(status.success(), "km: {status}");

    // A stepi from the entry stop runs the syscall and stops after it.
    let stepped = ["in write ()", "in write ()", "$1 = 1", "exited normally"];
    let (_, status) = both_servers(&exe, &[], "catch-step.gdb", &stepped);
    assert!(status.success(), "km: {status}");
}

/// `catch syscall getpid` sees each getpid (which km otherwise answers in the
/// guest): the payload's getpid() and its loop of 3 stop at entry and return.
#[test]
fn catch_syscall_sees_getpid() {
    let exe = payload("idcalls.glibc");
    let expected = [
        "Catchpoint 1 (syscall 'getpid' [39])",
        "exited normally",
        "catchpoint already hit 8 times",
    ];
    let (_, status) = both_servers(&exe, &["loop", "3"], "catch-getpid.gdb", &expected);
    assert!(status.success(), "km: {status}");
}

/// Breakpoints hit by eight threads at once (mtbreak.c): every hit reported once,
/// with the thread that hit it, a conditional breakpoint once per thread, an ignore
/// count; gdb asserts nothing on the way (it did when km reported a stop of a
/// thread gdb had not resumed).
#[test]
fn breakpoints_hit_by_many_threads_at_once() {
    let expected = [
        "breakpoint already hit 800 times",
        "stop only if i == 50",
        "breakpoint already hit 8 times",
        "breakpoint already hit 800 times",
        "exited normally",
    ];
    let (shown, status) = both_servers(&payload("mtbreak.glibc"), &[], "mtbreak.gdb", &expected);
    let hits = shown
        .lines()
        .filter(|l| l.contains(" hit Breakpoint "))
        .count();
    assert_eq!(hits, 800 + 8 + 50, "km: breakpoint stops:\n{shown}");
    assert!(
        !shown.contains("internal-error"),
        "km: gdb failed:\n{shown}"
    );
    assert!(status.success(), "km: {status}");
}

/// A signal the payload raises stops gdb before delivery, passes on to its handler
/// when gdb continues, and `signal SIGUSR2` delivers the signal gdb means.
#[test]
fn signals_stop_gdb_and_gdb_delivers_signals() {
    let expected = [
        "received signal SIGUSR1, User defined signal 1.",
        "Breakpoint 1, signalled (last=10)",
        // gdb steps over the breakpoint with the signal; the handler returns onto
        // the breakpoint, which reports again (as under gdbserver).
        "Breakpoint 1, signalled (last=10)",
        "Breakpoint 1, signalled (last=12)",
        "exited normally",
    ];
    let (_, status) = both_servers(
        &payload("debuggee.glibc"),
        &["signals"],
        "signals.gdb",
        &expected,
    );
    assert!(status.success(), "km: {status}");
}

/// `hbreak` stops at its line (km uses its int3 machinery; gdbserver debug
/// registers), and sharing an address with a `break` is fine.
#[test]
fn hardware_breakpoints() {
    let expected = [
        "Hardware assisted breakpoint 1 at 0x",
        "Breakpoint 2 at 0x",
        "Breakpoint 1, compute (n=3) at gdbdemo.c:17",
        "2       breakpoint     keep y",
        "exited normally",
    ];
    let (_, status) = both_servers(&payload("gdbdemo.glibc"), &[], "hbreak.gdb", &expected);
    assert!(status.success(), "km: {status}");
}

/// `quit` while stopped kills a payload `km -g` started (gdb learns from qAttached
/// that it did not attach), as gdbserver's does.
#[test]
fn quit_kills_a_payload_started_for_gdb() {
    let dir = common::scratch("gdb-quit");
    let exe = payload("gdbdemo.glibc");
    let (shown, status) = under(
        Server::Km,
        &dir,
        &[exe.as_os_str()],
        Some(&exe),
        "quit.gdb",
        "km",
    );
    assert_lines_in_order(&shown, "km", &["Breakpoint 1, compute (n=3)"]);
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "km: {status}\n{shown}"
    );
}

/// A write watchpoint set before a thread is created catches that thread's write,
/// in that thread (main is blocked in pthread_join meanwhile: without the new
/// thread single-stepping, nobody would see the write).
#[test]
fn watchpoints_follow_new_threads() {
    let expected = [
        "Breakpoint 1, watch_armed ()",
        "atchpoint 2: shared",
        "Old value = 0",
        "New value = 7",
        "late_writer (arg=0x0) at ../tests/payloads/debuggee.c:",
        "exited normally",
    ];
    let (_, status) = both_servers(
        &payload("debuggee.glibc"),
        &["watchthreads"],
        "watch-threads.gdb",
        &expected,
    );
    assert!(status.success(), "km: {status}");
}

/// The threads `info threads` lists in `shown`, each as its number and name
/// (`2 "worker-1"`): process and thread ids differ between runs.
fn listed_thread_names(shown: &str) -> Vec<String> {
    shown
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("* ").or_else(|| l.strip_prefix("  "))?;
            let (id, rest) = l.trim_start().split_once(' ')?;
            let rest = rest.trim_start().strip_prefix("Thread ")?;
            // The name is quoted, and may hold quotes itself.
            let (_, quoted) = rest.split_once(" \"")?;
            let (name, _) = quoted.split_once("\" ")?;
            Some(format!("{id} \"{name}\""))
        })
        .collect()
}

/// Threads are named as on Linux: the program's name, inherited by new threads;
/// a name set with pthread_setname_np from another thread (a write to its /proc
/// comm) or with prctl(PR_SET_NAME) (cut to 15 bytes; one has XML's markup
/// characters, which gdb must show as they are). The payload reads them back
/// (/proc/self/comm, /proc/self/task/TID/comm, PR_GET_NAME, pthread_getname_np)
/// as natively, and gdb's thread list shows the names gdbserver shows.
#[test]
fn thread_names_as_under_gdbserver() {
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("gdbthreads.{libc}"));
        common::assert_same_as_native(&exe, &[OsStr::new("names")], None);
        assert_same_thread_names(&exe, "names", 5);
    }
}

/// A thread list longer than one packet (101 threads) is read in parts
/// (qXfer:threads:read at increasing offsets) and shows every thread, as under
/// gdbserver.
#[test]
fn a_long_thread_list_is_read_in_parts() {
    assert_same_thread_names(&payload("gdbthreads.glibc"), "many", 101);
}

/// Runs thread-names.gdb on `exe mode` under km and gdbserver: both stop in
/// names_set() and list the same `threads` threads with the same names.
fn assert_same_thread_names(exe: &Path, mode: &str, threads: usize) {
    let dir = common::scratch("gdb-thread-names");
    let args = [exe.as_os_str(), OsStr::new(mode)];
    let script = "thread-names.gdb";
    let who = |server: &str| format!("{server} {} {mode}", exe.display());
    let expected = [
        "hit Breakpoint 1, names_set () at ../tests/payloads/gdbthreads.c:",
        "exited normally",
    ];
    let (km_shown, status) = under(Server::Km, &dir, &args, Some(exe), script, "km");
    assert_lines_in_order(&km_shown, &who("km"), &expected);
    assert!(status.success(), "{}: {status}", who("km"));
    let (shown, _) = under(
        Server::Gdbserver,
        &dir,
        &args,
        Some(exe),
        script,
        "gdbserver",
    );
    assert_lines_in_order(&shown, &who("gdbserver"), &expected);
    let names = listed_thread_names(&shown);
    assert_eq!(names.len(), threads, "{}:\n{shown}", who("gdbserver"));
    assert_eq!(
        listed_thread_names(&km_shown),
        names,
        "{}: thread names differ from gdbserver's:\n{km_shown}",
        who("km")
    );
}

/// What gdb showed of each write watchpoint hit in `shown`: the thread that
/// stopped (and any switch to another), the values and the frame.
fn watch_hits(shown: &str) -> Vec<&str> {
    const SHOWN: [&str; 5] = [
        "hit Hardware watchpoint",
        "[Switching to ",
        "Old value = ",
        "New value = ",
        " at ../tests/payloads/gdbthreads.c:",
    ];
    shown
        .lines()
        .filter(|l| SHOWN.iter().any(|s| l.contains(s)))
        .collect()
}

/// A write watchpoint charges each write to the thread whose instruction wrote:
/// main writes the watched variable 20 times while four threads spin (under km
/// every thread single-steps), and gdb shows each hit in main, with its values and
/// frame, exactly as under gdbserver (a spinner's step that overlapped main's write
/// was charged with it before each thread took its turn to step alone).
#[test]
fn watchpoint_hits_belong_to_the_writing_thread() {
    for libc in ["glibc", "musl"] {
        let exe = payload(&format!("gdbthreads.{libc}"));
        let dir = common::scratch("gdb-watch-spin");
        let args = [exe.as_os_str(), OsStr::new("spin")];
        let script = "watch-spin.gdb";
        let (km_shown, status) = under(Server::Km, &dir, &args, Some(&exe), script, "km");
        assert!(status.success(), "km {libc}: {status}\n{km_shown}");
        let (shown, _) = under(
            Server::Gdbserver,
            &dir,
            &args,
            Some(&exe),
            script,
            "gdbserver",
        );
        let hits = watch_hits(&shown);
        let writes = hits.iter().filter(|l| l.contains("hit Hardware")).count();
        assert_eq!(writes, 20, "gdbserver {libc}: every write hits:\n{shown}");
        assert_eq!(
            watch_hits(&km_shown),
            hits,
            "km {libc}: watchpoint hits differ from gdbserver's:\n{km_shown}"
        );
    }
}

/// A thread name that is not text (a control character, a byte that is not
/// UTF-8) still leaves gdb a whole thread list: km shows those bytes as U+FFFD
/// and escapes the rest (gdbserver sends them raw, and gdb then drops its thread
/// list with "not well-formed").
#[test]
fn a_name_that_is_not_text_keeps_the_thread_list() {
    let exe = payload("gdbthreads.glibc");
    let dir = common::scratch("gdb-raw-name");
    let args = [exe.as_os_str(), OsStr::new("rawname")];
    let (shown, status) = under(
        Server::Km,
        &dir,
        &args,
        Some(&exe),
        "thread-names.gdb",
        "km",
    );
    assert!(status.success(), "km: {status}\n{shown}");
    assert!(!shown.contains("while parsing threads"), "km:\n{shown}");
    assert_eq!(
        listed_thread_names(&shown),
        ["1 \"gdbthreads.glib\"", "2 \"a\u{fffd}\u{fffd}&\""],
        "km:\n{shown}"
    );
}

/// The number printed after `prefix` on the first line of `shown` that has it.
fn number_after(shown: &str, prefix: &str) -> Option<u32> {
    shown.lines().find_map(|l| {
        let rest = &l[l.find(prefix)? + prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// Checks that the session's inferiors carry the pids the payload saw: `$1` is
/// the parent's getpid() and inferior 1 its process, `$2` the child's getpid(),
/// the forked process of the catchpoint and inferior 2's process.
fn assert_real_pids(shown: &str, who: &str) {
    let parent = number_after(shown, "$1 = ");
    let child = number_after(shown, "$2 = ");
    assert!(
        parent.is_some() && child.is_some(),
        "{who}: no pids:\n{shown}"
    );
    assert_ne!(parent, child, "{who}:\n{shown}");
    assert_eq!(
        number_after(shown, "* 1    process "),
        parent,
        "{who}: inferior 1 is not the payload's pid:\n{shown}"
    );
    assert_eq!(
        number_after(shown, "Catchpoint 1 (forked process "),
        child,
        "{who}: the fork event names another child:\n{shown}"
    );
    assert_eq!(
        number_after(shown, "* 2    process "),
        child,
        "{who}: inferior 2 is not the child's pid:\n{shown}"
    );
}

/// `catch fork` stops gdb at the fork; with `follow-fork-mode child` gdb detaches
/// the parent and follows the child (the child km takes the session over) to a
/// breakpoint only the child reaches; `info inferiors` shows the real pids (the
/// payload's own getpid()), as under gdbserver.
#[test]
fn follow_fork_mode_child_reaches_a_breakpoint_in_the_child() {
    let expected = [
        "Catchpoint 1 (forked process ",
        "* 1    process ",
        "[Attaching after Thread ",
        "[Detaching after fork from parent process ",
        "hit Breakpoint 2, in_child (n=21)",
        "* 2    process ",
        "exited normally",
    ];
    let exe = payload("forkexec.glibc");
    let dir = common::scratch("follow-fork.gdb");
    for server in [Server::Km, Server::Gdbserver] {
        let who = match server {
            Server::Km => "km",
            Server::Gdbserver => "gdbserver",
        };
        let (shown, status) = under(
            server,
            &dir,
            &[exe.as_os_str(), OsStr::new("fork")],
            Some(&exe),
            "follow-fork.gdb",
            who,
        );
        assert_lines_in_order(&shown, who, &expected);
        assert_real_pids(&shown, who);
        // The parent, detached, reaps the child's status 0 and exits 0.
        assert!(status.success(), "{who}: {status}\n{shown}");
    }
}

/// `catch vfork` stops the parent at the vfork; gdb detaches the child, which
/// execs and exits while the parent waits for it (vfork-done), as under gdbserver.
#[test]
fn catch_vfork_stops_the_parent() {
    let expected = [
        "Catchpoint 1 (vforked process ",
        "[Detaching after vfork from child process ",
        "exited normally",
    ];
    let (shown, status) = both_servers(
        &payload("forkexec.glibc"),
        &["vfork"],
        "catch-vfork.gdb",
        &expected,
    );
    assert!(status.success(), "km: {status}\n{shown}");
}

/// `catch exec` stops at the new program's entry (the km the execve started goes
/// on with the session), and a breakpoint set there in the new program is hit.
#[test]
fn catch_exec_then_a_breakpoint_in_the_new_program() {
    let exe = payload("forkexec.glibc");
    let executing = format!("is executing new program: {}", exe.display());
    let expected = [
        &executing,
        "Catchpoint 1 (exec'd ",
        "* 1    process ",
        "Breakpoint 2, after_exec (n=6)",
        "exited normally",
    ];
    let (shown, status) = both_servers(&exe, &["exec"], "catch-exec.gdb", &expected);
    assert!(status.success(), "km: {status}\n{shown}");
}

/// gdb's `$_siginfo` (siginfo.c): at a breakpoint the int3's SIGTRAP (SI_KERNEL),
/// at raise(SIGUSR1) tgkill's SI_TKILL, at a SIGSEGV its code and fault address;
/// gdb's change of that address reaches the payload's SA_SIGINFO handler.
#[test]
fn siginfo_at_a_breakpoint_a_signal_and_a_fault() {
    let expected = [
        "Breakpoint 1, ready ()",
        "$1 = 5",
        "$2 = 128",
        "received signal SIGUSR1, User defined signal 1.",
        "$3 = 10",
        "$4 = -6",
        "Breakpoint 2, handled (sig=10, code=-6, addr=0x0)",
        "received signal SIGSEGV, Segmentation fault.",
        "$5 = 11",
        "$6 = 1",
        "$7 = (void *) 0x10",
        "Breakpoint 2, handled (sig=11, code=1, addr=0x20)",
        "exited normally",
    ];
    let (_, status) = both_servers(&payload("siginfo.glibc"), &[], "siginfo.gdb", &expected);
    assert!(status.success(), "km: {status}");
}

/// `handle SIGUSR1 nostop noprint pass`: gdb sends QPassSignals (SIGUSR1 is gdb's
/// signal 0x1e) and the payload's handler gets SIGUSR1 without a stop reply for it.
#[test]
fn passed_signals_reach_the_payload_without_a_stop() {
    // gdb's output first, then its remote log (stderr).
    let expected = [
        "Breakpoint 1, signalled (last=10)",
        "exited with code 03",
        "Sending packet: $QPassSignals:",
        "Packet received: OK",
    ];
    let (shown, _) = both_servers(
        &payload("debuggee.glibc"),
        &["signals"],
        "pass-signals.gdb",
        &expected,
    );
    assert!(
        shown
            .lines()
            .any(|l| l.contains("$QPassSignals:") && l.contains(";1e;")),
        "km: gdb did not pass SIGUSR1:\n{shown}"
    );
    assert!(
        !shown.contains("Packet received: T1e"),
        "km: stopped for SIGUSR1:\n{shown}"
    );
}

/// `interrupt` while already stopped: as gdbserver (which sends the stopped
/// process SIGINT), the next `continue` stops at once for SIGINT where the thread
/// stands, with its registers and siginfo readable, and the one after runs to the
/// end.
#[test]
fn interrupt_while_stopped_then_continue() {
    let expected = [
        "hit Breakpoint 1, compute (n=3) at gdbdemo.c:17",
        "received signal SIGINT, Interrupt.",
        "compute (n=3) at gdbdemo.c:17",
        "rip            0x",
        // $_siginfo: SIGINT from a sender (SI_USER), as gdbserver's kill().
        "$1 = 2",
        "$2 = 0",
        "exited normally",
    ];
    let (shown, status) = both_servers(
        &payload("gdbdemo.glibc"),
        &[],
        "interrupt-stopped.gdb",
        &expected,
    );
    assert!(
        !shown.contains("Could not read registers"),
        "km: registers unreadable:\n{shown}"
    );
    assert!(status.success(), "km: {status}");
}

/// gdb's MI interpreter driven line by line: each command is sent when the
/// previous output has arrived, so nothing depends on the host's speed. Commands
/// carry MI tokens, so that each result record is matched to its own command (an
/// interrupt racing a stop can make gdb answer one more `^done` than asked).
struct MiGdb {
    gdb: Child,
    input: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    shown: String,
    token: u32,
}

impl MiGdb {
    fn start(exe: &Path) -> Self {
        let mut gdb = Command::new("gdb")
            .args(["--interpreter=mi2", "-nx"])
            .arg(exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gdb");
        let input = gdb.stdin.take().unwrap();
        let out = BufReader::new(gdb.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        MiGdb {
            gdb,
            input,
            lines,
            shown: String::new(),
            token: 0,
        }
    }

    /// Sends `command` with a new token; returns the token.
    fn send(&mut self, command: &str) -> String {
        use std::io::Write;
        self.token += 1;
        let token = self.token.to_string();
        writeln!(self.input, "{token}{command}").unwrap();
        self.shown += &format!(">> {token}{command}\n");
        token
    }

    /// Waits for the next line starting with one of `starts` after its token, if
    /// any; returns it without the token. A session silent for [`SESSION_LIMIT`]
    /// has hung.
    fn until(&mut self, starts: &[&str]) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(SESSION_LIMIT)
                .unwrap_or_else(|_| panic!("gdb hung or ended:\n{}", self.shown));
            self.shown += &line;
            self.shown.push('\n');
            let record = line.trim_start_matches(|c: char| c.is_ascii_digit());
            if starts.iter().any(|s| record.starts_with(s)) {
                return record.to_string();
            }
        }
    }

    /// Sends `command` and returns its result record (`^done`, `^error`...),
    /// without the token.
    fn command(&mut self, command: &str) -> String {
        let token = self.send(command);
        let result = format!("{token}^");
        loop {
            let record = self.until(&["^"]);
            if self
                .shown
                .lines()
                .last()
                .is_some_and(|l| l.starts_with(&result))
            {
                return record;
            }
        }
    }
}

impl Drop for MiGdb {
    fn drop(&mut self) {
        let _ = self.gdb.kill();
        let _ = self.gdb.wait();
    }
}

/// VS Code's Pause racing a breakpoint, through gdb's MI: `-exec-interrupt` right
/// after `-exec-continue` (it lands before or after the breakpoint stops the
/// target), then again while surely stopped, then `-exec-continue` until the
/// payload exits. Every stop has readable frames, the breakpoint is hit once (or
/// the interrupt stopped the thread on it) and the session ends (km once answered
/// E79 to gdb's register reads, and gdb spun).
#[test]
fn mi_interrupt_racing_a_breakpoint() {
    let exe = payload("gdbdemo.glibc");
    let dir = common::scratch("gdb-mi-race");
    let args = [exe.as_os_str()];
    for server in [Server::Km, Server::Gdbserver] {
        let port = free_port();
        let (mut command, marker, who) = match server {
            Server::Km => (km_gdb(port, &dir, &args), "waiting for gdb", "km"),
            Server::Gdbserver => (
                gdbserver(port, &dir, &args),
                "Listening on port",
                "gdbserver",
            ),
        };
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(&mut child, marker);
        let mut gdb = MiGdb::start(&exe);
        gdb.command("-gdb-set mi-async on");
        let connected = gdb.command(&format!("-target-select remote :{port}"));
        assert!(connected.starts_with("^connected"), "{who}: {connected}");
        let inserted = gdb.command("-break-insert compute");
        let bp = inserted
            .split("addr=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("{who}: {inserted}"))
            .to_string();
        gdb.send("-exec-continue");
        gdb.send("-exec-interrupt");
        let mut stops = vec![gdb.until(&["*stopped"])];
        gdb.command("-exec-interrupt");
        while !stops.last().unwrap().contains("exited") {
            let frames = gdb.command("-stack-list-frames");
            assert!(frames.starts_with("^done"), "{who}: {}", gdb.shown);
            assert!(stops.len() < 5, "{who}: too many stops:\n{}", gdb.shown);
            let running = gdb.command("-exec-continue");
            assert!(running.starts_with("^running"), "{who}: {}", gdb.shown);
            stops.push(gdb.until(&["*stopped"]));
        }
        // The interrupt may land with the thread on the breakpoint's address before
        // its int3 ran (then gdb steps over it when resuming and reports no hit),
        // under gdbserver too, only more rarely.
        let hits = stops
            .iter()
            .filter(|s| s.contains("breakpoint-hit"))
            .count();
        let on_it = format!("frame={{addr=\"{bp}\"");
        let interrupted_on_it = stops
            .iter()
            .any(|s| s.contains("signal-received") && s.contains(&on_it));
        assert!(
            hits == 1 || (hits == 0 && interrupted_on_it),
            "{who}: {hits} hits at {bp}: {}",
            gdb.shown
        );
        assert!(
            stops.last().unwrap().contains("exited-normally"),
            "{who}: {}",
            gdb.shown
        );
        drop(gdb);
        wait_for(&mut child, Duration::from_secs(10), who);
    }
}

/// `handle SIG nostop noprint pass` for CPU exceptions: SIGFPE kills the payload
/// without a stop reply for it (gdb's T08); SIGSEGV is reported all the same (T0b)
/// and gdb passes it on, as under gdbserver.
#[test]
fn passed_faults_kill_the_payload() {
    for (how, sig, terminated, stop) in [
        (
            "div0",
            libc::SIGFPE,
            "signal SIGFPE, Arithmetic exception.",
            None,
        ),
        (
            "null",
            libc::SIGSEGV,
            "signal SIGSEGV, Segmentation fault.",
            Some("T0b"),
        ),
    ] {
        let terminated = format!("Program terminated with {terminated}");
        let expected = [
            terminated.as_str(),
            "Sending packet: $QPassSignals:8;b;",
            "Packet received: X",
        ];
        let (shown, status) =
            both_servers(&payload("fault.glibc"), &[how], "pass-fault.gdb", &expected);
        let stopped = |reply: &str| shown.contains(&format!("Packet received: {reply}"));
        match stop {
            Some(reply) => assert!(stopped(reply), "km {how}: no stop {reply}:\n{shown}"),
            None => assert!(!stopped("T08"), "km {how}: stopped:\n{shown}"),
        }
        assert_eq!(status.signal(), Some(sig), "km {how}: {status}");
    }
}

/// `$_siginfo` at the first stop, in a thread stopped because another one hit a
/// breakpoint, at a single-step, a write watchpoint and a syscall catchpoint: the
/// signals, codes and addresses Linux gives gdbserver for them.
#[test]
fn siginfo_at_debug_stops() {
    let expected = [
        "$1 = 5",
        "$2 = 0",
        "hit Breakpoint 1, compute (n=3)",
        "$3 = 19",
        "$4 = -6",
        "$5 = 5",
        "$6 = 2",
        "$7 = 1",
        "hit Hardware watchpoint 2: counter",
        "$8 = 4",
        "$9 = 1",
        "hit Catchpoint 3 (call to syscall write)",
        "$10 = 133",
        "exited normally",
    ];
    let (_, status) = both_servers(
        &payload("gdbdemo.glibc"),
        &[],
        "siginfo-traps.gdb",
        &expected,
    );
    assert!(status.success(), "km: {status}");
}

/// `set detach-on-fork off`: gdb keeps parent and fork child on one connection
/// (km's stub relays the child's requests to the child's km); with
/// `schedule-multiple` both run, the child stops at a breakpoint only it
/// reaches, `info inferiors` and `inferior N` show both with the pids each
/// reads with getpid(), and each, resumed alone (`vCont;c:p<pid>.-1`), runs to
/// its own exit, the parent through a breakpoint of its own, as under
/// gdbserver.
#[test]
fn detach_on_fork_off_keeps_both_processes() {
    let expected = [
        "[New inferior 2 (process ",
        "Thread 2.1 \"forkexec.glibc\" hit Breakpoint 1.2, in_child (n=21)",
        "  1    process ",
        "* 2    process ",
        "$1 = ",
        "[Switching to inferior 1 [process ",
        "$2 = ",
        "[Inferior 2 (process ",
        "Thread 1.1 \"forkexec.glibc\" hit Breakpoint 2.1, reaped (status=0)",
        "[Inferior 1 (process ",
    ];
    let (shown, status) = both_servers(
        &payload("forkexec.glibc"),
        &["fork"],
        "detach-on-fork.gdb",
        &expected,
    );
    assert_inferior_pids(&shown, "km");
    assert!(
        shown.contains(") exited normally]\n[Switching to inferior 1"),
        "km:\n{shown}"
    );
    // gdb reads the child's /proc entries (vFile) through the relay, as the
    // child's km shows them.
    assert!(!shown.contains("unable to open /proc file"), "km:\n{shown}");
    // The parent reaped its child's status 0.
    assert!(status.success(), "km: {status}\n{shown}");
}

/// `detach-on-fork off` with `follow-fork-mode child`: gdb follows the child
/// and keeps the parent stopped; `continue` resumes only the child
/// (`vCont;c:p<child>.-1`) to its breakpoint and its exit, then the parent,
/// resumed alone, reaps it and exits, as under gdbserver.
#[test]
fn detach_on_fork_off_follows_the_child_and_keeps_the_parent() {
    let expected = [
        "[Attaching after Thread ",
        "[New inferior 2 (process ",
        "Thread 2.1 \"forkexec.glibc\" hit Breakpoint 1.2, in_child (n=21)",
        "  1    process ",
        "* 2    process ",
        "$1 = ",
        "[Inferior 2 (process ",
        "[Switching to inferior 1 [process ",
        "$2 = ",
        "[Inferior 1 (process ",
    ];
    let (shown, status) = both_servers(
        &payload("forkexec.glibc"),
        &["fork"],
        "detach-on-fork-child.gdb",
        &expected,
    );
    assert_inferior_pids(&shown, "km");
    assert!(status.success(), "km: {status}\n{shown}");
}

/// `detach-on-fork off`: `kill inferiors 2` kills the kept fork child at its
/// breakpoint; the parent, resumed alone, reaps it killed by SIGKILL and exits
/// 3, as under gdbserver.
#[test]
fn detach_on_fork_off_kills_the_kept_child() {
    let expected = [
        "Thread 2.1 \"forkexec.glibc\" hit Breakpoint 1.2, in_child (n=21)",
        "[Switching to inferior 1 [process ",
        "[Inferior 1 (process ",
    ];
    let (shown, status) = both_servers(
        &payload("forkexec.glibc"),
        &["fork"],
        "detach-on-fork-kill.gdb",
        &expected,
    );
    assert!(shown.contains(") exited with code 03]"), "km:\n{shown}");
    assert_eq!(status.code(), Some(3), "km: {status}\n{shown}");
}

/// Checks that inferior 1 is the process whose getpid() is `$2` (the parent)
/// and inferior 2 the one whose getpid() is `$1` (the child).
fn assert_inferior_pids(shown: &str, who: &str) {
    let child = number_after(shown, "$1 = ");
    let parent = number_after(shown, "$2 = ");
    assert!(
        child.is_some() && parent.is_some() && child != parent,
        "{who}:\n{shown}"
    );
    assert_eq!(
        number_after(shown, "  1    process "),
        parent,
        "{who}:\n{shown}"
    );
    assert_eq!(
        number_after(shown, "* 2    process "),
        child,
        "{who}:\n{shown}"
    );
}

/// `follow-fork-mode child` with vfork: gdb follows the vfork child, keeping
/// the parent (held in vfork) as inferior 1 on the same connection, to a
/// breakpoint before the child's exec (the child keeps its parent's
/// breakpoints, as gdb takes its memory for the parent's), catches the child's
/// exec (the relayed child's new km goes on with the relay, then gdb detaches
/// the parent and the child's km takes the connection over), then a
/// breakpoint in the new program, as under gdbserver.
#[test]
fn follow_fork_mode_child_follows_a_vfork_child_through_its_exec() {
    let exe = payload("forkexec.glibc");
    let exec_caught = format!("hit Catchpoint 2 (exec'd {}), ", exe.display());
    let expected = [
        "[Attaching after Thread ",
        "[New inferior 2 (process ",
        "Thread 2.1 \"forkexec.glibc\" hit Breakpoint 1, before_exec (n=8)",
        "  1    process ",
        "\tis vfork parent of inferior 2",
        "* 2    process ",
        "\tis vfork child of inferior 1",
        "[Detaching vfork parent process ",
        "is executing new program: ",
        &exec_caught,
        "* 2    process ",
        "hit Breakpoint 3, after_exec (n=6)",
        "[Inferior 2 (process ",
    ];
    let (shown, status) = both_servers(&exe, &["vfork"], "follow-vfork.gdb", &expected);
    assert!(shown.contains(") exited normally]"), "km:\n{shown}");
    assert!(!shown.contains("unable to open /proc file"), "km:\n{shown}");
    // The detached parent reaped the child's status 0.
    assert!(status.success(), "km: {status}\n{shown}");
}

/// `follow-fork-mode child` with posix_spawn (glibc's clone with
/// CLONE_VM|CLONE_VFORK): gdb follows the spawned child through its exec
/// (caught) to a breakpoint in the new program, detaching the parent once the
/// child has exec'd, as under gdbserver.
#[test]
fn follow_fork_mode_child_follows_a_posix_spawn_child() {
    let exe = payload("forkexec.glibc");
    let exec_caught = format!("hit Catchpoint 1 (exec'd {}), ", exe.display());
    let expected = [
        "[Attaching after Thread ",
        "[New inferior 2 (process ",
        "[Detaching vfork parent process ",
        "is executing new program: ",
        &exec_caught,
        "* 2    process ",
        "hit Breakpoint 2, after_exec (n=6)",
        "[Inferior 2 (process ",
    ];
    let (shown, status) = both_servers(&exe, &["spawn"], "follow-spawn.gdb", &expected);
    assert!(shown.contains(") exited normally]"), "km:\n{shown}");
    assert!(status.success(), "km: {status}\n{shown}");
}
