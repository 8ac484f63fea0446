//! `--sandbox`: km (started as root) gives up its host identity before the payload
//! runs, so the payload's host calls are those of an unprivileged user.
//!
//! km has opened /dev/kvm and read the payload by then; the /dev/kvm descriptor
//! goes on to fork children (a copy) and to a km re-executed for execve
//! (`--kvm-fd`), which finds itself already confined and only checks it.

use anyhow::{Context, Result, bail};
use rustix::process::{Gid, Uid};

/// Drops km to `uid`:`gid` with no supplementary groups (which also drops every
/// capability), keeps /proc/self readable by km (dumpable) and forbids new
/// privileges. Must run while km has a single thread: the calls change the
/// calling thread's credentials only.
pub fn enter(uid: u32, gid: u32) -> Result<()> {
    if already_confined(uid, gid) {
        return no_new_privs();
    }
    if !rustix::process::geteuid().is_root() {
        bail!("--sandbox needs root (km gives the payload uid {uid}, gid {gid})");
    }
    // A thread km has just joined (the one that asked KVM's CPUID) can still be
    // listed for a moment, until the kernel has released it: looked at again for
    // up to 100 ms.
    let count = || -> Result<usize> {
        Ok(std::fs::read_dir("/proc/self/task")
            .context("listing km's threads")?
            .count())
    };
    let mut threads = count()?;
    for _ in 0..50 {
        if threads == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        threads = count()?;
    }
    if threads != 1 {
        bail!("--sandbox: km has {threads} threads, not 1, when it drops its identity");
    }
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    rustix::thread::set_thread_groups(&[]).context("--sandbox: clearing groups")?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).context("--sandbox: setting the gid")?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).context("--sandbox: setting the uid")?;
    // A change of uid makes the process non-dumpable, which would leave its own
    // /proc/self/fd and friends to root.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
        .context("--sandbox: PR_SET_DUMPABLE")?;
    no_new_privs()
}

/// Whether km already runs as `uid`:`gid` only (a km re-executed in the sandbox).
fn already_confined(uid: u32, gid: u32) -> bool {
    let uids = [rustix::process::getuid(), rustix::process::geteuid()];
    let gids = [rustix::process::getgid(), rustix::process::getegid()];
    uids.iter().all(|u| u.as_raw() == uid)
        && gids.iter().all(|g| g.as_raw() == gid)
        && rustix::process::getgroups().is_ok_and(|g| g.iter().all(|g| g.as_raw() == gid))
}

fn no_new_privs() -> Result<()> {
    rustix::thread::set_no_new_privs(true).context("--sandbox: PR_SET_NO_NEW_PRIVS")
}
