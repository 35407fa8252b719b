//! Fitted codecs pinned at the Rust level (issue 27): the model that `Codec::fit` chooses and
//! the blob bytes the context coder writes, on each predictor and layout path (the raster path,
//! where "left" is the last axis, and the strided one, e.g. channels last), and forged constant
//! blobs with out-of-range codes refused. The inputs are the integer-exact ones of
//! tests/test_fitted_pins.py, so the ids and digests are the same as there: the Python fit is
//! this fit. A pin changes only with the format or the fit's choices (a format change).

use sha2::{Digest, Sha256};
use splitans::error::CodecError;
use splitans::format::container::FloatType;
use splitans::model::pctx::Predictor;
use splitans::pipeline::codec::{Clip, Codec};
use splitans::quant::NonFinite;

const GOLD: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64, as tests/golden/cases.py `raw`.
fn raw(seed: u64, n: usize) -> Vec<u64> {
    (1..=n as u64)
        .map(|i| {
            let mut z = i.wrapping_add(seed.wrapping_mul(GOLD)).wrapping_mul(GOLD);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

fn uniform(seed: u64, n: usize) -> Vec<f32> {
    raw(seed, n)
        .into_iter()
        .map(|r| (r >> 40) as f32 * (1.0 / (1u64 << 24) as f32))
        .collect()
}

/// C x H x W ramps, steeper in later channels, plus a little noise.
fn smooth(seed: u64, (c, h, w): (usize, usize, usize)) -> Vec<f32> {
    let u = uniform(seed, c * h * w);
    let mut out = Vec::with_capacity(c * h * w);
    for k in 0..c {
        for i in 0..h {
            for j in 0..w {
                let ramp = (i as f32 + j as f32) / (h + w) as f32;
                out.push(ramp * (k + 1) as f32 + u[(k * h + i) * w + j] * 0.05f32);
            }
        }
    }
    out
}

/// A random walk of integer steps in -8..7, scaled by 1/8 (tests/test_fitted_pins.py `walk`).
fn walk(seed: u64, n: usize) -> Vec<f32> {
    let mut sum = 0i64;
    raw(seed, n)
        .into_iter()
        .map(|r| {
            sum += (r >> 60) as i64 - 8;
            (sum as f64 * 0.125) as f32
        })
        .collect()
}

/// C x H x W sums of a walk along each row and one down each column (`plane` there): left + up
/// - upper left predicts every element, so med, not med-residual.
fn plane(seed: u64, (c, h, w): (usize, usize, usize)) -> Vec<f32> {
    let (a, b) = (walk(seed, c * w), walk(seed + 500, c * h));
    let mut out = Vec::with_capacity(c * h * w);
    for k in 0..c {
        for i in 0..h {
            for j in 0..w {
                out.push(a[k * w + j] + b[k * h + i]);
            }
        }
    }
    out
}

/// Mostly zeros, the rest uniform.
fn sparse(seed: u64, n: usize) -> Vec<f32> {
    let (a, b) = (uniform(seed, n), uniform(seed + 1000, n));
    a.iter()
        .zip(&b)
        .map(|(&p, &v)| if p < 0.8f32 { 0.0 } else { v })
        .collect()
}

/// `smooth` with its channel axis moved last (H x W x C).
fn smooth_hwc(seed: u64, (c, h, w): (usize, usize, usize)) -> Vec<f32> {
    let s = smooth(seed, (c, h, w));
    let mut out = vec![0f32; c * h * w];
    for k in 0..c {
        for i in 0..h {
            for j in 0..w {
                out[(i * w + j) * c + k] = s[(k * h + i) * w + j];
            }
        }
    }
    out
}

/// H x W x C binary maps whose density grows with the channel.
fn channel_rates(seed: u64, (h, w, c): (usize, usize, usize)) -> Vec<f32> {
    let u = uniform(seed, h * w * c);
    u.iter()
        .enumerate()
        .map(|(i, &v)| {
            let rate = (i % c) as f32 / c as f32;
            if v < rate {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Case {
    name: &'static str,
    shape: Vec<usize>,
    cal: Vec<Vec<f32>>,
    x: Vec<f32>,
    path: (Predictor, u8, u8),
    /// The quantizer's channel axis (None: per tensor).
    axis: Option<u8>,
    id: &'static str,
    blob_sha: &'static str,
    blob_len: usize,
}

fn cases() -> Vec<Case> {
    let chw = (8, 24, 24);
    let hwc_src = (16, 20, 20);
    let hwc = (20, 20, 16);
    vec![
        Case {
            name: "raster_med (med-residual since codec version 3)",
            shape: vec![8, 24, 24],
            cal: (0..6).map(|s| smooth(s, chw)).collect(),
            x: smooth(50, chw),
            path: (Predictor::MedResidual, 2, 1),
            axis: None,
            id: "b95d59a7d5d2376fa85824ec95d7ce6562173ce9575465829d8ffb6b9ba401b2",
            blob_sha: "0c72720978fdbc800a459ba92f8bd31be81067781e36ace52a9e5529253863e2",
            blob_len: 159,
        },
        Case {
            name: "raster_plane (raster, med)",
            shape: vec![8, 24, 24],
            cal: (0..6).map(|s| plane(s, chw)).collect(),
            x: plane(64, chw),
            path: (Predictor::Med, 2, 1),
            axis: None,
            id: "b7b480f5c2f64df803bb85f9b5ad8bc91f205cb9ad2a1ce9f44cdcedea02782a",
            blob_sha: "71a2ae650f4383a7331a85c16181df5bc1699c0d0d5486e35652fdf2d1b3952a",
            blob_len: 435,
        },
        Case {
            name: "chw_sparse (strided, no predictor)",
            shape: vec![8, 24, 24],
            cal: (0..6).map(|s| sparse(s, 8 * 24 * 24)).collect(),
            x: sparse(51, 8 * 24 * 24),
            path: (Predictor::None, 1, 0),
            axis: None,
            id: "906268dc71430e18c5ac2c1a872c1ab9d9a71e9e640a28b6bd4acb4d095640b7",
            blob_sha: "69d7662866127cc6a07ed76f6033d02e8d7738863d77a29c976cb1cb7e9ef25c",
            blob_len: 873,
        },
        Case {
            name: "channels_last_med (strided, med-residual since codec version 3)",
            shape: vec![20, 20, 16],
            cal: (0..6).map(|s| smooth_hwc(s, hwc_src)).collect(),
            x: smooth_hwc(52, hwc_src),
            path: (Predictor::MedResidual, 1, 0),
            axis: None,
            id: "2ac7422ae935f8c0f39824c221c76b768bd7dc13dc787237c6e98d852944b32c",
            blob_sha: "f2271e81e5db5f6a482deb44fae343e7142646b45c200caf6bb5588be4fcb22d",
            blob_len: 147,
        },
        Case {
            name: "channels_last_per_channel (strided, med)",
            shape: vec![20, 20, 16],
            cal: (0..6).map(|s| smooth_hwc(s, hwc_src)).collect(),
            x: smooth_hwc(54, hwc_src),
            path: (Predictor::Med, 1, 0),
            axis: Some(2),
            id: "8ef469484365b8bc389c7a02e9403864a9380955e2fcb47fd25e72537e1f7327",
            blob_sha: "a5d0274002f83512109f30216d3a1b320a18a7122f802fa5fedcadc623ac8247",
            blob_len: 227,
        },
        Case {
            name: "hwc_binary (raster, no predictor)",
            shape: vec![20, 20, 16],
            cal: (0..6).map(|s| channel_rates(s, hwc)).collect(),
            x: channel_rates(53, hwc),
            path: (Predictor::None, 2, 1),
            axis: None,
            id: "105a70c34cc10dcd03b7befb7de7592314248853fed377f6a62a1844fd3d0ee9",
            blob_sha: "f5dc3259736757df28d38e2b6265c6f29b9c9f9929a6b98a8fcd6bc1f2268666",
            blob_len: 581,
        },
    ]
}

fn fit(case: &Case, bits: u8) -> Codec {
    let views: Vec<(&[f32], &[usize])> = case
        .cal
        .iter()
        .map(|x| (x.as_slice(), case.shape.as_slice()))
        .collect();
    Codec::fit(
        &views,
        FloatType::F32,
        bits,
        case.axis,
        &Clip::Calibration,
        NonFinite::Error,
    )
    .unwrap()
    .0
}

#[test]
fn fitted_models_and_blobs_are_pinned_on_every_path() {
    for case in cases() {
        let codec = fit(&case, 4);
        let m = &codec.model;
        assert_eq!(
            (m.predictor, m.axis_x, m.axis_y),
            case.path,
            "{}: model path",
            case.name
        );
        let blob = codec
            .compress(&case.x, &case.shape, NonFinite::Error)
            .unwrap();
        let (shape, y) = codec.decompress(&blob, 1 << 30).unwrap();
        assert_eq!(shape, case.shape);
        let want = codec
            .round_trip(&case.x, &case.shape, NonFinite::Error)
            .unwrap();
        assert_eq!(y, want, "{}: decode", case.name);
        assert_eq!(codec.id_hex(), case.id, "{}: codec id", case.name);
        assert_eq!(
            (hex(&Sha256::digest(&blob)), blob.len()),
            (case.blob_sha.to_string(), case.blob_len),
            "{}: blob",
            case.name
        );
    }
}

#[test]
fn the_cases_cover_every_predictor_on_both_layouts() {
    let mut seen = Vec::new();
    for case in cases() {
        let d = case.shape.len() as u8;
        let raster = case.path.1 == d - 1 && case.path.2 == d - 2;
        seen.push((case.path.0, raster));
    }
    for want in [
        (Predictor::MedResidual, true),
        (Predictor::MedResidual, false),
        (Predictor::Med, true),
        (Predictor::Med, false),
        (Predictor::None, true),
        (Predictor::None, false),
    ] {
        assert!(seen.contains(&want), "{want:?} not covered");
    }
}

/// `blob` with its body replaced and a valid CRC (FORMAT.md 9.5).
fn forge(codec: &Codec, blob: &[u8], body: &[u8]) -> Vec<u8> {
    let mut b = blob[..7].to_vec();
    b.extend_from_slice(body);
    with_crc(codec, b)
}

/// `b` with the CRC of FORMAT.md 9.5 recomputed: the codec's id, bytes `[0, 3)`, then `[7, end)`.
fn with_crc(codec: &Codec, mut b: Vec<u8>) -> Vec<u8> {
    let mut h = crc32fast::Hasher::new();
    h.update(codec.id());
    h.update(&b[..3]);
    h.update(&b[7..]);
    let crc = h.finalize();
    b[3..7].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn forged_constant_blobs_with_out_of_range_codes_are_refused() {
    let shape = [4usize, 8, 8];
    let data: Vec<Vec<f32>> = (0..4).map(|s| uniform(s, 256)).collect();
    let views: Vec<(&[f32], &[usize])> = data.iter().map(|x| (x.as_slice(), &shape[..])).collect();
    for bits in [1u8, 2, 4, 7] {
        let (codec, _) = Codec::fit(
            &views,
            FloatType::F32,
            bits,
            None,
            &Clip::Ranges(vec![(0.0, 1.0)]),
            NonFinite::Error,
        )
        .unwrap();
        let levels = (1u32 << bits) - 1;
        let zero = codec
            .compress(&[0f32; 256], &shape, NonFinite::Error)
            .unwrap();
        assert_eq!(zero.len(), 8, "a constant blob");
        let top = forge(&codec, &zero, &[levels as u8]);
        let (_, y) = codec.decompress(&top, 1 << 20).unwrap();
        assert!(
            y.iter().all(|&v| (v - 1.0).abs() < 1e-6),
            "{bits} bits: top"
        );
        for code in [levels + 1, levels + 2, 200, 255] {
            let bad = forge(&codec, &zero, &[code as u8]);
            match codec.decompress(&bad, 1 << 20) {
                Err(CodecError::Corrupt(_)) => {}
                other => panic!("{bits} bits, code {code}: {other:?}"),
            }
            assert!(codec.decode_codes(&bad, 1 << 20).is_err());
        }
    }
}

/// A hand-made model: `bits`-bit codes, no predictor, one class per property, every channel of
/// axis 0 its own group, one table.
fn one_table_model(bits: u8, channels: usize) -> splitans::model::pctx::Model {
    let a = 1usize << bits;
    splitans::model::pctx::Model {
        bits,
        predictor: Predictor::None,
        axis_x: 2,
        axis_y: 1,
        axis_g: 0,
        groups: (0..channels as u8).collect(),
        n_groups: channels as u8,
        classes: [vec![0; a], vec![0; a], vec![0; a]],
        n_classes: [1, 1, 1],
        context_map: vec![0; channels],
        precision: 12,
        freqs: vec![(4096 / a) as u16; a],
        plane_lanes: false,
    }
}

#[test]
fn a_model_of_the_most_groups_is_valid_and_one_more_is_not() {
    use splitans::pipeline::codec::Quantizer;
    let max = splitans::model::pctx::MAX_GROUPS;
    let shape = vec![Some(max), Some(4), Some(4)];
    let q = Quantizer::PerSample { axis: None };
    let codec = Codec::new(
        FloatType::F32,
        2,
        shape.clone(),
        q.clone(),
        one_table_model(2, max),
    )
    .unwrap();
    let again = Codec::from_bytes(codec.to_bytes()).unwrap();
    assert_eq!(again.id(), codec.id());
    let x: Vec<f32> = (0..max * 16).map(|i| (i % 7) as f32).collect();
    let blob = codec.compress(&x, &[max, 4, 4], NonFinite::Error).unwrap();
    let (_, y) = again.decompress(&blob, 1 << 20).unwrap();
    assert_eq!(
        y,
        codec
            .round_trip(&x, &[max, 4, 4], NonFinite::Error)
            .unwrap()
    );
    let shape = vec![Some(max + 1), Some(4), Some(4)];
    let mut model = one_table_model(2, max);
    model.groups.push(max as u8);
    model.n_groups = (max + 1) as u8;
    model.context_map.push(0);
    assert!(Codec::new(FloatType::F32, 2, shape, q, model).is_err());
}

#[test]
fn a_per_sample_quantizer_axis_beyond_the_sample_is_refused() {
    let shape = [4usize, 8, 8];
    let data: Vec<Vec<f32>> = (0..4).map(|s| uniform(s, 256)).collect();
    let views: Vec<(&[f32], &[usize])> = data.iter().map(|x| (x.as_slice(), &shape[..])).collect();
    let (codec, _) = Codec::fit(
        &views,
        FloatType::F32,
        3,
        Some(0),
        &Clip::PerSample,
        NonFinite::Error,
    )
    .unwrap();
    let good = codec.to_bytes().to_vec();
    assert!(Codec::from_bytes(&good).is_ok());
    // FORMAT.md 9.2: dtype, bits, ndim at 16..19, one varint per axis (one byte each here),
    // then the quantizer's kind and axis.
    let ndim = good[18] as usize;
    let at = 19 + ndim + 1;
    assert_eq!(
        (good[at - 1], good[at]),
        (0, 0),
        "a per-sample quantizer along axis 0"
    );
    for axis in [ndim as u8, ndim as u8 + 1] {
        let mut b = good.clone();
        b[at] = axis;
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..8]);
        h.update(&b[12..]);
        let crc = h.finalize();
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        match Codec::from_bytes(&b) {
            Err(CodecError::Corrupt(_)) => {}
            other => panic!("axis {axis}: {:?}", other.map(|c| c.id_hex())),
        }
    }
}

#[test]
fn every_fourth_sample_is_held_out_for_the_choice() {
    // Samples 3 and 7 are held out: 0..7 are smooth ramps, 7 alone is noise, so the held-out
    // code length of the chosen model is that of a smooth map and a noisy one together.
    let shape = [4usize, 16, 16];
    let mut data: Vec<Vec<f32>> = (0..7).map(|s| smooth(s, (4, 16, 16))).collect();
    data.push(uniform(99, 4 * 16 * 16).iter().map(|v| v * 4.0).collect());
    let fit = |data: &[Vec<f32>]| {
        let views: Vec<(&[f32], &[usize])> =
            data.iter().map(|x| (x.as_slice(), &shape[..])).collect();
        Codec::fit(
            &views,
            FloatType::F32,
            4,
            None,
            &Clip::Ranges(vec![(0.0, 4.0)]),
            NonFinite::Error,
        )
        .unwrap()
        .1
    };
    let with_noise = fit(&data).chosen.bits_per_element;
    let smooth_only = fit(&data[..7]).chosen.bits_per_element;
    assert!(
        with_noise > smooth_only + 1.0,
        "held-out bits/element {with_noise} with the noisy sample held out, {smooth_only} without"
    );
}

/// FORMAT.md 9.5: a coded body (kind 0) for a sample of no elements is Corrupt, whatever the
/// body holds (the encoder writes kind 1 with an empty body there).
#[test]
fn a_coded_body_for_an_empty_sample_is_refused() {
    let data: Vec<Vec<f32>> = (0..4).map(|s| uniform(s, 3 * (4 + s as usize))).collect();
    let shapes: Vec<[usize; 2]> = (0..4).map(|s| [4 + s as usize, 3]).collect();
    let views: Vec<(&[f32], &[usize])> = data
        .iter()
        .zip(&shapes)
        .map(|(x, s)| (x.as_slice(), &s[..]))
        .collect();
    let (codec, _) = Codec::fit(
        &views,
        FloatType::F32,
        4,
        None,
        &Clip::Ranges(vec![(0.0, 1.0)]),
        NonFinite::Error,
    )
    .unwrap();
    let empty = codec.compress(&[], &[0, 3], NonFinite::Error).unwrap();
    assert_eq!(empty[0], 0xE1, "kind 1 for an empty sample");
    let (shape, y) = codec.decompress(&empty, 1 << 20).unwrap();
    assert_eq!((shape, y.len()), (vec![0, 3], 0));
    for body in [&[][..], &[0u8][..], &[1, 2, 3, 4, 5, 6, 7, 8][..]] {
        let mut b = empty.clone();
        b[0] = 0xE0;
        b.extend_from_slice(body);
        let b = with_crc(&codec, b);
        match codec.decompress(&b, 1 << 20) {
            Err(CodecError::Corrupt(m)) => assert!(m.contains("empty sample"), "{body:?}: {m}"),
            other => panic!("{body:?}: {other:?}"),
        }
        assert!(codec.decode_codes(&b, 1 << 20).is_err());
    }
}

/// A clip range must be finite with lo <= hi: a reversed or infinite one is refused by name,
/// never turned into a grid.
#[test]
fn fit_refuses_a_reversed_or_infinite_clip_range() {
    let shape = [4usize, 8, 8];
    let data: Vec<Vec<f32>> = (0..4).map(|s| uniform(s, 256)).collect();
    let views: Vec<(&[f32], &[usize])> = data.iter().map(|x| (x.as_slice(), &shape[..])).collect();
    let fit = |ranges: Vec<(f32, f32)>| {
        Codec::fit(
            &views,
            FloatType::F32,
            4,
            Some(0),
            &Clip::Ranges(ranges),
            NonFinite::Error,
        )
    };
    assert!(fit(vec![(0.0, 1.0)]).is_ok());
    assert!(fit(vec![(0.5, 0.5)]).is_ok());
    for bad in [
        (1.0, 0.0),
        (0.0, f32::INFINITY),
        (f32::NEG_INFINITY, 1.0),
        (f32::NAN, 1.0),
        (0.0, f32::NAN),
    ] {
        match fit(vec![(0.0, 1.0), bad, (0.0, 1.0), (0.0, 1.0)]) {
            Err(CodecError::InvalidArgument(m)) => {
                assert!(m.contains("is not finite lo <= hi"), "{bad:?}: {m}")
            }
            other => panic!("{bad:?}: {:?}", other.map(|(c, _)| c.id_hex())),
        }
    }
}
