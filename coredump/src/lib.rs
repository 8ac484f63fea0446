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

use std::io::{self, Write};

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
}

const PAGE: u64 = 4096;
const CHUNK: usize = 1 << 20;

fn to_io(e: object::write::Error) -> io::Error {
    io::Error::other(e.to_string())
}

/// Writes `core` to `out`. `read_memory(addr, buf)` fills `buf` from the process's
/// memory at `addr`, returning false where it cannot (that range is written as
/// zeroes). Mappings without read permission get no contents, as on Linux.
pub fn write<W: Write>(
    core: &Core,
    read_memory: &mut dyn FnMut(u64, &mut [u8]) -> bool,
    out: W,
) -> io::Result<()> {
    let notes = notes::all(core);
    let mut buffer = StreamingBuffer::new(out);
    let mut w = Writer::new(Endianness::Little, true, &mut buffer);
    w.reserve_file_header();
    w.reserve_program_headers(1 + core.mappings.len() as u32);
    let notes_offset = w.reserve(notes.len() as u64, 4);
    let offsets: Vec<u64> = core
        .mappings
        .iter()
        .map(|m| {
            if m.read {
                w.reserve(m.end - m.start, PAGE)
            } else {
                w.reserved_len()
            }
        })
        .collect();
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
        let mut flags = elf::ProgramFlags(0);
        for (on, f) in [
            (m.read, elf::PF_R),
            (m.write, elf::PF_W),
            (m.exec, elf::PF_X),
        ] {
            if on {
                flags = elf::ProgramFlags(flags.0 | f.0);
            }
        }
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: flags,
            p_offset: *offset,
            p_vaddr: m.start,
            p_paddr: 0,
            p_filesz: if m.read { m.end - m.start } else { 0 },
            p_memsz: m.end - m.start,
            p_align: PAGE,
        });
    }
    w.pad_until(notes_offset);
    w.write(&notes);
    let mut chunk = vec![0u8; CHUNK];
    for (m, offset) in core.mappings.iter().zip(&offsets) {
        if !m.read {
            continue;
        }
        w.pad_until(*offset);
        let mut at = m.start;
        while at < m.end {
            let n = ((m.end - at) as usize).min(CHUNK);
            let buf = &mut chunk[..n];
            if !read_memory(at, buf) {
                buf.fill(0);
            }
            w.write(buf);
            at += n as u64;
        }
    }
    buffer.result()
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
