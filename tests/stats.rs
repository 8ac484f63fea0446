//! `km --stats`: the report names the calls the payload really made, per process.

mod common;

use common::{assert_runs_alike, km, native, payload, run, text};

/// getppid calls per thread and process in the payload's run.
const CALLS: u64 = 100;

/// One process's report: its pid and its lines.
struct Report {
    pid: u32,
    lines: Vec<String>,
}

impl Report {
    /// The count after `label` on the line starting with `prefix`.
    fn number(&self, prefix: &str, label: &str) -> Option<u64> {
        self.value(prefix, label)
    }

    /// The value (a count, or milliseconds) after `label` on the line starting
    /// with `prefix`.
    fn value<T: std::str::FromStr>(&self, prefix: &str, label: &str) -> Option<T> {
        let line = self
            .lines
            .iter()
            .find(|l| l.trim_start().starts_with(prefix))?;
        let after = line.split(label).nth(1)?;
        after.trim_start().split([' ', ',']).next()?.parse().ok()
    }

    /// The count of syscall `name` in the syscall table.
    fn calls(&self, name: &str) -> u64 {
        let row = self
            .lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name));
        row.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// KVM's per-vCPU statistic `name` (summed over vCPUs), from the lines after
    /// the vCPU heading.
    fn vcpu_stat(&self, name: &str) -> Option<u64> {
        let start = self.lines.iter().position(|l| l.contains("kvm vcpus ("))?;
        self.lines[start + 1..].iter().find_map(|l| {
            l.split(", ").find_map(|pair| {
                let (n, v) = pair.trim().rsplit_once(' ')?;
                (n == name).then(|| v.parse().ok()).flatten()
            })
        })
    }
}

fn reports(stderr: &str) -> Vec<Report> {
    stderr
        .split("km stats: pid ")
        .skip(1)
        .map(|r| Report {
            pid: r
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a pid"),
            lines: r.lines().map(str::to_string).collect(),
        })
        .collect()
}

#[test]
fn stats_count_the_calls_of_each_process() {
    let exe = payload("statsload.musl");
    let native_out = run(native(&exe).arg(CALLS.to_string()));
    let child = km()
        .arg("--stats")
        .arg(&exe)
        .arg(CALLS.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawning km");
    let pid = child.id();
    let km_out = child.wait_with_output().expect("waiting for km");
    assert_runs_alike(&exe, &native_out, &km_out);
    let stderr = text(&km_out.stderr);
    let reports = reports(&stderr);
    assert_eq!(reports.len(), 2, "one report per process: {stderr}");
    let (parent, forked): (Vec<_>, Vec<_>) = reports.into_iter().partition(|r| r.pid == pid);
    let (parent, forked) = (&parent[0], &forked[0]);

    // Two threads made CALLS each; the fork child's counts start from zero.
    assert!(parent.calls("getppid") >= 2 * CALLS, "{stderr}");
    assert!(forked.calls("getppid") >= CALLS, "{stderr}");
    assert!(forked.calls("getppid") < 2 * CALLS, "{stderr}");
    assert!(
        parent
            .lines
            .iter()
            .any(|l| l.contains("kvm vcpus (2, summed)")),
        "{stderr}"
    );
    // The child exposes its copy of the parent's memory (the upper, system and
    // image regions, side by side in host and guest-physical memory) to its new
    // VM with one memslot, and needs no other for these calls. So does the
    // parent, whose start-up registers what it committed when its first vCPU
    // is made: the stack, the system area and the image.
    for report in [parent, forked] {
        assert_eq!(
            report.number("memslot changes", "memslot changes"),
            Some(1),
            "{stderr}"
        );
    }
    // The parent's report says how long km took to make it ready to run (VM,
    // loading, vCPU, seccomp filter), within its wall time; a fork child's
    // copy of the program was loaded already.
    let started: f64 = parent
        .value("started:", "first instruction after")
        .expect("a started line");
    let wall: f64 = parent.value("wall", "wall").expect("a wall line");
    assert!(started > 0.0 && started < wall, "{stderr}");
    assert!(
        forked.value::<f64>("started:", "after").is_none(),
        "{stderr}"
    );
    for report in [parent, forked] {
        let syscall_exits = report.number("exits:", "syscall").expect("syscall exits");
        assert!(syscall_exits >= report.calls("getppid"), "{stderr}");
        // KVM saw at least every exit km served.
        let kvm_exits = report.vcpu_stat("exits").expect("KVM's exits statistic");
        assert!(kvm_exits >= syscall_exits, "{stderr}");
    }
}

/// Whether the host gives transparent huge pages to memory advised for them.
fn host_has_thp() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|s| !s.contains("[never]"))
}

#[test]
fn large_anonymous_mappings_fault_in_huge_pages() {
    const MIB: u64 = 64;
    let exe = payload("touchpages.musl");
    let native_out = run(native(&exe).arg(MIB.to_string()));
    let km_out = run(km().arg("--stats").arg(&exe).arg(MIB.to_string()));
    assert_runs_alike(&exe, &native_out, &km_out);
    let stderr = text(&km_out.stderr);
    let report = &reports(&stderr)[0];
    let faults = report
        .vcpu_stat("pf_fixed")
        .expect("KVM's pf_fixed statistic");
    let pages = MIB * 256;
    if host_has_thp() {
        // 2 MiB at a time: far fewer faults than pages touched.
        assert!(
            faults < pages / 8,
            "{faults} faults for {pages} pages: {stderr}"
        );
    } else {
        assert!(faults >= pages, "{stderr}");
    }
}

/// A break grown 128 KiB at a time, as malloc grows it, and written page by
/// page: km faults in each small growth's host pages with the brk and writes
/// its entries accessed, so KVM maps up to 8 pages per fault (one per page
/// before: 2145 faults for these 2048 pages, 341 after). Pages the break gave
/// back and took again read zero, as natively.
#[test]
fn small_brk_growths_fault_in_several_pages_at_once() {
    const MIB: u64 = 8;
    let exe = payload("touchpages.musl");
    let args = [MIB.to_string(), "brk".to_string()];
    let native_out = run(native(&exe).args(&args));
    let km_out = run(km().arg("--stats").arg(&exe).args(&args));
    assert_runs_alike(&exe, &native_out, &km_out);
    assert!(text(&km_out.stdout).contains(" 0 nonzero, below kept: 1"));
    let stderr = text(&km_out.stderr);
    let report = &reports(&stderr)[0];
    let faults = report
        .vcpu_stat("pf_fixed")
        .expect("KVM's pf_fixed statistic");
    let pages = MIB * 256;
    assert!(
        faults < pages / 2,
        "{faults} faults for {pages} pages: {stderr}"
    );
}

/// The mprotects of RELRO (ld.so makes each library's relocated data read-only)
/// change entries python just used: km drops those pages' translations through
/// KVM's MMU notifier, never with a flush of every translation, and the program
/// runs as natively. What python maps fits in what start-up committed (the
/// stack and the first 56 MiB of the mmap area): one memslot in all.
#[test]
fn relro_mprotects_invalidate_their_pages_without_a_flush() {
    let python = std::path::Path::new("/usr/bin/python3");
    let args = ["-c", "import json; print(json.dumps([1, 2]))"];
    let native_out = run(native(python).args(args));
    let km_out = run(km().arg("--stats").arg(python).args(args));
    assert_runs_alike(python, &native_out, &km_out);
    let stderr = text(&km_out.stderr);
    let report = &reports(&stderr)[0];
    assert!(report.calls("mprotect") > 0, "{stderr}");
    let line = "memslot changes";
    assert_eq!(report.number(line, "MMU flushes"), Some(0), "{stderr}");
    assert_eq!(report.number(line, line), Some(1), "{stderr}");
    let invalidations = report.number(line, "range invalidations");
    assert!(invalidations.is_some_and(|n| n > 0), "{stderr}");
}

/// Threads `threads.c` creates: 16 counters, a producer, 3 at a barrier, a futex
/// waker, 200 in a loop, 50 + 50 + 60 one after another (or two at a time), and
/// the 2 CPU-affinity probes.
const THREADS_MADE: u64 = 383;

/// Threads created one after another start on spare host threads waiting for
/// them and on parked vCPUs: the report's counts add up to the threads made, and
/// only the first burst of 16 concurrent threads (and the one after the payload
/// narrows its affinity, when spares stop) needs new host threads and vCPUs.
#[test]
fn threads_start_on_spares_and_parked_vcpus() {
    let exe = payload("threads.musl");
    let out = run(km().arg("--stats").arg(&exe));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = &reports(&stderr)[0];
    let count = |label| {
        report
            .number("memslot changes", label)
            .unwrap_or_else(|| panic!("no {label}: {stderr}"))
    };
    let (spares, fresh) = (count("threads on spares"), count("on new host threads"));
    assert_eq!(spares + fresh, THREADS_MADE, "{stderr}");
    assert!(spares >= 300, "{stderr}");
    assert!(count("vCPUs created") <= 20, "{stderr}");
}

#[test]
fn no_report_without_the_option() {
    let exe = payload("statsload.musl");
    let out = run(km().arg(&exe).arg("3"));
    assert!(out.status.success());
    assert!(!text(&out.stderr).contains("km stats"));
}
