//! Asymmetric integer quantization of float features, per tensor or per channel.
//!
//! `q = clamp(round_half_even(x / scale) + zero_point, 0, 2^bits - 1)` in f32 arithmetic, and
//! back `x' = (q - zero_point) * scale`. The range always includes zero, so zero (a ReLU's
//! output, a sparse map's background) is represented exactly by `q == zero_point`. For every
//! element inside the quantization range `|x - x'| <= scale / 2` (plus f32 rounding).

use crate::error::{CodecError, Result};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// Whether the AVX2 passes run (x86-64 CPUs that have it; see `cpu.rs`).
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    crate::cpu::avx2()
}

pub const MAX_BITS: u8 = 16;

/// What to do with NaN and infinities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonFinite {
    /// Refuse the input.
    Error,
    /// NaN becomes 0, +inf the top of the range, -inf the bottom.
    Clamp,
}

/// Scale and zero point of one tensor or one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub scale: f32,
    pub zero_point: i32,
}

impl Affine {
    /// Parameters covering `[lo, hi]` (widened to include zero) with `bits` bits.
    pub fn from_range(lo: f32, hi: f32, bits: u8) -> Affine {
        let levels = ((1u32 << bits) - 1) as f32;
        let lo = lo.min(0.0);
        let hi = hi.max(0.0);
        let range = hi - lo;
        // A range past f32::MAX (e.g. -3e38..3e38) is split so that the scale stays finite.
        let mut scale = if range.is_finite() {
            range / levels
        } else {
            hi / levels - lo / levels
        };
        if scale.is_infinite() {
            // Only at 1 bit over a range wider than f32::MAX: the widest step there is, and the
            // ends clamp.
            scale = f32::MAX;
        }
        if scale == 0.0 && range > 0.0 {
            // The step underflowed: a nonzero subnormal range; take the smallest step there is.
            scale = f32::from_bits(1);
        }
        if scale.is_nan() || scale <= 0.0 || scale.is_infinite() {
            return Affine {
                scale: 0.0,
                zero_point: 0,
            };
        }
        // Rounding may leave the grid a little short of the range; with a subnormal scale by
        // far more than half a step. Widen it by ulps until it covers the range.
        for _ in 0..4 {
            if !range.is_finite() || levels * scale >= range {
                break;
            }
            scale = scale.next_up();
        }
        // ... but both ends of the grid must stay finite, or they dequantize to infinity.
        let mut zero_point = (-lo / scale).round_ties_even().clamp(0.0, levels);
        let ends_finite = |s: f32, z: f32| ((levels - z) * s).is_finite() && (z * s).is_finite();
        for _ in 0..4 {
            if ends_finite(scale, zero_point) {
                break;
            }
            scale = scale.next_down();
            zero_point = (-lo / scale).round_ties_even().clamp(0.0, levels);
        }
        if !ends_finite(scale, zero_point) {
            // An end of the range lies within half a step of f32::MAX, where a few ulps cannot
            // help: keep the step and move the zero point inward until both ends are finite
            // (the end given up is then short of the range by less than a step), or, for a range
            // so wide that no zero point can (both ends near f32::MAX), take the widest step
            // with which one can.
            let mut m = (f32::MAX / scale).floor().min(levels);
            while m > 0.0 && !(m * scale).is_finite() {
                m -= 1.0;
            }
            while m < levels && ((m + 1.0) * scale).is_finite() {
                m += 1.0;
            }
            if 2.0 * m < levels {
                m = (1u32 << (bits - 1)) as f32;
                scale = f32::MAX / m;
            }
            zero_point = (-lo / scale).round_ties_even().clamp(levels - m, m);
        }
        Affine {
            scale,
            zero_point: zero_point as i32,
        }
    }
}

/// The layout of the channel axis: element `i` is in channel `(i / inner) % channels`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channels {
    pub channels: usize,
    pub inner: usize,
}

impl Channels {
    pub const TENSOR: Channels = Channels {
        channels: 1,
        inner: 1,
    };

    #[inline(always)]
    pub fn of(&self, i: usize) -> usize {
        if self.channels == 1 {
            0
        } else {
            (i / self.inner) % self.channels
        }
    }

    /// Calls `f(start, end, channel)` for the runs of elements `[from, to)` that lie in one
    /// channel, in order.
    #[inline]
    pub fn runs(&self, from: usize, to: usize, mut f: impl FnMut(usize, usize, usize)) {
        if self.channels == 1 {
            if from < to {
                f(from, to, 0);
            }
            return;
        }
        let inner = self.inner.max(1);
        let mut a = from;
        while a < to {
            let b = ((a / inner + 1) * inner).min(to);
            f(a, b, (a / inner) % self.channels);
            a = b;
        }
    }
}

/// Index of the first NaN or infinity, if any.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    x.iter().position(|v| !v.is_finite())
}

/// Minimum, maximum and "every value finite" of a run, in one pass that vectorizes: eight
/// independent accumulators, selects instead of branches. NaN never wins a comparison, so it is
/// ignored here; infinities are seen and clear the finite flag.
fn run_min_max(x: &[f32]) -> (f32, f32, bool) {
    #[cfg(target_arch = "x86_64")]
    if x.len() >= 64 && has_avx2() {
        // SAFETY: AVX2 is available.
        return unsafe { avx2::min_max(x) };
    }
    #[cfg(target_arch = "aarch64")]
    if x.len() >= 32 && crate::cpu::neon() {
        return neon::min_max(x);
    }
    run_min_max_portable(x)
}

fn run_min_max_portable(x: &[f32]) -> (f32, f32, bool) {
    let mut lo = [f32::INFINITY; 8];
    let mut hi = [f32::NEG_INFINITY; 8];
    let mut finite = [true; 8];
    let mut blocks = x.chunks_exact(8);
    for b in &mut blocks {
        for i in 0..8 {
            let v = b[i];
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
            finite[i] &= v.abs() < f32::INFINITY;
        }
    }
    for &v in blocks.remainder() {
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
        finite[0] &= v.abs() < f32::INFINITY;
    }
    let lo = lo
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let hi = hi
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    (lo, hi, finite.iter().all(|&f| f))
}

/// Per-channel minimum and maximum of the finite values (`(0, 0)` for a channel with none), and
/// whether every value is finite.
pub fn min_max(x: &[f32], ch: Channels) -> (Vec<(f32, f32)>, bool) {
    let mut mm = vec![(f32::INFINITY, f32::NEG_INFINITY); ch.channels];
    let mut all_finite = true;
    let runs: Box<dyn Iterator<Item = (usize, &[f32])>> = if ch.channels == 1 {
        Box::new(std::iter::once((0, x)))
    } else {
        Box::new(
            x.chunks(ch.inner)
                .enumerate()
                .map(|(b, run)| (b % ch.channels, run)),
        )
    };
    for (c, run) in runs {
        let (lo, hi, finite) = run_min_max(run);
        let m = &mut mm[c];
        if finite {
            m.0 = m.0.min(lo);
            m.1 = m.1.max(hi);
        } else {
            // Rare: redo this run keeping only the finite values.
            all_finite = false;
            for &v in run.iter().filter(|v| v.is_finite()) {
                m.0 = m.0.min(v);
                m.1 = m.1.max(v);
            }
        }
    }
    for m in &mut mm {
        if m.0 > m.1 {
            *m = (0.0, 0.0);
        }
    }
    (mm, all_finite)
}

/// A quantized symbol type: u8 for up to 8 bits, u16 for up to 16.
pub trait Code: Copy + Default + Send + Sync + 'static {
    fn from_i32(v: i32) -> Self;
    fn to_i32(self) -> i32;
    /// The codes as `u8`s when `Self` is `u8` (for the vector passes).
    #[doc(hidden)]
    fn codes_u8(_codes: &[Self]) -> Option<&[u8]> {
        None
    }
    /// The codes as `u16`s when `Self` is `u16`.
    #[doc(hidden)]
    fn codes_u16(_codes: &[Self]) -> Option<&[u16]> {
        None
    }
    #[doc(hidden)]
    fn codes_u8_mut(_codes: &mut [Self]) -> Option<&mut [u8]> {
        None
    }
    /// The codes as `u16`s when `Self` is `u16`.
    #[doc(hidden)]
    fn codes_u16_mut(_codes: &mut [Self]) -> Option<&mut [u16]> {
        None
    }
}

impl Code for u8 {
    fn codes_u8_mut(codes: &mut [u8]) -> Option<&mut [u8]> {
        Some(codes)
    }
    fn codes_u8(codes: &[u8]) -> Option<&[u8]> {
        Some(codes)
    }
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as u8
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
}

impl Code for u16 {
    fn codes_u16_mut(codes: &mut [u16]) -> Option<&mut [u16]> {
        Some(codes)
    }
    fn codes_u16(codes: &[u16]) -> Option<&[u16]> {
        Some(codes)
    }
    #[inline(always)]
    fn from_i32(v: i32) -> Self {
        v as u16
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        i32::from(self)
    }
}

/// Round half to even by the 1.5 * 2^23 trick: exact for |t| < 2^22, and anything larger is
/// clamped to the range ends afterwards anyway. Two IEEE additions, so it vectorizes and a GPU
/// reproduces it bit for bit, where `round_ties_even` would be a library call on baseline x86-64.
#[inline(always)]
pub fn round_half_even(t: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (t + MAGIC) - MAGIC
}

/// Counts the elements outside their channel's `[lo, hi]` (infinities included, NaN not).
pub fn count_outside(x: &[f32], ranges: &[(f32, f32)], ch: Channels) -> u64 {
    let count = |run: &[f32], (lo, hi): (f32, f32)| {
        run.iter().filter(|&&v| v < lo || v > hi).count() as u64
    };
    if ch.channels == 1 {
        count(x, ranges[0])
    } else {
        x.chunks(ch.inner)
            .enumerate()
            .map(|(block, run)| count(run, ranges[block % ch.channels]))
            .sum()
    }
}

/// Whether every value is finite, in one pass that vectorizes.
pub fn all_finite(x: &[f32]) -> bool {
    x.iter().fold(true, |a, v| a & (v.abs() < f32::INFINITY))
}

/// Quantizes `x` into `out`. Elements outside the range are clamped to its ends; with
/// `NonFinite::Clamp` NaN maps to the zero point and infinities to the ends. `finite` says
/// whether every value of `x` is finite (from `min_max` or `all_finite`).
pub fn quantize<C: Code>(
    x: &[f32],
    params: &[Affine],
    ch: Channels,
    bits: u8,
    non_finite: NonFinite,
    finite: bool,
    out: &mut [C],
) -> Result<()> {
    if !finite && non_finite == NonFinite::Error {
        if let Some(i) = first_non_finite(x) {
            return Err(CodecError::InvalidArgument(format!(
                "input holds NaN or infinity (first at flat index {i}, value {}); \
                 pass nonfinite=\"clamp\" to map NaN to 0 and infinities to the range ends",
                x[i]
            )));
        }
    }
    let levels = ((1u32 << bits) - 1) as f32;
    // NaN needs its own select; skip it when the input has none.
    let has_nan = !finite && x.iter().any(|v| v.is_nan());
    let quantize_run = |run: &[f32], out: &mut [C], a: Affine| {
        if a.scale == 0.0 {
            out.fill(C::from_i32(a.zero_point));
        } else if !quantize_vector(run, out, a, bits, has_nan) {
            quantize_portable(run, out, a, levels, has_nan);
        }
    };
    for_runs(x, out, ch, |run, o, c| quantize_run(run, o, params[c]));
    Ok(())
}

/// Applies `f(run, out, channel)` to each run of one channel.
pub(crate) fn for_runs<T, C>(
    x: &[T],
    out: &mut [C],
    ch: Channels,
    mut f: impl FnMut(&[T], &mut [C], usize),
) {
    if ch.channels == 1 {
        f(x, out, 0);
    } else {
        for (block, (run, o)) in x.chunks(ch.inner).zip(out.chunks_mut(ch.inner)).enumerate() {
            f(run, o, block % ch.channels);
        }
    }
}

/// `quantize` of input whose finiteness is not known (a fixed or dead-zone quantizer's: no
/// range pass to learn it from): where the vector pass runs, one pass that quantizes as for finite input and
/// checks that it was, and `quantize` again only where a value was not; elsewhere `all_finite`
/// first. The same codes and errors as `quantize(.., all_finite(x), ..)`, without its own pass
/// over the input (benches/NOTES.md 50).
pub fn quantize_unknown<C: Code>(
    x: &[f32],
    params: &[Affine],
    ch: Channels,
    bits: u8,
    non_finite: NonFinite,
    out: &mut [C],
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if bits <= 8 && has_avx2() && params.iter().all(|a| a.scale > 0.0) {
        if let Some(o) = C::codes_u8_mut(out) {
            let levels = (1u32 << bits) - 1;
            // SAFETY: AVX2 is available; codes of at most 8 bits fit a byte.
            let run = |run: &[f32], o: &mut [u8], a: Affine| unsafe {
                avx2::quantize::<u8, false, true>(run, o, a.scale, a.zero_point, levels)
            };
            let mut finite = true;
            for_runs(x, o, ch, |r, o, c| finite &= run(r, o, params[c]));
            if finite {
                return Ok(());
            }
            return quantize(x, params, ch, bits, non_finite, false, out);
        }
    }
    quantize(x, params, ch, bits, non_finite, all_finite(x), out)
}

/// One run of one channel (scale > 0) in plain Rust: the definition the vector pass matches.
fn quantize_portable<C: Code>(run: &[f32], out: &mut [C], a: Affine, levels: f32, nan: bool) {
    let zp = a.zero_point as f32;
    if nan {
        for (o, &v) in out.iter_mut().zip(run) {
            let c = (round_half_even(v / a.scale) + zp).clamp(0.0, levels);
            *o = C::from_i32(if v.is_nan() { a.zero_point } else { c as i32 });
        }
    } else {
        for (o, &v) in out.iter_mut().zip(run) {
            *o = C::from_i32((round_half_even(v / a.scale) + zp).clamp(0.0, levels) as i32);
        }
    }
}

/// The AVX2 quantizer on one run of one channel (scale > 0), where it applies: returns false
/// when the caller must run the portable loop (no AVX2, a short run, or another CPU: on
/// aarch64 the portable loop compiles to NEON as it is, `neon.rs`).
#[inline]
fn quantize_vector<C: Code>(x: &[f32], out: &mut [C], a: Affine, bits: u8, nan: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if x.len() >= 32 && has_avx2() {
        let levels = (1u32 << bits) - 1;
        let (s, z) = (a.scale, a.zero_point);
        // SAFETY: AVX2 is available; codes of at most `bits` bits fit the output type.
        unsafe {
            if let Some(o) = C::codes_u8_mut(out).filter(|_| bits <= 8) {
                if nan {
                    avx2::quantize::<u8, true, false>(x, o, s, z, levels);
                } else {
                    avx2::quantize::<u8, false, false>(x, o, s, z, levels);
                }
                return true;
            }
            if let Some(o) = C::codes_u16_mut(out) {
                if nan {
                    avx2::quantize::<u16, true, false>(x, o, s, z, levels);
                } else {
                    avx2::quantize::<u16, false, false>(x, o, s, z, levels);
                }
                return true;
            }
        }
    }
    let _ = (x, out, a, bits, nan);
    false
}

/// `out[i] = f32(codes[i] - zero_point) * scale` for one run of one channel (FORMAT.md 6.4),
/// eight at a time where AVX2 runs: the same binary32 operations as `dequantize`.
pub fn dequantize_run_f32<C: Code>(codes: &[C], out: &mut [f32], a: Affine) {
    #[cfg(target_arch = "x86_64")]
    if codes.len() >= 16 && has_avx2() {
        // SAFETY: AVX2 is available.
        unsafe {
            if let Some(c) = C::codes_u8(codes) {
                return avx2::dequantize_f32(c, out, a.zero_point, a.scale);
            }
            if let Some(c) = C::codes_u16(codes) {
                return avx2::dequantize_f32(c, out, a.zero_point, a.scale);
            }
        }
    }
    for (o, &q) in out.iter_mut().zip(codes.iter()) {
        *o = (q.to_i32() - a.zero_point) as f32 * a.scale;
    }
}

/// `x' = (q - zero_point) * scale`.
pub fn dequantize<C: Code>(q: &[C], params: &[Affine], ch: Channels, out: &mut [f32]) {
    let run_fn = |q: &[C], out: &mut [f32], a: Affine| {
        for (o, &c) in out.iter_mut().zip(q) {
            *o = (c.to_i32() - a.zero_point) as f32 * a.scale;
        }
    };
    if ch.channels == 1 {
        run_fn(q, out, params[0]);
    } else {
        for (block, (run, o)) in q.chunks(ch.inner).zip(out.chunks_mut(ch.inner)).enumerate() {
            run_fn(run, o, params[block % ch.channels]);
        }
    }
}

/// The largest finite float16, 65504.
pub const F16_MAX: f32 = 65504.0;
/// The largest finite bfloat16 (`0x7F7F`), 3.3895314e38.
pub const BF16_MAX: f32 = f32::from_bits(0x7f7f_0000);

/// The float16 bit pattern of `x` clamped to `±65504`, rounded to nearest even (subnormals
/// included): numpy's `astype(float16)` wherever that is finite, and the largest finite value
/// where the cast would overflow to infinity. A decoded element is never further from a float16
/// input than before the clamp, since the input itself lies within ±65504.
#[inline(always)]
pub fn f16_bits(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7e00;
    }
    let b = x.clamp(-F16_MAX, F16_MAX).to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    let magnitude = if a < 113 << 23 {
        // Below 2^-14, a subnormal (or zero): adding 0.5 leaves the multiple of 2^-24 nearest to
        // `a` (ties to even) in the low mantissa bits of the sum.
        const HALF: u32 = 126 << 23;
        (f32::from_bits(a) + f32::from_bits(HALF)).to_bits() - HALF
    } else {
        // Rebias the exponent (127 -> 15) and round the mantissa from 23 to 10 bits, ties to
        // even; a carry moves into the exponent as it should.
        let odd = (a >> 13) & 1;
        (a - (112 << 23) + 0xfff + odd) >> 13
    };
    sign | magnitude as u16
}

/// The bfloat16 bit pattern of `x` clamped to `±BF16_MAX`, rounded to nearest even (torch's
/// conversion wherever that is finite).
#[inline(always)]
pub fn bf16_bits(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let b = x.clamp(-BF16_MAX, BF16_MAX).to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bound_holds() {
        for bits in [1u8, 2, 4, 8, 12, 16] {
            let x: Vec<f32> = (0..10_000)
                .map(|i| ((i as f32) * 0.7331).sin() * 3.0 + 0.5)
                .collect();
            let mm = min_max(&x, Channels::TENSOR).0[0];
            let a = Affine::from_range(mm.0, mm.1, bits);
            let mut q = vec![0u16; x.len()];
            quantize(
                &x,
                &[a],
                Channels::TENSOR,
                bits,
                NonFinite::Error,
                true,
                &mut q,
            )
            .unwrap();
            let mut back = vec![0f32; x.len()];
            dequantize(&q, &[a], Channels::TENSOR, &mut back);
            for (v, b) in x.iter().zip(&back) {
                assert!(
                    (v - b).abs() <= a.scale * 0.5 * (1.0 + 1e-5) + 1e-6,
                    "bits {bits}"
                );
            }
        }
    }

    #[test]
    fn grids_over_the_whole_float32_range_keep_finite_ends() {
        let max = f32::MAX;
        for (lo, hi) in [
            (-max, max),
            (-2.7e38, 2.82e38),
            (-max, 1.0),
            (-1.0, max),
            (-max, 3e38),
            (-3e38, max),
            (-1e38, max),
            (0.0, max),
            (-max, 0.0),
        ] {
            for bits in 1..=16u8 {
                let levels = ((1u32 << bits) - 1) as f32;
                let a = Affine::from_range(lo, hi, bits);
                let z = a.zero_point as f32;
                assert!(a.scale > 0.0 && a.scale.is_finite(), "{lo} {hi} {bits}");
                assert!((z * a.scale).is_finite(), "{lo} {hi} {bits}: {a:?}");
                assert!(
                    ((levels - z) * a.scale).is_finite(),
                    "{lo} {hi} {bits}: {a:?}"
                );
                // Every input decodes within a step (half a step away from the ends).
                for v in [lo, hi, lo / 2.0, hi / 2.0, 0.0] {
                    let mut q = [0u16];
                    quantize(
                        &[v],
                        &[a],
                        Channels::TENSOR,
                        bits,
                        NonFinite::Error,
                        true,
                        &mut q,
                    )
                    .unwrap();
                    let mut back = [0f32];
                    dequantize(&q, &[a], Channels::TENSOR, &mut back);
                    let err = (f64::from(v) - f64::from(back[0])).abs();
                    assert!(back[0].is_finite(), "{v} at {bits} bits");
                    assert!(
                        err <= f64::from(a.scale) * 1.0001,
                        "{v} at {bits} bits: {}",
                        back[0]
                    );
                }
            }
        }
    }

    #[test]
    fn subnormal_and_huge_ranges_keep_the_bound() {
        for (lo, hi) in [
            (0.0, 3.8e-42f32),
            (-1e-44, 2e-43),
            (-3e38, 3e38),
            (0.0, f32::MAX),
        ] {
            for bits in [1u8, 4, 8, 16] {
                if bits == 1 && hi - lo == f32::INFINITY {
                    continue; // a step past f32::MAX: documented to clamp
                }
                let a = Affine::from_range(lo, hi, bits);
                assert!(a.scale > 0.0 && a.scale.is_finite(), "{lo} {hi} {bits}");
                let x = [lo, hi, (lo + hi) / 2.0, 0.0];
                let mut q = [0u16; 4];
                quantize(
                    &x,
                    &[a],
                    Channels::TENSOR,
                    bits,
                    NonFinite::Error,
                    true,
                    &mut q,
                )
                .unwrap();
                let mut back = [0f32; 4];
                dequantize(&q, &[a], Channels::TENSOR, &mut back);
                for (v, b) in x.iter().zip(&back) {
                    let err = (f64::from(*v) - f64::from(*b)).abs();
                    let tol = f64::from(a.scale) / 2.0 * 1.0001
                        + f64::from(v.abs()) * 4.0 * f64::from(f32::EPSILON);
                    assert!(
                        err <= tol,
                        "{lo} {hi} bits {bits}: {v} -> {b}, scale {}",
                        a.scale
                    );
                }
            }
        }
    }

    #[test]
    fn half_conversions_round_to_nearest_even_and_saturate() {
        assert_eq!(f16_bits(0.0), 0);
        assert_eq!(f16_bits(-0.0), 0x8000);
        assert_eq!(f16_bits(1.0), 0x3c00);
        assert_eq!(f16_bits(-2.0), 0xc000);
        assert_eq!(f16_bits(65504.0), 0x7bff);
        assert_eq!(f16_bits(65519.0), 0x7bff);
        assert_eq!(f16_bits(65520.0), 0x7bff); // numpy: inf
        assert_eq!(f16_bits(-1e30), 0xfbff);
        assert_eq!(f16_bits(f32::INFINITY), 0x7bff);
        assert_eq!(f16_bits(2f32.powi(-24)), 1); // the smallest subnormal
        assert_eq!(f16_bits(2f32.powi(-25)), 0); // a tie: to even, zero
        assert_eq!(f16_bits(3.0 * 2f32.powi(-25)), 2); // a tie between 1 and 2: to even
        assert_eq!(f16_bits(2f32.powi(-14)), 0x0400); // the smallest normal
        assert_eq!(f16_bits(1.0 + 2f32.powi(-11)), 0x3c00); // a tie: to even
        assert_eq!(f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(bf16_bits(1.0), 0x3f80);
        assert_eq!(bf16_bits(f32::MAX), 0x7f7f); // torch: inf
        assert_eq!(bf16_bits(-f32::MAX), 0xff7f);
        assert_eq!(bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80); // a tie: to even
        assert_eq!(bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
    }

    #[test]
    fn zero_is_exact_and_constant_tensors_work() {
        let a = Affine::from_range(0.0, 6.0, 8);
        assert_eq!(a.zero_point, 0);
        let z = Affine::from_range(0.0, 0.0, 8);
        assert_eq!(z.scale, 0.0);
        let mut q = [0u8; 3];
        quantize(
            &[0.0, 0.0, 0.0],
            &[z],
            Channels::TENSOR,
            8,
            NonFinite::Error,
            true,
            &mut q,
        )
        .unwrap();
        let mut back = [1f32; 3];
        dequantize(&q, &[z], Channels::TENSOR, &mut back);
        assert_eq!(back, [0.0; 3]);
    }

    #[test]
    fn non_finite_is_refused_or_clamped() {
        let a = Affine::from_range(-1.0, 1.0, 8);
        let x = [0.5, f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        let mut q = [0u8; 4];
        assert!(quantize(
            &x,
            &[a],
            Channels::TENSOR,
            8,
            NonFinite::Error,
            false,
            &mut q
        )
        .is_err());
        quantize(
            &x,
            &[a],
            Channels::TENSOR,
            8,
            NonFinite::Clamp,
            false,
            &mut q,
        )
        .unwrap();
        assert_eq!(count_outside(&x, &[(-1.0, 1.0)], Channels::TENSOR), 2);
        assert_eq!(q[1] as i32, a.zero_point);
        assert_eq!(q[2], 255);
        assert_eq!(q[3], 0);
    }
}
