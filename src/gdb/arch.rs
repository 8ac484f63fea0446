//! km's gdb architecture: x86-64 with SSE, as `gdbstub_arch`'s, plus what a Linux
//! process has besides: `orig_rax` (org.gnu.gdb.i386.linux) and the FS/GS segment
//! bases (org.gnu.gdb.i386.segments), so that `info registers fs_base` works, and,
//! when the CPU has AVX, the upper halves of the YMM registers (org.gnu.gdb.i386.avx),
//! from which gdb builds `$ymm0`..`$ymm15`.

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::reg::id::X86_64CoreRegId;

/// Bytes of the core and SSE registers in a `g` packet.
const CORE_LEN: usize = 0x218;
/// Bytes of orig_rax, fs_base and gs_base.
const LINUX_LEN: usize = 24;

/// Whether guests run with AVX state enabled (XCR0 bit 2): PVM guests use the host's
/// XCR0, and km gives hardware-KVM vCPUs every feature KVM supports.
pub fn avx() -> bool {
    crate::kvm::host_xcr0() & 4 != 0
}

pub enum KmX86_64 {}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KmRegs {
    pub core: X86_64CoreRegs,
    pub orig_rax: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    /// Bits 128..256 of ymm0..ymm15 (sent only when [`avx`]).
    pub ymm_hi: [u128; 16],
}

impl Registers for KmRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for v in [self.orig_rax, self.fs_base, self.gs_base] {
            v.to_le_bytes()
                .into_iter()
                .for_each(|b| write_byte(Some(b)));
        }
        if avx() {
            for v in self.ymm_hi {
                v.to_le_bytes()
                    .into_iter()
                    .for_each(|b| write_byte(Some(b)));
            }
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let ymm_len = if avx() { 16 * 16 } else { 0 };
        if bytes.len() < CORE_LEN + LINUX_LEN + ymm_len {
            return Err(());
        }
        self.core.gdb_deserialize(&bytes[..CORE_LEN])?;
        let word = |i: usize| {
            u64::from_le_bytes(
                bytes[CORE_LEN + 8 * i..CORE_LEN + 8 * i + 8]
                    .try_into()
                    .expect("8"),
            )
        };
        self.orig_rax = word(0);
        self.fs_base = word(1);
        self.gs_base = word(2);
        if ymm_len > 0 {
            let ymm = &bytes[CORE_LEN + LINUX_LEN..];
            for (i, v) in self.ymm_hi.iter_mut().enumerate() {
                *v = u128::from_le_bytes(ymm[16 * i..16 * i + 16].try_into().expect("16"));
            }
        }
        Ok(())
    }
}

impl Arch for KmX86_64 {
    type Usize = u64;
    type Registers = KmRegs;
    type RegId = X86_64CoreRegId;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(if avx() { TARGET_XML_AVX } else { TARGET_XML })
    }
}

/// The registers in `g` packet order, by feature (without the closing tag).
macro_rules! base_xml {
    () => {
        r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0"><architecture>i386:x86-64</architecture><osabi>GNU/Linux</osabi><feature name="org.gnu.gdb.i386.core"><reg name="rax" bitsize="64" type="int64"/><reg name="rbx" bitsize="64" type="int64"/><reg name="rcx" bitsize="64" type="int64"/><reg name="rdx" bitsize="64" type="int64"/><reg name="rsi" bitsize="64" type="int64"/><reg name="rdi" bitsize="64" type="int64"/><reg name="rbp" bitsize="64" type="data_ptr"/><reg name="rsp" bitsize="64" type="data_ptr"/><reg name="r8" bitsize="64" type="int64"/><reg name="r9" bitsize="64" type="int64"/><reg name="r10" bitsize="64" type="int64"/><reg name="r11" bitsize="64" type="int64"/><reg name="r12" bitsize="64" type="int64"/><reg name="r13" bitsize="64" type="int64"/><reg name="r14" bitsize="64" type="int64"/><reg name="r15" bitsize="64" type="int64"/><reg name="rip" bitsize="64" type="code_ptr"/><reg name="eflags" bitsize="32" type="int32"/><reg name="cs" bitsize="32" type="int32"/><reg name="ss" bitsize="32" type="int32"/><reg name="ds" bitsize="32" type="int32"/><reg name="es" bitsize="32" type="int32"/><reg name="fs" bitsize="32" type="int32"/><reg name="gs" bitsize="32" type="int32"/><reg name="st0" bitsize="80" type="i387_ext"/><reg name="st1" bitsize="80" type="i387_ext"/><reg name="st2" bitsize="80" type="i387_ext"/><reg name="st3" bitsize="80" type="i387_ext"/><reg name="st4" bitsize="80" type="i387_ext"/><reg name="st5" bitsize="80" type="i387_ext"/><reg name="st6" bitsize="80" type="i387_ext"/><reg name="st7" bitsize="80" type="i387_ext"/><reg name="fctrl" bitsize="32" type="int" group="float"/><reg name="fstat" bitsize="32" type="int" group="float"/><reg name="ftag" bitsize="32" type="int" group="float"/><reg name="fiseg" bitsize="32" type="int" group="float"/><reg name="fioff" bitsize="32" type="int" group="float"/><reg name="foseg" bitsize="32" type="int" group="float"/><reg name="fooff" bitsize="32" type="int" group="float"/><reg name="fop" bitsize="32" type="int" group="float"/></feature><feature name="org.gnu.gdb.i386.sse"><vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/><vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/><vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/><union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/><field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/></union><reg name="xmm0" bitsize="128" type="vec128"/><reg name="xmm1" bitsize="128" type="vec128"/><reg name="xmm2" bitsize="128" type="vec128"/><reg name="xmm3" bitsize="128" type="vec128"/><reg name="xmm4" bitsize="128" type="vec128"/><reg name="xmm5" bitsize="128" type="vec128"/><reg name="xmm6" bitsize="128" type="vec128"/><reg name="xmm7" bitsize="128" type="vec128"/><reg name="xmm8" bitsize="128" type="vec128"/><reg name="xmm9" bitsize="128" type="vec128"/><reg name="xmm10" bitsize="128" type="vec128"/><reg name="xmm11" bitsize="128" type="vec128"/><reg name="xmm12" bitsize="128" type="vec128"/><reg name="xmm13" bitsize="128" type="vec128"/><reg name="xmm14" bitsize="128" type="vec128"/><reg name="xmm15" bitsize="128" type="vec128"/><reg name="mxcsr" bitsize="32" type="int" group="vector"/></feature><feature name="org.gnu.gdb.i386.linux"><reg name="orig_rax" bitsize="64" type="int"/></feature><feature name="org.gnu.gdb.i386.segments"><reg name="fs_base" bitsize="64" type="int"/><reg name="gs_base" bitsize="64" type="int"/></feature>"#
    };
}

const TARGET_XML: &str = concat!(base_xml!(), "</target>");

const TARGET_XML_AVX: &str = concat!(
    base_xml!(),
    r#"<feature name="org.gnu.gdb.i386.avx">"#,
    r#"<reg name="ymm0h" bitsize="128" type="uint128"/><reg name="ymm1h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm2h" bitsize="128" type="uint128"/><reg name="ymm3h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm4h" bitsize="128" type="uint128"/><reg name="ymm5h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm6h" bitsize="128" type="uint128"/><reg name="ymm7h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm8h" bitsize="128" type="uint128"/><reg name="ymm9h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm10h" bitsize="128" type="uint128"/><reg name="ymm11h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm12h" bitsize="128" type="uint128"/><reg name="ymm13h" bitsize="128" type="uint128"/>"#,
    r#"<reg name="ymm14h" bitsize="128" type="uint128"/><reg name="ymm15h" bitsize="128" type="uint128"/>"#,
    "</feature></target>"
);
