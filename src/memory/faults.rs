//! Host faults on guest memory during km's own accesses.
//!
//! A guest page can be backed by a host page km cannot touch: a shared (or not yet
//! copied private) file mapping whose file was truncated below it raises SIGBUS on
//! access, a read-only file mapping SIGSEGV on a write. km's copies to and from
//! guest memory run inside [`guarded`]; when one of them faults on a guest region,
//! the SIGBUS/SIGSEGV handler installed by [`install`] moves the offending host page
//! aside (`mremap` to a spare address, so its file, offset and protection are kept),
//! maps a zero page in its place and returns, so the copy finishes on harmless
//! memory. When the copy is done, [`guarded`] moves the original pages back (later
//! accesses fault again, as on Linux) and reports the copy as failed: the syscall
//! gets EFAULT. Faults outside a guarded copy, or at an address outside the guest's
//! regions, are reported and go to the previous handler (Rust's stack-overflow
//! check, then the default action): they are km's bugs and still kill it.
//!
//! While a page is aside, other threads would find the zero page in its place, so
//! one thread at a time may have pages aside (the others' faults wait their turn),
//! a guarded copy starts only when no other thread has, and a copy during which
//! another thread set a page aside runs again. Guarded copies are single copies of
//! the checked helpers (never a whole syscall), so a turn lasts microseconds. What
//! the host kernel copies for km (read(2) into guest memory) and the payload's own
//! accesses are not held back: in that window they meet the zero page.
//!
//! The cost on the syscall path is a few atomic and thread-local reads per copy
//! (about 12 ns); the fault path costs a signal and three mappings per page.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering, compiler_fence};

use anyhow::{Result, bail};

const PAGE: usize = 4096;

/// Host ranges of the guest's regions, `[start, end)`; unused slots are empty.
/// Room for two guests' (a handful each): an execve in place builds the new
/// program's before the old one's go.
const MAX_REGIONS: usize = 16;
static REGIONS: [[AtomicUsize; 2]; MAX_REGIONS] =
    [const { [const { AtomicUsize::new(0) }, const { AtomicUsize::new(0) }] }; MAX_REGIONS];

/// The host thread whose guarded copy has pages moved aside (0: none).
static OWNER: AtomicI32 = AtomicI32::new(0);
/// Pages ever set aside, by any thread: a copy that sees it change ran while
/// another thread had a zero page in place.
static SET_ASIDE: AtomicU64 = AtomicU64::new(0);

/// The handlers km replaced, for faults that are not guest copies.
static PREVIOUS_SIGBUS: OnceLock<Previous> = OnceLock::new();
static PREVIOUS_SIGSEGV: OnceLock<Previous> = OnceLock::new();

struct Previous(libc::sigaction);

// SAFETY: a sigaction is plain data (a handler address, flags and a mask); it is
// written once before any handler can read it.
unsafe impl Sync for Previous {}
// SAFETY: as above.
unsafe impl Send for Previous {}

/// Pages one thread can keep aside at once; beyond, a faulting page is replaced by
/// a zero page for good (the payload then reads zeroes there instead of SIGBUS).
const MAX_ASIDE: usize = 1024;

thread_local! {
    /// How many guarded copies this thread is inside.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Faults this thread recovered from, ever.
    static FAULTS: Cell<u64> = const { Cell::new(0) };
    /// Pages moved aside: (the guest page's host address, where it went; 0 if lost).
    static ASIDE: [Cell<(usize, usize)>; MAX_ASIDE] =
        const { [const { Cell::new((0, 0)) }; MAX_ASIDE] };
    static ASIDE_LEN: Cell<usize> = const { Cell::new(0) };
}

/// In a forked km, which has only the forking thread: pages other threads had set
/// aside stay zero pages in the child's copy, and their turn ends.
pub fn after_fork() {
    let owner = if ASIDE_LEN.get() == 0 {
        0
    } else {
        this_thread()
    };
    OWNER.store(owner, Ordering::SeqCst);
}

/// Records host range `[start, start + len)` as guest memory.
pub fn register(start: usize, len: usize) -> Result<()> {
    for [s, e] in &REGIONS {
        if s.compare_exchange(0, start, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            e.store(start + len, Ordering::Release);
            return Ok(());
        }
    }
    bail!("more than {MAX_REGIONS} guest regions");
}

/// Forgets host range `[start, ..)` recorded by [`register`]: that guest memory
/// is gone (its program exec'd another).
pub fn unregister(start: usize) {
    for [s, e] in &REGIONS {
        if s.load(Ordering::Acquire) == start {
            // Empty first, then free: a reader never sees another range's end.
            e.store(0, Ordering::Release);
            s.store(0, Ordering::Release);
            return;
        }
    }
}

fn in_guest(addr: usize) -> bool {
    REGIONS.iter().any(|[s, e]| {
        let start = s.load(Ordering::Acquire);
        start != 0 && (start..e.load(Ordering::Acquire)).contains(&addr)
    })
}

/// Runs `copy`, one copy to or from guest memory (it may run more than once);
/// `None` if it touched a host page that faults (it then ran to its end on zero
/// pages, whose contents mean nothing).
pub fn guarded<T>(mut copy: impl FnMut() -> T) -> Option<T> {
    loop {
        while others_have_pages() {
            std::thread::yield_now();
        }
        // A thread setting a page aside takes its turn before counting the page and
        // counts it before moving it: either the turn is seen below, or the count
        // changes before this copy can meet the zero page.
        let epoch = SET_ASIDE.load(Ordering::SeqCst);
        if others_have_pages() {
            continue;
        }
        let start = ASIDE_LEN.get();
        let before = FAULTS.get();
        DEPTH.set(DEPTH.get() + 1);
        compiler_fence(Ordering::SeqCst);
        let out = copy();
        compiler_fence(Ordering::SeqCst);
        DEPTH.set(DEPTH.get() - 1);
        let faulted = FAULTS.get() != before;
        restore_from(start);
        if faulted {
            return None;
        }
        if SET_ASIDE.load(Ordering::SeqCst) == epoch {
            return Some(out);
        }
    }
}

fn this_thread() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// Whether another thread has pages aside.
fn others_have_pages() -> bool {
    let owner = OWNER.load(Ordering::SeqCst);
    owner != 0 && owner != this_thread()
}

/// Moves the pages set aside since entry `start` back in place; the last one out
/// lets other threads recover their faults.
fn restore_from(start: usize) {
    let len = ASIDE_LEN.get();
    if len == start {
        return;
    }
    ASIDE.with(|aside| {
        for slot in aside[start..len].iter().rev() {
            let (page, spare) = slot.get();
            if spare != 0 {
                // SAFETY: `spare` holds the page moved away from `page` (a guest page
                // inside a region reservation) by `set_aside`; moving it back
                // replaces the zero page mapped there meanwhile.
                unsafe { move_page(spare, page) };
            }
        }
    });
    ASIDE_LEN.set(start);
    if start == 0 {
        OWNER.store(0, Ordering::SeqCst);
    }
}

/// mremap of one page from `from` to `to`, replacing whatever is at `to`.
///
/// # Safety
/// Both addresses must be page aligned and `to` must be memory no Rust reference
/// points into (guest memory or a spare page of this module).
unsafe fn move_page(from: usize, to: usize) -> bool {
    // SAFETY: see the function's contract.
    let p = unsafe {
        libc::mremap(
            from as *mut libc::c_void,
            PAGE,
            PAGE,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to as *mut libc::c_void,
        )
    };
    p != libc::MAP_FAILED
}

/// Maps an anonymous page at `at` (MAP_FIXED when `at` is not 0); returns its address.
///
/// # Safety
/// `at` must be 0 or a page of guest memory no Rust reference points into.
unsafe fn anonymous_page(at: usize, prot: i32) -> Option<usize> {
    let fixed = if at == 0 { 0 } else { libc::MAP_FIXED };
    // SAFETY: see the function's contract.
    let p = unsafe {
        libc::mmap(
            at as *mut libc::c_void,
            PAGE,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | fixed,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Makes this thread the one with pages aside, waiting for another to finish.
fn take_turn() {
    let me = this_thread();
    while let Err(owner) = OWNER.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        if owner == me {
            return;
        }
        // SAFETY: sched_yield has no arguments.
        unsafe { libc::sched_yield() };
    }
}

/// In the fault handler: replaces guest page `page` (host address) by a zero page,
/// keeping the original aside. Returns false if nothing could be done.
fn set_aside(page: usize) -> bool {
    take_turn();
    SET_ASIDE.fetch_add(1, Ordering::SeqCst);
    let len = ASIDE_LEN.get();
    // SAFETY: `page` is a guest page inside a region reservation, which km only
    // reaches through volatile copies (no Rust reference into it); the spare page is
    // a fresh mapping of this module.
    let spare = unsafe {
        if len == MAX_ASIDE {
            0
        } else {
            let Some(spare) = anonymous_page(0, libc::PROT_NONE) else {
                return false;
            };
            if !move_page(page, spare) {
                libc::munmap(spare as *mut libc::c_void, PAGE);
                return false;
            }
            spare
        }
    };
    // SAFETY: as above; `page` is now a hole (or the lost page, replaced).
    if unsafe { anonymous_page(page, libc::PROT_READ | libc::PROT_WRITE) }.is_none() {
        if spare != 0 {
            // SAFETY: moving the original back where it was.
            unsafe { move_page(spare, page) };
        }
        return false;
    }
    if len < MAX_ASIDE {
        ASIDE.with(|aside| aside[len].set((page, spare)));
        ASIDE_LEN.set(len + 1);
    }
    FAULTS.set(FAULTS.get() + 1);
    true
}

/// Writes "km: host signal N at 0x...: not a guest memory copy (a km bug)" to
/// stderr without allocating (the handler may run on a broken heap).
fn report_bug(sig: libc::c_int, addr: usize) {
    let mut line = [0u8; 96];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        line[len..len + bytes.len()].copy_from_slice(bytes);
        len += bytes.len();
    };
    put(b"km: host signal ");
    if sig >= 10 {
        put(&[b'0' + (sig / 10 % 10) as u8]);
    }
    put(&[b'0' + (sig % 10) as u8]);
    put(b" at 0x");
    let hex: [u8; 16] = std::array::from_fn(|i| b"0123456789abcdef"[(addr >> (60 - 4 * i)) & 0xf]);
    put(&hex);
    put(b": not a guest memory copy (a km bug)\n");
    // SAFETY: writes `len` bytes of the stack buffer to stderr.
    unsafe { libc::write(2, line.as_ptr().cast(), len) };
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo; si_addr is set for a fault, which
    // the kernel reports with a positive si_code (a signal sent by a process has
    // none and never counts as a fault).
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code > 0 {
        if DEPTH.get() > 0 && in_guest(addr) && set_aside(addr & !(PAGE - 1)) {
            return;
        }
        report_bug(sig, addr);
    }
    let previous = match sig {
        libc::SIGBUS => PREVIOUS_SIGBUS.get(),
        _ => PREVIOUS_SIGSEGV.get(),
    };
    match previous.map(|p| (p.0.sa_sigaction, p.0.sa_flags)) {
        Some((handler, flags)) if handler != libc::SIG_DFL && handler != libc::SIG_IGN => {
            // SAFETY: the previous handler was installed for this signal with these
            // flags; it gets the same arguments the kernel gave.
            unsafe {
                if flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(sig);
                }
            }
        }
        // The default action: returning re-runs the access, which now kills km.
        // SAFETY: restoring a signal's default disposition.
        _ => unsafe {
            libc::signal(sig, libc::SIG_DFL);
        },
    }
}

/// Installs the handler for SIGBUS and SIGSEGV (once per km process).
pub fn install() -> Result<()> {
    for (sig, previous) in [
        (libc::SIGBUS, &PREVIOUS_SIGBUS),
        (libc::SIGSEGV, &PREVIOUS_SIGSEGV),
    ] {
        let handler =
            on_fault as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);
        // SAFETY: zeroed sigactions are valid; the handler is async-signal-safe (atomics,
        // thread-local cells and raw mmap/mremap/munmap/sched_yield calls), and runs on
        // the alternate stack where a thread has one (Rust's stack-overflow check),
        // with every other signal blocked: a kick or forwarded signal handled on top
        // of it overflowed that small stack (found by the syscall fuzzer).
        let (rc, old) = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigfillset(&mut sa.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(sig, &sa, &mut old), old)
        };
        if rc != 0 {
            bail!(
                "installing km's handler for host signal {sig}: {}",
                std::io::Error::last_os_error()
            );
        }
        let _ = previous.set(Previous(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd};

    /// A shared mapping of a two-page file truncated to one page: its second page
    /// raises SIGBUS.
    fn truncated_mapping() -> (std::fs::File, usize) {
        let path = std::env::temp_dir().join(format!("km-faults-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("creating the file");
        let _ = std::fs::remove_file(&path);
        file.set_len(2 * PAGE as u64).expect("sizing the file");
        // SAFETY: a new shared mapping of the file, placed by the kernel.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        file.set_len(PAGE as u64).expect("truncating the file");
        (file, map as usize)
    }

    /// In a child process (so the handler and the registered range are its own): a
    /// guarded read of the page past EOF fails, the page faults again afterwards,
    /// and the same read outside a guarded copy is reported and kills by SIGBUS.
    #[test]
    fn faults_fail_guarded_copies_and_kill_elsewhere() {
        let (_file, map) = truncated_mapping();
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes raw system calls and touches atomics and
        // thread-local cells (no allocation) before it dies or exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: see above; `map` is the mapping made before the fork.
            unsafe {
                libc::dup2(fds[1], 2);
                let past_eof = (map + PAGE) as *const u8;
                let ok = install().is_ok()
                    && register(map, 2 * PAGE).is_ok()
                    && guarded(|| std::ptr::read_volatile(past_eof)).is_none()
                    && guarded(|| std::ptr::read_volatile(map as *const u8)) == Some(0)
                    && guarded(|| std::ptr::read_volatile(past_eof)).is_none();
                if ok {
                    std::ptr::read_volatile(past_eof);
                }
                libc::_exit(3);
            }
        }
        let mut report = String::new();
        // SAFETY: closing the parent's copy of the write end; the read end is owned
        // by the File from here on.
        unsafe {
            libc::close(fds[1]);
            std::fs::File::from_raw_fd(fds[0])
        }
        .read_to_string(&mut report)
        .expect("reading the child's stderr");
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS,
            "child status {status:#x}: {report}"
        );
        let expected = format!(
            "km: host signal 7 at {:#018x}: not a guest memory copy",
            map + PAGE
        );
        assert!(report.contains(&expected), "{report}");
    }
}
