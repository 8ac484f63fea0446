//! Debian's servers and tools under km, each compared with the same run natively
//! (issue 13): nginx (a master and two workers) serving files over loopback, and
//! sqlite3 with its default VFS (POSIX record locks) on a database file.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::server::{Mode, START_LIMIT, Server};
use common::{free_port, scratch, text};
use rustix::process::Signal;

const NGINX: &str = "/usr/sbin/nginx";
const SQLITE3: &str = "/usr/bin/sqlite3";

/// Bytes that differ from run to run of the test but are the same for both modes.
fn test_file(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn nginx_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes 2;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log {d}/access.log;\n\
           client_body_temp_path {d}/client_body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           default_type application/octet-stream;\n\
           server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n\
         }}\n"
    )
}

/// Starts nginx in `dir` (its config, logs and document root) on a free port.
fn start_nginx(mode: Mode, dir: &Path, file: &[u8]) -> (Server, u16) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("blob.bin"), file).unwrap();
    std::fs::write(www.join("index.html"), "<h1>km</h1>\n").unwrap();
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir, port)).unwrap();
    let error_log = dir.join("error.log");
    let child = mode
        .command(NGINX)
        .arg("-e")
        .arg(&error_log)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning nginx (Debian's nginx package)");
    let mut server = Server { child };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!(
                "{mode:?} nginx exited with {status}: {}",
                std::fs::read_to_string(&error_log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < START_LIMIT,
            "{mode:?} nginx never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

/// The processes whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // The fields after the command (which may hold spaces) start after ')'.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            rest.split_whitespace().nth(1) == Some(&pid.to_string())
        })
        .count()
}

/// Waits (up to START_LIMIT) for `server` to have `n` child processes; returns
/// how many it has.
fn wait_for_children(server: &Server, n: usize) -> usize {
    let started = Instant::now();
    loop {
        let count = children_of(server.pid());
        if count >= n || started.elapsed() > START_LIMIT {
            return count;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP/1.0 GET over a new connection: (status line, named headers, body).
fn get(port: u16, path: &str) -> (String, Vec<String>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to nginx");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("reading the response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = text(&response[..split]);
    let body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    // Headers that do not depend on the time or the file's inode.
    let headers = lines
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("content-length:") || l.starts_with("content-type:")
        })
        .map(str::to_string)
        .collect();
    (status, headers, body)
}

type Responses = Vec<(String, Vec<String>, Vec<u8>)>;

/// Runs nginx, fetches a few paths several times, stops it gracefully (SIGQUIT).
fn nginx_run(mode: Mode, file: &[u8]) -> (Responses, usize, ExitStatus) {
    let dir = scratch(&format!("nginx-{mode:?}"));
    let (server, port) = start_nginx(mode, &dir, file);
    let workers = wait_for_children(&server, 2);
    let mut responses = Vec::new();
    for _ in 0..8 {
        for path in ["/blob.bin", "/", "/missing"] {
            responses.push(get(port, path));
        }
    }
    let status = server.stop(Signal::QUIT);
    (responses, workers, status)
}

#[test]
fn nginx_master_and_two_workers_serve_files_like_native() {
    let seed = std::process::id() as u64 * 0x9e37_79b9;
    let file = test_file(1 << 20, seed);
    let (native, native_workers, native_status) = nginx_run(Mode::Native, &file);
    let (under_km, km_workers, km_status) = nginx_run(Mode::Km, &file);
    assert_eq!(
        native_workers, 2,
        "native nginx has a master and two workers"
    );
    assert_eq!(km_workers, 2, "nginx under km has a master and two workers");
    assert_eq!(native.len(), under_km.len());
    for (n, k) in native.iter().zip(&under_km) {
        assert_eq!(k.0, n.0, "status line");
        assert_eq!(k.1, n.1, "headers");
        assert!(k.2 == n.2, "body of a {} response differs from native", n.0);
    }
    assert_eq!(under_km[0].0, "HTTP/1.1 200 OK");
    assert!(under_km[0].2 == file, "the file is served byte-identical");
    assert_eq!(under_km[2].0, "HTTP/1.1 404 Not Found");
    assert!(native_status.success(), "native nginx: {native_status}");
    assert!(km_status.success(), "nginx under km: {km_status}");
}

/// A script that creates a table, inserts `rows` rows in one transaction, indexes
/// it and queries it.
fn sqlite_script(rows: u32) -> String {
    let mut sql = String::from(
        "PRAGMA journal_mode;\n\
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);\n\
         BEGIN;\n",
    );
    for i in 1..=rows {
        sql.push_str(&format!(
            "INSERT INTO t(name, v) VALUES ('row{i}', {});\n",
            (i as u64 * 7919) % 10007
        ));
    }
    sql.push_str(
        "COMMIT;\n\
         CREATE INDEX t_v ON t(v);\n\
         SELECT count(*), sum(v), min(name), max(name) FROM t;\n\
         SELECT id, name, v FROM t WHERE v BETWEEN 100 AND 130 ORDER BY v;\n\
         EXPLAIN QUERY PLAN SELECT id FROM t WHERE v = 5;\n\
         PRAGMA integrity_check;\n",
    );
    sql
}

/// sqlite3 on `db` with `sql` on stdin: (stdout, stderr, success).
fn sqlite_run(mode: Mode, db: &Path, sql: &str) -> (String, String, bool) {
    let mut child = mode
        .command(SQLITE3)
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sqlite3");
    let mut stdin = child.stdin.take().unwrap();
    let input = sql.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().expect("writing the script");
    (text(&out.stdout), text(&out.stderr), out.status.success())
}

fn sqlite_session(mode: Mode) -> (String, String) {
    let dir = scratch(&format!("sqlite-{mode:?}"));
    let db: PathBuf = dir.join("test.db");
    let (created, err, ok) = sqlite_run(mode, &db, &sqlite_script(10_000));
    assert!(ok && err.is_empty(), "{mode:?} sqlite3: {err}");
    // A second process opens the file again, behind the first one's locks.
    let (reopened, err, ok) = sqlite_run(
        mode,
        &db,
        "SELECT count(*), max(v) FROM t WHERE v > 5000;\nPRAGMA integrity_check;\n",
    );
    assert!(ok && err.is_empty(), "{mode:?} sqlite3 reopening: {err}");
    (created, reopened)
}

#[test]
fn sqlite3_on_a_database_file_matches_native() {
    let native = sqlite_session(Mode::Native);
    let under_km = sqlite_session(Mode::Km);
    assert_eq!(under_km.0, native.0, "create, insert, index, query");
    assert_eq!(under_km.1, native.1, "reopened");
    assert!(native.0.starts_with("delete\n10000|"), "{}", native.0);
    assert!(
        native.0.contains("USING COVERING INDEX t_v"),
        "{}",
        native.0
    );
    assert!(native.1.ends_with("ok\n"), "{}", native.1);
}
