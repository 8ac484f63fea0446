//! Layer 6, crash: what happens when a signal kills the payload. Uses `memory`,
//! `kvm`, `guest` and `kernel` (threads as data); the kmcore format is the
//! `km-coredump` crate.
//!
//! Every thread is stopped, the kmcore is written (when RLIMIT_CORE allows or one
//! was named), a short crash report goes where `--crash-report` chose (by default
//! stderr when it is a terminal), and km dies by the same signal.

use std::fs::File;
use std::io::BufWriter;
use std::time::Duration;

use anyhow::{Context, Result};

pub mod backtrace;
pub mod dump;

use crate::guest::landing_pad::{USER_CS, USER_DS};
use crate::kernel::lock;
use crate::kernel::process::{Guest, StoppedThread, Thread};
use crate::kernel::signals::{self, DefaultAction, Point, SigInfo};
use crate::kvm::kick;
use crate::trace::{self, Sink};

/// How long the dying thread waits for the others to report.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of `thread`, stopped at `point`, as a core file records it.
pub fn thread_state(thread: &Thread, point: Point) -> km_coredump::Thread {
    let r = signals::user_context(thread, point).unwrap_or_default();
    let (fs_base, gs_base) = thread.vcpu.segment_bases().unwrap_or((0, 0));
    let orig_rax = match point {
        Point::Syscall { nr, .. } => nr,
        _ => u64::MAX,
    };
    km_coredump::Thread {
        tid: thread.tid,
        regs: km_coredump::Regs {
            r15: r.r15,
            r14: r.r14,
            r13: r.r13,
            r12: r.r12,
            rbp: r.rbp,
            rbx: r.rbx,
            r11: r.r11,
            r10: r.r10,
            r9: r.r9,
            r8: r.r8,
            rax: r.rax,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            orig_rax,
            rip: r.rip,
            cs: USER_CS as u64,
            rflags: r.rflags,
            rsp: r.rsp,
            ss: USER_DS as u64,
            fs_base,
            gs_base,
            ..Default::default()
        },
        xsave: thread.vcpu.xsave().map(xstate_note).unwrap_or_default(),
        sigpend: thread.handle.pending.bits(),
        sighold: thread.sigmask,
    }
}

/// What `thread`, stopped at `point` for another thread's core dump or snapshot,
/// reports.
pub fn stopped_thread(thread: &Thread, point: Point) -> StoppedThread {
    StoppedThread {
        core: thread_state(thread, point),
        restart: matches!(point, Point::Syscall { restart: true, .. }),
        altstack: thread.altstack,
        clear_child_tid: thread.clear_child_tid,
        robust_list: thread.robust_list,
    }
}

/// Offset of the software-reserved XCR0 copy in the FXSAVE area, where Linux core
/// files (and gdb) keep the feature mask that sizes the XSAVE note.
const XSTATE_XCR0_OFFSET: usize = 464;
/// Offset of XSTATE_BV, the XSAVE header's mask of components present.
const XSTATE_BV_OFFSET: usize = 512;
/// x87, SSE and AVX: the components whose XSAVE offsets every x86 CPU shares.
const PORTABLE_XCR0: u64 = 0x7;
const XSAVE_LEGACY_AND_HEADER: usize = 576;
const XSAVE_WITH_AVX: usize = 832;

/// The XSAVE image as NT_X86_XSTATE: the x87, SSE and AVX state with XCR0 in the
/// FXSAVE area's software-reserved bytes. Later components (AVX-512 and up) sit at
/// vendor-specific offsets that gdb 13 cannot tell apart, so they are left out.
fn xstate_note(mut xsave: Vec<u8>) -> Vec<u8> {
    let xcr0 = crate::kvm::host_xcr0() & PORTABLE_XCR0;
    let size = if xcr0 & 4 != 0 {
        XSAVE_WITH_AVX
    } else {
        XSAVE_LEGACY_AND_HEADER
    };
    xsave.resize(size, 0);
    xsave[XSTATE_XCR0_OFFSET..XSTATE_XCR0_OFFSET + 8].copy_from_slice(&xcr0.to_le_bytes());
    let bv = u64::from_le_bytes(
        xsave[XSTATE_BV_OFFSET..XSTATE_BV_OFFSET + 8]
            .try_into()
            .expect("8 bytes"),
    );
    xsave[XSTATE_BV_OFFSET..XSTATE_BV_OFFSET + 8].copy_from_slice(&(bv & xcr0).to_le_bytes());
    xsave
}

pub fn process_info(guest: &Guest) -> km_coredump::Process {
    let pid = |p: Option<rustix::process::Pid>| p.map_or(0, |p| p.as_raw_nonzero().get());
    let fname = std::path::Path::new(&guest.config.name)
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    km_coredump::Process {
        pid: rustix::process::getpid().as_raw_nonzero().get(),
        ppid: pid(rustix::process::getppid()),
        pgrp: rustix::process::getpgrp().as_raw_nonzero().get(),
        sid: rustix::process::getsid(None).map_or(0, |p| p.as_raw_nonzero().get()),
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        fname,
        psargs: guest.config.argv.join(" "),
    }
}

/// Writes the kmcore for a payload killed by `info` in `thread` at `point`.
fn write_core(
    guest: &Guest,
    thread: &Thread,
    point: Point,
    info: &SigInfo,
    path: &std::path::Path,
) -> Result<()> {
    let mut threads = vec![thread_state(thread, point)];
    threads.extend(guest.stop_others(STOP_TIMEOUT).into_iter().map(|s| s.core));
    let core = km_coredump::Core {
        signal: signals::signo(info),
        siginfo: *info,
        process: process_info(guest),
        threads,
        auxv: guest.config.auxv.clone(),
        mappings: dump::mappings(guest, dump::Keep::AsLinux),
        extra_notes: Vec::new(),
    };
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut read = |addr: u64, buf: &mut [u8]| guest.vm.mem.read_bytes(addr, buf).is_ok();
    km_coredump::write(&core, &mut read, BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))
}

fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSYS => "SIGSYS",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    format!("{name} (signal {sig})")
}

/// The name of a memory fault's si_code, as in `<signal.h>`.
fn fault_code_name(sig: i32, code: i32) -> Option<&'static str> {
    Some(match (sig, code) {
        (libc::SIGSEGV, signals::SEGV_MAPERR) => "SEGV_MAPERR",
        (libc::SIGSEGV, signals::SEGV_ACCERR) => "SEGV_ACCERR",
        (libc::SIGBUS, libc::BUS_ADRALN) => "BUS_ADRALN",
        (libc::SIGBUS, libc::BUS_ADRERR) => "BUS_ADRERR",
        (libc::SIGBUS, libc::BUS_OBJERR) => "BUS_OBJERR",
        _ => return None,
    })
}

/// The crash report: signal, fault address, and the symbolized backtrace of the
/// thread that took the signal.
fn report(guest: &Guest, thread: &Thread, point: Point, info: &SigInfo) -> String {
    let sig = signals::signo(info);
    let mut out = format!(
        "km: {}: killed by {} in thread {}",
        guest.config.name,
        signal_name(sig),
        thread.tid
    );
    if matches!(
        sig,
        libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    ) {
        let addr = u64::from_ne_bytes(info[16..24].try_into().expect("8 bytes"));
        out.push_str(&format!(", fault address {addr:#x}"));
        let code = i32::from_ne_bytes(info[8..12].try_into().expect("4 bytes"));
        if let Some(name) = fault_code_name(sig, code) {
            out.push_str(&format!(" ({name})"));
        }
    }
    out.push('\n');
    if let Ok(regs) = signals::user_context(thread, point) {
        let modules = {
            let mm = lock(&guest.mm);
            let files: Vec<(std::ops::Range<u64>, std::sync::Arc<str>, u64)> = mm
                .vmas()
                .filter_map(|(start, v)| {
                    v.file
                        .as_ref()
                        .map(|(p, off)| (start..v.end, p.clone(), *off))
                })
                .collect();
            drop(mm);
            backtrace::Modules::from_mappings(files.iter().map(|(r, p, o)| (r.clone(), &**p, *o)))
        };
        let read = |addr: u64| guest.vm.mem.read_obj::<u64>(addr).ok();
        let start = backtrace::Start {
            rip: regs.rip,
            rsp: regs.rsp,
            rbp: regs.rbp,
        };
        let pcs = backtrace::unwind(&modules, start, &read);
        for line in backtrace::symbolize(&modules, &guest.config.name, &pcs) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Where the kmcore goes: nowhere when RLIMIT_CORE is 0, as Linux writes no core
/// then, unless a core file was asked for by name.
fn core_path(guest: &Guest) -> Option<&std::path::Path> {
    let path = guest.config.core_path.as_deref()?;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
    (guest.config.core_despite_rlimit || limit.current != Some(0)).then_some(path)
}

/// Ends the process because `info`'s signal killed it in `thread` at `point`.
pub fn die(guest: &Guest, thread: &Thread, point: Point, info: &SigInfo) -> ! {
    let sig = signals::signo(info);
    // A vfork child dies alone, with neither report nor core: its memory and its
    // debugger are its parent's.
    if thread.vfork_child.is_some() {
        kick::die_by(sig)
    }
    if signals::default_action(sig) == DefaultAction::Core {
        let sink = &guest.config.crash_report;
        let mut text = if *sink == Sink::Null {
            String::new()
        } else {
            report(guest, thread, point, info)
        };
        if let Some(path) = core_path(guest) {
            match write_core(guest, thread, point, info, path) {
                Ok(()) => text.push_str(&format!("  core dumped to {}\n", path.display())),
                Err(e) => {
                    text.push_str(&format!("km: {}: no core file: {e:#}\n", guest.config.name))
                }
            }
        }
        if let Err(e) = trace::write_to(sink, &text) {
            crate::eprintln_whole!("km: {}: crash report: {e:#}", guest.config.name);
        }
    }
    if let Some(d) = &guest.debugger {
        d.report_end(crate::kernel::ptrace::Event::Killed(sig), STOP_TIMEOUT);
    }
    crate::stats::report(&guest.config.name, &format!("killed by signal {sig}"));
    kick::die_by(sig)
}
