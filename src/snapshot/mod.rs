//! Layer 6, snapshots (docs/snapshots.md): the payload's state written as a
//! kmcore (every thread's registers, every mapping's contents) plus km's own note
//! ([`state`]), which `km FILE` runs again ([`restore`]). Uses `memory`, `kvm`,
//! `guest` and `kernel`; the file format is the `km-coredump` crate's, extended by
//! the note, so gdb reads a snapshot as a core.

pub mod descriptors;
pub mod mgt;
pub mod restore;
pub mod state;

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rustix::io::Errno;

use crate::crash;
use crate::crash::dump::{self, Keep};
use crate::guest::mm::VmaKind;
use crate::kernel::lock;
use crate::kernel::process::{Guest, StoppedThread, Thread};
use crate::kernel::signals::Point;
use crate::syscalls::snapshot::{KM_SNAPSHOT, SnapshotRequest};
use crate::trace;
use crate::trace::Category;

/// How long the snapshot waits for the other threads to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Set while a snapshot is being taken (a second one fails with EBUSY).
static IN_PROGRESS: AtomicBool = AtomicBool::new(false);

/// How a snapshot went for the thread that asked.
pub enum Taken {
    /// Written; the payload goes on (the call returns 0).
    Live,
    /// Written; the payload ends with status 0.
    End,
}

/// Takes the snapshot `req` asked for, into `path`: by the payload's `caller`
/// (whose call returns 1 in the restored payload), or from outside (km_cli).
/// Every other thread stops, the file is written, and they go on when the
/// payload does.
pub fn take(
    guest: &Guest,
    caller: Option<&Thread>,
    req: &SnapshotRequest,
    path: &Path,
) -> Result<Taken, Errno> {
    if IN_PROGRESS
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        trace!(
            Category::Snapshot,
            "refused: another snapshot is in progress"
        );
        return Err(Errno::BUSY);
    }
    let result = take_alone(guest, caller, req, path);
    IN_PROGRESS.store(false, Ordering::SeqCst);
    result
}

fn take_alone(
    guest: &Guest,
    caller: Option<&Thread>,
    req: &SnapshotRequest,
    path: &Path,
) -> Result<Taken, Errno> {
    let mut threads: Vec<StoppedThread> = caller
        .map(|thread| {
            let returned = Point::Syscall {
                nr: KM_SNAPSHOT as u64,
                result: 1,
                restart: false,
            };
            crash::stopped_thread(thread, returned)
        })
        .into_iter()
        .collect();
    let others = if caller.is_some() {
        guest.stop_others(STOP_TIMEOUT)
    } else {
        guest.stop_all(STOP_TIMEOUT)
    };
    let wanted = guest.thread_ids().len().saturating_sub(threads.len());
    let result = if others.len() < wanted {
        trace!(
            Category::Snapshot,
            "refused: {} of {wanted} other threads stopped",
            others.len()
        );
        Err(Errno::AGAIN)
    } else {
        threads.extend(others);
        // With every thread stopped, nothing changes under the capture.
        check_mappings(guest)
            .and_then(|()| check_timers(guest))
            .and_then(|()| descriptors::capture(guest))
            .and_then(|(fds, epoll)| write_or_errno(guest, req, threads, fds, epoll, path))
    };
    if req.live || result.is_err() {
        guest.resume_others();
    }
    result.map(|()| if req.live { Taken::Live } else { Taken::End })
}

/// [`write`], its failure traced and given as an errno.
fn write_or_errno(
    guest: &Guest,
    req: &SnapshotRequest,
    threads: Vec<StoppedThread>,
    fds: Vec<state::Fd>,
    epoll: Vec<state::EpollEntry>,
    path: &Path,
) -> Result<(), Errno> {
    write(guest, req, threads, fds, epoll, path).map_err(|e| {
        trace!(Category::Snapshot, "writing the snapshot failed: {e:#}");
        e.downcast_ref::<std::io::Error>()
            .and_then(|e| e.raw_os_error())
            .map_or(Errno::IO, Errno::from_raw_os_error)
    })
}

/// Refuses mappings a restore could not give back: System V segments (shared
/// file mappings map their file again).
fn check_mappings(guest: &Guest) -> Result<(), Errno> {
    let mm = lock(&guest.mm);
    for (start, vma) in mm.vmas() {
        if vma.kind == VmaKind::SysvShm {
            trace!(
                Category::Snapshot,
                "mapping {start:#x}..{:#x} is shared with other processes: cannot be restored",
                vma.end
            );
            return Err(Errno::NOTSUP);
        }
    }
    Ok(())
}

/// Refuses POSIX timers (timer_create): they are host timers whose signal event km
/// does not keep, so a restore could not create them again.
fn check_timers(guest: &Guest) -> Result<(), Errno> {
    let timers = guest.posix_timers.load(Ordering::SeqCst);
    if timers > 0 {
        trace!(
            Category::Snapshot,
            "{timers} POSIX timer(s) (timer_create): cannot be restored"
        );
        return Err(Errno::NOTSUP);
    }
    Ok(())
}

/// The registers of a stopped thread as it resumes after a restore: a blocking
/// syscall the stop interrupted is made again.
fn resumable(stopped: &StoppedThread) -> km_coredump::Thread {
    let mut core = stopped.core.clone();
    if stopped.restart {
        core.regs.rip -= 2;
        core.regs.rax = core.regs.orig_rax;
    }
    core
}

/// The note's view of the threads and mappings, with the rest of the state.
fn note_state(
    guest: &Guest,
    req: &SnapshotRequest,
    threads: &[StoppedThread],
    fds: Vec<state::Fd>,
    epoll: Vec<state::EpollEntry>,
) -> Result<state::State> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    let mm = lock(&guest.mm);
    let (image_base, brk_start, brk) = mm.image_and_brk(&guest.vm);
    let mappings = mm
        .vmas()
        .map(|(_, v)| state::Mapping {
            kind: v.kind,
            shared: v.shared,
            file: v.file.as_ref().map(|(p, o)| (p.to_string(), *o)),
        })
        .collect();
    drop(mm);
    let actions = lock(&guest.signals)
        .actions
        .iter()
        .map(|a| a.words())
        .collect();
    let cwd = std::env::current_dir().context("reading the working directory")?;
    crate::kernel::signals::collect_host_signals(guest);
    let mut pending: Vec<_> = guest
        .pending
        .contents()
        .into_iter()
        .map(|info| (None, info))
        .collect();
    for (i, t) in threads.iter().enumerate() {
        if let Some(handle) = guest.thread(t.core.tid) {
            pending.extend(
                handle
                    .pending
                    .contents()
                    .into_iter()
                    .map(|info| (Some(i), info)),
            );
        }
    }
    let itimers = [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF]
        .into_iter()
        .filter_map(|which| {
            let value = crate::memory::host::getitimer(which).ok()?;
            // Armed when its value (the second timeval) is not zero.
            (value[2] != 0 || value[3] != 0).then_some((which, value))
        })
        .collect();
    Ok(state::State {
        label: req.label.clone(),
        description: req.description.clone(),
        name: guest.config.name.clone(),
        exe: guest.config.exe.to_string_lossy().into_owned(),
        argv: guest.config.argv.clone(),
        environ: guest.config.environ.clone(),
        cwd: cwd.to_string_lossy().into_owned(),
        image_base,
        brk_start,
        brk,
        vvar: guest.config.vvar,
        guest_limits: crate::guest::limits::exec_option()
            .trim_start_matches("--guest-limits=")
            .to_string(),
        actions,
        mappings,
        threads: threads
            .iter()
            .map(|t| state::Thread {
                main: t.core.tid == pid,
                altstack: t.altstack,
                clear_child_tid: t.clear_child_tid,
                robust_list: t.robust_list,
            })
            .collect(),
        fds,
        epoll,
        itimers,
        pending,
    })
}

/// Writes the snapshot file: beside its final name first, renamed once complete.
fn write(
    guest: &Guest,
    req: &SnapshotRequest,
    threads: Vec<StoppedThread>,
    fds: Vec<state::Fd>,
    epoll: Vec<state::EpollEntry>,
    path: &Path,
) -> Result<()> {
    let state = note_state(guest, req, &threads, fds, epoll)?;
    let core = km_coredump::Core {
        signal: 0,
        siginfo: [0; 128],
        process: crash::process_info(guest),
        threads: threads.iter().map(resumable).collect(),
        auxv: guest.config.auxv.clone(),
        mappings: dump::mappings(guest, Keep::Everything),
        extra_notes: vec![km_coredump::Note {
            name: state::NOTE_NAME.into(),
            n_type: state::NOTE_TYPE,
            desc: state.encode(),
        }],
    };
    let partial = partial_path(path);
    let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let mut read = |addr: u64, buf: &mut [u8]| guest.vm.mem.read_bytes(addr, buf).is_ok();
    km_coredump::write(&core, &mut read, BufWriter::new(file))
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    trace!(
        Category::Snapshot,
        "wrote {} ({} threads, {} mappings)",
        path.display(),
        core.threads.len(),
        core.mappings.len()
    );
    Ok(())
}

/// Where a snapshot is written before it is complete.
fn partial_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    name.into()
}
