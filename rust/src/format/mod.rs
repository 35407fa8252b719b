//! The byte layout of every blob: the versioned containers around coded streams (FORMAT.md 2,
//! 3 and 7), the feature section and compact containers (6, 10), and fitted codecs and their
//! blobs (9). Writers and parsers; the pipelines above decide what to write.
//!
//! A blob says what it is in its first bytes, and every parser here refuses the others' with a
//! message naming the right decoder. The table of those leading bytes lives here, once:
//!
//! ```text
//! first bytes   what                                              FORMAT.md
//! "SPNS"        a container of version 1 or 2                     2.1, 8
//! 0xF3          a compact feature container (0xF0 | version 3);   10.1
//!               0xF4-0xFF a later version, 0xF0-0xF2 none
//! 0xE0-0xE2     a fitted codec's blob (0xE0 | kind)               9.5
//! "SPNC"        a fitted codec's serialization                    9.2
//! ```

pub mod container;
pub mod feature;
pub mod fitted;

/// The magic bytes of a container of version 1 or 2 (FORMAT.md 2.1).
pub const CONTAINER_MAGIC: [u8; 4] = *b"SPNS";
/// The high nibble of a compact container's first byte, whose low nibble is its version
/// (FORMAT.md 10.1).
pub const COMPACT_NIBBLE: u8 = 0xF0;
/// The high nibble of a fitted blob's first byte, whose low nibble is its kind (FORMAT.md 9.5).
pub const BLOB_TAG: u8 = 0xE0;
/// The magic bytes of a fitted codec's serialization (FORMAT.md 9.2).
pub const CODEC_MAGIC: [u8; 4] = *b"SPNC";
