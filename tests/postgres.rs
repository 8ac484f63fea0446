//! PostgreSQL 15 (Debian's postgresql-15) under km, compared with the same run
//! natively (issue 13): `initdb`, the server (the postmaster and every backend and
//! auxiliary process it forks) on a loopback port as an unprivileged user,
//! `pgbench -i`, a short `pgbench` run and queries (one with parallel workers),
//! all driven by native clients.
//! Also sync_file_range, which the checkpointer calls, against native.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::server::{Mode, START_LIMIT, Server};
use common::{assert_passes_like_native, free_port, payload, run, text};
use rustix::process::Signal;

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The unprivileged user the server runs as when the test runs as root
/// (PostgreSQL refuses root): km's --sandbox default, `nobody` on Debian.
const UNPRIVILEGED: u32 = 65534;
/// The database role initdb creates and the clients connect as.
const ROLE: &str = "bench";

fn tool(name: &str) -> String {
    format!("{BIN}/{name}")
}

fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `exe` as the server's user: as root, natively through setpriv and under km
/// through --sandbox (km opens /dev/kvm, then drops to the same uid and gid).
fn server_command(mode: Mode, exe: &str) -> Command {
    let mut cmd = match (mode, as_root()) {
        (Mode::Native, true) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={UNPRIVILEGED}"))
                .arg(format!("--regid={UNPRIVILEGED}"))
                .arg("--clear-groups")
                .arg(exe);
            cmd
        }
        (Mode::Km, true) => {
            let mut cmd = common::km();
            cmd.arg("--sandbox").arg(exe);
            cmd
        }
        (mode, false) => mode.command(exe),
    };
    cmd.stdin(Stdio::null());
    cmd
}

/// A directory the server's user owns, under the system's temporary directory
/// (every parent is searchable by that user, which a checkout under /root is not).
struct Workdir(PathBuf);

impl Workdir {
    fn new(mode: Mode) -> Workdir {
        let dir = std::env::temp_dir().join(format!("km-postgres-{mode:?}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("creating the work directory");
        if as_root() {
            std::os::unix::fs::chown(&dir, Some(UNPRIVILEGED), Some(UNPRIVILEGED))
                .expect("giving the work directory to the server's user");
        }
        Workdir(dir)
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// initdb's report with the data directory's name taken out.
fn initdb(mode: Mode, dir: &Workdir) -> String {
    let data = dir.data();
    let out = run(server_command(mode, &tool("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-U", ROLE, "--auth=trust", "--no-sync"]));
    assert!(
        out.status.success(),
        "{mode:?} initdb: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout).replace(&data.display().to_string(), "DATA")
}

/// Starts the server on `port` (TCP on 127.0.0.1 only, no Unix socket, plain
/// log lines in `dir`/server.log) and waits until it says it accepts connections.
fn start_server(mode: Mode, dir: &Workdir, port: u16) -> Server {
    let log = std::fs::File::create(dir.0.join("server.log")).expect("creating the log");
    let child = server_command(mode, &tool("postgres"))
        .arg("-D")
        .arg(dir.data())
        .args(["-k", "", "-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1", "-c", "log_line_prefix="])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning postgres (Debian's postgresql-15)");
    let mut server = Server { child };
    let started = Instant::now();
    // The log, not a connection attempt: one made while the server starts is
    // refused and logged as FATAL, natively too when it comes early enough.
    while !log_of(dir).contains("database system is ready to accept connections") {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{mode:?} postgres exited with {status}: {}", log_of(dir));
        }
        assert!(
            started.elapsed() < START_LIMIT,
            "{mode:?} postgres never accepted connections: {}",
            log_of(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn log_of(dir: &Workdir) -> String {
    std::fs::read_to_string(dir.0.join("server.log")).unwrap_or_default()
}

/// A native client of the server on `port`, as the test's own user.
fn client(exe: &str, port: u16) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", ROLE])
        .stdin(Stdio::null());
    cmd
}

/// psql running `commands` (each a -c) on database postgres, unaligned tuples only.
fn psql(port: u16, commands: &[&str]) -> Output {
    let mut cmd = client(&tool("psql"), port);
    cmd.args(["-At", "-d", "postgres"]);
    for command in commands {
        cmd.args(["-c", command]);
    }
    run(&mut cmd)
}

fn succeeded(what: &str, mode: Mode, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{mode:?} {what}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// pgbench's report without what depends on speed: elapsed times, latencies,
/// rates and connection times.
fn without_timings(report: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| {
            !["latency", "tps = ", "initial connection time"]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .map(|l| {
            let cut = [" (elapsed ", "done in "]
                .iter()
                .filter_map(|t| l.find(t).map(|at| at + t.len()))
                .min();
            cut.map_or(l, |at| &l[..at]).to_string()
        })
        .collect()
}

/// From a parallel query's plan and answer, what does not depend on the data's
/// layout on disk (heap fetches, the plan chosen): the workers and the answer.
fn workers_and_answer(report: &str) -> Vec<String> {
    report
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Workers ") || l.contains('|'))
        .map(str::to_string)
        .collect()
}

/// The server's warnings and errors, and whether it said it shut down.
fn log_summary(log: &str) -> (Vec<String>, bool) {
    let complaints = log
        .lines()
        .filter(|l| {
            ["WARNING:", "ERROR:", "FATAL:", "PANIC:"]
                .iter()
                .any(|t| l.starts_with(t))
        })
        .map(str::to_string)
        .collect();
    (complaints, log.contains("database system is shut down"))
}

/// What one whole session shows: initdb's report, pgbench -i's and pgbench's
/// reports, queries' answers (one of them by parallel workers), the server's
/// complaints and how it ended.
#[derive(Debug, PartialEq)]
struct Session {
    initdb: String,
    init: Vec<String>,
    bench: Vec<String>,
    query: String,
    parallel: Vec<String>,
    complaints: Vec<String>,
    shut_down: bool,
    status: Option<i32>,
}

fn session(mode: Mode) -> Session {
    let dir = Workdir::new(mode);
    let initdb = initdb(mode, &dir);
    let port = free_port();
    let server = start_server(mode, &dir, port);
    let pgbench = tool("pgbench");
    let init = succeeded(
        "pgbench -i",
        mode,
        run(client(&pgbench, port).args(["-i", "postgres"])),
    );
    let bench = succeeded(
        "pgbench",
        mode,
        run(client(&pgbench, port).args(["-t", "50", "-c", "2", "postgres"])),
    );
    let query = succeeded(
        "psql",
        mode,
        psql(
            port,
            &[
                "select count(*) from pgbench_history",
                "select count(*), count(distinct bid) from pgbench_accounts",
                "select (select sum(tbalance) from pgbench_tellers) = \
                 (select sum(delta) from pgbench_history)",
            ],
        ),
    );
    // Parallel workers: more forked backends, sharing a dynamic shared memory
    // segment (shm_open, mapped MAP_SHARED) with the leader.
    let parallel = succeeded(
        "parallel query",
        mode,
        psql(
            port,
            &[
                "set max_parallel_workers_per_gather = 2",
                "set parallel_setup_cost = 0",
                "set parallel_tuple_cost = 0",
                "set min_parallel_table_scan_size = 0",
                "explain (analyze, costs off, timing off, summary off) \
                 select count(*), sum(aid) from pgbench_accounts",
                "select count(*), sum(aid) from pgbench_accounts",
            ],
        ),
    );
    // SIGINT: PostgreSQL's fast shutdown, a checkpoint written on the way.
    let status = server.stop(Signal::INT);
    let (complaints, shut_down) = log_summary(&log_of(&dir));
    Session {
        initdb,
        init: without_timings(&(text(&init.stdout) + &text(&init.stderr))),
        bench: without_timings(&(text(&bench.stdout) + &text(&bench.stderr))),
        query: text(&query.stdout),
        parallel: workers_and_answer(&text(&parallel.stdout)),
        complaints,
        shut_down,
        status: status.code(),
    }
}

#[test]
fn initdb_server_and_pgbench_as_native() {
    let native = session(Mode::Native);
    assert!(
        native.shut_down
            && native
                .bench
                .iter()
                .any(|l| l == "number of transactions actually processed: 100/100"),
        "the native run is not the reference expected: {native:#?}"
    );
    let under_km = session(Mode::Km);
    assert_eq!(under_km, native);
}

/// sync_file_range (PostgreSQL's "could not flush dirty data" when it fails).
#[test]
fn sync_file_range_as_native() {
    assert_passes_like_native(&payload("syncrange.glibc"), &[], Some("syncrange"), "done");
}
