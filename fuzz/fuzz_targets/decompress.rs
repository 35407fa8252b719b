//! The full decoder on arbitrary bytes: integer containers and feature containers, with a
//! 64 MiB output cap, through the same entry points as the Python bindings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitans_fuzz_common::decode_any;

#[path = "common.rs"]
mod splitans_fuzz_common;

fuzz_target!(|data: &[u8]| {
    decode_any(data);
});
