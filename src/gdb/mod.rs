//! Layer 8, the GDB remote-protocol transport (the `gdbstub` crate) over the
//! debugger state in `crate::kernel::ptrace`; may use every layer below.
//!
//! `km -g[PORT]` stops the payload before its first instruction and waits for
//! `target remote`; the stub then runs on its own thread, parking and resuming the
//! guest threads through the ptrace state, which the thread loop honours.

mod arch;
mod conn;
mod forks;
mod host;
mod libraries;
mod names;
mod processes;
mod relay;
mod relay_server;
mod signals;
mod target;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason, run_blocking};
use gdbstub::target::Target;
use gdbstub::target::ext::catch_syscalls::CatchSyscallPosition;

use crate::kernel::lock;
use crate::kernel::private_fds;
use crate::kernel::process::{Guest, Handover};
use crate::kernel::ptrace::{Debugger, Event, ForkDecision, WatchKind};
use crate::kernel::signals::{SI_KERNEL, SI_USER, info as siginfo};

use conn::Conn;
pub use target::KmTarget;

/// How often the stub looks for gdb's Ctrl-C while the payload runs.
const POLL: Duration = Duration::from_millis(5);
/// How long a new `--gdb-listen` client may stay silent before it is dropped.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long Ctrl-C waits for every thread to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The socket gdb connects to.
pub struct Listener {
    _registered: private_fds::Registered,
    socket: TcpListener,
}

/// Listens on `addr` for gdb, telling the user how to connect.
pub fn listen(addr: &str, payload: &str, waiting: bool) -> Result<Listener> {
    let socket = TcpListener::bind(addr).with_context(|| format!("listening for gdb on {addr}"))?;
    let port = socket.local_addr()?.port();
    let what = if waiting {
        "waiting for gdb"
    } else {
        "gdb can attach"
    };
    crate::eprintln_whole!("km: {what}: gdb {payload} -ex 'target remote :{port}'");
    Ok(Listener {
        _registered: private_fds::register(socket.as_raw_fd()),
        socket,
    })
}

/// Waits for gdb to connect (through host signals km handles on this thread,
/// which interrupt the wait: km's handlers leave SA_RESTART out).
pub fn accept(listener: &Listener) -> Result<TcpStream> {
    let stream = loop {
        match listener.socket.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("accepting the gdb connection"),
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// `--gdb-listen`: the payload runs; each gdb that connects and speaks stops it (all
/// threads), debugs it, and lets it run on when it detaches. A connection from the
/// payload itself is refused.
pub fn serve_attaches(guest: Arc<Guest>, debugger: Arc<Debugger>, listener: Listener) {
    while let Ok(stream) = accept(&listener) {
        if from_own_payload(&guest, &stream) {
            crate::eprintln_whole!(
                "km: {}: gdb stub: refused a connection from the payload itself",
                guest.config.name
            );
            continue;
        }
        if !speaks_within(&stream, FIRST_BYTE_TIMEOUT) {
            continue;
        }
        debugger.attach();
        // The stop gdb finds on attach: SIGSTOP, as PTRACE_ATTACH sends.
        let attach_stop = siginfo(libc::SIGSTOP, SI_KERNEL);
        if debugger.interrupt(STOP_TIMEOUT, attach_stop).is_none() {
            debugger.detach();
            continue;
        }
        serve(guest.clone(), debugger.clone(), stream, false);
    }
}

/// Whether `stream` comes from one of the payload's own sockets. The payload would
/// stop for a debugger it drives itself and never speak again: refused, as Linux
/// refuses a process that tries to trace itself.
fn from_own_payload(guest: &Guest, stream: &TcpStream) -> bool {
    let Ok(peer) = stream.peer_addr() else {
        return false;
    };
    let canonical = |a: SocketAddr| (a.ip().to_canonical(), a.port());
    let fds = lock(&guest.fds);
    fds.numbers()
        .into_iter()
        .filter_map(|n| fds.get(n).ok())
        .filter_map(|fd| rustix::net::getsockname(&*fd).ok())
        .filter_map(|addr| SocketAddr::try_from(addr).ok())
        .any(|addr| canonical(addr) == canonical(peer))
}

/// Whether a byte arrives on `stream` within `timeout`: the payload is stopped only
/// for a client that speaks, never for one that connects and stays silent.
fn speaks_within(stream: &TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.peek(&mut [0u8; 1]) {
            Ok(n) => return n > 0 && stream.set_read_timeout(None).is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn tid(t: i32) -> gdbstub::common::Tid {
    gdbstub::common::Tid::new(t as usize).expect("thread ids are positive")
}

fn stop_reason(event: Event) -> MultiThreadStopReason<u64> {
    match event {
        Event::Breakpoint(t) => MultiThreadStopReason::SwBreak(tid(t)),
        Event::HwBreakpoint(t) => MultiThreadStopReason::HwBreak(tid(t)),
        Event::Step(t) => MultiThreadStopReason::SignalWithThread {
            tid: tid(t),
            signal: Signal::SIGTRAP,
        },
        Event::Signal(t, sig) => MultiThreadStopReason::SignalWithThread {
            tid: tid(t),
            signal: signals::to_gdb(sig),
        },
        Event::Watch(t, kind, addr) => MultiThreadStopReason::Watch {
            tid: tid(t),
            kind: match kind {
                WatchKind::Write => gdbstub::target::ext::breakpoints::WatchKind::Write,
                WatchKind::Read => gdbstub::target::ext::breakpoints::WatchKind::Read,
                WatchKind::Access => gdbstub::target::ext::breakpoints::WatchKind::ReadWrite,
            },
            addr,
        },
        Event::SyscallEntry(t, nr) | Event::SyscallReturn(t, nr) => {
            MultiThreadStopReason::CatchSyscall {
                tid: Some(tid(t)),
                number: nr,
                position: if matches!(event, Event::SyscallEntry(..)) {
                    CatchSyscallPosition::Entry
                } else {
                    CatchSyscallPosition::Return
                },
            }
        }
        Event::Fork {
            tid: t,
            child,
            vfork,
        } => {
            let new_tid = tid(child);
            if vfork {
                MultiThreadStopReason::VFork {
                    cur_tid: tid(t),
                    new_pid: new_tid,
                    new_tid,
                }
            } else {
                MultiThreadStopReason::Fork {
                    cur_tid: tid(t),
                    new_pid: new_tid,
                    new_tid,
                }
            }
        }
        Event::VForkDone(t) => MultiThreadStopReason::VForkDone(tid(t)),
        Event::Exec(t) => MultiThreadStopReason::Exec(tid(t)),
        Event::Exited(status) => MultiThreadStopReason::Exited(status as u8),
        Event::Killed(sig) => MultiThreadStopReason::Terminated(signals::to_gdb(sig)),
    }
}

enum EventLoop {}

impl run_blocking::BlockingEventLoop for EventLoop {
    type Target = KmTarget;
    type Connection = Conn;
    type StopReason = MultiThreadStopReason<u64>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut KmTarget,
        conn: &mut Conn,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        run_blocking::WaitForStopReasonError<<KmTarget as Target>::Error, std::io::Error>,
    > {
        loop {
            if conn.peek().map(|b| b.is_some()).unwrap_or(true) {
                let byte = conn
                    .read()
                    .map_err(run_blocking::WaitForStopReasonError::Connection)?;
                return Ok(run_blocking::Event::IncomingData(byte));
            }
            if let Some(event) = target.debugger().next_event(POLL) {
                if let Event::Fork { child, .. } = event {
                    target.last_fork = Some(child);
                }
                target.pause_relays(None);
                return Ok(run_blocking::Event::TargetStopped(stop_reason(event)));
            }
            if let Some(reason) = target.relayed_stop() {
                return Ok(run_blocking::Event::TargetStopped(reason));
            }
        }
    }

    fn on_interrupt(
        target: &mut KmTarget,
    ) -> Result<Option<Self::StopReason>, <KmTarget as Target>::Error> {
        // Ctrl-C: gdbserver sends SIGINT.
        let ctrl_c = siginfo(libc::SIGINT, SI_USER);
        let stopped = target.debugger().interrupt(STOP_TIMEOUT, ctrl_c);
        target.pause_relays(None);
        Ok(stopped.map(|t| MultiThreadStopReason::SignalWithThread {
            tid: tid(t),
            signal: Signal::SIGINT,
        }))
    }
}

/// `-g`: serves gdb on `stream` once the payload has stopped before its first
/// instruction (gdb's first questions need a stopped thread to answer).
pub fn serve_from_start(guest: Arc<Guest>, debugger: Arc<Debugger>, stream: TcpStream) {
    debugger.wait_stopped(STOP_TIMEOUT);
    serve(guest, debugger, stream, true)
}

/// Serves gdb on `conn`, a session another km began (see [`Handover`]): a fork
/// child gdb follows, or the program an execve started. The stub starts once the
/// payload has stopped.
pub fn take_over(guest: &Arc<Guest>, conn: OwnedFd, handover: Handover) -> Result<()> {
    let debugger = guest
        .debugger
        .clone()
        .context("taking a gdb session over without a debugger")?;
    let guest = guest.clone();
    std::thread::Builder::new()
        .name("km-gdb".into())
        .spawn(move || {
            debugger.wait_stopped(STOP_TIMEOUT);
            if handover.relay {
                let stream = std::os::unix::net::UnixStream::from(conn);
                return relay_server::serve(guest, debugger, stream, handover.launched);
            }
            let stream = TcpStream::from(conn);
            serve_session(guest, debugger, stream, handover.launched, Some(handover));
        })
        .context("starting the gdb stub's thread")?;
    Ok(())
}

/// Serves gdb on `stream` until the payload ends or gdb goes away; then lets the
/// payload run on by itself. `launched`: km started the payload for this gdb.
fn serve(guest: Arc<Guest>, debugger: Arc<Debugger>, stream: TcpStream, launched: bool) {
    serve_session(guest, debugger, stream, launched, None)
}

/// [`serve`], or with `handover`, goes on with a session another km began.
fn serve_session(
    guest: Arc<Guest>,
    debugger: Arc<Debugger>,
    stream: TcpStream,
    launched: bool,
    handover: Option<Handover>,
) {
    let mut target = KmTarget::new(guest.clone(), debugger.clone(), launched);
    debugger.set_session(stream.as_raw_fd(), launched);
    let mut stub = GdbStub::builder(Conn::new(stream));
    if let Some(h) = handover {
        stub = stub.continue_session(false, h.running);
    }
    let result = match stub.build() {
        Ok(stub) => stub.run_blocking::<EventLoop>(&mut target),
        Err(e) => {
            crate::eprintln_whole!("km: {}: gdb stub: {e}", guest.config.name);
            debugger.detach();
            return;
        }
    };
    crate::trace!(crate::trace::Category::Kvm, "gdb stub ends: {result:?}");
    match result {
        Ok(DisconnectReason::TargetExited(_)) | Ok(DisconnectReason::TargetTerminated(_)) => {
            debugger.finish()
        }
        Ok(DisconnectReason::Kill) => crate::kvm::kick::die_by(libc::SIGKILL),
        Ok(DisconnectReason::Disconnect) | Err(_) => {
            if let Err(e) = &result {
                crate::eprintln_whole!("km: {}: gdb stub: {e}", guest.config.name);
            }
            if let Some(child) = target.followed {
                debugger.decide_fork_child(child, ForkDecision::TakeOver { launched });
            }
            let_run_free(&guest, &debugger);
        }
    }
}

/// gdb has gone from this process: its breakpoints and watchpoints come out
/// and the payload runs on by itself.
fn let_run_free(guest: &Guest, debugger: &Debugger) {
    for (addr, orig) in debugger.breakpoints() {
        let _ = guest.vm.mem.write_bytes(addr, &[orig]);
    }
    for page in debugger.clear_access_watches() {
        if let Err(e) = guest.show_page(page) {
            crate::eprintln_whole!(
                "km: {}: gdb stub: showing page {page:#x}: {e:#}",
                guest.config.name
            );
        }
    }
    debugger.detach();
}
