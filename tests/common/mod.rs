//! Shared test set-up: builds the payloads once and runs them natively and under km.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod podman;
pub mod server;

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The directory holding the built payloads (`make -C examples O=...`).
pub fn payloads() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("payloads");
        let status = Command::new("make")
            .args(["-s", "-C", concat!(env!("CARGO_MANIFEST_DIR"), "/examples")])
            .arg(format!("O={}", dir.display()))
            .status()
            .expect("running make (needs make, gcc and musl-tools)");
        assert!(status.success(), "building the payloads failed");
        assert!(
            Path::new("/dev/kvm").exists(),
            "/dev/kvm is missing: km needs KVM to run"
        );
        dir
    })
}

/// Builds the Go payloads (`make go`) into [`payloads`]; false, with a line saying
/// the test is skipped, where the Go toolchain is missing.
pub fn go_payloads_built() -> bool {
    if Command::new("go").arg("version").output().is_err() {
        eprintln!("skipping the Go test: `go` is not installed (Debian package golang-go)");
        return false;
    }
    let status = Command::new("make")
        .args([
            "-s",
            "-C",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples"),
            "go",
        ])
        .arg(format!("O={}", payloads().display()))
        .status()
        .expect("make go");
    assert!(status.success(), "building the Go payloads failed");
    true
}

pub fn payload(name: &str) -> PathBuf {
    payloads().join(name)
}

pub fn km() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_km"));
    cmd.stdin(Stdio::null());
    cmd
}

/// krun, built beside km: `cargo test --workspace` builds it (for its own
/// tests), as does `cargo build --release -p krun`.
pub fn krun_exe() -> PathBuf {
    let krun = Path::new(env!("CARGO_BIN_EXE_km")).with_file_name("krun");
    assert!(
        krun.is_file(),
        "{} is missing: cargo build --release -p krun",
        krun.display()
    );
    krun
}

/// `make -C SOURCE target` with the km and krun just built and `vars` (PREFIX,
/// DESTDIR), which must succeed.
pub fn make_install(target: &str, vars: &[String]) {
    let out = run(Command::new("make")
        .args(["-s", "-C", env!("CARGO_MANIFEST_DIR"), target])
        .arg(format!("KM={}", env!("CARGO_BIN_EXE_km")))
        .arg(format!("KRUN={}", krun_exe().display()))
        .args(vars));
    assert!(out.status.success(), "make {target}: {}", text(&out.stderr));
}

/// `make install` into a DESTDIR under `dir`; the installed krun.
pub fn installed_krun(dir: &Path) -> PathBuf {
    let destdir = dir.join("destdir");
    make_install("install", &[format!("DESTDIR={}", destdir.display())]);
    destdir.join("opt/kontain/bin/krun")
}

/// A bash script (`bash -c ONLY_STDIO bash CMD ARGS...`) that closes every
/// descriptor above 2 and runs CMD: a test or bench process inherits cargo's
/// jobserver pipe, which a payload would otherwise hold (and a snapshot cannot
/// restore). bash, as dash cannot name descriptors above 9.
pub const ONLY_STDIO: &str =
    r#"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec "$@""#;

/// km with only the standard descriptors open (see [`ONLY_STDIO`]).
pub fn km_only_stdio() -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", ONLY_STDIO, "bash", env!("CARGO_BIN_EXE_km")]);
    cmd.stdin(Stdio::null());
    cmd
}

pub fn native(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.stdin(Stdio::null());
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawning")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `exe args` natively and under km and asserts identical stdout and status;
/// returns km's run.
pub fn assert_same_as_native(exe: &Path, args: &[&OsStr], scratch_name: Option<&str>) -> Output {
    let dir = scratch_name.map(scratch);
    let mut args: Vec<&OsStr> = args.to_vec();
    if let Some(dir) = &dir {
        args.push(dir.as_os_str());
    }
    let native_out = run(native(exe).args(&args));
    if let Some(name) = scratch_name {
        scratch(name);
    }
    let km_out = run(km().arg(exe).args(&args));
    assert_runs_alike(exe, &native_out, &km_out);
    km_out
}

/// Asserts that `exe`'s run under km printed the same stdout and ended with the
/// same status as its native run.
pub fn assert_runs_alike(exe: &Path, native_out: &Output, km_out: &Output) {
    assert_eq!(
        text(&km_out.stdout),
        text(&native_out.stdout),
        "{} output differs from native; km stderr: {}",
        exe.display(),
        text(&km_out.stderr)
    );
    assert_eq!(
        km_out.status.code(),
        native_out.status.code(),
        "{} exit status",
        exe.display()
    );
}

/// Like `assert_same_as_native`, for payloads that check themselves: both runs must
/// also exit 0 and print `last_line` last (so a payload that fails the same way
/// natively and under km does not pass).
pub fn assert_passes_like_native(
    exe: &Path,
    args: &[&OsStr],
    scratch_name: Option<&str>,
    last_line: &str,
) -> String {
    let out = assert_same_as_native(exe, args, scratch_name);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed: {stdout}{}",
        exe.display(),
        text(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(last_line)),
        "{}: expected the last line to start with {last_line:?}: {stdout}",
        exe.display()
    );
    stdout
}

/// Waits up to `limit` for `child` to end; kills it and fails the test past that.
pub fn wait_for(child: &mut Child, limit: Duration, who: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{who} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `shown` (what `who` printed) has, in order, a line containing
/// each of `expected`. A run of spaces counts as one: gdb pads its tables to
/// their widest entry (`info threads` to the longest thread id, so to how many
/// digits the pids have).
pub fn assert_lines_in_order(shown: &str, who: &str, expected: &[&str]) {
    let squeeze = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if !(c == ' ' && out.ends_with(' ')) {
                out.push(c);
            }
        }
        out
    };
    let lines: Vec<String> = shown.lines().map(squeeze).collect();
    let mut at = 0;
    for want in expected {
        let want = squeeze(want);
        match lines[at..].iter().position(|l| l.contains(&want)) {
            Some(i) => at += i + 1,
            None => panic!("{who}: expected a line with {want:?} after line {at} in:\n{shown}"),
        }
    }
}

/// What a gdb stub sent on `s` up to the end of its first whole reply packet
/// (`$...#xx`), acknowledgements included (a stub may send its `+` and the reply
/// apart), or up to the end of the stream, or the stream's read timeout.
pub fn read_reply(s: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.iter().position(|&b| b == b'$').is_some_and(|d| {
        got[d..]
            .iter()
            .position(|&b| b == b'#')
            .is_some_and(|h| got.len() >= d + h + 3)
    }) {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A TCP port on 127.0.0.1 free at the time of asking (for km's gdb stub), and
/// never one this test process handed out before: the host may give a port just
/// released to the next bind, and two tests would then race for it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Writes an executable file at `path` holding `contents`, extended (sparse) to
/// `size` bytes when that is larger. A helper process writes it: a file this
/// multi-threaded test process held open for writing could be inherited by a
/// child another test forks at that moment, and exec of it would then fail with
/// ETXTBSY until that child execs.
pub fn write_executable(path: &Path, contents: &[u8], size: u64) {
    use std::io::Write;
    let size = size.max(contents.len() as u64);
    let mut writer = Command::new("sh")
        .args([
            "-ec",
            r#"cat > "$0"; truncate -s "$1" "$0"; chmod 755 "$0""#,
        ])
        .arg(path)
        .arg(size.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawning sh to write an executable");
    writer.stdin.take().unwrap().write_all(contents).unwrap();
    let status = writer.wait().unwrap();
    assert!(status.success(), "writing {}: {status}", path.display());
}
