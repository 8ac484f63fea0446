//! `--mgtpipe=PATH`: km listens on a UNIX socket for management requests (one
//! per connection, one line each way), today a snapshot asked for by `km_cli`.
//!   request: `snapshot LIVE DIR` (LIVE 0 or 1; DIR in hex, `-` for none)
//!   reply:   `ok PATH` or `error MESSAGE`

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::state::{hex, unhex};
use super::{Taken, take};
use crate::kernel::process::{Guest, exit_payload};
use crate::syscalls::snapshot::SnapshotRequest;
use crate::trace;
use crate::trace::Category;

/// The longest request line km reads.
const LINE_MAX: u64 = 8192;

/// A snapshot request from outside the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The payload goes on afterwards (`km_cli -r`).
    pub live: bool,
    /// The directory the file goes to instead of `--snapshot`'s (`km_cli -d`).
    pub dir: Option<PathBuf>,
}

impl Request {
    pub fn encode(&self) -> String {
        let dir = self
            .dir
            .as_ref()
            .map_or("-".into(), |d| hex(d.as_os_str().as_encoded_bytes()));
        format!("snapshot {} {dir}\n", u8::from(self.live))
    }

    pub fn decode(line: &str) -> Result<Request> {
        let f: Vec<&str> = line.trim_end().split(' ').collect();
        let ["snapshot", live, dir] = f[..] else {
            bail!("unknown request {line:.40?}");
        };
        let live = match live {
            "0" => false,
            "1" => true,
            _ => bail!("bad LIVE {live:.8?}"),
        };
        let dir = match dir {
            "-" => None,
            encoded => {
                let bytes = unhex(encoded).context("bad DIR")?;
                Some(PathBuf::from(String::from_utf8(bytes).context("bad DIR")?))
            }
        };
        Ok(Request { live, dir })
    }
}

/// Listens on `path` (a socket file left there by a km that is gone is replaced).
pub fn listen(path: &Path) -> Result<UnixListener> {
    let stale = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if stale {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("--mgtpipe: listening on {}", path.display()))
}

/// Serves management requests on `listener` until km ends.
pub fn serve(guest: Arc<Guest>, listener: UnixListener) {
    for conn in listener.incoming().flatten() {
        let (reply, end) = match answer(&guest, &conn) {
            Ok((path, taken)) => (
                format!("ok {}\n", path.display()),
                matches!(taken, Taken::End),
            ),
            Err(e) => (format!("error {e:#}\n"), false),
        };
        let _ = (&conn).write_all(reply.as_bytes());
        if end {
            drop(conn);
            exit_payload(&guest, 0);
        }
    }
}

/// Reads one request from `conn` and serves it; returns the file written.
fn answer(guest: &Guest, conn: &UnixStream) -> Result<(PathBuf, Taken)> {
    let mut line = String::new();
    BufReader::new(conn.take(LINE_MAX))
        .read_line(&mut line)
        .context("reading the request")?;
    let req = Request::decode(&line)?;
    let configured = &guest.config.snapshot_path;
    let path = match &req.dir {
        Some(dir) => dir.join(configured.file_name().context("--snapshot names no file")?),
        None => configured.clone(),
    };
    trace!(Category::Snapshot, "management request: {req:?}");
    let asked = SnapshotRequest {
        label: "km_cli".into(),
        description: String::new(),
        live: req.live,
    };
    let taken = take(guest, None, &asked, &path)
        .map_err(|e| anyhow::anyhow!("km refused the snapshot: {e}"))?;
    Ok((path, taken))
}

/// Asks the km listening on `socket` for the snapshot `req` (km_cli's side);
/// returns the file km wrote.
pub fn ask(socket: &Path, req: &Request) -> Result<PathBuf> {
    let mut conn = UnixStream::connect(socket)
        .with_context(|| format!("connecting to {}", socket.display()))?;
    conn.write_all(req.encode().as_bytes())
        .context("sending the request")?;
    let mut reply = String::new();
    BufReader::new(conn.take(LINE_MAX))
        .read_line(&mut reply)
        .context("reading km's reply")?;
    let reply = reply.trim_end();
    match reply.split_once(' ') {
        Some(("ok", path)) => Ok(path.into()),
        Some(("error", message)) => bail!("{message}"),
        _ if reply.is_empty() => bail!("km closed the connection without a reply"),
        _ => bail!("unexpected reply {reply:.80?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_back() {
        for req in [
            Request {
                live: true,
                dir: None,
            },
            Request {
                live: false,
                dir: Some("/tmp/a dir".into()),
            },
        ] {
            assert_eq!(Request::decode(&req.encode()).unwrap(), req);
        }
        for bad in [
            "snapshot 2 -",
            "snapshot 1",
            "shutdown",
            "snapshot 1 zz",
            "snapshot 1 aé",
        ] {
            assert!(Request::decode(bad).is_err(), "{bad}");
        }
    }
}
