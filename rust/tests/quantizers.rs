//! The quantizer kinds of fitted codecs (FORMAT.md 9.2): serialization round trips, the
//! version rule, and decoding within each kind's error bound.

use splitans::format::container::FloatType;
use splitans::layout::levels::Codebook;
use splitans::model::pctx::Predictor;
use splitans::pipeline::codec::{Codec, Quantizer};
use splitans::quant::{Affine, NonFinite};

fn samples(n: usize, len: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
                })
                .collect()
        })
        .collect()
}

fn fit(q: Quantizer, bits: u8, shape: &[usize]) -> Codec {
    let data = samples(6, shape.iter().product(), 3);
    let views: Vec<(&[f32], &[usize])> = data.iter().map(|x| (x.as_slice(), shape)).collect();
    Codec::fit_quantizer(&views, FloatType::F32, bits, q, NonFinite::Error)
        .unwrap()
        .0
}

#[test]
fn every_kind_round_trips_with_the_version_it_needs() {
    let shape = [3usize, 5, 4];
    let affine = |lo: f32, hi: f32| Affine::from_range(lo, hi, 3);
    let book = Codebook {
        levels: vec![-2.0, -0.5, 0.0, 0.7, 3.0],
        thresholds: vec![-1.0, -0.2, 0.3, 1.5],
    };
    let kinds = [
        (
            Quantizer::Fixed {
                axis: Some(0),
                params: vec![affine(-3.0, 3.0); 3],
            },
            1u8,
        ),
        (Quantizer::PerSample { axis: None }, 1),
        (
            Quantizer::DeadZone {
                axis: Some(0),
                params: vec![affine(-3.0, 3.0), affine(-1.0, 2.0), affine(0.0, 3.0)],
                dead_zone: vec![0.5, 0.0, 1.25],
            },
            2,
        ),
        (
            Quantizer::Levels {
                axis: Some(0),
                books: vec![
                    book.clone(),
                    Codebook {
                        levels: vec![0.0],
                        thresholds: vec![],
                    },
                ],
                index: vec![0, 1, 0],
            },
            2,
        ),
    ];
    for (q, version) in kinds {
        let codec = fit(q.clone(), 3, &shape);
        let bytes = codec.to_bytes().to_vec();
        // A med-residual model needs version 3 whatever the quantizer (FORMAT.md 9.2).
        let version = if codec.model.predictor == Predictor::MedResidual {
            3
        } else {
            version
        };
        assert_eq!(bytes[4], version, "{q:?}");
        let again = Codec::from_bytes(&bytes).unwrap();
        assert_eq!(again.quantizer, q);
        assert_eq!(again.id(), codec.id());
        for x in samples(3, 60, 9) {
            let blob = codec.compress(&x, &shape, NonFinite::Error).unwrap();
            let (_, y) = again.decompress(&blob, 1 << 30).unwrap();
            assert_eq!(y, codec.round_trip(&x, &shape, NonFinite::Error).unwrap());
            for (i, (&v, &w)) in x.iter().zip(&y).enumerate() {
                let c = i / 20;
                let err = (v - w).abs();
                match &q {
                    Quantizer::DeadZone {
                        params, dead_zone, ..
                    } => {
                        let a = params[c];
                        let lo = -(a.zero_point as f32) * a.scale;
                        let hi = (7 - a.zero_point) as f32 * a.scale;
                        let inside = v.clamp(lo, hi);
                        let bound = (a.scale / 2.0).max(dead_zone[c]) * 1.0001;
                        assert!((inside - w).abs() <= bound, "{v} -> {w}");
                    }
                    Quantizer::Levels { books, index, .. } => {
                        let b = &books[index[c] as usize];
                        let inside = v.clamp(b.levels[0], *b.levels.last().unwrap());
                        assert!((inside - w).abs() <= b.max_error(), "{v} -> {w}");
                    }
                    _ => assert!(err.is_finite()),
                }
            }
        }
    }
}

#[test]
fn invalid_quantizers_are_refused_when_fitting() {
    let shape = [2usize, 4];
    let bad = [
        Quantizer::DeadZone {
            axis: None,
            params: vec![Affine::from_range(0.0, 1.0, 2)],
            dead_zone: vec![-1.0],
        },
        Quantizer::Levels {
            axis: Some(0),
            books: vec![Codebook {
                levels: vec![0.0, 1.0],
                thresholds: vec![0.5],
            }],
            index: vec![0, 1],
        },
        Quantizer::Levels {
            axis: None,
            books: vec![Codebook {
                levels: vec![0.0, 1.0, 2.0, 3.0, 4.0],
                thresholds: vec![0.5, 1.5, 2.5, 3.5],
            }],
            index: vec![0],
        },
    ];
    let data = samples(2, 8, 1);
    let views: Vec<(&[f32], &[usize])> = data.iter().map(|x| (x.as_slice(), &shape[..])).collect();
    for q in bad {
        assert!(
            Codec::fit_quantizer(&views, FloatType::F32, 2, q.clone(), NonFinite::Error).is_err(),
            "{q:?}"
        );
    }
}
