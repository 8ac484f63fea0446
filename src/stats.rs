//! `--stats`: counters of what the payload cost, printed to km's log when the
//! process exits or execs (per-syscall counts and host time, exits by kind, time
//! in KVM_RUN, memslot changes, MMU flushes, range invalidations, kicks (and those sent again), threads started on spares or new host threads, vCPUs created, time parked for gdb, and KVM's
//! own statistics read through KVM_GET_STATS_FD). A leaf every layer may use, like
//! `trace`.
//!
//! Off by default: then every counting point costs one relaxed atomic load and takes
//! no clock reading.

use std::fmt::Write as _;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::trace::{self, Sink};

static ON: AtomicBool = AtomicBool::new(false);
static SINK: OnceLock<Sink> = OnceLock::new();
/// When this km process started counting (reset in a fork child).
static SINCE: Mutex<Option<Instant>> = Mutex::new(None);

/// Turns counting on; the report goes to `sink` (km's log).
pub fn enable(sink: Sink) {
    let _ = SINK.set(sink);
    *SINCE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    ON.store(true, Ordering::Relaxed);
}

pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// A clock reading to time an event with, only when counting.
pub fn start() -> Option<Instant> {
    on().then(Instant::now)
}

/// Events counted by kind.
#[derive(Clone, Copy)]
pub enum Event {
    /// KVM_RUN returned for a syscall from the landing pad.
    SyscallExit,
    /// ... for a CPU exception from the IDT stubs.
    ExceptionExit,
    /// ... because a kick interrupted it.
    InterruptedExit,
    /// ... after a KVM single-step.
    StepExit,
    /// ... on a guest access to a host page that is not backed.
    UnbackedExit,
    /// ... on something fatal (triple fault, unbacked guest-physical access).
    FatalExit,
    /// A memslot registered or deleted (the flush's two count once, as a flush).
    MemslotChange,
    /// Every vCPU's cached translations dropped.
    MmuFlush,
    /// The translations of one range's pages dropped (a host mprotect there and back).
    MmuInvalidation,
    /// A host signal sent to a vCPU thread.
    Kick,
    /// A kick sent again: it had come before the blocking call it was to end.
    Rekick,
    /// A thread started on a spare host thread that was waiting for it.
    SpareTaken,
    /// A thread started on a host thread created for it (no spare waited).
    HostThreadStarted,
    /// A vCPU created for a thread (none was parked).
    VcpuCreated,
}

const EVENTS: usize = Event::VcpuCreated as usize + 1;

const EVENT_NAMES: [&str; EVENTS] = [
    "syscall",
    "exception",
    "interrupted",
    "single-step",
    "unbacked",
    "fatal",
    "memslot changes",
    "MMU flushes",
    "range invalidations",
    "kicks",
    "kicks sent again",
    "threads on spares",
    "on new host threads",
    "vCPUs created",
];

static COUNTS: [AtomicU64; EVENTS] = [const { AtomicU64::new(0) }; EVENTS];

pub fn count(event: Event) {
    if on() {
        COUNTS[event as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Nanoseconds spent: in KVM_RUN, parked for gdb.
#[derive(Clone, Copy)]
pub enum Span {
    InKvmRun,
    Parked,
    /// From the start of counting until a restored snapshot's first instruction.
    Restoring,
    /// From the start of counting until a program km loaded is ready to run
    /// (building the VM, loading, the vCPU, the seccomp filter; not the wait for
    /// gdb under `-g`).
    Starting,
}

static SPANS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Notes that a restored snapshot is about to run its first instruction.
pub fn restored() {
    spent_since_start(Span::Restoring);
}

/// Notes that a program km loaded is ready to run its first instruction.
pub fn started() {
    spent_since_start(Span::Starting);
}

/// Adds the time since counting started to `span`.
fn spent_since_start(span: Span) {
    spent(span, SINCE.try_lock().ok().and_then(|s| *s));
}

/// Adds the time since `start` (from [`start`]) to `span`.
pub fn spent(span: Span, start: Option<Instant>) {
    if let Some(start) = start {
        SPANS[span as usize].fetch_add(nanos(start.elapsed()), Ordering::Relaxed);
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One syscall number's count and host time.
struct SyscallTimes {
    count: AtomicU64,
    total_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl SyscallTimes {
    const fn new() -> SyscallTimes {
        SyscallTimes {
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        self.count.store(0, Ordering::Relaxed);
        self.total_ns.store(0, Ordering::Relaxed);
        self.min_ns.store(u64::MAX, Ordering::Relaxed);
        self.max_ns.store(0, Ordering::Relaxed);
    }
}

/// Syscall numbers counted one by one; larger (bad) numbers share the last entry.
const SYSCALL_SLOTS: usize = 512;

static SYSCALLS: [SyscallTimes; SYSCALL_SLOTS] = [const { SyscallTimes::new() }; SYSCALL_SLOTS];

/// Syscall `nr` was served, taking the host time since `start` (from [`start`]).
pub fn syscall_served(nr: u64, start: Option<Instant>) {
    let Some(start) = start else { return };
    let ns = nanos(start.elapsed());
    let slot =
        &SYSCALLS[usize::try_from(nr).map_or(SYSCALL_SLOTS - 1, |n| n.min(SYSCALL_SLOTS - 1))];
    slot.count.fetch_add(1, Ordering::Relaxed);
    slot.total_ns.fetch_add(ns, Ordering::Relaxed);
    slot.min_ns.fetch_min(ns, Ordering::Relaxed);
    slot.max_ns.fetch_max(ns, Ordering::Relaxed);
}

/// A KVM statistics descriptor (KVM_GET_STATS_FD) of the VM or of one vCPU.
struct KvmSource {
    vcpu: bool,
    fd: OwnedFd,
}

static SOURCES: Mutex<Vec<KvmSource>> = Mutex::new(Vec::new());
/// Set in a fork child that found [`SOURCES`] locked by a thread it did not inherit.
static SOURCES_LOST: AtomicBool = AtomicBool::new(false);

/// Keeps `fd`, a KVM statistics descriptor, to read at the report.
pub fn add_kvm_source(vcpu: bool, fd: OwnedFd) {
    if SOURCES_LOST.load(Ordering::Relaxed) {
        return;
    }
    lock_sources().push(KvmSource { vcpu, fd });
}

fn lock_sources() -> std::sync::MutexGuard<'static, Vec<KvmSource>> {
    SOURCES.lock().unwrap_or_else(|e| e.into_inner())
}

/// In a forked km: counts start again from zero, and the parent's VM is not the
/// child's.
pub fn after_fork() {
    if !on() {
        return;
    }
    restart_counts();
    // Another thread of the parent may have held the lock at the fork; it never
    // unlocks in the child, which then reports without KVM's statistics.
    match SOURCES.try_lock() {
        Ok(mut sources) => sources.clear(),
        Err(_) => SOURCES_LOST.store(true, Ordering::Relaxed),
    }
}

/// How many KVM statistics sources are kept now: those of the payload's VM,
/// before an execve in place builds the next one (see [`after_exec`]).
pub fn sources_kept() -> usize {
    if !on() {
        return 0;
    }
    lock_sources().len()
}

/// An execve replaced payload `name` in place: its report is written, and counts
/// start again from zero for the new program, whose VM's statistics are the
/// sources kept after the first `old` (see [`sources_kept`]).
pub fn after_exec(name: &str, old: usize) {
    if !on() {
        return;
    }
    report(name, "execve");
    restart_counts();
    let mut sources = lock_sources();
    let old = old.min(sources.len());
    sources.drain(..old);
}

/// Every count and span back to zero, and the wall time from now.
fn restart_counts() {
    COUNTS
        .iter()
        .chain(&SPANS)
        .for_each(|c| c.store(0, Ordering::Relaxed));
    SYSCALLS.iter().for_each(SyscallTimes::reset);
    if let Ok(mut since) = SINCE.try_lock() {
        *since = Some(Instant::now());
    }
}

/// Writes the report for payload `name` to km's log; `why`: exit, execve...
pub fn report(name: &str, why: &str) {
    if !on() {
        return;
    }
    let Some(sink) = SINK.get() else { return };
    let text = render(name, why);
    if let Err(e) = trace::write_to(sink, &text) {
        crate::eprintln_whole!("km: {name}: --stats: {e:#}");
    }
}

fn render(name: &str, why: &str) -> String {
    let wall = SINCE
        .try_lock()
        .ok()
        .and_then(|s| *s)
        .map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3);
    let span = |span: Span| SPANS[span as usize].load(Ordering::Relaxed);
    let ms = |s: Span| span(s) as f64 / 1e6;
    let counted = |e: usize| COUNTS[e].load(Ordering::Relaxed);
    let first_instruction = match (span(Span::Restoring), span(Span::Starting)) {
        (0, 0) => String::new(),
        (0, _) => format!(
            "\n  started: first instruction after {:.1} ms",
            ms(Span::Starting)
        ),
        _ => format!(
            "\n  restored: first instruction after {:.1} ms",
            ms(Span::Restoring)
        ),
    };
    let mut out = format!(
        "km stats: pid {} {name} ({why})\n  wall {wall:.1} ms, in KVM_RUN {:.1} ms, parked for gdb {:.1} ms{first_instruction}\n  exits:",
        std::process::id(),
        ms(Span::InKvmRun),
        ms(Span::Parked)
    );
    let events: Vec<String> = EVENT_NAMES
        .iter()
        .enumerate()
        .map(|(i, label)| format!("{label} {}", counted(i)))
        .collect();
    let exits = Event::MemslotChange as usize;
    let _ = writeln!(
        out,
        " {}\n  {}",
        events[..exits].join(", "),
        events[exits..].join(", ")
    );
    render_syscalls(&mut out);
    render_kvm(&mut out);
    out
}

/// One line per syscall made, most host time first.
fn render_syscalls(out: &mut String) {
    let mut rows: Vec<(usize, u64, u64, u64, u64)> = SYSCALLS
        .iter()
        .enumerate()
        .map(|(nr, s)| {
            (
                nr,
                s.count.load(Ordering::Relaxed),
                s.total_ns.load(Ordering::Relaxed),
                s.min_ns.load(Ordering::Relaxed),
                s.max_ns.load(Ordering::Relaxed),
            )
        })
        .filter(|row| row.1 > 0)
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.2));
    let (calls, total) = rows
        .iter()
        .fold((0, 0), |(c, t), row| (c + row.1, t + row.2));
    let _ = writeln!(
        out,
        "  syscalls: {calls}, host time {:.1} ms\n  {:<20} {:>8} {:>10} {:>9} {:>9} {:>9}",
        total as f64 / 1e6,
        "syscall",
        "count",
        "total ms",
        "min us",
        "avg us",
        "max us"
    );
    for (nr, count, total, min, max) in rows {
        let name = syscall_name(nr);
        let _ = writeln!(
            out,
            "  {name:<20} {count:>8} {:>10.3} {:>9.1} {:>9.1} {:>9.1}",
            total as f64 / 1e6,
            min as f64 / 1e3,
            total as f64 / count as f64 / 1e3,
            max as f64 / 1e3
        );
    }
}

fn syscall_name(nr: usize) -> String {
    if nr == SYSCALL_SLOTS - 1 {
        return format!(">={nr}");
    }
    syscalls::Sysno::new(nr).map_or_else(|| format!("#{nr}"), |s| s.name().to_string())
}

/// KVM's statistics: the VM's, then the vCPUs' summed (their peaks: the largest).
fn render_kvm(out: &mut String) {
    let sources = lock_sources();
    let mut vm = Vec::new();
    let mut vcpus = Vec::new();
    let mut nvcpus = 0;
    for source in sources.iter() {
        let stats = match read_kvm_stats(&source.fd) {
            Ok(stats) => stats,
            Err(e) => {
                let _ = writeln!(out, "  kvm: reading statistics: {e}");
                continue;
            }
        };
        let into = if source.vcpu {
            nvcpus += 1;
            &mut vcpus
        } else {
            &mut vm
        };
        merge(into, stats);
    }
    drop(sources);
    render_named(out, "kvm vm", &vm);
    render_named(out, &format!("kvm vcpus ({nvcpus}, summed)"), &vcpus);
}

fn merge(into: &mut Vec<KvmStat>, stats: Vec<KvmStat>) {
    for stat in stats {
        match into.iter_mut().find(|s| s.name == stat.name) {
            Some(s) if stat.peak => s.value = s.value.max(stat.value),
            Some(s) => s.value = s.value.saturating_add(stat.value),
            None => into.push(stat),
        }
    }
}

/// The non-zero statistics, several to a line.
fn render_named(out: &mut String, label: &str, stats: &[KvmStat]) {
    let shown: Vec<String> = stats
        .iter()
        .filter(|s| s.value != 0)
        .map(|s| format!("{} {}", s.name, s.value))
        .collect();
    let _ = writeln!(out, "  {label}:");
    for line in shown.chunks(6) {
        let _ = writeln!(out, "    {}", line.join(", "));
    }
}

/// One single-valued statistic.
struct KvmStat {
    name: String,
    value: u64,
    /// A peak (KVM_STATS_TYPE_PEAK): merged by maximum, not by sum.
    peak: bool,
}

/// struct kvm_stats_header: flags, name_size, num_desc, id_offset, desc_offset,
/// data_offset (u32 each).
const HEADER_SIZE: usize = 24;
/// struct kvm_stats_desc before its name: flags, exponent, size, offset, bucket_size.
const DESC_SIZE: usize = 16;
const KVM_STATS_TYPE_MASK: u32 = 0xf;
const KVM_STATS_TYPE_PEAK: u32 = 2;
/// Bounds on what km reads from KVM: names and descriptor counts of real kernels
/// are far below these.
const MAX_NAME_SIZE: usize = 256;
const MAX_DESCS: usize = 4096;

fn read_at(fd: &OwnedFd, offset: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = rustix::io::pread(fd, &mut buf, offset as u64)?;
    buf.truncate(n);
    if n < len {
        return Err(std::io::Error::other("short read of KVM statistics"));
    }
    Ok(buf)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads every single-valued statistic of a KVM statistics descriptor, by name.
fn read_kvm_stats(fd: &OwnedFd) -> std::io::Result<Vec<KvmStat>> {
    let header = read_at(fd, 0, HEADER_SIZE)?;
    let name_size = u32_at(&header, 4) as usize;
    let num_desc = u32_at(&header, 8) as usize;
    let desc_offset = u32_at(&header, 16) as usize;
    let data_offset = u32_at(&header, 20) as usize;
    if name_size > MAX_NAME_SIZE || num_desc > MAX_DESCS {
        return Err(std::io::Error::other("implausible KVM statistics header"));
    }
    let desc_len = DESC_SIZE + name_size;
    let descs = read_at(fd, desc_offset, desc_len * num_desc)?;
    let mut stats = Vec::with_capacity(num_desc);
    for desc in descs.chunks_exact(desc_len) {
        let flags = u32_at(desc, 0);
        let size = u16::from_ne_bytes([desc[6], desc[7]]);
        let offset = u32_at(desc, 8) as usize;
        if size != 1 {
            continue;
        }
        let name = &desc[DESC_SIZE..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let value = read_at(fd, data_offset + offset, 8)?;
        stats.push(KvmStat {
            name: String::from_utf8_lossy(name).into_owned(),
            value: u64::from_ne_bytes(value[..8].try_into().expect("8 bytes")),
            peak: flags & KVM_STATS_TYPE_MASK == KVM_STATS_TYPE_PEAK,
        });
    }
    Ok(stats)
}
