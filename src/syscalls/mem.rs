//! Memory syscalls: brk, mmap and friends, on top of the address-space model.

use std::ops::Range;

use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::{Ctx, SysResult};
use crate::guest::mm::TASK_SIZE;
use crate::guest::mm::{MapRequest, VmaKind};
use crate::guest::vm::MMAP_MIN_ADDR;
use crate::kernel::lock;
use crate::memory::{PAGE_SIZE, page_align_up};

const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;
/// Bytes copied per step when mremap moves a mapping.
const COPY_CHUNK: u64 = 1 << 20;

/// The page range `[addr, addr + len)` of a munmap/mprotect-style call.
fn page_range(addr: u64, len: u64) -> Result<Range<u64>, Errno> {
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::INVAL);
    }
    let end = addr.checked_add(page_align_up(len)).ok_or(Errno::INVAL)?;
    if page_align_up(len) < len {
        return Err(Errno::INVAL);
    }
    Ok(addr..end)
}

/// The name of the file behind a host descriptor (for core files).
fn file_name(fd: std::os::fd::BorrowedFd<'_>) -> std::sync::Arc<str> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_or_else(|_| "".into(), |p| p.to_string_lossy().into())
}

pub fn brk(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    Ok(lock(&ctx.guest.mm).brk(&ctx.guest.vm, a[0]))
}

/// A file mapping needs a descriptor open for reading, and for writing as well
/// when it is shared and writable (not append-only): EACCES otherwise, as on Linux.
fn check_file_access(file: BorrowedFd<'_>, shared_write: bool) -> Result<(), Errno> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    if flags.contains(OFlags::PATH) {
        return Err(Errno::BADF);
    }
    let access = flags & OFlags::ACCMODE;
    if access == OFlags::WRONLY
        || shared_write && (access != OFlags::RDWR || flags.contains(OFlags::APPEND))
    {
        return Err(Errno::ACCESS);
    }
    Ok(())
}

pub fn mmap(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (hint, len, prot, flags, fd, offset) =
        (a[0], a[1], a[2] as i32, a[3] as i32, a[4] as i32, a[5]);
    if len == 0 || offset % PAGE_SIZE != 0 || page_align_up(len) < len {
        return Err(Errno::INVAL);
    }
    let shared = match flags & libc::MAP_SHARED_VALIDATE {
        libc::MAP_SHARED | libc::MAP_SHARED_VALIDATE => true,
        libc::MAP_PRIVATE => false,
        _ => return Err(Errno::INVAL),
    };
    let fixed = flags & libc::MAP_FIXED != 0;
    let noreplace = flags & libc::MAP_FIXED_NOREPLACE != 0;
    if (fixed || noreplace) && hint % PAGE_SIZE != 0 {
        return Err(Errno::INVAL);
    }
    // Below vm.mmap_min_addr Linux refuses callers without CAP_SYS_RAWIO, which a
    // payload never has.
    if (fixed || noreplace) && hint < MMAP_MIN_ADDR {
        return Err(Errno::PERM);
    }
    let file = if flags & libc::MAP_ANONYMOUS != 0 {
        None
    } else {
        let file = ctx.fd(fd as u64)?;
        check_file_access(file.as_fd(), shared && prot & libc::PROT_WRITE != 0)?;
        Some(file)
    };
    let req = MapRequest {
        hint: if fixed || noreplace {
            hint
        } else {
            page_align_up(hint)
        },
        len,
        prot,
        fixed,
        noreplace,
        shared,
        noreserve: flags & libc::MAP_NORESERVE != 0,
        file: file.as_ref().map(|f| (f.as_fd(), offset)),
        path: file.as_ref().map(|f| file_name(f.as_fd())),
    };
    lock(&ctx.guest.mm).mmap(&ctx.guest.vm, &req)
}

pub fn munmap(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    if a[1] == 0 {
        return Err(Errno::INVAL);
    }
    let range = page_range(a[0], a[1])?;
    lock(&ctx.guest.mm).munmap(&ctx.guest.vm, range)?;
    Ok(0)
}

pub fn mprotect(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let range = page_range(a[0], a[1])?;
    if range.is_empty() {
        return Ok(0);
    }
    lock(&ctx.guest.mm).mprotect(&ctx.guest.vm, range, a[2] as i32)?;
    Ok(0)
}

pub fn mremap(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let (old, old_len, new_len, flags, new_addr) =
        (a[0], page_align_up(a[1]), page_align_up(a[2]), a[3], a[4]);
    if old % PAGE_SIZE != 0 || new_len == 0 || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED) != 0 {
        return Err(Errno::INVAL);
    }
    if old_len > TASK_SIZE || new_len > TASK_SIZE {
        return Err(Errno::INVAL);
    }
    if flags & MREMAP_FIXED != 0 && (flags & MREMAP_MAYMOVE == 0 || new_addr % PAGE_SIZE != 0) {
        return Err(Errno::INVAL);
    }
    let vm = &ctx.guest.vm;
    let mut mm = lock(&ctx.guest.mm);
    let (_, vma) = mm.merged_at(old).ok_or(Errno::FAULT)?;
    // A zero old length asks for a duplicate of a shared mapping; Linux refuses it
    // for a private one (it would be a fresh mapping, unrelated to the old).
    if old_len == 0 && !vma.shared {
        return Err(Errno::INVAL);
    }
    let old_end = old
        .checked_add(old_len)
        .filter(|end| *end <= vma.end)
        .ok_or(Errno::FAULT)?;
    if flags & MREMAP_FIXED == 0 {
        if new_len <= old_len {
            mm.munmap(vm, old + new_len..old_end)?;
            return Ok(old);
        }
        let new_end = old.checked_add(new_len).ok_or(Errno::NOMEM)?;
        let tail = old_end..new_end;
        if mm.is_free(&tail) && mm.extend(vm, tail, vma.clone()).is_ok() {
            return Ok(old);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::NOMEM);
        }
    }
    if vma.kind == VmaKind::File {
        // Moving a file mapping needs its file and offset, which are not kept yet.
        return Err(Errno::NOMEM);
    }
    let fixed = flags & MREMAP_FIXED != 0;
    let req = MapRequest {
        hint: if fixed { new_addr } else { 0 },
        len: new_len,
        prot: vma.prot,
        fixed,
        noreplace: false,
        shared: vma.shared,
        noreserve: false,
        file: None,
        path: None,
    };
    let new = mm.mmap(vm, &req)?;
    let keep = old_len.min(new_len);
    let mut done = 0;
    while done < keep {
        let n = COPY_CHUNK.min(keep - done) as usize;
        let mut buf = vec![0u8; n];
        vm.mem.read_bytes(old + done, &mut buf)?;
        vm.mem.write_bytes(new + done, &buf)?;
        done += n as u64;
    }
    mm.munmap(vm, old..old_end)?;
    Ok(new)
}

/// msync: shared file mappings are written back by the host; the rest has
/// nothing to write. Unmapped pages give ENOMEM, as on Linux.
pub fn msync(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let flags = a[2] as i32;
    let known = libc::MS_ASYNC | libc::MS_SYNC | libc::MS_INVALIDATE;
    if flags & !known != 0 || flags & libc::MS_ASYNC != 0 && flags & libc::MS_SYNC != 0 {
        return Err(Errno::INVAL);
    }
    let range = page_range(a[0], a[1])?;
    let mm = lock(&ctx.guest.mm);
    if !mm.is_mapped(&range) {
        return Err(Errno::NOMEM);
    }
    let shared: Vec<Range<u64>> = mm
        .vmas()
        .filter(|(start, v)| {
            v.shared && v.file.is_some() && *start < range.end && v.end > range.start
        })
        .map(|(start, v)| start.max(range.start)..v.end.min(range.end))
        .collect();
    drop(mm);
    for r in shared {
        ctx.guest
            .vm
            .mem
            .sync_to_file(r, flags & !libc::MS_INVALIDATE)
            .map_err(|_| Errno::IO)?;
    }
    Ok(0)
}

/// mlock and munlock (and their variants): guest memory stays where it is; only
/// the range is checked (ENOMEM if unmapped).
pub fn mlock(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let start = a[0] & !(PAGE_SIZE - 1);
    // As Linux: the length from the page start, page-aligned, wraps (to nothing).
    let len = page_align_up(a[1].wrapping_add(a[0] - start));
    let range = page_range(start, len)?;
    if !lock(&ctx.guest.mm).is_mapped(&range) {
        return Err(Errno::NOMEM);
    }
    Ok(0)
}

pub fn mlockall(_: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let known = (libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) as u64;
    if a[0] == 0 || a[0] & !known != 0 {
        return Err(Errno::INVAL);
    }
    Ok(0)
}

pub fn munlockall(_: &mut Ctx<'_>, _: &[u64; 6]) -> SysResult {
    Ok(0)
}

/// mincore: every mapped page counts as resident (km's guest memory is ordinary
/// host memory); unmapped pages give ENOMEM.
pub fn mincore(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let range = page_range(a[0], a[1])?;
    if !lock(&ctx.guest.mm).is_mapped(&range) {
        return Err(Errno::NOMEM);
    }
    let pages = ((range.end - range.start) / PAGE_SIZE) as usize;
    ctx.writable(a[2], pages)?;
    ctx.write_bytes(a[2], &vec![1u8; pages])?;
    Ok(0)
}

pub fn madvise(ctx: &mut Ctx<'_>, a: &[u64; 6]) -> SysResult {
    let range = page_range(a[0], a[1])?;
    if a[2] as i32 == libc::MADV_DONTNEED {
        lock(&ctx.guest.mm).discard_anon(&ctx.guest.vm, range)?;
    }
    Ok(0)
}
