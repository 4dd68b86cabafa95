//! WeChat wire formats: everything that turns bytes from WeChat into values and back.
//! Pure code, no I/O, so every piece is unit-tested and fuzzed on its own.

pub mod crypto;
pub mod message;
pub mod reply;
pub mod signature;
