//! A guest vCPU: KVM's vCPU with its landing pad ([`CpuArea`]), and the entry into
//! user code from wherever km's own guest code left it.

use std::ops::{Deref, DerefMut};

use anyhow::Result;
use kvm_bindings::kvm_regs;

use super::landing_pad::{CpuArea, SYS_BASE, SYS_SIZE};
use crate::kvm::{KvmVcpu, TF};
use crate::memory::GuestMemory;

pub struct Vcpu {
    pub kvm: KvmVcpu,
    pub area: CpuArea,
}

impl Deref for Vcpu {
    type Target = KvmVcpu;

    fn deref(&self) -> &KvmVcpu {
        &self.kvm
    }
}

impl DerefMut for Vcpu {
    fn deref_mut(&mut self) -> &mut KvmVcpu {
        &mut self.kvm
    }
}

impl Vcpu {
    /// Whether the vCPU is executing km's own guest code (pad or exception stub).
    pub fn in_landing_pad(&self) -> Result<bool> {
        let rip = self.regs()?.rip;
        Ok((SYS_BASE..SYS_BASE + SYS_SIZE).contains(&rip))
    }

    /// Moves a vCPU stopped inside the pad's in-guest answers onto the pad's exit
    /// path, which makes the same syscall ([`CpuArea::leave_answer`]). Reads no
    /// register while the pad answers nothing in the guest.
    pub fn leave_answer(&self, mem: &GuestMemory) -> Result<()> {
        if !self.area.answering(mem)? {
            return Ok(());
        }
        if let Some(regs) = self.area.leave_answer(&self.regs()?) {
            self.set_regs(&regs)?;
        }
        Ok(())
    }

    /// Resumes user code with exactly `regs`. From an exception stub the vCPU returns
    /// through the stub's `iretq` with an edited frame (which also honours TF for
    /// single-stepping); from the hardware-KVM pad (CPL0) the segments are switched
    /// to user ones; at CPL3 setting the registers is enough.
    pub fn enter_user(&self, mem: &GuestMemory, regs: &kvm_regs) -> Result<()> {
        let current = self.regs()?;
        if CpuArea::in_stubs(current.rip) && regs.rflags & TF == 0 {
            self.area
                .set_exception_return(mem, regs.rip, regs.rsp, regs.rflags)?;
            return self.set_regs(&kvm_regs {
                rip: current.rip,
                rsp: current.rsp,
                rflags: current.rflags,
                ..*regs
            });
        }
        self.set_user_regs(regs)
    }
}
