//! The /proc rule: a payload that tries every way into km's own /proc (its memory,
//! mappings, descriptors) gets EACCES or its own view, another payload's km shows
//! only what `ps` reads, and gdb's host I/O reads regular files and the payload's
//! own /proc only.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{free_port, km, native, payload, run, scratch, text, wait_for};

/// The lines in which km must differ from Linux: each way into km's memory and
/// the files that reveal km itself are refused, and stat hides km's addresses.
const REFUSED: &str = "\
/proc/self/mem O_RDWR: EACCES
/proc/self/mem O_RDONLY: EACCES
/proc/<getpid()>/mem: EACCES
/proc/<gettid()>/mem: EACCES
/proc/self/task/<tid>/mem: EACCES
/proc/thread-self/mem: EACCES
/proc//self/mem: EACCES
/proc/./self/mem: EACCES
/proc/self/../self/mem: EACCES
openat(/proc/self, mem): EACCES
/proc/self/fd/<O_PATH of /proc/self>/mem: EACCES
a symlink to /proc/self/mem: EACCES
chdir(/proc/self) then mem: EACCES
openat(/proc/self, pagemap): EACCES
openat(/proc/self, syscall): EACCES
openat(/proc/self, stack): EACCES
openat(/proc/self, map_files): EACCES
openat(/proc/self, ns/mnt): EACCES
openat(/proc/self, wchan): EACCES
openat(/proc/self, mem): EACCES
/proc/self/stat startcode: 0
";

/// The lines of `out` outside its `maps begin` .. `maps end` block, and the block.
fn split_maps(out: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut lines, mut maps, mut inside) = (Vec::new(), Vec::new(), false);
    for line in out.lines() {
        match line {
            "maps begin" => inside = true,
            "maps end" => inside = false,
            _ if inside => maps.push(line),
            _ => lines.push(line),
        }
    }
    (lines, maps)
}

fn run_escapes(libc: &str) {
    let exe = payload(&format!("procescape.{libc}"));
    let dir = scratch(&format!("procescape-{libc}"));
    let under_km = run(km().arg(&exe).current_dir(&dir));
    let linux = run(native(&exe).current_dir(&dir));
    let (km_out, linux_out) = (text(&under_km.stdout), text(&linux.stdout));
    assert!(
        under_km.status.success(),
        "{libc}: {km_out}{}",
        text(&under_km.stderr)
    );
    let (lines, maps) = split_maps(&km_out);
    let (linux_lines, _) = split_maps(&linux_out);

    // Every refusal is there, and Linux itself lets the process open each of them.
    for want in REFUSED.lines() {
        assert!(
            lines.contains(&want),
            "{libc}: missing {want:?} in\n{km_out}"
        );
        let (what, _) = want.rsplit_once(": ").unwrap();
        assert!(
            linux_lines
                .iter()
                .any(|l| l.starts_with(&format!("{what}: ")) && *l != want),
            "{libc}: Linux gives {what:?} the same: the check proves nothing\n{linux_out}"
        );
    }
    // Everything else (the guest's maps, descriptors, exe, threads, re-exec through
    // /proc/self/exe) is what Linux shows the process.
    let refused: Vec<&str> = REFUSED
        .lines()
        .map(|l| l.rsplit_once(": ").unwrap().0)
        .collect();
    let same = |l: &&&str| !refused.iter().any(|r| l.starts_with(&format!("{r}: ")));
    let km_rest: Vec<&&str> = lines.iter().filter(same).collect();
    let linux_rest: Vec<&&str> = linux_lines.iter().filter(same).collect();
    assert_eq!(km_rest, linux_rest, "{libc}: differs from Linux");
    assert!(km_out.ends_with("re-executed through /proc/self/exe\n"));

    // The maps are the guest's: its program, none of km's.
    let km_exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_km")).unwrap();
    let km_exe = km_exe.to_string_lossy();
    assert!(maps.iter().any(|l| l.ends_with(&*exe.to_string_lossy())));
    assert!(
        !maps
            .iter()
            .any(|l| l.contains(&*km_exe) || l.contains("[vvar]")),
        "{libc}: km's own mappings show:\n{}",
        maps.join("\n")
    );
}

#[test]
fn own_proc_escapes_get_eacces_or_the_guest_view_glibc() {
    run_escapes("glibc");
}

#[test]
fn own_proc_escapes_get_eacces_or_the_guest_view_musl() {
    run_escapes("musl");
}

/// /proc/self/environ is the environment the payload was given, not km's (which
/// may hold what `--putenv` kept from the payload).
#[test]
fn environ_is_the_payloads_not_kms() {
    let exe = payload("procescape.musl");
    let out = run(km()
        .env("PROCESCAPE_SECRET", "kept from the payload")
        .args(["--putenv", "PROCESCAPE_VISIBLE=1", "--putenv", "B=2"])
        .arg(&exe)
        .arg("environ"));
    assert_eq!(
        text(&out.stdout),
        "environ: 2 strings, visible 1, secret 0\n"
    );
    let out = run(km()
        .env("PROCESCAPE_SECRET", "given")
        .env("PROCESCAPE_VISIBLE", "1")
        .arg(&exe)
        .arg("environ"));
    assert!(text(&out.stdout).ends_with("visible 1, secret 1\n"));
}

/// Starts `procescape wait` under km and returns it once it runs.
fn waiting_payload() -> (Child, BufReader<std::process::ChildStdout>) {
    let mut other = km()
        .arg(payload("procescape.glibc"))
        .arg("wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(other.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "waiting\n");
    (other, out)
}

/// Another payload's /proc/<pid> is km's: `ps`'s files read, nothing of km's memory,
/// mappings, environment or descriptors; the same files of a process that is no km
/// read as Linux gives them.
#[test]
fn another_payloads_km_shows_only_what_ps_reads() {
    let (mut other, _out) = waiting_payload();
    let pid = other.id().to_string();
    let exe = payload("procescape.musl");
    let seen = text(&run(km().arg(&exe).args(["other", &pid])).stdout);
    let expected = "\
other cmdline: opened
other stat: opened
other status: opened
other comm: opened
other mem: EACCES
other maps: EACCES
other smaps: EACCES
other pagemap: EACCES
other environ: EACCES
other auxv: EACCES
other exe: EACCES
other fd: EACCES
other fdinfo: EACCES
other task: opened
other syscall: EACCES
other cwd: EACCES
other root: EACCES
other readlink exe: EACCES
other readlink fd/0: EACCES
other fd/0: EACCES
other task mem: EACCES
other task stat: opened
";
    assert_eq!(seen, expected);
    // A process that is not km (this test's own) passes through as on Linux.
    let me = std::process::id().to_string();
    let direct = text(&run(native(&exe).args(["other", &me])).stdout);
    let through_km = text(&run(km().arg(&exe).args(["other", &me])).stdout);
    assert_eq!(through_km, direct);
    assert!(through_km.contains("other maps: opened"));
    drop(other.stdin.take());
    assert!(wait_for(&mut other, Duration::from_secs(10), "the other km").success());
}

fn packet(body: &str) -> Vec<u8> {
    let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
    format!("${body}#{sum:02x}").into_bytes()
}

/// Sends one packet and returns the body of the reply packet.
fn request(s: &mut TcpStream, body: &str) -> String {
    s.write_all(&packet(body)).unwrap();
    let got = common::read_reply(s);
    let (_, reply) = got
        .split_once('$')
        .unwrap_or_else(|| panic!("no reply packet: {got:?}"));
    let (body, _) = reply
        .split_once('#')
        .unwrap_or_else(|| panic!("the stub closed the connection: {got:?}"));
    body.to_string()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// gdb's `vFile:open` reads regular files and the payload's own /proc views, never
/// km's memory (as /proc/<km pid>/mem, /proc/1/mem or /proc/self/mem) nor
/// anything that is not a regular file.
#[test]
fn gdb_host_io_reads_no_km_memory_and_no_special_files() {
    let port = free_port();
    let exe = payload("procescape.glibc");
    let mut server = km()
        .arg(format!("-g{port}"))
        .arg(&exe)
        .arg("wait")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for gdb") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "km ended first");
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(request(&mut s, "?").starts_with('T'));
    let open = |s: &mut TcpStream, path: &str| request(s, &format!("vFile:open:{},0,0", hex(path)));

    let km_pid = server.id();
    for refused in [
        format!("/proc/{km_pid}/mem"),
        "/proc/1/mem".into(),
        "/proc/self/mem".into(),
        format!("/proc/{km_pid}/task/{km_pid}/mem"),
        "/dev/zero".into(),
        "/proc/self/fd/0".into(),
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .to_string_lossy()
            .into(),
    ] {
        let reply = open(&mut s, &refused);
        assert!(reply.starts_with("F-1,"), "{refused}: {reply}");
    }
    // The payload's own views and regular files still open and read.
    // gdb names the payload by its pid, km's.
    for allowed in [format!("/proc/{km_pid}/maps"), exe.to_string_lossy().into()] {
        let allowed = allowed.as_str();
        let reply = open(&mut s, allowed);
        let fd = reply.strip_prefix('F').unwrap_or("-1");
        assert!(!fd.starts_with('-'), "{allowed}: {reply}");
        let read = request(&mut s, &format!("vFile:pread:{fd},10,0"));
        assert!(
            read.starts_with("F") && !read.starts_with("F-"),
            "{allowed}: {read}"
        );
        request(&mut s, &format!("vFile:close:{fd}"));
    }
    let _ = server.kill();
    let _ = server.wait();
}
