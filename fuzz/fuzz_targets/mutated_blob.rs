//! Structure-aware: a valid blob of a random small tensor (every kind and mode), then the
//! fuzzer's edits, then the checksum recomputed, so the parsers behind the checksum are reached.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use splitans::format::container::FloatType;
use splitans::pipeline::feature::{self, FeatureOptions, ModeChoice, Range, Reshape};
use splitans::quant::{Channels, NonFinite};
use splitans::{compress, encode_symbols, EncodeOptions};

#[path = "common.rs"]
mod common;

#[derive(Arbitrary, Debug)]
enum Source {
    Symbols8(Vec<u8>),
    Symbols16(Vec<u16>),
    Int32(Vec<i32>),
    Feature {
        values: Vec<u8>,
        bits: u8,
        csr: bool,
        rows_pick: u8,
        per_channel: bool,
        compact: bool,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    source: Source,
    edits: Vec<(u16, u8)>,
    truncate: Option<u16>,
}

fn blob(source: &Source) -> Option<Vec<u8>> {
    let opts = EncodeOptions {
        chunk_log2: Some(8),
        threads: 1,
        ..Default::default()
    };
    match source {
        Source::Symbols8(s) => encode_symbols(s, &opts).ok(),
        Source::Symbols16(s) => encode_symbols(s, &opts).ok(),
        Source::Int32(v) => compress(v, &[v.len()], &opts).ok(),
        Source::Feature {
            values,
            bits,
            csr,
            rows_pick,
            per_channel,
            compact,
        } => {
            let x: Vec<f32> = values
                .iter()
                .map(|&v| if v < 100 { 0.0 } else { f32::from(v) / 7.0 })
                .collect();
            let n = x.len();
            if n == 0 {
                return None;
            }
            let divisors: Vec<usize> = (1..=n).filter(|d| n % d == 0 && n / d <= 65_535).collect();
            let rows = divisors[*rows_pick as usize % divisors.len()];
            let axis = (*per_channel && n % 4 == 0).then_some((
                1u8,
                Channels {
                    channels: 4,
                    inner: 1,
                },
            ));
            let shape = if axis.is_some() {
                vec![n / 4, 4]
            } else {
                vec![n]
            };
            let fo = FeatureOptions {
                bits: 1 + bits % 16,
                axis,
                range: Range::MinMax,
                mode: if *csr {
                    ModeChoice::Csr
                } else if *compact && rows_pick % 4 == 3 && 1 + bits % 16 <= 8 {
                    ModeChoice::Pctx
                } else if rows_pick % 2 == 1 && 1 + bits % 16 <= 8 {
                    ModeChoice::Context
                } else {
                    ModeChoice::Dense
                },
                reshape: Reshape::Rows(rows),
                non_finite: NonFinite::Error,
                coder: opts,
                version: if *compact { 3 } else { 1 },
            };
            feature::compress(&x, &shape, FloatType::F32, &fo)
                .ok()
                .map(|(b, _)| b)
        }
    }
}

fuzz_target!(|input: Input| {
    let Some(mut data) = blob(&input.source) else {
        return;
    };
    assert!(
        common::decode_any(&data).is_some(),
        "a fresh blob must decode"
    );
    if data.first() == Some(&0xF3) {
        // Compact container (FORMAT.md 10): CRC at [1, 5) over byte 0 and [5, end); no length.
        if data.len() <= 5 {
            return;
        }
        for &(at, byte) in input.edits.iter().take(8) {
            let i = 5 + at as usize % (data.len() - 5);
            data[i] ^= byte;
        }
        if let Some(t) = input.truncate.filter(|_| data.len() > 6) {
            let keep = data.len() - (t as usize % (data.len() - 6));
            data.truncate(keep);
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&data[..1]);
        h.update(&data[5..]);
        let crc = h.finalize();
        data[1..5].copy_from_slice(&crc.to_le_bytes());
        let _ = common::decode_any(&data);
        return;
    }
    if data.len() <= 12 {
        return;
    }
    for &(at, byte) in input.edits.iter().take(8) {
        let i = 12 + at as usize % (data.len() - 12);
        data[i] ^= byte;
    }
    if let Some(t) = input.truncate.filter(|_| data.len() > 20) {
        let keep = data.len() - (t as usize % (data.len() - 20));
        data.truncate(keep);
        let total = data.len() as u64;
        data[12..20].copy_from_slice(&total.to_le_bytes());
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&data[..8]);
    h.update(&data[12..]);
    let crc = h.finalize();
    data[8..12].copy_from_slice(&crc.to_le_bytes());
    let _ = common::decode_any(&data);
});
