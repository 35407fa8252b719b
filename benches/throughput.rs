//! Single-thread encode/decode throughput of the Rust coder on 16 MiB of 8-bit symbols from a
//! skewed and a near-uniform distribution. `cargo bench --bench throughput`.
//! The Python benchmark (`benches/bench_rans.py`) compares against the peers.
//!
//! Each distribution prints the end-to-end container numbers (`encode_symbols` / `decompress`,
//! including the histogram, table, checksum and allocations) on one thread and on all threads,
//! then the bare chunk coder (`Encoder::encode_chunk` / `Decoder::decode_chunk`, 2^16-symbol
//! chunks, 32 lanes, one thread) on the same data, as 8-bit and as 16-bit symbols.

use std::time::Instant;

use rand::distributions::{Distribution, WeightedIndex};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use splitans::entropy::freq::build_table;
use splitans::entropy::rans::{Decoder, Encoder, Symbol};
use splitans::{decompress, encode_symbols, EncodeOptions};

fn best_of<F: FnMut()>(runs: usize, mut f: F) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// The chunk coder alone: returns (encode, decode) seconds for all of `data`.
fn kernel<S: Symbol>(data: &[S], precision_bits: u8) -> (f64, f64) {
    let chunk = 1 << 16;
    let table = build_table(&S::histogram(data), Some(precision_bits)).unwrap();
    let encoder = Encoder::new(&table, 1 << (8 * S::BYTES));
    let decoder = Decoder::new(&table);
    let mut coded16: Vec<(Vec<u32>, Vec<u16>)> = Vec::new();
    let enc = best_of(5, || {
        coded16 = data
            .chunks(chunk)
            .map(|c| encoder.encode_chunk(c, 32))
            .collect();
    });
    let coded: Vec<(Vec<u32>, Vec<u8>)> = coded16
        .into_iter()
        .map(|(s, w)| (s, w.iter().flat_map(|w| w.to_le_bytes()).collect()))
        .collect();
    let mut out = vec![S::default(); data.len()];
    let dec = best_of(5, || {
        for ((states, words), o) in coded.iter().zip(out.chunks_mut(chunk)) {
            decoder.decode_chunk(states, words, o).unwrap();
        }
    });
    assert!(out.iter().zip(data).all(|(a, b)| a.index() == b.index()));
    (enc, dec)
}

fn main() {
    let n = 16 << 20;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for (name, decay) in [("skewed", 0.7f64), ("near-uniform", 0.995)] {
        let weights: Vec<f64> = (0..256).map(|i| decay.powi(i)).collect();
        let dist = WeightedIndex::new(&weights).unwrap();
        let data: Vec<u8> = (0..n).map(|_| dist.sample(&mut rng) as u8).collect();
        let mut p = 0;
        for threads in [1usize, 0] {
            let opts = EncodeOptions {
                threads,
                ..Default::default()
            };
            let mut blob = Vec::new();
            let enc = best_of(5, || blob = encode_symbols(&data, &opts).unwrap());
            let dec = best_of(5, || {
                let (_, back) = decompress::<u8>(&blob, u64::MAX, threads).unwrap();
                assert_eq!(back.len(), n);
            });
            let (_, info) = splitans::format::container::inspect(&blob, u64::MAX).unwrap();
            p = info[0].precision_bits;
            println!(
                "{name:>13} p={} threads={} ratio={:.3} encode {:7.1} MB/s decode {:7.1} MB/s",
                info[0].precision_bits,
                if threads == 0 {
                    "all".to_string()
                } else {
                    threads.to_string()
                },
                n as f64 / blob.len() as f64,
                n as f64 / enc / 1e6,
                n as f64 / dec / 1e6
            );
        }
        let (enc, dec) = kernel(&data, p);
        println!(
            "{name:>13} p={p} kernel u8      encode {:7.1} MB/s decode {:7.1} MB/s",
            n as f64 / enc / 1e6,
            n as f64 / dec / 1e6
        );
        // The same symbols spread over the 16-bit alphabet (MB/s of input bytes, 2 per symbol).
        let wide: Vec<u16> = data.iter().map(|&b| u16::from(b) * 251).collect();
        let (enc, dec) = kernel(&wide, p);
        println!(
            "{name:>13} p={p} kernel u16     encode {:7.1} MB/s decode {:7.1} MB/s",
            2.0 * n as f64 / enc / 1e6,
            2.0 * n as f64 / dec / 1e6
        );
    }
}
