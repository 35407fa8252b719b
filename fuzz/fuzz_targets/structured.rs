//! Structure-aware, behind the checksum: the fuzzer's bytes choose a valid container of any kind
//! and mode (rust/tests/blobgen: the library's encoder, empty and 0-d tensors, versions 1 and 2)
//! and field-level mutations of it (a dimension, a row count, a symbol count, a frequency, a
//! chunk's words, a record length, ...), written back with lengths and CRC recomputed. Every
//! outcome must be an array of the declared shape or a documented error, and inspect must fail
//! exactly when and as decompress does (`blobgen::check` asserts both).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../rust/tests/blobgen/mod.rs"]
mod blobgen;

fuzz_target!(|data: &[u8]| {
    let _ = blobgen::case(&mut blobgen::Gen::small(data));
});
