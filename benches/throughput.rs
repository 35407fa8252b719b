//! Single-thread encode/decode throughput of the Rust coder on 16 MiB of 8-bit symbols from a
//! skewed and a near-uniform distribution. `cargo bench --bench throughput`.
//! The Python benchmark (`benches/bench_rans.py`) compares against the peers.

use std::time::Instant;

use rand::distributions::{Distribution, WeightedIndex};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
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

fn main() {
    let n = 16 << 20;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    for (name, decay) in [("skewed", 0.7f64), ("near-uniform", 0.995)] {
        let weights: Vec<f64> = (0..256).map(|i| decay.powi(i)).collect();
        let dist = WeightedIndex::new(&weights).unwrap();
        let data: Vec<u8> = (0..n).map(|_| dist.sample(&mut rng) as u8).collect();
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
            let (_, info) = splitans::container::inspect(&blob, u64::MAX).unwrap();
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
    }
}
