//! What a program name means, the way execve reads it: an ELF executable (with the
//! dynamic linker it names) or a `#!` script whose interpreter is resolved in turn;
//! and how a payload's execve replaces it.
//!
//! A payload's execve re-executes km itself (`/proc/self/exe`) on the new program,
//! once the program is known to be loadable: the process keeps its pid, parent,
//! process group, cwd and limits, and the new km starts from a clean VM. What Linux
//! carries across execve is handed over the way Linux would hand it to km itself:
//! descriptors without FD_CLOEXEC at their guest numbers (km adopts its inherited
//! descriptors at start-up), the signal mask as km's mask, ignored signals as
//! ignored; km's own options are repeated on the new command line.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::io::Errno;

use crate::loader;

/// Linux's BINPRM_BUF_SIZE: how much of a `#!` line counts.
const SHEBANG_MAX: usize = 256;
/// Scripts may name scripts this many levels deep (Linux's limit), then ELOOP.
const MAX_DEPTH: usize = 5;

/// A resolved program: the ELF file to load and the arguments it gets.
pub struct Program {
    /// The ELF file (the interpreter of a script).
    pub path: OsString,
    pub argv: Vec<CString>,
    pub data: Vec<u8>,
    /// The dynamic linker's path and bytes, when the program names one.
    pub interp: Option<(String, Vec<u8>)>,
}

/// Why a program cannot be run: the errno execve returns, and a message for km.
#[derive(Debug)]
pub struct Error {
    pub errno: Errno,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

fn error(errno: Errno, message: impl Into<String>) -> Error {
    Error {
        errno,
        message: message.into(),
    }
}

fn io_error(e: std::io::Error) -> Error {
    let errno = Errno::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO));
    error(errno, e.to_string())
}

/// Resolves `path` run with `argv` as execve does.
pub fn resolve(path: &OsStr, argv: Vec<CString>) -> Result<Program, Error> {
    resolve_at(path, argv, 0)
}

fn resolve_at(path: &OsStr, argv: Vec<CString>, depth: usize) -> Result<Program, Error> {
    if depth >= MAX_DEPTH {
        return Err(error(Errno::LOOP, "too many levels of #! interpreters"));
    }
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        return Err(error(Errno::ACCESS, "not a regular file"));
    }
    let executable = meta.permissions().mode() & 0o111 != 0
        && rustix::fs::access(path, rustix::fs::Access::EXEC_OK).is_ok();
    if !executable {
        return Err(error(Errno::ACCESS, "permission denied (not executable)"));
    }
    let data = std::fs::read(path).map_err(io_error)?;
    if let Some(line) = data.strip_prefix(b"#!") {
        let (interp, arg) = shebang(line)?;
        let mut args = vec![interp.clone()];
        args.extend(arg);
        args.push(CString::new(path.as_bytes()).map_err(|_| error(Errno::INVAL, "NUL in path"))?);
        args.extend(argv.into_iter().skip(1));
        let interp = OsStr::from_bytes(interp.as_bytes()).to_owned();
        return resolve_at(&interp, args, depth + 1).map_err(|e| Error {
            message: format!("interpreter {}: {}", interp.to_string_lossy(), e.message),
            ..e
        });
    }
    let interp = loader::interp_of(&data).map_err(|e| error(Errno::NOEXEC, format!("{e:#}")))?;
    let interp = match interp {
        Some(name) => {
            let bytes = loader::read_interp(&name).map_err(|e| {
                let errno = if Path::new(&name).exists() {
                    Errno::NOEXEC
                } else {
                    Errno::NOENT
                };
                error(errno, format!("{e:#}"))
            })?;
            Some((name, bytes))
        }
        None => None,
    };
    Ok(Program {
        path: path.to_owned(),
        argv,
        data,
        interp,
    })
}

/// The interpreter and optional argument of a `#!` line (after the `#!`), split as
/// Linux does: leading blanks skipped, the name ends at a blank, the rest (trimmed)
/// is one argument.
fn shebang(line: &[u8]) -> Result<(CString, Option<CString>), Error> {
    let line = &line[..line.len().min(SHEBANG_MAX - 2)];
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let text = line[..end].trim_ascii();
    let name_end = text.iter().position(blank).unwrap_or(text.len());
    let (name, rest) = text.split_at(name_end);
    if name.is_empty() {
        return Err(error(Errno::NOEXEC, "empty #! line"));
    }
    let rest = rest.trim_ascii();
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| error(Errno::NOEXEC, "NUL in #! line"));
    Ok((
        cstr(name)?,
        (!rest.is_empty()).then(|| cstr(rest)).transpose()?,
    ))
}

/// How long other threads get to stop before an execve goes ahead without them.
const STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Replaces the payload by `program` (already resolved, so known to be loadable)
/// with environment `envp`, by re-executing km. Returns only when the host execve
/// fails, after other threads have stopped for good: the caller ends the payload.
pub fn replace(
    guest: &crate::process::Guest,
    thread: &crate::process::Thread,
    program: &Program,
    envp: &[CString],
) -> Errno {
    use crate::memory::host;
    use crate::process::lock;

    if guest.debugger.as_ref().is_some_and(|d| d.attached()) {
        eprintln!(
            "km: {}: execve of {}: the gdb session ends here (km's stub does not follow exec)",
            guest.config.name,
            program.path.to_string_lossy()
        );
    }
    // Linux's de_thread: every other thread is gone before the new program starts.
    guest.stop_others(STOP_TIMEOUT);
    let kept = lock(&guest.fds).inherited_by_exec();
    // Move each descriptor to a temporary number above every target first, so that
    // placing one at its guest number never closes another still to be placed.
    let above = kept.iter().map(|(n, _)| *n).max().unwrap_or(2) + 1;
    let mut temps = Vec::with_capacity(kept.len());
    for (n, fd) in &kept {
        match rustix::io::fcntl_dupfd_cloexec(fd, above) {
            Ok(t) => temps.push((*n, t)),
            Err(e) => return e,
        }
    }
    for (n, t) in &temps {
        if let Err(e) = host::place_fd(std::os::fd::AsFd::as_fd(t), *n) {
            return e;
        }
    }
    for n in 0..=2 {
        if !kept.iter().any(|(k, _)| *k == n) {
            host::close_on_exec(n);
        }
    }
    let ignored = lock(&guest.signals)
        .actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.handler == libc::SIG_IGN as u64)
        .fold(0u64, |m, (i, _)| m | 1 << i);
    crate::vcpu::kick::prepare_exec(thread.sigmask, ignored);
    // The new km gets km's /dev/kvm descriptor at a number above every guest one.
    let kvm = match rustix::io::fcntl_dupfd_cloexec(guest.vm.kvm_fd(), above)
        .and_then(|fd| rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).map(|_| fd))
    {
        Ok(fd) => fd,
        Err(e) => return e,
    };

    let mut args: Vec<CString> = vec![c"km".into()];
    for opt in &guest.config.exec_options {
        args.push(CString::new(opt.as_bytes()).expect("km options have no NUL"));
    }
    let kvm_fd = format!("--kvm-fd={}", std::os::fd::AsRawFd::as_raw_fd(&kvm));
    args.push(CString::new(kvm_fd).expect("a number has no NUL"));
    // One argument with `=`: an argv[0] may start with '-' (a login shell's does).
    let mut argv0 = b"--argv0=".to_vec();
    argv0.extend_from_slice(program.argv.first().map_or(&b""[..], |a| a.as_bytes()));
    args.push(CString::new(argv0).expect("argv strings have no NUL"));
    args.push(c"--".into());
    args.push(CString::new(program.path.as_bytes()).expect("resolved paths have no NUL"));
    args.extend(program.argv.iter().skip(1).cloned());
    host::execve(c"/proc/self/exe", &args, envp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_split_as_linux_does() {
        let (name, arg) = shebang(b" /bin/sh  -e -x \nrest").unwrap();
        assert_eq!(name.as_bytes(), b"/bin/sh");
        assert_eq!(arg.unwrap().as_bytes(), b"-e -x");
        let (name, arg) = shebang(b"/usr/bin/env\n").unwrap();
        assert_eq!(name.as_bytes(), b"/usr/bin/env");
        assert!(arg.is_none());
        assert_eq!(shebang(b"  \n").unwrap_err().errno, Errno::NOEXEC);
    }
}
