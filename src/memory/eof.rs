//! Guest pages whose host backing is a file page past the end of its file: an
//! access to one raises SIGBUS on the host (and makes KVM_RUN fail with EFAULT
//! when the payload touches it).

use std::ops::Range;

use super::{GuestMemory, PAGE_SIZE, page_align_up};

/// One file-backed host mapping from /proc/self/maps: its range and file offset.
struct FileMapping {
    range: Range<u64>,
    offset: u64,
    /// Its name in /proc/self/map_files (the range as maps spells it).
    name: String,
}

fn parse(line: &str) -> Option<FileMapping> {
    let mut fields = line.split_whitespace();
    let name = fields.next()?;
    let (start, end) = name.split_once('-')?;
    let offset = u64::from_str_radix(fields.nth(1)?, 16).ok()?;
    let inode = fields.nth(1)?;
    (inode != "0").then_some(())?;
    Some(FileMapping {
        range: u64::from_str_radix(start, 16).ok()?..u64::from_str_radix(end, 16).ok()?,
        offset,
        name: name.to_string(),
    })
}

/// The part of `m` past the end of its file (host addresses), if any.
fn past_eof(m: &FileMapping) -> Option<Range<u64>> {
    let size = std::fs::metadata(format!("/proc/self/map_files/{}", m.name))
        .ok()?
        .len();
    let backed = page_align_up(size).saturating_sub(m.offset);
    let start = m.range.start.saturating_add(backed).min(m.range.end);
    (start < m.range.end).then_some(start..m.range.end)
}

impl GuestMemory {
    /// The guest ranges whose host pages are file pages past the end of their file
    /// now (a snapshot: files can change size at any time).
    pub fn file_pages_past_eof(&self) -> Vec<Range<u64>> {
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return Vec::new();
        };
        maps.lines()
            .filter_map(parse)
            .filter_map(|m| {
                let host = past_eof(&m)?;
                let start = self.guest_of_host(host.start)?;
                let end = self.guest_of_host(host.end - PAGE_SIZE)? + PAGE_SIZE;
                Some(start..end)
            })
            .collect()
    }
}
