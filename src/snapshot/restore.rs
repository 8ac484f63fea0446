//! `km SNAPSHOT`: the payload of a snapshot file, rebuilt. Mappings come back
//! copy-on-write from the file, their pages populated by a background thread
//! while the payload runs (or read on first touch), threads with
//! their registers, FPU state and thread pointer, and km's note gives the rest
//! (break, signal dispositions, descriptors, working directory, limits).

use std::fs::File;
use std::ops::Range;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use kvm_bindings::kvm_regs;

use super::descriptors;
use super::state::{self, State};
use crate::guest::mm::{AddressSpace, Contents, Fill, Vma};
use crate::guest::vcpu::Vcpu;
use crate::guest::vm::Vm;
use crate::kernel::fdtable::FdTable;
use crate::kernel::lock;
use crate::kernel::process::{Config, Guest, ThreadRunner};
use crate::kernel::ptrace::Debugger;
use crate::kernel::signals::{SigAction, SigInfo};
use crate::trace;
use crate::trace::Category;

/// How many bytes of the snapshot's writable segments a restore populates in
/// the background (whole segments, in address order); the rest come in on
/// first touch.
const EAGER_BUDGET: u64 = 64 << 20;
/// How many bytes the background populates at a time (the payload's own
/// mmap, munmap and brk wait for a piece to be done).
const FILL_PIECE: u64 = 1 << 20;

/// A thread of the snapshot: its core notes and km's.
pub struct SavedThread {
    /// Its thread id when the snapshot was taken.
    pub tid: i32,
    pub regs: km_coredump::Regs,
    pub sigmask: u64,
    pub xsave: Vec<u8>,
    pub extra: state::Thread,
}

/// A snapshot file, its headers and notes read (its contents are not).
pub struct Snapshot {
    file: File,
    pub state: State,
    pub threads: Vec<SavedThread>,
    pub auxv: Vec<u8>,
    loads: Vec<km_coredump::LoadHeader>,
}

/// Whether `path` is an ELF core file (a snapshot, if km's note is in it).
pub fn is_core(path: &Path) -> bool {
    let mut head = [0u8; 18];
    let read = File::open(path).and_then(|f| {
        use std::os::unix::fs::FileExt;
        f.read_exact_at(&mut head, 0)
    });
    read.is_ok() && head[..4] == *b"\x7fELF" && u16::from_le_bytes([head[16], head[17]]) == 4
}

/// The threads of the core notes: NT_PRSTATUS starts one, NT_X86_XSTATE gives
/// its FPU state.
type CoreThread = (i32, u64, km_coredump::Regs, Vec<u8>);

fn threads_of(notes: &[km_coredump::Note]) -> Result<Vec<CoreThread>> {
    use km_coredump::notes::{NT_PRSTATUS, NT_X86_XSTATE, parse_prstatus};
    let mut threads = Vec::new();
    for note in notes
        .iter()
        .filter(|n| n.name == "CORE" || n.name == "LINUX")
    {
        match note.n_type {
            NT_PRSTATUS => {
                let (tid, sigmask, regs) =
                    parse_prstatus(&note.desc).context("an NT_PRSTATUS note of the wrong size")?;
                threads.push((tid, sigmask, regs, Vec::new()));
            }
            NT_X86_XSTATE => {
                let last = threads
                    .last_mut()
                    .context("an XSTATE note before any thread")?;
                last.3 = note.desc.clone();
            }
            _ => {}
        }
    }
    Ok(threads)
}

impl Snapshot {
    /// Reads the snapshot `path`'s headers and notes, checking that they agree.
    pub fn open(path: &Path) -> Result<Snapshot> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let (notes, loads) = km_coredump::read_headers(&file).context("not a valid snapshot")?;
        let note = notes
            .iter()
            .find(|n| n.name == state::NOTE_NAME && n.n_type == state::NOTE_TYPE)
            .context("a core file without km's snapshot note")?;
        let state = State::decode(&note.desc)?;
        let cores = threads_of(&notes)?;
        if cores.len() != state.threads.len() || cores.is_empty() {
            bail!(
                "{} threads in the core notes, {} in km's note",
                cores.len(),
                state.threads.len()
            );
        }
        if loads.len() != state.mappings.len() {
            bail!(
                "{} segments, {} mappings in km's note",
                loads.len(),
                state.mappings.len()
            );
        }
        let auxv = notes
            .iter()
            .find(|n| n.name == "CORE" && n.n_type == km_coredump::notes::NT_AUXV)
            .map(|n| n.desc.clone())
            .unwrap_or_default();
        let threads = cores
            .into_iter()
            .zip(&state.threads)
            .map(|((tid, sigmask, regs, xsave), extra)| SavedThread {
                tid,
                regs,
                sigmask,
                xsave,
                extra: *extra,
            })
            .collect();
        Ok(Snapshot {
            file,
            state,
            threads,
            auxv,
            loads,
        })
    }

    /// The payload's address space: every segment mapped back from the file.
    pub fn address_space(&self, vm: &mut Vm) -> Result<AddressSpace> {
        let s = &self.state;
        let mut mm = AddressSpace::restored(vm, s.image_base, s.brk_start, s.brk)?;
        let mut budget = EAGER_BUDGET;
        for (load, m) in self.loads.iter().zip(&s.mappings) {
            let end = load
                .vaddr
                .checked_add(load.memsz)
                .context("a segment past the end of the address space")?;
            // PF_R, PF_W and PF_X.
            let prot = [
                (4, libc::PROT_READ),
                (2, libc::PROT_WRITE),
                (1, libc::PROT_EXEC),
            ]
            .iter()
            .filter(|(flag, _)| load.flags & flag != 0)
            .fold(0, |p, (_, bit)| p | bit);
            let vma = Vma {
                end,
                prot,
                kind: m.kind,
                shared: m.shared,
                file: m.file.as_ref().map(|(p, o)| (Arc::from(p.as_str()), *o)),
            };
            match &m.file {
                Some((path, offset)) if m.shared => {
                    let file = shared_file(path, prot)?;
                    let contents = Contents {
                        fd: file.as_fd(),
                        offset: *offset,
                        len: load.memsz,
                        flags: libc::MAP_SHARED,
                        fill: None,
                    };
                    mm.restore_mapping(vm, load.vaddr..end, vma, contents)?;
                }
                _ => {
                    let contents = self.contents(load, &mut budget)?;
                    mm.restore_mapping(vm, load.vaddr..end, vma, contents)?;
                }
            }
        }
        let stacks: Vec<u64> = self.threads.iter().map(|t| t.regs.rsp).collect();
        mm.fill_first(&stacks);
        trace!(
            Category::Snapshot,
            "mapped the segments copy-on-write, {} MiB of them to copy in the background",
            (EAGER_BUDGET - budget) >> 20
        );
        Ok(mm)
    }

    /// Segment `load`'s contents, mapped copy-on-write from the file, and how
    /// its data (what the file stores, its holes left out) is populated: a
    /// segment the payload cannot write, from the page cache in the background
    /// (nothing is copied); a writable one, copied in the background if it fits
    /// in what is left of `budget`, else on first touch.
    fn contents(&self, load: &km_coredump::LoadHeader, budget: &mut u64) -> Result<Contents<'_>> {
        let stored = load.offset..load.offset.saturating_add(load.filesz);
        // PF_W
        let write = load.flags & 2 != 0;
        // A segment the payload cannot write is stored whole (program text, read-only data).
        let runs = match write {
            true => data_runs(&self.file, stored)?,
            false => vec![stored],
        };
        let bytes: u64 = runs.iter().map(|r| r.end - r.start).sum();
        let background = !write || bytes <= *budget;
        if write && background {
            *budget -= bytes;
        }
        Ok(Contents {
            fd: self.file.as_fd(),
            offset: load.offset,
            len: load.filesz,
            flags: libc::MAP_PRIVATE,
            fill: Some(Fill {
                runs,
                write,
                background,
            }),
        })
    }

    /// The payload's descriptors: km's standard ones and those the snapshot names.
    pub fn descriptors(&self, mut table: FdTable) -> Result<FdTable> {
        descriptors::reopen(&mut table, &self.state.fds, &self.state.epoll)?;
        Ok(table)
    }

    /// The process state shared by the threads, with `config`'s policies: the
    /// signal dispositions, the signals pending for the process, the interval
    /// timers (armed again with the time they had left).
    pub fn guest(
        &self,
        config: Config,
        vm: Vm,
        mm: AddressSpace,
        fds: FdTable,
        debugger: Option<Arc<Debugger>>,
        runner: ThreadRunner,
    ) -> Result<Arc<Guest>> {
        let s = &self.state;
        let config = Config {
            name: s.name.clone(),
            argv: s.argv.clone(),
            exe: s.exe.clone().into(),
            environ: s.environ.clone(),
            vvar: s.vvar,
            auxv: self.auxv.clone(),
            ..config
        };
        let guest = Arc::new(Guest::new(config, vm, mm, fds, debugger, runner));
        let mut signals = lock(&guest.signals);
        for (action, words) in signals.actions.iter_mut().zip(&s.actions) {
            *action = SigAction::from_words(*words);
        }
        drop(signals);
        for info in self.pending(None) {
            // Past the guest's RLIMIT_SIGPENDING only marked pending, as when sent.
            let _ = guest.pending.add(info);
        }
        for (which, value) in &s.itimers {
            crate::memory::host::setitimer(*which, Some(*value))
                .with_context(|| format!("arming interval timer {which} again"))?;
        }
        Ok(guest)
    }

    /// The signals pending for thread `thread` (`None`: for the process).
    pub fn pending(&self, thread: Option<usize>) -> Vec<SigInfo> {
        self.state
            .pending
            .iter()
            .filter(|(t, _)| *t == thread)
            .map(|(_, info)| *info)
            .collect()
    }
}

/// Populates the restored pages left to the background on a thread of km's own,
/// while the payload runs (it finds a page the file's until then).
pub fn fill_in_background(guest: &Arc<Guest>) -> Result<()> {
    let guest = guest.clone();
    std::thread::Builder::new()
        .name("km-fill".into())
        .spawn(move || {
            let pagemap = crate::memory::open_pagemap();
            loop {
                let mut mm = lock(&guest.mm);
                let Some(piece) = mm.fill_next(&guest.vm, FILL_PIECE, pagemap.as_ref()) else {
                    break;
                };
                // Populated without the address-space lock, which the payload's
                // syscalls take to check their pointers; its mmap, munmap and
                // brk wait for the piece.
                let filling = mm.filling();
                let populating = lock(&filling);
                drop(mm);
                piece.populate(&guest.vm);
                drop(populating);
            }
        })
        .context("starting the thread that populates restored memory")?;
    Ok(())
}

/// The parts of `file`'s bytes `range` that hold data (SEEK_DATA, SEEK_HOLE):
/// the holes of a sparse file are pages that were never populated, zero.
fn data_runs(file: &File, range: Range<u64>) -> Result<Vec<Range<u64>>> {
    use rustix::fs::{SeekFrom, seek};
    let mut runs = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let start = match seek(file, SeekFrom::Data(at)) {
            Ok(start) => start,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(e).context("finding the data of the snapshot file"),
        };
        if start >= range.end {
            break;
        }
        let end =
            seek(file, SeekFrom::Hole(start)).context("finding the holes of the snapshot file")?;
        runs.push(start..end.min(range.end));
        at = end;
    }
    Ok(runs)
}

/// The file of a shared mapping, opened for writing if the mapping is writable.
fn shared_file(path: &str, prot: i32) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(prot & libc::PROT_WRITE != 0)
        .open(path)
        .with_context(|| format!("opening {path}, mapped shared"))
}

/// Where the C libraries keep a thread's id in the thread descriptor that its
/// thread pointer (fs_base) points at, whose first word points at itself:
/// glibc's `struct pthread` (x86-64: `tid` at 0x2d0) and musl's (at 0x30).
/// Measured on Debian 12's glibc 2.36 and musl 1.2.3; a layout where the old id
/// is not found at either place is left alone.
const DESCRIPTOR_TIDS: [(Libc, u64); 2] = [(Libc::Glibc, 0x2d0), (Libc::Musl, 0x30)];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Libc {
    Glibc,
    Musl,
}

/// musl's descriptor: its robust list head (at 0x88), and the offset of a
/// mutex's lock word (`_m_lock`, at 4) from its list entry (`_m_next`, at 32).
const MUSL_ROBUST_LIST: u64 = 0x88;
const MUSL_FUTEX_OFFSET: i64 = 4 - 32;

/// The bits of a robust futex word that hold its owner's thread id.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// How many entries of a thread's robust list are renumbered at most (Linux's
/// ROBUST_LIST_LIMIT).
const ROBUST_LIST_LIMIT: usize = 2048;

/// What [`renumber`] needs of a restored thread: its old id, thread pointer and
/// robust list head.
#[derive(Clone, Copy)]
pub struct OldIds {
    tid: i32,
    fs_base: u64,
    robust_list: u64,
}

impl SavedThread {
    pub fn old_ids(&self) -> OldIds {
        OldIds {
            tid: self.tid,
            fs_base: self.regs.fs_base,
            robust_list: self.extra.robust_list.0,
        }
    }
}

/// Gives restored thread `t`, which runs as thread `new` now, its new id where
/// its C library cached the old one: the thread descriptor (what pthread_kill,
/// pthread_setaffinity_np and a mutex's owner checks read), and the owner of
/// each mutex it holds that its C library lists (the lock word, and glibc's
/// `__owner` next to it): glibc's robust mutexes, musl's robust, error-checking
/// and recursive ones. Other copies of the old id keep it: glibc lists no
/// mutex that is not robust (an error-checking one held across the snapshot
/// then refuses its owner's unlock with EPERM).
/// Every guest address is checked; a payload whose memory says otherwise is
/// left as it is.
pub fn renumber(guest: &Guest, t: OldIds, new: i32) {
    let mem = &guest.vm.mem;
    let (old, fs) = (t.tid as u32, t.fs_base);
    if old == new as u32 || mem.read_obj::<u64>(fs).ok() != Some(fs) {
        return;
    }
    let Some(libc) = DESCRIPTOR_TIDS.iter().find_map(|(libc, off)| {
        let at = fs.checked_add(*off)?;
        (mem.read_obj::<u32>(at).ok()? == old && mem.write_obj(at, new as u32).is_ok())
            .then_some(*libc)
    }) else {
        return;
    };
    let renumber_futex = |futex: u64| {
        let Ok(word) = mem.read_obj::<u32>(futex) else {
            return;
        };
        if word & FUTEX_TID_MASK != old {
            return;
        }
        let _ = mem.write_obj(futex, (word & !FUTEX_TID_MASK) | new as u32);
        // glibc's pthread_mutex_t: __lock, __count, __owner.
        let owner = futex.wrapping_add(8);
        if libc == Libc::Glibc && mem.read_obj::<u32>(owner).ok() == Some(old) {
            let _ = mem.write_obj(owner, new as u32);
        }
    };
    // A robust_list_head: the list, the futex word's offset from an entry, the
    // entry being added or removed. glibc registers its own with
    // set_robust_list; musl keeps one in the descriptor, which lists its
    // error-checking and recursive mutexes too, and registers it only for
    // process-shared ones.
    let (head, offset) = match libc {
        Libc::Glibc => (
            t.robust_list,
            mem.read_obj::<i64>(t.robust_list.wrapping_add(8)),
        ),
        Libc::Musl => (fs.wrapping_add(MUSL_ROBUST_LIST), Ok(MUSL_FUTEX_OFFSET)),
    };
    let (Ok(mut entry), Ok(offset), Ok(pending)) = (
        mem.read_obj::<u64>(head),
        offset,
        mem.read_obj::<u64>(head.wrapping_add(16)),
    ) else {
        return;
    };
    for _ in 0..ROBUST_LIST_LIMIT {
        if entry == head || entry == 0 {
            break;
        }
        renumber_futex(entry.wrapping_add_signed(offset));
        let Ok(next) = mem.read_obj::<u64>(entry) else {
            break;
        };
        entry = next;
    }
    if pending != 0 {
        renumber_futex(pending.wrapping_add_signed(offset));
    }
}

/// Sets `vcpu` to resume `t`: registers, FPU/SSE/AVX state, thread pointer.
pub fn resume_on(vcpu: &Vcpu, t: &SavedThread) -> Result<()> {
    let r = &t.regs;
    let regs = kvm_regs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rsp: r.rsp,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        // Only the flags user code may set, and IF.
        rflags: (r.rflags & 0xcd5) | 0x202,
    };
    if !t.xsave.is_empty() {
        vcpu.set_xsave(&t.xsave)
            .context("restoring the FPU state")?;
    }
    if r.fs_base.max(r.gs_base) >= 1 << 47 {
        bail!(
            "a thread's fs_base {:#x} or gs_base {:#x} outside user space",
            r.fs_base,
            r.gs_base
        );
    }
    vcpu.set_segment_bases(r.fs_base, r.gs_base)?;
    vcpu.set_user_regs(&regs)
}
