//! The KVM virtual machine as a plain wrapper: /dev/kvm, backend detection, CPUID,
//! and vCPU creation. Guest memory registers its memslots on [`KvmVm::fd`].

use std::path::Path;

use anyhow::{Context, Result};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{Kvm, VmFd};

use super::vcpu::{CpuSetup, KvmVcpu};
use crate::trace;
use crate::trace::Category;

/// Which KVM implementation serves `/dev/kvm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// VT-x / AMD-V: `syscall` enters CPL0, debug facilities work.
    Hardware,
    /// kvm-pvm, the software backend: `syscall` stays at CPL3, CPL0 code is emulated.
    Pvm,
}

impl Backend {
    fn detect() -> Backend {
        if Path::new("/sys/module/kvm_pvm").exists() {
            Backend::Pvm
        } else {
            Backend::Hardware
        }
    }

    /// The suffix km appends to the host release in `uname`.
    pub fn release_suffix(self) -> &'static str {
        match self {
            Backend::Hardware => ".kontain.KVM",
            Backend::Pvm => ".kontain.PVM",
        }
    }
}

pub struct KvmVm {
    fd: VmFd,
    pub backend: Backend,
    cpuid: CpuId,
}

impl KvmVm {
    /// Opens /dev/kvm and creates an empty VM.
    pub fn new() -> Result<Self> {
        let kvm = Kvm::new().context("opening /dev/kvm")?;
        let fd = kvm.create_vm().context("KVM_CREATE_VM")?;
        let backend = Backend::detect();
        trace!(
            Category::Kvm,
            "backend {:?}, KVM API {}",
            backend,
            kvm.get_api_version()
        );
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .context("KVM_GET_SUPPORTED_CPUID")?;
        Ok(KvmVm { fd, backend, cpuid })
    }

    /// In a forked km: a new empty VM like this one (the child cannot use the
    /// parent's VM).
    pub fn recreate(&self) -> Result<Self> {
        let kvm = Kvm::new().context("opening /dev/kvm in the forked km")?;
        let fd = kvm.create_vm().context("KVM_CREATE_VM in the forked km")?;
        Ok(KvmVm {
            fd,
            backend: self.backend,
            cpuid: self.cpuid.clone(),
        })
    }

    /// The VM descriptor, for memslots.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Supported CPUID entry `(function, index)`, as given to the guest.
    pub fn cpuid(&self, function: u32, index: u32) -> Option<kvm_bindings::kvm_cpuid_entry2> {
        self.cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function && e.index == index)
            .copied()
    }

    /// Creates a vCPU set up by `setup`, ready to run user code.
    pub fn create_vcpu(&self, setup: &CpuSetup) -> Result<KvmVcpu> {
        let fd = self
            .fd
            .create_vcpu(setup.id as u64)
            .with_context(|| format!("KVM_CREATE_VCPU {}", setup.id))?;
        fd.set_cpuid2(&self.cpuid).context("KVM_SET_CPUID2")?;
        KvmVcpu::new(fd, setup, self)
    }
}
