//! The payload's own limits on its memory and queued signals (RLIMIT_AS,
//! RLIMIT_DATA, RLIMIT_SIGPENDING). On the host they would bind km itself, whose
//! own reservations, allocations and kicks would then fail, so km keeps them for the
//! guest: they start as km's own limits and only the payload's prlimit changes
//! them. A fork child inherits them with km's memory, and a km re-executed for
//! the payload's execve gets them as `--guest-limits`.

use std::sync::Mutex;

use rustix::io::Errno;
use rustix::process::{Resource, getrlimit};

/// Linux's RLIM_INFINITY.
pub const INFINITY: u64 = u64::MAX;

/// The resources km keeps for the guest, by their Linux numbers.
const KEPT: [(u32, Resource); 3] = [
    (libc::RLIMIT_DATA, Resource::Data),
    (libc::RLIMIT_AS, Resource::As),
    (libc::RLIMIT_SIGPENDING, Resource::Sigpending),
];

/// (soft, hard) of each of `KEPT`, once read from km's own.
static LIMITS: Mutex<Option<[(u64, u64); 3]>> = Mutex::new(None);

fn index(resource: u32) -> Option<usize> {
    KEPT.iter().position(|&(n, _)| n == resource)
}

fn with_limits<T>(f: impl FnOnce(&mut [(u64, u64); 3]) -> T) -> T {
    let mut limits = LIMITS.lock().unwrap_or_else(|e| e.into_inner());
    let limits = limits.get_or_insert_with(|| {
        KEPT.map(|(_, r)| {
            let l = getrlimit(r);
            (l.current.unwrap_or(INFINITY), l.maximum.unwrap_or(INFINITY))
        })
    });
    f(limits)
}

/// Whether km keeps `resource` for the guest (else it is the host's).
pub fn kept(resource: u32) -> bool {
    index(resource).is_some()
}

/// The guest's (soft, hard) limit on `resource`, one of those km keeps.
pub fn get(resource: u32) -> Option<(u64, u64)> {
    let i = index(resource)?;
    Some(with_limits(|l| l[i]))
}

/// Sets the guest's limit on `resource` (one km keeps) to `new`, as Linux's
/// prlimit checks it: EINVAL for a soft limit above the hard one, EPERM for a
/// higher hard limit without privilege. Returns the previous limit.
pub fn set(resource: u32, new: (u64, u64), privileged: bool) -> Result<(u64, u64), Errno> {
    let i = index(resource).ok_or(Errno::INVAL)?;
    if new.0 > new.1 {
        return Err(Errno::INVAL);
    }
    with_limits(|l| {
        let old = l[i];
        if new.1 > old.1 && !privileged {
            return Err(Errno::PERM);
        }
        l[i] = new;
        Ok(old)
    })
}

/// The guest's soft limit on its address space (RLIMIT_AS) and on its data
/// (RLIMIT_DATA) in bytes; `None` where unlimited.
pub fn memory() -> (Option<u64>, Option<u64>) {
    let soft = |r: u32| get(r).map(|l| l.0).filter(|&s| s != INFINITY);
    (soft(libc::RLIMIT_AS), soft(libc::RLIMIT_DATA))
}

/// The guest's limits as km's `--guest-limits` option gives them to the km that
/// execve re-executes (Linux keeps limits across execve).
pub fn exec_option() -> String {
    let values = with_limits(|l| l.map(|(soft, hard)| format!("{soft}:{hard}")));
    format!("--guest-limits={}", values.join(":"))
}

/// Takes the guest's limits from a `--guest-limits` value (see [`exec_option`]).
pub fn restore(option: &str) -> Result<(), String> {
    let numbers: Vec<u64> = option
        .split(':')
        .map(|n| {
            n.parse()
                .map_err(|e| format!("--guest-limits {option:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let pairs: Vec<(u64, u64)> = numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect();
    let restored: [(u64, u64); 3] = pairs
        .try_into()
        .map_err(|_| format!("--guest-limits {option:?}: 6 numbers wanted"))?;
    *LIMITS.lock().unwrap_or_else(|e| e.into_inner()) = Some(restored);
    Ok(())
}
