//! Memory admission as Linux decides it: a new mapping is refused with ENOMEM,
//! before any host memory is reserved for it, when Linux's overcommit policy
//! (`vm.overcommit_memory`) would not grant it, or when it would take the payload's
//! mappings past RLIMIT_AS (all of them) or RLIMIT_DATA (private writable ones).
//!
//! The limits are the guest's own (`guest::limits`), which the payload's prlimit
//! sets.

use std::sync::OnceLock;

use rustix::io::Errno;

use super::limits;

/// `vm.overcommit_memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    /// 0: refuse a single request larger than RAM + swap.
    Heuristic,
    /// 1: grant everything.
    Always,
    /// 2: strict accounting against CommitLimit.
    Strict,
}

/// What Linux accounts for new memory: its size in bytes, whether they count
/// against the overcommit policy (VM_ACCOUNT), against RLIMIT_DATA, and against
/// RLIMIT_AS (new address space, which making a mapping writable is not).
#[derive(Debug, Clone, Copy)]
pub struct Charge {
    bytes: u64,
    accounted: bool,
    data: bool,
    mapped: bool,
}

impl Charge {
    /// The charge for a mapping of `bytes` with protection `prot`: private writable
    /// mappings are data; they and shared anonymous memory are accounted unless
    /// MAP_NORESERVE asks otherwise (which strict accounting ignores).
    pub fn of_mapping(bytes: u64, prot: i32, shared: bool, file: bool, noreserve: bool) -> Charge {
        let writable = prot & libc::PROT_WRITE != 0;
        let data = writable && !shared;
        let committable = data || (shared && !file);
        Charge {
            bytes,
            accounted: committable && (!noreserve || policy() == Policy::Strict),
            data,
            mapped: true,
        }
    }

    /// The charge for making `bytes` of private mappings writable (mprotect).
    pub fn write_access(bytes: u64) -> Charge {
        Charge {
            bytes,
            accounted: true,
            data: true,
            mapped: false,
        }
    }
}

/// Whether the payload may add `charge` to its mappings, whose sizes `totals`
/// gives as (all, private writable) bytes, computed only when a limit is set;
/// ENOMEM if not.
pub fn admit(charge: Charge, totals: impl FnOnce() -> (u64, u64)) -> Result<(), Errno> {
    let (as_limit, data_limit) = limits::memory();
    let as_limit = as_limit.filter(|_| charge.mapped);
    let data_limit = data_limit.filter(|_| charge.data);
    if as_limit.is_some() || data_limit.is_some() {
        let (mapped, data) = totals();
        let over = |limit: Option<u64>, total: u64| {
            limit.is_some_and(|l| total.saturating_add(charge.bytes) > l)
        };
        if over(as_limit, mapped) || over(data_limit, data) {
            return Err(Errno::NOMEM);
        }
    }
    if charge.accounted && !commit_allowed(charge.bytes) {
        return Err(Errno::NOMEM);
    }
    Ok(())
}

/// Whether the overcommit policy grants `bytes` more of committed memory.
fn commit_allowed(bytes: u64) -> bool {
    match policy() {
        Policy::Always => true,
        Policy::Heuristic => bytes <= ram_and_swap(),
        Policy::Strict => {
            let limit = meminfo("CommitLimit:").unwrap_or(u64::MAX);
            let committed = meminfo("Committed_AS:").unwrap_or(0);
            committed.saturating_add(bytes) <= limit
        }
    }
}

/// The host's policy, read once (heuristic, Linux's default, if unreadable).
fn policy() -> Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    *POLICY.get_or_init(|| {
        match std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
            .ok()
            .as_deref()
            .map(str::trim)
        {
            Some("1") => Policy::Always,
            Some("2") => Policy::Strict,
            _ => Policy::Heuristic,
        }
    })
}

/// Total RAM plus swap, as Linux's heuristic counts them, read once with
/// sysinfo(2) (one call, where /proc/meminfo costs two opens and a dozen reads
/// at every km's start-up).
fn ram_and_swap() -> u64 {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        let info = rustix::system::sysinfo();
        let unit = u64::from(info.mem_unit.max(1));
        (info.totalram as u64)
            .saturating_add(info.totalswap as u64)
            .saturating_mul(unit)
    })
}

/// A `/proc/meminfo` field, in bytes.
fn meminfo(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}
