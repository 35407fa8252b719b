//! Tests of the interleaved rANS coder: every kernel this machine runs against the portable
//! one, round trips, and refusals of corrupt chunks.

use super::*;
use crate::entropy::freq::build_table;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every kernel this machine can run (the portable one first, the reference of the others):
/// on x86-64 the AVX2 kernels, the AVX-512 and SSE4.1 decoders wherever the CPU has them, whichever of
/// them `Kernel::detect` prefers.
fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if crate::cpu::avx2_popcnt() {
            k.push(Kernel::Avx2);
        }
        if crate::cpu::avx512_decode_available() && crate::cpu::simd_allowed() {
            k.push(Kernel::Avx512);
        }
        if crate::cpu::sse41_available() {
            k.push(Kernel::Sse41);
        }
    }
    if !k.contains(&Kernel::detect()) {
        k.push(Kernel::detect());
    }
    k
}

/// Where the CPU can run it, the AVX-512 decoder is among the kernels checked (a test that
/// says so, rather than one that passes without having run it).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512_decoder_is_checked_where_available() {
    let avail = crate::cpu::avx512_decode_available() && crate::cpu::simd_allowed();
    assert_eq!(kernels().contains(&Kernel::Avx512), avail);
    eprintln!("AVX-512 decoder checked here: {avail}");
}

/// Where the CPU can run it (SSE4.1 and POPCNT), the SSE4.1 decoder is among the kernels checked;
/// the kernel that runs is named (`.ci/run` runs these tests under `qemu-x86_64 -cpu Nehalem`
/// too, a CPU without AVX2, where it is the SSE4.1 one).
#[cfg(target_arch = "x86_64")]
#[test]
fn sse41_decoder_is_checked_where_available() {
    let avail = crate::cpu::sse41_available();
    assert_eq!(kernels().contains(&Kernel::Sse41), avail);
    if avail && !crate::cpu::avx2_popcnt() {
        assert_eq!(Kernel::detect(), Kernel::Sse41);
    }
    eprintln!(
        "SSE4.1 decoder checked here: {avail}; the kernel that runs: {:?}",
        Kernel::detect()
    );
}

/// A random valid table at precision `p` over `alphabet` symbols, and its symbols.
fn random_table(rng: &mut ChaCha8Rng, p: u8, alphabet: usize) -> FreqTable {
    let max_syms = alphabet.min(1 << p).min(600);
    let k = rng.gen_range(2..=max_syms.max(2));
    let mut counts = vec![0u64; alphabet];
    // Sometimes only small symbols (the packed decode table), sometimes anywhere.
    let span = if rng.gen_bool(0.5) {
        alphabet.min(256)
    } else {
        alphabet
    };
    let skew = rng.gen_range(0.0..3.0f64);
    let mut present = 0;
    while present < k {
        let s = rng.gen_range(0..span.max(k));
        if s < alphabet && counts[s] == 0 {
            counts[s] = 1 + (rng.gen::<f64>().powf(skew + 1.0) * 1e6) as u64;
            present += 1;
        }
    }
    build_table(&counts, Some(p)).unwrap()
}

/// `n` symbols drawn from the table's distribution (plus, if `absent`, a few symbols not in
/// the table, which `put` still codes deterministically).
fn random_symbols<S: Symbol>(
    rng: &mut ChaCha8Rng,
    t: &FreqTable,
    n: usize,
    absent: bool,
) -> Vec<S> {
    let cum = t.cum_freqs();
    (0..n)
        .map(|_| {
            if absent && rng.gen_bool(0.05) {
                return S::from_index(rng.gen_range(0..1u32 << (8 * S::BYTES)));
            }
            let r = rng.gen_range(0..1u32 << t.precision_bits);
            let i = cum.partition_point(|&c| c <= r) - 1;
            S::from_index(t.symbols[i])
        })
        .collect()
}

#[test]
fn div_magic_is_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for f in 2u32..1 << 16 {
        let magic = div_magic(f);
        let l = 32 - (f - 1).leading_zeros();
        // The vector kernel's l - 1: the exponent of the float f - 1.
        assert_eq!(((f - 1) as f32).to_bits() >> 23, 127 + l - 1);
        let top = u32::MAX / f;
        let mut xs = vec![0u32, 1, f - 1, f, f + 1, u32::MAX, u32::MAX - 1];
        for k in [1, 2, 3, top / 2, top - 1, top] {
            xs.extend([
                (k * f).wrapping_sub(1),
                k * f,
                (k * f).saturating_add(f - 1),
            ]);
        }
        xs.extend((0..24).map(|_| rng.gen::<u32>()));
        for x in xs {
            let t = ((u64::from(x) * u64::from(magic)) >> 32) as u32;
            let q = (t + ((x - t) >> 1)) >> (l - 1);
            assert_eq!(q, x / f, "x={x} f={f}");
        }
    }
}

fn check_encoders<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
    for p in 1..=16u8 {
        for _ in 0..6 {
            let t = random_table(rng, p, alphabet);
            let enc = Encoder::new(&t, alphabet);
            let dec = Decoder::new(&t);
            for &n in &[0usize, 1, 31, 32, 33, 64, 95, 1000, 4096 + 17] {
                let lanes = 1 << rng.gen_range(0..=5);
                for absent in [false, true] {
                    let data: Vec<S> = random_symbols(rng, &t, n, absent);
                    let want = enc.encode_chunk_with(Kernel::Portable, &data, lanes);
                    for k in kernels() {
                        let got = enc.encode_chunk_with(k, &data, lanes);
                        assert_eq!(got, want, "{k:?} p={p} n={n} lanes={lanes}");
                    }
                    if absent {
                        continue;
                    }
                    let bytes: Vec<u8> = want.1.iter().flat_map(|w| w.to_le_bytes()).collect();
                    for k in kernels() {
                        let mut out = vec![S::default(); n];
                        dec.decode_chunk_with(k, &want.0, &bytes, &mut out).unwrap();
                        assert!(out.iter().zip(&data).all(|(a, b)| a.index() == b.index()));
                    }
                }
            }
        }
    }
}

#[test]
fn one_lane_encodes_as_the_general_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for p in 1..=16u8 {
        for _ in 0..10 {
            let t = random_table(&mut rng, p, 256);
            for enc in [Encoder::new(&t, 256), Encoder::for_lanes(&t, 256, 1)] {
                let n = rng.gen_range(0..3000);
                let data: Vec<u8> = random_symbols(&mut rng, &t, n, true);
                let got = enc.encode_chunk_with(Kernel::Portable, &data, 1);
                let want = enc.encode_steps(Kernel::Portable, &data, 1);
                assert_eq!(got, want, "p={p} n={n}");
            }
        }
    }
}

/// The lanes loop (`put_lanes`: 2, 4, 8, 16 lanes, and 32 on the portable path) gives the
/// general loop's (`put_step`'s) states and words, for u8 and u16 symbols, tables of every
/// precision (with frequencies of 1, whose reciprocal is 0), absent symbols and chunks with a
/// partial step.
fn check_lane_encoders<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
    for p in 1..=16u8 {
        for _ in 0..4 {
            let t = random_table(rng, p, alphabet);
            // An encoder for one lane (the reciprocals) asked for more runs `put` throughout.
            let encs = [Encoder::new(&t, alphabet), Encoder::for_lanes(&t, alphabet, 1)];
            for (lanes, enc) in [2usize, 3, 4, 8, 16, 32].into_iter().zip(encs.iter().cycle()) {
                let n = rng.gen_range(0..2000);
                let absent = rng.gen_bool(0.3);
                let data: Vec<S> = random_symbols(rng, &t, n, absent);
                let got = enc.encode_steps(Kernel::Portable, &data, lanes);
                let mut x = [RANS_L; MAX_LANES];
                let mut words = Vec::new();
                let tail = n % lanes;
                enc.put_step(&mut x[..tail], &data[n - tail..], &mut words);
                enc.put_steps_general(&mut x[..lanes], &data[..n - tail], &mut words);
                words.reverse();
                assert_eq!(got, (x[..lanes].to_vec(), words), "p={p} n={n} lanes={lanes}");
            }
        }
    }
}

#[test]
fn lanes_encode_as_the_general_loop() {
    check_lane_encoders::<u8>(&mut ChaCha8Rng::seed_from_u64(14), 256);
    check_lane_encoders::<u16>(&mut ChaCha8Rng::seed_from_u64(15), 1 << 16);
}

#[test]
fn encoder_kernels_match_the_reference_u8() {
    check_encoders::<u8>(&mut ChaCha8Rng::seed_from_u64(2), 256);
}

#[test]
fn encoder_kernels_match_the_reference_u16() {
    check_encoders::<u16>(&mut ChaCha8Rng::seed_from_u64(3), 1 << 16);
}

/// Runs `decode_fast` with `kernel` on `out.len()` symbols and returns what it did.
fn fast<S: Symbol>(
    d: &Decoder,
    kernel: Kernel,
    x0: &[u32; MAX_LANES],
    words: &[u8],
    n: usize,
) -> (usize, [u32; MAX_LANES], usize, Vec<usize>) {
    let mut x = *x0;
    let mut pos = 0;
    let mut out = vec![S::default(); n];
    let done = d.decode_fast(kernel, &mut x, words, &mut pos, &mut out);
    let out = out[..done].iter().map(|s| s.index()).collect();
    (done, x, pos, out)
}

fn check_decoders<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
    for p in 1..=16u8 {
        for _ in 0..6 {
            let t = random_table(rng, p, alphabet);
            let mut decoders = vec![Decoder::new(&t)];
            if !decoders[0].packed.is_empty() {
                // The same table through the two-table path.
                let mut d = Decoder::new(&t);
                d.packed = Vec::new();
                decoders.push(d);
            }
            for d in &decoders {
                for &n in &[0usize, 1, 31, 32, 33, 64, 100, 1000, 4096 + 17] {
                    // Arbitrary states and words: every state >= 2^16 decodes somewhere.
                    let x0: [u32; MAX_LANES] =
                        std::array::from_fn(|_| rng.gen_range(RANS_L..=u32::MAX));
                    let len = rng.gen_range(0..=2 * n + 80);
                    let words: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                    // The reference: the checked decoder, as far as the fast one went.
                    let want = fast::<S>(d, Kernel::Portable, &x0, &words, n);
                    let mut x = x0;
                    let mut pos = 0;
                    let mut out = vec![S::default(); want.0];
                    d.decode_checked(&mut x, &words, &mut pos, &mut out)
                        .unwrap();
                    let out: Vec<usize> = out.iter().map(|s| s.index()).collect();
                    assert_eq!((want.0, x, pos, out), want, "p={p} n={n}");
                    assert!(want.0 == n - n % 32 || words.len() / 2 - want.2 < 32);
                    for k in kernels() {
                        assert_eq!(fast::<S>(d, k, &x0, &words, n), want, "{k:?} p={p} n={n}");
                    }
                    // Whole chunks, with any lane count: same result, same symbols.
                    let lanes = 1 << rng.gen_range(0..=5);
                    let mut ref_out = vec![S::default(); n];
                    let r =
                        d.decode_chunk_with(Kernel::Portable, &x0[..lanes], &words, &mut ref_out);
                    for k in kernels() {
                        let mut out = vec![S::default(); n];
                        let got = d.decode_chunk_with(k, &x0[..lanes], &words, &mut out);
                        assert_eq!(got, r);
                        assert!(out
                            .iter()
                            .zip(&ref_out)
                            .all(|(a, b)| a.index() == b.index()));
                    }
                }
            }
        }
    }
}

/// Two chunks decoded as a pair give what each gives alone: symbols and result, for valid
/// chunks of any lengths and for arbitrary states and words.
fn check_pairs<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
    for p in [1u8, 5, 8, 11, 12, 13, 16] {
        for _ in 0..4 {
            let t = random_table(rng, p, alphabet);
            let enc = Encoder::new(&t, alphabet);
            let mut decoders = vec![Decoder::new(&t)];
            if !decoders[0].packed.is_empty() {
                let mut d = Decoder::new(&t);
                d.packed = Vec::new();
                decoders.push(d);
            }
            for d in &decoders {
                for _ in 0..6 {
                    let mut chunk = || -> (Vec<u32>, Vec<u8>, usize) {
                        let n = [0usize, 1, 32, 33, 100, 1000, 5000][rng.gen_range(0..7)];
                        let lanes = if rng.gen_bool(0.8) {
                            32
                        } else {
                            1 << rng.gen_range(0..5)
                        };
                        if rng.gen_bool(0.7) {
                            let data: Vec<S> = random_symbols(rng, &t, n, false);
                            let (st, w) = enc.encode_chunk(&data, lanes);
                            let mut bytes: Vec<u8> =
                                w.iter().flat_map(|w| w.to_le_bytes()).collect();
                            if rng.gen_bool(0.2) && !bytes.is_empty() {
                                let i = rng.gen_range(0..bytes.len());
                                bytes[i] ^= 1 << rng.gen_range(0..8);
                            }
                            (st, bytes, n)
                        } else {
                            let st = (0..lanes)
                                .map(|_| rng.gen_range(RANS_L - 3..=u32::MAX))
                                .collect();
                            let len = rng.gen_range(0..=2 * n + 80);
                            (st, (0..len).map(|_| rng.gen()).collect(), n)
                        }
                    };
                    let (sa, wa, na) = chunk();
                    let (sb, wb, nb) = chunk();
                    let mut want_a = vec![S::default(); na];
                    let mut want_b = vec![S::default(); nb];
                    let ra = d.decode_chunk_with(Kernel::Portable, &sa, &wa, &mut want_a);
                    let rb = d.decode_chunk_with(Kernel::Portable, &sb, &wb, &mut want_b);
                    for k in kernels() {
                        let mut oa = vec![S::default(); na];
                        let mut ob = vec![S::default(); nb];
                        let got =
                            d.decode_chunk_pair_with(k, (&sa, &wa, &mut oa), (&sb, &wb, &mut ob));
                        assert_eq!(got, (ra.clone(), rb.clone()), "{k:?} p={p}");
                        if ra.is_ok() {
                            assert!(oa.iter().zip(&want_a).all(|(a, b)| a.index() == b.index()));
                        }
                        if rb.is_ok() {
                            assert!(ob.iter().zip(&want_b).all(|(a, b)| a.index() == b.index()));
                        }
                    }
                }
            }
        }
    }
}

/// A chunk decoded in pieces (alone or paired) gives what it gives whole.
#[test]
fn pieces_decode_as_whole_chunks() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    for p in [4u8, 8, 11, 12, 15] {
        let t = random_table(&mut rng, p, 256);
        let enc = Encoder::new(&t, 256);
        let d = Decoder::new(&t);
        for _ in 0..20 {
            let n = rng.gen_range(0..20_000);
            let lanes = if rng.gen_bool(0.7) {
                32
            } else {
                1 << rng.gen_range(0..5)
            };
            let data: Vec<u8> = random_symbols(&mut rng, &t, n, false);
            let (st, w) = enc.encode_chunk(&data, lanes);
            let mut bytes: Vec<u8> = w.iter().flat_map(|w| w.to_le_bytes()).collect();
            if rng.gen_bool(0.3) && !bytes.is_empty() {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
            }
            let mut whole = vec![0u8; n];
            let want = d.decode_chunk(&st, &bytes, &mut whole);
            let piece = 32 * rng.gen_range(1..200);
            for k in kernels() {
                let mut got = vec![0u8; n];
                let r = (|| {
                    let mut c = d.start(&st, &bytes)?;
                    for o in got.chunks_mut(piece) {
                        d.piece_with(k, &mut c, o, 0)?;
                    }
                    d.end(&c)
                })();
                assert_eq!(r, want, "{k:?} p={p} n={n} piece={piece}");
                if r.is_ok() {
                    assert_eq!(got, whole);
                }
                // Paired with itself, piece by piece.
                let (mut ga, mut gb) = (vec![0u8; n], vec![0u8; n]);
                let (mut ca, mut cb) =
                    (d.start(&st, &bytes).unwrap(), d.start(&st, &bytes).unwrap());
                let (mut ra, mut rb) = (Ok(()), Ok(()));
                for (oa, ob) in ga.chunks_mut(piece).zip(gb.chunks_mut(piece)) {
                    let (x, y) = d.piece_pair_with(k, (&mut ca, oa), (&mut cb, ob));
                    (ra, rb) = (ra.and(x), rb.and(y));
                }
                let ra = ra.and_then(|_| d.end(&ca));
                let rb = rb.and_then(|_| d.end(&cb));
                assert_eq!((ra.clone(), rb), (want.clone(), want.clone()));
                if ra.is_ok() {
                    assert!(ga == whole && gb == whole);
                }
            }
        }
    }
}

#[test]
fn pairs_decode_as_single_chunks_u8() {
    check_pairs::<u8>(&mut ChaCha8Rng::seed_from_u64(7), 256);
}

#[test]
fn pairs_decode_as_single_chunks_u16() {
    check_pairs::<u16>(&mut ChaCha8Rng::seed_from_u64(8), 1 << 16);
}

/// A one-lane chunk of `n` symbols: with probability `encoded`, `n` random symbols of `t`
/// encoded (cut short three times in ten), else a random state and up to `max_bytes` random
/// bytes of words. Returns its state and its words' bytes.
fn one_lane_chunk(
    rng: &mut ChaCha8Rng,
    t: &FreqTable,
    enc: &Encoder,
    n: usize,
    encoded: f64,
    max_bytes: usize,
) -> (u32, Vec<u8>) {
    if rng.gen_bool(encoded) {
        let data: Vec<u8> = random_symbols(rng, t, n, false);
        let (st, w) = enc.encode_chunk(&data, 1);
        let mut b: Vec<u8> = w.iter().flat_map(|w| w.to_le_bytes()).collect();
        if rng.gen_bool(0.3) {
            b.truncate(rng.gen_range(0..=b.len()));
        }
        (st[0], b)
    } else {
        let len = rng.gen_range(0..=max_bytes);
        (rng.gen_range(RANS_L..=u32::MAX), (0..len).map(|_| rng.gen()).collect())
    }
}

/// The one-lane loop against the general one, on valid and arbitrary chunks.
#[test]
fn one_lane_decodes_as_the_general_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for p in 1..=16u8 {
        for _ in 0..20 {
            let t = random_table(&mut rng, p, 256);
            let enc = Encoder::new(&t, 256);
            let d = Decoder::new(&t);
            let n = rng.gen_range(0..3000);
            let (st, bytes) = one_lane_chunk(&mut rng, &t, &enc, n, 0.5, n);
            let (mut x1, mut p1, mut o1) = ([st], 0, vec![0u8; n]);
            let r1 = d.decode_checked(&mut x1, &bytes, &mut p1, &mut o1);
            let (mut x2, mut p2, mut o2) = ([st], 0, vec![0u8; n]);
            let r2 = d.decode_checked_lanes(&mut x2, &bytes, &mut p2, &mut o2);
            assert_eq!(r1, r2, "p={p} n={n}");
            if r1.is_ok() {
                assert_eq!((x1, p1, &o1), (x2, p2, &o2));
            }
        }
    }
}

/// The branch-free loops of 2 to 16 lanes (`decode_lanes`) against the general one, on chunks
/// encoded with those lanes (whole, cut short or with a bit flipped) and on arbitrary states and
/// words: the same result, and where it succeeds the same states, position and symbols.
fn check_lanes<S: Symbol>(rng: &mut ChaCha8Rng, alphabet: usize) {
    for p in 1..=16u8 {
        for _ in 0..12 {
            let t = random_table(rng, p, alphabet);
            let enc = Encoder::new(&t, alphabet);
            let d = Decoder::new(&t);
            let lanes = [2, 3, 4, 8, 16][rng.gen_range(0..5)];
            let n = rng.gen_range(0..6000);
            let (st, bytes): (Vec<u32>, Vec<u8>) = if rng.gen_bool(0.6) {
                let data: Vec<S> = random_symbols(rng, &t, n, false);
                let (st, w) = enc.encode_chunk(&data, lanes);
                let mut b: Vec<u8> = w.iter().flat_map(|w| w.to_le_bytes()).collect();
                if rng.gen_bool(0.3) {
                    b.truncate(rng.gen_range(0..=b.len()));
                } else if rng.gen_bool(0.3) && !b.is_empty() {
                    let i = rng.gen_range(0..b.len());
                    b[i] ^= 1 << rng.gen_range(0..8);
                }
                (st, b)
            } else {
                let len = rng.gen_range(0..=2 * n);
                let st = (0..lanes).map(|_| rng.gen_range(RANS_L..=u32::MAX));
                (st.collect(), (0..len).map(|_| rng.gen()).collect())
            };
            let (mut x1, mut p1, mut o1) = (st.clone(), 0, vec![S::default(); n]);
            let r1 = d.decode_checked(&mut x1, &bytes, &mut p1, &mut o1);
            let (mut x2, mut p2, mut o2) = (st, 0, vec![S::default(); n]);
            let r2 = d.decode_checked_lanes(&mut x2, &bytes, &mut p2, &mut o2);
            assert_eq!(r1, r2, "p={p} n={n} lanes={lanes}");
            if r1.is_ok() {
                assert_eq!((&x1, p1), (&x2, p2), "p={p} n={n} lanes={lanes}");
                assert!(o1.iter().zip(&o2).all(|(a, b)| a.index() == b.index()));
            }
        }
    }
}

#[test]
fn lanes_decode_as_the_general_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(81);
    check_lanes::<u8>(&mut rng, 256);
    check_lanes::<u16>(&mut rng, 1024);
}

/// `decode_piece_mapped` writes `map[s]` for each symbol `s` that `decode_piece` gives, fails
/// where it fails and leaves the cursor where it does: chunks encoded and cut short, random
/// states and words, and chunks of a few symbols that hold no words.
#[test]
fn mapped_piece_decodes_as_decode_piece() {
    let mut rng = ChaCha8Rng::seed_from_u64(76);
    let map: [u32; 256] = std::array::from_fn(|i| 3 * i as u32 + 1);
    let mut wordless = 0;
    for p in 1..=16u8 {
        for _ in 0..40 {
            let t = random_table(&mut rng, p, 256);
            let enc = Encoder::new(&t, 256);
            let d = Decoder::for_lanes(&t, 1);
            let n = if rng.gen_bool(0.5) { rng.gen_range(0..6) } else { rng.gen_range(0..3000) };
            let (st, bytes) = one_lane_chunk(&mut rng, &t, &enc, n, 0.6, 2 * n);
            wordless += usize::from(bytes.len() < 2);
            let mut c1 = d.start(&[st], &bytes).unwrap();
            let mut o1 = vec![0u8; n];
            let r1 = d.decode_piece(&mut c1, &mut o1).and_then(|_| d.end(&c1));
            let mut c2 = d.start(&[st], &bytes).unwrap();
            let mut o2 = vec![0u32; n];
            let r2 = d.decode_piece_mapped(&mut c2, &mut o2, &map).and_then(|_| d.end(&c2));
            assert_eq!(r1, r2, "p={p} n={n}");
            if r1.is_ok() {
                let want: Vec<u32> = o1.iter().map(|&s| map[usize::from(s)]).collect();
                assert_eq!(o2, want, "p={p} n={n}");
                assert_eq!((c1.x[0], c1.pos), (c2.x[0], c2.pos));
            }
        }
    }
    assert!(wordless > 50, "{wordless}");
}

#[test]
fn decoder_kernels_match_the_reference_u8() {
    check_decoders::<u8>(&mut ChaCha8Rng::seed_from_u64(4), 256);
}

#[test]
fn decoder_kernels_match_the_reference_u16() {
    check_decoders::<u16>(&mut ChaCha8Rng::seed_from_u64(5), 1 << 16);
}

#[test]
fn histograms_count_every_symbol() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for n in [
        0usize,
        1,
        7,
        8,
        9,
        1000,
        4095,
        4096,
        (1 << 18) - 1,
        1 << 18,
        (1 << 18) + 3,
    ] {
        // Mostly zeros (runs), the rest anywhere.
        let wide: Vec<u16> = (0..n)
            .map(|_| if rng.gen_bool(0.7) { 0 } else { rng.gen() })
            .collect();
        let bytes: Vec<u8> = wide.iter().map(|&w| w as u8).collect();
        let mut want8 = vec![0u64; 256];
        bytes.iter().for_each(|&b| want8[b as usize] += 1);
        let mut want16 = vec![0u64; 1 << 16];
        wide.iter().for_each(|&w| want16[w as usize] += 1);
        assert_eq!(u8::histogram(&bytes), want8, "n={n}");
        assert_eq!(u16::histogram(&wide), want16, "n={n}");
    }
}

#[test]
fn bad_lane_counts_are_errors() {
    let t = build_table(&[3, 1], Some(4)).unwrap();
    let d = Decoder::new(&t);
    let mut out = [0u8; 8];
    assert!(d.decode_chunk(&[], &[], &mut out).is_err());
    assert!(d.decode_chunk(&[RANS_L; 33], &[], &mut out).is_err());
}
