//! The guest's file descriptor table.
//!
//! Guest fd numbers are the guest's own (lowest free number first, as on Linux); each
//! maps to a host fd owned by km, so the guest can never reach km's KVM descriptors.
//! Entries are shared (`Arc`) so that a thread blocked on a descriptor keeps it open
//! while another thread closes the guest number, as Linux keeps the open file.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;

use rustix::io::Errno;

use crate::memory::host;

#[derive(Clone)]
struct Entry {
    fd: Arc<OwnedFd>,
    cloexec: bool,
}

#[derive(Clone, Default)]
pub struct FdTable {
    fds: BTreeMap<i32, Entry>,
}

/// Upper bound of guest fd numbers: the guest's soft RLIMIT_NOFILE (km's own is
/// higher, see `guest::limits`).
pub fn limit() -> i32 {
    crate::guest::limits::nofile().min(i32::MAX as u64) as i32
}

impl FdTable {
    /// A table holding duplicates of km's stdin, stdout and stderr as guest 0, 1, 2,
    /// but for those in `closed`.
    fn with_stdio(closed: &[i32]) -> Self {
        let mut fds = BTreeMap::new();
        let stdio = [
            rustix::stdio::stdin(),
            rustix::stdio::stdout(),
            rustix::stdio::stderr(),
        ];
        for (n, fd) in stdio.into_iter().enumerate() {
            if closed.contains(&(n as i32)) {
                continue;
            }
            if let Ok(dup) = rustix::io::fcntl_dupfd_cloexec(fd, 3) {
                fds.insert(
                    n as i32,
                    Entry {
                        fd: Arc::new(dup),
                        cloexec: false,
                    },
                );
            }
        }
        FdTable { fds }
    }

    /// A table holding km's stdio but for those in `closed_stdio` (see
    /// [`FdTable::with_stdio`]) and the descriptors km inherited above them at their
    /// own numbers, as Linux gives a program every descriptor its parent left open.
    pub fn inherited(fds: Vec<(i32, OwnedFd)>, closed_stdio: &[i32]) -> Self {
        let mut table = FdTable::with_stdio(closed_stdio);
        for (n, fd) in fds {
            table.fds.insert(
                n,
                Entry {
                    fd: Arc::new(fd),
                    cloexec: false,
                },
            );
        }
        table
    }

    /// An execve in place: the descriptors with FD_CLOEXEC close; the others stay
    /// at their numbers.
    pub fn close_on_exec(&mut self) {
        self.fds.retain(|_, e| !e.cloexec);
    }

    /// The descriptors an execve keeps (those without FD_CLOEXEC), by guest number.
    pub fn inherited_by_exec(&self) -> Vec<(i32, Arc<OwnedFd>)> {
        self.fds
            .iter()
            .filter(|(_, e)| !e.cloexec)
            .map(|(n, e)| (*n, e.fd.clone()))
            .collect()
    }

    pub fn get(&self, fd: i32) -> Result<Arc<OwnedFd>, Errno> {
        self.fds.get(&fd).map(|e| e.fd.clone()).ok_or(Errno::BADF)
    }

    /// Installs `fd` at the lowest free guest number at or above `min`.
    pub fn insert(&mut self, fd: OwnedFd, cloexec: bool, min: i32) -> Result<i32, Errno> {
        let mut n = min;
        for (&used, _) in self.fds.range(min..) {
            if used != n {
                break;
            }
            n += 1;
        }
        if n >= limit() {
            return Err(Errno::MFILE);
        }
        self.fds.insert(
            n,
            Entry {
                fd: Arc::new(fd),
                cloexec,
            },
        );
        Ok(n)
    }

    /// Installs `fd` at exactly guest number `n`, closing what was there.
    pub fn insert_at(&mut self, n: i32, fd: OwnedFd, cloexec: bool) -> Result<i32, Errno> {
        if n < 0 || n >= limit() {
            return Err(Errno::BADF);
        }
        self.fds.insert(
            n,
            Entry {
                fd: Arc::new(fd),
                cloexec,
            },
        );
        Ok(n)
    }

    /// close_range: closes the guest descriptors in `range`, or with `cloexec` marks
    /// them close-on-exec.
    pub fn close_range(&mut self, range: std::ops::RangeInclusive<i32>, cloexec: bool) {
        if cloexec {
            self.fds
                .range_mut(range)
                .for_each(|(_, e)| e.cloexec = true);
        } else {
            let doomed: Vec<i32> = self.fds.range(range).map(|(n, _)| *n).collect();
            for n in doomed {
                self.fds.remove(&n);
            }
        }
    }

    /// In a forked km: makes this table the only owner of its host descriptors.
    /// An entry that is still shared is held by a copy of a parent thread's call
    /// (a read it was blocked in at the fork); that thread does not exist here and
    /// its copy is never dropped, so the entry gets a duplicate and the shared
    /// number is closed. A descriptor the child closes is then closed on the host
    /// (the peer of a socket both processes close sees EOF).
    pub fn own_in_fork_child(&mut self) -> Result<(), Errno> {
        for entry in self.fds.values_mut() {
            if Arc::strong_count(&entry.fd) == 1 {
                continue;
            }
            let fresh = rustix::io::fcntl_dupfd_cloexec(&*entry.fd, 0)?;
            let shared = std::mem::replace(&mut entry.fd, Arc::new(fresh));
            let n = shared.as_raw_fd();
            // The other copies are never dropped and this one is leaked, so the
            // count never reaches zero and nothing closes `n` a second time.
            std::mem::forget(shared);
            host::close_fd(n);
        }
        Ok(())
    }

    /// In a vfork child's process (run in the parent's memory, with a copy of its
    /// host descriptor table, taken while this table was held): the same guest
    /// descriptors on the child's copies of their host descriptors, which the
    /// child owns alone.
    pub fn vfork_copy(&self) -> FdTable {
        let fds = self
            .fds
            .iter()
            .map(|(n, e)| {
                let fd = host::own_vfork_copy(e.fd.as_raw_fd());
                (
                    *n,
                    Entry {
                        fd: Arc::new(fd),
                        cloexec: e.cloexec,
                    },
                )
            })
            .collect();
        FdTable { fds }
    }

    /// Drops a table whose host descriptors belong to another process (a vfork
    /// child's, which has exec'd or exited) without closing their numbers here.
    pub fn forget_host_fds(self) {
        for entry in self.fds.into_values() {
            match Arc::try_unwrap(entry.fd) {
                Ok(fd) => {
                    let _ = fd.into_raw_fd();
                }
                // Held by a call the child never returned from: never dropped.
                Err(shared) => std::mem::forget(shared),
            }
        }
    }

    /// The guest descriptor numbers in use, in order.
    pub fn numbers(&self) -> Vec<i32> {
        self.fds.keys().copied().collect()
    }

    pub fn close(&mut self, fd: i32) -> Result<(), Errno> {
        self.fds.remove(&fd).map(drop).ok_or(Errno::BADF)
    }

    /// A new host descriptor for the same open file as guest `fd`.
    pub fn dup_host(&self, fd: i32) -> Result<OwnedFd, Errno> {
        rustix::io::fcntl_dupfd_cloexec(self.get(fd)?, 0)
    }

    pub fn cloexec(&self, fd: i32) -> Result<bool, Errno> {
        self.fds.get(&fd).map(|e| e.cloexec).ok_or(Errno::BADF)
    }

    pub fn set_cloexec(&mut self, fd: i32, on: bool) -> Result<(), Errno> {
        self.fds
            .get_mut(&fd)
            .map(|e| e.cloexec = on)
            .ok_or(Errno::BADF)
    }
}
