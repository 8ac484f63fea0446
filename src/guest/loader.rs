//! ELF loading, the way Linux's binfmt_elf does it: the program (ET_EXEC, or ET_DYN
//! placed at [`PIE_BASE`]) and, when it names one in PT_INTERP, its dynamic linker,
//! placed in the mmap area. The linker then maps shared objects itself through
//! ordinary syscalls.
//!
//! Headers are parsed with the `object` crate from the file's first bytes
//! ([`ElfFile`]); every segment is validated against the file size and the guest
//! address space before anything is read into the guest, straight from the file.

use std::ops::Range;

use std::os::fd::AsFd;

use anyhow::{Context, Result, bail};
use object::LittleEndian;
use object::elf::{self, FileHeader64, ProgramHeader64};
use object::read::elf::{FileHeader, ProgramHeader};

use std::collections::BTreeMap;

use crate::guest::mm::{AddressSpace, PIE_BASE};
use crate::guest::vm::Vm;
use crate::memory::host;
use crate::memory::{PAGE_SIZE, page_align_down, page_align_up};
use crate::trace;
use crate::trace::Category;

/// What the initial stack and the vCPU need to know about the loaded program.
#[derive(Debug, Clone)]
pub struct Image {
    pub entry: u64,
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    /// The program's own entry point (AT_ENTRY); `entry` is the linker's when there is one.
    pub program_entry: u64,
    /// Where the dynamic linker is loaded (AT_BASE), 0 without one.
    pub interp_base: u64,
    /// Where km's vDSO is (AT_SYSINFO_EHDR), 0 without one.
    pub vdso: u64,
}

/// An ELF file to load: its first bytes, which hold its headers, its size and the
/// open file the segments are read from (never the whole file in km's memory).
pub struct ElfFile {
    pub head: Vec<u8>,
    pub len: u64,
    pub file: std::fs::File,
}

/// The most read into guest memory by one call.
const READ_CHUNK: u64 = 1 << 30;

/// Offset of the class byte in `e_ident`.
const EI_CLASS: usize = 4;

struct Segment {
    vaddr: u64,
    memsz: u64,
    file: Range<usize>,
    prot: i32,
}

/// Parsed and validated program headers.
struct Program {
    entry: u64,
    bias: u64,
    segments: Vec<Segment>,
    phdr: u64,
    phent: u64,
    phnum: u64,
    exec_stack: bool,
    /// ET_DYN: loaded wherever km places it.
    pie: bool,
    /// PT_INTERP: the dynamic linker's path.
    interp: Option<String>,
}

impl Program {
    /// The page-aligned span of the loaded segments.
    fn span(&self) -> Range<u64> {
        let lo = page_align_down(self.segments[0].vaddr);
        let hi = self
            .segments
            .iter()
            .map(|s| page_align_up(s.vaddr + s.memsz))
            .max()
            .unwrap_or(lo);
        lo..hi
    }
}

/// Parses and validates the headers in `data`, the first bytes of a file of `len`
/// bytes; an ET_DYN file's lowest page goes at `dyn_base`.
fn parse(data: &[u8], len: u64, dyn_base: u64) -> Result<Program> {
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        bail!("not an ELF file");
    }
    if data.len() < 5 {
        bail!("truncated ELF header");
    }
    if data[EI_CLASS] != elf::ELFCLASS64.0 {
        bail!("32-bit ELF: km runs x86-64 (64-bit) executables only");
    }
    let endian = LittleEndian;
    let header = FileHeader64::<LittleEndian>::parse(data)
        .map_err(|e| anyhow::anyhow!("truncated or corrupt ELF header: {e}"))?;
    if header.e_ident().data != elf::ELFDATA2LSB {
        bail!("big-endian ELF: not an x86-64 executable");
    }
    let machine = header.e_machine(endian);
    if machine != elf::EM_X86_64 {
        bail!("not an x86-64 executable (ELF machine {machine})");
    }
    let pie = match header.e_type(endian) {
        elf::ET_EXEC => false,
        elf::ET_DYN => true,
        t => bail!("not an executable (ELF type {t})"),
    };
    let phdrs: &[ProgramHeader64<LittleEndian>] = header
        .program_headers(endian, data)
        .map_err(|e| anyhow::anyhow!("truncated or corrupt program header table: {e}"))?;
    let interp = match phdrs.iter().find(|p| p.p_type(endian) == elf::PT_INTERP) {
        Some(p) => match p.interpreter(endian, data) {
            Ok(Some(name)) if !name.is_empty() => Some(String::from_utf8_lossy(name).into_owned()),
            _ => bail!("corrupt PT_INTERP (the dynamic linker's name)"),
        },
        None => None,
    };
    let loads: Vec<&ProgramHeader64<LittleEndian>> = phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .collect();
    let Some(lowest) = loads.iter().map(|p| p.p_vaddr(endian)).min() else {
        bail!("no loadable segments");
    };
    let bias = if pie {
        dyn_base.wrapping_sub(page_align_down(lowest))
    } else {
        0
    };
    let mut segments = Vec::new();
    for (i, p) in loads.iter().enumerate() {
        let (off, filesz, memsz, vaddr) = (
            p.p_offset(endian),
            p.p_filesz(endian),
            p.p_memsz(endian),
            p.p_vaddr(endian),
        );
        if filesz > memsz {
            bail!("segment {i}: file size {filesz:#x} exceeds memory size {memsz:#x}");
        }
        let file_end = off.checked_add(filesz).filter(|&e| e <= len);
        let Some(file_end) = file_end else {
            bail!(
                "truncated: segment {i} needs file bytes up to {:#x}, the file has {len:#x}",
                off.saturating_add(filesz),
            );
        };
        let start = vaddr.wrapping_add(bias);
        if start
            .checked_add(memsz)
            .is_none_or(|end| end > crate::guest::mm::STACK_TOP)
        {
            bail!("segment {i} at {vaddr:#x} (+{memsz:#x}) is outside the guest address space");
        }
        let flags = p.p_flags(endian).0;
        let prot = [
            (elf::PF_R.0, libc::PROT_READ),
            (elf::PF_W.0, libc::PROT_WRITE),
            (elf::PF_X.0, libc::PROT_EXEC),
        ]
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .fold(0, |acc, (_, p)| acc | p);
        segments.push(Segment {
            vaddr: start,
            memsz,
            file: off as usize..file_end as usize,
            prot,
        });
    }
    segments.sort_by_key(|s| s.vaddr);
    for pair in segments.windows(2) {
        if pair[0].vaddr + pair[0].memsz > pair[1].vaddr {
            bail!(
                "segments overlap: {:#x}+{:#x} and {:#x}",
                pair[0].vaddr,
                pair[0].memsz,
                pair[1].vaddr
            );
        }
    }
    let phoff = header.e_phoff(endian);
    let phdr = match phdrs.iter().find(|p| p.p_type(endian) == elf::PT_PHDR) {
        Some(p) => p.p_vaddr(endian) + bias,
        None => loads
            .iter()
            .find(|p| {
                (p.p_offset(endian)..p.p_offset(endian) + p.p_filesz(endian)).contains(&phoff)
            })
            .map_or(0, |p| {
                p.p_vaddr(endian) + bias + (phoff - p.p_offset(endian))
            }),
    };
    let exec_stack = phdrs
        .iter()
        .find(|p| p.p_type(endian) == elf::PT_GNU_STACK)
        .is_none_or(|p| p.p_flags(endian).0 & elf::PF_X.0 != 0);
    Ok(Program {
        entry: header.e_entry(endian) + bias,
        bias,
        segments,
        phdr,
        phent: header.e_phentsize(endian) as u64,
        phnum: phdrs.len() as u64,
        exec_stack,
        pie,
        interp,
    })
}

/// Maps the image's pages with each segment's protection (a write to text faults,
/// as on Linux); a page shared by two segments gets both protections.
fn protect_image(vm: &Vm, segments: &[Segment]) -> Result<()> {
    let mut pages: BTreeMap<u64, i32> = BTreeMap::new();
    for seg in segments {
        let mut page = page_align_down(seg.vaddr);
        while page < seg.vaddr + seg.memsz {
            *pages.entry(page).or_default() |= seg.prot;
            page += PAGE_SIZE;
        }
    }
    // Apply runs of contiguous pages with the same protection at once.
    let mut run: Option<(u64, u64, i32)> = None;
    for (page, prot) in pages {
        match &mut run {
            Some((_, end, p)) if *end == page && *p == prot => *end += PAGE_SIZE,
            _ => {
                if let Some((start, end, p)) = run.take() {
                    vm.protect_loaded(start..end, p)?;
                }
                run = Some((page, page + PAGE_SIZE, prot));
            }
        }
    }
    if let Some((start, end, p)) = run {
        vm.protect_loaded(start..end, p)?;
    }
    Ok(())
}

/// Reads `prog`'s segments from `file` (the file `path`) into committed guest
/// memory and records them as mappings of that file.
fn copy_segments(
    vm: &Vm,
    space: &mut AddressSpace,
    prog: &Program,
    path: &std::sync::Arc<str>,
    file: &std::fs::File,
) -> Result<()> {
    protect_image(vm, &prog.segments)?;
    for seg in &prog.segments {
        let range = page_align_down(seg.vaddr)..page_align_up(seg.vaddr + seg.memsz);
        let offset = seg.file.start as u64 - (seg.vaddr - range.start);
        let mapped = mappable(seg, &prog.segments);
        if mapped {
            vm.mem
                .map_file(
                    range.clone(),
                    file.as_fd(),
                    offset,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE,
                )
                .with_context(|| format!("{path}: mapping the segment at {:#x}", seg.vaddr))?;
        } else {
            // The copy is resident anyway: in huge pages, a large segment costs
            // the payload one KVM fault per 2 MiB instead of one per page.
            vm.mem.prefer_huge_pages(range.clone())?;
            // The pages the read fills, allocated in one call rather than one
            // fault at a time inside the read: python's 1.3 MiB took 0.8-1.0 ms
            // instead of 1.0-1.3. The bss beyond stays untouched.
            let file_end = page_align_up(seg.vaddr + (seg.file.end - seg.file.start) as u64);
            vm.mem
                .populate_writable(range.start..file_end.min(range.end));
            read_segment(vm, file, seg)
                .with_context(|| format!("{path}: reading the segment at {:#x}", seg.vaddr))?;
        }
        trace!(
            Category::Load,
            "{path}: segment {:#x}..{:#x} prot {:#x} {}",
            range.start,
            range.end,
            seg.prot,
            if mapped { "mapped" } else { "read" }
        );
        space.add_loaded_segment(range, seg.prot, Some((path.clone(), offset)));
    }
    Ok(())
}

/// Whether `seg` is mapped from the file (its pages share the page cache's, as
/// Linux maps a program) rather than read into anonymous memory: a read-only
/// segment, not empty, all of it in the file, at a file offset that lines up with its
/// address, and with no page shared with another segment. Measured on
/// `python3 -c pass`: 481 more KVM faults (1814), as the shadow MMU prefetches
/// only pages the host already maps writable, but no 5 MiB read into freshly
/// allocated memory, which cost more (65 vs 74 ms, 73 vs 88 ms on a loaded
/// machine) and km's resident memory. Writable segments are read: they would
/// be copied on the first write of each page anyway.
fn mappable(seg: &Segment, all: &[Segment]) -> bool {
    let pages = page_align_down(seg.vaddr)..page_align_up(seg.vaddr + seg.memsz);
    let alone = all.iter().all(|other| {
        std::ptr::eq(other, seg)
            || page_align_up(other.vaddr + other.memsz) <= pages.start
            || page_align_down(other.vaddr) >= pages.end
    });
    seg.prot & libc::PROT_WRITE == 0
        && seg.memsz > 0
        && seg.memsz == (seg.file.end - seg.file.start) as u64
        && seg.vaddr % PAGE_SIZE == seg.file.start as u64 % PAGE_SIZE
        && alone
}

/// Reads `seg`'s file bytes from `file` straight into guest memory.
fn read_segment(vm: &Vm, file: &std::fs::File, seg: &Segment) -> Result<()> {
    let mut at = seg.vaddr;
    let mut offset = seg.file.start as u64;
    let end = seg.file.end as u64;
    while offset < end {
        let chunk = (end - offset).min(READ_CHUNK) as usize;
        let buf = vm.mem.slice(at, chunk)?;
        let n = host::vectored(file.as_fd(), &[buf], false, Some(offset as i64), 0)
            .map_err(std::io::Error::from)?;
        if n == 0 {
            bail!("the file ends at {offset:#x}, before the segment does");
        }
        at += n as u64;
        offset += n as u64;
    }
    Ok(())
}

/// Checks the dynamic linker `name` whose first bytes are `data` (before anything
/// is loaded).
pub fn check_interp(name: &str, data: &[u8], len: u64) -> Result<()> {
    let prog = parse(data, len, 0).map_err(|e| anyhow::anyhow!("dynamic linker {name}: {e}"))?;
    if prog.interp.is_some() {
        bail!("dynamic linker {name} itself names a dynamic linker");
    }
    if !prog.pie {
        bail!("dynamic linker {name} is not position-independent (ET_EXEC)");
    }
    Ok(())
}

/// The dynamic linker named by the file whose first bytes are `data`, if any (so
/// a caller can read it first).
pub fn interp_of(data: &[u8], len: u64) -> Result<Option<String>> {
    Ok(parse(data, len, PIE_BASE)?.interp)
}

/// Loads `elf` (the payload file at `path`) into a fresh address space, with its
/// dynamic linker `interp` (the linker's path and file) when it has one.
pub fn load(
    vm: &mut Vm,
    path: &str,
    elf: &ElfFile,
    interp: Option<(&str, &ElfFile)>,
) -> Result<(Image, AddressSpace)> {
    let path: std::sync::Arc<str> = path.into();
    let prog = parse(&elf.head, elf.len, PIE_BASE)?;
    let span = prog.span();
    let mut space = AddressSpace::new(vm, span.clone())?;
    space.commit_initial(vm, span.end, prog.exec_stack)?;
    copy_segments(vm, &mut space, &prog, &path, &elf.file)?;
    let (entry, interp_base) = match interp {
        Some((name, linker)) => {
            let len = parse(&linker.head, linker.len, 0)?.span().end;
            let base = space.place(vm, len)?;
            let parsed = parse(&linker.head, linker.len, base)?;
            copy_segments(vm, &mut space, &parsed, &name.into(), &linker.file)?;
            (parsed.entry, base)
        }
        None => (prog.entry, 0),
    };
    trace!(
        Category::Load,
        "entry {entry:#x} bias {:#x} phdr {:#x} linker at {interp_base:#x}", prog.bias, prog.phdr
    );
    let image = Image {
        entry,
        phdr: prog.phdr,
        phent: prog.phent,
        phnum: prog.phnum,
        program_entry: prog.entry,
        interp_base,
        vdso: 0,
    };
    Ok((image, space))
}
