//! `-V[REGEX]` tracing: messages by category, to stderr, a file, or nowhere.
//!
//! The set of enabled categories is decided once at start-up (the regex is matched
//! against each category name), so a disabled trace point costs one atomic load.

use std::io::Write;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use regex::Regex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// VM and vCPU set-up, backend, KVM exits that are not syscalls.
    Kvm,
    /// Memory regions, memslots, brk/mmap decisions.
    Mem,
    /// ELF loading and the initial stack.
    Load,
    /// Every forwarded syscall with its result.
    Hypercall,
    /// Syscalls km does not implement (named once each).
    Unimpl,
    /// Snapshots taken and restored, and what stops one.
    Snapshot,
}

impl Category {
    const ALL: [Category; 6] = [
        Category::Kvm,
        Category::Mem,
        Category::Load,
        Category::Hypercall,
        Category::Unimpl,
        Category::Snapshot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Kvm => "kvm",
            Category::Mem => "mem",
            Category::Load => "load",
            Category::Hypercall => "hypercall",
            Category::Unimpl => "unimpl",
            Category::Snapshot => "snapshot",
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Where trace output goes (`--km-log-to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Stderr,
    File(String),
    Null,
}

impl std::str::FromStr for Sink {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "stderr" => Sink::Stderr,
            "none" => Sink::Null,
            path => Sink::File(path.to_string()),
        })
    }
}

/// Opens the log file `path` for appending: a payload's fork children and
/// execve'd programs are km processes too, and they log into the same file.
fn open_log(path: &str) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log file {path}"))
}

/// Writes `text` to `sink` in one write(2) (the crash report).
pub fn write_to(sink: &Sink, text: &str) -> Result<()> {
    match sink {
        Sink::Stderr => std::io::stderr()
            .lock()
            .write_all(text.as_bytes())
            .context("writing to stderr"),
        Sink::File(path) => open_log(path)?
            .write_all(text.as_bytes())
            .with_context(|| format!("writing to log file {path}")),
        Sink::Null => Ok(()),
    }
}

static ENABLED: AtomicU32 = AtomicU32::new(0);
static OUT: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Enables the categories whose name matches `filter` (all when `None` is given with
/// `verbose`), writing to `sink`.
pub fn init(filter: Option<&str>, sink: &Sink) -> Result<()> {
    let Some(filter) = filter else { return Ok(()) };
    let re = Regex::new(filter).with_context(|| format!("bad -V regex {filter:?}"))?;
    let out: Box<dyn Write + Send> = match sink {
        Sink::Stderr => Box::new(std::io::stderr()),
        Sink::Null => return Ok(()),
        Sink::File(path) => Box::new(open_log(path)?),
    };
    let _ = OUT.set(Mutex::new(out));
    let mask = Category::ALL
        .iter()
        .filter(|c| re.is_match(c.name()))
        .fold(0, |m, c| m | c.bit());
    ENABLED.store(mask, Ordering::Relaxed);
    Ok(())
}

pub fn enabled(cat: Category) -> bool {
    ENABLED.load(Ordering::Relaxed) & cat.bit() != 0
}

pub fn emit(cat: Category, args: std::fmt::Arguments<'_>) {
    if let Some(out) = OUT.get() {
        let line = format!("km [{}] {args}\n", cat.name());
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        // One write(2) per line: km processes sharing the sink never interleave
        // mid-line.
        let _ = out.write_all(line.as_bytes());
    }
}

/// The trace sink's lock, held by a forking thread across the host fork: a
/// thread writing a line at that moment would leave it locked in the child.
pub fn hold_for_fork() -> Option<std::sync::MutexGuard<'static, Box<dyn Write + Send>>> {
    OUT.get()
        .map(|out| out.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Writes one line to stderr with a single write(2), so the lines of concurrent
/// km processes (a payload's fork children share its stderr) never interleave
/// mid-line.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let line = format!("{args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `eprintln_whole!("format", args...)`: `eprintln!` written with one write(2).
#[macro_export]
macro_rules! eprintln_whole {
    ($($arg:tt)*) => {
        $crate::trace::stderr_line(format_args!($($arg)*))
    };
}

/// `trace!(Category::Mem, "format", args...)`: formats only when the category is on.
#[macro_export]
macro_rules! trace {
    ($cat:expr, $($arg:tt)*) => {
        if $crate::trace::enabled($cat) {
            $crate::trace::emit($cat, format_args!($($arg)*));
        }
    };
}
