//! The processes one stub debugs: the payload, and the fork children gdb keeps
//! (`detach-on-fork off`), each reached through its [`Relay`]. All-stop holds
//! across them: when one process stops, the others are paused too, and their
//! events wait for the next resume.

use gdbstub::common::{Pid, Signal};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::{TargetError, TargetResult};

use super::relay::{NON_FATAL, Relay, RelayError};
use super::{KmTarget, STOP_TIMEOUT, signals, stop_reason};
use crate::kernel::ptrace::{Event, ForkDecision};

/// A relayed request's result as the target's.
pub fn relayed<T>(result: Result<T, RelayError>) -> TargetResult<T, KmTarget> {
    result.map_err(|e| match e {
        RelayError::Errno(n) if n != NON_FATAL => TargetError::Errno(n),
        _ => TargetError::NonFatal,
    })
}

fn pid(p: i32) -> Option<Pid> {
    Pid::new(usize::try_from(p).ok()?)
}

impl KmTarget {
    /// The relay to the kept fork child that thread `tid` belongs to. A fork
    /// child gdb was told of and reaches into now is told to stay under gdb
    /// through this stub.
    pub(super) fn relay_for(&mut self, tid: i32) -> Option<&mut Relay> {
        if !self.relays.values().any(|r| r.owns(tid)) && self.debugger.has_fork_child(tid) {
            let launched = self.launched;
            let channel = self
                .debugger
                .take_fork_child(tid, ForkDecision::Relay { launched })?;
            match Relay::new(channel) {
                Ok(relay) => {
                    self.relays.insert(tid, relay);
                }
                Err(e) => crate::eprintln_whole!(
                    "km: {}: gdb stub: reaching fork child {tid}: {e}",
                    self.guest.config.name
                ),
            }
        }
        self.relays.values_mut().find(|r| r.owns(tid))
    }

    /// The relay that gdb's next breakpoint packet is for (see
    /// `ForkChildren::select_breakpoint_thread`).
    pub(super) fn point_relay(&mut self) -> Option<&mut Relay> {
        let tid = self.point_thread?;
        self.relay_for(tid)
    }

    /// The kept fork child's pid that thread `tid` belongs to.
    pub(super) fn relayed_process(&self, tid: i32) -> Option<Pid> {
        let (&p, _) = self.relays.iter().find(|(_, r)| r.owns(tid))?;
        pid(p)
    }

    /// Pauses every kept fork child but `except` (another process stopped) and
    /// takes its thread list afresh.
    pub(super) fn pause_relays(&mut self, except: Option<i32>) {
        for (&p, relay) in self.relays.iter_mut().filter(|(p, _)| Some(**p) != except) {
            if let Err(e) = relay.pause().and_then(|()| relay.refresh_threads()) {
                crate::eprintln_whole!(
                    "km: {}: gdb stub: pausing fork child {p}: {e}",
                    self.guest.config.name
                );
            }
        }
    }

    /// The stop of a kept fork child that has an event now, once everything
    /// else is paused: its end (it leaves the session), or its thread's event.
    pub(super) fn relayed_stop(&mut self) -> Option<MultiThreadStopReason<u64>> {
        let (p, got) = self
            .relays
            .iter_mut()
            .map(|(&p, relay)| (p, relay.next_event()))
            .find(|(_, got)| !matches!(got, Ok(None)))?;
        let reason = match got {
            Ok(Some(Event::Exited(status))) => MultiThreadStopReason::ProcessExited {
                pid: pid(p)?,
                code: status as u8,
            },
            Ok(Some(Event::Killed(sig))) => MultiThreadStopReason::ProcessTerminated {
                pid: pid(p)?,
                signal: signals::to_gdb(sig),
            },
            Ok(Some(event)) => {
                let relay = self.relays.get_mut(&p)?;
                let _ = relay.refresh_threads();
                if let Event::Exec(_) = event {
                    let _ = relay.refresh_exe();
                }
                self.debugger.pause(STOP_TIMEOUT);
                self.pause_relays(Some(p));
                return Some(stop_reason(event));
            }
            // The child's km is gone (killed from outside).
            Ok(None) | Err(_) => MultiThreadStopReason::ProcessTerminated {
                pid: pid(p)?,
                signal: Signal::SIGKILL,
            },
        };
        self.relays.remove(&p);
        self.debugger.pause(STOP_TIMEOUT);
        self.pause_relays(None);
        Some(reason)
    }

    /// Resumes the payload's threads and the kept fork children's with gdb's
    /// actions: with scheduler locking only the threads that have one, except
    /// in the processes gdb continues as a whole.
    pub(super) fn resume_processes(&mut self) {
        let mut actions = std::mem::take(&mut self.actions);
        let continued = std::mem::take(&mut self.continued);
        let lock = self.lock_others;
        for (p, relay) in &mut self.relays {
            let mut mine = Vec::new();
            actions.retain(|&t, &mut (action, signal)| {
                let owned = relay.owns(t);
                if owned {
                    mine.push((t, action, signal));
                }
                !owned
            });
            // A lost child is reported at the next wait.
            let _ = relay.resume(&mine, lock && !continued.contains(p));
        }
        let own = super::forks::own_pid();
        self.debugger
            .resume(actions, lock && !continued.contains(&own));
    }

    /// gdb detached this process and follows a kept fork child (a vfork child
    /// once it has exec'd): the child gets gdb's connection and serves gdb
    /// itself; the other kept children run free. False if none is kept.
    pub(super) fn hand_over_to_relay(&mut self) -> bool {
        let Some((p, relay)) = self.relays.pop_first() else {
            return false;
        };
        let Some((conn, _)) = self.debugger.session() else {
            return false;
        };
        let passed = crate::memory::host::dup_cloexec(conn)
            .map_err(|e| super::relay::RelayError::Lost(e.into()))
            .and_then(|copy| relay.hand_over(std::os::fd::AsFd::as_fd(&copy)));
        if let Err(e) = passed {
            crate::eprintln_whole!(
                "km: {}: gdb stub: handing gdb over to fork child {p}: {e}",
                self.guest.config.name
            );
        }
        true
    }

    /// gdb's `kill` or `detach` of kept fork child `p`; false if `p` is not one.
    pub(super) fn release_relay(&mut self, p: i32, kill: bool) -> bool {
        let Some(mut relay) = self.relays.remove(&p) else {
            return false;
        };
        let done = if kill { relay.kill() } else { relay.detach() };
        if let Err(e) = done {
            crate::eprintln_whole!(
                "km: {}: gdb stub: releasing fork child {p}: {e}",
                self.guest.config.name
            );
        }
        true
    }
}
