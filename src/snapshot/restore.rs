//! `km SNAPSHOT`: the payload of a snapshot file, rebuilt. Mappings come back
//! copy-on-write from the file (a page is read when first touched), threads with
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
use crate::guest::mm::{AddressSpace, Contents, Vma};
use crate::guest::vcpu::Vcpu;
use crate::guest::vm::Vm;
use crate::kernel::fdtable::FdTable;
use crate::kernel::lock;
use crate::kernel::process::{Config, Guest, ThreadRunner};
use crate::kernel::ptrace::Debugger;
use crate::kernel::signals::{SigAction, SigInfo};
use crate::trace;
use crate::trace::Category;

/// How many bytes of the snapshot's segments a restore reads in at once (in
/// address order, whole segments); the rest come in on first touch.
const EAGER_BUDGET: u64 = 64 << 20;

/// A thread of the snapshot: its core notes and km's.
pub struct SavedThread {
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
fn threads_of(notes: &[km_coredump::Note]) -> Result<Vec<(u64, km_coredump::Regs, Vec<u8>)>> {
    use km_coredump::notes::{NT_PRSTATUS, NT_X86_XSTATE, parse_prstatus};
    let mut threads = Vec::new();
    for note in notes
        .iter()
        .filter(|n| n.name == "CORE" || n.name == "LINUX")
    {
        match note.n_type {
            NT_PRSTATUS => {
                let (_, sigmask, regs) =
                    parse_prstatus(&note.desc).context("an NT_PRSTATUS note of the wrong size")?;
                threads.push((sigmask, regs, Vec::new()));
            }
            NT_X86_XSTATE => {
                let last = threads
                    .last_mut()
                    .context("an XSTATE note before any thread")?;
                last.2 = note.desc.clone();
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
            .map(|((sigmask, regs, xsave), extra)| SavedThread {
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
                    let contents = Contents::Mapped {
                        fd: file.as_fd(),
                        offset: *offset,
                        len: load.memsz,
                        flags: libc::MAP_SHARED,
                        populate: false,
                    };
                    mm.restore_mapping(vm, load.vaddr..end, vma, contents)?;
                }
                _ => {
                    let contents = self.contents(load, &mut budget)?;
                    mm.restore_mapping(vm, load.vaddr..end, vma, contents)?;
                }
            }
        }
        trace!(
            Category::Snapshot,
            "read {} MiB of the segments in, mapped the rest copy-on-write",
            (EAGER_BUDGET - budget) >> 20
        );
        Ok(mm)
    }

    /// Where segment `load`'s contents come from: a segment the payload cannot
    /// write is mapped from the file and its pages mapped at once (nothing is
    /// copied); another is read in now if its data (what the file stores, its
    /// holes left out) fits in what is left of `budget`, else mapped
    /// copy-on-write from the file, its pages read on first touch.
    fn contents(&self, load: &km_coredump::LoadHeader, budget: &mut u64) -> Result<Contents<'_>> {
        let mapped = |populate| Contents::Mapped {
            fd: self.file.as_fd(),
            offset: load.offset,
            len: load.filesz,
            flags: libc::MAP_PRIVATE,
            populate,
        };
        // PF_W
        if load.flags & 2 == 0 {
            return Ok(mapped(true));
        }
        let stored = load.offset..load.offset.saturating_add(load.filesz);
        let runs = data_runs(&self.file, stored.clone())?;
        let bytes: u64 = runs.iter().map(|r| r.end - r.start).sum();
        if bytes > *budget {
            return Ok(mapped(false));
        }
        *budget -= bytes;
        Ok(Contents::Read {
            file: &self.file,
            offset: load.offset,
            len: load.filesz,
            runs,
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
