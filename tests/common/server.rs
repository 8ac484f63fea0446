//! Servers started natively or under km for tests that drive them over loopback.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use super::{km, wait_for};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// Generous: a loaded CI machine may take long to start or stop a server;
/// nothing is measured against it.
pub const START_LIMIT: Duration = Duration::from_secs(120);

/// How a program is started: directly or under km.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Native,
    Km,
}

impl Mode {
    pub fn command(self, exe: &str) -> Command {
        match self {
            Mode::Native => Command::new(exe),
            Mode::Km => {
                let mut cmd = km();
                cmd.arg(exe);
                cmd
            }
        }
    }
}

/// A running server in its own process group, which is killed (workers too) if
/// the test ends without stopping it.
pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let group = Pid::from_raw(self.pid() as i32).expect("a child pid");
            let _ = kill_process_group(group, Signal::KILL);
            let _ = self.child.wait();
        }
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to stop with `signal` and waits for it.
    pub fn stop(mut self, signal: Signal) -> ExitStatus {
        let pid = Pid::from_raw(self.pid() as i32).expect("a child pid");
        kill_process(pid, signal).expect("signalling the server");
        wait_for(&mut self.child, START_LIMIT, "the server")
    }
}
