//! The container header parser and record framing, on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitans::format::container;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = container::read_header(data) {
        assert!(h.header_len <= data.len());
        let _ = container::records(data, &h, h.streams);
        let _ = container::records(data, &h, h.streams + 1);
    }
});
