//! The precision chooser's inputs, measured (issue 24): for each data set and each table
//! precision, the chooser's estimate (`cost_fixed` + the stream's fixed bytes), the real stream
//! length, the decoder's table bytes and the decode speed of the stream alone, one thread.
//!
//! ```text
//! cargo bench --bench precision                  # 4 MiB per data set
//! PROFILE_MIB=16 cargo bench --bench precision   # the size bench_rans.py uses
//! PROFILE_INPUT=codes.u8 cargo bench --bench precision   # a raw uint8 file instead
//! ```
//!
//! Data sets (seeded): geometric p = 0.35 ("skewed") and p = 0.08, and the 8-bit codes of
//! `max(normal, 0)` scaled by its maximum (a ReLU map quantized as `compress(..., bits=8)` does).
//! Decode MB/s is the median of `PROFILE_REPS` (default 15) decodes into a reused buffer.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::entropy::freq::{build_table, quantize};
use splitans::entropy::rans::Symbol;
use splitans::entropy::stream::rans_plan;
use splitans::format::container;
use splitans::{encode_symbols, EncodeOptions};

fn geometric(n: usize, p: f64, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let l = (1.0 - p).ln();
    (0..n)
        .map(|_| {
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            ((u.ln() / l).floor() as u64).min(255) as u8
        })
        .collect()
}

fn relu_normal_codes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n)
        .map(|_| {
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            let v: f64 = rng.gen();
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            z.max(0.0) as f32
        })
        .collect();
    let scale = x.iter().fold(0f32, |a, &b| a.max(b)) / 255.0;
    x.iter()
        .map(|&v| (v / scale).round_ties_even() as u8)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn report(name: &str, data: &[u8], reps: usize) {
    let counts = u8::histogram(data);
    let chosen = build_table(&counts, None).map_or(0, |t| t.precision_bits);
    println!(
        "\n### {name}: {} symbols, chooser picks {chosen} bits\n",
        data.len()
    );
    println!("| p | table B | estimate B | real B | real - est | vs p=16 real | decode MB/s median | best |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut blobs = Vec::new();
    for p in 8..=16u8 {
        let Some(t) = quantize(&counts, p) else {
            continue;
        };
        let o = EncodeOptions {
            precision_bits: Some(p),
            threads: 1,
            ..Default::default()
        };
        let est = rans_plan(&counts, &t, data.len(), &o).estimate;
        let packed = t.symbols.iter().all(|&s| s < 1 << 8) && t.freqs.iter().all(|&f| f < 1 << 12);
        let table = (1usize << p) * if packed { 4 } else { 6 };
        blobs.push((p, table, est, encode_symbols(data, &o).unwrap()));
    }
    // Decode every precision once per round, rounds interleaved: a busy spell hits all alike.
    let mut out = vec![0u8; data.len()];
    let mut times = vec![Vec::new(); blobs.len()];
    for _ in 0..reps {
        for (i, (_, _, _, blob)) in blobs.iter().enumerate() {
            let h = container::read_header(blob).unwrap();
            let views = container::streams(blob, &h).unwrap();
            let t0 = Instant::now();
            splitans::entropy::stream::decode_into(&views[0], &mut out, 1).unwrap();
            times[i].push(t0.elapsed().as_secs_f64());
            assert_eq!(out, data);
        }
    }
    let mut rows = Vec::new();
    for ((p, table, est, blob), t) in blobs.iter().zip(times) {
        let h = container::read_header(blob).unwrap();
        let real = container::streams(blob, &h).unwrap()[0].encoded_len;
        let best = t.iter().copied().fold(f64::INFINITY, f64::min);
        let n = data.len() as f64 / 1e6;
        rows.push((*p, *table, *est, real, n / median(t), n / best));
    }
    let real16 = rows.last().map_or(1, |r| r.3) as f64;
    for (p, table, est, real, mbs, best) in rows {
        println!(
            "| {p} | {table} | {est} | {real} | {:+} | {:+.3}% | {mbs:.0} | {best:.0} |",
            real as i64 - est as i64,
            100.0 * (real as f64 / real16 - 1.0)
        );
    }
}

fn main() {
    let mib: usize = std::env::var("PROFILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let reps: usize = std::env::var("PROFILE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    if let Ok(path) = std::env::var("PROFILE_INPUT") {
        report(&path, &std::fs::read(&path).unwrap(), reps);
        return;
    }
    let n = mib << 20;
    report("skewed (geometric p = 0.35)", &geometric(n, 0.35, 11), reps);
    report("geometric p = 0.08", &geometric(n, 0.08, 12), reps);
    report("ReLU(normal), 8-bit codes", &relu_normal_codes(n, 13), reps);
    if std::env::var_os("PROFILE_MORE").is_some() {
        report("geometric p = 0.9", &geometric(n, 0.9, 14), reps);
        report("geometric p = 0.02", &geometric(n, 0.02, 15), reps);
        let g = geometric(n, 0.2, 16);
        report(
            "geometric p = 0.2, 4-bit",
            &g.iter().map(|&v| v.min(15)).collect::<Vec<u8>>(),
            reps,
        );
    }
}
