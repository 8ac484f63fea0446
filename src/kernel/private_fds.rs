//! km's own descriptors that a forked km must close: the gdb stub's sockets. No
//! thread of the child serves them, and a copy of the listening socket or of the
//! connection held by a long-lived child would take gdb's next connection, or keep
//! the session open, after the parent has gone.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// At most a listener and a connection are open at a time; room to spare.
static SOCKETS: [AtomicI32; 8] = [const { AtomicI32::new(-1) }; 8];

/// A registered socket; dropping it (before the socket closes) unregisters it.
pub struct Registered(Option<usize>);

/// Registers socket `fd`.
pub fn register(fd: RawFd) -> Registered {
    Registered(SOCKETS.iter().position(|slot| {
        slot.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }))
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(slot) = self.0 {
            SOCKETS[slot].store(-1, Ordering::SeqCst);
        }
    }
}

/// In a forked km: closes its copies of the stub's sockets (the parent keeps its).
pub fn close_in_fork_child() {
    for slot in &SOCKETS {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            crate::memory::host::close_fd(fd);
        }
    }
}
