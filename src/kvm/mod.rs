//! Layer 2, KVM: the VM and its vCPUs as plain wrappers (create, CPUID, MSRs,
//! registers, XSAVE, single-step and debug registers, run to the next exit) and the kick that interrupts
//! a running vCPU. Uses only `memory` and `trace`; knows nothing of the guest.

pub mod debugregs;
pub mod held;
pub mod kick;
pub mod vcpu;
pub mod vm;

pub use vcpu::{CpuSetup, Exit, KvmVcpu, RF, TF, host_tsc, host_xcr0};
pub use vm::{Backend, KvmVm};
