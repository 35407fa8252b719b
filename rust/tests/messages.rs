//! Every error message the decoder can give is given by some input here: the source is scanned
//! for `corrupt!(...)` messages and for the labels of truncated reads, and each must be produced
//! by the structure-aware generator's cases or by the hand-made containers below. A check no
//! input can reach is dead code: remove it, or list it in `API_GUARDS` with the reason it stays.

mod blobgen;

use std::collections::BTreeSet;
use std::path::Path;

use blobgen::{decode, inspect, Body, Gen, StreamBody, CAP};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use splitans::{CodecError, EncodeOptions};

/// Messages no container can produce, kept because they guard a public Rust function against
/// arguments the container parsers never pass.
const API_GUARDS: &[(&str, &str)] = &[
    (
        "rANS chunk with {lanes} lanes",
        "rans::Decoder::decode_chunk takes any states slice; streams have 1..=32 lanes",
    ),
    (
        "not a feature container",
        "feature::read_meta takes any header; decoders call it for kind 3 only",
    ),
    (
        "context mode with {bits}-bit codes",
        "context::decode takes any width; read_meta refuses context mode above 8 bits",
    ),
    (
        "a stream of {}-byte symbols where {}-byte symbols were expected",
        "stream::decode takes any bare stream; the container parsers check the width first",
    ),
    (
        "a codebook of {k} levels for {bits}-bit codes",
        "levels::Codebook::validate takes any codebook; the codec reader refuses K > 2^bits first",
    ),
    (
        "a codebook of {k} levels with {} thresholds",
        "levels::Codebook::validate takes any codebook; the codec reader reads K - 1 thresholds",
    ),
];

/// Labels of reads that cannot run short: the magic is checked before it is read; the header's
/// bytes were read (shape) before `records` takes them; a section's parameters are counted
/// against its length before they are read; a context body is at least 4 bytes before its
/// state is read; a context body takes what remains; a model's group entries and a chunk's
/// words are counted against what remains before they are read; "lane state" is read only by
/// the test-only reference decoder (pctx::decode_reference), after `parse_body`'s "lane states".
const UNTRUNCATABLE: &[&str] = &[
    "magic",
    "header",
    "scale",
    "zero point",
    "context state",
    "context body",
    "groups",
    "words",
    "lane state",
];

/// Every source file of the codec: rust/src and its layer folders, less the Python bindings.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("python") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(std::fs::read_to_string(p).unwrap());
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("rust/src"),
        &mut out,
    );
    assert!(out.len() >= 10);
    out
}

/// The first string literal after each occurrence of `pat`.
fn literals_after(src: &str, pat: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find(pat) {
        rest = &rest[i + pat.len()..];
        let Some(q) = rest.find('"') else { break };
        // Only a literal that is the macro's or method's first argument (nothing but spaces and
        // newlines before it), or a `take(n, "label")`'s second.
        let before = &rest[..q];
        let ok = before.trim().is_empty()
            || (pat == ".take(" && before.contains(',') && !before.contains([';', '{', '"']));
        let tail = &rest[q + 1..];
        let end = tail.find('"').unwrap();
        if ok {
            out.push(tail[..end].to_string());
        }
    }
    out
}

/// Whether `message` fits `template` (a format string: `{...}` matches any text).
fn fits(template: &str, message: &str) -> bool {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        pieces.push(&rest[..i]);
        rest = &rest[rest[i..].find('}').unwrap() + i + 1..];
    }
    pieces.push(rest);
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !message.starts_with(first) || !message.ends_with(last) {
        return false;
    }
    if pieces.len() == 1 {
        return message == first;
    }
    let mut pos = first.len();
    for p in &pieces[1..pieces.len() - 1] {
        match message[pos..].find(p) {
            Some(i) => pos += i + p.len(),
            None => return false,
        }
    }
    pos <= message.len() - last.len()
}

fn with_crc(mut data: Vec<u8>) -> Vec<u8> {
    let total = data.len() as u64;
    data[12..20].copy_from_slice(&total.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&data[..8]);
    h.update(&data[12..]);
    let crc = h.finalize();
    data[8..12].copy_from_slice(&crc.to_le_bytes());
    data
}

/// Containers that reach the checks random mutation rarely does.
fn hand_made() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let opts = EncodeOptions::default();
    let skew: Vec<u8> = (0..3000u32).map(|i| (i * i % 7) as u8).collect();
    let valid = splitans::encode_symbols(&skew, &opts).unwrap();
    // Every prefix (with its total_len and CRC set when long enough): header truncations.
    for len in 0..valid.len().min(120) {
        out.push(valid[..len].to_vec());
        if len >= 20 {
            out.push(with_crc(valid[..len].to_vec()));
        }
    }
    let blob = blobgen::Blob::parse(&valid).unwrap();
    let table_of = |b: &blobgen::Blob| match &b.records[0].body {
        Body::Stream(s) => match &s.body {
            StreamBody::Rans(r) => r.table.clone(),
            _ => unreachable!(),
        },
        _ => unreachable!(),
    };
    assert!(!table_of(&blob).freqs.is_empty());
    let set_table = |raw: &[u8], pad: bool| {
        // The stream's table replaced by `raw` bytes (symbols, runs, k and codes).
        let mut b = blob.clone();
        let Body::Stream(s) = &b.records[0].body else {
            unreachable!()
        };
        let mut bytes = Vec::new();
        let mut s = s.clone();
        s.body = StreamBody::Empty;
        s.mode = 3;
        let mut head = Vec::new();
        blobgen_stream_head(&s, &mut head);
        bytes.extend_from_slice(&head);
        bytes.extend_from_slice(&[12, 1, 16, 0]);
        bytes.extend_from_slice(raw);
        if pad {
            bytes.extend_from_slice(&[0; 64]);
        }
        b.records[0].body = Body::Bytes(bytes);
        b.write()
    };
    // A frequency code of 18 zero bits; a varint above 2^32 - 1; one of six bytes.
    out.push(set_table(&[2, 1, 0, 1, 0, 0, 0, 0], true));
    out.push(set_table(&[0xff, 0xff, 0xff, 0xff, 0x1f], true));
    out.push(set_table(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], true));
    // The stream ending inside a run whose varints are longer than the two bytes a run needs
    // at least: in its gap, then in its length.
    out.push(set_table(&[2, 1, 0x80, 0x80], false));
    out.push(set_table(&[2, 1, 0x81, 0x01], false));
    // Every record of a few containers cut at every length, lengths and CRC set to match.
    let x: Vec<f32> = (0..600)
        .map(|i| if i % 3 == 0 { (i % 17) as f32 } else { 0.0 })
        .collect();
    let opts = |mode| splitans::pipeline::feature::FeatureOptions {
        bits: 6,
        axis: None,
        range: splitans::pipeline::feature::Range::MinMax,
        mode,
        reshape: splitans::pipeline::feature::Reshape::Rows(60),
        non_finite: splitans::quant::NonFinite::Error,
        coder: EncodeOptions::default(),
        version: 1,
    };
    let feature = |mode| {
        splitans::pipeline::feature::compress(
            &x,
            &[20, 30],
            splitans::format::container::FloatType::F32,
            &opts(mode),
        )
        .unwrap()
        .0
    };
    use splitans::pipeline::feature::ModeChoice;
    for container in [
        valid.clone(),
        feature(ModeChoice::Csr),
        feature(ModeChoice::Context),
    ] {
        let b = blobgen::Blob::parse(&container).unwrap();
        for (i, r) in b.records.iter().enumerate() {
            let mut body = Vec::new();
            blobgen_write_body(&r.body, &mut body);
            for len in 0..body.len() {
                let mut cut = b.clone();
                cut.records[i].body = Body::Bytes(body[..len].to_vec());
                out.push(cut.write());
            }
        }
    }
    // One byte changed and the CRC left as it was.
    let mut bad = valid.clone();
    bad[40] ^= 1;
    out.push(bad);
    out
}

/// Compact containers (FORMAT.md 10), fitted codecs (9.2) and fitted blobs (9.5): valid ones of
/// every mode and quantizer, then every prefix and random byte edits, each with its checksum
/// (and a codec's declared length) set to match, so the parsers behind the checksums are
/// reached; and a few hand-made ones for the checks edits rarely reach.
fn fitted_and_compact(record: &mut dyn FnMut(Result<(), CodecError>)) {
    use rand::Rng;
    use splitans::format::container::FloatType;
    use splitans::model::fit::{fit_one, Sample};
    use splitans::pipeline::codec::{Codec, Quantizer};
    use splitans::pipeline::feature::{self, FeatureOptions, ModeChoice, Range, Reshape};
    use splitans::quant::{Affine, Channels, NonFinite};

    let mut rng = ChaCha8Rng::seed_from_u64(0xC0DEC);
    let channels = |shape: &[usize], a: usize| Channels {
        channels: shape[a],
        inner: shape[a + 1..].iter().product(),
    };
    let fix_compact = |d: &mut Vec<u8>| {
        if d.len() >= 5 {
            let mut h = crc32fast::Hasher::new();
            h.update(&d[..1]);
            h.update(&d[5..]);
            let crc = h.finalize();
            d[1..5].copy_from_slice(&crc.to_le_bytes());
        }
    };
    let fix_codec = |d: &mut Vec<u8>| {
        if d.len() >= 16 {
            let total = d.len() as u32;
            d[12..16].copy_from_slice(&total.to_le_bytes());
            let mut h = crc32fast::Hasher::new();
            h.update(&d[..8]);
            h.update(&d[12..]);
            let crc = h.finalize();
            d[8..12].copy_from_slice(&crc.to_le_bytes());
        }
    };
    let fix_blob = |d: &mut Vec<u8>, id: &[u8; 32]| {
        if d.len() >= 7 {
            d[1..3].copy_from_slice(&id[..2]);
            let mut h = crc32fast::Hasher::new();
            h.update(id);
            h.update(&d[..3]);
            h.update(&d[7..]);
            let crc = h.finalize();
            d[3..7].copy_from_slice(&crc.to_le_bytes());
        }
    };
    // Decodes and inspects a container: the two must agree on whether it is valid.
    let both = |record: &mut dyn FnMut(Result<(), CodecError>), d: &[u8]| {
        let (a, b) = (decode(d, CAP).map(|_| ()), inspect(d, CAP));
        assert_eq!(a.is_ok(), b.is_ok(), "decode {a:?} but inspect {b:?}");
        record(a);
        record(b);
    };
    // Edits: 1-3 bytes XORed with random values, half of them within the first `head` bytes.
    let edit = |rng: &mut ChaCha8Rng, d: &mut Vec<u8>, from: usize, head: usize| {
        if d.len() <= from {
            return;
        }
        for _ in 0..rng.gen_range(1..=3) {
            let end = if rng.gen_bool(0.5) {
                d.len().min(from + head)
            } else {
                d.len()
            };
            let i = rng.gen_range(from..end);
            d[i] ^= rng.gen_range(1..=255u8);
        }
    };
    // A tensor with structure (a smooth part, zeros, a few spikes).
    let tensor = |rng: &mut ChaCha8Rng, n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| match rng.gen_range(0..4) {
                0 => 0.0,
                1 => (i % 7) as f32 * 0.5,
                2 => rng.gen_range(-2.0..4.0),
                _ => (i as f32 * 0.01).sin(),
            })
            .collect()
    };

    // Compact containers.
    let shapes: [&[usize]; 5] = [&[40], &[6, 9], &[3, 5, 7], &[2, 3, 4, 5], &[1, 4, 6, 6]];
    let mut compact = Vec::new();
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = tensor(&mut rng, n);
        for (bits, mode) in [
            (1, ModeChoice::Dense),
            (4, ModeChoice::Csr),
            (3, ModeChoice::Context),
            (2, ModeChoice::Pctx),
            (6, ModeChoice::Pctx),
            (10, ModeChoice::Dense),
            (12, ModeChoice::Csr),
            (8, ModeChoice::Best),
        ] {
            let d = shape.len();
            let axis = (k % 2 == 1 && d >= 2).then(|| (1u8, channels(shape, 1)));
            let fo = FeatureOptions {
                bits,
                axis,
                range: Range::MinMax,
                mode,
                reshape: Reshape::Model,
                non_finite: NonFinite::Error,
                coder: EncodeOptions::default(),
                version: 3,
            };
            let (b, _) = feature::compress(&x, shape, FloatType::F32, &fo).unwrap();
            assert_eq!(b[0], 0xF3);
            compact.push(b);
        }
    }
    for b in &compact {
        record(decode(b, CAP).map(|_| ()));
        for len in 0..b.len() {
            record(decode(&b[..len], CAP).map(|_| ()));
            let mut cut = b[..len].to_vec();
            fix_compact(&mut cut);
            both(record, &cut);
        }
        for _ in 0..1500 {
            let mut d = b.clone();
            edit(&mut rng, &mut d, 5, 24);
            fix_compact(&mut d);
            both(record, &d);
        }
        // Bytes appended to the payload.
        let mut d = b.clone();
        d.extend_from_slice(&[0, 0, 0]);
        fix_compact(&mut d);
        record(decode(&d, CAP).map(|_| ()));
    }
    // A shape varint of eleven bytes; 33 dimensions; reserved bits of the bits/mode byte.
    for patch in [
        vec![
            0xF3, 0, 0, 0, 0, 9, 0x03, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
            0x80, 0x01,
        ],
        vec![0xF3, 0, 0, 0, 0, 9, 0x03, 33, 1, 1, 1],
        vec![0xF3, 0, 0, 0, 0, 9, 0x43, 1, 1, 255, 0, 0, 0, 0, 0, 0],
    ] {
        let mut d = patch;
        fix_compact(&mut d);
        record(decode(&d, CAP).map(|_| ()));
    }

    // A pcontext container of two chunks (FORMAT.md 9.4): its body cut short, its directory
    // edited.
    let big_shape = [1usize, 4, 130, 130];
    let x = tensor(&mut rng, big_shape.iter().product());
    let fo = FeatureOptions {
        bits: 4,
        axis: None,
        range: Range::MinMax,
        mode: ModeChoice::Pctx,
        reshape: Reshape::Model,
        non_finite: NonFinite::Error,
        coder: EncodeOptions::default(),
        version: 3,
    };
    let (big, _) = feature::compress(&x, &big_shape, FloatType::F32, &fo).unwrap();
    record(decode(&big, CAP).map(|_| ()));
    // A smooth ramp's container, whose model (9.3: `bits` 4, then the predictor) is med's, with
    // predictor 2 (the same class table lengths), a fitted codec's only: at every place in the
    // header where those two bytes could be.
    let ramp: Vec<f32> = (0..big_shape.iter().product::<usize>())
        .map(|i| ((i % 130) + (i / 130) % 130) as f32 * 0.05)
        .collect();
    let (smooth, _) = feature::compress(&ramp, &big_shape, FloatType::F32, &fo).unwrap();
    let mut found = false;
    for k in 0..40 {
        if smooth[k] == 4 && smooth[k + 1] == 1 {
            let mut d = smooth.clone();
            d[k + 1] = 2;
            fix_compact(&mut d);
            found |= decode(&d, CAP).is_err();
            record(decode(&d, CAP).map(|_| ()));
        }
    }
    assert!(found, "no med model in {:02x?}", &smooth[..40]);
    for cut in (1..64).chain((64..big.len() - 40).step_by(997)) {
        let mut d = big[..big.len() - cut].to_vec();
        fix_compact(&mut d);
        both(record, &d);
    }
    for _ in 0..60 {
        let mut d = big.clone();
        edit(&mut rng, &mut d, 5, 200);
        fix_compact(&mut d);
        both(record, &d);
    }

    // Fitted codecs and their blobs.
    let mut codecs = Vec::new();
    for (shape, bits, per_sample, axis, variable) in [
        (vec![4usize, 6, 6], 4u8, true, Some(0u8), false),
        (vec![3, 5, 7], 2, false, None, false),
        (vec![5, 8], 3, true, None, true),
        (vec![5, 8], 8, false, Some(1), true),
        (vec![30], 6, false, None, false),
        (vec![2, 3, 4, 4], 5, true, Some(1), false),
        (vec![4, 130, 130], 4, false, None, false),
    ] {
        let n: usize = shape.iter().product();
        let levels = (1u32 << bits) - 1;
        let codes: Vec<u8> = (0..n)
            .map(|i| {
                if rng.gen_bool(0.4) {
                    0
                } else {
                    ((i * 7 + rng.gen_range(0..3)) as u32 % (levels + 1)) as u8
                }
            })
            .collect();
        let ch = axis.map_or(Channels::TENSOR, |a| channels(&shape, a as usize));
        let fills = vec![0u8; ch.channels];
        let model = fit_one(
            &Sample {
                codes: &codes,
                shape: &shape,
                fills: &fills,
                fill_ch: ch,
            },
            bits,
            axis.map(usize::from),
        )
        .unwrap();
        let params: Vec<Affine> = (0..ch.channels)
            .map(|c| Affine {
                scale: 0.25 + c as f32,
                zero_point: (c as u32 % (levels + 1)) as i32,
            })
            .collect();
        let quantizer = if per_sample {
            Quantizer::PerSample { axis }
        } else {
            Quantizer::Fixed {
                axis,
                params: params.clone(),
            }
        };
        let mut spec: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
        if variable {
            spec[0] = None;
        }
        let codec = Codec::new(FloatType::F32, bits, spec, quantizer, model).unwrap();
        let blob = codec.encode_codes(&codes, &shape, &params);
        assert!(codec.decode_codes(&blob, CAP).is_ok());
        codecs.push((codec, blob, codes, shape, params));
    }
    // Version-2 codecs: a dead zone per channel, and trained levels (two codebooks of 4 levels
    // for 2-bit codes, FORMAT.md 9.2).
    {
        use splitans::layout::levels::Codebook;
        for (shape, bits, levels) in [(vec![4usize, 6, 6], 3u8, false), (vec![3, 5, 7], 2, true)] {
            let n: usize = shape.iter().product();
            let ch = channels(&shape, 0);
            let top = if levels { 3u32 } else { 1 << bits };
            let codes: Vec<u8> = (0..n)
                .map(|i| {
                    if rng.gen_bool(0.4) {
                        1
                    } else {
                        ((i * 5 + rng.gen_range(0..2)) as u32 % top) as u8
                    }
                })
                .collect();
            let fills = vec![1u8; ch.channels];
            let model = fit_one(
                &Sample {
                    codes: &codes,
                    shape: &shape,
                    fills: &fills,
                    fill_ch: ch,
                },
                bits,
                Some(0),
            )
            .unwrap();
            let params: Vec<Affine> = (0..ch.channels)
                .map(|c| Affine {
                    scale: 0.5 + c as f32,
                    zero_point: 1,
                })
                .collect();
            let quantizer = if levels {
                Quantizer::Levels {
                    axis: Some(0),
                    books: vec![
                        // Three levels for 2-bit codes: a code 3 is past its last level.
                        Codebook {
                            levels: vec![-1.0, 0.0, 0.5],
                            thresholds: vec![-0.25, 0.25],
                        },
                        Codebook {
                            levels: vec![-3.0, 0.0, 1.0, 4.0],
                            thresholds: vec![-1.5, 0.5, 2.5],
                        },
                    ],
                    index: vec![0, 1, 0],
                }
            } else {
                Quantizer::DeadZone {
                    axis: Some(0),
                    params: params.clone(),
                    dead_zone: vec![0.25, 0.5, 0.0, 1.0],
                }
            };
            let spec: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
            let codec = Codec::new(FloatType::F32, bits, spec, quantizer, model).unwrap();
            assert_eq!(codec.to_bytes()[4], 2);
            if levels {
                // Two codebook indices for three channels: the index count, then indices 0, 1, 0,
                // follow the last threshold (2.5).
                let b = codec.to_bytes();
                let at = b
                    .windows(8)
                    .position(|w| w == [0, 0, 0x20, 0x40, 3, 0, 1, 0])
                    .expect("the codebook indices")
                    + 4;
                let mut d = b[..at].to_vec();
                d.extend_from_slice(&[2, 0, 1]);
                d.extend_from_slice(&b[at + 4..]);
                fix_codec(&mut d);
                record(Codec::from_bytes(&d).map(|_| ()));
                // Two indices counted, the bytes end inside the first one's varint (random
                // edits found this only by luck, and lost it when blob lengths moved).
                let mut d = b[..at].to_vec();
                d.extend_from_slice(&[2, 0x80, 0x80]);
                fix_codec(&mut d);
                record(Codec::from_bytes(&d).map(|_| ()));
                // A level that is not a number (the first, -1.0).
                let mut d = b.to_vec();
                let at = 16
                    + d[16..]
                        .windows(4)
                        .position(|w| w == (-1.0f32).to_le_bytes())
                        .expect("level -1");
                d[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
                fix_codec(&mut d);
                record(Codec::from_bytes(&d).map(|_| ()));
                // A raw blob of code 3 everywhere: past the last level of the three-level book.
                let n: usize = shape.iter().product();
                let mut body = vec![0xFFu8; n * 2 / 8];
                body.push((1u8 << (n * 2 % 8)) - 1);
                let raw = codec.assemble(
                    splitans::pipeline::codec::BlobKind::Raw,
                    &shape,
                    &params,
                    &body,
                );
                record(codec.decode_codes(&raw, CAP).map(|_| ()));
            }
            let blob = codec.encode_codes(&codes, &shape, &params);
            assert!(codec.decode_codes(&blob, CAP).is_ok());
            codecs.push((codec, blob, codes, shape, params));
        }
    }
    // A sample too large to count: a variable first axis before two of 2^31.
    let small_shape = &codecs[1].3;
    let shape3 = [1usize, small_shape[1], small_shape[2]];
    let codes3 = vec![0u8; shape3.iter().product()];
    let model = fit_one(
        &Sample {
            codes: &codes3,
            shape: &shape3,
            fills: &[0],
            fill_ch: Channels::TENSOR,
        },
        2,
        None,
    )
    .unwrap();
    let huge = Codec::new(
        FloatType::F32,
        2,
        vec![None, Some(1 << 31), Some(1 << 31)],
        Quantizer::PerSample { axis: None },
        model,
    )
    .unwrap();
    let mut d = vec![0xE0, 0, 0, 0, 0, 0, 0, 1];
    fix_blob(&mut d, huge.id());
    record(huge.decode_codes(&d, CAP).map(|_| ()));
    let bytes_of = |c: &Codec| c.to_bytes().to_vec();
    // Plane lanes (flags 1, version 4) on a model without an up axis.
    {
        let c = &codecs[0].0;
        let mut model = Vec::new();
        c.model.write(&mut model);
        let mut d = bytes_of(c);
        let axis_y = d.len() - model.len() + 3;
        d[4] = 4;
        d[5] = 1;
        d[axis_y] = 255;
        fix_codec(&mut d);
        record(Codec::from_bytes(&d).map(|_| ()));
    }
    // The quantizer axis on the variable axis (the shape's varints are one byte each here):
    // per sample (version 1 has no per-token parameters), and fixed (never along it).
    for k in [2, 3] {
        let mut d = bytes_of(&codecs[k].0);
        d[16 + 3 + 2 + 1] = 0;
        fix_codec(&mut d);
        record(Codec::from_bytes(&d).map(|_| ()));
    }
    for (codec, blob, codes, shape, params) in &codecs {
        let cb = bytes_of(codec);
        for len in 0..cb.len() {
            let mut cut = cb[..len].to_vec();
            record(Codec::from_bytes(&cut).map(|_| ()));
            fix_codec(&mut cut);
            record(Codec::from_bytes(&cut).map(|_| ()));
        }
        for _ in 0..3000 {
            let mut d = cb.clone();
            edit(&mut rng, &mut d, 0, 40);
            if rng.gen_bool(0.9) {
                fix_codec(&mut d);
            }
            record(Codec::from_bytes(&d).map(|_| ()));
        }
        let mut longer = cb.clone();
        longer.push(0);
        fix_codec(&mut longer);
        record(Codec::from_bytes(&longer).map(|_| ()));
        let mut later = cb.clone();
        later[4] = 0;
        record(Codec::from_bytes(&later).map(|_| ()));

        let dec = |d: &[u8]| codec.decode_codes(d, CAP).map(|_| ());
        for len in (0..blob.len()).filter(|&l| l < 300 || blob.len() - l < 64 || l % 997 == 0) {
            record(dec(&blob[..len]));
            let mut cut = blob[..len].to_vec();
            fix_blob(&mut cut, codec.id());
            record(dec(&cut));
        }
        for _ in 0..if blob.len() > 1000 { 60 } else { 3000 } {
            let mut d = blob.clone();
            edit(&mut rng, &mut d, 0, 12);
            if rng.gen_bool(0.9) {
                fix_blob(&mut d, codec.id());
            }
            record(dec(&d));
        }
        // Every blob kind on this body; an empty variable dimension; bytes appended.
        for tag in 0xE0..=0xE3u8 {
            let mut d = blob.clone();
            d[0] = tag;
            fix_blob(&mut d, codec.id());
            record(dec(&d));
            d.truncate(7);
            d.push(0);
            d.push(1);
            fix_blob(&mut d, codec.id());
            record(dec(&d));
        }
        let mut d = blob[..7].to_vec();
        d.push(0);
        d.extend_from_slice(&blob[8..]);
        fix_blob(&mut d, codec.id());
        record(dec(&d));
        let mut d = blob.clone();
        d.extend_from_slice(&[1, 2, 3, 4]);
        fix_blob(&mut d, codec.id());
        record(dec(&d));
        // A raw blob whose padding bits are set.
        let mut raw = codec.encode_codes(codes, shape, params);
        raw[0] = 0xE1;
        raw.truncate(codec.describe(&raw, CAP).map_or(7, |i| i.header_bytes));
        let n: usize = shape.iter().product();
        raw.extend(std::iter::repeat_n(0xFFu8, codec.raw_len(n)));
        fix_blob(&mut raw, codec.id());
        record(dec(&raw));
        // Other inputs: another codec's blob, a container, nothing, a fitted blob as a container.
        record(dec(&[]));
        record(dec(&compact[0]));
        record(dec(b"SPNS\x01\x00\x00\x00"));
        record(decode(blob, CAP).map(|_| ()));
        for (other, ob, ..) in &codecs {
            if other.id() != codec.id() {
                record(dec(ob));
            }
        }
    }
}

fn blobgen_write_body(body: &Body, out: &mut Vec<u8>) {
    let mut b = blobgen::Blob::parse(
        &splitans::encode_symbols(&[1u8, 2], &EncodeOptions::default()).unwrap(),
    )
    .unwrap();
    b.records = vec![blobgen::Record {
        len: None,
        body: body.clone(),
    }];
    let bytes = b.write();
    let header = 24 + 8 * b.shape.len() + 8;
    out.extend_from_slice(&bytes[header..]);
}

fn blobgen_stream_head(s: &blobgen::Stream, out: &mut Vec<u8>) {
    out.push(s.mode);
    out.push(s.width);
    out.extend_from_slice(&s.n.to_le_bytes());
}

#[test]
fn every_decoder_message_is_reachable() {
    let src = sources();
    let mut templates = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for s in &src {
        templates.extend(literals_after(s, "corrupt!("));
        for pat in [".u8(", ".u16(", ".u32(", ".u64(", ".varint(", ".take("] {
            labels.extend(literals_after(s, pat));
        }
    }
    templates.retain(|t| !t.starts_with("truncated {what}"));
    println!(
        "{} messages, {} read labels: {labels:?}",
        templates.len(),
        labels.len()
    );
    assert!(templates.len() >= 60, "{templates:#?}");
    assert!(labels.len() >= 40, "{labels:#?}");

    let mut messages = BTreeSet::new();
    let mut record = |data: &[u8]| {
        for r in [decode(data, CAP).map(|_| ()), inspect(data, CAP)] {
            if let Err(CodecError::Corrupt(m)) = r {
                messages.insert(m);
            }
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0xE220);
    let mut bytes = vec![0u8; 1024];
    for _ in 0..12_000 {
        rng.fill_bytes(&mut bytes);
        if let Some((_, _, data, _)) = blobgen::case(&mut Gen::new(&bytes)) {
            record(&data);
        }
    }
    for data in hand_made() {
        record(&data);
    }
    fitted_and_compact(&mut |r| {
        if let Err(CodecError::Corrupt(m)) = r {
            messages.insert(m);
        }
    });
    let missing: Vec<_> = templates
        .iter()
        .filter(|t| !API_GUARDS.iter().any(|(g, _)| g == t))
        .filter(|t| {
            !messages
                .iter()
                .any(|m| fits(t, m) || fits(&format!("chunk {{}}: {t}"), m))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "messages no input produced: {missing:#?}"
    );
    let missing: Vec<_> = labels
        .iter()
        .filter(|l| !UNTRUNCATABLE.contains(&l.as_str()))
        .filter(|l| {
            !messages
                .iter()
                .any(|m| m.starts_with(&format!("truncated {l}:")))
        })
        .collect();
    assert!(missing.is_empty(), "reads never truncated: {missing:#?}");
    // The guards are still in the source (or the list is stale).
    for (g, _) in API_GUARDS {
        assert!(
            templates.contains(*g),
            "{g} is no longer in the source: drop it from API_GUARDS"
        );
    }
}

#[test]
fn the_template_matcher_matches() {
    assert!(fits("a {x} b", "a 12 b"));
    assert!(!fits("a {x} b", "a 12 c"));
    assert!(fits("{} rows", "5 rows"));
    assert!(fits("exact", "exact"));
    assert!(!fits("exact", "exactly"));
    assert!(fits("x {} y {} z", "x 1 y 2 z"));
    assert!(!fits("x {} y {} z", "x 1 z"));
}
