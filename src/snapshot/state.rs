//! km's own note in a snapshot (name `KMSNAP`): what a core file does not say and
//! a restore needs, one fact per line (`key field...`), strings in hex. Every line
//! of a snapshot is checked on reading: a damaged note is refused, never guessed.

use anyhow::{Context, Result, bail};

use crate::guest::mm::VmaKind;
use crate::kernel::signals::{SigInfo, signo};

pub const NOTE_NAME: &str = "KMSNAP";
pub const NOTE_TYPE: u32 = 1;
const VERSION: &str = "km-snapshot-1";

/// What km knows of one mapping beyond its PT_LOAD (same order as the loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub kind: VmaKind,
    pub shared: bool,
    /// The file the payload mapped there and the offset of the mapping's start.
    pub file: Option<(String, u64)>,
}

/// What km knows of one thread beyond its NT_PRSTATUS (same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thread {
    /// The process's first thread (its tid was the pid).
    pub main: bool,
    pub altstack: (u64, u64),
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
}

/// A descriptor as a restore reopens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Descriptor {
    /// 0, 1 or 2: the restoring km's own.
    Stdio,
    /// A file reopened by path with its status flags, at its offset (directories,
    /// devices and ttys have none).
    Path {
        path: String,
        flags: i32,
        offset: Option<u64>,
    },
    /// A listening socket bound anew to its address.
    Listener {
        domain: i32,
        kind: i32,
        protocol: i32,
        address: Vec<u8>,
        backlog: i32,
        flags: i32,
    },
    /// An unconnected datagram socket bound anew to its address.
    Datagram {
        domain: i32,
        kind: i32,
        protocol: i32,
        address: Vec<u8>,
        flags: i32,
    },
    /// A connected socket: its next use fails with ECONNRESET.
    Reset { domain: i32, kind: i32 },
    /// An eventfd with its counter.
    Eventfd { count: u64, flags: i32 },
    /// One end of a pipe whose both ends the payload holds (`id` tells the
    /// pipes apart), empty when the snapshot was taken.
    Pipe { id: u64, write: bool, flags: i32 },
}

/// A guest descriptor and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fd {
    pub number: i32,
    pub cloexec: bool,
    pub what: Descriptor,
}

/// An epoll descriptor's interest list, over descriptors restored before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpollEntry {
    pub epoll: i32,
    pub target: i32,
    pub events: u32,
    pub data: u64,
}

/// The payload state a snapshot adds to its core notes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub label: String,
    pub description: String,
    /// The payload as named on km's command line, its absolute path, its argv and
    /// environment (NUL-terminated strings).
    pub name: String,
    pub exe: String,
    pub argv: Vec<String>,
    pub environ: Vec<u8>,
    pub cwd: String,
    /// The image region's base and the program break's start and end.
    pub image_base: u64,
    pub brk_start: u64,
    pub brk: u64,
    pub vvar: Option<u64>,
    /// The guest's own resource limits, as `--guest-limits` gives them.
    pub guest_limits: String,
    /// The 64 signal dispositions (handler, flags, restorer, mask).
    pub actions: Vec<[u64; 4]>,
    pub mappings: Vec<Mapping>,
    pub threads: Vec<Thread>,
    pub fds: Vec<Fd>,
    pub epoll: Vec<EpollEntry>,
    /// Armed interval timers: ITIMER_REAL, _VIRTUAL or _PROF and its struct
    /// itimerval (interval, then value, seconds and microseconds).
    pub itimers: Vec<(i32, [u64; 4])>,
    /// Pending signals: the thread (index in `threads`) or the process (`None`)
    /// they are pending for, and their siginfo.
    pub pending: Vec<(Option<usize>, SigInfo)>,
}

/// `bytes` in hex, `-` when empty.
pub fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes [`hex`] wrote.
pub fn unhex(s: &str) -> Result<Vec<u8>> {
    if s == "-" {
        return Ok(Vec::new());
    }
    if !s.len().is_multiple_of(2) {
        bail!("odd hex string");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            let pair = s.get(i..i + 2).context("bad hex string")?;
            u8::from_str_radix(pair, 16).context("bad hex string")
        })
        .collect()
}

fn text(s: &str) -> Result<String> {
    String::from_utf8(unhex(s)?).context("not UTF-8")
}

fn kind_name(kind: VmaKind) -> &'static str {
    match kind {
        VmaKind::Image => "image",
        VmaKind::Heap => "heap",
        VmaKind::Stack => "stack",
        VmaKind::Anon => "anon",
        VmaKind::File => "file",
        VmaKind::Vdso => "vdso",
        VmaKind::SysvShm => "sysvshm",
    }
}

fn kind_of(name: &str) -> Result<VmaKind> {
    Ok(match name {
        "image" => VmaKind::Image,
        "heap" => VmaKind::Heap,
        "stack" => VmaKind::Stack,
        "anon" => VmaKind::Anon,
        "file" => VmaKind::File,
        "vdso" => VmaKind::Vdso,
        _ => bail!("unknown mapping kind {name:?}"),
    })
}

fn descriptor_line(fd: &Fd) -> String {
    let head = format!("fd {} {}", fd.number, u8::from(fd.cloexec));
    match &fd.what {
        Descriptor::Stdio => format!("{head} stdio"),
        Descriptor::Path {
            path,
            flags,
            offset,
        } => {
            let offset = offset.map_or("-".into(), |o| o.to_string());
            format!("{head} path {} {flags} {offset}", hex(path.as_bytes()))
        }
        Descriptor::Listener {
            domain,
            kind,
            protocol,
            address,
            backlog,
            flags,
        } => format!(
            "{head} listen {domain} {kind} {protocol} {} {backlog} {flags}",
            hex(address)
        ),
        Descriptor::Datagram {
            domain,
            kind,
            protocol,
            address,
            flags,
        } => format!(
            "{head} dgram {domain} {kind} {protocol} {} {flags}",
            hex(address)
        ),
        Descriptor::Reset { domain, kind } => format!("{head} reset {domain} {kind}"),
        Descriptor::Eventfd { count, flags } => format!("{head} eventfd {count} {flags}"),
        Descriptor::Pipe { id, write, flags } => {
            format!("{head} pipe {id} {} {flags}", u8::from(*write))
        }
    }
}

impl State {
    /// The note's contents.
    pub fn encode(&self) -> Vec<u8> {
        let mut lines = vec![
            VERSION.to_string(),
            format!("label {}", hex(self.label.as_bytes())),
            format!("description {}", hex(self.description.as_bytes())),
            format!("name {}", hex(self.name.as_bytes())),
            format!("exe {}", hex(self.exe.as_bytes())),
            format!("environ {}", hex(&self.environ)),
            format!("cwd {}", hex(self.cwd.as_bytes())),
            format!("image {} {} {}", self.image_base, self.brk_start, self.brk),
            format!("limits {}", hex(self.guest_limits.as_bytes())),
        ];
        lines.extend(
            self.argv
                .iter()
                .map(|a| format!("arg {}", hex(a.as_bytes()))),
        );
        lines.extend(self.vvar.map(|v| format!("vvar {v}")));
        lines.extend(self.actions.iter().map(|a| {
            let [handler, flags, restorer, mask] = a;
            format!("action {handler} {flags} {restorer} {mask}")
        }));
        lines.extend(self.mappings.iter().map(|m| {
            let (file, offset) = m
                .file
                .as_ref()
                .map_or(("-".into(), 0), |(p, o)| (hex(p.as_bytes()), *o));
            format!(
                "mapping {} {} {file} {offset}",
                kind_name(m.kind),
                u8::from(m.shared)
            )
        }));
        lines.extend(self.threads.iter().map(|t| {
            format!(
                "thread {} {} {} {} {} {}",
                u8::from(t.main),
                t.altstack.0,
                t.altstack.1,
                t.clear_child_tid,
                t.robust_list.0,
                t.robust_list.1
            )
        }));
        lines.extend(self.fds.iter().map(descriptor_line));
        lines.extend(
            self.epoll
                .iter()
                .map(|e| format!("epoll {} {} {} {}", e.epoll, e.target, e.events, e.data)),
        );
        lines.extend(
            self.itimers
                .iter()
                .map(|(which, [a, b, c, d])| format!("itimer {which} {a} {b} {c} {d}")),
        );
        lines.extend(self.pending.iter().map(|(thread, info)| {
            let thread = thread.map_or("-".into(), |t| t.to_string());
            format!("pending {thread} {}", hex(info))
        }));
        let mut out = lines.join("\n");
        out.push('\n');
        out.into_bytes()
    }

    /// Parses a note written by [`State::encode`].
    pub fn decode(note: &[u8]) -> Result<State> {
        let text = std::str::from_utf8(note).context("km's note is not text")?;
        let mut lines = text.lines();
        if lines.next() != Some(VERSION) {
            bail!("km's note is not a {VERSION} note");
        }
        let mut state = State::default();
        for (n, line) in lines.enumerate() {
            state
                .line(line)
                .with_context(|| format!("km's note, line {}: {line:.80}", n + 2))?;
        }
        if let Some((Some(t), _)) = state
            .pending
            .iter()
            .find(|(t, _)| t.is_some_and(|t| t >= state.threads.len()))
        {
            bail!("km's note has a signal pending for thread {t}, which it does not list");
        }
        if state.actions.len() != 64 {
            bail!(
                "km's note has {} signal actions, not 64",
                state.actions.len()
            );
        }
        Ok(state)
    }

    fn line(&mut self, line: &str) -> Result<()> {
        let f: Vec<&str> = line.split(' ').collect();
        let num = |i: usize| -> Result<u64> { number(&f, i) };
        let int = |i: usize| -> Result<i32> { number(&f, i) };
        let field = |i: usize| -> Result<&str> { f.get(i).copied().context("missing field") };
        match f[0] {
            "label" => self.label = text(field(1)?)?,
            "description" => self.description = text(field(1)?)?,
            "name" => self.name = text(field(1)?)?,
            "exe" => self.exe = text(field(1)?)?,
            "environ" => self.environ = unhex(field(1)?)?,
            "cwd" => self.cwd = text(field(1)?)?,
            "image" => (self.image_base, self.brk_start, self.brk) = (num(1)?, num(2)?, num(3)?),
            "limits" => self.guest_limits = text(field(1)?)?,
            "arg" => self.argv.push(text(field(1)?)?),
            "vvar" => self.vvar = Some(num(1)?),
            "action" => self.actions.push([num(1)?, num(2)?, num(3)?, num(4)?]),
            "mapping" => self.mappings.push(Mapping {
                kind: kind_of(field(1)?)?,
                shared: num(2)? != 0,
                file: match field(3)? {
                    "-" => None,
                    p => Some((text(p)?, num(4)?)),
                },
            }),
            "thread" => self.threads.push(Thread {
                main: num(1)? != 0,
                altstack: (num(2)?, num(3)?),
                clear_child_tid: num(4)?,
                robust_list: (num(5)?, num(6)?),
            }),
            "fd" => self.fds.push(Fd {
                number: int(1)?,
                cloexec: num(2)? != 0,
                what: descriptor(&f[3..])?,
            }),
            "epoll" => self.epoll.push(EpollEntry {
                epoll: int(1)?,
                target: int(2)?,
                events: num(3)?.try_into().context("bad events")?,
                data: num(4)?,
            }),
            "itimer" => {
                let which = int(1)?;
                if !(0..=2).contains(&which) {
                    bail!("no interval timer {which}");
                }
                self.itimers
                    .push((which, [num(2)?, num(3)?, num(4)?, num(5)?]));
            }
            "pending" => {
                let thread = match field(1)? {
                    "-" => None,
                    t => Some(t.parse().context("bad thread index")?),
                };
                let info: SigInfo = unhex(field(2)?)?
                    .try_into()
                    .ok()
                    .context("a siginfo that is not 128 bytes")?;
                if !(1..=64).contains(&signo(&info)) {
                    bail!("a pending signal numbered {}", signo(&info));
                }
                self.pending.push((thread, info));
            }
            other => bail!("unknown key {other:?}"),
        }
        Ok(())
    }
}

/// Field `i` of a note line, as a number.
fn number<T: std::str::FromStr>(f: &[&str], i: usize) -> Result<T> {
    f.get(i)
        .context("missing field")?
        .parse()
        .ok()
        .context("bad number")
}

/// A descriptor's fields after `fd N CLOEXEC`.
fn descriptor(f: &[&str]) -> Result<Descriptor> {
    let int = |i: usize| -> Result<i32> { number(f, i) };
    let field = |i: usize| -> Result<&str> { f.get(i).copied().context("missing field") };
    Ok(match field(0)? {
        "stdio" => Descriptor::Stdio,
        "path" => Descriptor::Path {
            path: text(field(1)?)?,
            flags: int(2)?,
            offset: match field(3)? {
                "-" => None,
                o => Some(o.parse().context("bad offset")?),
            },
        },
        "listen" => Descriptor::Listener {
            domain: int(1)?,
            kind: int(2)?,
            protocol: int(3)?,
            address: unhex(field(4)?)?,
            backlog: int(5)?,
            flags: int(6)?,
        },
        "dgram" => Descriptor::Datagram {
            domain: int(1)?,
            kind: int(2)?,
            protocol: int(3)?,
            address: unhex(field(4)?)?,
            flags: int(5)?,
        },
        "reset" => Descriptor::Reset {
            domain: int(1)?,
            kind: int(2)?,
        },
        "eventfd" => Descriptor::Eventfd {
            count: field(1)?.parse().context("bad count")?,
            flags: int(2)?,
        },
        "pipe" => Descriptor::Pipe {
            id: field(1)?.parse().context("bad pipe id")?,
            write: int(2)? != 0,
            flags: int(3)?,
        },
        other => bail!("unknown descriptor kind {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signals::info;

    #[test]
    fn a_state_reads_back() {
        let state = State {
            label: "warm".into(),
            name: "./prog".into(),
            exe: "/bin/prog".into(),
            argv: vec!["prog".into(), "a b".into()],
            environ: b"A=1\0".to_vec(),
            cwd: "/tmp".into(),
            image_base: 0x400000,
            brk_start: 0x600000,
            brk: 0x601000,
            vvar: Some(0x7000),
            guest_limits: "1:2:3:4:5:6".into(),
            actions: vec![[1, 2, 3, 4]; 64],
            mappings: vec![Mapping {
                kind: VmaKind::File,
                shared: false,
                file: Some(("/lib/x.so".into(), 4096)),
            }],
            threads: vec![Thread {
                main: true,
                altstack: (1, 2),
                clear_child_tid: 3,
                robust_list: (4, 5),
            }],
            fds: vec![Fd {
                number: 3,
                cloexec: true,
                what: Descriptor::Path {
                    path: "/etc/hosts".into(),
                    flags: 2,
                    offset: Some(7),
                },
            }],
            itimers: vec![(0, [0, 0, 1, 500_000])],
            pending: vec![(None, info(10, 0)), (Some(0), info(12, -6))],
            ..State::default()
        };
        assert_eq!(State::decode(&state.encode()).unwrap(), state);
    }

    #[test]
    fn a_damaged_note_is_refused() {
        let state = State {
            actions: vec![[0; 4]; 64],
            ..State::default()
        };
        let good = String::from_utf8(state.encode()).unwrap();
        for bad in [
            good.replace("image 0 0 0", "image 0 x 0"),
            good.replace(VERSION, "km-snapshot-0"),
            good.replacen("action 0 0 0 0\n", "", 1),
            good.replace("cwd -", "cwd 4"),
            good.replace("cwd -", "cwd é1"),
            format!("{good}mystery 1\n"),
            format!("{good}itimer 3 0 0 1 0\n"),
            format!("{good}pending - {}\n", hex(&[0; 128])),
            format!("{good}pending - {}\n", hex(&[65; 128])),
            format!("{good}pending - 0a\n"),
            format!("{good}pending 0 {}\n", hex(&info(10, 0))),
        ] {
            assert!(State::decode(bad.as_bytes()).is_err(), "{bad:.60}");
        }
    }
}
