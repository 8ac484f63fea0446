//! How km's host memory behind the guest is backed. Fresh guest memory used to cost
//! one host fault (a VM exit on PVM) per 4 KiB page: CPython's
//! test_socket.test_sendall_interrupted built its 16 MiB buffer for longer than
//! its 1 s alarm, so the alarm fired before the blocking sendall and the module
//! hung. km now asks for transparent huge pages on its guest reservations.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{km, payload};

/// The host's THP mode: the bracketed word of
/// /sys/kernel/mm/transparent_hugepage/enabled (`always`, `madvise` or `never`).
fn thp_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// (size in KiB, THPeligible) of each anonymous mapping of `pid` of at least
/// `min_kib`.
fn big_anonymous_mappings(pid: u32, min_kib: u64) -> Vec<(u64, bool)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("reading smaps");
    let mut found = Vec::new();
    let mut current: Option<(bool, u64)> = None; // (anonymous, size)
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header: "start-end perms offset dev inode [path]".
            current = Some((line.split_whitespace().count() == 5, 0));
        } else if first == "Size:" {
            if let Some((_, size)) = current.as_mut() {
                *size = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            }
        } else if first == "THPeligible:"
            && let Some((true, size)) = current
            && size >= min_kib
        {
            found.push((size, words.next() == Some("1")));
        }
    }
    found
}

#[test]
fn guest_reservations_may_use_transparent_huge_pages() {
    let Some(mode) = thp_mode() else {
        println!("no transparent huge pages on this host: nothing to check");
        return;
    };
    let mut child = km()
        .arg(payload("waiter.glibc"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting km");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let mappings = big_anonymous_mappings(child.id(), 1 << 20);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(ready, "ready\n");
    // The image (64 GiB) and upper (128 GiB) reservations (the host merges them
    // when adjacent), maybe split by the payload's own mappings.
    assert!(!mappings.is_empty(), "no guest reservation found");
    if mode == "never" {
        assert!(
            mappings.iter().all(|(_, eligible)| !eligible),
            "{mappings:?}"
        );
    } else {
        // In `madvise` mode only the advice makes them eligible.
        assert!(
            mappings.iter().all(|(_, eligible)| *eligible),
            "{mappings:?}"
        );
    }
}
