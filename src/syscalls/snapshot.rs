//! km's own system call 505, `KM_SNAPSHOT(label, description, live)`: its
//! arguments are checked here; the exit loop takes the snapshot
//! (`crate::snapshot`, docs/snapshots.md), as it needs every thread stopped.

use rustix::io::Errno;

use super::{Ctx, Outcome};

/// The number of `KM_SNAPSHOT` (Linux leaves it unused: ENOSYS natively).
pub const KM_SNAPSHOT: i64 = 505;

/// Longest label or description kept, as a path is bounded.
const TEXT_MAX: usize = 4096;

/// A validated snapshot request.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub label: String,
    pub description: String,
    /// Go on after the snapshot (else the payload ends with status 0).
    pub live: bool,
}

/// An optional string argument: NULL is empty; a longer one is cut (EFAULT for
/// unreadable memory).
fn text(ctx: &Ctx<'_>, addr: u64) -> Result<String, Errno> {
    if addr == 0 {
        return Ok(String::new());
    }
    let s = match ctx.read_cstring(addr, TEXT_MAX, Errno::NAMETOOLONG) {
        Err(Errno::NAMETOOLONG) => ctx.read_bytes(addr, TEXT_MAX)?,
        other => other?.into_bytes(),
    };
    Ok(String::from_utf8_lossy(&s).into_owned())
}

/// `KM_SNAPSHOT(label, description, live)`.
pub fn km_snapshot(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> Result<Outcome, Errno> {
    Ok(Outcome::Snapshot(SnapshotRequest {
        label: text(ctx, a[0])?,
        description: text(ctx, a[1])?,
        live: a[2] as i32 != 0,
    }))
}
