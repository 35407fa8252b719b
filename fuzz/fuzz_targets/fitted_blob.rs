//! Fitted codecs (FORMAT.md 9), structure-aware: a valid codec with a random context model and
//! a valid blob of random codes (which must round-trip), then the fuzzer's edits to the codec's
//! serialization and to the blob, each checksum recomputed (the blob's with the edited codec's
//! id), so that the codec parser, the blob parser and the coder behind them are all reached.
//! A decode that succeeds must return the sample's element count.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use splitans::pipeline::codec::{Codec, Quantizer};
use splitans::format::container::FloatType;
use splitans::model::fit::table_from_counts;
use splitans::model::pctx::{Model, Predictor, MAX_PRECISION, NO_AXIS};
use splitans::quant::Affine;

#[derive(Arbitrary, Debug)]
struct Input {
    seed: u64,
    bits: u8,
    med: bool,
    dims: Vec<u8>,
    per_sample: bool,
    per_channel: bool,
    variable_first: bool,
    codes: Vec<u8>,
    codec_edits: Vec<(u16, u8)>,
    blob_edits: Vec<(u16, u8)>,
    truncate: Option<u16>,
}

fn next(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *seed >> 33
}

fn model(seed: &mut u64, bits: u8, predictor: Predictor, shape: &[usize]) -> Model {
    let d = shape.len();
    let a = 1usize << bits;
    let (axis_x, axis_y) = match d {
        0 => (NO_AXIS, NO_AXIS),
        1 => (0, NO_AXIS),
        _ => ((d - 1) as u8, (d - 2) as u8),
    };
    let axis_g = if d >= 3 { 0 } else { NO_AXIS };
    let group_len = if axis_g == NO_AXIS { 1 } else { shape[0] };
    let n_groups = (next(seed) % 3 + 1) as u8;
    let n_classes = [(next(seed) % 4 + 1) as u8, (next(seed) % 4 + 1) as u8, (next(seed) % 3 + 1) as u8];
    let lengths = predictor.property_lengths(bits);
    let classes = [0, 1, 2].map(|k| (0..lengths[k]).map(|_| (next(seed) % n_classes[k] as u64) as u8).collect::<Vec<u8>>());
    let tables = (next(seed) % 4 + 1) as usize;
    let contexts = n_groups as usize * n_classes.iter().map(|&c| c as usize).product::<usize>();
    let precision = bits + 1 + (next(seed) % (MAX_PRECISION - bits) as u64) as u8;
    let mut freqs = Vec::new();
    for _ in 0..tables {
        let counts: Vec<u64> = (0..a).map(|_| next(seed) % 50 * (next(seed) % 2)).collect();
        freqs.extend(table_from_counts(&counts, precision, 0.01));
    }
    Model {
        bits,
        predictor,
        axis_x,
        axis_y,
        axis_g,
        groups: (0..group_len).map(|_| (next(seed) % n_groups as u64) as u8).collect(),
        n_groups,
        classes,
        n_classes,
        context_map: (0..contexts).map(|_| (next(seed) % tables as u64) as u8).collect(),
        precision,
        freqs,
    }
}

fn fix_codec_crc(b: &mut [u8]) {
    if b.len() >= 16 {
        let mut h = crc32fast::Hasher::new();
        h.update(&b[..8]);
        h.update(&b[12..]);
        let crc = h.finalize().to_le_bytes();
        b[8..12].copy_from_slice(&crc);
    }
}

fn fix_blob(b: &mut [u8], id: &[u8; 32]) {
    if b.len() >= 7 {
        b[1..3].copy_from_slice(&id[..2]);
        let mut h = crc32fast::Hasher::new();
        h.update(id);
        h.update(&b[..3]);
        h.update(&b[7..]);
        let crc = h.finalize().to_le_bytes();
        b[3..7].copy_from_slice(&crc);
    }
}

const CAP: u64 = 64 << 20;

fuzz_target!(|input: Input| {
    let bits = input.bits % 8 + 1;
    let mut shape: Vec<usize> = input.dims.iter().take(4).map(|&d| (d % 40) as usize + 1).collect();
    if shape.iter().product::<usize>() > 150_000 {
        shape.truncate(2);
    }
    let n: usize = shape.iter().product();
    let mut seed = input.seed | 1;
    let predictor = if input.med { Predictor::Med } else { Predictor::None };
    let m = model(&mut seed, bits, predictor, &shape);
    let axis = (input.per_channel && !shape.is_empty()).then(|| (shape.len() - 1) as u8);
    let channels = axis.map_or(1, |a| shape[a as usize]);
    let levels = (1u32 << bits) - 1;
    let params: Vec<Affine> = (0..channels)
        .map(|_| Affine { scale: (next(&mut seed) % 1000) as f32 / 64.0, zero_point: (next(&mut seed) % (levels as u64 + 1)) as i32 })
        .collect();
    let quantizer = if input.per_sample {
        Quantizer::PerSample { axis }
    } else {
        Quantizer::Fixed { axis, params: params.clone() }
    };
    let mut spec: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
    if input.variable_first && shape.len() >= 2 && axis != Some(0) && m.axis_g != 0 {
        spec[0] = None;
    }
    let Ok(codec) = Codec::new(FloatType::F32, bits, spec, quantizer, m) else { return };
    let q: Vec<u8> = (0..n)
        .map(|i| if input.codes.is_empty() { 0 } else { input.codes[i % input.codes.len()] & levels as u8 })
        .collect();
    let blob = codec.encode_codes(&q, &shape, &params);
    let (info, back) = codec.decode_codes(&blob, CAP).expect("a valid blob decodes");
    assert_eq!(back, q);
    assert_eq!(info.shape, shape);
    // The edits.
    let mut cbytes = codec.to_bytes().to_vec();
    for &(at, v) in &input.codec_edits {
        if !cbytes.is_empty() {
            let i = at as usize % cbytes.len();
            cbytes[i] ^= v;
        }
    }
    fix_codec_crc(&mut cbytes);
    let Ok(c2) = Codec::from_bytes(&cbytes) else { return };
    let mut b = blob.clone();
    for &(at, v) in &input.blob_edits {
        if !b.is_empty() {
            let i = at as usize % b.len();
            b[i] ^= v;
        }
    }
    if let Some(t) = input.truncate {
        b.truncate(t as usize % (b.len() + 1));
    }
    fix_blob(&mut b, c2.id());
    let described = c2.describe(&b, CAP);
    if let Ok((info, out)) = c2.decode_codes(&b, CAP) {
        assert!(described.is_ok());
        assert_eq!(out.len(), info.shape.iter().product::<usize>());
        let _ = c2.decompress(&b, CAP).expect("codes that decode dequantize");
    }
});
