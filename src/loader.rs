//! ELF loading: static executables (ET_EXEC) and static PIE (ET_DYN without PT_INTERP).
//!
//! Headers are parsed with the `object` crate; every segment is validated against the
//! file size and the guest address space before anything is copied into the guest.

use std::ops::Range;

use anyhow::{Result, bail};
use object::LittleEndian;
use object::elf::{self, FileHeader64, ProgramHeader64};
use object::read::elf::{FileHeader, ProgramHeader};

use std::collections::BTreeMap;

use crate::memory::{PAGE_SIZE, page_align_down, page_align_up};
use crate::mm::{AddressSpace, PIE_BASE};
use crate::trace;
use crate::trace::Category;
use crate::vm::Vm;

/// What the initial stack and the vCPU need to know about the loaded program.
#[derive(Debug, Clone)]
pub struct Image {
    pub entry: u64,
    /// Load bias: where the program is relative to its link addresses (static PIE).
    pub bias: u64,
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
}

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
}

fn parse(data: &[u8]) -> Result<Program> {
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
    if let Some(interp) = phdrs.iter().find(|p| p.p_type(endian) == elf::PT_INTERP) {
        let name = interp
            .interpreter(endian, data)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        bail!(
            "dynamically linked (interpreter {name}): km cannot load dynamic executables yet; link with -static"
        );
    }
    let loads: Vec<&ProgramHeader64<LittleEndian>> = phdrs
        .iter()
        .filter(|p| p.p_type(endian) == elf::PT_LOAD)
        .collect();
    let Some(lowest) = loads.iter().map(|p| p.p_vaddr(endian)).min() else {
        bail!("no loadable segments");
    };
    let bias = if pie {
        PIE_BASE - page_align_down(lowest)
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
        let file_end = off.checked_add(filesz).filter(|&e| e <= data.len() as u64);
        let Some(file_end) = file_end else {
            bail!(
                "truncated: segment {i} needs file bytes up to {:#x}, the file has {:#x}",
                off.saturating_add(filesz),
                data.len()
            );
        };
        let Some(start) = vaddr.checked_add(bias) else {
            bail!("segment {i} address overflows")
        };
        if start
            .checked_add(memsz)
            .is_none_or(|end| end > crate::mm::STACK_TOP)
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
                    vm.protect(start..end, p)?;
                }
                run = Some((page, page + PAGE_SIZE, prot));
            }
        }
    }
    if let Some((start, end, p)) = run {
        vm.protect(start..end, p)?;
    }
    Ok(())
}

/// Loads `data` (the payload file) into a fresh address space.
pub fn load(vm: &mut Vm, path: &str, data: &[u8]) -> Result<(Image, AddressSpace)> {
    let path: std::sync::Arc<str> = path.into();
    let prog = parse(data)?;
    let lo = page_align_down(prog.segments[0].vaddr);
    let hi = prog
        .segments
        .iter()
        .map(|s| page_align_up(s.vaddr + s.memsz))
        .max()
        .unwrap_or(lo);
    let mut space = AddressSpace::new(vm, lo..hi)?;
    space.commit_initial(vm, hi, prog.exec_stack)?;
    protect_image(vm, &prog.segments)?;
    for seg in &prog.segments {
        vm.mem.write_bytes(seg.vaddr, &data[seg.file.clone()])?;
        let range = page_align_down(seg.vaddr)..page_align_up(seg.vaddr + seg.memsz);
        trace!(
            Category::Load,
            "segment {:#x}..{:#x} prot {:#x}", range.start, range.end, seg.prot
        );
        let offset = seg.file.start as u64 - (seg.vaddr - range.start);
        space.add_image_segment(range, seg.prot, path.clone(), offset);
    }
    trace!(
        Category::Load,
        "entry {:#x} bias {:#x} phdr {:#x}", prog.entry, prog.bias, prog.phdr
    );
    let image = Image {
        entry: prog.entry,
        bias: prog.bias,
        phdr: prog.phdr,
        phent: prog.phent,
        phnum: prog.phnum,
    };
    Ok((image, space))
}
