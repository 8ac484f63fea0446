//! The initial process stack, laid out as Linux's execve does (fs/exec.c and
//! create_elf_tables in fs/binfmt_elf.c), from the top down:
//!
//! ```text
//! STACK_TOP   8 zero bytes
//!             execfn string (AT_EXECFN)
//!             environment strings, argument strings (argv[0] lowest)
//!             "x86_64" (AT_PLATFORM), 16 random bytes (AT_RANDOM)
//!             auxv, NULL, envp[], NULL, argv[], argc   <- rsp, 16-byte aligned
//! ```

use std::ffi::CString;

use anyhow::Result;

use crate::guest::loader::Image;
use crate::guest::mm::STACK_TOP;
use crate::guest::vm::Vm;
use crate::memory::GuestMemory;

const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_SYSINFO_EHDR: u64 = 33;
const AT_MINSIGSTKSZ: u64 = 51;

/// HWCAP2_FSGSBASE: user code may use the FS/GS base instructions.
const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// What goes on the stack besides the program's own facts.
pub struct Exec<'a> {
    pub execfn: &'a CString,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
}

/// A downward-growing writer into guest memory.
struct Pusher<'a> {
    mem: &'a GuestMemory,
    sp: u64,
}

impl Pusher<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<u64> {
        self.sp -= b.len() as u64;
        self.mem.write_bytes(self.sp, b)?;
        Ok(self.sp)
    }

    fn cstr(&mut self, s: &CString) -> Result<u64> {
        self.bytes(s.as_bytes_with_nul())
    }
}

/// Linux's AT_MINSIGSTKSZ: the largest signal frame (rt_sigframe, alignment padding and
/// the XSAVE area of every enabled feature), see init_sigframe_size() in the kernel.
fn min_sigstksz(vm: &Vm) -> u64 {
    let xstate = vm.kvm.cpuid(0xd, 0).map_or(512 + 64, |e| e.ebx as u64);
    let frame = 440 + 15 + xstate + 4 + 63;
    frame.next_multiple_of(16)
}

/// Builds the initial stack; returns the initial RSP and the auxiliary vector's bytes.
pub fn build(vm: &Vm, image: &Image, exec: &Exec<'_>) -> Result<(u64, Vec<u8>)> {
    let mut p = Pusher {
        mem: &vm.mem,
        sp: STACK_TOP - 8,
    };
    let execfn = p.cstr(exec.execfn)?;
    let mut envp: Vec<u64> = Vec::with_capacity(exec.envp.len());
    for e in exec.envp.iter().rev() {
        envp.push(p.cstr(e)?);
    }
    envp.reverse();
    let mut argv: Vec<u64> = Vec::with_capacity(exec.argv.len());
    for a in exec.argv.iter().rev() {
        argv.push(p.cstr(a)?);
    }
    argv.reverse();
    p.sp &= !15;
    let platform = p.bytes(b"x86_64\0")?;
    let mut random = [0u8; 16];
    rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())?;
    let random = p.bytes(&random)?;

    let hwcap = vm.kvm.cpuid(1, 0).map_or(0, |e| e.edx as u64);
    let fsgsbase = vm.kvm.cpuid(7, 0).is_some_and(|e| e.ebx & 1 != 0);
    let mut auxv: Vec<(u64, u64)> = vec![
        (AT_MINSIGSTKSZ, min_sigstksz(vm)),
        (AT_HWCAP, hwcap),
        (AT_PAGESZ, 4096),
        (AT_CLKTCK, rustix::param::clock_ticks_per_second()),
        (AT_PHDR, image.phdr),
        (AT_PHENT, image.phent),
        (AT_PHNUM, image.phnum),
        (AT_BASE, image.interp_base),
        (AT_FLAGS, 0),
        (AT_ENTRY, image.program_entry),
        (AT_UID, rustix::process::getuid().as_raw() as u64),
        (AT_EUID, rustix::process::geteuid().as_raw() as u64),
        (AT_GID, rustix::process::getgid().as_raw() as u64),
        (AT_EGID, rustix::process::getegid().as_raw() as u64),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        // Always there on x86, as Linux gives it (a core's auxv shows it too).
        (AT_HWCAP2, if fsgsbase { HWCAP2_FSGSBASE } else { 0 }),
    ];
    if image.vdso != 0 {
        auxv.push((AT_SYSINFO_EHDR, image.vdso));
    }
    auxv.extend([(AT_EXECFN, execfn), (AT_PLATFORM, platform), (AT_NULL, 0)]);

    let words = 1 + argv.len() + 1 + envp.len() + 1 + 2 * auxv.len();
    let sp = (p.sp - 8 * words as u64) & !15;
    let mut table: Vec<u64> = Vec::with_capacity(words);
    table.push(argv.len() as u64);
    table.extend(&argv);
    table.push(0);
    table.extend(&envp);
    table.push(0);
    for (k, v) in &auxv {
        table.extend([*k, *v]);
    }
    let bytes: Vec<u8> = table.iter().flat_map(|w| w.to_le_bytes()).collect();
    vm.mem.write_bytes(sp, &bytes)?;
    let auxv_bytes = auxv
        .iter()
        .flat_map(|(k, v)| [k.to_le_bytes(), v.to_le_bytes()])
        .flatten()
        .collect();
    Ok((sp, auxv_bytes))
}
