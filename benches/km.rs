//! `cargo bench`: km next to native, measured in the same run.
//!
//! - start-up: wall time from spawning to exit of a static hello, native vs under km;
//! - syscall: time per forwarded getppid (loop of N calls minus a loop of 0), native vs
//!   km, next to a bare KVM_RUN round trip (a guest `out` loop on km's own VM set-up),
//!   which is the floor for any exit-based syscall; and getpid, which km's landing pad
//!   answers in the guest without an exit;
//! - threads: pthread_create + pthread_join latency, and a two-thread futex ping-pong
//!   round trip, native vs km; open+close of /dev/null spread over 20 threads vs
//!   the same calls in 1 thread, natively and under km (the syscalls of threads
//!   run in parallel);
//! - memory: km's peak resident size minus the native process's, for a static
//!   hello and for `python3 -c`, each read while the program waits for input;
//! - clock: clock_gettime(CLOCK_MONOTONIC) from km's vDSO vs Linux's;
//! - first touch: writing one byte to each page of a fresh 256 MiB anonymous
//!   mapping, native vs km;
//! - CPU-bound loops, timed by the payload itself so that start-up is excluded
//!   (`benches/spin.c`, medians of 5, native and km runs interleaved): integer
//!   mixing in registers, and a pointer chase through a 64 MiB buffer that misses
//!   the caches and the TLB, native vs km (`-- cpu`: only these; km maps the
//!   buffer with 2 MiB pages that the host backs with transparent huge pages,
//!   while natively, where THP is `madvise` only, it gets 4 KiB pages);
//! - System V IPC: a semop that does not block, a msgsnd + msgrcv pair, and a
//!   semaphore ping-pong round trip between two processes (each side blocking in
//!   semop until the other posts), native vs km (`cargo bench --bench km --
//!   sysvipc`: only these);
//! - signal waits: how long after pthread_kill a thread waiting in sigsuspend,
//!   sigwaitinfo, sigtimedwait or a signalfd read returns (medians of 300 rounds,
//!   `tests/payloads/sigwake.c`), native vs km (`-- signals`: only these);
//! - processes: a fork + _exit + waitpid loop, fork + execve (of a static program
//!   that exits at once) + waitpid, posix_spawn + waitpid, the floor of a fork
//!   for any monitor with a VM per process (`kvmfork.c`, run natively: the child
//!   makes a VM, a memslot and a vCPU, and reports as km's children do, before
//!   their teardown; `kvmfork.c run`: the child also sets CPUID and registers and
//!   runs its guest to a first exit), and the start-up of Debian's dynamically
//!   linked `python3 -c pass`, native vs km, and against its budget: native plus 1.2x
//!   its syscall count (from `km --stats`) times km's per-syscall cost in this run;
//! - snapshots: a python3 that imported json, asyncio, sqlite3, email and decimal,
//!   restored from its snapshot vs started cold under km (to its exit after its
//!   first output, and to the first byte of that output), its
//!   restore to its first instruction (km's `--stats`), and the restore of a
//!   payload with 1 GiB of touched memory vs one with 10 MiB, with the snapshots'
//!   write time and size (`cargo bench --bench km -- snapshot`: only these;
//!   `-- threads`: only the thread create+join and ping-pong lines; `-- forks`:
//!   only the fork, exec and spawn lines; `-- python`: only km's forwarded getppid,
//!   python's RSS and its start-up against the budget).
//!
//! - redis: redis-benchmark (native, loopback) against Debian's redis-server under km
//!   and natively, SET and GET requests per second (skipped, saying so, without
//!   redis-server and redis-benchmark).
//!
//! A KVM exit costs several times more on a loaded host, so each km figure is also
//! given in bare KVM exits measured in the same run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use km::guest::vm::Vm;
use km::kvm::Exit;
use km::memory::{Growth, HUGE_PAGE_SIZE, RegionKind};

const STARTUP_RUNS: usize = 40;
const SYSCALLS: u64 = 20_000;
const SYSCALL_RUNS: usize = 5;
const BARE_EXITS: u32 = 20_000;
const THREAD_CREATES: u64 = 500;
const PINGPONGS: u64 = 2_000;
const FORKS: u64 = 200;
const SEMOPS: u64 = 5_000;
const MSG_PAIRS: u64 = 2_000;
const SEM_PINGPONGS: u64 = 1_000;
const CLOCK_READS: u64 = 2_000_000;
/// open+close pairs of the spread-over-threads row, in all.
const FILE_CALLS: u64 = 8_000;
const SPREAD_THREADS: u32 = 20;
const RSS_RUNS: usize = 3;
const PYTHON_RUNS: usize = 10;
/// 256 MiB of 4 KiB pages.
const TOUCHED_PAGES: u64 = 65_536;
/// Runs of each CPU-bound loop, native and under km each.
const CPU_RUNS: usize = 5;
/// xorshift rounds of `spin alu`: about 0.4 s natively here.
const ALU_ROUNDS: u64 = 200_000_000;
/// Pointer-chase steps of `spin mem`: about 0.4 s natively here.
const MEM_STEPS: u64 = 2_000_000;
const SNAPSHOT_RUNS: usize = 10;
const SMALL_MIB: u64 = 10;
const LARGE_MIB: u64 = 1024;

fn build(out: &Path, src: &str, name: &str) -> PathBuf {
    let exe = out.join(name);
    let ok = Command::new("musl-gcc")
        .args(["-static", "-O2", "-pthread", "-o"])
        .arg(&exe)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(src))
        .status()
        .expect("musl-gcc (Debian package musl-tools) is needed to build the benchmark payloads");
    assert!(ok.success(), "building {src} failed");
    exe
}

/// The km cargo built for this benchmark (static, .cargo/config.toml).
fn km() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_km"))
}

/// Median wall time in seconds of `runs` runs of `cmd`.
fn median_secs(cmd: &[&std::ffi::OsStr], runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(cmd[0])
                .args(&cmd[1..])
                .stdout(Stdio::null())
                .status()
                .expect("spawn");
            assert!(status.success(), "{cmd:?} failed: {status}");
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// Median of `cmd`'s wall time from its spawn to the first byte it writes to
/// its standard output (it must then exit 0), in seconds.
fn median_first_output_secs(cmd: &[&std::ffi::OsStr], runs: usize) -> f64 {
    use std::io::Read;
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let mut child = Command::new(cmd[0])
                .args(&cmd[1..])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut out = child.stdout.take().expect("stdout");
            let mut first = [0u8; 1];
            out.read_exact(&mut first)
                .unwrap_or_else(|e| panic!("{cmd:?} said nothing: {e}"));
            let took = start.elapsed().as_secs_f64();
            std::io::copy(&mut out, &mut std::io::sink()).expect("reading stdout");
            let status = child.wait().expect("wait");
            assert!(status.success(), "{cmd:?} failed: {status}");
            took
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

/// Nanoseconds per iteration of `exe [mode] N` run through `prefix` (empty =
/// native): the run with N iterations minus the run with none, divided by N.
fn per_iteration_ns(prefix: &[&std::ffi::OsStr], exe: &Path, mode: Option<&str>, n: u64) -> f64 {
    let run = |n: u64| {
        let n = n.to_string();
        let mut cmd = prefix.to_vec();
        cmd.push(exe.as_os_str());
        if let Some(mode) = mode {
            cmd.push(mode.as_ref());
        }
        cmd.push(n.as_ref());
        median_secs(&cmd, SYSCALL_RUNS)
    };
    (run(n) - run(0)) * 1e9 / n as f64
}

/// Nanoseconds per bare KVM_RUN round trip: a user-mode `out; jmp` loop.
fn bare_exit_ns() -> f64 {
    const CODE: u64 = 0x40_0000;
    let mut vm = Vm::new(None, None).expect("VM");
    let region = vm
        .reserve(RegionKind::Image, CODE, HUGE_PAGE_SIZE, Growth::Up)
        .expect("region");
    vm.commit(region, CODE..CODE + 0x1000).expect("commit");
    vm.protect(CODE..CODE + 0x1000, libc::PROT_READ | libc::PROT_EXEC)
        .expect("protect");
    // out %al, $0x10; jmp back to the out
    vm.mem
        .write_bytes(CODE, &[0xe6, 0x10, 0xeb, 0xfc])
        .expect("code");
    let mut vcpu = vm.create_vcpu(0).expect("vcpu");
    vcpu.start(CODE, CODE + 0x800).expect("start");
    let mut exit = || assert_eq!(vcpu.run_to_exit().expect("KVM_RUN"), Exit::Io(0x10));
    (0..100).for_each(|_| exit());
    let start = Instant::now();
    (0..BARE_EXITS).for_each(|_| exit());
    start.elapsed().as_secs_f64() * 1e9 / BARE_EXITS as f64
}

/// Peak resident size in KiB of `cmd` (run through `prefix`): the program says
/// something on stdout, then waits for the end of its input, and its VmHWM is
/// read in between; the median of [`RSS_RUNS`] runs.
fn peak_rss_kib(prefix: &[&std::ffi::OsStr], cmd: &[&std::ffi::OsStr]) -> u64 {
    use std::io::Read;
    let mut peaks: Vec<u64> = (0..RSS_RUNS)
        .map(|_| {
            let all = [prefix, cmd].concat();
            let mut child = Command::new(all[0])
                .args(&all[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn");
            let mut first = [0u8; 1];
            let mut out = child.stdout.take().expect("stdout");
            out.read_exact(&mut first)
                .unwrap_or_else(|e| panic!("{all:?} said nothing: {e}"));
            let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .expect("/proc/PID/status");
            let peak = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .expect("VmHWM in /proc/PID/status");
            drop(child.stdin.take());
            std::io::copy(&mut out, &mut std::io::sink()).expect("reading stdout");
            let ended = child.wait().expect("wait");
            assert!(ended.success(), "{all:?} failed: {ended}");
            peak
        })
        .collect();
    peaks.sort_unstable();
    peaks[RSS_RUNS / 2]
}

/// km's own resident size over native for `cmd`.
fn rss_overhead(label: &str, km: &std::ffi::OsStr, cmd: &[&std::ffi::OsStr]) {
    let native = peak_rss_kib(&[], cmd);
    let under_km = peak_rss_kib(&[km], cmd);
    println!(
        "peak RSS ({label}, median of {RSS_RUNS}): native {:.1} MiB, km {:.1} MiB, km's overhead {:.1} MiB",
        native as f64 / 1024.0,
        under_km as f64 / 1024.0,
        (under_km as f64 - native as f64) / 1024.0
    );
}

/// The `--stats` report of km running `cmd` (written to a log file in `dir`).
fn stats_report(km: &std::ffi::OsStr, cmd: &[&std::ffi::OsStr], dir: &Path) -> String {
    let log = dir.join("stats.log");
    let _ = std::fs::remove_file(&log);
    let status = Command::new(km)
        .arg("--stats")
        .arg(format!("--km-log-to={}", log.display()))
        .args(cmd)
        .stdout(Stdio::null())
        .status()
        .expect("spawn");
    assert!(
        status.success(),
        "{cmd:?} under km --stats failed: {status}"
    );
    std::fs::read_to_string(&log).expect("the --stats report")
}

/// The number of syscalls `cmd` makes under km, from its `--stats` report.
fn syscall_count(km: &std::ffi::OsStr, cmd: &[&std::ffi::OsStr], dir: &Path) -> u64 {
    stats_report(km, cmd, dir)
        .lines()
        .find_map(|l| l.trim().strip_prefix("syscalls: "))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .expect("a syscall count in the --stats report")
}

/// Writes a snapshot with `cmd` (which the snapshot ends); returns the seconds
/// it took and the file's size and allocated bytes.
fn take_snapshot(km: &std::ffi::OsStr, snap: &Path, cmd: &[&std::ffi::OsStr]) -> (f64, u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let _ = std::fs::remove_file(snap);
    let start = Instant::now();
    let status = Command::new("bash")
        .args(["-c", common::ONLY_STDIO, "bash"])
        .arg(km)
        .arg(format!("--snapshot={}", snap.display()))
        .args(cmd)
        .stdout(Stdio::null())
        .status()
        .expect("spawn km");
    let took = start.elapsed().as_secs_f64();
    assert!(status.success(), "{cmd:?} under km failed: {status}");
    let meta = std::fs::metadata(snap).expect("the snapshot file");
    (took, meta.len(), meta.blocks() * 512)
}

/// Restore of a python3 that imported its libraries vs its cold start under km.
fn python_snapshot(out: &Path, km: &std::ffi::OsStr) {
    let python = Path::new("/usr/bin/python3").as_os_str();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/snappy.py");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).as_os_str();
    let snap = out.join("python.kmsnap");
    let cold = median_secs(
        &[km, python, script.as_os_str(), "cold".as_ref()],
        PYTHON_RUNS,
    );
    let (write, size, allocated) = take_snapshot(
        km,
        &snap,
        &[python, script.as_os_str(), "snap".as_ref(), repo],
    );
    let restore = median_secs(&[km, snap.as_os_str()], SNAPSHOT_RUNS);
    let first = first_instruction_ms(km, &snap, out);
    let cold_output = median_first_output_secs(
        &[km, python, script.as_os_str(), "cold".as_ref()],
        PYTHON_RUNS,
    );
    let restore_output = median_first_output_secs(&[km, snap.as_os_str()], SNAPSHOT_RUNS);
    println!(
        "snapshot (python3 with json, asyncio, sqlite3, email, decimal, median of {SNAPSHOT_RUNS}): \
         cold start to first output {:.1} ms, restore to first output {:.1} ms, ratio {:.2}; \
         restore to first instruction {first:.1} ms (km's --stats, from km's start); \
         snapshot written in {:.0} ms, {:.1} MiB file, {:.1} MiB allocated",
        cold * 1e3,
        restore * 1e3,
        restore / cold,
        write * 1e3,
        size as f64 / (1 << 20) as f64,
        allocated as f64 / (1 << 20) as f64
    );
    println!(
        "snapshot (the same python3 to the first byte of its output, not to its exit, median of {SNAPSHOT_RUNS}): \
         cold start {:.1} ms, restore {:.1} ms, ratio {:.2}",
        cold_output * 1e3,
        restore_output * 1e3,
        restore_output / cold_output
    );
}

/// Median of `km --stats SNAP`'s time from its start to the restored payload's
/// first instruction, in ms.
fn first_instruction_ms(km: &std::ffi::OsStr, snap: &Path, dir: &Path) -> f64 {
    let mut times: Vec<f64> = (0..SNAPSHOT_RUNS)
        .map(|_| {
            stats_report(km, &[snap.as_os_str()], dir)
                .lines()
                .find_map(|l| l.trim().strip_prefix("restored: first instruction after "))
                .and_then(|rest| rest.trim_end_matches(" ms").parse().ok())
                .expect("the restore's time to its first instruction in the --stats report")
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[SNAPSHOT_RUNS / 2]
}

/// Restore time with 1 GiB of touched memory vs 10 MiB.
fn memory_snapshots(out: &Path, km: &std::ffi::OsStr, snapmem: &Path) {
    let mut restores = Vec::new();
    for mib in [SMALL_MIB, LARGE_MIB] {
        let snap = out.join(format!("mem{mib}.kmsnap"));
        let mib_arg = mib.to_string();
        let (write, _, allocated) =
            take_snapshot(km, &snap, &[snapmem.as_os_str(), mib_arg.as_ref()]);
        let restore = median_secs(&[km, snap.as_os_str()], SNAPSHOT_RUNS);
        println!(
            "snapshot ({mib} MiB touched): written in {:.0} ms ({:.0} MiB/s), {:.1} MiB allocated; restore {:.1} ms",
            write * 1e3,
            allocated as f64 / (1 << 20) as f64 / write,
            allocated as f64 / (1 << 20) as f64,
            restore * 1e3
        );
        restores.push(restore);
        let _ = std::fs::remove_file(&snap);
    }
    println!(
        "snapshot restore, {LARGE_MIB} MiB vs {SMALL_MIB} MiB touched: ratio {:.2}",
        restores[1] / restores[0]
    );
}

/// Thread create+join and the futex ping-pong, native vs km, also in bare exits.
fn thread_rows(km: &std::ffi::OsStr, threads: &Path, bare: f64) {
    for (label, mode, n) in [
        ("thread create+join", "create", THREAD_CREATES),
        ("futex ping-pong round trip", "pingpong", PINGPONGS),
    ] {
        let native = per_iteration_ns(&[], threads, Some(mode), n);
        let under_km = per_iteration_ns(&[km], threads, Some(mode), n);
        println!(
            "{label} (x {n}): native {:.1} us, km {:.1} us ({:.1} bare exits), ratio {:.1}x",
            native / 1e3,
            under_km / 1e3,
            under_km / bare,
            under_km / native
        );
    }
}

/// The nanoseconds `cmd` reports on its stdout (it must then exit 0).
fn reported_ns(cmd: &[&std::ffi::OsStr]) -> f64 {
    let run = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("spawn");
    assert!(run.status.success(), "{cmd:?} failed: {}", run.status);
    String::from_utf8_lossy(&run.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{cmd:?} reported no nanoseconds: {e}"))
}

/// The CPU-bound loops of `spin.c`, native vs km, as timed by the payload
/// (start-up excluded): the median of [`CPU_RUNS`] runs each, interleaved.
fn cpu_rows(km: &std::ffi::OsStr, spin: &Path) {
    for (label, mode, n) in [
        ("alu", "alu", ALU_ROUNDS),
        ("mem, 64 MiB pointer chase", "mem", MEM_STEPS),
    ] {
        let n = n.to_string();
        let cmd = [spin.as_os_str(), mode.as_ref(), n.as_ref()];
        let (mut native, mut under_km): (Vec<f64>, Vec<f64>) = (0..CPU_RUNS)
            .map(|_| (reported_ns(&cmd), reported_ns(&[&[km][..], &cmd].concat())))
            .unzip();
        native.sort_by(f64::total_cmp);
        under_km.sort_by(f64::total_cmp);
        let (native, under_km) = (native[CPU_RUNS / 2], under_km[CPU_RUNS / 2]);
        println!(
            "CPU-bound loop ({label}, x {n}, excluding start-up, median of {CPU_RUNS}): native {:.1} ms, km {:.1} ms, ratio {:.2}x",
            native / 1e6,
            under_km / 1e6,
            under_km / native
        );
    }
}

fn fork_row(km: &std::ffi::OsStr, forks: &Path, kvmfork: &Path, bare: f64) {
    let mut fork_native = 0.0;
    let mut fork_km = 0.0;
    for (label, mode) in [
        ("fork+exit+wait", None),
        ("fork+execve+wait (static)", Some("exec")),
        ("posix_spawn+wait (static)", Some("spawn")),
    ] {
        let native = per_iteration_ns(&[], forks, mode, FORKS);
        let under_km = per_iteration_ns(&[km], forks, mode, FORKS);
        println!(
            "{label} (x {FORKS}): native {:.1} us, km {:.1} us ({:.1} bare exits), ratio {:.1}x",
            native / 1e3,
            under_km / 1e3,
            under_km / bare,
            under_km / native
        );
        if mode.is_none() {
            (fork_native, fork_km) = (native, under_km);
        }
    }
    for (mode, what) in [
        (
            None,
            "fork floor with a VM per process (kvmfork.c, native: a fork whose child makes a VM, a memslot and a vCPU)",
        ),
        (
            Some("run"),
            "fork floor with a VM per process that runs (kvmfork.c run: the child also sets CPUID and registers and runs its guest to a first exit, two pages touched)",
        ),
    ] {
        let floor = per_iteration_ns(&[], kvmfork, mode, FORKS);
        println!(
            "{what}: {:.1} us, {:.1}x native fork+exit+wait; km's fork+exit+wait {:.1}x this floor",
            floor / 1e3,
            floor / fork_native,
            fork_km / floor
        );
    }
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-payloads");
    std::fs::create_dir_all(&out).expect("payload dir");
    let hello = build(&out, "examples/hello.c", "hello");
    let getppid = build(&out, "benches/getppid.c", "getppid");
    let threads = build(&out, "benches/threads.c", "threads");
    let forks = build(&out, "benches/forks.c", "forks");
    let kvmfork = build(&out, "benches/kvmfork.c", "kvmfork");
    let clock = build(&out, "benches/clock.c", "clock");
    let touch = build(&out, "benches/touch.c", "touch");
    let sysvipc = build(&out, "benches/sysvipc.c", "sysvipc");
    let spin = build(&out, "benches/spin.c", "spin");
    let km = km();
    let km = km.as_os_str();
    // `cargo bench --bench km -- snapshot`: the snapshot lines only.
    if std::env::args().any(|a| a == "snapshot") {
        python_snapshot(&out, km);
        memory_snapshots(&out, km, &build(&out, "benches/snapmem.c", "snapmem"));
        return;
    }
    // `cargo bench --bench km -- sysvipc`: the System V IPC lines only.
    if std::env::args().any(|a| a == "sysvipc") {
        sysv_ipc(km, &sysvipc, bare_exit_ns());
        return;
    }

    // `cargo bench --bench km -- signals`: the signal-wait lines only.
    if std::env::args().any(|a| a == "signals") {
        signal_waits(km, &out);
        return;
    }

    // `cargo bench --bench km -- forks`: the fork line only.
    if std::env::args().any(|a| a == "forks") {
        fork_row(km, &forks, &kvmfork, bare_exit_ns());
        return;
    }

    // `cargo bench --bench km -- python`: the forwarded syscall's cost (the
    // budget's unit), python's RSS and its start-up against the budget only.
    if std::env::args().any(|a| a == "python") {
        let km_sc = per_iteration_ns(&[km], &getppid, None, SYSCALLS);
        println!("syscall (getppid x {SYSCALLS}): km {km_sc:.0} ns");
        python_rss(km);
        python_startup(km, &out, km_sc);
        return;
    }

    // `cargo bench --bench km -- cpu`: the CPU-bound loop lines only.
    if std::env::args().any(|a| a == "cpu") {
        cpu_rows(km, &spin);
        return;
    }

    // `cargo bench --bench km -- threads`: the thread lines only.
    if std::env::args().any(|a| a == "threads") {
        thread_rows(km, &threads, bare_exit_ns());
        return;
    }

    let native_start = median_secs(&[hello.as_os_str()], STARTUP_RUNS);
    let km_start = median_secs(&[km, hello.as_os_str()], STARTUP_RUNS);
    println!(
        "start-up (hello, musl static, median of {STARTUP_RUNS}): native {:.2} ms, km {:.2} ms, ratio {:.1}x",
        native_start * 1e3,
        km_start * 1e3,
        km_start / native_start
    );

    let bare = bare_exit_ns();
    let native_sc = per_iteration_ns(&[], &getppid, None, SYSCALLS);
    let km_sc = per_iteration_ns(&[km], &getppid, None, SYSCALLS);
    println!(
        "syscall (getppid x {SYSCALLS}): native {:.0} ns, km {:.0} ns, bare KVM exit {:.0} ns; km/native {:.0}x, km/bare-exit {:.2}",
        native_sc,
        km_sc,
        bare,
        km_sc / native_sc,
        km_sc / bare
    );
    let native = per_iteration_ns(&[], &getppid, Some("getpid"), SYSCALLS);
    let under_km = per_iteration_ns(&[km], &getppid, Some("getpid"), SYSCALLS);
    println!(
        "syscall answered in the guest (getpid x {SYSCALLS}): native {native:.0} ns, km {under_km:.0} ns; km/native {:.1}x, km/forwarded getppid {:.3}",
        under_km / native,
        under_km / km_sc
    );

    thread_rows(km, &threads, bare);

    sysv_ipc(km, &sysvipc, bare);

    signal_waits(km, &out);

    let spread = format!("files-{SPREAD_THREADS}");
    let mut ratios = Vec::new();
    for prefix in [&[][..], &[km][..]] {
        let one = per_iteration_ns(prefix, &threads, Some("files-1"), FILE_CALLS);
        let many = per_iteration_ns(prefix, &threads, Some(&spread), FILE_CALLS);
        ratios.push((one, many));
    }
    println!(
        "open+close x {FILE_CALLS} in {SPREAD_THREADS} threads vs 1 thread: native {:.2} us vs {:.2} us per pair (ratio {:.2}), km {:.1} us vs {:.1} us (ratio {:.2})",
        ratios[0].1 / 1e3,
        ratios[0].0 / 1e3,
        ratios[0].1 / ratios[0].0,
        ratios[1].1 / 1e3,
        ratios[1].0 / 1e3,
        ratios[1].1 / ratios[1].0
    );

    let idle = build(&out, "benches/idle.c", "idle");
    rss_overhead("static hello", km, &[idle.as_os_str()]);
    python_rss(km);

    let native = per_iteration_ns(&[], &clock, None, CLOCK_READS);
    let under_km = per_iteration_ns(&[km], &clock, None, CLOCK_READS);
    println!(
        "clock_gettime (vDSO, x {CLOCK_READS}): native {native:.1} ns, km {under_km:.1} ns, ratio {:.1}x",
        under_km / native
    );

    let native = per_iteration_ns(&[], &touch, None, TOUCHED_PAGES);
    let under_km = per_iteration_ns(&[km], &touch, None, TOUCHED_PAGES);
    println!(
        "first touch (256 MiB, per 4 KiB page): native {:.2} us, km {:.2} us, ratio {:.1}x",
        native / 1e3,
        under_km / 1e3,
        under_km / native
    );

    cpu_rows(km, &spin);

    fork_row(km, &forks, &kvmfork, bare);

    redis(km);

    python_snapshot(&out, km);
    let snapmem = build(&out, "benches/snapmem.c", "snapmem");
    memory_snapshots(&out, km, &snapmem);

    python_startup(km, &out, km_sc);
}

/// km's peak RSS over native's for a python3 waiting for input.
fn python_rss(km: &std::ffi::OsStr) {
    rss_overhead(
        "python3 -c",
        km,
        &[
            "/usr/bin/python3".as_ref(),
            "-c".as_ref(),
            "import sys; print('up', flush=True); sys.stdin.read()".as_ref(),
        ],
    );
}

/// `python3 -c pass` native vs km, and against its budget: native plus 1.2x its
/// syscall count times `km_sc`, km's cost per forwarded syscall in this run.
fn python_startup(km: &std::ffi::OsStr, out: &Path, km_sc: f64) {
    let python = Path::new("/usr/bin/python3");
    let args = [python.as_os_str(), "-c".as_ref(), "pass".as_ref()];
    let native = median_secs(&args, PYTHON_RUNS);
    let under_km = median_secs(&[&[km][..], &args[..]].concat(), PYTHON_RUNS);
    let budget = native + 1.2 * syscall_count(km, &args, out) as f64 * km_sc / 1e9;
    println!(
        "start-up (python3 -c pass, dynamic, median of {PYTHON_RUNS}): native {:.1} ms, km {:.1} ms, ratio {:.1}x; budget {:.1} ms, km/budget {:.2}",
        native * 1e3,
        under_km * 1e3,
        under_km / native,
        budget * 1e3,
        under_km / budget
    );
}

/// redis-benchmark requests per test, each server.
const REDIS_REQUESTS: u64 = 10_000;
/// How long a redis-server may take to accept connections.
const REDIS_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// redis-benchmark's SET and GET requests per second against redis-server started
/// through `prefix` (empty = native), on a free loopback port.
/// Rounds per kind of wait in the signal-wait rows.
const SIGNAL_WAKES: u64 = 300;

/// The median wake-up time of each kind of signal wait (`sigwake.c` prints them
/// to stderr as "KIND: median N us, p90 M us"), native and under km.
fn signal_waits(km: &std::ffi::OsStr, out: &Path) {
    let exe = build(out, "tests/payloads/sigwake.c", "sigwake");
    let medians = |prefix: &[&std::ffi::OsStr]| -> Vec<(String, f64)> {
        let (program, args) = match prefix {
            [] => (exe.as_os_str(), vec![]),
            [first, rest @ ..] => (*first, [rest, &[exe.as_os_str()]].concat()),
        };
        let run = Command::new(program)
            .args(args)
            .arg(SIGNAL_WAKES.to_string())
            .arg("1000")
            .stdout(Stdio::null())
            .output()
            .expect("spawn sigwake");
        assert!(run.status.success(), "sigwake under {prefix:?} failed");
        String::from_utf8_lossy(&run.stderr)
            .lines()
            .filter_map(|l| {
                let (kind, rest) = l.split_once(": median ")?;
                let us = rest.split(' ').next()?.parse().ok()?;
                Some((kind.to_string(), us))
            })
            .collect()
    };
    let native = medians(&[]);
    let under_km = medians(&[km]);
    for ((kind, n), (_, k)) in native.iter().zip(&under_km) {
        println!(
            "signal wait ({kind}, wake-up after pthread_kill, median of {SIGNAL_WAKES}): native {n:.0} us, km {k:.0} us, ratio {:.1}x",
            k / n
        );
    }
}

/// The System V IPC rows: per operation, native vs km, and in bare exits.
fn sysv_ipc(km: &std::ffi::OsStr, exe: &Path, bare: f64) {
    for (label, mode, n) in [
        ("semop, not blocking", "semop", SEMOPS),
        ("msgsnd + msgrcv, 64 bytes", "msg", MSG_PAIRS),
        (
            "semaphore ping-pong between two processes",
            "pingpong",
            SEM_PINGPONGS,
        ),
    ] {
        let native = per_iteration_ns(&[], exe, Some(mode), n);
        let under_km = per_iteration_ns(&[km], exe, Some(mode), n);
        println!(
            "{label} (x {n}): native {:.2} us, km {:.1} us ({:.1} bare exits), ratio {:.0}x",
            native / 1e3,
            under_km / 1e3,
            under_km / bare,
            under_km / native
        );
    }
}

fn redis_rps(prefix: &[&std::ffi::OsStr]) -> Vec<(String, f64)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let mut cmd = prefix.to_vec();
    cmd.extend(
        [
            "/usr/bin/redis-server",
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(std::ffi::OsStr::new),
    );
    let mut server = Command::new(cmd[0])
        .args(&cmd[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning redis-server");
    let started = Instant::now();
    while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
        assert!(
            started.elapsed() < REDIS_START_LIMIT,
            "redis-server ({cmd:?}) did not listen within {REDIS_START_LIMIT:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-t",
            "set,get",
            "-P",
            "1",
            "-q",
            "--csv",
        ])
        .arg("-n")
        .arg(REDIS_REQUESTS.to_string())
        .output()
        .expect("running redis-benchmark");
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "redis-benchmark failed: {out:?}");
    // "SET","108695.65",...: the test's name, then requests per second.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|f| f.trim_matches('"'));
            let test = fields.next()?.to_string();
            let rps = fields.next()?.parse().ok()?;
            Some((test, rps))
        })
        .collect()
}

fn redis(km: &std::ffi::OsStr) {
    let missing = ["/usr/bin/redis-server", "/usr/bin/redis-benchmark"]
        .into_iter()
        .find(|p| !Path::new(p).exists());
    if let Some(missing) = missing {
        println!("redis: skipped, {missing} is missing (Debian package redis-server)");
        return;
    }
    let native = redis_rps(&[]);
    let under_km = redis_rps(&[km]);
    for (test, native_rps) in &native {
        let Some((_, km_rps)) = under_km.iter().find(|(t, _)| t == test) else {
            continue;
        };
        println!(
            "redis-benchmark {test} (x {REDIS_REQUESTS}, -P 1, 50 clients): native {native_rps:.0} req/s, km {km_rps:.0} req/s, km/native {:.3}",
            km_rps / native_rps
        );
    }
}
