//! Layer 3, the guest: what the payload sees in memory. The machine (KVM VM, guest
//! memory, page tables, landing pads and vCPUs), the address space, the ELF loader,
//! the initial stack and the vDSO. Uses `memory` and `kvm`.

pub mod admission;
pub mod landing_pad;
pub mod limits;
pub mod loader;
pub mod mm;
pub mod paging;
pub mod stack;
pub mod vcpu;
pub mod vdso;
pub mod vm;
