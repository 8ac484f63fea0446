//! kmcore: Linux-compatible ELF core files for km payloads.
//!
//! [`write`] produces what the Linux kernel writes for an x86-64 process (ET_CORE, a
//! PT_NOTE segment, one PT_LOAD per mapping), so `gdb PAYLOAD kmcore` works as with
//! a native core: NT_PRSTATUS, NT_FPREGSET and NT_X86_XSTATE for every thread (the
//! faulting one first), NT_PRPSINFO, NT_SIGINFO, NT_AUXV and NT_FILE. [`read`] parses
//! a core back (its notes and loads), for tests and tools. The ELF container is
//! written and read with the `object` crate; the note payloads are laid out in
//! [`notes`], one function per kernel structure.

pub mod notes;

use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;

use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::write::StreamingBuffer;
use object::write::elf::{FileHeader, ProgramHeader, Writer};
use object::{Endianness, LittleEndian};

/// Registers of one thread, in `struct user_regs_struct` order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

/// One thread's state.
#[derive(Debug, Clone)]
pub struct Thread {
    pub tid: i32,
    pub regs: Regs,
    /// The XSAVE image (its first 512 bytes are the FXSAVE area, NT_FPREGSET).
    pub xsave: Vec<u8>,
    /// Signals pending for and blocked in this thread.
    pub sigpend: u64,
    pub sighold: u64,
}

/// A mapping of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// The file mapped there and the offset of `start` in it.
    pub file: Option<(String, u64)>,
    /// How much of the mapping, from `start`, the core holds (a page multiple):
    /// Linux leaves out file mappings the process never wrote to, which gdb reads
    /// from the file, and keeps only their first page when it holds an ELF header.
    pub dump_len: u64,
    /// The page runs within `dump_len` that were ever populated; the others are
    /// left as holes in a sparse file and read back as zeroes, as Linux's dumper
    /// leaves out pages that were never touched.
    pub populated: Vec<Range<u64>>,
}

/// Process-wide facts (NT_PRPSINFO).
#[derive(Debug, Clone, Default)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Executable name (truncated to 15 bytes).
    pub fname: String,
    /// Command line (truncated to 79 bytes).
    pub psargs: String,
}

/// Everything a core file records.
#[derive(Debug, Clone)]
pub struct Core {
    pub signal: i32,
    /// The fatal signal's `siginfo_t` (128 bytes).
    pub siginfo: [u8; 128],
    pub process: Process,
    /// The faulting thread first.
    pub threads: Vec<Thread>,
    pub auxv: Vec<u8>,
    pub mappings: Vec<Mapping>,
    /// Notes of the writer's own after the kernel's process notes (km's snapshot
    /// state); gdb skips notes it does not know.
    pub extra_notes: Vec<Note>,
}

const PAGE: u64 = 4096;
/// Pages read from the process at a time.
const CHUNK_PAGES: u64 = 256;

fn to_io(e: object::write::Error) -> io::Error {
    io::Error::other(e.to_string())
}

fn program_flags(m: &Mapping) -> elf::ProgramFlags {
    let mut flags = 0;
    for (on, f) in [
        (m.read, elf::PF_R),
        (m.write, elf::PF_W),
        (m.exec, elf::PF_X),
    ] {
        if on {
            flags |= f.0;
        }
    }
    elf::ProgramFlags(flags)
}

/// The ELF header, the program headers and the notes, and where each mapping's
/// contents go in the file; returns those bytes, the offsets and the file's length.
fn headers(core: &Core) -> io::Result<(Vec<u8>, Vec<u64>, u64)> {
    let notes = notes::all(core);
    let mut bytes = Vec::new();
    let mut buffer = StreamingBuffer::new(&mut bytes);
    let mut w = Writer::new(Endianness::Little, true, &mut buffer);
    w.reserve_file_header();
    w.reserve_program_headers(1 + core.mappings.len() as u32);
    let notes_offset = w.reserve(notes.len() as u64, 4);
    let offsets: Vec<u64> = core
        .mappings
        .iter()
        .map(|m| match m.dump_len {
            0 => w.reserved_len(),
            len => w.reserve(len, PAGE),
        })
        .collect();
    let total = w.reserved_len();
    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_SYSV,
        abi_version: 0,
        e_type: elf::ET_CORE,
        e_machine: elf::EM_X86_64,
        e_entry: 0,
        e_flags: Default::default(),
    })
    .map_err(to_io)?;
    w.write_align_program_headers();
    w.write_program_header(&ProgramHeader {
        p_type: elf::PT_NOTE,
        p_flags: Default::default(),
        p_offset: notes_offset,
        p_vaddr: 0,
        p_paddr: 0,
        p_filesz: notes.len() as u64,
        p_memsz: 0,
        p_align: 4,
    });
    for (m, offset) in core.mappings.iter().zip(&offsets) {
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: program_flags(m),
            p_offset: *offset,
            p_vaddr: m.start,
            p_paddr: 0,
            p_filesz: m.dump_len,
            p_memsz: m.end - m.start,
            p_align: PAGE,
        });
    }
    w.pad_until(notes_offset);
    w.write(&notes);
    buffer.result()?;
    Ok((bytes, offsets, total))
}

/// Writes at chosen offsets, seeking only over the holes it leaves.
struct Sparse<W: Write + Seek> {
    out: W,
    at: u64,
}

impl<W: Write + Seek> Sparse<W> {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        if offset != self.at {
            self.out.seek(SeekFrom::Start(offset))?;
        }
        self.out.write_all(data)?;
        self.at = offset + data.len() as u64;
        Ok(())
    }

    /// Makes the file `len` bytes long when a hole ends it.
    fn finish(mut self, len: u64) -> io::Result<()> {
        if self.at < len {
            self.write_at(len - 1, &[0])?;
        }
        self.out.flush()
    }
}

/// Writes the pages of `run` (within mapping `m`, stored from `offset`) that are
/// not all zeroes.
fn write_run<W: Write + Seek>(
    sparse: &mut Sparse<W>,
    m: &Mapping,
    offset: u64,
    run: Range<u64>,
    read_memory: &mut dyn FnMut(u64, &mut [u8]) -> bool,
) -> io::Result<()> {
    let mut chunk = vec![0u8; (CHUNK_PAGES * PAGE) as usize];
    let mut at = run.start;
    while at < run.end {
        let n = (run.end - at).min(CHUNK_PAGES * PAGE);
        let buf = &mut chunk[..n as usize];
        if !read_memory(at, buf) {
            buf.fill(0);
        }
        for (i, page) in buf.chunks(PAGE as usize).enumerate() {
            if page.iter().any(|&b| b != 0) {
                let addr = at + i as u64 * PAGE;
                sparse.write_at(offset + (addr - m.start), page)?;
            }
        }
        at += n;
    }
    Ok(())
}

/// Writes `core` to `out`. `read_memory(addr, buf)` fills `buf` from the process's
/// memory at `addr`, returning false where it cannot (that range reads as zeroes).
/// Each mapping's first `dump_len` bytes are stored; of them, only populated pages
/// that are not all zeroes are written, the rest are holes (read back as zeroes).
pub fn write<W: Write + Seek>(
    core: &Core,
    read_memory: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    out: W,
) -> io::Result<()> {
    let (headers, offsets, total) = headers(core)?;
    let mut sparse = Sparse { out, at: 0 };
    sparse.write_at(0, &headers)?;
    for (m, offset) in core.mappings.iter().zip(&offsets) {
        let stored = m.start..m.start.saturating_add(m.dump_len).min(m.end);
        for run in &m.populated {
            let run = run.start.max(stored.start)..run.end.min(stored.end);
            if run.start < run.end {
                write_run(&mut sparse, m, *offset, run, read_memory)?;
            }
        }
    }
    sparse.finish(total)
}

/// A note read back from a core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub name: String,
    pub n_type: u32,
    pub desc: Vec<u8>,
}

/// A PT_LOAD read back from a core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    pub vaddr: u64,
    pub memsz: u64,
    pub flags: u32,
    pub data: Vec<u8>,
}

/// Parses a core file: its notes and loadable segments.
pub fn read(data: &[u8]) -> Result<(Vec<Note>, Vec<Load>), String> {
    let endian = LittleEndian;
    let header = elf::FileHeader64::<LittleEndian>::parse(data).map_err(|e| e.to_string())?;
    if header.e_type(endian) != elf::ET_CORE {
        return Err("not a core file".into());
    }
    let mut notes = Vec::new();
    let mut loads = Vec::new();
    for ph in header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?
    {
        if let Some(mut it) = ph.notes(endian, data).map_err(|e| e.to_string())? {
            while let Some(note) = it.next().map_err(|e| e.to_string())? {
                notes.push(Note {
                    name: String::from_utf8_lossy(note.name()).into_owned(),
                    n_type: note.n_type(endian).0,
                    desc: note.desc().to_vec(),
                });
            }
        } else if ph.p_type(endian) == elf::PT_LOAD {
            loads.push(Load {
                vaddr: ph.p_vaddr(endian),
                memsz: ph.p_memsz(endian),
                flags: ph.p_flags(endian).0,
                data: ph
                    .data(endian, data)
                    .map_err(|_| "truncated segment".to_string())?
                    .to_vec(),
            });
        }
    }
    Ok((notes, loads))
}

/// A PT_LOAD's header: where its contents lie in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadHeader {
    pub vaddr: u64,
    pub memsz: u64,
    pub flags: u32,
    pub offset: u64,
    pub filesz: u64,
}

/// The largest note segment [`read_headers`] accepts.
pub const MAX_NOTES: u64 = 64 << 20;

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Reads `len` bytes at `offset` of `file`, refusing ranges past its end.
fn read_range(file: &std::fs::File, offset: u64, len: u64, size: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(invalid(format!(
            "{len} bytes at offset {offset} lie past the end of the file ({size} bytes)"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Parses a core file's headers and notes without reading its segments'
/// contents: every PT_LOAD must lie within the file (a truncated file is refused).
pub fn read_headers(file: &std::fs::File) -> io::Result<(Vec<Note>, Vec<LoadHeader>)> {
    let endian = LittleEndian;
    let size = file.metadata()?.len();
    let ehdr_len = size_of::<elf::FileHeader64<LittleEndian>>() as u64;
    let mut head = read_range(file, 0, ehdr_len, size)?;
    let header = elf::FileHeader64::<LittleEndian>::parse(&head[..]).map_err(invalid)?;
    if header.e_type(endian) != elf::ET_CORE || header.e_machine(endian) != elf::EM_X86_64 {
        return Err(invalid("not an x86-64 core file"));
    }
    let phoff = header.e_phoff(endian);
    let phnum = u64::from(header.e_phnum(endian));
    let phentsize = size_of::<elf::ProgramHeader64<LittleEndian>>() as u64;
    if u64::from(header.e_phentsize(endian)) != phentsize || phoff != ehdr_len {
        return Err(invalid("unexpected program header layout"));
    }
    head.extend(read_range(file, phoff, phnum * phentsize, size)?);
    let header = elf::FileHeader64::<LittleEndian>::parse(&head[..]).map_err(invalid)?;
    let mut notes = Vec::new();
    let mut loads = Vec::new();
    for ph in header.program_headers(endian, &head[..]).map_err(invalid)? {
        let (offset, filesz) = (ph.p_offset(endian), ph.p_filesz(endian));
        match ph.p_type(endian) {
            elf::PT_NOTE => {
                if filesz > MAX_NOTES {
                    return Err(invalid(format!("a note segment of {filesz} bytes")));
                }
                let data = read_range(file, offset, filesz, size)?;
                let mut it =
                    object::read::elf::NoteIterator::<elf::FileHeader64<LittleEndian>>::new(
                        endian,
                        ph.p_align(endian),
                        &data[..],
                    )
                    .map_err(invalid)?;
                while let Some(note) = it.next().map_err(invalid)? {
                    notes.push(Note {
                        name: String::from_utf8_lossy(note.name()).into_owned(),
                        n_type: note.n_type(endian).0,
                        desc: note.desc().to_vec(),
                    });
                }
            }
            elf::PT_LOAD => {
                let within = offset.checked_add(filesz).is_some_and(|end| end <= size);
                if !within || filesz > ph.p_memsz(endian) {
                    return Err(invalid(format!(
                        "segment at {:#x} lies past the end of the file (truncated?)",
                        ph.p_vaddr(endian)
                    )));
                }
                loads.push(LoadHeader {
                    vaddr: ph.p_vaddr(endian),
                    memsz: ph.p_memsz(endian),
                    flags: ph.p_flags(endian).0,
                    offset,
                    filesz,
                });
            }
            _ => {}
        }
    }
    Ok((notes, loads))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(
        start: u64,
        pages: u64,
        dump_pages: u64,
        populated: impl IntoIterator<Item = Range<u64>>,
    ) -> Mapping {
        Mapping {
            start,
            end: start + pages * PAGE,
            read: true,
            write: true,
            exec: false,
            file: None,
            dump_len: dump_pages * PAGE,
            populated: populated.into_iter().collect(),
        }
    }

    /// Writes a core of `mappings` over memory whose every byte is 0xaa except the
    /// page at 0x10000 (all zeroes); returns the loads read back.
    fn written(mappings: Vec<Mapping>) -> Vec<Load> {
        let core = Core {
            signal: 11,
            siginfo: [0; 128],
            process: Process::default(),
            threads: Vec::new(),
            auxv: Vec::new(),
            mappings,
            extra_notes: Vec::new(),
        };
        let mut mem = |addr: u64, buf: &mut [u8]| {
            for (i, page) in buf.chunks_mut(PAGE as usize).enumerate() {
                let zero = addr + i as u64 * PAGE == 0x10000;
                page.fill(if zero { 0 } else { 0xaa });
            }
            true
        };
        let mut out = Vec::new();
        write(&core, &mut mem, io::Cursor::new(&mut out)).unwrap();
        read(&out).unwrap().1
    }

    #[test]
    fn unpopulated_and_zero_pages_read_back_as_zeroes() {
        let loads = written(vec![mapping(
            0xe000,
            4,
            4,
            vec![0xe000..0xf000, 0x10000..0x11000],
        )]);
        let data = &loads[0].data;
        assert_eq!(data.len(), 4 * PAGE as usize);
        let page = |n: usize| &data[n * PAGE as usize..(n + 1) * PAGE as usize];
        assert!(page(0).iter().all(|&b| b == 0xaa), "populated page");
        assert!(page(1).iter().all(|&b| b == 0), "never populated page");
        assert!(page(2).iter().all(|&b| b == 0), "zero page");
        assert!(page(3).iter().all(|&b| b == 0), "trailing hole");
    }

    #[test]
    fn only_the_dumped_length_is_stored() {
        let loads = written(vec![
            mapping(0x20000, 3, 1, Some(0x20000..0x23000)),
            mapping(0x30000, 2, 0, Some(0x30000..0x32000)),
        ]);
        assert_eq!(loads[0].data, vec![0xaa; PAGE as usize]);
        assert_eq!(loads[0].memsz, 3 * PAGE);
        assert!(loads[1].data.is_empty());
        assert_eq!(loads[1].memsz, 2 * PAGE);
    }
}
