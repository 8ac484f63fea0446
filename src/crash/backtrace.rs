//! Backtraces of a stopped guest thread: CFI unwinding with each loaded ELF's
//! `.eh_frame` (gimli), symbolization with its DWARF and symbol table (addr2line).
//! The program and every shared object mapped from a file (the dynamic linker,
//! libc, ...) is a [`Module`]; a frame is unwound and named with the module that
//! holds its pc.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, LittleEndian, RegisterRule, UnwindContext, UnwindSection,
    X86_64,
};
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Object, ObjectSection};

/// Frames beyond this many are not unwound (a corrupt stack could loop).
const MAX_FRAMES: usize = 32;

/// Where unwinding starts.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
}

/// An ELF file loaded in the guest: its bytes and load bias.
pub struct Module {
    pub path: String,
    data: Vec<u8>,
    bias: u64,
}

/// The loaded ELF files, by the guest ranges they are mapped at.
#[derive(Default)]
pub struct Modules {
    modules: Vec<Module>,
    ranges: BTreeMap<u64, (u64, usize)>,
}

impl Modules {
    /// Builds the module list from file mappings: (guest range, file, file offset).
    /// A file that is not a readable ELF is left out.
    pub fn from_mappings<'a>(mappings: impl Iterator<Item = (Range<u64>, &'a str, u64)>) -> Self {
        let mut m = Modules::default();
        let mut by_path: BTreeMap<String, Option<usize>> = BTreeMap::new();
        for (range, path, offset) in mappings {
            let idx = *by_path
                .entry(path.to_string())
                .or_insert_with(|| m.load(path, range.start, offset));
            if let Some(idx) = idx {
                m.ranges.insert(range.start, (range.end, idx));
            }
        }
        m
    }

    /// Reads `path`, mapped at `start` from file offset `offset`, and works out its
    /// load bias from the PT_LOAD segment that holds that offset.
    fn load(&mut self, path: &str, start: u64, offset: u64) -> Option<usize> {
        let data = std::fs::read(path).ok()?;
        let bias = {
            let elf = ElfFile64::<object::LittleEndian>::parse(&*data).ok()?;
            let endian = elf.endian();
            let seg = elf.elf_program_headers().iter().find(|p| {
                p.p_type(endian) == object::elf::PT_LOAD
                    && (p.p_offset(endian)..p.p_offset(endian) + p.p_filesz(endian).max(1))
                        .contains(&offset)
            })?;
            start.wrapping_sub(seg.p_vaddr(endian) + (offset - seg.p_offset(endian)))
        };
        self.modules.push(Module {
            path: path.to_string(),
            data,
            bias,
        });
        Some(self.modules.len() - 1)
    }

    /// The module mapped at `pc`.
    fn at(&self, pc: u64) -> Option<&Module> {
        let (_, (end, idx)) = self.ranges.range(..=pc).next_back()?;
        (pc < *end).then(|| &self.modules[*idx])
    }
}

/// One step of CFI unwinding: the caller's (pc, rsp, rbp) of the frame at `pc`.
fn caller(
    module: &Module,
    ctx: &mut UnwindContext<usize>,
    probe: u64,
    (rsp, rbp): (u64, u64),
    read: &dyn Fn(u64) -> Option<u64>,
) -> Option<(u64, u64, u64)> {
    let file = object::File::parse(&*module.data).ok()?;
    let section = file.section_by_name(".eh_frame")?;
    let eh_frame = EhFrame::new(section.data().ok()?, LittleEndian);
    let mut bases = BaseAddresses::default().set_eh_frame(section.address());
    if let Some(text) = file.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    let row = eh_frame
        .unwind_info_for_address(
            &bases,
            ctx,
            probe.wrapping_sub(module.bias),
            EhFrame::cie_from_offset,
        )
        .ok()?;
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RSP => {
            rsp.wrapping_add(*offset as u64)
        }
        CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RBP => {
            rbp.wrapping_add(*offset as u64)
        }
        _ => return None,
    };
    let ra = match row.register(X86_64::RA) {
        Some(RegisterRule::Offset(off)) => read(cfa.wrapping_add(off as u64))?,
        _ => return None,
    };
    let rbp = match row.register(X86_64::RBP) {
        Some(RegisterRule::Offset(off)) => read(cfa.wrapping_add(off as u64)).unwrap_or(rbp),
        _ => rbp,
    };
    (ra != 0 && cfa > rsp).then_some((ra, cfa, rbp))
}

/// The return addresses of the frames of a thread stopped at `start`, innermost
/// first (the first is the faulting instruction itself); `read` reads a word of
/// guest memory.
pub fn unwind(modules: &Modules, start: Start, read: &dyn Fn(u64) -> Option<u64>) -> Vec<u64> {
    let mut pcs = vec![start.rip];
    let mut ctx = UnwindContext::new();
    let (mut pc, mut rsp, mut rbp) = (start.rip, start.rsp, start.rbp);
    while pcs.len() < MAX_FRAMES {
        // A return address points after the call: look up the call itself.
        let probe = if pcs.len() == 1 { pc } else { pc - 1 };
        let Some(module) = modules.at(probe) else {
            break;
        };
        let Some(next) = caller(module, &mut ctx, probe, (rsp, rbp), read) else {
            break;
        };
        (pc, rsp, rbp) = next;
        pcs.push(pc);
    }
    pcs
}

/// One line of a backtrace: `#N 0xPC in function at file:line` (or `in function
/// from library` outside the program), with inlined functions as further lines.
pub fn symbolize(modules: &Modules, program: &str, pcs: &[u64]) -> Vec<String> {
    let mut loaders: BTreeMap<&str, Option<addr2line::Loader>> = BTreeMap::new();
    let mut lines = Vec::new();
    for (n, &pc) in pcs.iter().enumerate() {
        let probe = if n == 0 { pc } else { pc - 1 };
        let module = modules.at(probe);
        let loader = module.and_then(|m| {
            loaders
                .entry(&m.path)
                .or_insert_with(|| addr2line::Loader::new(&m.path).ok())
                .as_ref()
        });
        let mut names: Vec<String> = Vec::new();
        if let (Some(loader), Some(m)) = (loader, module) {
            let probe = probe.wrapping_sub(m.bias);
            if let Ok(mut frames) = loader.find_frames(probe) {
                while let Ok(Some(frame)) = frames.next() {
                    let func = frame
                        .function
                        .as_ref()
                        .and_then(|f| f.demangle().ok())
                        .unwrap_or(Cow::Borrowed("??"));
                    let at = frame
                        .location
                        .as_ref()
                        .map(|l| {
                            let file = l.file.map_or("??", |f| f.rsplit('/').next().unwrap_or(f));
                            format!(" at {file}:{}", l.line.unwrap_or(0))
                        })
                        .unwrap_or_default();
                    names.push(format!("{func}{at}"));
                }
            }
            if names.is_empty() {
                let symbol = loader.find_symbol(probe).unwrap_or("??");
                names.push(addr2line::demangle_auto(Cow::Borrowed(symbol), None).into_owned());
            }
        } else {
            names.push("??".to_string());
        }
        if let Some(m) = module.filter(|m| m.path != program) {
            names[0].push_str(&format!(" from {}", m.path));
        }
        for (i, name) in names.iter().enumerate() {
            if i == 0 {
                lines.push(format!("#{n:<2} {pc:#018x} in {name}"));
            } else {
                lines.push(format!("    {:18} inlined in {name}", ""));
            }
        }
    }
    lines
}
