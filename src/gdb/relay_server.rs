//! The fork child's side of a relay (see `super::relay`): the child km answers
//! its parent's stub with its own target, as its own stub would answer gdb.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use gdbstub::arch::Registers;
use gdbstub::common::Tid;
use gdbstub::target::TargetError;
use gdbstub::target::ext::base::multithread::MultiThreadBase;
use gdbstub::target::ext::breakpoints::{HwBreakpoint, HwWatchpoint, SwBreakpoint, WatchKind};

use super::arch::KmRegs;
use super::relay::{
    Message, NON_FATAL, Received, action_of, op, put_event, receive_descriptor, send_descriptor,
};
use super::{KmTarget, STOP_TIMEOUT};
use crate::kernel::process::Guest;
use crate::kernel::ptrace::{Debugger, Event};

/// What the server does after a reply.
enum Then {
    Serve,
    /// The process's end was reported: km may exit.
    Finish,
    Kill,
    Detach,
    /// gdb's connection follows: serve gdb directly.
    TakeOver,
    /// The file gdb opened (`vFile:open`) goes with the reply.
    SendFile(std::os::fd::OwnedFd),
}

/// Answers the parent's stub on `stream` until it lets this process go (or
/// goes itself, or kills it); then the payload runs free.
pub fn serve(guest: Arc<Guest>, debugger: Arc<Debugger>, mut stream: UnixStream, launched: bool) {
    let registered = crate::kernel::private_fds::register(stream.as_raw_fd());
    debugger.set_relayed_session(stream.as_raw_fd(), launched);
    let mut target = KmTarget::new(guest.clone(), debugger.clone(), launched);
    loop {
        // A request is read only with the turn, which an execve holds.
        if let Err(e) = wait_readable(&stream) {
            crate::eprintln_whole!("km: {}: gdb relay: {e}", guest.config.name);
            break;
        }
        let turn = debugger.relay_turn();
        let answered = Received::read(&mut stream).and_then(|mut r| answer(&mut target, &mut r));
        let (reply, then) = match answered {
            Ok(a) => a,
            Err(e) => {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    crate::eprintln_whole!("km: {}: gdb relay: {e}", guest.config.name);
                }
                break;
            }
        };
        if reply.send(&mut stream).is_err() {
            break;
        }
        // A descriptor that goes with the reply is passed with the turn held.
        match then {
            Then::Serve => {}
            Then::SendFile(file) => {
                if let Err(e) = send_descriptor(&stream, file.as_fd()) {
                    crate::eprintln_whole!("km: {}: gdb relay: {e}", guest.config.name);
                    break;
                }
            }
            Then::Finish => return debugger.finish(),
            Then::Kill => crate::kvm::kick::die_by(libc::SIGKILL),
            Then::Detach => break,
            Then::TakeOver => match receive_descriptor(&stream) {
                Ok(conn) => {
                    drop(turn);
                    drop((registered, stream));
                    let handover = crate::kernel::process::Handover {
                        launched,
                        running: false,
                        relay: false,
                    };
                    let conn = std::net::TcpStream::from(conn);
                    return super::serve_session(guest, debugger, conn, launched, Some(handover));
                }
                Err(e) => {
                    crate::eprintln_whole!("km: {}: gdb relay: {e}", guest.config.name);
                    break;
                }
            },
        }
    }
    super::let_run_free(&guest, &debugger);
}

/// Waits until `stream` has a request (or is closed).
fn wait_readable(stream: &UnixStream) -> io::Result<()> {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [PollFd::new(stream, PollFlags::IN)];
        match poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => {}
            r => return r.map(drop).map_err(io::Error::from),
        }
    }
}

fn ok() -> Message {
    Message::new(0)
}

/// The reply to a request the target refused.
fn refused(e: TargetError<&'static str>) -> Message {
    match e {
        TargetError::Errno(n) if n != 0 => Message::new(n),
        _ => Message::new(NON_FATAL),
    }
}

fn thread(r: &mut Received) -> io::Result<Tid> {
    usize::try_from(r.int()?)
        .ok()
        .and_then(Tid::new)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "relayed thread id"))
}

/// Serves one request.
fn answer(target: &mut KmTarget, r: &mut Received) -> io::Result<(Message, Then)> {
    let reply = match r.byte()? {
        op::READ_REGISTERS => {
            let mut regs = KmRegs::default();
            match target.read_registers(&mut regs, thread(r)?) {
                Ok(()) => {
                    let mut bytes = Vec::new();
                    regs.gdb_serialize(|b| bytes.push(b.unwrap_or(0)));
                    ok().bytes(&bytes)
                }
                Err(e) => refused(e),
            }
        }
        op::WRITE_REGISTERS => {
            let tid = thread(r)?;
            let mut regs = KmRegs::default();
            if regs.gdb_deserialize(r.rest()).is_err() {
                refused(TargetError::Errno(libc::EINVAL as u8))
            } else {
                target
                    .write_registers(&regs, tid)
                    .map_or_else(refused, |()| ok())
            }
        }
        op::READ_MEMORY => {
            let tid = thread(r)?;
            let addr = r.word()?;
            let mut buf = vec![0u8; r.length()?];
            match target.read_addrs(addr, &mut buf, tid) {
                Ok(n) => ok().bytes(&buf[..n.min(buf.len())]),
                Err(e) => refused(e),
            }
        }
        op::WRITE_MEMORY => {
            let tid = thread(r)?;
            let addr = r.word()?;
            target
                .write_addrs(addr, r.rest(), tid)
                .map_or_else(refused, |()| ok())
        }
        op @ (op::INSERT_POINT | op::REMOVE_POINT) => {
            let kind = r.word()?;
            let (addr, len) = (r.word()?, r.word()?);
            match point(target, op == op::INSERT_POINT, kind, addr, len) {
                Ok(done) => ok().bytes(&[done as u8]),
                Err(e) => refused(e),
            }
        }
        op::THREADS => threads(target),
        op::RESUME => {
            resume(target, r)?;
            ok()
        }
        op::NEXT_EVENT => return Ok(next_event(target)),
        op::PAUSE => {
            target.debugger().pause(STOP_TIMEOUT);
            ok()
        }
        op::KILL => return Ok((ok(), Then::Kill)),
        op::EXEC_FILE => ok().bytes(target.guest.config.exe.as_os_str().as_encoded_bytes()),
        op::TAKE_OVER => return Ok((ok(), Then::TakeOver)),
        op::OPEN_FILE => {
            match crate::syscalls::procrule::open_for_debugger(&target.guest, r.rest()) {
                Ok(file) => return Ok((ok(), Then::SendFile(file))),
                Err(e) => Message::new(u8::try_from(e.raw_os_error()).unwrap_or(NON_FATAL)),
            }
        }
        op::DETACH => return Ok((ok(), Then::Detach)),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown relay request {other:#x}"),
            ));
        }
    };
    Ok((reply, Then::Serve))
}

/// Inserts or removes a breakpoint or watchpoint of gdb's `Z` type `kind`.
fn point(
    target: &mut KmTarget,
    add: bool,
    kind: u64,
    addr: u64,
    len: u64,
) -> Result<bool, TargetError<&'static str>> {
    let size = usize::try_from(len).map_err(|_| TargetError::Errno(libc::EINVAL as u8))?;
    let watch = match kind {
        0 if add => return target.add_sw_breakpoint(addr, size),
        0 => return target.remove_sw_breakpoint(addr, size),
        1 if add => return target.add_hw_breakpoint(addr, size),
        1 => return target.remove_hw_breakpoint(addr, size),
        2 => WatchKind::Write,
        3 => WatchKind::Read,
        4 => WatchKind::ReadWrite,
        _ => return Err(TargetError::Errno(libc::EINVAL as u8)),
    };
    if add {
        target.add_hw_watchpoint(addr, len, watch)
    } else {
        target.remove_hw_watchpoint(addr, len, watch)
    }
}

/// The threads, with their names.
fn threads(target: &KmTarget) -> Message {
    let tids = target.debugger().threads();
    let mut m = ok().word(tids.len() as u64);
    for t in tids {
        let name = super::names::comm(t).unwrap_or_default();
        m = m.word(t as u64).word(name.len() as u64).bytes(&name);
    }
    m
}

/// Resumes the threads with the actions the request lists.
fn resume(target: &KmTarget, r: &mut Received) -> io::Result<()> {
    let lock_others = r.word()? != 0;
    let n = r.length()?;
    let mut actions = HashMap::new();
    for _ in 0..n {
        let tid = r.int()?;
        let action = action_of(r.word()?)?;
        let signal = Some(r.int()?).filter(|&s| s != 0);
        actions.insert(tid, (action, signal));
    }
    target.debugger().resume(actions, lock_others);
    Ok(())
}

/// The next event to report, if any; the end of the process finishes the relay.
fn next_event(target: &KmTarget) -> (Message, Then) {
    match target.debugger().next_event(Duration::ZERO) {
        None => (ok().bytes(&[0]), Then::Serve),
        Some(event) => {
            let then = match event {
                Event::Exited(_) | Event::Killed(_) => Then::Finish,
                _ => Then::Serve,
            };
            (put_event(ok().bytes(&[1]), event), then)
        }
    }
}
