//! Decode speed of the fitted codec's tables at each precision (issue 24, NOTES 30): a codec is
//! fitted on calibration codes, its tables re-quantized at every precision from 9 to 15, a test
//! sample encoded with each, and the decodes timed in interleaved rounds (one thread), so that
//! a busy spell of a shared machine lands on every precision alike.
//!
//! ```text
//! FITPREC_DIR=/tmp/fp FITPREC_NAMES=lite0.stem,lite0.block3.expand cargo bench --bench fitted_precision
//! ```
//!
//! Each name needs `NAME.cal.u8` (calibration samples, raw codes, one after another),
//! `NAME.test.u8` (one sample) and `NAME.shape` (the sample's axes, then the fill code), 8-bit
//! codes. `FITPREC_TABLES=16,64` also re-clusters the fitted contexts into that many tables
//! (table `t mod k`, summed), to see the slot table's size at a fixed precision.
//! Printed: tables, precision, slot table bytes (`tables << precision`, one byte a slot: what
//! the AVX2 decoder gathers from), encoded bytes and the median decode MB/s of the rounds,
//! with its ratio to the fastest precision of the same model in the same rounds.

use std::time::Instant;

use splitans::model::fit::{fit, table_from_counts, Calibration, FitOptions, Sample};
use splitans::model::pctx::{decode_padded, encode, Model, Tables, DECODE_PAD};
use splitans::quant::Channels;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `model` with its tables merged into `k` (table `t mod k`) and re-quantized at `p`.
fn variant(model: &Model, k: usize, p: u8) -> Model {
    let a = model.alphabet();
    let k = k.min(model.tables());
    let mut sums = vec![0u64; k * a];
    for (t, row) in model.freqs.chunks(a).enumerate() {
        for (s, &f) in row.iter().enumerate() {
            // Back to the same scale whatever the fitted precision: counts per 2^15.
            sums[(t % k) * a + s] += (f as u64) << (15 - model.precision);
        }
    }
    let mut m = model.clone();
    m.context_map = model.context_map.iter().map(|&t| t % k as u8).collect();
    m.precision = p;
    m.freqs = sums
        .chunks(a)
        .flat_map(|row| table_from_counts(row, p, 0.0))
        .collect();
    m
}

fn main() {
    let dir = std::env::var("FITPREC_DIR").unwrap_or_else(|_| "/tmp/speed_fp".into());
    let names = std::env::var("FITPREC_NAMES").unwrap_or_else(|_| "lite0.stem".into());
    let rounds: usize = std::env::var("FITPREC_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let ks: Vec<usize> = std::env::var("FITPREC_TABLES")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    for name in names.split(',') {
        let text = std::fs::read_to_string(format!("{dir}/{name}.shape")).expect("shape file");
        let mut nums: Vec<usize> = text
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        let fill = [nums.pop().unwrap() as u8];
        let shape = nums;
        let n: usize = shape.iter().product();
        let cal = std::fs::read(format!("{dir}/{name}.cal.u8")).expect("cal file");
        let test = std::fs::read(format!("{dir}/{name}.test.u8")).expect("test file");
        let samples: Vec<Sample> = cal
            .chunks_exact(n)
            .map(|c| Sample {
                codes: c,
                shape: &shape,
                fills: &fill,
                fill_ch: Channels::TENSOR,
            })
            .collect();
        let mut opts = FitOptions::new(8);
        opts.channel_axis = Some(0);
        let (model, report) = fit(&Calibration { samples }, &opts).expect("fit");
        println!(
            "# {name} {shape:?}: fitted {} tables at p = {} ({:?}, {} groups, {} classes)",
            model.tables(),
            model.precision,
            report.chosen.predictor,
            report.chosen.groups,
            report.chosen.classes
        );
        let mut kinds = vec![model.tables()];
        kinds.extend(ks.iter().copied().filter(|&k| k < model.tables()));
        for k in kinds {
            let variants: Vec<(Model, Tables, Vec<u8>)> = (9..=15)
                .map(|p| {
                    let m = variant(&model, k, p);
                    let tb = Tables::new(&m);
                    let body = encode(&m, &tb, &shape, &test[..n], &fill, Channels::TENSOR);
                    (m, tb, body)
                })
                .collect();
            let mut q = vec![0u8; n + DECODE_PAD];
            let mut times = vec![Vec::new(); variants.len()];
            for r in 0..rounds + 1 {
                for (i, (m, tb, body)) in variants.iter().enumerate() {
                    let t0 = Instant::now();
                    decode_padded(m, tb, &shape, body, &fill, Channels::TENSOR, &mut q).unwrap();
                    let dt = t0.elapsed().as_secs_f64();
                    assert_eq!(&q[..n], &test[..n]);
                    if r > 0 {
                        times[i].push(dt);
                    }
                }
            }
            let mbps: Vec<f64> = times
                .into_iter()
                .map(|t| n as f64 / median(t) / 1e6)
                .collect();
            let best = mbps.iter().cloned().fold(0.0, f64::max);
            for ((m, _, body), s) in variants.iter().zip(&mbps) {
                println!(
                    "{name:>20} tables {:>3} p {:>2} slots {:>8} B  bytes {:>8}  decode {:>6.1} MB/s  x{:.2}",
                    m.tables(),
                    m.precision,
                    m.tables() << m.precision,
                    body.len(),
                    s,
                    s / best
                );
            }
        }
    }
}
