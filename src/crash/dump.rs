//! What a kmcore holds of each mapping, chosen as Linux's dumper does by default:
//! memory the process owns (anonymous, or a file mapping it wrote to) is held
//! whole with its never-populated pages left as holes; a file mapping whose
//! contents are still the file's is left for gdb to read from the file, keeping
//! only a first page that holds an ELF header.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use crate::kernel::lock;
use crate::kernel::process::Guest;
use crate::memory::{Backing, PAGE_SIZE};

/// Pages compared with the file at a time.
const COMPARE_PAGES: u64 = 64;

/// The regular file `path`, opened without blocking (the payload may have put a
/// FIFO in its place since it mapped it).
fn open_regular(path: &str) -> Option<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

/// Whether the guest pages `runs` of a mapping starting at `start` hold what the
/// file `path` holds at `offset` onwards.
fn same_as_file(guest: &Guest, path: &str, start: u64, offset: u64, runs: &[Range<u64>]) -> bool {
    let Some(file) = open_regular(path) else {
        return false;
    };
    let mut memory = vec![0u8; (COMPARE_PAGES * PAGE_SIZE) as usize];
    let mut on_disk = memory.clone();
    runs.iter().all(|run| {
        (run.start..run.end)
            .step_by((COMPARE_PAGES * PAGE_SIZE) as usize)
            .all(|at| {
                let n = (run.end - at).min(COMPARE_PAGES * PAGE_SIZE) as usize;
                let at_file = offset.checked_add(at - start);
                guest.vm.mem.read_bytes(at, &mut memory[..n]).is_ok()
                    && at_file.is_some_and(|o| file.read_exact_at(&mut on_disk[..n], o).is_ok())
                    && memory[..n] == on_disk[..n]
            })
    })
}

/// The dumped length and populated pages of the readable mapping `range`, of the
/// file `file` (path and offset) if any. When km cannot tell which pages are
/// populated, every page counts as populated.
fn contents(
    guest: &Guest,
    range: Range<u64>,
    file: Option<&(String, u64)>,
) -> (u64, Vec<Range<u64>>) {
    let len = range.end - range.start;
    let Some(runs) = guest.vm.mem.populated(range.clone()) else {
        return (len, std::iter::once(range).collect());
    };
    let private: Vec<Range<u64>> = runs
        .iter()
        .filter(|(_, b)| *b == Backing::Private)
        .map(|(r, _)| r.clone())
        .collect();
    let all: Vec<Range<u64>> = runs.into_iter().map(|(r, _)| r).collect();
    let Some((path, offset)) = file else {
        return (len, all);
    };
    if !same_as_file(guest, path, range.start, *offset, &private) {
        return (len, all);
    }
    let mut magic = [0u8; 4];
    let elf = *offset == 0
        && guest.vm.mem.read_bytes(range.start, &mut magic).is_ok()
        && magic == *b"\x7fELF";
    if elf {
        let first = range.start..range.start + PAGE_SIZE;
        (PAGE_SIZE, std::iter::once(first).collect())
    } else {
        (0, Vec::new())
    }
}

/// What a kmcore keeps of each mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// What Linux's dumper keeps (see [`contents`]).
    AsLinux,
    /// Everything the payload could read back, whatever its protection (a
    /// snapshot, which km maps back instead of the files): every page of a
    /// private file mapping, the populated pages of the others; nothing of a
    /// shared file mapping, whose file is mapped again.
    Everything,
}

/// The whole of `range` for a snapshot (see [`Keep::Everything`]).
fn everything(guest: &Guest, range: Range<u64>, file: bool) -> (u64, Vec<Range<u64>>) {
    let len = range.end - range.start;
    let populated = match guest.vm.mem.populated(range.clone()) {
        Some(runs) if !file => runs.into_iter().map(|(r, _)| r).collect(),
        _ => std::iter::once(range).collect(),
    };
    (len, populated)
}

/// A mapping's range, protection, whether it is shared, and file with the offset
/// of its start.
type VmaFacts = (Range<u64>, i32, bool, Option<(String, u64)>);

/// Every mapping of the payload with what its core holds of it.
pub fn mappings(guest: &Guest, keep: Keep) -> Vec<km_coredump::Mapping> {
    let mut mm = lock(&guest.mm);
    // A restored page still to populate would read back as a hole.
    mm.fill_all(&guest.vm);
    let vmas: Vec<VmaFacts> = mm
        .vmas()
        .map(|(start, v)| {
            let file = v.file.as_ref().map(|(path, off)| (path.to_string(), *off));
            (start..v.end, v.prot, v.shared, file)
        })
        .collect();
    drop(mm);
    vmas.into_iter()
        .map(|(range, prot, shared, file)| {
            let read = prot != libc::PROT_NONE;
            let (dump_len, populated) = match keep {
                Keep::Everything if shared && file.is_some() => (0, Vec::new()),
                Keep::Everything => everything(guest, range.clone(), file.is_some()),
                Keep::AsLinux if read => contents(guest, range.clone(), file.as_ref()),
                Keep::AsLinux => (0, Vec::new()),
            };
            km_coredump::Mapping {
                start: range.start,
                end: range.end,
                read,
                write: prot & libc::PROT_WRITE != 0,
                exec: prot & libc::PROT_EXEC != 0,
                file,
                dump_len,
                populated,
            }
        })
        .collect()
}
