//! km's vDSO: a small shared object (built from `src/guest/vdso/` by build.rs) mapped into
//! every payload and announced with AT_SYSINFO_EHDR, so that clock_gettime,
//! gettimeofday and time read the TSC in the guest instead of making a VM exit.
//!
//! The vDSO computes `base_ns[clock] + (tsc - tsc_base) * mult >> shift` from its
//! data page (`km_vvar`, inside the image), which km writes from the host under a
//! sequence count: first before the payload's first instruction, then every
//! [`REFRESH`] from a km thread (started at the first VM exit after that), so the guest's clocks follow the host's (NTP steps
//! included). The guest's TSC is related to the host's by reading it on a vCPU (see
//! `Vcpu::guest_tsc`); the guest's clocks then run at most one ioctl (a few µs)
//! ahead of the host's, never behind, and CLOCK_MONOTONIC
//! never goes back at a refresh: the new base is never below what the old one gave,
//! and the rate is trimmed so the guest meets the host again by the next refresh.

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use object::{Object, ObjectSection};

use super::mm::AddressSpace;
use super::vm::Vm;
use crate::kvm::{KvmVcpu, host_tsc};
use crate::memory::{GuestMemory, page_align_up};
use crate::trace;
use crate::trace::Category;

/// The vDSO image.
static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// How often km re-anchors the guest's clocks to the host's.
const REFRESH: Duration = Duration::from_millis(500);

/// Offsets in `struct km_vvar` (src/vdso/vdso.c).
const SEQ: u64 = 0;
const VALID: u64 = 4;
const TSC_BASE: u64 = 8;
const MULT: u64 = 16;
const SHIFT: u64 = 24;
const PUBLISHED: u64 = 28;
const BASE_NS: u64 = 32;

/// Fixed-point fraction bits of `mult`.
const FRACTION: u32 = 32;

/// The clocks the vDSO serves (the others go to the syscall).
const REALTIME: usize = 0;
const MONOTONIC: usize = 1;
const REALTIME_COARSE: usize = 5;
const MONOTONIC_COARSE: usize = 6;
const BOOTTIME: usize = 7;

/// Where the vDSO is in the guest.
#[derive(Debug, Clone, Copy)]
pub struct Mapped {
    /// Its ELF header (AT_SYSINFO_EHDR).
    pub base: u64,
    /// Its data page.
    pub vvar: u64,
}

/// Maps the vDSO into the mmap area of `space`: the whole file, as Linux maps its
/// own (its one PT_LOAD has file offsets equal to addresses, and debuggers read the
/// section headers from memory), read and execute.
pub fn map(vm: &Vm, space: &mut AddressSpace) -> Result<Mapped> {
    let file = object::File::parse(IMAGE).context("parsing the vDSO")?;
    let vvar = file
        .section_by_name(".km_vvar")
        .context("the vDSO has no .km_vvar section")?;
    let len = page_align_up((IMAGE.len() as u64).max(vvar.address() + vvar.size()));
    let base = space.place(vm, len)?;
    let prot = libc::PROT_READ | libc::PROT_EXEC;
    vm.protect(base..base + len, prot)?;
    vm.mem.write_bytes(base, IMAGE)?;
    space.add_loaded_segment(base..base + len, prot, None);
    Ok(Mapped {
        base,
        vvar: base + vvar.address(),
    })
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let t = rustix::time::clock_gettime(match clock {
        libc::CLOCK_REALTIME => rustix::time::ClockId::Realtime,
        libc::CLOCK_BOOTTIME => rustix::time::ClockId::Boottime,
        _ => rustix::time::ClockId::Monotonic,
    });
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// The guest's clock state, as last published.
struct Clock {
    vvar: u64,
    /// Guest TSC minus host TSC.
    offset: u64,
    /// Nanoseconds per tick, measured (or from KVM's TSC frequency at first).
    ns_per_tick: f64,
    seq: u32,
    /// The last published (guest TSC, CLOCK_MONOTONIC ns, mult).
    last: Option<(u64, i64, u64)>,
    /// Host (TSC, CLOCK_MONOTONIC ns) at the last publication, for the rate.
    last_host: (u64, i64),
}

impl Clock {
    /// Publishes the host's clocks for the current TSC.
    fn publish(&mut self, mem: &GuestMemory) -> Result<()> {
        let host_tsc_now = host_tsc();
        let mono = clock_ns(libc::CLOCK_MONOTONIC);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let (prev_tsc, prev_mono) = self.last_host;
        let ticks = host_tsc_now.wrapping_sub(prev_tsc);
        if ticks > 0 && mono > prev_mono && self.last.is_some() {
            self.ns_per_tick = (mono - prev_mono) as f64 / ticks as f64;
        }
        self.last_host = (host_tsc_now, mono);
        let tsc = host_tsc_now.wrapping_add(self.offset);
        // Never behind what the previous base and rate give now (monotonic), and
        // trimmed to meet the host again by the next refresh.
        let (base, excess) = match self.last {
            Some((t0, m0, mult0)) => {
                let then =
                    m0 + ((tsc.saturating_sub(t0) as u128 * mult0 as u128) >> FRACTION) as i64;
                (then.max(mono), then.max(mono) - mono)
            }
            None => (mono, 0),
        };
        let period = REFRESH.as_nanos() as f64;
        let trim = (period - (excess as f64).min(period / 2.0)) / period;
        let mult = (self.ns_per_tick * trim * (1u64 << FRACTION) as f64) as u64;
        self.last = Some((tsc, base, mult));
        let mut base_ns = [0i64; 12];
        base_ns[MONOTONIC] = base;
        base_ns[MONOTONIC_COARSE] = base;
        base_ns[REALTIME] = base + (real - mono);
        base_ns[REALTIME_COARSE] = base_ns[REALTIME];
        base_ns[BOOTTIME] = base + (boot - mono);
        let published: u32 = [
            REALTIME,
            MONOTONIC,
            REALTIME_COARSE,
            MONOTONIC_COARSE,
            BOOTTIME,
        ]
        .iter()
        .fold(0, |m, c| m | 1 << c);

        self.seq = self.seq.wrapping_add(1);
        mem.write_obj(self.vvar + SEQ, self.seq)?;
        fence(Ordering::SeqCst);
        mem.write_obj(self.vvar + TSC_BASE, tsc)?;
        mem.write_obj(self.vvar + MULT, mult)?;
        mem.write_obj(self.vvar + SHIFT, FRACTION)?;
        mem.write_obj(self.vvar + PUBLISHED, published)?;
        for (i, ns) in base_ns.iter().enumerate() {
            mem.write_obj(self.vvar + BASE_NS + 8 * i as u64, *ns)?;
        }
        mem.write_obj(self.vvar + VALID, 1u32)?;
        fence(Ordering::SeqCst);
        self.seq = self.seq.wrapping_add(1);
        mem.write_obj(self.vvar + SEQ, self.seq)?;
        Ok(())
    }
}

/// The guest's clocks once first published, and the km thread that keeps them
/// following the host's: it starts at the first VM exit at least [`REFRESH`] after
/// the first publication ([`Clocks::tick`]), so a payload that ends sooner (most
/// fork children, short programs) never pays for creating and ending a thread.
/// Until then the vDSO runs on the first anchor and KVM's TSC frequency (a payload
/// that makes no exit for longer is re-anchored at its next one).
pub struct Clocks {
    due: Instant,
    started: AtomicBool,
    pending: Mutex<Option<Clock>>,
}

/// Starts the guest's clocks at data page `vvar` in `mem`: relates the TSC of
/// `vcpu` to the host's and publishes. Until the first publication the vDSO uses
/// the syscalls.
pub fn start(vvar: u64, vcpu: &KvmVcpu, mem: &GuestMemory) -> Result<Clocks> {
    let khz = vcpu.tsc_khz()?;
    let (guest_tsc, host) = vcpu.guest_tsc()?;
    let mut clock = Clock {
        vvar,
        offset: guest_tsc.wrapping_sub(host),
        ns_per_tick: 1e6 / khz as f64,
        seq: 0,
        last: None,
        last_host: (0, 0),
    };
    clock.publish(mem)?;
    Ok(Clocks {
        due: Instant::now() + REFRESH,
        started: AtomicBool::new(false),
        pending: Mutex::new(Some(clock)),
    })
}

impl Clocks {
    /// At a VM exit: starts the thread that re-anchors the clocks every
    /// [`REFRESH`] in the guest memory `mem` finds in `owner`, once the first
    /// refresh is due. If no thread can be created (a process limit), the clocks
    /// go on from their first anchor.
    pub fn tick<G: Send + Sync + 'static>(&self, owner: &Arc<G>, mem: fn(&G) -> &GuestMemory) {
        if self.started.load(Ordering::Relaxed) || Instant::now() < self.due {
            return;
        }
        let Some(mut clock) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        self.started.store(true, Ordering::Relaxed);
        // Not an owner: the thread ends once the guest has gone (an execve
        // in place replaced it).
        let owner = Arc::downgrade(owner);
        let spawned = std::thread::Builder::new()
            .name("km-clock".into())
            .spawn(move || {
                while owner
                    .upgrade()
                    .is_some_and(|owner| clock.publish(mem(&owner)).is_ok())
                {
                    std::thread::sleep(REFRESH);
                }
            });
        match spawned {
            Ok(_) => trace!(
                Category::Kvm,
                "clock refresh thread started in process {}",
                std::process::id()
            ),
            Err(e) => trace!(Category::Kvm, "clock refresh thread not started: {e}"),
        }
    }
}
