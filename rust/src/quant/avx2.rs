//! AVX2 versions of the per-element passes of `quant`: the range scan and the quantization.
//! Each gives exactly what the portable loop gives (the same IEEE operations in the same order
//! per element; `quant`'s tests compare them on random input), eight elements at a time.

use std::arch::x86_64::*;

/// `run_min_max` of `x`: least and greatest value (NaN ignored; which zero, +0 or -0, may
/// differ from the portable loop's, which no caller can see), and whether every value is
/// finite.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn min_max(x: &[f32]) -> (f32, f32, bool) {
    let inf = _mm256_set1_ps(f32::INFINITY);
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let mut lo = [inf; 4];
    let mut hi = [_mm256_set1_ps(f32::NEG_INFINITY); 4];
    // All ones while every value seen is finite.
    let mut fin = [_mm256_castsi256_ps(_mm256_set1_epi32(-1)); 4];
    let mut blocks = x.chunks_exact(32);
    for b in &mut blocks {
        let p = b.as_ptr();
        for k in 0..4 {
            // SAFETY: 32 floats at p.
            let v = _mm256_loadu_ps(p.add(8 * k));
            // minps(v, lo) is `if v < lo { v } else { lo }` (NaN v: lo), as the portable loop.
            lo[k] = _mm256_min_ps(v, lo[k]);
            hi[k] = _mm256_max_ps(v, hi[k]);
            fin[k] = _mm256_and_ps(
                fin[k],
                _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(v, abs), inf),
            );
        }
    }
    let lo = _mm256_min_ps(_mm256_min_ps(lo[0], lo[1]), _mm256_min_ps(lo[2], lo[3]));
    let hi = _mm256_max_ps(_mm256_max_ps(hi[0], hi[1]), _mm256_max_ps(hi[2], hi[3]));
    let fin = _mm256_and_ps(_mm256_and_ps(fin[0], fin[1]), _mm256_and_ps(fin[2], fin[3]));
    let mut l = [0f32; 8];
    let mut h = [0f32; 8];
    _mm256_storeu_ps(l.as_mut_ptr(), lo);
    _mm256_storeu_ps(h.as_mut_ptr(), hi);
    let mut finite = _mm256_movemask_ps(fin) == 0xff;
    let mut lo = l
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let mut hi = h
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for &v in blocks.remainder() {
        lo = if v < lo { v } else { lo };
        hi = if v > hi { v } else { hi };
        finite &= v.abs() < f32::INFINITY;
    }
    (lo, hi, finite)
}

/// The codes of eight elements as i32 lanes: `clamp(((v / s + M) - M) + zp, 0, levels)`, and
/// `zp` where `v` is NaN when `NAN`.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn codes8<const NAN: bool>(v: __m256, scale: __m256, zp: __m256, levels: __m256) -> __m256i {
    let magic = _mm256_set1_ps(12_582_912.0);
    let r = _mm256_sub_ps(_mm256_add_ps(_mm256_div_ps(v, scale), magic), magic);
    // max then min: NaN is impossible here unless NAN, which blends it away.
    let c = _mm256_min_ps(
        _mm256_max_ps(_mm256_add_ps(r, zp), _mm256_setzero_ps()),
        levels,
    );
    let c = if NAN {
        _mm256_blendv_ps(c, zp, _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v))
    } else {
        c
    };
    _mm256_cvttps_epi32(c)
}

/// Quantizes `x` into `out` (same length) with scale `s > 0` and zero point `zp`, codes of at
/// most `levels` (below 2^8 for `u8` output, 2^16 for `u16`). `NAN`: `x` may hold NaN.
/// `CHECK`: also whether every value of `x` is finite, in the same pass (`super::all_finite`'s
/// answer, without a pass of its own); `true` without it.
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize<O: Out, const NAN: bool, const CHECK: bool>(
    x: &[f32],
    out: &mut [O],
    s: f32,
    zp: i32,
    levels: u32,
) -> bool {
    assert_eq!(x.len(), out.len());
    let scale = _mm256_set1_ps(s);
    let zpv = _mm256_set1_ps(zp as f32);
    let lv = _mm256_set1_ps(levels as f32);
    let (abs, inf) = (
        _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX)),
        _mm256_set1_ps(f32::INFINITY),
    );
    let mut bad = _mm256_setzero_ps();
    let n = x.len() / 32 * 32;
    let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i < n {
        // SAFETY: 32 elements at i in both.
        let c = [0, 8, 16, 24].map(|k| {
            let v = _mm256_loadu_ps(xp.add(i + k));
            if CHECK {
                // |v| not below infinity: infinite or NaN.
                bad = _mm256_or_ps(
                    bad,
                    _mm256_cmp_ps::<_CMP_NLT_UQ>(_mm256_and_ps(v, abs), inf),
                );
            }
            codes8::<NAN>(v, scale, zpv, lv)
        });
        O::store32(op.add(i), c);
        i += 32;
    }
    let zpf = zp as f32;
    let levels = levels as f32;
    for (o, &v) in out[n..].iter_mut().zip(&x[n..]) {
        let c = (super::round_half_even(v / s) + zpf).clamp(0.0, levels);
        *o = O::from_u32(if NAN && v.is_nan() {
            zp as u32
        } else {
            c as u32
        });
    }
    !CHECK || (_mm256_movemask_ps(bad) == 0 && super::all_finite(&x[n..]))
}

/// A code type the vector quantizer stores.
pub(super) trait Out: Copy {
    fn from_u32(v: u32) -> Self;
    /// Stores 32 codes (i32 lanes, each `<= Self::MAX`) at `p`.
    ///
    /// # Safety
    /// AVX2; 32 elements writable at `p`.
    unsafe fn store32(p: *mut Self, c: [__m256i; 4]);
}

impl Out for u8 {
    fn from_u32(v: u32) -> Self {
        v as u8
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store32(p: *mut u8, c: [__m256i; 4]) {
        // Dwords of c0 c1 interleaved by 128-bit lanes, then bytes: a fixed dword permutation
        // puts them back in order.
        let w01 = _mm256_packus_epi32(c[0], c[1]);
        let w23 = _mm256_packus_epi32(c[2], c[3]);
        let b = _mm256_packus_epi16(w01, w23);
        let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        // SAFETY: 32 bytes at p (caller).
        _mm256_storeu_si256(p.cast(), b);
    }
}

impl Out for u16 {
    fn from_u32(v: u32) -> Self {
        v as u16
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store32(p: *mut u16, c: [__m256i; 4]) {
        let w01 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(c[0], c[1]));
        let w23 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(c[2], c[3]));
        // SAFETY: 32 u16s at p (caller).
        _mm256_storeu_si256(p.cast(), w01);
        _mm256_storeu_si256(p.add(16).cast(), w23);
    }
}

/// `out[i] = f32(codes[i] - zp) * scale`, eight at a time (FORMAT.md 6.4: the exact integer
/// difference converted, then one binary32 product, as the portable loop computes it).
///
/// # Safety
/// AVX2 must be available.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dequantize_f32<I: In>(codes: &[I], out: &mut [f32], zp: i32, scale: f32) {
    assert_eq!(codes.len(), out.len());
    let (z, s) = (_mm256_set1_epi32(zp), _mm256_set1_ps(scale));
    let n = codes.len() / 8 * 8;
    let (cp, op) = (codes.as_ptr(), out.as_mut_ptr());
    let mut i = 0;
    while i < n {
        // SAFETY: 8 elements at i in both.
        let q = _mm256_sub_epi32(I::load8(cp.add(i)), z);
        _mm256_storeu_ps(op.add(i), _mm256_mul_ps(_mm256_cvtepi32_ps(q), s));
        i += 8;
    }
    for (o, &q) in out[n..].iter_mut().zip(&codes[n..]) {
        *o = (q.to_i32() - zp) as f32 * scale;
    }
}

/// A code type the vector dequantizer reads.
pub(super) trait In: Copy {
    fn to_i32(self) -> i32;
    /// Eight codes at `p`, zero-extended to i32 lanes.
    ///
    /// # Safety
    /// AVX2; 8 codes readable at `p`.
    unsafe fn load8(p: *const Self) -> __m256i;
}

impl In for u8 {
    fn to_i32(self) -> i32 {
        i32::from(self)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(p: *const u8) -> __m256i {
        // SAFETY: 8 bytes at p (caller).
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast()))
    }
}

impl In for u16 {
    fn to_i32(self) -> i32 {
        i32::from(self)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load8(p: *const u16) -> __m256i {
        // SAFETY: 8 u16s at p (caller).
        _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{all_finite, quantize_portable, run_min_max_portable, Affine};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// Values of every kind: ties of the rounding, zeros of both signs, subnormals, huge,
    /// infinities and NaN (when `nan`).
    fn values(rng: &mut ChaCha8Rng, n: usize, s: f32, nan: bool) -> Vec<f32> {
        (0..n)
            .map(|_| match rng.gen_range(0..12) {
                0 => (rng.gen_range(-300..300) as f32 + 0.5) * s,
                1 => 0.0,
                2 => -0.0,
                3 => f32::from_bits(rng.gen_range(1..1 << 23)),
                4 => rng.gen_range(-1.5e38..1.5e38f32) * 2.0,
                5 if nan => f32::NAN,
                6 if nan => f32::INFINITY,
                7 if nan => f32::NEG_INFINITY,
                _ => rng.gen_range(-200.0..200.0f32) * s,
            })
            .collect()
    }

    #[test]
    fn min_max_matches_the_portable_loop() {
        if !avx2() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for round in 0..300 {
            let n = rng.gen_range(0..300);
            let x = values(&mut rng, n, 0.01, round % 2 == 0);
            // SAFETY: AVX2 checked above.
            let (lo, hi, fin) = unsafe { super::min_max(&x) };
            let (plo, phi, pfin) = run_min_max_portable(&x);
            // Equal as values (+0 and -0 compare equal, and nothing downstream tells them apart).
            assert!(
                lo == plo && hi == phi && fin == pfin,
                "{lo} {hi} {fin} vs {plo} {phi} {pfin}"
            );
        }
    }

    #[test]
    fn dequantize_matches_the_portable_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..300 {
            let n = rng.gen_range(0..100);
            let a = Affine {
                scale: f32::from_bits(rng.gen_range(0..0x7f00_0000)),
                zero_point: rng.gen_range(0..65536),
            };
            let codes: Vec<u16> = (0..n).map(|_| rng.gen()).collect();
            let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
            let want: Vec<u32> = codes
                .iter()
                .map(|&q| ((i32::from(q) - a.zero_point) as f32 * a.scale).to_bits())
                .collect();
            let mut got = vec![0f32; n];
            super::super::dequantize_run_f32(&codes, &mut got, a);
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want);
            let want: Vec<u32> = bytes
                .iter()
                .map(|&q| ((i32::from(q) - a.zero_point) as f32 * a.scale).to_bits())
                .collect();
            let mut got = vec![0f32; n];
            super::super::dequantize_run_f32(&bytes, &mut got, a);
            assert_eq!(got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn quantize_matches_the_portable_loop() {
        if !avx2() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for round in 0..400 {
            let bits = rng.gen_range(1..=16u8);
            let levels = (1u32 << bits) - 1;
            let scale = match round % 4 {
                0 => f32::from_bits(rng.gen_range(1..1 << 23)),
                1 => rng.gen_range(1e-3..10.0f32),
                2 => 1.0,
                _ => f32::MAX / levels as f32,
            };
            let a = Affine {
                scale,
                zero_point: rng.gen_range(0..=levels) as i32,
            };
            let nan = round % 3 == 0;
            let n = rng.gen_range(0..200);
            let x = values(&mut rng, n, scale, nan);
            if bits <= 8 {
                let mut want = vec![0u8; n];
                quantize_portable(&x, &mut want, a, levels as f32, nan);
                let mut got = vec![0u8; n];
                // SAFETY: AVX2 checked above.
                unsafe {
                    if nan {
                        super::quantize::<u8, true, false>(&x, &mut got, a.scale, a.zero_point, levels);
                    } else {
                        super::quantize::<u8, false, false>(&x, &mut got, a.scale, a.zero_point, levels);
                    }
                }
                assert_eq!(got, want, "bits {bits} {a:?}");
            }
            let mut want = vec![0u16; n];
            quantize_portable(&x, &mut want, a, levels as f32, nan);
            let mut got = vec![0u16; n];
            // SAFETY: AVX2 checked above.
            unsafe {
                if nan {
                    super::quantize::<u16, true, false>(&x, &mut got, a.scale, a.zero_point, levels);
                } else {
                    super::quantize::<u16, false, false>(&x, &mut got, a.scale, a.zero_point, levels);
                }
            }
            assert_eq!(got, want, "bits {bits} {a:?}");
        }
    }

    /// The pass that also checks finiteness (`CHECK`) says whether every value is finite, for
    /// one NaN or infinity planted anywhere (in a block of 32 or the tail) or none, and gives
    /// the same codes as without the check.
    #[test]
    fn quantize_checks_finiteness_in_its_pass() {
        if !avx2() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for round in 0..600 {
            let n = rng.gen_range(1..200);
            let a = Affine {
                scale: 0.01,
                zero_point: 7,
            };
            let mut x = values(&mut rng, n, a.scale, false);
            if round % 2 == 0 {
                x[rng.gen_range(0..n)] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][round % 3];
            }
            let (mut got, mut want) = (vec![0u8; n], vec![0u8; n]);
            // SAFETY: AVX2 checked above.
            let finite = unsafe {
                super::quantize::<u8, false, false>(&x, &mut want, a.scale, a.zero_point, 255);
                super::quantize::<u8, false, true>(&x, &mut got, a.scale, a.zero_point, 255)
            };
            assert_eq!(finite, all_finite(&x), "round {round}, n {n}");
            assert_eq!(got, want, "round {round}");
        }
    }
}
