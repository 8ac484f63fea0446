//! Common types and definitions used across `gdbstub`.

mod signal;

pub use self::signal::Signal;

/// Thread ID
pub type Tid = core::num::NonZeroUsize;

/// Process ID
pub type Pid = core::num::NonZeroUsize;

/// Endinanness.
///
/// This is used to report target endianness to the debugger as a
/// response to certain commands.
#[derive(Clone, Copy, Debug)]
pub enum Endianness {
    /// Big-endian.
    Big,
    /// Little-endian.
    Little,
}
