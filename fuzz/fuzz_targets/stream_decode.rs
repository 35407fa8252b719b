//! One bare rANS stream (header, table, directory, chunks) on arbitrary bytes; the first byte
//! picks the symbol type. Decoded output is capped at 16M symbols before any allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitans::bytes::Reader;
use splitans::entropy::stream;

const MAX_SYMBOLS: u64 = 1 << 24;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let mut r = Reader::new(rest);
    let threads = 1 + (pick as usize >> 4) % 2;
    if pick & 1 == 0 {
        if let Ok(out) = stream::decode::<u8>(&mut r, MAX_SYMBOLS, threads) {
            assert!(out.len() as u64 <= MAX_SYMBOLS);
        }
    } else if let Ok(out) = stream::decode::<u16>(&mut r, MAX_SYMBOLS, threads) {
        assert!(out.len() as u64 <= MAX_SYMBOLS);
    }
});
