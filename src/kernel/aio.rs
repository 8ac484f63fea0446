//! Linux AIO contexts (io_setup): what each holds between the payload's calls.
//! A context is named by the address of its ring, a read-only run of pages in the
//! payload's memory as on Linux; km leaves the ring's header zero (no
//! `AIO_RING_MAGIC`), which tells readers such as libaio to take events with
//! io_getevents instead of reading the ring.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// One `struct io_event`: data, obj (the iocb's address), res, res2.
pub type IoEvent = [u64; 4];

/// An IOCB_CMD_POLL still waiting for its descriptor.
pub struct AioPoll {
    pub fd: Arc<OwnedFd>,
    pub events: i16,
    pub data: u64,
    /// The guest address of the iocb.
    pub obj: u64,
    /// IOCB_FLAG_RESFD's eventfd, told of the completion.
    pub resfd: Option<Arc<OwnedFd>>,
}

/// One context.
pub struct AioContext {
    /// The ring's guest pages (unmapped by io_destroy).
    pub ring: Range<u64>,
    /// Most requests in flight or completed and not yet taken (EAGAIN past it).
    pub max: usize,
    pub done: VecDeque<IoEvent>,
    pub polls: Vec<AioPoll>,
}

impl AioContext {
    pub fn in_use(&self) -> usize {
        self.done.len() + self.polls.len()
    }
}

/// The process's contexts by ring address (a fork child starts with none, as on
/// Linux, where the ring is not copied).
pub type AioContexts = HashMap<u64, AioContext>;
