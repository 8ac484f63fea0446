//! `qXfer:libraries-svr4:read`: the shared objects the dynamic linker has loaded,
//! read from its link map (`_r_debug.r_map`), which the program's DT_DEBUG entry
//! points at once the linker has started. gdb then needs no memory reads of its own
//! to find the libraries. A static payload (no PT_DYNAMIC) has an empty list.

use std::fmt::Write;

use gdbstub::target::TargetResult;
use gdbstub::target::ext::libraries::LibrariesSvr4;

use super::KmTarget;
use super::host::copy_from;
use crate::memory::GuestMemory;

const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;
const PT_DYNAMIC: u32 = 2;
const PT_PHDR: u32 = 6;
const DT_NULL: u64 = 0;
const DT_DEBUG: u64 = 21;
/// Size of an ELF64 program header.
const PHDR_SIZE: u64 = 56;
/// Bounds on what is walked, against a corrupt or looping link map.
const MAX_DYNAMIC: u64 = 4096;
const MAX_LIBRARIES: usize = 4096;
const MAX_NAME: usize = 4096;

/// The auxiliary vector entry `key`.
fn auxv_value(auxv: &[u8], key: u64) -> Option<u64> {
    auxv.chunks_exact(16)
        .map(|e| {
            let word = |i: usize| u64::from_le_bytes(e[i..i + 8].try_into().expect("8 bytes"));
            (word(0), word(8))
        })
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// `&_r_debug`, from the program's DT_DEBUG; `None` before the linker set it (or
/// for a static program).
fn r_debug(mem: &GuestMemory, auxv: &[u8]) -> Option<u64> {
    let phdr = auxv_value(auxv, AT_PHDR)?;
    let phnum = auxv_value(auxv, AT_PHNUM)?;
    let header = |i: u64| -> Option<(u32, u64)> {
        let at = phdr + i * PHDR_SIZE;
        Some((
            mem.read_obj::<u32>(at).ok()?,
            mem.read_obj::<u64>(at + 16).ok()?,
        ))
    };
    let headers: Vec<(u32, u64)> = (0..phnum.min(256)).filter_map(header).collect();
    let bias = headers
        .iter()
        .find(|(t, _)| *t == PT_PHDR)
        .map_or(0, |(_, vaddr)| phdr.wrapping_sub(*vaddr));
    let dynamic = headers
        .iter()
        .find(|(t, _)| *t == PT_DYNAMIC)?
        .1
        .wrapping_add(bias);
    for i in 0..MAX_DYNAMIC {
        let tag = mem.read_obj::<u64>(dynamic + i * 16).ok()?;
        let value = mem.read_obj::<u64>(dynamic + i * 16 + 8).ok()?;
        match tag {
            DT_NULL => return None,
            DT_DEBUG if value != 0 => return Some(value),
            _ => {}
        }
    }
    None
}

/// The library list in gdb's SVR4 format.
fn library_list(mem: &GuestMemory, auxv: &[u8]) -> String {
    let mut xml = String::from("<library-list-svr4 version=\"1.0\"");
    let mut lm = r_debug(mem, auxv)
        .and_then(|r| mem.read_obj::<u64>(r + 8).ok())
        .unwrap_or(0);
    if lm == 0 {
        xml.push_str("/>");
        return xml;
    }
    let _ = write!(xml, " main-lm=\"{lm:#x}\">");
    // The first entry is the program itself (main-lm); the rest are libraries.
    lm = mem.read_obj::<u64>(lm + 24).unwrap_or(0);
    for _ in 0..MAX_LIBRARIES {
        if lm == 0 {
            break;
        }
        let field = |off: u64| mem.read_obj::<u64>(lm + off).unwrap_or(0);
        let (l_addr, l_name, l_ld, l_next) = (field(0), field(8), field(16), field(24));
        let name = mem.read_cstr(l_name, MAX_NAME).unwrap_or_default();
        let name = String::from_utf8_lossy(&name)
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;");
        let _ = write!(
            xml,
            "<library name=\"{name}\" lm=\"{lm:#x}\" l_addr=\"{l_addr:#x}\" l_ld=\"{l_ld:#x}\" lmid=\"0x0\"/>"
        );
        lm = l_next;
    }
    xml.push_str("</library-list-svr4>");
    xml
}

impl LibrariesSvr4 for KmTarget {
    fn get_libraries_svr4(
        &self,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let xml = library_list(&self.guest.vm.mem, &self.guest.config.auxv);
        Ok(copy_from(xml.as_bytes(), offset, length, buf))
    }
}
