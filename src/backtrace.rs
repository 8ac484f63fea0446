//! Backtraces of a stopped guest thread: CFI unwinding with the payload's
//! `.eh_frame` (gimli), symbolization with its DWARF and symbol table (addr2line).

use std::borrow::Cow;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, LittleEndian, RegisterRule, UnwindContext, UnwindSection,
    X86_64,
};
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

/// The return addresses of the frames of a thread stopped at `start`, innermost
/// first (the first is the faulting instruction itself). `bias` is the load bias of
/// the executable `elf`; `read` reads a word of guest memory.
pub fn unwind(elf: &[u8], bias: u64, start: Start, read: &dyn Fn(u64) -> Option<u64>) -> Vec<u64> {
    let mut pcs = vec![start.rip];
    let Ok(file) = object::File::parse(elf) else {
        return pcs;
    };
    let Some(section) = file.section_by_name(".eh_frame") else {
        return pcs;
    };
    let Ok(data) = section.data() else { return pcs };
    let eh_frame = EhFrame::new(data, LittleEndian);
    let mut bases = BaseAddresses::default().set_eh_frame(section.address());
    if let Some(text) = file.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    let mut ctx = UnwindContext::new();
    let (mut pc, mut rsp, mut rbp) = (start.rip, start.rsp, start.rbp);
    while pcs.len() < MAX_FRAMES {
        // A return address points after the call: look up the call itself.
        let probe = if pcs.len() == 1 { pc } else { pc - 1 }.wrapping_sub(bias);
        let Ok(row) =
            eh_frame.unwind_info_for_address(&bases, &mut ctx, probe, EhFrame::cie_from_offset)
        else {
            break;
        };
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RSP => {
                rsp.wrapping_add(*offset as u64)
            }
            CfaRule::RegisterAndOffset { register, offset } if *register == X86_64::RBP => {
                rbp.wrapping_add(*offset as u64)
            }
            _ => break,
        };
        let Some(ra) = (match row.register(X86_64::RA) {
            Some(RegisterRule::Offset(off)) => read(cfa.wrapping_add(off as u64)),
            _ => None,
        }) else {
            break;
        };
        if let Some(RegisterRule::Offset(off)) = row.register(X86_64::RBP) {
            rbp = read(cfa.wrapping_add(off as u64)).unwrap_or(rbp);
        }
        if ra == 0 || cfa <= rsp {
            break;
        }
        rsp = cfa;
        pc = ra;
        pcs.push(pc);
    }
    pcs
}

/// One line of a backtrace: `#N 0xPC in function at file:line`, with inlined
/// functions as further lines of the same frame.
pub fn symbolize(path: &str, bias: u64, pcs: &[u64]) -> Vec<String> {
    let loader = addr2line::Loader::new(path).ok();
    let mut lines = Vec::new();
    for (n, &pc) in pcs.iter().enumerate() {
        let probe = if n == 0 { pc } else { pc - 1 }.wrapping_sub(bias);
        let mut names: Vec<String> = Vec::new();
        if let Some(loader) = &loader
            && let Ok(mut frames) = loader.find_frames(probe)
        {
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
            let symbol = loader
                .as_ref()
                .and_then(|l| l.find_symbol(probe))
                .unwrap_or("??");
            names.push(addr2line::demangle_auto(Cow::Borrowed(symbol), None).into_owned());
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
