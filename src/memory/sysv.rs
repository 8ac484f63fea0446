//! Host System V semaphore and message-queue calls for the payload, with km
//! buffers only.
//!
//! The kernel sizes some transfers by the object itself, never by an argument
//! (semctl GETALL/SETALL by the set's semaphore count, msgrcv by the message
//! received): the count km read before can be stale by the time of the call (the
//! id removed and reused meanwhile). Those transfers go through a [`GuardedBuf`],
//! whose bytes end at an inaccessible page, so a longer transfer fails with
//! EFAULT in the kernel instead of reaching past km's buffer.

use rustix::io::Errno;

use super::PAGE_SIZE;

/// A host call's result (errno from a negative one).
fn check(ret: libc::c_long) -> Result<u64, Errno> {
    super::host::check(ret).map(|n| n as u64)
}

/// `len` bytes of km memory followed by an inaccessible page (see the module).
pub struct GuardedBuf {
    map: *mut u8,
    map_len: usize,
    /// Where the bytes start: they end at the guard page.
    start: usize,
    len: usize,
}

/// The largest buffer a thread keeps for its next call (MSGMAX's default is 8 KiB).
const KEPT_MAX: usize = 64 << 10;

thread_local! {
    /// This thread's buffer from its last call, kept when small: a new mapping and
    /// its first touch cost more than the call itself (about 15 us on a nested host).
    static KEPT: std::cell::RefCell<Option<GuardedBuf>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with a buffer of `len` bytes ending at a guard page: this thread's
/// kept one when it is large enough, else a new one (kept afterwards if small).
/// The bytes are not zeroed: callers use only what they or the kernel wrote.
pub fn with_guarded<T>(len: usize, f: impl FnOnce(&mut GuardedBuf) -> T) -> Result<T, Errno> {
    let kept = KEPT.with(|k| k.borrow_mut().take());
    let mut buf = match kept {
        Some(mut b) if b.capacity() >= len => {
            b.start = b.capacity() - len;
            b.len = len;
            b
        }
        _ => GuardedBuf::new(len)?,
    };
    let result = f(&mut buf);
    if buf.capacity() <= KEPT_MAX {
        KEPT.with(|k| *k.borrow_mut() = Some(buf));
    }
    Ok(result)
}

impl GuardedBuf {
    /// The accessible bytes before the guard page.
    fn capacity(&self) -> usize {
        self.map_len - PAGE_SIZE as usize
    }

    /// Zeroed bytes; only the pages written to take host memory.
    pub fn new(len: usize) -> Result<Self, Errno> {
        let page = PAGE_SIZE as usize;
        let data = len.checked_next_multiple_of(page).ok_or(Errno::NOMEM)?;
        let map_len = data.checked_add(page).ok_or(Errno::NOMEM)?;
        // SAFETY: a new private anonymous mapping of km's own, placed by the host;
        // nothing else refers to it.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(Errno::NOMEM);
        }
        let buf = GuardedBuf {
            map: map.cast(),
            map_len,
            start: data - len,
            len,
        };
        // SAFETY: the first `data` bytes of the mapping made above; the last page
        // stays inaccessible.
        let rc = unsafe { libc::mprotect(map, data, libc::PROT_READ | libc::PROT_WRITE) };
        if rc != 0 {
            return Err(Errno::NOMEM);
        }
        Ok(buf)
    }

    fn ptr(&mut self) -> *mut u8 {
        // SAFETY: `start` is within the mapping (at most its data part's length).
        unsafe { self.map.add(self.start) }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes from `start`, owned by this buffer.
        unsafe { std::slice::from_raw_parts(self.map.add(self.start), self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let p = self.ptr();
        // SAFETY: `len` writable bytes from `start`, borrowed mutably from the buffer.
        unsafe { std::slice::from_raw_parts_mut(p, self.len) }
    }
}

impl Drop for GuardedBuf {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `new` made; no borrow of it outlives
        // the buffer.
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// Size of `struct semid64_ds` (IPC_STAT, SEM_STAT, SEM_STAT_ANY, IPC_SET).
pub const SEMID_DS_SIZE: usize = 104;
/// Size of `struct seminfo` (IPC_INFO, SEM_INFO).
pub const SEMINFO_SIZE: usize = 40;
/// Size of `struct msqid64_ds` (IPC_STAT, MSG_STAT, MSG_STAT_ANY, IPC_SET).
pub const MSQID_DS_SIZE: usize = 120;
/// Size of `struct msginfo` (IPC_INFO, MSG_INFO).
pub const MSGINFO_SIZE: usize = 32;
/// Size of `struct sembuf`.
pub const SEMBUF_SIZE: usize = 6;

// Linux's semctl and msgctl commands the libc crate does not name.
pub const GETPID: i32 = 11;
pub const GETVAL: i32 = 12;
pub const GETALL: i32 = 13;
pub const GETNCNT: i32 = 14;
pub const GETZCNT: i32 = 15;
pub const SETVAL: i32 = 16;
pub const SETALL: i32 = 17;
pub const SEM_STAT: i32 = 18;
pub const SEM_INFO: i32 = 19;
pub const SEM_STAT_ANY: i32 = 20;
pub const MSG_STAT: i32 = 11;
pub const MSG_INFO: i32 = 12;
pub const MSG_STAT_ANY: i32 = 13;

/// semctl's fourth argument.
pub enum SemArg<'a> {
    /// None (IPC_RMID, GETVAL, GETPID, GETNCNT, GETZCNT) or SETVAL's value.
    Value(i32),
    /// A structure (IPC_STAT, SEM_STAT, SEM_STAT_ANY, IPC_SET, IPC_INFO, SEM_INFO).
    Struct(&'a mut [u8]),
    /// The set's values (GETALL, SETALL).
    Array(&'a mut GuardedBuf),
}

/// The size of the structure semctl command `cmd` reads or writes, or `None` for
/// a command that takes no pointer.
fn semctl_struct(cmd: i32) -> Option<usize> {
    match cmd {
        libc::IPC_STAT | SEM_STAT | SEM_STAT_ANY | libc::IPC_SET => Some(SEMID_DS_SIZE),
        libc::IPC_INFO | SEM_INFO => Some(SEMINFO_SIZE),
        _ => None,
    }
}

/// semctl(id, num, cmd, arg); the argument's kind must be the one `cmd` takes
/// (EINVAL otherwise), so no integer ever reaches the host as a pointer.
pub fn semctl(id: i32, num: i32, cmd: i32, arg: SemArg<'_>) -> Result<u64, Errno> {
    let value_cmd = matches!(
        cmd,
        libc::IPC_RMID | GETVAL | GETPID | GETNCNT | GETZCNT | SETVAL
    );
    let arg: usize = match arg {
        SemArg::Value(v) if value_cmd => v as u32 as usize,
        SemArg::Struct(buf) if semctl_struct(cmd).is_some_and(|n| buf.len() >= n) => {
            buf.as_mut_ptr() as usize
        }
        SemArg::Array(buf) if matches!(cmd, GETALL | SETALL) => buf.ptr() as usize,
        _ => return Err(Errno::INVAL),
    };
    // SAFETY: `arg` is a plain value for the commands that take one, else a km
    // buffer at least as long as the command's structure, or a guarded buffer
    // (the kernel sizes GETALL/SETALL by the set; past the buffer it faults).
    check(unsafe { libc::syscall(libc::SYS_semctl, id, num, cmd, arg) })
}

/// semtimedop(id, sops, nsops, timeout) with `sops` whole `struct sembuf`s.
pub fn semtimedop(id: i32, sops: &[u8], timeout: Option<libc::timespec>) -> Result<u64, Errno> {
    let ts = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: the kernel reads `sops.len() / SEMBUF_SIZE` sembufs from `sops` and
    // one timespec that lives until the call returns.
    check(unsafe {
        libc::syscall(
            libc::SYS_semtimedop,
            id,
            sops.as_ptr(),
            sops.len() / SEMBUF_SIZE,
            ts,
        )
    })
}

/// msgctl(id, cmd, buf) with `buf` at least as long as the command's structure
/// (empty for IPC_RMID; EINVAL for anything else).
pub fn msgctl(id: i32, cmd: i32, buf: &mut [u8]) -> Result<u64, Errno> {
    let need = match cmd {
        libc::IPC_RMID => 0,
        libc::IPC_STAT | MSG_STAT | MSG_STAT_ANY | libc::IPC_SET => MSQID_DS_SIZE,
        libc::IPC_INFO | MSG_INFO => MSGINFO_SIZE,
        _ => return Err(Errno::INVAL),
    };
    if buf.len() < need {
        return Err(Errno::INVAL);
    }
    let p = if need == 0 {
        std::ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    // SAFETY: a null pointer, or a km buffer at least as long as the structure
    // the command reads or writes.
    check(unsafe { libc::syscall(libc::SYS_msgctl, id, cmd, p) })
}

/// msgsnd(id, msg, msgsz, flags) of `msg`: the `long` type and the text.
pub fn msgsnd(id: i32, msg: &[u8], flags: i32) -> Result<u64, Errno> {
    let size = msg.len().checked_sub(8).ok_or(Errno::INVAL)?;
    // SAFETY: the kernel reads the type and `size` bytes of text: all of `msg`.
    check(unsafe { libc::syscall(libc::SYS_msgsnd, id, msg.as_ptr(), size, flags) })
}

/// msgrcv(id, buf, msgsz, type, flags) into `buf` (the `long` type, then up to
/// `buf`'s length less 8 bytes of text); returns the text's length.
pub fn msgrcv(id: i32, buf: &mut GuardedBuf, msgtyp: i64, flags: i32) -> Result<u64, Errno> {
    let size = buf.len.checked_sub(8).ok_or(Errno::INVAL)?;
    let p = buf.ptr();
    // SAFETY: the kernel writes at most the type and `size` bytes of text into the
    // guarded buffer (and reads as much for MSG_COPY); past it, it faults.
    check(unsafe { libc::syscall(libc::SYS_msgrcv, id, p, size, msgtyp, flags) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::host;

    /// A private set of `nsems` semaphores, removed when dropped (also when a
    /// test fails).
    struct Set(i32);

    impl Set {
        fn new(nsems: u64) -> Set {
            let ipc_private = libc::IPC_PRIVATE as u64;
            let id = host::int_syscall(libc::SYS_semget, [ipc_private, nsems, 0o600, 0]);
            Set(id.expect("semget") as i32)
        }
    }

    impl Drop for Set {
        fn drop(&mut self) {
            let _ = semctl(self.0, 0, libc::IPC_RMID, SemArg::Value(0));
        }
    }

    #[test]
    fn structure_sizes_are_the_kernels() {
        assert_eq!(SEMID_DS_SIZE, size_of::<libc::semid_ds>());
        assert_eq!(MSQID_DS_SIZE, size_of::<libc::msqid_ds>());
        assert_eq!(SEMBUF_SIZE, size_of::<libc::sembuf>());
    }

    /// A set longer than the buffer km sized for it (its id reused meanwhile):
    /// GETALL faults at the guard page instead of writing past the buffer, and
    /// SETALL reads no byte beyond it.
    #[test]
    fn a_longer_set_faults_at_the_guard_page() {
        let set = Set::new(5);
        let id = set.0;
        let mut short = GuardedBuf::new(4).expect("buffer");
        short.bytes_mut().copy_from_slice(&[1, 0, 2, 0]);
        assert_eq!(
            semctl(id, 0, SETALL, SemArg::Array(&mut short)),
            Err(Errno::FAULT)
        );
        assert_eq!(
            semctl(id, 0, GETALL, SemArg::Array(&mut short)),
            Err(Errno::FAULT)
        );
        let mut whole = GuardedBuf::new(10).expect("buffer");
        whole
            .bytes_mut()
            .copy_from_slice(&[1, 0, 2, 0, 3, 0, 4, 0, 5, 0]);
        assert_eq!(semctl(id, 0, SETALL, SemArg::Array(&mut whole)), Ok(0));
        let mut back = GuardedBuf::new(10).expect("buffer");
        assert_eq!(semctl(id, 0, GETALL, SemArg::Array(&mut back)), Ok(0));
        assert_eq!(back.bytes(), whole.bytes());
    }

    /// A thread's kept buffer, reused for a shorter call, still ends at its guard.
    #[test]
    fn a_kept_buffer_reused_ends_at_the_guard_page() {
        let set = Set::new(5);
        let getall = |len| {
            with_guarded(len, |buf| semctl(set.0, 0, GETALL, SemArg::Array(buf))).expect("buffer")
        };
        assert_eq!(getall(10), Ok(0));
        assert_eq!(getall(4), Err(Errno::FAULT));
        assert_eq!(getall(10), Ok(0));
    }

    /// Pointer-taking commands never take a value, nor a structure too short.
    #[test]
    fn arguments_must_fit_the_command() {
        let set = Set::new(1);
        let id = set.0;
        let mut short = [0u8; SEMID_DS_SIZE - 1];
        assert_eq!(
            semctl(id, 0, libc::IPC_STAT, SemArg::Value(8)),
            Err(Errno::INVAL)
        );
        assert_eq!(
            semctl(id, 0, libc::IPC_STAT, SemArg::Struct(&mut short)),
            Err(Errno::INVAL)
        );
        assert_eq!(semctl(id, 0, GETALL, SemArg::Value(8)), Err(Errno::INVAL));
        assert_eq!(msgctl(0, libc::IPC_STAT, &mut short), Err(Errno::INVAL));
    }
}
