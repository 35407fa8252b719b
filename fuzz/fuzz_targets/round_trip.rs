//! Arbitrary symbols, arrays and options in: lossless paths must give the input back exactly,
//! the lossy path must stay within half a quantization step.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use splitans::format::container::{self, FloatType};
use splitans::pipeline::feature::{self, FeatureOptions, ModeChoice, Range, Reshape};
use splitans::quant::{Channels, NonFinite};
use splitans::{compress, decompress, encode_symbols, EncodeOptions};

#[derive(Arbitrary, Debug)]
struct Input {
    precision: u8,
    chunk: u8,
    threads: bool,
    data: Data,
}

#[derive(Arbitrary, Debug)]
enum Data {
    Symbols8(Vec<u8>),
    Symbols16(Vec<u16>),
    Int64(Vec<i64>),
    Floats {
        values: Vec<f32>,
        bits: u8,
        mode: u8,
        search: bool,
    },
}

fuzz_target!(|input: Input| {
    let opts = EncodeOptions {
        precision_bits: (input.precision % 20 <= 16 && input.precision % 20 >= 9)
            .then_some(input.precision % 20),
        chunk_log2: Some(8 + input.chunk % 17),
        threads: if input.threads { 2 } else { 1 },
    };
    match input.data {
        Data::Symbols8(s) => {
            let Ok(b) = encode_symbols(&s, &opts) else {
                return;
            };
            assert!(
                b.len() <= container::max_compressed_size(s.len(), splitans::DType::U8, 1).unwrap()
            );
            assert_eq!(decompress::<u8>(&b, u64::MAX, 1).unwrap().1, s);
        }
        Data::Symbols16(s) => {
            let Ok(b) = encode_symbols(&s, &opts) else {
                return;
            };
            assert_eq!(decompress::<u16>(&b, u64::MAX, 2).unwrap().1, s);
        }
        Data::Int64(v) => {
            let b = compress(&v, &[v.len()], &opts).unwrap();
            assert_eq!(decompress::<i64>(&b, u64::MAX, 1).unwrap().1, v);
        }
        Data::Floats {
            values,
            bits,
            mode,
            search,
        } => {
            let x: Vec<f32> = values.into_iter().filter(|v| v.is_finite()).collect();
            let fo = FeatureOptions {
                bits: 1 + bits % 16,
                axis: None,
                range: Range::MinMax,
                mode: match (mode % 6, 1 + bits % 16 <= 8) {
                    (0, _) => ModeChoice::Dense,
                    (1, _) => ModeChoice::Csr,
                    (2, _) => ModeChoice::Auto,
                    (3, true) => ModeChoice::Context,
                    (5, true) if mode / 6 % 2 == 1 => ModeChoice::Pctx,
                    _ => ModeChoice::Best,
                },
                reshape: if search {
                    Reshape::Search
                } else {
                    Reshape::Model
                },
                non_finite: NonFinite::Error,
                coder: opts,
                version: if mode / 6 % 2 == 1 { 3 } else { 1 },
            };
            let _ = Channels::TENSOR;
            let (b, plan) = feature::compress(&x, &[x.len()], FloatType::F32, &fo).unwrap();
            let h = container::read_header(&b).unwrap();
            let (_, y) = feature::decompress(&b, &h, u64::MAX, 1).unwrap();
            let scale = plan.params[0].scale;
            let lo = x.iter().fold(0f64, |m, &v| m.min(f64::from(v)));
            let hi = x.iter().fold(0f64, |m, &v| m.max(f64::from(v)));
            if fo.bits == 1 && hi - lo > f64::from(f32::MAX) {
                return; // one step wider than f32::MAX: documented to clamp the ends
            }
            // FORMAT.md 6.7.3: s/2, plus the parameters' own binary32 rounding (lo', hi' the
            // range widened to 0; it shows only where an element clamps at an end), plus that of
            // x / s and of the product.
            let ends = ((hi - lo) * 2f64.powi(-22)) as f32;
            for (a, b) in x.iter().zip(&y) {
                let tol = scale / 2.0 * 1.0001 + a.abs() * 4.0 * f32::EPSILON + ends;
                assert!((a - b).abs() <= tol, "{a} -> {b}, scale {scale}");
            }
        }
    }
});
