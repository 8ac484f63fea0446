//! The payload's own limits on its memory, queued signals and descriptors
//! (RLIMIT_AS, RLIMIT_DATA, RLIMIT_SIGPENDING, RLIMIT_NOFILE). On the host they
//! would bind km itself, whose own reservations, allocations, kicks and
//! descriptors (a fork child's new VM, the guest's host descriptors, which are not
//! at the guest's numbers) would then fail, so km keeps them for the guest: they
//! start as km's own limits and only the payload's prlimit changes them. A fork
//! child inherits them with km's memory, and a km re-executed for the payload's
//! execve gets them as `--guest-limits`. km itself runs with its soft
//! RLIMIT_NOFILE raised to its hard one ([`init`]), whatever the payload's is.

use std::sync::Mutex;

use rustix::io::Errno;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Linux's RLIM_INFINITY.
pub const INFINITY: u64 = u64::MAX;

/// The resources km keeps for the guest, by their Linux numbers.
/// A `--guest-limits` value lists them in this order; one from an older km (a
/// snapshot's) may lack the last ones, which then stay km's own.
const KEPT: [(u32, Resource); 4] = [
    (libc::RLIMIT_DATA, Resource::Data),
    (libc::RLIMIT_AS, Resource::As),
    (libc::RLIMIT_SIGPENDING, Resource::Sigpending),
    (libc::RLIMIT_NOFILE, Resource::Nofile),
];

type Limits = [(u64, u64); KEPT.len()];

/// (soft, hard) of each of `KEPT`, once read from km's own.
static LIMITS: Mutex<Option<Limits>> = Mutex::new(None);

fn index(resource: u32) -> Option<usize> {
    KEPT.iter().position(|&(n, _)| n == resource)
}

fn pair(l: Rlimit) -> (u64, u64) {
    (l.current.unwrap_or(INFINITY), l.maximum.unwrap_or(INFINITY))
}

fn with_limits<T>(f: impl FnOnce(&mut Limits) -> T) -> T {
    let mut limits = LIMITS.lock().unwrap_or_else(|e| e.into_inner());
    let limits = limits.get_or_insert_with(|| KEPT.map(|(_, r)| pair(getrlimit(r))));
    f(limits)
}

/// The limits' lock, held by a forking thread across the host fork: a thread
/// checking a limit at that moment (every open does) would leave it locked in
/// the child for ever. Held while no other lock is taken.
pub fn hold_for_fork() -> std::sync::MutexGuard<'static, Option<Limits>> {
    LIMITS.lock().unwrap_or_else(|e| e.into_inner())
}

/// At km's start, before it opens anything of its own: takes km's limits as the
/// guest's, then raises km's own soft RLIMIT_NOFILE to its hard one, so that km's
/// descriptors never run out before the guest's numbers do (a hard limit of
/// unlimited, which Linux does not allow for NOFILE, is left alone).
pub fn init() {
    with_limits(|_| ());
    let own = getrlimit(Resource::Nofile);
    if own.maximum.is_some() && own.current != own.maximum {
        let raised = Rlimit {
            current: own.maximum,
            maximum: own.maximum,
        };
        // Unraised, km runs under the guest's own limit, as before.
        let _ = setrlimit(Resource::Nofile, raised);
    }
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
        if resource == libc::RLIMIT_NOFILE {
            raise_own_nofile(new.1)?;
        }
        l[i] = new;
        Ok(old)
    })
}

/// Before a privileged payload raises its RLIMIT_NOFILE to `hard`: km's own
/// limit follows it up (never down), so km can hold as many descriptors as the
/// guest may have and its own besides. The host's refusal (EPERM past
/// fs.nr_open) is the guest's, as on Linux.
fn raise_own_nofile(hard: u64) -> Result<(), Errno> {
    let own = pair(getrlimit(Resource::Nofile));
    if hard <= own.1 {
        return Ok(());
    }
    let limit = (hard != INFINITY).then_some(hard);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit,
            maximum: limit,
        },
    )
}

/// The guest's soft RLIMIT_NOFILE: guest descriptor numbers stay below it.
pub fn nofile() -> u64 {
    get(libc::RLIMIT_NOFILE).map_or(INFINITY, |(soft, _)| soft)
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

/// Takes the guest's limits from a `--guest-limits` value (see [`exec_option`]);
/// those it lacks (an older km's) stay as [`init`] read them.
pub fn restore(option: &str) -> Result<(), String> {
    let numbers: Vec<u64> = option
        .split(':')
        .map(|n| {
            n.parse()
                .map_err(|e| format!("--guest-limits {option:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if !numbers.len().is_multiple_of(2) || numbers.len() < 6 || numbers.len() > 2 * KEPT.len() {
        return Err(format!(
            "--guest-limits {option:?}: 6 to {} numbers, in pairs, wanted",
            2 * KEPT.len()
        ));
    }
    with_limits(|l| {
        for (limit, p) in l.iter_mut().zip(numbers.chunks_exact(2)) {
            *limit = (p[0], p[1]);
        }
    });
    Ok(())
}
