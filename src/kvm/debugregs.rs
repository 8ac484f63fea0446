//! The x86 debug registers as KVM's guest debugging programs them (hardware KVM;
//! PVM accepts them but they never fire): four address slots (DR0-DR3) and DR7,
//! which enables each slot for instruction fetch, writes, or reads and writes of
//! 1, 2, 4 or 8 aligned bytes. DR6's low bits say which slot a #DB came from.

use anyhow::{Context, Result};
use kvm_ioctls::{Kvm, VcpuExit};

use super::vm::Backend;
use crate::trace;
use crate::trace::Category;

/// What a debug-register slot catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Executing the instruction at the address (a fault: before it runs).
    Exec,
    /// Writes (a trap: after the instruction).
    Write,
    /// Reads and writes (x86 has no read-only condition).
    ReadWrite,
}

/// One slot: address, condition, length in bytes (1 for Exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub addr: u64,
    pub condition: Condition,
    pub len: u64,
}

impl Slot {
    /// Whether the hardware can watch this: a length of 1, 2, 4 or 8 bytes at an
    /// address aligned to it (exec slots take length 1), in the lower half.
    pub fn fits(&self) -> bool {
        let len_ok = match self.condition {
            Condition::Exec => self.len == 1,
            _ => matches!(self.len, 1 | 2 | 4 | 8),
        };
        len_ok && self.addr.is_multiple_of(self.len) && self.addr < 1 << 47
    }

    /// The slot's RW and LEN fields of DR7 (4 bits).
    fn dr7_fields(&self) -> u64 {
        let rw = match self.condition {
            Condition::Exec => 0b00,
            Condition::Write => 0b01,
            Condition::ReadWrite => 0b11,
        };
        let len = match (self.condition, self.len) {
            (Condition::Exec, _) | (_, 1) => 0b00,
            (_, 2) => 0b01,
            (_, 8) => 0b10,
            _ => 0b11,
        };
        rw | len << 2
    }
}

/// Slots a vCPU has.
pub const SLOTS: usize = 4;

/// DR0-DR3 and DR7 as KVM_SET_GUEST_DEBUG takes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugRegs {
    pub addr: [u64; SLOTS],
    pub dr7: u64,
}

impl DebugRegs {
    /// The registers that enable exactly `slots` (each locally, as Linux does for
    /// a process).
    pub fn new(slots: &[Option<Slot>; SLOTS]) -> DebugRegs {
        let mut regs = DebugRegs::default();
        for (i, slot) in slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            regs.addr[i] = slot.addr;
            regs.dr7 |= 1 << (2 * i) | slot.dr7_fields() << (16 + 4 * i);
        }
        regs
    }

    pub fn enabled(&self) -> bool {
        self.dr7 != 0
    }
}

/// Whether this KVM reports debug-register hits: a probe VM in real mode runs
/// `nop; nop; hlt` with an instruction breakpoint on the second `nop`, which must
/// end KVM_RUN with that hit. PVM never does (its vCPUs get no probe: real mode is
/// not for it), nor does hardware KVM nested under an emulator that does not arm the
/// DR7 its VMRUN loads (QEMU's TCG before 9.1).
pub fn hits_reported(kvm: &Kvm, backend: Backend) -> bool {
    if backend != Backend::Hardware {
        return false;
    }
    match probe(kvm) {
        Ok(hit) => hit,
        Err(e) => {
            trace!(Category::Kvm, "debug-register probe failed: {e:#}");
            false
        }
    }
}

/// The probe's code page (guest-physical and real-mode address).
const PROBE_CODE: u64 = 0x1000;

fn probe(kvm: &Kvm) -> Result<bool> {
    let page = ProbePage::new()?;
    let vm = kvm.create_vm().context("KVM_CREATE_VM (probe)")?;
    let region = kvm_bindings::kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: PROBE_CODE,
        memory_size: PAGE as u64,
        userspace_addr: page.addr(),
    };
    // SAFETY: the page is mapped, readable and writable, and outlives `vm` (it is
    // declared first, so dropped last).
    unsafe { vm.set_user_memory_region(region) }.context("KVM_SET_USER_MEMORY_REGION (probe)")?;
    let mut vcpu = vm.create_vcpu(0).context("KVM_CREATE_VCPU (probe)")?;
    let mut sregs = vcpu.get_sregs().context("KVM_GET_SREGS (probe)")?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).context("KVM_SET_SREGS (probe)")?;
    let regs = kvm_bindings::kvm_regs {
        rip: PROBE_CODE,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).context("KVM_SET_REGS (probe)")?;
    let target = PROBE_CODE + 1;
    let mut slots = [None; SLOTS];
    slots[0] = Some(Slot {
        addr: target,
        condition: Condition::Exec,
        len: 1,
    });
    let dr = DebugRegs::new(&slots);
    let mut dbg = kvm_bindings::kvm_guest_debug {
        control: kvm_bindings::KVM_GUESTDBG_ENABLE | kvm_bindings::KVM_GUESTDBG_USE_HW_BP,
        ..Default::default()
    };
    dbg.arch.debugreg[..SLOTS].copy_from_slice(&dr.addr);
    dbg.arch.debugreg[7] = dr.dr7;
    vcpu.set_guest_debug(&dbg)
        .context("KVM_SET_GUEST_DEBUG (probe)")?;
    let exit = vcpu.run().context("KVM_RUN (probe)")?;
    let hit =
        matches!(exit, VcpuExit::Debug(arch) if arch.pc == target && slot_hit(arch.dr6) == Some(0));
    trace!(Category::Kvm, "debug-register probe: {exit:?}");
    Ok(hit)
}

/// A page of host memory for the probe VM, holding `nop; nop; hlt`.
struct ProbePage(*mut libc::c_void);

const PAGE: usize = 4096;

impl ProbePage {
    fn new() -> Result<ProbePage> {
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap (probe page)");
        }
        let code = [0x90u8, 0x90, 0xf4];
        // SAFETY: the page was just mapped writable and is PAGE bytes long.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), ptr.cast::<u8>(), code.len()) };
        Ok(ProbePage(ptr))
    }

    fn addr(&self) -> u64 {
        self.0 as u64
    }
}

impl Drop for ProbePage {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `new` and no VM uses it any more.
        unsafe { libc::munmap(self.0, PAGE) };
    }
}

/// The slot a #DB with this DR6 came from, if it came from one.
pub fn slot_hit(dr6: u64) -> Option<usize> {
    (0..SLOTS).find(|i| dr6 & (1 << i) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dr7_enables_each_slot_with_its_condition_and_length() {
        let mut slots = [None; SLOTS];
        slots[0] = Some(Slot {
            addr: 0x1000,
            condition: Condition::Exec,
            len: 1,
        });
        slots[2] = Some(Slot {
            addr: 0x2008,
            condition: Condition::Write,
            len: 8,
        });
        slots[3] = Some(Slot {
            addr: 0x3004,
            condition: Condition::ReadWrite,
            len: 4,
        });
        let regs = DebugRegs::new(&slots);
        assert_eq!(regs.addr, [0x1000, 0, 0x2008, 0x3004]);
        // L0, L2, L3; slot 2: RW 01 LEN 10; slot 3: RW 11 LEN 11.
        assert_eq!(regs.dr7, 0b0101_0001 | 0b1001 << 24 | 0b1111 << 28);
        assert_eq!(slot_hit(0xffff_0ff4), Some(2));
        assert_eq!(slot_hit(0xffff_4ff0), None);
    }

    #[test]
    fn only_aligned_small_ranges_fit() {
        let slot = |addr, condition, len| Slot {
            addr,
            condition,
            len,
        };
        assert!(slot(0x1004, Condition::Write, 4).fits());
        assert!(!slot(0x1002, Condition::Write, 4).fits());
        assert!(!slot(0x1000, Condition::Write, 16).fits());
        assert!(!slot(0x1000, Condition::Exec, 4).fits());
        assert!(slot(0x1001, Condition::Exec, 1).fits());
    }
}
