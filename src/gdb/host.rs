//! What gdb asks about the process and the host rather than the stopped threads:
//! the auxiliary vector (`info auxv`), the executable's path (`qXfer:exec-file`),
//! and read-only host file access (`vFile`: regular files and the
//! payload's own /proc, through the /proc rule), with which a gdb started without
//! the executable fetches it from km.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};

use gdbstub::common::Pid;
use gdbstub::target::TargetResult;
use gdbstub::target::ext::auxv::Auxv;
use gdbstub::target::ext::exec_file::ExecFile;
use gdbstub::target::ext::host_io::{
    HostIo, HostIoClose, HostIoCloseOps, HostIoErrno, HostIoError, HostIoFstat, HostIoFstatOps,
    HostIoOpen, HostIoOpenFlags, HostIoOpenMode, HostIoOpenOps, HostIoPread, HostIoPreadOps,
    HostIoReadlink, HostIoReadlinkOps, HostIoResult, HostIoStat,
};

use super::KmTarget;
use super::relay::{Relay, RelayError};
use crate::syscalls::procrule;

/// Host files gdb opened with `vFile:open`, by the descriptor number gdb was given.
#[derive(Default)]
pub struct HostFiles {
    open: HashMap<u32, File>,
    next: u32,
}

/// Copies the part of `data` at `offset` into `buf`; past the end copies nothing.
pub fn copy_from(data: &[u8], offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let Some(rest) = usize::try_from(offset).ok().and_then(|o| data.get(o..)) else {
        return 0;
    };
    let n = rest.len().min(length).min(buf.len());
    buf[..n].copy_from_slice(&rest[..n]);
    n
}

impl Auxv for KmTarget {
    fn get_auxv(&self, offset: u64, length: usize, buf: &mut [u8]) -> TargetResult<usize, Self> {
        Ok(copy_from(&self.guest.config.auxv, offset, length, buf))
    }
}

impl ExecFile for KmTarget {
    /// The payload's program, or a kept fork child's.
    fn get_exec_file(
        &self,
        pid: Option<Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let relayed = pid
            .and_then(|p| i32::try_from(p.get()).ok())
            .and_then(|p| self.relays.get(&p));
        let path = match relayed {
            Some(relay) => &relay.exe[..],
            None => self.guest.config.exe.as_os_str().as_bytes(),
        };
        Ok(copy_from(path, offset, length, buf))
    }
}

fn errno<E>(e: HostIoErrno) -> HostIoError<E> {
    HostIoError::Errno(e)
}

/// Host I/O is read-only: gdb may fetch regular files (the executable) and the
/// payload's `/proc` entries, never km's memory or special files, and change
/// nothing on the host.
impl HostIo for KmTarget {
    fn support_open(&mut self) -> Option<HostIoOpenOps<'_, Self>> {
        Some(self)
    }

    fn support_close(&mut self) -> Option<HostIoCloseOps<'_, Self>> {
        Some(self)
    }

    fn support_pread(&mut self) -> Option<HostIoPreadOps<'_, Self>> {
        Some(self)
    }

    fn support_fstat(&mut self) -> Option<HostIoFstatOps<'_, Self>> {
        Some(self)
    }

    fn support_readlink(&mut self) -> Option<HostIoReadlinkOps<'_, Self>> {
        Some(self)
    }
}

impl HostIoOpen for KmTarget {
    fn open(
        &mut self,
        filename: &[u8],
        flags: HostIoOpenFlags,
        _mode: HostIoOpenMode,
    ) -> HostIoResult<u32, Self> {
        let writes = HostIoOpenFlags::O_WRONLY
            | HostIoOpenFlags::O_RDWR
            | HostIoOpenFlags::O_APPEND
            | HostIoOpenFlags::O_CREAT
            | HostIoOpenFlags::O_TRUNC;
        if flags.intersects(writes) {
            return Err(errno(HostIoErrno::EACCES));
        }
        let file = match self.relay_of_proc_path(filename) {
            Some(relay) => File::from(relay.open_file(filename).map_err(|e| match e {
                RelayError::Errno(n) => std::io::Error::from_raw_os_error(n.into()),
                RelayError::Lost(e) => e,
            })?),
            None => File::from(
                procrule::open_for_debugger(&self.guest, filename).map_err(std::io::Error::from)?,
            ),
        };
        let files = &mut self.files;
        let fd = files.next;
        files.next += 1;
        files.open.insert(fd, file);
        Ok(fd)
    }
}

impl KmTarget {
    /// The relay to the kept fork child whose /proc directory `path` is in.
    fn relay_of_proc_path(&mut self, path: &[u8]) -> Option<&mut Relay> {
        let rest = path.strip_prefix(b"/proc/")?;
        let digits = rest.split(|&b| b == b'/').next()?;
        let pid: i32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        self.relays.get_mut(&pid)
    }
}

impl HostIoClose for KmTarget {
    fn close(&mut self, fd: u32) -> HostIoResult<(), Self> {
        self.files
            .open
            .remove(&fd)
            .map(drop)
            .ok_or(errno(HostIoErrno::EBADF))
    }
}

impl HostIoPread for KmTarget {
    fn pread(
        &mut self,
        fd: u32,
        count: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> HostIoResult<usize, Self> {
        let file = self.files.open.get(&fd).ok_or(errno(HostIoErrno::EBADF))?;
        let n = count.min(buf.len());
        Ok(file.read_at(&mut buf[..n], offset)?)
    }
}

impl HostIoFstat for KmTarget {
    fn fstat(&mut self, fd: u32) -> HostIoResult<HostIoStat, Self> {
        let file = self.files.open.get(&fd).ok_or(errno(HostIoErrno::EBADF))?;
        let m = file.metadata()?;
        // The protocol's fields are 32 bits wide where Linux's are wider.
        Ok(HostIoStat {
            st_dev: m.dev() as u32,
            st_ino: m.ino() as u32,
            st_mode: HostIoOpenMode::from_bits_truncate(m.mode()),
            st_nlink: m.nlink() as u32,
            st_uid: m.uid(),
            st_gid: m.gid(),
            st_rdev: m.rdev() as u32,
            st_size: m.size(),
            st_blksize: m.blksize(),
            st_blocks: m.blocks(),
            st_atime: m.atime() as u32,
            st_mtime: m.mtime() as u32,
            st_ctime: m.ctime() as u32,
        })
    }
}

impl HostIoReadlink for KmTarget {
    fn readlink(&mut self, filename: &[u8], buf: &mut [u8]) -> HostIoResult<usize, Self> {
        let target =
            procrule::readlink_for_debugger(&self.guest, filename).map_err(std::io::Error::from)?;
        let bytes = &target[..];
        if bytes.len() > buf.len() {
            return Err(errno(HostIoErrno::ENAMETOOLONG));
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(bytes.len())
    }
}
