//! inspect and decompress must accept the same containers and fail with the same error. The
//! input is a container (seeds: valid ones of every kind, mode and version) whose total_len and
//! CRC (a compact container's CRC) are set before decoding, so that the fuzzer's edits reach every parser behind the checksum; the
//! first byte picks whether to fix them (most inputs) or leave the bytes as they are.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../rust/tests/blobgen/mod.rs"]
mod blobgen;

fuzz_target!(|input: &[u8]| {
    let Some((&how, data)) = input.split_first() else {
        return;
    };
    let mut data = data.to_vec();
    if how % 8 != 0 && data.first() == Some(&0xF3) && data.len() >= 5 {
        // A compact container (FORMAT.md 10.1): CRC at [1, 5) over byte 0 and [5, end).
        let mut h = crc32fast::Hasher::new();
        h.update(&data[..1]);
        h.update(&data[5..]);
        let crc = h.finalize();
        data[1..5].copy_from_slice(&crc.to_le_bytes());
    } else if how % 8 != 0 && data.len() >= 20 {
        let total = data.len() as u64;
        data[12..20].copy_from_slice(&total.to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&data[..8]);
        h.update(&data[12..]);
        let crc = h.finalize();
        data[8..12].copy_from_slice(&crc.to_le_bytes());
    }
    // Asserts the agreement, and that every outcome is documented.
    blobgen::check(&data);
});
