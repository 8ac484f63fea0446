//! The landing pad: the guest's whole "kernel", a few instructions per entry.
//!
//! The system region (mapped supervisor-only except where noted) holds:
//!
//! | offset               | what                                                   |
//! |----------------------|--------------------------------------------------------|
//! | `0x00000`            | GDT (Linux user selectors, one TSS descriptor per vCPU) |
//! | `0x10000`            | IDT: vectors 0-31 point at the exception stubs           |
//! | `0x11000`            | exception stubs, 16 bytes per vector                    |
//! | `0x12000`            | the process's signal dispositions (user read-only, [`write_action`]) |
//! | `0x20000 + 16K * n`  | vCPU n: syscall pad (user RX), request block (user RW), TSS with I/O bitmap, kernel stack |
//! | `0x2000000`          | page-table pool (not mapped)                            |
//!
//! **Syscalls.** MSR_LSTAR of vCPU n points at its own copy of the pad, which stores
//! the syscall number and arguments into the request block next to it, executes one
//! `out` to [`HC_PORT`] (a KVM_EXIT_IO served by the monitor), loads the result, and
//! returns: with `jmp *%rcx` when the pad runs at CPL3 (PVM keeps `syscall` at CPL3)
//! or `sysretq` when it runs at CPL0 (hardware KVM). RCX and R11 are clobbered as the
//! Linux ABI allows; nothing else, and the user stack is never touched. The TSS I/O
//! bitmap opens only [`HC_PORT`] and [`SIGMASK_PORT`] to CPL3. A few syscalls are
//! answered without an exit: [`IN_GUEST`] from the pad page, and, at CPL3 only,
//! rt_sigprocmask and set_robust_list on the thread's words in the request block
//! ([`ThreadWords`]), and rt_sigaction queries from the disposition table.
//!
//! **Exceptions.** Each IDT stub (CPL0) pushes a zero error code when the CPU pushed
//! none, pushes its vector, and executes `out` to [`EXC_PORT`]; the monitor reads the
//! frame from the vCPU's kernel stack ([`ExceptionFrame`]). If the monitor resumes the
//! vCPU, the stub pops both words and `iretq`s through the (possibly edited) frame.

use std::arch::global_asm;

use anyhow::Result;
use kvm_bindings::kvm_regs;
use vm_memory::ByteValued;

use super::paging::{PTE_NX, PTE_USER, PTE_WRITE, PageTables};
use crate::kvm::CpuSetup;
use crate::memory::{Fault, GuestMemory, PAGE_SIZE};

pub const SYS_BASE: u64 = 0x7fff_fc00_0000;
pub const SYS_SIZE: u64 = 64 << 20;
const GDT: u64 = SYS_BASE;
const GDT_SIZE: u64 = 0x10000;
const IDT: u64 = SYS_BASE + 0x10000;
const STUBS: u64 = SYS_BASE + 0x11000;
const CPU_AREAS: u64 = SYS_BASE + 0x20000;
const CPU_AREA_SIZE: u64 = 4 * PAGE_SIZE;
/// The process's signal dispositions, which the pad's rt_sigaction reads: a
/// sequence word, then from [`ACTION_ENTRIES`] on one `struct kernel_sigaction`
/// (32 bytes) per signal 1-64.
/// Next to the stubs, so that it shares their host huge page and page tables.
const ACTIONS: u64 = SYS_BASE + 0x12000;
const ACTION_ENTRIES: u64 = 64;
/// Page-table pool inside the system region.
pub const PT_POOL: std::ops::Range<u64> = SYS_BASE + 0x200_0000..SYS_BASE + SYS_SIZE;
pub const MAX_VCPUS: u32 = 1024;

pub const KERNEL_CS: u16 = 0x10;
pub const KERNEL_DS: u16 = 0x18;
pub const USER32_CS: u16 = 0x23;
pub const USER_DS: u16 = 0x2b;
pub const USER_CS: u16 = 0x33;
const FIRST_TSS_ENTRY: u64 = 8;

/// Port of the syscall hypercall (opened to CPL3 in every TSS).
pub const HC_PORT: u16 = 0x10;
/// Port the exception stubs use (CPL0 only).
pub const EXC_PORT: u16 = 0x11;

const TSS_SIZE: u64 = 0x68;
/// Where the sigreturn trampoline sits in each pad page (after the pad's code).
const SIGRETURN_OFFSET: u64 = 0x400;
/// I/O bitmap bytes: ports 0..31 plus the terminating 0xff byte.
const IOBITMAP_LEN: u64 = 5;

// The pad, copied into each vCPU's area. The request block is the page after the
// pad's page, addressed RIP-relative through a local label so that the displacement
// is fixed at assembly time and the code works wherever it is copied.
//
// First the syscalls answered in the guest ([`IN_GUEST`], in that order): when the
// pad page's `on` word is set, each has a 32-byte block that loads its answer from
// the pad page and returns (`sysretq` when the `sysret` word says the pad runs at
// CPL0). Everything else, and everything while `on` is clear, takes the exit path.
// RAX holds the syscall number until an answer block's first instruction loads the
// answer, and each block answers one syscall: [`CpuArea::leave_answer`] relies on
// both (and on the commit point of the rt_sigprocmask block).
global_asm!(
    ".pushsection .rodata.km_pad, \"a\"",
    ".balign 64",
    ".globl km_pad_start",
    "km_pad_start:",
    ".Lkm_pad:",
    "cmpq $0, .Lkm_pad+{answers}(%rip)",
    "je 2f",
    "cmp ${sigprocmask}, %rax",
    "je .Lkm_sigmask",
    "cmp ${sigaction}, %rax",
    "je .Lkm_sigaction",
    "cmp ${set_robust_list}, %rax",
    "je .Lkm_robust",
    "cmp ${nr0}, %rax",
    "je .Lkm_answers",
    "cmp ${nr1}, %rax",
    "je .Lkm_answers+{block}",
    "cmp ${nr2}, %rax",
    "je .Lkm_answers+2*{block}",
    "cmp ${nr3}, %rax",
    "je .Lkm_answers+3*{block}",
    "cmp ${nr4}, %rax",
    "je .Lkm_answers+4*{block}",
    "cmp ${nr5}, %rax",
    "je .Lkm_answers+5*{block}",
    "jmp 2f",
    ".balign {block}",
    ".globl km_pad_answers",
    "km_pad_answers:",
    ".Lkm_answers:",
    ".irp n, 0, 1, 2, 3, 4, 5",
    ".balign {block}",
    "mov .Lkm_pad+{answers}+16+8*\\n(%rip), %rax",
    "cmpq $0, .Lkm_pad+{answers}+8(%rip)",
    "jne 1f",
    "jmp *%rcx",
    "1: sysretq",
    ".endr",
    // set_robust_list(head, 24) at CPL3: the head goes to the request block,
    // where km takes it from at the next exit. Made again from the start
    // wherever it is interrupted.
    ".balign {block}",
    ".globl km_pad_robust",
    "km_pad_robust:",
    ".Lkm_robust:",
    "cmpq $0, .Lkm_pad+{answers}+8(%rip)",
    "jne 2f",
    "cmp ${robust_len}, %rsi",
    "jne 2f",
    "mov %rdi, .Lkm_pad+{block_page}+{robust}(%rip)",
    "xor %eax, %eax",
    "jmp *%rcx",
    // rt_sigprocmask(how, set, oldset, 8) on the mask word of the request block,
    // at CPL3 only (at CPL0 the payload's pointers could reach km's own pages).
    // Until the `xchg` that commits the new mask only the scratch word and
    // *oldset are written and RAX is the only register changed, so a fault or a
    // kick there takes the exit path, which makes the whole call again. After
    // it the call is done: the pad returns 0, first taking an exit to port
    // SIGMASK_PORT when a signal pending at entry is no longer blocked, where
    // km delivers it.
    ".balign {block}",
    ".globl km_pad_sigmask",
    "km_pad_sigmask:",
    ".Lkm_sigmask:",
    "cmpq $0, .Lkm_pad+{answers}+8(%rip)",
    "jne 2f",
    "cmp $8, %r10",
    "jne 2f",
    "cmp $2, %rdi",
    "ja 2f",
    "test %rsi, %rsi",
    "jnz 5f",
    // No new set: only *oldset is written.
    "test %rdx, %rdx",
    "jz 4f",
    "mov .Lkm_pad+{block_page}+{mask}(%rip), %rax",
    "mov %rax, (%rdx)",
    "4: xor %eax, %eax",
    "jmp *%rcx",
    "5: mov (%rsi), %rax",
    "mov %rax, .Lkm_pad+{block_page}+{scratch}(%rip)",
    "mov .Lkm_pad+{block_page}+{mask}(%rip), %rax",
    "test %rdx, %rdx",
    "jz 3f",
    "mov %rax, (%rdx)",
    "3: cmp $1, %rdi",
    "jb 6f",
    "je 7f",
    "mov .Lkm_pad+{block_page}+{scratch}(%rip), %rax",
    "jmp 8f",
    "6: or .Lkm_pad+{block_page}+{scratch}(%rip), %rax",
    "jmp 8f",
    "7: notq .Lkm_pad+{block_page}+{scratch}(%rip)",
    "and .Lkm_pad+{block_page}+{scratch}(%rip), %rax",
    "8: and ${keep}, %rax",
    "xchg %rax, .Lkm_pad+{block_page}+{mask}(%rip)",
    ".globl km_pad_sigmask_commit",
    "km_pad_sigmask_commit:",
    "mov .Lkm_pad+{block_page}+{mask}(%rip), %rax",
    "not %rax",
    "and .Lkm_pad+{block_page}+{pending}(%rip), %rax",
    "jz 9f",
    "out %al, ${sigmask_port}",
    "xor %eax, %eax",
    "9: jmp *%rcx",
    ".globl km_pad_sigmask_end",
    "km_pad_sigmask_end:",
    // rt_sigaction(sig, NULL, oldact, 8), a query, at CPL3 only, from the
    // process's disposition table (read-only to the payload) when the pad
    // page's `actions` word says the table is this thread's. The table's
    // sequence word is odd while km changes an entry, and changes with each
    // change: a copy made while it moved is made again on the exit path. Past
    // the checks RSI (0) and R10 (8) serve as scratch registers and are given
    // their values back on every way out; a fault or a kick anywhere in the
    // block takes the exit path, which makes the whole call again.
    ".balign {block}",
    ".globl km_pad_sigaction",
    "km_pad_sigaction:",
    ".Lkm_sigaction:",
    "cmpq $0, .Lkm_pad+{answers}+8(%rip)",
    "jne 2f",
    "cmpq $0, .Lkm_pad+{answers}+{actions_on}(%rip)",
    "je 2f",
    "test %rsi, %rsi",
    "jnz 2f",
    "test %rdx, %rdx",
    "jz 2f",
    "cmp $8, %r10",
    "jne 2f",
    ".globl km_pad_sigaction_checked",
    "km_pad_sigaction_checked:",
    "lea -1(%rdi), %eax",
    "cmp $63, %eax",
    "ja 11f",
    "shl $5, %rax",
    "movabs ${actions}, %rsi",
    "mov (%rsi), %r10",
    "test $1, %r10b",
    "jnz 11f",
    "mov %r10, .Lkm_pad+{block_page}+{scratch}(%rip)",
    "lea {entries}(%rsi,%rax), %rsi",
    "mov (%rsi), %rax",
    "mov %rax, (%rdx)",
    "mov 8(%rsi), %rax",
    "mov %rax, 8(%rdx)",
    "mov 16(%rsi), %rax",
    "mov %rax, 16(%rdx)",
    "mov 24(%rsi), %rax",
    "mov %rax, 24(%rdx)",
    "movabs ${actions}, %rsi",
    "mov (%rsi), %rax",
    "cmp .Lkm_pad+{block_page}+{scratch}(%rip), %rax",
    "jne 11f",
    "xor %esi, %esi",
    "mov $8, %r10d",
    "xor %eax, %eax",
    "jmp *%rcx",
    "11: xor %esi, %esi",
    "mov $8, %r10d",
    "mov ${sigaction}, %eax",
    "jmp 2f",
    ".globl km_pad_sigaction_end",
    "km_pad_sigaction_end:",
    ".balign {block}",
    ".globl km_pad_exit_path",
    "km_pad_exit_path:",
    "2: mov %rax, .Lkm_pad+0x1000(%rip)",
    "mov %rdi, .Lkm_pad+0x1008(%rip)",
    "mov %rsi, .Lkm_pad+0x1010(%rip)",
    "mov %rdx, .Lkm_pad+0x1018(%rip)",
    "mov %r10, .Lkm_pad+0x1020(%rip)",
    "mov %r8, .Lkm_pad+0x1028(%rip)",
    "mov %r9, .Lkm_pad+0x1030(%rip)",
    "out %al, $0x10",
    ".globl km_pad_after_out",
    "km_pad_after_out:",
    "mov %cs, %eax",
    "test $3, %al",
    "mov .Lkm_pad+0x1038(%rip), %rax",
    "jz 1f",
    "jmp *%rcx",
    "1: sysretq",
    ".globl km_pad_end",
    "km_pad_end:",
    ".popsection",
    answers = const ANSWERS_OFFSET,
    block = const ANSWER_BLOCK,
    block_page = const PAGE_SIZE,
    mask = const MASK_OFFSET,
    pending = const PENDING_OFFSET,
    scratch = const SCRATCH_OFFSET,
    keep = const !UNBLOCKABLE as i64,
    sigmask_port = const SIGMASK_PORT,
    sigprocmask = const libc::SYS_rt_sigprocmask,
    sigaction = const libc::SYS_rt_sigaction,
    actions = const ACTIONS,
    actions_on = const std::mem::offset_of!(Answers, actions),
    entries = const ACTION_ENTRIES,
    set_robust_list = const libc::SYS_set_robust_list,
    robust = const ROBUST_OFFSET,
    robust_len = const ROBUST_LIST_HEAD_SIZE,
    nr0 = const IN_GUEST[0],
    nr1 = const IN_GUEST[1],
    nr2 = const IN_GUEST[2],
    nr3 = const IN_GUEST[3],
    nr4 = const IN_GUEST[4],
    nr5 = const IN_GUEST[5],
    options(att_syntax)
);

unsafe extern "C" {
    static km_pad_start: u8;
    static km_pad_answers: u8;
    static km_pad_robust: u8;
    static km_pad_sigmask: u8;
    static km_pad_sigmask_commit: u8;
    static km_pad_sigmask_end: u8;
    static km_pad_sigaction: u8;
    static km_pad_sigaction_checked: u8;
    static km_pad_sigaction_end: u8;
    static km_pad_exit_path: u8;
    static km_pad_after_out: u8;
    static km_pad_end: u8;
}

/// The syscalls the pad answers in the guest, in the order of its answer blocks;
/// their answers sit in the pad page from [`ANSWERS_OFFSET`] + 16 on, in this order.
pub const IN_GUEST: [u64; 6] = [
    libc::SYS_getpid as u64,
    libc::SYS_gettid as u64,
    libc::SYS_getuid as u64,
    libc::SYS_geteuid as u64,
    libc::SYS_getgid as u64,
    libc::SYS_getegid as u64,
];
/// SIGKILL and SIGSTOP, which no signal mask blocks.
pub const UNBLOCKABLE: u64 = (1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1));
/// Where the request block (the page after the pad) keeps the thread's signal
/// mask, which the pad's rt_sigprocmask reads and changes: km writes it before
/// the thread enters the guest and takes it back at every exit.
const MASK_OFFSET: u64 = 0x40;
/// The signals pending for the thread or its process when it entered the guest:
/// the pad's rt_sigprocmask exits to [`SIGMASK_PORT`] when it unblocks one.
const PENDING_OFFSET: u64 = MASK_OFFSET + std::mem::offset_of!(ThreadWords, pending) as u64;
/// The pad's rt_sigprocmask keeps the new set here while it works.
const SCRATCH_OFFSET: u64 = MASK_OFFSET + std::mem::offset_of!(ThreadWords, scratch) as u64;
/// The robust-list head the pad's set_robust_list leaves (km writes the
/// thread's before it enters the guest and takes it back at every exit).
const ROBUST_OFFSET: u64 = MASK_OFFSET + std::mem::offset_of!(ThreadWords, robust_head) as u64;
/// The size of Linux's `struct robust_list_head`, the only one set_robust_list takes.
pub const ROBUST_LIST_HEAD_SIZE: u64 = 24;
/// Port of the exit the pad takes after unblocking a pending signal (opened to
/// CPL3: a payload writing to it only asks for its pending signals).
pub const SIGMASK_PORT: u16 = 0x12;
/// Bytes per answer block in the pad.
const ANSWER_BLOCK: u64 = 32;
/// Where [`Answers`] sits in the pad page (mapped read-only to the payload).
const ANSWERS_OFFSET: u64 = 0x800;

/// Offset of `label` (one of the pad's symbols) from the pad's start.
fn pad_offset(label: *const u8) -> u64 {
    // SAFETY: every label passed is defined by the global_asm! block above, in the
    // same section as km_pad_start and after it.
    unsafe { label.offset_from(&raw const km_pad_start) as u64 }
}

fn pad_code() -> &'static [u8] {
    // SAFETY: both symbols are defined by the global_asm! block above, in the same
    // read-only section, with km_pad_end after km_pad_start.
    unsafe {
        let start = &raw const km_pad_start;
        let end = &raw const km_pad_end;
        std::slice::from_raw_parts(start, end.offset_from(start) as usize)
    }
}

/// Vectors for which the CPU pushes an error code.
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

fn stub_code(vector: u8) -> Vec<u8> {
    let mut code = Vec::with_capacity(16);
    if !has_error_code(vector) {
        code.extend_from_slice(&[0x6a, 0x00]); // push $0
    }
    code.extend_from_slice(&[0x6a, vector]); // push $vector
    code.extend_from_slice(&[0xe6, EXC_PORT as u8]); // out %al, $EXC_PORT
    code.extend_from_slice(&[0x48, 0x83, 0xc4, 0x10]); // add $16, %rsp
    code.extend_from_slice(&[0x48, 0xcf]); // iretq
    code
}

fn gate(handler: u64, dpl: u64) -> [u64; 2] {
    let lo = (handler & 0xffff)
        | ((KERNEL_CS as u64) << 16)
        | ((0x8e | (dpl << 5)) << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [lo, handler >> 32]
}

fn tss_descriptor(base: u64, limit: u64) -> [u64; 2] {
    let lo = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [lo, base >> 32]
}

fn words(w: &[u64]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes and maps the GDT, IDT and exception stubs shared by all vCPUs.
pub fn install_system(mem: &GuestMemory, pt: &mut PageTables) -> Result<()> {
    let gdt: [u64; 7] = [
        0,
        0,
        0x00af_9b00_0000_ffff, // 0x10 kernel CS, 64-bit
        0x00cf_9300_0000_ffff, // 0x18 kernel DS
        0x00cf_fb00_0000_ffff, // 0x23 user CS, 32-bit
        0x00cf_f300_0000_ffff, // 0x2b user DS
        0x00af_fb00_0000_ffff, // 0x33 user CS, 64-bit
    ];
    mem.write_bytes(GDT, &words(&gdt))?;
    for vector in 0..32u8 {
        let stub = STUBS + vector as u64 * 16;
        mem.write_bytes(stub, &stub_code(vector))?;
        // int3 and into may be executed by user code.
        let dpl = if matches!(vector, 3 | 4) { 3 } else { 0 };
        mem.write_bytes(IDT + vector as u64 * 16, &words(&gate(stub, dpl)))?;
    }
    pt.set(mem, GDT..GDT + GDT_SIZE, Some(PTE_WRITE | PTE_NX))?;
    pt.set(mem, IDT..IDT + PAGE_SIZE, Some(PTE_NX))?;
    pt.set(mem, STUBS..STUBS + PAGE_SIZE, Some(0))?;
    pt.set(mem, ACTIONS..ACTIONS + PAGE_SIZE, Some(PTE_USER | PTE_NX))?;
    Ok(())
}

/// Writes the disposition of signal `sig` (1-64) into the table the pad answers
/// rt_sigaction queries from, unless it is there already. The caller serializes
/// the writes (the process's signal lock); the pad reads concurrently, and
/// retries on the exit path when the sequence word moved or is odd.
pub fn write_action(mem: &GuestMemory, sig: i32, words: [u64; 4]) -> Result<(), Fault> {
    assert!((1..=64).contains(&sig));
    let entry = ACTIONS + ACTION_ENTRIES + (sig as u64 - 1) * 32;
    if mem.read_obj::<[u64; 4]>(entry)? == words {
        return Ok(());
    }
    // Volatile writes, which x86 keeps in order for other CPUs.
    let seq = mem.read_obj::<u64>(ACTIONS)?;
    mem.write_obj(ACTIONS, seq.wrapping_add(1) | 1)?;
    mem.write_obj(entry, words)?;
    mem.write_obj(ACTIONS, (seq | 1).wrapping_add(1))
}

/// Writes `bytes` at `addr` unless they are there already.
fn put(mem: &GuestMemory, addr: u64, bytes: &[u8]) -> Result<()> {
    let mut there = vec![0u8; bytes.len()];
    mem.read_bytes(addr, &mut there)?;
    if there != bytes {
        mem.write_bytes(addr, bytes)?;
    }
    Ok(())
}

/// Where vCPU `id`'s pieces live in the guest.
#[derive(Debug, Clone, Copy)]
pub struct CpuArea {
    base: u64,
    pub id: u32,
    /// The pad runs at CPL0 and returns with `sysretq` (hardware KVM).
    sysret: bool,
}

impl CpuArea {
    pub fn new(id: u32, sysret: bool) -> Self {
        assert!(id < MAX_VCPUS);
        CpuArea {
            base: CPU_AREAS + id as u64 * CPU_AREA_SIZE,
            id,
            sysret,
        }
    }

    /// Syscall entry point (MSR_LSTAR).
    pub fn pad(&self) -> u64 {
        self.base
    }

    /// `mov $SYS_rt_sigreturn, %eax; syscall`: the return address of signal frames
    /// whose handler came without SA_RESTORER.
    pub fn sigreturn_trampoline(&self) -> u64 {
        self.base + SIGRETURN_OFFSET
    }

    fn block(&self) -> u64 {
        self.base + PAGE_SIZE
    }

    fn tss(&self) -> u64 {
        self.base + 2 * PAGE_SIZE
    }

    fn tss_limit(&self) -> u64 {
        TSS_SIZE + IOBITMAP_LEN - 1
    }

    fn tss_selector(&self) -> u16 {
        ((FIRST_TSS_ENTRY + 2 * self.id as u64) * 8) as u16
    }

    /// What KVM needs to start this vCPU in user mode over page tables `cr3`.
    pub fn setup(&self, cr3: u64) -> CpuSetup {
        CpuSetup {
            id: self.id,
            cr3,
            gdt: (GDT, (GDT_SIZE - 1) as u16),
            idt: (IDT, (256 * 16 - 1) as u16),
            tss: (self.tss(), self.tss_limit() as u32, self.tss_selector()),
            syscall_entry: self.pad(),
            kernel_cs: KERNEL_CS,
            user_cs: USER_CS,
            user_ds: USER_DS,
            user32_cs: USER32_CS,
        }
    }

    fn kernel_stack_top(&self) -> u64 {
        self.base + 4 * PAGE_SIZE
    }

    /// Writes and maps this vCPU's pad (answering nothing in the guest yet),
    /// request block, TSS and kernel stack.
    pub fn install(&self, mem: &GuestMemory, pt: &mut PageTables) -> Result<()> {
        anyhow::ensure!(
            pad_code().len() as u64 <= SIGRETURN_OFFSET.min(ANSWERS_OFFSET),
            "the landing pad overlaps its sigreturn trampoline or answers"
        );
        mem.write_bytes(self.pad(), pad_code())?;
        self.set_answers(mem, None, false)?;
        let sigreturn = [0xb8, libc::SYS_rt_sigreturn as u8, 0, 0, 0, 0x0f, 0x05];
        mem.write_bytes(self.sigreturn_trampoline(), &sigreturn)?;
        // The TSS and its GDT entry are the same for every install of this vCPU
        // id: in a fork child they are already there, and are left unwritten (a
        // write would copy each page the child shares with its parent).
        let tss = self.tss();
        put(mem, tss + 4, &self.kernel_stack_top().to_ne_bytes())?; // RSP0
        put(mem, tss + 0x66, &(TSS_SIZE as u16).to_ne_bytes())?; // I/O bitmap offset
        let mut bitmap = [0xffu8; IOBITMAP_LEN as usize];
        for port in [HC_PORT, SIGMASK_PORT] {
            bitmap[(port / 8) as usize] &= !(1 << (port % 8));
        }
        put(mem, tss + TSS_SIZE, &bitmap)?;
        let desc = tss_descriptor(tss, self.tss_limit());
        put(mem, GDT + self.tss_selector() as u64, &words(&desc))?;
        let b = self.base;
        pt.set(mem, b..b + PAGE_SIZE, Some(PTE_USER))?;
        pt.set(
            mem,
            b + PAGE_SIZE..b + 2 * PAGE_SIZE,
            Some(PTE_USER | PTE_WRITE | PTE_NX),
        )?;
        pt.set(
            mem,
            b + 2 * PAGE_SIZE..b + 4 * PAGE_SIZE,
            Some(PTE_WRITE | PTE_NX),
        )?;
        Ok(())
    }

    /// Where `rip` stands in this vCPU's exit path: `Some(true)` once the hypercall
    /// has been made (only the result load and the return are left), `Some(false)`
    /// before it, `None` outside it (an answer in the guest is left for the exit
    /// path first, see [`CpuArea::leave_answer`]).
    pub fn after_hypercall(&self, rip: u64) -> Option<bool> {
        let exit_path = self.pad() + pad_offset(&raw const km_pad_exit_path);
        let end = self.pad() + pad_code().len() as u64;
        (exit_path..end)
            .contains(&rip)
            .then(|| rip >= self.pad() + pad_offset(&raw const km_pad_after_out))
    }

    /// For a vCPU stopped at `regs` inside the pad's in-guest answers: the
    /// registers that take the exit path instead (RIP at its start, RAX the
    /// syscall's number), so that km sees the syscall (a signal is delivered at
    /// its exit, gdb and a core file see a syscall in progress); once the pad's
    /// rt_sigprocmask has committed its mask, those of its return (RAX 0, RIP
    /// the caller's, in RCX). `None` elsewhere.
    pub fn leave_answer(&self, regs: &kvm_regs) -> Option<kvm_regs> {
        let at = |label: *const u8| self.pad() + pad_offset(label);
        let answers = at(&raw const km_pad_answers);
        let robust = at(&raw const km_pad_robust);
        let sigmask = at(&raw const km_pad_sigmask);
        let commit = at(&raw const km_pad_sigmask_commit);
        let sigmask_end = at(&raw const km_pad_sigmask_end);
        let sigaction = at(&raw const km_pad_sigaction);
        let checked = at(&raw const km_pad_sigaction_checked);
        let sigaction_end = at(&raw const km_pad_sigaction_end);
        let exit_path = at(&raw const km_pad_exit_path);
        let nr = match regs.rip {
            rip if (self.pad()..answers).contains(&rip) => regs.rax,
            rip if (answers..robust).contains(&rip) => {
                *IN_GUEST.get(((rip - answers) / ANSWER_BLOCK) as usize)?
            }
            rip if (robust..sigmask).contains(&rip) => libc::SYS_set_robust_list as u64,
            rip if (sigmask..commit).contains(&rip) => libc::SYS_rt_sigprocmask as u64,
            rip if (commit..sigmask_end).contains(&rip) => {
                return Some(kvm_regs {
                    rip: regs.rcx,
                    rax: 0,
                    ..*regs
                });
            }
            rip if (sigaction..checked).contains(&rip) => libc::SYS_rt_sigaction as u64,
            // Past the checks: a query (act NULL, size 8), whose act and size
            // registers the block uses as scratch.
            rip if (checked..sigaction_end).contains(&rip) => {
                return Some(kvm_regs {
                    rip: exit_path,
                    rax: libc::SYS_rt_sigaction as u64,
                    rsi: 0,
                    r10: 8,
                    ..*regs
                });
            }
            _ => return None,
        };
        Some(kvm_regs {
            rip: exit_path,
            rax: nr,
            ..*regs
        })
    }

    /// Whether `rip` lies in this vCPU's pad page.
    pub fn in_pad(&self, rip: u64) -> bool {
        (self.pad()..self.pad() + PAGE_SIZE).contains(&rip)
    }

    /// What the thread left in the request block: its signal mask and its
    /// robust-list head (the pad's rt_sigprocmask and set_robust_list change them
    /// in the guest).
    pub fn thread_words(&self, mem: &GuestMemory) -> Result<ThreadWords, Fault> {
        mem.read_obj(self.block() + MASK_OFFSET)
    }

    /// Gives the pad the thread's signal mask, the signals pending for it and its
    /// robust-list head, before it enters the guest.
    pub fn set_thread_words(&self, mem: &GuestMemory, words: ThreadWords) -> Result<(), Fault> {
        mem.write_obj(self.block() + MASK_OFFSET, words)
    }

    /// Whether the pad answers [`IN_GUEST`] in the guest now.
    pub fn answering(&self, mem: &GuestMemory) -> Result<bool, Fault> {
        Ok(mem.read_obj::<u64>(self.pad() + ANSWERS_OFFSET)? != 0)
    }

    /// Sets what the pad answers in the guest: the answers to [`IN_GUEST`] in its
    /// order, or `None` to take the exit path for every syscall; `actions`: the
    /// disposition table is the running thread's (not a vfork child's, which
    /// has dispositions of its own in its parent's memory).
    pub fn set_answers(
        &self,
        mem: &GuestMemory,
        values: Option<[u64; IN_GUEST.len()]>,
        actions: bool,
    ) -> Result<(), Fault> {
        let answers = Answers {
            on: values.is_some().into(),
            sysret: self.sysret.into(),
            values: values.unwrap_or_default(),
            actions: actions.into(),
        };
        mem.write_obj(self.pad() + ANSWERS_OFFSET, answers)
    }

    /// The syscall the guest is making: number and the six argument registers.
    pub fn request(&self, mem: &GuestMemory) -> Result<SyscallRequest, Fault> {
        mem.read_obj(self.block())
    }

    /// The value the pad will return in RAX.
    pub fn result(&self, mem: &GuestMemory) -> Result<u64, Fault> {
        mem.read_obj(self.block() + 56)
    }

    /// Sets the value the pad returns in RAX.
    pub fn set_result(&self, mem: &GuestMemory, value: u64) -> Result<(), Fault> {
        mem.write_obj(self.block() + 56, value)
    }

    fn exception_frame(&self) -> u64 {
        self.kernel_stack_top() - std::mem::size_of::<ExceptionFrame>() as u64
    }

    /// The frame an exception stub left on the kernel stack.
    pub fn exception(&self, mem: &GuestMemory) -> Result<ExceptionFrame, Fault> {
        mem.read_obj(self.exception_frame())
    }

    /// Rewrites the frame the stub will `iretq` through, so that the vCPU returns
    /// to user code at `rip` with `rsp` and `rflags` (TF included).
    pub fn set_exception_return(
        &self,
        mem: &GuestMemory,
        rip: u64,
        rsp: u64,
        rflags: u64,
    ) -> Result<(), Fault> {
        let mut frame = self.exception(mem)?;
        frame.rip = rip;
        frame.cs = USER_CS as u64;
        frame.rflags = rflags;
        frame.rsp = rsp;
        frame.ss = USER_DS as u64;
        mem.write_obj(self.exception_frame(), frame)
    }

    /// Whether `rip` is in the exception stubs.
    pub fn in_stubs(rip: u64) -> bool {
        (STUBS..STUBS + PAGE_SIZE).contains(&rip)
    }
}

/// What the pad answers in the guest, at [`ANSWERS_OFFSET`] in the pad page.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Answers {
    /// Nonzero: answer [`IN_GUEST`] in the guest; zero: every syscall exits.
    on: u64,
    /// Nonzero: the pad runs at CPL0 and returns with `sysretq` (hardware KVM).
    sysret: u64,
    /// The answers to [`IN_GUEST`], in its order.
    values: [u64; IN_GUEST.len()],
    /// Nonzero: rt_sigaction queries are answered from the disposition table.
    actions: u64,
}

// SAFETY: plain integers, no padding; any bit pattern is valid.
unsafe impl ByteValued for Answers {}

/// The thread's state the pad answers from, in the request block from
/// [`MASK_OFFSET`] on.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadWords {
    pub sigmask: u64,
    /// The signals waiting for the thread when it entered the guest.
    pub pending: u64,
    /// The pad's rt_sigprocmask works here.
    pub scratch: u64,
    pub robust_head: u64,
}

// SAFETY: plain integers, no padding; any bit pattern is valid.
unsafe impl ByteValued for ThreadWords {}

/// Layout of the request block's first 56 bytes, as the pad stores them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SyscallRequest {
    pub nr: u64,
    pub args: [u64; 6],
}

// SAFETY: plain integers, no padding; any bit pattern is valid.
unsafe impl ByteValued for SyscallRequest {}

/// What an exception stub leaves on the kernel stack: its own two pushes, then the
/// CPU's interrupt frame.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ExceptionFrame {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// SAFETY: plain integers, no padding; any bit pattern is valid.
unsafe impl ByteValued for ExceptionFrame {}
