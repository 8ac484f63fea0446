//! km's allow-list compiled as a BPF search tree on the syscall number.
//!
//! `seccompiler` lays a filter out as one chain, five instructions per syscall:
//! 1436 instructions for km's list. The kernel pays for every instruction when
//! the filter is installed (its checks, the conversion to eBPF, the JIT, and the
//! action cache, which runs the filter once per syscall number of both x86
//! ABIs), about 0.9 ms of km's start-up on a nested host, and a call deep in the
//! chain pays again when the cache cannot answer it (ioctl, prctl, clone). Here
//! runs of allowed numbers become ranges, the ranges leaves of a binary tree:
//! 164 instructions, of which a call runs about a dozen.

use seccompiler::sock_filter;

/// Classic BPF opcodes (linux/bpf_common.h): BPF_LD | BPF_W | BPF_ABS, and so on.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
const BPF_JMP_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`: the number, the ABI, the arguments.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

/// `AUDIT_ARCH_X86_64`: x86-64's ABI; i386's and x32's numbers are not km's.
pub(super) const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// What a filter answers: a call from another ABI kills km, an allowed call runs,
/// anything else raises SIGSYS.
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const TRAP: u32 = libc::SECCOMP_RET_TRAP;

/// A leaf tests at most this many ranges one after another.
const LEAF: usize = 4;

/// What an allowed syscall's arguments must be: any of these conditions on
/// the low 32 bits of argument `arg` (the kernel reads ints and flags there),
/// each `(value & mask) == expected`.
#[derive(Clone, Debug)]
pub struct ArgRule {
    pub arg: u8,
    pub any_of: Vec<(u32, u32)>,
}

/// Allowed syscalls: a range of numbers with any arguments, or one number whose
/// arguments are checked.
#[derive(Clone, Debug)]
enum Entry {
    Range(u32, u32),
    Checked(u32, ArgRule),
}

impl Entry {
    fn first(&self) -> u32 {
        match self {
            Entry::Range(lo, _) | Entry::Checked(lo, _) => *lo,
        }
    }
}

/// The program for `allowed` (syscall number, and the rule its arguments must
/// meet if any): x86-64 calls it names run, others raise SIGSYS, calls of
/// another ABI kill km. Fails if a jump would not fit in the program (a rule
/// with more than about 120 conditions).
pub fn compile(allowed: &[(u32, Option<ArgRule>)]) -> Result<Vec<sock_filter>, String> {
    let mut sorted = allowed.to_vec();
    sorted.sort_by_key(|(nr, _)| *nr);
    let mut entries: Vec<Entry> = Vec::new();
    for (nr, rule) in sorted {
        match (rule, entries.last_mut()) {
            (Some(rule), _) => entries.push(Entry::Checked(nr, rule)),
            (None, Some(Entry::Range(_, hi))) if *hi + 1 == nr => *hi = nr,
            (None, _) => entries.push(Entry::Range(nr, nr)),
        }
    }
    let mut program = vec![
        stmt(BPF_LD_W_ABS, ARCH_OFFSET),
        jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, KILL),
        stmt(BPF_LD_W_ABS, NR_OFFSET),
    ];
    program.extend(node(&entries)?);
    Ok(program)
}

/// The subtree for `entries` (sorted, the syscall number in A): a split on the
/// middle entry's first number, the lower half first.
fn node(entries: &[Entry]) -> Result<Vec<sock_filter>, String> {
    if entries.len() <= LEAF {
        return leaf(entries);
    }
    let mid = entries.len() / 2;
    let lower = node(&entries[..mid])?;
    let upper = node(&entries[mid..])?;
    // nr >= split: on to the JA that skips the lower half; else past it.
    let mut code = vec![
        jump(BPF_JMP_JGE_K, entries[mid].first(), 0, 1),
        stmt(BPF_JMP_JA, lower.len() as u32),
    ];
    code.extend(lower);
    code.extend(upper);
    Ok(code)
}

/// Tests each entry in turn; a match goes to its block (an argument check, or
/// the ALLOW shared by ranges), no match to TRAP. Laid out: the tests, TRAP,
/// ALLOW, then each checked entry's block.
fn leaf(entries: &[Entry]) -> Result<Vec<sock_filter>, String> {
    let test_len = |e: &Entry| match e {
        Entry::Range(lo, hi) if lo != hi => 2,
        _ => 1,
    };
    let tests: usize = entries.iter().map(test_len).sum();
    let allow_at = tests + 1;
    let mut code = Vec::with_capacity(tests);
    let mut tail = vec![stmt(BPF_RET_K, TRAP), stmt(BPF_RET_K, ALLOW)];
    for entry in entries {
        match entry {
            Entry::Range(lo, hi) if lo == hi => {
                let to = offset(allow_at, code.len())?;
                code.push(jump(BPF_JMP_JEQ_K, *lo, to, 0));
            }
            Entry::Range(lo, hi) => {
                code.push(jump(BPF_JMP_JGT_K, *hi, 1, 0));
                let to = offset(allow_at, code.len())?;
                code.push(jump(BPF_JMP_JGE_K, *lo, to, 0));
            }
            Entry::Checked(nr, rule) => {
                let to = offset(tests + tail.len(), code.len())?;
                code.push(jump(BPF_JMP_JEQ_K, *nr, to, 0));
                tail.extend(arg_check(rule)?);
            }
        }
    }
    code.extend(tail);
    Ok(code)
}

/// A jump's offset from instruction `from` (counted from the next one) to `to`.
fn offset(to: usize, from: usize) -> Result<u8, String> {
    u8::try_from(to - from - 1).map_err(|_| format!("a jump of {} instructions", to - from - 1))
}

/// Loads the argument and allows the call if one condition holds, else TRAP.
fn arg_check(rule: &ArgRule) -> Result<Vec<sock_filter>, String> {
    let load = || stmt(BPF_LD_W_ABS, ARGS_OFFSET + 8 * u32::from(rule.arg));
    // Unmasked comparisons share one load, so they come last.
    let mut conds = rule.any_of.clone();
    conds.sort_by_key(|(mask, _)| *mask == u32::MAX);
    let mut code = Vec::new();
    let mut loaded_whole = false;
    let mut jumps = Vec::new();
    for (mask, expected) in conds {
        if mask != u32::MAX {
            code.push(load());
            code.push(stmt(BPF_ALU_AND_K, mask));
            loaded_whole = false;
        } else if !loaded_whole {
            code.push(load());
            loaded_whole = true;
        }
        jumps.push(code.len());
        code.push(jump(BPF_JMP_JEQ_K, expected, 0, 0));
    }
    code.push(stmt(BPF_RET_K, TRAP));
    let allow_at = code.len();
    code.push(stmt(BPF_RET_K, ALLOW));
    for at in jumps {
        code[at].jt = offset(allow_at, at)?;
    }
    Ok(code)
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// A classic BPF interpreter for the instructions above, to run programs in tests.
#[cfg(test)]
pub mod interpret {
    use super::*;

    /// What `program` answers for a call `nr` of ABI `arch` with `args`.
    pub fn run(program: &[sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let word = |offset: u32| match offset {
            NR_OFFSET => nr,
            ARCH_OFFSET => arch,
            o if o >= ARGS_OFFSET && (o - ARGS_OFFSET).is_multiple_of(4) => {
                let arg = args[((o - ARGS_OFFSET) / 8) as usize];
                if (o - ARGS_OFFSET).is_multiple_of(8) {
                    arg as u32
                } else {
                    (arg >> 32) as u32
                }
            }
            o => panic!("load at offset {o}"),
        };
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let insn = &program[pc];
            pc += 1;
            let taken = |cond: bool| if cond { insn.jt } else { insn.jf } as usize;
            match insn.code {
                BPF_LD_W_ABS => a = word(insn.k),
                BPF_ALU_AND_K => a &= insn.k,
                BPF_JMP_JA => pc += insn.k as usize,
                BPF_JMP_JEQ_K => pc += taken(a == insn.k),
                BPF_JMP_JGT_K => pc += taken(a > insn.k),
                BPF_JMP_JGE_K => pc += taken(a >= insn.k),
                BPF_RET_K => return insn.k,
                code => panic!("opcode {code:#x}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::interpret::run;
    use super::*;

    fn answer(program: &[sock_filter], nr: u32, arg: u64) -> u32 {
        run(program, nr, AUDIT_ARCH_X86_64, [arg; 6])
    }

    /// Every number from 0 to 1023 gets what the list says, whatever the list's
    /// shape: runs, gaps, single numbers, checked calls at either end.
    #[test]
    fn each_number_gets_its_answer() {
        let checked = ArgRule {
            arg: 2,
            any_of: vec![(0xff00, 0xae00), (u32::MAX, 7), (u32::MAX, 9)],
        };
        let lists: Vec<Vec<(u32, Option<ArgRule>)>> = vec![
            vec![(5, None)],
            vec![(0, Some(checked.clone()))],
            (0..300).map(|n| (n, None)).collect(),
            (0..500)
                .filter(|n| n % 3 != 0 || n % 7 == 0)
                .map(|n| (n, (n % 50 == 1).then(|| checked.clone())))
                .collect(),
            (0..1024).rev().step_by(2).map(|n| (n, None)).collect(),
        ];
        for list in lists {
            let program = compile(&list).unwrap();
            for nr in 0..1024 {
                let expected = match list.iter().find(|(n, _)| *n == nr) {
                    None => [TRAP; 4],
                    Some((_, None)) => [ALLOW; 4],
                    Some((_, Some(_))) => [ALLOW, ALLOW, ALLOW, TRAP],
                };
                for (arg, want) in [0xae42u64, 7, 0x1_0000_0009, 8].iter().zip(expected) {
                    assert_eq!(answer(&program, nr, *arg), want, "nr {nr} arg {arg:#x}");
                }
                assert_eq!(answer(&program, nr | 0x4000_0000, 0), TRAP, "x32 {nr}");
                assert_eq!(run(&program, nr, 0x4000_0003, [0; 6]), KILL, "i386 {nr}");
            }
        }
    }

    /// A split's JA carries long distances; a leaf's 8-bit jumps reach its blocks.
    #[test]
    fn long_rules_fit_or_are_refused() {
        let rule = |n: u32| ArgRule {
            arg: 0,
            any_of: (0..n).map(|v| (u32::MAX, v)).collect(),
        };
        let list: Vec<_> = (0..40).map(|nr| (nr * 2, Some(rule(60)))).collect();
        let program = compile(&list).unwrap();
        assert!(program.len() > 2000);
        assert_eq!(answer(&program, 78, 59), ALLOW);
        assert_eq!(answer(&program, 78, 60), TRAP);
        assert!(compile(&[(1, Some(rule(300)))]).is_err());
    }
}
