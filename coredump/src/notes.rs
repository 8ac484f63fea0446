//! The note segment of a core file: each kernel structure laid out by one function,
//! field by field, in the x86-64 kernel's order and sizes.

use crate::{Core, Regs, Thread};

pub const NT_PRSTATUS: u32 = 1;
pub const NT_FPREGSET: u32 = 2;
pub const NT_PRPSINFO: u32 = 3;
pub const NT_AUXV: u32 = 6;
pub const NT_X86_XSTATE: u32 = 0x202;
pub const NT_SIGINFO: u32 = 0x5349_4749;
pub const NT_FILE: u32 = 0x4649_4c45;

/// Size of the FXSAVE area, the NT_FPREGSET payload.
const FXSAVE_SIZE: usize = 512;

/// A little-endian field writer.
#[derive(Default)]
struct Fields(Vec<u8>);

impl Fields {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn pad(&mut self, n: usize) -> &mut Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
    /// A fixed-size, NUL-padded string field.
    fn text(&mut self, s: &str, size: usize) -> &mut Self {
        let b = s.as_bytes();
        let n = b.len().min(size - 1);
        self.0.extend_from_slice(&b[..n]);
        self.pad(size - n)
    }
}

fn regs(f: &mut Fields, r: &Regs) {
    for v in [
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.rflags, r.rsp, r.ss, r.fs_base, r.gs_base, r.ds,
        r.es, r.fs, r.gs,
    ] {
        f.u64(v);
    }
}

/// `struct elf_prstatus` (336 bytes).
pub fn prstatus(core: &Core, t: &Thread) -> Vec<u8> {
    let mut f = Fields::default();
    f.i32(core.signal).i32(0).i32(0); // pr_info: si_signo, si_code, si_errno
    f.u16(core.signal as u16).pad(2); // pr_cursig
    f.u64(t.sigpend).u64(t.sighold);
    let p = &core.process;
    f.i32(t.tid).i32(p.ppid).i32(p.pgrp).i32(p.sid);
    f.pad(4 * 16); // user, system, children's user and system times
    regs(&mut f, &t.regs);
    f.i32(1).pad(4); // pr_fpvalid
    f.0
}

/// Offset of the registers in `struct elf_prstatus`.
const PRSTATUS_REGS: usize = 112;
/// Size of `struct elf_prstatus`.
const PRSTATUS_SIZE: usize = 336;

/// The thread id, blocked signals and registers of an NT_PRSTATUS note (what
/// [`prstatus`] wrote); `None` if it has not the kernel's size.
pub fn parse_prstatus(desc: &[u8]) -> Option<(i32, u64, Regs)> {
    if desc.len() != PRSTATUS_SIZE {
        return None;
    }
    let u64_at = |at: usize| u64::from_le_bytes(desc[at..at + 8].try_into().expect("8 bytes"));
    let tid = i32::from_le_bytes(desc[32..36].try_into().expect("4 bytes"));
    let r: Vec<u64> = (0..27).map(|i| u64_at(PRSTATUS_REGS + 8 * i)).collect();
    let regs = Regs {
        r15: r[0],
        r14: r[1],
        r13: r[2],
        r12: r[3],
        rbp: r[4],
        rbx: r[5],
        r11: r[6],
        r10: r[7],
        r9: r[8],
        r8: r[9],
        rax: r[10],
        rcx: r[11],
        rdx: r[12],
        rsi: r[13],
        rdi: r[14],
        orig_rax: r[15],
        rip: r[16],
        cs: r[17],
        rflags: r[18],
        rsp: r[19],
        ss: r[20],
        fs_base: r[21],
        gs_base: r[22],
        ds: r[23],
        es: r[24],
        fs: r[25],
        gs: r[26],
    };
    Some((tid, u64_at(24), regs))
}

/// `struct elf_prpsinfo` (136 bytes).
pub fn prpsinfo(core: &Core) -> Vec<u8> {
    let p = &core.process;
    let mut f = Fields::default();
    f.u8(b'R').u8(b'R').u8(0).u8(0).pad(4); // state, sname, zombie, nice
    f.u64(0); // pr_flag
    f.u32(p.uid).u32(p.gid);
    f.i32(p.pid).i32(p.ppid).i32(p.pgrp).i32(p.sid);
    f.text(&p.fname, 16).text(&p.psargs, 80);
    f.0
}

/// NT_FILE: the count, the page size, (start, end, page offset) per file mapping,
/// then the file names.
pub fn file(core: &Core) -> Vec<u8> {
    let files: Vec<_> = core
        .mappings
        .iter()
        .filter_map(|m| m.file.as_ref().map(|f| (m, f)))
        .collect();
    let mut f = Fields::default();
    f.u64(files.len() as u64).u64(4096);
    for (m, (_, offset)) in &files {
        f.u64(m.start).u64(m.end).u64(offset / 4096);
    }
    for (_, (name, _)) in &files {
        f.0.extend_from_slice(name.as_bytes());
        f.u8(0);
    }
    f.0
}

/// One note: header, name and descriptor, each padded to 4 bytes.
fn note(out: &mut Vec<u8>, name: &str, n_type: u32, desc: &[u8]) {
    let mut f = Fields::default();
    f.u32(name.len() as u32 + 1)
        .u32(desc.len() as u32)
        .u32(n_type);
    f.0.extend_from_slice(name.as_bytes());
    f.u8(0);
    f.pad(f.0.len().next_multiple_of(4) - f.0.len());
    f.0.extend_from_slice(desc);
    f.pad(f.0.len().next_multiple_of(4) - f.0.len());
    out.extend_from_slice(&f.0);
}

/// The whole note segment, in the kernel's order: the first thread's notes, the
/// process notes, then the other threads'.
pub fn all(core: &Core) -> Vec<u8> {
    let mut out = Vec::new();
    let thread_notes = |out: &mut Vec<u8>, t: &Thread| {
        note(out, "CORE", NT_PRSTATUS, &prstatus(core, t));
        let mut fx = t.xsave.clone();
        fx.resize(FXSAVE_SIZE.max(fx.len()), 0);
        note(out, "CORE", NT_FPREGSET, &fx[..FXSAVE_SIZE]);
        if !t.xsave.is_empty() {
            note(out, "LINUX", NT_X86_XSTATE, &t.xsave);
        }
    };
    let mut threads = core.threads.iter();
    if let Some(first) = threads.next() {
        thread_notes(&mut out, first);
    }
    note(&mut out, "CORE", NT_PRPSINFO, &prpsinfo(core));
    note(&mut out, "CORE", NT_SIGINFO, &core.siginfo);
    note(&mut out, "CORE", NT_AUXV, &core.auxv);
    note(&mut out, "CORE", NT_FILE, &file(core));
    for n in &core.extra_notes {
        note(&mut out, &n.name, n.n_type, &n.desc);
    }
    for t in threads {
        thread_notes(&mut out, t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mapping, Process};

    fn sample() -> Core {
        Core {
            signal: 11,
            siginfo: [0; 128],
            process: Process {
                pid: 42,
                ppid: 1,
                fname: "payload".into(),
                psargs: "payload arg".into(),
                ..Default::default()
            },
            threads: vec![Thread {
                tid: 42,
                regs: Regs {
                    rip: 0x401000,
                    rsp: 0x7fff_0000,
                    ..Default::default()
                },
                xsave: vec![7; 1024],
                sigpend: 0,
                sighold: 0,
            }],
            auxv: vec![0; 16],
            mappings: vec![Mapping {
                start: 0x400000,
                end: 0x402000,
                read: true,
                write: false,
                exec: true,
                file: Some(("/bin/payload".into(), 0)),
                dump_len: 0x2000,
                populated: std::iter::once(0x400000..0x402000).collect(),
            }],
            extra_notes: Vec::new(),
        }
    }

    #[test]
    fn structures_have_the_kernel_sizes() {
        let core = sample();
        assert_eq!(prstatus(&core, &core.threads[0]).len(), 336);
        assert_eq!(prpsinfo(&core).len(), 136);
    }

    #[test]
    fn a_written_core_reads_back() {
        let core = sample();
        let mut out = Vec::new();
        let mut mem = |addr: u64, buf: &mut [u8]| {
            buf.iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = (addr as usize + i) as u8);
            true
        };
        crate::write(&core, &mut mem, std::io::Cursor::new(&mut out)).unwrap();
        let (notes, loads) = crate::read(&out).unwrap();
        let types: Vec<u32> = notes.iter().map(|n| n.n_type).collect();
        assert_eq!(
            types,
            [
                NT_PRSTATUS,
                NT_FPREGSET,
                NT_X86_XSTATE,
                NT_PRPSINFO,
                NT_SIGINFO,
                NT_AUXV,
                NT_FILE
            ]
        );
        let (tid, _, regs) = parse_prstatus(&notes[0].desc).unwrap();
        assert_eq!((tid, regs.rip, regs.rsp), (42, 0x401000, 0x7fff_0000));
        assert_eq!(notes[2].name, "LINUX");
        assert_eq!(loads.len(), 1);
        assert_eq!(loads[0].vaddr, 0x400000);
        assert_eq!(loads[0].data.len(), 0x2000);
        assert_eq!(loads[0].data[5], 5);
        assert!(String::from_utf8_lossy(&notes[6].desc).contains("/bin/payload"));
    }
}
