//! Tests of the parallel context coder: the fast coders against the reference, round trips,
//! the model's serialization, and refusals of corrupt bodies.

use super::*;
use crate::model::fit::{fit, table_from_counts, Calibration, FitOptions, Sample};

pub(super) fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

/// A valid model with random classes, context map and tables.
pub(super) fn random_model(
    seed: &mut u64,
    bits: u8,
    predictor: Predictor,
    shape: &[usize],
) -> Model {
    let d = shape.len();
    let a = 1usize << bits;
    let (axis_x, axis_y) = match d {
        0 => (NO_AXIS, NO_AXIS),
        1 => (0, NO_AXIS),
        // Channels last every other time: left and up not the raster's (the lane decoders).
        _ if d >= 3 && lcg(seed).is_multiple_of(2) => ((d - 2) as u8, (d - 3) as u8),
        _ => ((d - 1) as u8, (d - 2) as u8),
    };
    let axis_g = if d >= 3 { 0 } else { NO_AXIS };
    let group_len = if axis_g == NO_AXIS { 1 } else { shape[0] };
    let n_groups = (lcg(seed) % 3 + 1) as u8;
    // Up to 16 classes every fourth time (the largest context offsets of the AVX-512 kernel's
    // in-register class lookups).
    let most = if lcg(seed).is_multiple_of(4) { 16 } else { 4 };
    let n_classes = [
        (lcg(seed) % most + 1) as u8,
        (lcg(seed) % most + 1) as u8,
        (lcg(seed) % most + 1) as u8,
    ];
    let lengths = predictor.property_lengths(bits);
    let mut classes = [0, 1, 2].map(|k| {
        (0..lengths[k])
            .map(|_| (lcg(seed) % n_classes[k] as u64) as u8)
            .collect::<Vec<u8>>()
    });
    // Property a's classes the same from value 255 on every third time (they then fit the
    // AVX-512 kernel's in-register lookup, `Tables::class_bytes`, at 7 and 8 bits too), and
    // from 256 on another third (they do not, unless value 255's class is the same).
    let from = [255, 256, usize::MAX][(lcg(seed) % 3) as usize];
    if classes[0].len() > from {
        let last = classes[0][from];
        classes[0][from..].fill(last);
    }
    let tables = (lcg(seed) % 5 + 1) as usize;
    let contexts = n_groups as usize * n_classes.iter().map(|&c| c as usize).product::<usize>();
    let precision = bits + 1 + (lcg(seed) % (MAX_PRECISION - bits) as u64) as u8;
    let mut freqs = Vec::new();
    for _ in 0..tables {
        let counts: Vec<u64> = (0..a).map(|_| lcg(seed) % 50 * (lcg(seed) % 2)).collect();
        freqs.extend(table_from_counts(&counts, precision, 0.01));
    }
    // Lanes of whole planes every other time there is an up axis (FORMAT.md 9.4).
    let plane_lanes = axis_y != NO_AXIS && lcg(seed).is_multiple_of(2);
    Model {
        plane_lanes,
        bits,
        predictor,
        axis_x,
        axis_y,
        axis_g,
        groups: (0..group_len)
            .map(|_| (lcg(seed) % n_groups as u64) as u8)
            .collect(),
        n_groups,
        classes,
        n_classes,
        context_map: (0..contexts)
            .map(|_| (lcg(seed) % tables as u64) as u8)
            .collect(),
        precision,
        freqs,
    }
}

fn sparse_codes(seed: &mut u64, n: usize, bits: u8, zero: u8) -> Vec<u8> {
    let a = 1u64 << bits;
    (0..n)
        .map(|_| {
            let r = lcg(seed);
            if r.is_multiple_of(3) {
                (r / 3 % a) as u8
            } else {
                zero
            }
        })
        .collect()
}

#[test]
fn round_trips_random_models() {
    let mut seed = 11u64;
    let shapes: &[&[usize]] = &[
        &[],
        &[0],
        &[1],
        &[37],
        &[3, 5, 7],
        &[2, 40, 30],
        &[1, 3, 150, 200],
        &[80000],
        // Plane lanes: two chunks of 32 and 8 whole planes; 32 planes and a last one of one.
        &[1, 40, 50, 60],
        &[33, 48, 48],
        // Segments of 7 planes of 900, 8 lanes, the last of one plane.
        &[50, 30, 30],
        // Planes of 2,116: chunks of 32 lanes and 16 (two and one vectors of 16 lanes).
        &[48, 46, 46],
        // Two whole chunks of 32 lanes alike (decoded together by the AVX-512 kernel), by
        // either rule, and a last one.
        &[64, 20, 110],
        // Plane lanes: 32 lanes of 3 planes, the last of one (a tail of 1,800 steps after the
        // vector kernels, where the group and fill counters go on from theirs).
        &[94, 30, 30],
        // Two groups along axis 0 and two fill channels along axis 1, crossed by lanes of
        // 2,048 (the vector kernels' counters of two channels).
        &[2, 2, 16500],
        // A last chunk of 8 lanes whose last lane is 4 steps short (a tail after the AVX2
        // kernel, where the scalar decoder goes on from its counters), rows of 12.
        &[8801, 12],
        // The same with rows of 20: the tail's first rows read folded residuals that the AVX2
        // kernel wrote out in whole stages, not in its last partial one (5,002 steps).
        &[5279, 20],
    ];
    for bits in 1..=MAX_BITS {
        for predictor in [Predictor::None, Predictor::Med, Predictor::MedResidual] {
            for &shape in shapes {
                let m = random_model(&mut seed, bits, predictor, shape);
                let group_len = (m.axis_g != NO_AXIS).then(|| shape[0]);
                m.validate(shape.len(), group_len).unwrap();
                let mut bytes = Vec::new();
                m.write(&mut bytes);
                let mut r = Reader::new(&bytes);
                // The model's bytes do not hold plane lanes (the codec's flags do).
                let mut read = Model::read(&mut r).unwrap();
                read.plane_lanes = m.plane_lanes;
                assert_eq!(read, m);
                assert_eq!(r.remaining(), 0);
                let n: usize = shape.iter().product();
                let zero = (lcg(&mut seed) % (1 << bits)) as u8;
                let q = sparse_codes(&mut seed, n, bits, zero);
                let tables = Tables::new(&m);
                let body = encode(&m, &tables, shape, &q, &[zero], Channels::TENSOR);
                let reference = encode_reference(&m, &tables, shape, &q, &[zero], Channels::TENSOR);
                assert_eq!(body, reference, "bits {bits} {predictor:?} {shape:?}");
                let mut slow = vec![0u8; n];
                decode_reference(
                    &m,
                    &tables,
                    shape,
                    &body,
                    &[zero],
                    Channels::TENSOR,
                    &mut slow,
                )
                .unwrap();
                assert_eq!(slow, q);
                let mut back = vec![0u8; n];
                decode(
                    &m,
                    &tables,
                    shape,
                    &body,
                    &[zero],
                    Channels::TENSOR,
                    &mut back,
                )
                .unwrap();
                assert_eq!(back, q, "bits {bits} {predictor:?} {shape:?}");
                // The scalar decoder throughout, as CPUs without the vector ones run it, and
                // the AVX2 kernel where the AVX-512 one is what `decode` runs.
                for kernel in [Kernel::Scalar, Kernel::Avx2Gathers, Kernel::Avx2Loads] {
                    let mut other = vec![0u8; n];
                    decode_into(
                        &m,
                        &tables,
                        shape,
                        &body,
                        &[zero],
                        Channels::TENSOR,
                        &mut other,
                        n,
                        kernel,
                    )
                    .unwrap();
                    assert_eq!(other, q, "{kernel:?}: bits {bits} {predictor:?} {shape:?}");
                }
                // Per-channel fill values along the last axis (a channel boundary at every
                // element) and along the one before it (at every row): the encoder's and
                // decoders' channel counters must wrap where the reference's do.
                let mut axes = vec![];
                if let Some(&last) = shape.last() {
                    axes.push(Channels {
                        channels: last,
                        inner: 1,
                    });
                }
                if shape.len() >= 2 {
                    axes.push(Channels {
                        channels: shape[shape.len() - 2],
                        inner: shape[shape.len() - 1],
                    });
                }
                for ch in axes.into_iter().filter(|c| c.channels > 1) {
                    let fill: Vec<u8> = (0..ch.channels)
                        .map(|_| (lcg(&mut seed) % (1 << bits)) as u8)
                        .collect();
                    let body = encode(&m, &tables, shape, &q, &fill, ch);
                    let reference = encode_reference(&m, &tables, shape, &q, &fill, ch);
                    assert_eq!(
                        body, reference,
                        "per channel {ch:?}: {bits} {predictor:?} {shape:?}"
                    );
                    let mut back = vec![0u8; n];
                    decode(&m, &tables, shape, &body, &fill, ch, &mut back).unwrap();
                    assert_eq!(
                        back, q,
                        "per channel {ch:?}: {bits} {predictor:?} {shape:?}"
                    );
                }
                if body.len() >= 2 {
                    let mut out = vec![0u8; n];
                    let short = &body[..body.len() - 2];
                    assert!(decode(
                        &m,
                        &tables,
                        shape,
                        short,
                        &[zero],
                        Channels::TENSOR,
                        &mut out
                    )
                    .is_err());
                    let mut long = body.clone();
                    long.extend_from_slice(&[0, 0]);
                    assert!(decode(
                        &m,
                        &tables,
                        shape,
                        &long,
                        &[zero],
                        Channels::TENSOR,
                        &mut out
                    )
                    .is_err());
                }
            }
        }
    }
}

/// An 8-bit model of `tables` tables at precision 15, each of 256 symbols of random frequencies,
/// its contexts spread over them at random, for a sample of `shape` (group axis first).
fn with_many_tables(seed: &mut u64, predictor: Predictor, shape: &[usize], tables: usize) -> Model {
    let bits = 8;
    let mut m = random_model(seed, bits, predictor, shape);
    m.precision = MAX_PRECISION;
    m.freqs = (0..tables)
        .flat_map(|_| {
            let counts: Vec<u64> = (0..1 << bits).map(|_| lcg(seed) % 50).collect();
            table_from_counts(&counts, MAX_PRECISION, 0.01)
        })
        .collect();
    for t in m.context_map.iter_mut() {
        *t = (lcg(seed) % tables as u64) as u8;
    }
    m.validate(shape.len(), Some(shape[0])).unwrap();
    m
}

/// Models whose slot tables pass `MAX_SLOT_TABLE` (256 tables at precision 15: 8 MiB) have no
/// vector tables (`Tables::slots` and `padded_map` empty): the encoder's lookups and the decoder
/// take their scalar paths, and give the reference's bytes and codes.
#[test]
fn round_trips_models_past_the_vector_slot_table() {
    let mut seed = 29u64;
    let shape: &[usize] = &[3, 40, 50];
    let n: usize = shape.iter().product();
    for predictor in [Predictor::None, Predictor::Med, Predictor::MedResidual] {
        let bits = 8;
        let tables = MAX_TABLES;
        let m = with_many_tables(&mut seed, predictor, shape, tables);
        let tb = Tables::new(&m);
        assert!(tables << MAX_PRECISION > MAX_SLOT_TABLE);
        assert!(tb.slots.is_empty() && tb.padded_map.is_empty());
        agrees_with_reference(&m, shape, &sparse_codes(&mut seed, n, bits, 3), 3);
    }
}

/// Models whose slot tables pass `FAST_SLOT_BYTES` (64 tables at precision 15: 2 MiB) have a
/// coarse table, from which the AVX2 kernel takes a lane's symbol first, and the slot table
/// only for lanes past that symbol's interval (many here: 256 symbols of random frequencies),
/// and a table of runs, from which the AVX-512 kernel takes it, and the slot table only for
/// runs of four symbols or more.
/// Every kernel gives the reference's codes, with two whole chunks decoded together and one
/// alone.
#[test]
fn round_trips_models_with_a_coarse_slot_table() {
    let mut seed = 31u64;
    let shape: &[usize] = &[64, 20, 110];
    let n: usize = shape.iter().product();
    for predictor in [Predictor::None, Predictor::Med, Predictor::MedResidual] {
        let bits = 8;
        let tables = 64;
        let m = with_many_tables(&mut seed, predictor, shape, tables);
        let tb = Tables::new(&m);
        // The vector tables (slot, coarse) are built where the vector decoders run.
        if cfg!(target_arch = "x86_64") {
            assert_eq!(tb.coarse_bits, 12);
            assert_eq!(tb.coarse.len(), (tables << 12) + 3);
            // Runs of 16 slots of every kind: one symbol, two, three, and more (the slot table).
            assert_eq!(tb.runs.len(), (tables << 11) + 1);
            let kind = |e: &u16| ((e >> 8) & 15 != 0, e >> 12 != 0);
            for want in [(false, false), (true, false), (true, true), (false, true)] {
                assert!(tb.runs.iter().any(|e| kind(e) == want), "{want:?}");
            }
        } else {
            assert!(tb.slots.is_empty() && tb.coarse.is_empty() && tb.runs.is_empty());
        }
        let q = sparse_codes(&mut seed, n, bits, 3);
        agrees_with_reference(&m, shape, &q, 3);
        let body = encode(&m, &tb, shape, &q, &[3], Channels::TENSOR);
        for kernel in [Kernel::Scalar, Kernel::Avx2Gathers, Kernel::Avx2Loads] {
            let mut back = vec![0u8; n];
            decode_into(
                &m,
                &tb,
                shape,
                &body,
                &[3],
                Channels::TENSOR,
                &mut back,
                n,
                kernel,
            )
            .unwrap();
            assert_eq!(back, q, "{kernel:?} {predictor:?}");
        }
    }
}

/// A code or a fill past the alphabet is refused before any table is read (the lookups read
/// without bounds checks at indices that follow from them).
#[test]
fn encode_refuses_codes_past_the_alphabet() {
    let mut seed = 5u64;
    let shape = [4, 30, 30];
    let m = random_model(&mut seed, 4, Predictor::MedResidual, &shape);
    let tb = Tables::new(&m);
    let mut q = sparse_codes(&mut seed, 3600, 4, 0);
    // The panic's message, or "" when it codes.
    let refusal = |q: Vec<u8>, fill: u8| {
        std::panic::catch_unwind(|| encode(&m, &tb, &shape, &q, &[fill], Channels::TENSOR))
            .err()
            .map_or(String::new(), |e| *e.downcast::<String>().unwrap())
    };
    assert_eq!(refusal(q.clone(), 15), "");
    let past = "a code or fill of 2^4 or more";
    assert_eq!(refusal(q.clone(), 16), past);
    q[1234] = 16;
    assert_eq!(refusal(q, 0), past);
}

/// Codes `q` (whose code of zero is `zero`) with `m` and checks the body against the reference
/// encoder's and the decoded codes against `q`.
fn agrees_with_reference(m: &Model, shape: &[usize], q: &[u8], zero: u8) {
    let tb = Tables::new(m);
    let body = encode(m, &tb, shape, q, &[zero], Channels::TENSOR);
    let reference = encode_reference(m, &tb, shape, q, &[zero], Channels::TENSOR);
    assert_eq!(body, reference, "{:?} {shape:?}", m.predictor);
    let mut back = vec![0u8; q.len()];
    decode(m, &tb, shape, &body, &[zero], Channels::TENSOR, &mut back).unwrap();
    assert_eq!(back, q, "{:?} {shape:?}", m.predictor);
}

/// A layout whose left is the last axis but whose up is not the next one (x = 3, y = 1 of four
/// axes) is no raster: the encoder and decoders take their lane paths, and agree with the
/// reference.
#[test]
fn round_trips_an_up_axis_that_is_not_the_next() {
    let mut seed = 31u64;
    // The second shape has two whole chunks of 32 lanes alike, which a raster layout would
    // decode together.
    for shape in [&[2, 5, 12, 40][..], &[4, 5, 80, 90]] {
        let n: usize = shape.iter().product();
        for predictor in [Predictor::None, Predictor::Med, Predictor::MedResidual] {
            let bits = 5;
            let mut m = random_model(&mut seed, bits, predictor, shape);
            (m.axis_x, m.axis_y, m.plane_lanes) = (3, 1, false);
            m.validate(shape.len(), Some(shape[0])).unwrap();
            agrees_with_reference(&m, shape, &sparse_codes(&mut seed, n, bits, 7), 7);
        }
    }
}

#[test]
fn chunks_follow_the_text_of_the_format() {
    let mut seed = 9u64;
    let mut cases: Vec<(usize, usize)> = vec![
        (0, 0),
        (0, 12544),
        (401_408, 12544),
        (414_000, 12000),
        (47040, 196),
        (9000, 3000),
        (65536, 65536),
        (131_072, 65536),
        (131_073, 131_073),
        (200_704, 3136),
        (8191, 8191),
    ];
    for _ in 0..3000 {
        let plane = 1 + (lcg(&mut seed) % 70_000) as usize;
        let planes = 1 + (lcg(&mut seed) % 40) as usize;
        cases.push((plane * planes, plane));
        cases.push((plane * planes, 0));
    }
    for (n, plane) in cases {
        let got: Vec<_> = chunks(n, plane)
            .iter()
            .map(|c| (c.start, c.m, c.lanes, c.seg))
            .collect();
        assert_eq!(got, chunks_reference(n, plane), "n {n} plane {plane}");
        // Every element in one lane, lanes within 32, and with plane lanes (planes of at most
        // 2^16) every lane starting at a plane.
        let mut next = 0;
        for (c, &(start, m, lanes, seg)) in chunks(n, plane).iter().zip(&got) {
            // `Chunk::active`: the lanes that own an element at each step, counted.
            let active = c.active();
            let steps = [0, 1, seg / 2, m % seg, (m % seg).max(1) - 1, seg - 1];
            for s in steps.into_iter().filter(|&s| s < seg) {
                let owners = (0..lanes).filter(|l| l * seg + s < m.min((l + 1) * seg));
                assert_eq!(active(s), owners.count(), "n {n} plane {plane} step {s}");
            }
            assert_eq!(start, next);
            assert!((1..=32).contains(&lanes) && lanes * seg >= m);
            if plane > 0 && plane <= MAX_PLANE {
                assert!(seg.is_multiple_of(plane) && start.is_multiple_of(plane));
                assert!((lanes - 1) * seg < m, "an empty lane");
            }
            next = start + m;
        }
        assert_eq!(next, n);
    }
}

#[test]
fn counts_at_or_below_match_the_portable_loop() {
    let mut seed = 3u64;
    for _ in 0..2000 {
        // A sorted row as `Tables::new` builds them: cumulative frequencies, then 0xFFFF.
        let len = (lcg(&mut seed) % 17) as usize;
        let mut row = [0xFFFFu16; 16];
        let mut c = 0u32;
        for e in row.iter_mut().take(len) {
            c = (c + (lcg(&mut seed) % 4096) as u32).min(0xFFFF);
            *e = c as u16;
        }
        for s in [0u16, 1, 0xFFFE, 0xFFFF, row[0], row[len.saturating_sub(1)]]
            .into_iter()
            .chain((0..8).map(|_| lcg(&mut seed) as u16))
        {
            assert_eq!(
                count_at_or_below(&row, s),
                count_at_or_below_portable(&row, s),
                "{row:?} {s}"
            );
        }
    }
}

#[test]
fn fitted_model_codes_structure_below_order0() {
    // Blocks of equal codes in 8 channels of 32x32: neighbours predict well.
    let mut seed = 5u64;
    let shape = [8usize, 32, 32];
    let n: usize = shape.iter().product();
    let bits = 4u8;
    let sample = |seed: &mut u64| -> Vec<u8> {
        let base: Vec<u8> = (0..8 * 4 * 4).map(|_| (lcg(seed) % 16) as u8).collect();
        (0..n)
            .map(|i| {
                let (c, y, x) = (i / 1024, i / 32 % 32, i % 32);
                let v = base[c * 16 + y / 8 * 4 + x / 8];
                if lcg(seed).is_multiple_of(10) {
                    (lcg(seed) % 16) as u8
                } else {
                    v
                }
            })
            .collect()
    };
    let codes: Vec<Vec<u8>> = (0..12).map(|_| sample(&mut seed)).collect();
    let cal = Calibration {
        samples: codes
            .iter()
            .map(|c| Sample {
                codes: c,
                shape: &shape,
                fills: &[0],
                fill_ch: Channels::TENSOR,
            })
            .collect(),
    };
    let (model, report) = fit(&cal, &FitOptions::new(bits)).unwrap();
    assert!(!report.tried.is_empty());
    let tables = Tables::new(&model);
    let test = sample(&mut seed);
    let body = encode(&model, &tables, &shape, &test, &[0], Channels::TENSOR);
    let mut back = vec![0u8; n];
    decode(
        &model,
        &tables,
        &shape,
        &body,
        &[0],
        Channels::TENSOR,
        &mut back,
    )
    .unwrap();
    assert_eq!(back, test);
    // Order-0 entropy of the test sample, in bytes.
    let mut hist = [0f64; 16];
    for &c in &test {
        hist[c as usize] += 1.0;
    }
    let h: f64 = hist
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|&c| -c * (c / n as f64).log2())
        .sum::<f64>()
        / 8.0;
    assert!(
        (body.len() as f64) < 0.6 * h,
        "{} bytes vs order-0 {h:.0}",
        body.len()
    );
}

#[test]
fn validate_refuses_each_broken_field_alone() {
    // A valid model (3 axes, groups along axis 0, med-residual, 4 bits), then one field broken
    // at a time: each alone must be refused, so no check leans on another (an `||` of two
    // checks turned `&&` lets each of them through alone). Where a later check would catch the
    // break anyway, the rest of the model is made consistent with it.
    let mut seed = 7u64;
    let shape = [3usize, 5, 7];
    let good = random_model(&mut seed, 4, Predictor::MedResidual, &shape);
    good.validate(3, Some(3)).unwrap();
    type Break = fn(&mut Model);
    let breaks: [(&str, Break); 18] = [
        ("0 bits", |m| m.bits = 0),
        ("9 bits", |m| m.bits = 9),
        ("axis_x past the shape", |m| m.axis_x = 3),
        ("axis_y past the shape", |m| m.axis_y = 3),
        ("axis_g past the shape", |m| m.axis_g = 3),
        ("up outside left", |m| (m.axis_x, m.axis_y) = (1, 2)),
        ("group entries", |m| m.groups.push(0)),
        ("0 groups", |m| {
            m.n_groups = 0;
            m.groups.iter_mut().for_each(|g| *g = 0);
        }),
        ("65 groups", |m| {
            // With a context map of the right length: only the group limit refuses it.
            m.n_groups = 65;
            m.context_map = vec![0; m.contexts()];
        }),
        ("a group out of range", |m| m.groups[0] = m.n_groups),
        ("0 classes", |m| m.n_classes[1] = 0),
        ("17 classes", |m| {
            m.n_classes[2] = 17;
            m.context_map = vec![0; m.contexts()];
        }),
        ("class table length", |m| m.classes[0].push(0)),
        ("a class out of range", |m| m.classes[1][0] = m.n_classes[1]),
        ("no frequencies", |m| m.freqs.clear()),
        ("a frequency short of a table", |m| {
            m.freqs.pop();
        }),
        ("precision at the bits", |m| {
            // Tables that sum to 2^bits (every frequency 1): only the precision rule refuses.
            m.precision = m.bits;
            m.freqs.iter_mut().for_each(|f| *f = 1);
        }),
        ("precision past 15", |m| {
            // 16 symbols of 4096 sum to 2^16.
            m.precision = 16;
            m.freqs.iter_mut().for_each(|f| *f = 4096);
        }),
    ];
    for (what, f) in breaks {
        let mut m = good.clone();
        f(&mut m);
        assert!(m.validate(3, Some(3)).is_err(), "{what}: accepted");
    }
    // Frequencies: a zero, and a table that does not sum to 2^p (each alone).
    let mut m = good.clone();
    let (i, j) = (0, 1);
    m.freqs[j] += m.freqs[i];
    m.freqs[i] = 0;
    assert!(
        m.validate(3, Some(3)).is_err(),
        "a zero frequency: accepted"
    );
    let mut m = good.clone();
    m.freqs[0] += 1;
    assert!(
        m.validate(3, Some(3)).is_err(),
        "a table summing past 2^p: accepted"
    );
    // The context map: its length and an entry naming a missing table.
    let mut m = good.clone();
    m.context_map.push(0);
    assert!(
        m.validate(3, Some(3)).is_err(),
        "context map length: accepted"
    );
    let mut m = good.clone();
    m.context_map[0] = m.tables() as u8;
    assert!(m.validate(3, Some(3)).is_err(), "a missing table: accepted");
    // More than 256 tables.
    let mut m = good.clone();
    let a = m.alphabet();
    let table = m.freqs[..a].to_vec();
    while m.tables() <= MAX_TABLES {
        m.freqs.extend_from_slice(&table);
    }
    assert!(m.validate(3, Some(3)).is_err(), "257 tables: accepted");
    // And the group axis's length against the shape.
    assert!(
        good.validate(3, Some(4)).is_err(),
        "group entries for another shape: accepted"
    );
}
