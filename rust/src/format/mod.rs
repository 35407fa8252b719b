//! The byte layout of every blob: the versioned containers around coded streams (FORMAT.md 2,
//! 6, 7 and 10).

pub mod container;
pub mod feature;
pub mod fitted;
