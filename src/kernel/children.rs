//! Exit reports: a fork child tells its parent how it ended before its teardown.
//!
//! A forked km's host process ends only after KVM's teardown of its VM (its NX
//! recovery thread, a thread of the child's own group, unmaps km's memory and
//! destroys the VM), several hundred µs after the payload's exit_group. So the
//! child km, once the payload has exited (and km has closed the payload's
//! descriptors), writes an exit report (pid, status, uid, process group, rusage)
//! on the pipe its parent gave it at the fork (the pipe that carried its set-up
//! result) and sends its parent km a SIGCHLD as a doorbell. The parent's wait4 and
//! waitid answer from the report, and the host process, which the payload has
//! then reaped, is reaped by km later: hidden from every wait, ESRCH to kill and
//! pidfd_open. A child that ends any other way (killed by a signal) gives no
//! report and is seen through the host's wait as before.
//!
//! An execve keeps the pid, so the payload stays the parent's child: the exec'ing
//! km passes the pipe on to the new km (`--exit-report`, a copy inherited by that
//! exec only), which reports on it in turn. A vfork (or posix_spawn) child gets a
//! pipe too, whose write end only its execve passes on: its parent adopts the read
//! end once the child has exec'd or exited (an exit without exec closes it).
//!
//! The table lives in km's memory: a vfork child (which shares it) uses none of it.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustix::io::Errno;

use crate::kernel::lock;
use crate::memory::host;

/// Size of `struct rusage`.
const RUSAGE_SIZE: usize = 144;
/// An exit report on the pipe: pid, exit code, uid, process group, rusage.
const REPORT_SIZE: usize = 16 + RUSAGE_SIZE;
/// At most this many children hold a report pipe at a time (each is a host
/// descriptor of km's); later ones are waited for through the host.
const MAX_OPEN: usize = 256;
/// How many reaped children's pids are remembered to drop their late host SIGCHLD.
const GHOSTS: usize = 64;

/// A child's exit, from its report.
#[derive(Clone, Copy)]
pub struct Exited {
    pub pid: i32,
    /// The exit code (0-255).
    pub code: i32,
    pub uid: u32,
    pgid: i32,
    pub rusage: [u8; RUSAGE_SIZE],
}

impl Exited {
    fn parse(b: &[u8; REPORT_SIZE]) -> Exited {
        let word = |at: usize| i32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        Exited {
            pid: word(0),
            code: word(4) & 0xff,
            uid: word(8) as u32,
            pgid: word(12),
            rusage: b[16..].try_into().expect("a rusage"),
        }
    }

    fn bytes(&self) -> [u8; REPORT_SIZE] {
        let mut b = [0u8; REPORT_SIZE];
        b[0..4].copy_from_slice(&self.pid.to_ne_bytes());
        b[4..8].copy_from_slice(&self.code.to_ne_bytes());
        b[8..12].copy_from_slice(&self.uid.to_ne_bytes());
        b[12..16].copy_from_slice(&self.pgid.to_ne_bytes());
        b[16..].copy_from_slice(&self.rusage);
        b
    }

    /// User and system time in clock ticks (siginfo's si_utime and si_stime).
    pub fn ticks(&self) -> (u64, u64) {
        let w = rusage_words(&self.rusage);
        let t = |sec: i64, usec: i64| (sec.max(0) as u64) * 100 + (usec.max(0) as u64) / 10_000;
        (t(w[0], w[1]), t(w[2], w[3]))
    }
}

enum Entry {
    /// Running: its report, if any, comes on this pipe (non-blocking).
    Open(OwnedFd),
    /// Exited, report read, not yet waited for by the payload.
    Reported(Exited),
    /// Waited for by the payload; its host process is still to be reaped.
    Consumed,
}

#[derive(Default)]
struct Table {
    entries: HashMap<i32, Entry>,
    /// Children reaped on the host after their report: their host SIGCHLD, which
    /// may still be on its way, is not the payload's.
    ghosts: VecDeque<i32>,
    /// Reports read and not yet raised as the payload's SIGCHLD.
    fresh: Vec<Exited>,
}

/// Whether `fresh` may hold reports (read without the table's lock).
static FRESH: AtomicBool = AtomicBool::new(false);

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// In a fork child: the pipe to its parent km, and the pid it was given to
/// (a vfork child, running in this memory, is another process and sends nothing).
static TO_PARENT: Mutex<Option<(i32, OwnedFd)>> = Mutex::new(None);

/// The process whose children the table holds (a vfork child, in the same
/// memory, is another process and must not reap them).
static OWNER: AtomicI32 = AtomicI32::new(0);

fn own_pid() -> i32 {
    rustix::process::getpid().as_raw_nonzero().get()
}

fn with_table<T>(f: impl FnOnce(&mut Table) -> T) -> T {
    f(lock(&TABLE).get_or_insert_with(|| {
        OWNER.store(own_pid(), Ordering::SeqCst);
        Table::default()
    }))
}

impl Table {
    fn ghost(&mut self, pid: i32) {
        self.entries.remove(&pid);
        if self.ghosts.len() == GHOSTS {
            self.ghosts.pop_front();
        }
        self.ghosts.push_back(pid);
    }

    /// Reads the report of every child whose pipe has one, into `fresh`. A pipe
    /// at end of file (the child exec'd or died without a report) is dropped: that
    /// child is the host's. When the payload's children are reaped without wait
    /// (`auto_reap`), the host reaps a reported one: no report is kept.
    fn drain(&mut self, auto_reap: bool) {
        // A vfork child has descriptors of its own under the same numbers.
        if OWNER.load(Ordering::SeqCst) != own_pid() {
            return;
        }
        let mut closed = Vec::new();
        let mut gone = Vec::new();
        for (pid, entry) in self.entries.iter_mut() {
            let Entry::Open(fd) = entry else { continue };
            let mut b = [0u8; REPORT_SIZE];
            match rustix::io::read(fd.as_fd(), &mut b) {
                Ok(REPORT_SIZE) => {
                    let mut exited = Exited::parse(&b);
                    exited.pid = *pid;
                    *entry = Entry::Reported(exited);
                    self.fresh.push(exited);
                    if auto_reap {
                        gone.push(*pid);
                    }
                }
                Err(Errno::AGAIN) | Err(Errno::INTR) => {}
                _ => closed.push(*pid),
            }
        }
        for pid in closed {
            self.entries.remove(&pid);
        }
        for pid in gone {
            self.ghost(pid);
        }
        if !self.fresh.is_empty() {
            FRESH.store(true, Ordering::SeqCst);
        }
    }
}

/// In the parent, once fork child `pid` is set up: keeps `pipe`, on which its
/// exit report will come.
pub fn adopt(pid: i32, pipe: OwnedFd) {
    with_table(|t| {
        t.ghosts.retain(|g| *g != pid);
        sweep(t);
        let open = t
            .entries
            .values()
            .filter(|e| matches!(e, Entry::Open(_)))
            .count();
        if open < MAX_OPEN && rustix::io::ioctl_fionbio(&pipe, true).is_ok() {
            t.entries.insert(pid, Entry::Open(pipe));
        }
    });
}

/// Reaps, without waiting, the children the payload has waited for whose host
/// processes have ended.
fn sweep(t: &mut Table) {
    let consumed: Vec<i32> = t
        .entries
        .iter()
        .filter(|(_, e)| matches!(e, Entry::Consumed))
        .map(|(pid, _)| *pid)
        .collect();
    for pid in consumed {
        if reap_host(pid, false) {
            t.ghost(pid);
        }
    }
}

/// Reaps host process `pid` (a child of km's); `block`: waits for it to end.
/// True once it is reaped (or is no child of km's any more).
fn reap_host(pid: i32, block: bool) -> bool {
    if OWNER.load(Ordering::SeqCst) != own_pid() {
        return false;
    }
    let options = libc::__WALL | if block { 0 } else { libc::WNOHANG };
    loop {
        match host::waitpid(pid, options) {
            Ok(0) => return false,
            Err(Errno::INTR) => {}
            _ => return true,
        }
    }
}

/// Which children a wait is for.
#[derive(Clone, Copy)]
pub enum Select {
    Any,
    Pid(i32),
    Group(i32),
}

impl Select {
    fn matches(self, e: &Exited) -> bool {
        match self {
            Select::Any => true,
            Select::Pid(p) => e.pid == p,
            Select::Group(g) => e.pgid == g,
        }
    }
}

/// A host SIGCHLD from child `host_pid` came: reads the reports that came (see
/// [`take_fresh`]) and says whether that SIGCHLD is one of a child that gave a
/// report (its doorbell, or its end on the host), which the payload does not
/// get twice. A reported child the payload has waited for is reaped here when
/// its host process has ended.
pub fn host_sigchld(host_pid: i32, auto_reap: bool) -> bool {
    let mut guard = lock(&TABLE);
    let Some(t) = guard.as_mut() else {
        return false;
    };
    t.drain(auto_reap);
    match t.entries.get(&host_pid) {
        Some(Entry::Consumed) => {
            if reap_host(host_pid, false) {
                t.ghost(host_pid);
            }
            true
        }
        Some(Entry::Reported(_)) => true,
        Some(Entry::Open(_)) | None => t.ghosts.contains(&host_pid),
    }
}

/// The reports read since the last call, each given once: the payload's SIGCHLD
/// for each.
pub fn take_fresh() -> Vec<Exited> {
    if !FRESH.swap(false, Ordering::SeqCst) {
        return Vec::new();
    }
    lock(&TABLE)
        .as_mut()
        .map(|t| std::mem::take(&mut t.fresh))
        .unwrap_or_default()
}

/// Takes (or with `keep`, only reads) the report of an exited child `select`
/// matches, after reading the reports that came.
pub fn take_report(select: Select, keep: bool) -> Option<Exited> {
    with_table(|t| {
        t.drain(false);
        t.entries.iter_mut().find_map(|(_, e)| match e {
            Entry::Reported(r) if select.matches(r) => {
                let r = *r;
                if !keep {
                    *e = Entry::Consumed;
                }
                Some(r)
            }
            _ => None,
        })
    })
}

/// What a host wait's answer for child `pid` means to the payload.
pub enum Seen {
    /// A child the payload has waited for already: not its business (look again).
    Hidden,
    /// A child that gave a report: answer with that.
    Report(Exited),
    /// The host's answer stands.
    Host,
}

/// Judges the host wait's answer for `pid`: `ended` when it was an exit or death
/// (not a stop or continue), `reaped` when the host wait reaped it (no WNOWAIT).
/// The payload's waiting `keep`s a report when it asked for WNOWAIT.
pub fn host_answer(pid: i32, ended: bool, reaped: bool, keep: bool) -> Seen {
    with_table(|t| {
        if let Some(Entry::Open(_)) = t.entries.get(&pid) {
            // Written before the child's exit: read it now if it is there.
            t.drain(false);
        }
        match t.entries.get(&pid) {
            Some(Entry::Consumed) => {
                if reaped || reap_host(pid, false) {
                    t.ghost(pid);
                }
                Seen::Hidden
            }
            Some(Entry::Reported(r)) => {
                let r = *r;
                if !keep {
                    if ended && reaped {
                        t.ghost(pid);
                    } else {
                        t.entries.insert(pid, Entry::Consumed);
                    }
                }
                Seen::Report(r)
            }
            Some(Entry::Open(_)) | None => {
                if ended && reaped {
                    t.entries.remove(&pid);
                }
                Seen::Host
            }
        }
    })
}

/// Waits for the host processes of the children the payload has waited for (an
/// execve or exit of km must not leave them to its successor or to init, and a
/// WNOHANG wait must see them gone); returns how many there were.
pub fn reap_waited() -> usize {
    if OWNER.load(Ordering::SeqCst) != own_pid() {
        return 0;
    }
    let consumed: Vec<i32> = with_table(|t| {
        t.entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Consumed))
            .map(|(pid, _)| *pid)
            .collect()
    });
    for pid in &consumed {
        reap_host(*pid, true);
    }
    with_table(|t| {
        for pid in &consumed {
            t.ghost(*pid);
        }
    });
    consumed.len()
}

/// Whether `pid` is a child the payload has waited for (gone, to the payload,
/// though its host process may still be ending).
pub fn waited_for(pid: i32) -> bool {
    lock(&TABLE)
        .as_ref()
        .is_some_and(|t| matches!(t.entries.get(&pid), Some(Entry::Consumed)))
}

/// Set once the payload has used System V semaphores (SEM_UNDO adjustments) or
/// shared memory (attachments): the host applies or drops those as km's process
/// ends, which the parent's wait must not return before, so the exit is seen
/// through the host. A fork child inherits it (and the attachments).
static EXIT_EFFECTS: AtomicBool = AtomicBool::new(false);

/// The payload uses something whose undoing at km's exit another process sees.
pub fn exit_has_effects() {
    EXIT_EFFECTS.store(true, Ordering::Relaxed);
}

/// Whether the payload used such a thing (see [`exit_has_effects`]).
pub fn has_exit_effects() -> bool {
    EXIT_EFFECTS.load(Ordering::Relaxed)
}

/// The children table and the pipe to the parent, held by a forking thread
/// across the host fork ([`hold_for_fork`]): another thread holding either at
/// that moment would leave it locked in the child for ever.
pub struct ForkHold {
    table: MutexGuard<'static, Option<Table>>,
    to_parent: MutexGuard<'static, Option<(i32, OwnedFd)>>,
}

/// Takes the locks the fork child goes on to reset ([`ForkHold::in_child`]).
/// Neither is held while another lock is taken, so any order is safe.
pub fn hold_for_fork() -> ForkHold {
    ForkHold {
        table: lock(&TABLE),
        to_parent: lock(&TO_PARENT),
    }
}

impl ForkHold {
    /// In a fork child: forgets the parent's children (none of them is this
    /// process's) and the parent's own pipe to its parent.
    pub fn in_child(mut self) {
        *self.table = None;
        OWNER.store(0, Ordering::SeqCst);
        FRESH.store(false, Ordering::SeqCst);
        *self.to_parent = None;
    }
}

/// In a fork child: keeps `pipe` to report this process's exit on.
pub fn report_to(pipe: OwnedFd) {
    *lock(&TO_PARENT) = Some((own_pid(), pipe));
}

/// Before an execve of km (which keeps the pid, so the payload stays its
/// parent's direct child): a copy of the pipe to the parent, at a number from
/// `min` and inherited by that exec only, which the new km reports on
/// (`--exit-report`). None when this process does not report (also when its exit
/// has effects another process sees, which an exec keeps).
pub fn pipe_for_exec(min: i32) -> Result<Option<OwnedFd>, Errno> {
    if !reports() {
        return Ok(None);
    }
    let guard = lock(&TO_PARENT);
    let Some((_, pipe)) = guard.as_ref() else {
        return Ok(None);
    };
    host::inheritable_copy(pipe.as_fd(), min).map(Some)
}

/// In a km re-executed for the payload's execve: `pipe` (`--exit-report`), the
/// pipe its predecessor reported on, if it is the write end of a pipe.
pub fn report_after_exec(pipe: OwnedFd) -> Result<(), String> {
    let stat = rustix::fs::fstat(&pipe).map_err(|e| e.to_string())?;
    let mode = rustix::fs::FileType::from_raw_mode(stat.st_mode);
    let flags = rustix::fs::fcntl_getfl(&pipe).map_err(|e| e.to_string())?;
    let writes = flags & rustix::fs::OFlags::RWMODE == rustix::fs::OFlags::WRONLY;
    if mode != rustix::fs::FileType::Fifo || !writes {
        return Err("not the write end of a pipe".into());
    }
    rustix::io::fcntl_setfd(&pipe, rustix::io::FdFlags::CLOEXEC).map_err(|e| e.to_string())?;
    report_to(pipe);
    Ok(())
}

/// Whether this process has a parent to report its exit to.
pub fn reports() -> bool {
    if EXIT_EFFECTS.load(Ordering::Relaxed) {
        return false;
    }
    let pid = own_pid();
    lock(&TO_PARENT).as_ref().is_some_and(|(p, _)| *p == pid)
}

/// The payload exited with `code`: tells the parent km (see the module's
/// documentation), which then may answer its payload's wait. The caller has
/// closed the payload's descriptors and is about to end km.
pub fn report_exit(code: i32) {
    let pid = own_pid();
    let Some((owner, pipe)) = lock(&TO_PARENT).take() else {
        return;
    };
    if owner != pid {
        return;
    }
    let usage = |who| {
        host::getrusage(who)
            .ok()
            .and_then(|b| <[u8; RUSAGE_SIZE]>::try_from(b.as_slice()).ok())
            .unwrap_or([0; RUSAGE_SIZE])
    };
    let (own, children) = (usage(libc::RUSAGE_SELF), usage(libc::RUSAGE_CHILDREN));
    let report = Exited {
        pid,
        code: code & 0xff,
        uid: rustix::process::getuid().as_raw(),
        pgid: rustix::process::getpgrp().as_raw_nonzero().get(),
        rusage: add_rusage(&own, &children),
    };
    if let Ok(REPORT_SIZE) = rustix::io::write(&pipe, &report.bytes()) {
        // The doorbell: the parent km's SIGCHLD handler kicks its threads.
        if let Some(parent) = rustix::process::getppid() {
            let mut info = [0u8; 128];
            info[0..4].copy_from_slice(&libc::SIGCHLD.to_ne_bytes());
            info[8..12].copy_from_slice(&SI_QUEUE.to_ne_bytes());
            info[16..20].copy_from_slice(&pid.to_ne_bytes());
            info[20..24].copy_from_slice(&report.uid.to_ne_bytes());
            info[24..32].copy_from_slice(&DOORBELL.to_ne_bytes());
            let parent = parent.as_raw_nonzero().get();
            let _ = host::rt_sigqueueinfo(parent, libc::SIGCHLD, &info);
        }
    }
}

/// si_code of a signal sent by sigqueue.
const SI_QUEUE: i32 = -1;
/// The doorbell's si_value ("kmexitrp").
const DOORBELL: u64 = 0x6b6d_6578_6974_7270;

/// Whether the host SIGCHLD whose siginfo starts with `info` is a child's
/// doorbell (which may come before km knows the child: never the payload's).
pub fn is_doorbell(info: &[u8]) -> bool {
    info.len() >= 32
        && i32::from_ne_bytes(info[8..12].try_into().expect("si_code")) == SI_QUEUE
        && u64::from_ne_bytes(info[24..32].try_into().expect("si_value")) == DOORBELL
}

fn rusage_words(r: &[u8; RUSAGE_SIZE]) -> [i64; 18] {
    let mut w = [0i64; 18];
    for (word, chunk) in w.iter_mut().zip(r.chunks_exact(8)) {
        *word = i64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
    }
    w
}

/// A process's and its waited-for children's usage together, as wait4 gives it:
/// times and counts added, the larger maximum resident size.
fn add_rusage(a: &[u8; RUSAGE_SIZE], b: &[u8; RUSAGE_SIZE]) -> [u8; RUSAGE_SIZE] {
    let (a, b) = (rusage_words(a), rusage_words(b));
    let mut sum = [0i64; 18];
    for i in 0..18 {
        sum[i] = if i == 4 { a[i].max(b[i]) } else { a[i] + b[i] };
    }
    for time in [0, 2] {
        sum[time] += sum[time + 1] / 1_000_000;
        sum[time + 1] %= 1_000_000;
    }
    let mut out = [0u8; RUSAGE_SIZE];
    for (chunk, word) in out.chunks_exact_mut(8).zip(sum) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    out
}
