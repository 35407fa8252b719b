//! Errors of the codec. Plain Rust: the Python bindings map each variant to an exception.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The input is not a valid stream or container (truncated, altered, inconsistent).
    Corrupt(String),
    /// A container written by a newer format version than this library reads.
    UnsupportedVersion { found: u8, supported: u8 },
    /// Decoding would produce more bytes than the caller allows.
    OutputTooLarge { needed: u64, limit: u64 },
    /// The caller asked for something the codec cannot do (bad option, bad dtype, too large).
    InvalidArgument(String),
    /// The allocator refused a buffer of this many bytes (the caller lifted or raised the output
    /// cap beyond what the machine can hold). Never an abort.
    OutOfMemory { bytes: u64 },
}

pub type Result<T> = std::result::Result<T, CodecError>;

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Corrupt(msg) => write!(f, "corrupt data: {msg}"),
            CodecError::UnsupportedVersion { found, supported } => write!(
                f,
                "unsupported format version {found} (this library reads version {supported}); upgrade splitans"
            ),
            CodecError::OutputTooLarge { needed, limit } => write!(
                f,
                "decoded output would be {needed} bytes, over max_output_bytes={limit}"
            ),
            CodecError::InvalidArgument(msg) => write!(f, "{msg}"),
            CodecError::OutOfMemory { bytes } => write!(
                f,
                "could not allocate {bytes} bytes for the decoded data; pass a max_output_bytes \
                 this machine can hold (or, with splitans.decompress, expect_shape=) to refuse such input before allocating"
            ),
        }
    }
}

impl std::error::Error for CodecError {}

/// Shorthand for a `Corrupt` error with a formatted message.
macro_rules! corrupt {
    ($($arg:tt)*) => {
        $crate::error::CodecError::Corrupt(format!($($arg)*))
    };
}
pub(crate) use corrupt;
