//! Fixed workloads for instruction counts and profiles of the fast path (issue 15), one thread:
//!
//! ```text
//! cargo bench --bench profile --no-run      # then, with the binary it names:
//! valgrind --tool=callgrind target/release/deps/profile-* compress-big 3
//! perf record -e cpu-clock target/release/deps/profile-* decode-geo08 50
//! ```
//!
//! Workloads: `compress-big` / `decompress-big` (a 1x256x56x56 ReLU map, 8 bits, auto, like
//! `benches/bench_fast.py`'s), `compress-small4`, `compress-small8`, `decompress-small4`,
//! `decompress-small8` (1x32x7x7), `encode-geo08` / `decode-geo08` / `encode-geo35` /
//! `decode-geo35` (4 MiB of geometric 8-bit symbols, p = 0.08 and 0.35, `encode_symbols` /
//! `decompress`), `kernel-geo08` / `kernel-geo35` (their stream decoded into a reused buffer),
//! `lanes-small4` / `lanes-small8` (the 1x32x7x7 map's codes in 1, 2 and 4 lanes),
//! `table-small4` / `table-small8` (`build_table` of those codes alone). The maps are synthetic
//! (seeded): clipped normal values with the zero fraction of the real block3.expand
//! activations; `PROFILE_SHAPE` (`1,64,14,14`) gives the map workloads another shape,
//! `PROFILE_INPUT` (below) the real values. Prints the best wall-clock time per iteration.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::format::container::{self, FloatType};
use splitans::pipeline::feature::{self, FeatureOptions, ModeChoice, Range, Reshape};
use splitans::quant::NonFinite;
use splitans::{decompress, encode_symbols, EncodeOptions};

/// A ReLU6-like map: normal values shifted so that `zeros` of them are 0, clipped at 6.
fn relu_map(n: usize, zeros: f64, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // The standard normal quantile of `zeros`, by bisection on the error function's series.
    let cdf = |z: f64| 0.5 * (1.0 + erf(z / std::f64::consts::SQRT_2));
    let (mut lo, mut hi) = (-6.0, 6.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if cdf(mid) < zeros {
            lo = mid
        } else {
            hi = mid
        }
    }
    (0..n)
        .map(|_| {
            // Box-Muller.
            let u: f64 = rng.gen_range(f64::EPSILON..1.0);
            let v: f64 = rng.gen();
            let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
            ((z - lo) as f32).clamp(0.0, 6.0)
        })
        .collect()
}

fn erf(x: f64) -> f64 {
    // Abramowitz-Stegun 7.1.26 is enough to place a quantile for a benchmark.
    let t = 1.0 / (1.0 + 0.3275911 * x.abs());
    let y = 1.0
        - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
            + 0.254829592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

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

fn opts(bits: u8) -> FeatureOptions {
    FeatureOptions {
        bits,
        axis: None,
        range: Range::MinMax,
        mode: ModeChoice::Auto,
        reshape: Reshape::Model,
        non_finite: NonFinite::Error,
        coder: EncodeOptions {
            threads: 1,
            ..Default::default()
        },
        version: splitans::format::container::COMPACT_VERSION,
    }
}

fn run(iters: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..iters {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

/// The map of `n` elements a workload codes: `PROFILE_INPUT`, a raw little-endian float32 file
/// of the workload's shape (the real activations, say), or the synthetic map.
fn input_map(n: usize) -> Vec<f32> {
    let x = match std::env::var("PROFILE_INPUT") {
        Ok(path) => std::fs::read(path)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect::<Vec<f32>>(),
        Err(_) => relu_map(n, 0.32, 7),
    };
    assert_eq!(x.len(), n, "PROFILE_INPUT holds another shape");
    x
}

/// The map's values quantized by its maximum to `bits` bits (negative values to 0).
fn codes_by_max(x: &[f32], bits: u8) -> Vec<u8> {
    let levels = ((1u32 << bits) - 1) as f32;
    let top = x.iter().fold(0f32, |a, &b| a.max(b));
    x.iter()
        .map(|&v| (v.max(0.0) / top * levels).round() as u8)
        .collect()
}

/// `lanes-small4` / `lanes-small8`: the 1x32x7x7 map's codes (`PROFILE_INPUT` or the
/// synthetic map, quantized by its maximum to `bits` bits) in one chunk of 1, 2 and 4 lanes
/// (the format allows any; the encoder's choice is `stream_lanes`), and what
/// each costs: the states' and words' bytes, and the best time of `Decoder::decode_chunk`
/// (the table built once). What more lanes would buy a small map (benches/NOTES.md 70).
fn lanes_small(bits: u8, iters: usize) {
    use splitans::entropy::freq::build_table;
    use splitans::entropy::rans::{Decoder, Encoder, Symbol};
    let n = 32 * 7 * 7;
    let codes = codes_by_max(&input_map(n), bits);
    let t = build_table(&u8::histogram(&codes), None).expect("two symbols or more");
    for lanes in [1, 2, 4] {
        let (states, words) = Encoder::for_lanes(&t, 256, lanes).encode_chunk(&codes, lanes);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let dec = Decoder::for_lanes(&t, lanes);
        let mut out = vec![0u8; n];
        let best = run(iters, || {
            dec.decode_chunk(&states, &bytes, &mut out).unwrap();
            std::hint::black_box(&out);
        });
        assert_eq!(out, codes);
        println!(
            "lanes-small{bits}: p {}, {lanes} lane(s): {} bytes of states + {} of words, decode best {:.2} us",
            t.precision_bits,
            4 * states.len(),
            bytes.len(),
            best * 1e6
        );
    }
}

/// `table-small4` / `table-small8`: `build_table` (the precision choice) of the map's codes,
/// quantized by its maximum as in `lanes_small`, alone.
fn table_small(bits: u8, iters: usize) {
    use splitans::entropy::freq::build_table;
    use splitans::entropy::rans::Symbol;
    let n = profile_shape().map_or(32 * 7 * 7, |s| s.iter().product());
    let codes = codes_by_max(&input_map(n), bits);
    let h = u8::histogram(&codes);
    let mut p = 0;
    let best = run(iters, || {
        p = std::hint::black_box(build_table(&h, None).unwrap()).precision_bits;
    });
    let present = h.iter().filter(|&&c| c > 0).count();
    println!(
        "table-small{bits}: {n} codes, {present} symbols, precision {p}, best {:.2} us",
        best * 1e6
    );
}

/// `PROFILE_SHAPE` (`1,64,14,14`), if set: the map workloads' shape.
fn profile_shape() -> Option<Vec<usize>> {
    let s = std::env::var("PROFILE_SHAPE").ok()?;
    Some(s.split(',').map(|d| d.trim().parse().unwrap()).collect())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let work = args.first().map_or("compress-big", |s| s.as_str());
    let iters: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let (shape, bits): (Vec<usize>, u8) = match work {
        "compress-big" | "decompress-big" => (vec![1, 256, 56, 56], 8),
        "compress-small4" | "decompress-small4" => (vec![1, 32, 7, 7], 4),
        "compress-small8" | "decompress-small8" => (vec![1, 32, 7, 7], 8),
        _ => (vec![], 0),
    };
    let shape = match profile_shape() {
        Some(s) if bits > 0 => s,
        _ => shape,
    };
    if let Some(bits) = work.strip_prefix("table-small") {
        return table_small(bits.parse().expect("table-small4 or table-small8"), iters);
    }
    if let Some(bits) = work.strip_prefix("lanes-small") {
        return lanes_small(bits.parse().expect("lanes-small4 or lanes-small8"), iters);
    }
    let best = if bits > 0 {
        let n: usize = shape.iter().product();
        let x = input_map(n);
        let o = opts(bits);
        let (blob, _) = feature::compress(&x, &shape, FloatType::F32, &o).unwrap();
        if work.starts_with("compress") {
            run(iters, || {
                // What `splitans.compress` calls: the container without the plan.
                std::hint::black_box(
                    feature::compress_blob(&x, &shape, FloatType::F32, &o).unwrap(),
                );
            })
        } else {
            run(iters, || {
                let h = container::read_header(&blob).unwrap();
                std::hint::black_box(feature::decompress(&blob, &h, u64::MAX, 1).unwrap());
            })
        }
    } else {
        let p = match work {
            "encode-geo08" | "decode-geo08" | "kernel-geo08" => 0.08,
            "encode-geo35" | "decode-geo35" | "kernel-geo35" => 0.35,
            w => panic!("unknown workload {w}"),
        };
        let mib: usize = std::env::var("PROFILE_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4);
        let data = geometric(mib << 20, p, 11);
        let o = EncodeOptions {
            threads: 1,
            ..Default::default()
        };
        let blob = encode_symbols(&data, &o).unwrap();
        if work.starts_with("kernel") {
            // The stream's chunks alone, into a buffer reused across iterations.
            let h = container::read_header(&blob).unwrap();
            let views = container::streams(&blob, &h).unwrap();
            let mut out = vec![0u8; data.len()];
            run(iters, || {
                let _ = std::hint::black_box(splitans::entropy::stream::decode_into(
                    &views[0], &mut out, 1,
                ));
            })
        } else if work.starts_with("encode") {
            run(iters, || {
                std::hint::black_box(encode_symbols(&data, &o).unwrap());
            })
        } else {
            run(iters, || {
                std::hint::black_box(decompress::<u8>(&blob, u64::MAX, 1).unwrap());
            })
        }
    };
    println!("{work}: best {:.2} us per iteration", best * 1e6);
}
