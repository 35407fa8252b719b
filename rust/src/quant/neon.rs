//! The NEON range scan of `quant` (aarch64, where NEON is always present).
//!
//! Only the scan has a hand-written kernel: the portable loop's selects and its `finite` flags
//! stay scalar (`fcmp`/`fcsel` per element) in the aarch64 build, while the quantization and
//! dequantization loops already compile to 4-wide NEON (`fdiv`, `fcvtzs`, `scvtf` on `.4s`;
//! checked in the assembly of the release build), where `as i32` is one saturating `fcvtzs` and
//! needs none of the fix-ups that make x86-64 want its AVX2 quantizer. See benches/NOTES.md.

use std::arch::aarch64::*;

/// `run_min_max` of `x`: least and greatest value (NaN ignored; which zero, +0 or -0, may
/// differ from the portable loop's, which no caller can see), and whether every value is
/// finite. The same compare-and-select per element as the portable loop (`vminq_f32` would not
/// do: `fmin` returns NaN when either operand is NaN), sixteen accumulators.
pub(super) fn min_max(x: &[f32]) -> (f32, f32, bool) {
    // SAFETY: NEON is part of the aarch64 baseline; every load reads 4 floats of a 16-float
    // block of `x`.
    unsafe {
        let inf = vdupq_n_f32(f32::INFINITY);
        let mut lo = [inf; 4];
        let mut hi = [vdupq_n_f32(f32::NEG_INFINITY); 4];
        // All ones while every value seen is finite.
        let mut fin = [vdupq_n_u32(u32::MAX); 4];
        let mut blocks = x.chunks_exact(16);
        for b in &mut blocks {
            let p = b.as_ptr();
            for k in 0..4 {
                let v = vld1q_f32(p.add(4 * k));
                // `if v < lo { v } else { lo }`: a NaN v compares false and leaves lo.
                lo[k] = vbslq_f32(vcltq_f32(v, lo[k]), v, lo[k]);
                hi[k] = vbslq_f32(vcgtq_f32(v, hi[k]), v, hi[k]);
                // |v| < |inf|: false for infinities and NaN, as `v.abs() < INFINITY`.
                fin[k] = vandq_u32(fin[k], vcaltq_f32(v, inf));
            }
        }
        let min2 = |a: float32x4_t, b: float32x4_t| vbslq_f32(vcltq_f32(a, b), a, b);
        let max2 = |a: float32x4_t, b: float32x4_t| vbslq_f32(vcgtq_f32(a, b), a, b);
        let l = min2(min2(lo[0], lo[1]), min2(lo[2], lo[3]));
        let h = max2(max2(hi[0], hi[1]), max2(hi[2], hi[3]));
        let f = vandq_u32(vandq_u32(fin[0], fin[1]), vandq_u32(fin[2], fin[3]));
        let mut ls = [0f32; 4];
        let mut hs = [0f32; 4];
        vst1q_f32(ls.as_mut_ptr(), l);
        vst1q_f32(hs.as_mut_ptr(), h);
        let mut finite = vminvq_u32(f) == u32::MAX;
        let mut lo = ls
            .iter()
            .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
        let mut hi = hs
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        for &v in blocks.remainder() {
            lo = if v < lo { v } else { lo };
            hi = if v > hi { v } else { hi };
            finite &= v.abs() < f32::INFINITY;
        }
        (lo, hi, finite)
    }
}

#[cfg(test)]
mod tests {
    use super::super::run_min_max_portable;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn min_max_matches_the_portable_loop() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for round in 0..900 {
            let n = rng.gen_range(0..300);
            // Finite values only; with infinities; with infinities and NaN. Special values are
            // rare, so that many runs hold only one of them.
            let (inf, nan) = [(false, false), (true, false), (true, true)][round % 3];
            let x: Vec<f32> = (0..n)
                .map(|_| match rng.gen_range(0..200) {
                    0..=9 => 0.0,
                    10..=19 => -0.0,
                    20..=29 => f32::from_bits(rng.gen_range(1..1 << 23)),
                    30..=39 => -f32::from_bits(rng.gen_range(1..1 << 23)),
                    40..=49 => rng.gen_range(-1.5e38..1.5e38f32) * 2.0,
                    50 if nan => f32::NAN,
                    51 if inf => f32::INFINITY,
                    52 if inf => f32::NEG_INFINITY,
                    _ => rng.gen_range(-200.0..200.0f32),
                })
                .collect();
            let got = super::min_max(&x);
            let want = run_min_max_portable(&x);
            // Equal as values (+0 and -0 compare equal, and nothing downstream tells them apart).
            assert!(
                got.0 == want.0 && got.1 == want.1 && got.2 == want.2,
                "{got:?} vs {want:?}"
            );
        }
        // All NaN: nothing seen, as the portable loop says.
        let x = vec![f32::NAN; 40];
        assert_eq!(
            format!("{:?}", super::min_max(&x)),
            format!("{:?}", run_min_max_portable(&x))
        );
    }
}
