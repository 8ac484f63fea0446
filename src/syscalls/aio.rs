//! Linux AIO: io_setup, io_destroy, io_submit, io_getevents, io_cancel. Reads,
//! writes and syncs complete inside io_submit, as Linux's own do on buffered
//! files, through the same handlers as pread64/preadv2/fsync (so every guest
//! pointer is checked the same way); a poll completes at once when its descriptor
//! is ready and otherwise waits until io_getevents finds it ready. Limits: the
//! RWF_* flags are taken by the vectored requests only (a plain read or write
//! with flags is EINVAL), and IOCB_FLAG_IOPRIO is accepted and ignored.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::{Ctx, SysResult, fs};
use crate::guest::mm::MapRequest;
use crate::kernel::aio::{AioContext, AioPoll, IoEvent};
use crate::kernel::lock;
use crate::memory::page_align_up;

const IOCB_CMD_PREAD: u16 = 0;
const IOCB_CMD_PWRITE: u16 = 1;
const IOCB_CMD_FSYNC: u16 = 2;
const IOCB_CMD_FDSYNC: u16 = 3;
const IOCB_CMD_POLL: u16 = 5;
const IOCB_CMD_PREADV: u16 = 7;
const IOCB_CMD_PWRITEV: u16 = 8;
const IOCB_FLAG_RESFD: u32 = 1;
const IOCB_FLAG_IOPRIO: u32 = 2;
/// Size of `struct iocb` and of `struct io_event`.
const IOCB_SIZE: usize = 64;
const EVENT_SIZE: u64 = 32;
/// The ring's header (`struct aio_ring`) before its events.
const RING_HEADER: u64 = 32;
/// fs.aio-max-nr's default: most requests one context may hold.
const AIO_MAX_NR: u64 = 65536;
/// How often io_getevents looks at its polls and at the thread's signals.
const WAIT_SLICE: Duration = Duration::from_millis(10);
const POLL_SLICE: Duration = Duration::from_millis(1);

/// io_setup(nr_events, ctxp): a new context, its ring mapped read-only.
pub fn io_setup(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let nr = a[0] as u32 as u64;
    let old: u64 = ctx.read_obj(a[1])?;
    if old != 0 || nr == 0 || nr > 0x1000_0000 / EVENT_SIZE {
        return Err(Errno::INVAL);
    }
    // Linux sizes the context for at least 4 requests per CPU, twice over.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let max = nr.max(4 * cpus) * 2;
    if max > AIO_MAX_NR * 2 {
        return Err(Errno::AGAIN);
    }
    let len = page_align_up(RING_HEADER + EVENT_SIZE * max);
    let req = MapRequest {
        hint: 0,
        len,
        prot: libc::PROT_READ,
        fixed: false,
        noreplace: false,
        shared: false,
        noreserve: false,
        file: None,
        path: Some(Arc::from("/[aio] (deleted)")),
    };
    let vm = &ctx.guest.vm;
    let ring = lock(&ctx.guest.mm).mmap(vm, &req)?;
    if let Err(e) = ctx.write_obj(a[1], ring) {
        lock(&ctx.guest.mm).munmap(vm, ring..ring + len)?;
        return Err(e);
    }
    let context = AioContext {
        ring: ring..ring + len,
        max: max as usize,
        done: VecDeque::new(),
        polls: Vec::new(),
    };
    lock(&ctx.guest.aio).insert(ring, context);
    Ok(0)
}

/// io_destroy(ctx): drops the context (polls still waiting are cancelled) and
/// unmaps its ring.
pub fn io_destroy(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let context = lock(&ctx.guest.aio).remove(&a[0]).ok_or(Errno::INVAL)?;
    lock(&ctx.guest.mm).munmap(&ctx.guest.vm, context.ring)?;
    Ok(0)
}

/// io_submit(ctx, nr, iocbpp): the number of requests taken; an error only when
/// the first one is refused.
pub fn io_submit(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let nr = a[1] as i64;
    if nr < 0 || !lock(&ctx.guest.aio).contains_key(&a[0]) {
        return Err(Errno::INVAL);
    }
    for i in 0..nr as u64 {
        let at = a[2].checked_add(i * 8).ok_or(Errno::FAULT);
        match at.and_then(|at| submit_one(ctx, a[0], at)) {
            Ok(()) => {}
            Err(e) if i == 0 => return Err(e),
            Err(_) => return Ok(i),
        }
    }
    Ok(nr as u64)
}

/// A `struct iocb`'s fields.
struct Iocb {
    data: u64,
    key: u32,
    rw_flags: u32,
    opcode: u16,
    fd: u32,
    buf: u64,
    nbytes: u64,
    offset: i64,
    reserved2: u64,
    flags: u32,
    resfd: u32,
}

fn read_iocb(ctx: &Ctx<'_>, addr: u64) -> Result<Iocb, Errno> {
    let b = ctx.read_bytes(addr, IOCB_SIZE)?;
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    Ok(Iocb {
        data: u64_at(0),
        key: u32_at(8),
        rw_flags: u32_at(12),
        opcode: u16::from_ne_bytes([b[16], b[17]]),
        fd: u32_at(20),
        buf: u64_at(24),
        nbytes: u64_at(32),
        offset: u64_at(40) as i64,
        reserved2: u64_at(48),
        flags: u32_at(56),
        resfd: u32_at(60),
    })
}

/// Checks and runs the request whose pointer is at `slot`.
fn submit_one(ctx: &mut Ctx<'_>, id: u64, slot: u64) -> Result<(), Errno> {
    let obj: u64 = ctx.read_obj(slot)?;
    let cb = read_iocb(ctx, obj)?;
    if cb.reserved2 != 0 || cb.key != 0 || cb.flags & !(IOCB_FLAG_RESFD | IOCB_FLAG_IOPRIO) != 0 {
        return Err(Errno::INVAL);
    }
    let resfd = if cb.flags & IOCB_FLAG_RESFD != 0 {
        Some(ctx.fd(cb.resfd as u64)?)
    } else {
        None
    };
    let file = ctx.fd(cb.fd as u64)?;
    {
        let contexts = lock(&ctx.guest.aio);
        let context = contexts.get(&id).ok_or(Errno::INVAL)?;
        if context.in_use() >= context.max {
            return Err(Errno::AGAIN);
        }
    }
    let fd = cb.fd as u64;
    let vectored = |cb: &Iocb| {
        [
            fd,
            cb.buf,
            cb.nbytes,
            cb.offset as u64,
            0,
            cb.rw_flags as u64,
        ]
    };
    let plain = |cb: &Iocb| [fd, cb.buf, cb.nbytes, cb.offset as u64, 0, 0];
    let result = match cb.opcode {
        IOCB_CMD_PREAD | IOCB_CMD_PWRITE | IOCB_CMD_PREADV | IOCB_CMD_PWRITEV if cb.offset < 0 => {
            return Err(Errno::INVAL);
        }
        IOCB_CMD_PREAD | IOCB_CMD_PWRITE if cb.rw_flags != 0 => return Err(Errno::INVAL),
        IOCB_CMD_PREAD => fs::pread64(ctx, &plain(&cb)),
        IOCB_CMD_PWRITE => fs::pwrite64(ctx, &plain(&cb)),
        IOCB_CMD_PREADV => fs::preadv2(ctx, &vectored(&cb)),
        IOCB_CMD_PWRITEV => fs::pwritev2(ctx, &vectored(&cb)),
        IOCB_CMD_FSYNC | IOCB_CMD_FDSYNC
            if cb.buf != 0 || cb.nbytes != 0 || cb.offset != 0 || cb.rw_flags != 0 =>
        {
            return Err(Errno::INVAL);
        }
        IOCB_CMD_FSYNC => fs::fsync(ctx, &plain(&cb)),
        IOCB_CMD_FDSYNC => fs::fdatasync(ctx, &plain(&cb)),
        IOCB_CMD_POLL => {
            if cb.buf >> 32 != 0 || cb.nbytes != 0 || cb.offset != 0 || cb.rw_flags != 0 {
                return Err(Errno::INVAL);
            }
            // Linux reports the "normal data" bits with POLLIN and POLLOUT.
            let mut events =
                PollFlags::from_bits_truncate(cb.buf as u16) | PollFlags::ERR | PollFlags::HUP;
            if events.contains(PollFlags::IN) {
                events |= PollFlags::RDNORM;
            }
            if events.contains(PollFlags::OUT) {
                events |= PollFlags::WRNORM;
            }
            let poll = AioPoll {
                fd: file,
                events: events.bits() as i16,
                data: cb.data,
                obj,
                resfd,
            };
            let mut contexts = lock(&ctx.guest.aio);
            let context = contexts.get_mut(&id).ok_or(Errno::INVAL)?;
            context.polls.push(poll);
            complete_ready_polls(context);
            return Ok(());
        }
        _ => return Err(Errno::INVAL),
    };
    let res = match result {
        Ok(n) => n,
        Err(e) => (-(e.raw_os_error() as i64)) as u64,
    };
    let mut contexts = lock(&ctx.guest.aio);
    let context = contexts.get_mut(&id).ok_or(Errno::INVAL)?;
    complete(context, [cb.data, obj, res, 0], resfd.as_deref());
    Ok(())
}

/// Queues event `event` and tells the request's eventfd, if it named one.
fn complete(context: &mut AioContext, event: IoEvent, resfd: Option<&std::os::fd::OwnedFd>) {
    context.done.push_back(event);
    if let Some(resfd) = resfd {
        // A full counter or another kind of descriptor drops the notice, as Linux's
        // eventfd_signal does.
        let _ = rustix::io::write(resfd, &1u64.to_ne_bytes());
    }
}

/// Completes the context's polls whose descriptors are ready.
fn complete_ready_polls(context: &mut AioContext) {
    if context.polls.is_empty() {
        return;
    }
    let mut fds: Vec<PollFd<'_>> = context
        .polls
        .iter()
        .map(|p| PollFd::new(&p.fd, PollFlags::from_bits_truncate(p.events as u16)))
        .collect();
    let now = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut fds, Some(&now)).unwrap_or(0) == 0 {
        return;
    }
    let ready: Vec<u16> = fds.iter().map(|f| f.revents().bits()).collect();
    drop(fds);
    let mut waiting = Vec::new();
    for (poll, revents) in std::mem::take(&mut context.polls).into_iter().zip(ready) {
        let got = revents & poll.events as u16;
        if got == 0 {
            waiting.push(poll);
            continue;
        }
        complete(
            context,
            [poll.data, poll.obj, got as u64, 0],
            poll.resfd.as_deref(),
        );
    }
    context.polls = waiting;
}

/// io_getevents(ctx, min_nr, nr, events, timeout): waits until `min_nr` requests
/// are complete (or the timeout passes, or a signal comes) and takes up to `nr`.
pub fn io_getevents(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (id, min_nr, nr, events) = (a[0], a[1] as i64, a[2] as i64, a[3]);
    if min_nr < 0 || nr < 0 || min_nr > nr {
        return Err(Errno::INVAL);
    }
    let deadline = ctx.read_deadline(a[4])?;
    let (min_nr, nr) = (min_nr as u64, nr as u64);
    let mut got = 0u64;
    loop {
        let taken: Vec<IoEvent> = {
            let mut contexts = lock(&ctx.guest.aio);
            let context = contexts.get_mut(&id).ok_or(Errno::INVAL)?;
            complete_ready_polls(context);
            let n = (nr - got).min(context.done.len() as u64) as usize;
            context.done.drain(..n).collect()
        };
        for event in taken {
            let at = events.checked_add(got * EVENT_SIZE).ok_or(Errno::FAULT)?;
            ctx.write_obj(at, event)?;
            got += 1;
        }
        if got >= min_nr || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(got);
        }
        if ctx.wait_ends() {
            return if got > 0 { Ok(got) } else { Err(Errno::INTR) };
        }
        // Waiting polls are looked at more often than completions can come.
        let polling = lock(&ctx.guest.aio)
            .get(&id)
            .is_some_and(|c| !c.polls.is_empty());
        let step = if polling { POLL_SLICE } else { WAIT_SLICE };
        let slice = deadline.map_or(step, |d| {
            d.saturating_duration_since(Instant::now()).min(step)
        });
        std::thread::sleep(slice);
    }
}

/// io_cancel(ctx, iocb, result): a poll still waiting completes (with no events)
/// and the call says EINPROGRESS, as Linux's; anything else has completed: EINVAL.
pub fn io_cancel(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let cb = read_iocb(ctx, a[1])?;
    if cb.key != 0 {
        return Err(Errno::INVAL);
    }
    let mut contexts = lock(&ctx.guest.aio);
    let context = contexts.get_mut(&a[0]).ok_or(Errno::INVAL)?;
    let at = context
        .polls
        .iter()
        .position(|p| p.obj == a[1])
        .ok_or(Errno::INVAL)?;
    let poll = context.polls.remove(at);
    complete(context, [poll.data, poll.obj, 0, 0], poll.resfd.as_deref());
    Err(Errno::INPROGRESS)
}
