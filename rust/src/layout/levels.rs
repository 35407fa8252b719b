//! Scalar quantizers beyond the affine grid of `quant`, for fitted codecs (FORMAT.md 9.2):
//! an affine grid with a dead zone, and trained non-uniform levels.
//!
//! Why: a fitted codec fixes its quantizer once, so it may spend calibration time and codec
//! bytes (never blob bytes) on a better one. A *dead zone* sends small magnitudes to the code of
//! zero — more exact zeros, which the context coder codes almost for free — at the price of a
//! larger error on those values. A *codebook* holds any non-decreasing reconstruction levels and
//! the decision thresholds between them (Lloyd–Max or entropy-constrained levels trained on
//! calibration samples); decoding is a table lookup.
//!
//! Decode error, for a value `x` inside the range of its channel (`[levels[0], levels[K-1]]` of
//! a codebook; the affine grid's ends for a dead zone): with a dead zone `t`, `|x - x'| <=
//! max(scale / 2, t)`; with a codebook, `|x - x'| <= max_error()`, the largest distance from a
//! level to the ends of its decision cell. Values outside the range decode to the nearest end.

use crate::error::{corrupt, CodecError, Result};
use crate::quant::{self, for_runs, Affine, Channels, Code, NonFinite};

/// Reconstruction levels and the decision thresholds between them.
///
/// A value `x` gets the code `#{k : thresholds[k] <= x}` (so `thresholds[k]` is the least value
/// of code `k + 1`) and decodes to `levels[code]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    /// `K` levels, finite, strictly increasing.
    pub levels: Vec<f32>,
    /// `K - 1` thresholds, finite, `levels[k] <= thresholds[k] <= levels[k + 1]`.
    pub thresholds: Vec<f32>,
}

impl Codebook {
    /// Checks the invariants (FORMAT.md 9.2) for codes of `bits` bits.
    pub fn validate(&self, bits: u8) -> Result<()> {
        let k = self.levels.len();
        if k == 0 || k > 1usize << bits {
            return Err(corrupt!("a codebook of {k} levels for {bits}-bit codes"));
        }
        if self.thresholds.len() + 1 != k {
            return Err(corrupt!(
                "a codebook of {k} levels with {} thresholds",
                self.thresholds.len()
            ));
        }
        if self.levels.iter().any(|v| !v.is_finite())
            || self.thresholds.iter().any(|v| !v.is_finite())
        {
            return Err(corrupt!("a codebook level or threshold is not finite"));
        }
        for i in 0..k - 1 {
            let (a, t, b) = (self.levels[i], self.thresholds[i], self.levels[i + 1]);
            if a >= b || t < a || t > b {
                return Err(corrupt!(
                    "codebook levels must increase with each threshold between its neighbours (level {a}, threshold {t}, level {b})"
                ));
            }
        }
        Ok(())
    }

    /// The code of the value 0: what a missing neighbour reads as (FORMAT.md 9.4).
    pub fn zero_code(&self) -> u8 {
        self.code(0.0)
    }

    #[inline]
    pub fn code(&self, x: f32) -> u8 {
        self.thresholds.partition_point(|&t| t <= x) as u8
    }

    /// The largest decode error of a value between the first and the last level.
    pub fn max_error(&self) -> f32 {
        let mut worst = 0f32;
        for (i, &v) in self.levels.iter().enumerate() {
            if i > 0 {
                worst = worst.max(v - self.thresholds[i - 1]);
            }
            if i + 1 < self.levels.len() {
                worst = worst.max(self.thresholds[i] - v);
            }
        }
        worst
    }
}

fn check_finite(x: &[f32], non_finite: NonFinite) -> Result<()> {
    if non_finite == NonFinite::Error {
        if let Some(i) = quant::first_non_finite(x) {
            return Err(CodecError::InvalidArgument(format!(
                "input holds NaN or infinity (first at flat index {i}, value {}); \
                 pass nonfinite=\"clamp\" to map NaN to 0 and infinities to the range ends",
                x[i]
            )));
        }
    }
    Ok(())
}

/// The affine codes of `quant::quantize`, then every value with `|x| <= dead_zone[c]` gets its
/// channel's zero point. NaN (with `NonFinite::Clamp`) maps to the zero point as there.
pub fn quantize_dead_zone(
    x: &[f32],
    params: &[Affine],
    dead_zone: &[f32],
    ch: Channels,
    bits: u8,
    non_finite: NonFinite,
    out: &mut [u8],
) -> Result<()> {
    quant::quantize_unknown(x, params, ch, bits, non_finite, out)?;
    for_runs(x, out, ch, |run, o, c| {
        let t = dead_zone[c];
        let z = params[c].zero_point as u8;
        for (q, &v) in o.iter_mut().zip(run) {
            if v.abs() <= t {
                *q = z;
            }
        }
    });
    Ok(())
}

/// Codes of `x` under the codebook of each channel (`books[index[c]]`). With
/// `NonFinite::Clamp`, NaN maps to the code of zero and infinities to the end codes.
pub fn quantize_levels(
    x: &[f32],
    books: &[Codebook],
    index: &[u32],
    ch: Channels,
    non_finite: NonFinite,
    out: &mut [u8],
) -> Result<()> {
    check_finite(x, non_finite)?;
    for_runs(x, out, ch, |run, o, c| {
        let book = &books[index[c] as usize];
        let zero = book.zero_code();
        for (q, &v) in o.iter_mut().zip(run) {
            *q = if v.is_nan() { zero } else { book.code(v) };
        }
    });
    Ok(())
}

/// `levels[q]` of each element's codebook; a code past its codebook's last level is Corrupt.
pub fn dequantize_levels<C: Code>(
    q: &[C],
    books: &[Codebook],
    index: &[u32],
    ch: Channels,
    out: &mut [f32],
) -> Result<()> {
    let mut bad = None;
    for_runs(q, out, ch, |run, o, c| {
        let levels = &books[index[c] as usize].levels;
        for (y, &code) in o.iter_mut().zip(run) {
            match levels.get(code.to_i32() as usize) {
                Some(&v) => *y = v,
                None => bad = Some(code.to_i32()),
            }
        }
    });
    match bad {
        Some(code) => Err(corrupt!("code {code} past the last level of its codebook")),
        None => Ok(()),
    }
}

/// Checks that every code of `q` names a level of its channel's codebook, as `decode_codes`
/// (and so `inspect`) must, like `dequantize_levels`.
pub fn check_codes(q: &[u8], books: &[Codebook], index: &[u32], ch: Channels) -> Result<()> {
    let inner = ch.inner.max(1);
    let channels = ch.channels.max(1);
    for (i, &code) in q.iter().enumerate() {
        let c = (i / inner) % channels;
        if code as usize >= books[index[c] as usize].levels.len() {
            return Err(corrupt!("code {code} past the last level of its codebook"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(levels: &[f32], thresholds: &[f32]) -> Codebook {
        Codebook {
            levels: levels.to_vec(),
            thresholds: thresholds.to_vec(),
        }
    }

    #[test]
    fn codes_follow_the_thresholds_and_the_error_bound_holds() {
        let b = book(&[-1.0, 0.0, 0.5, 2.0], &[-0.25, 0.3, 1.0]);
        b.validate(2).unwrap();
        assert_eq!(b.zero_code(), 1);
        assert_eq!(b.max_error(), 1.0);
        let x: Vec<f32> = (0..3001).map(|i| -1.0 + i as f32 * 0.001).collect();
        let mut q = vec![0u8; x.len()];
        quantize_levels(
            &x,
            std::slice::from_ref(&b),
            &[0],
            Channels::TENSOR,
            NonFinite::Error,
            &mut q,
        )
        .unwrap();
        let mut y = vec![0f32; x.len()];
        dequantize_levels(&q, std::slice::from_ref(&b), &[0], Channels::TENSOR, &mut y).unwrap();
        for (v, w) in x.iter().zip(&y) {
            assert!((v - w).abs() <= b.max_error(), "{v} -> {w}");
        }
        assert_eq!(b.code(-0.25), 1);
        assert_eq!(b.code(-0.2500001), 0);
        assert_eq!(b.code(f32::INFINITY), 3);
        assert_eq!(b.code(f32::NEG_INFINITY), 0);
    }

    #[test]
    fn invalid_codebooks_and_codes_are_refused() {
        assert!(book(&[0.0, 0.0], &[0.0]).validate(1).is_err());
        assert!(book(&[0.0, 1.0], &[1.5]).validate(1).is_err());
        assert!(book(&[0.0, 1.0, 2.0], &[0.5, 1.5]).validate(1).is_err());
        assert!(book(&[0.0, f32::NAN], &[0.5]).validate(1).is_err());
        assert!(book(&[], &[]).validate(1).is_err());
        book(&[0.0], &[]).validate(1).unwrap();
        let b = book(&[0.0, 1.0, 2.0], &[0.5, 1.5]);
        let mut y = [0f32; 2];
        assert!(dequantize_levels(&[1u8, 3], &[b], &[0], Channels::TENSOR, &mut y).is_err());
    }

    #[test]
    fn dead_zone_maps_small_values_to_the_zero_point() {
        let a = Affine::from_range(-1.0, 3.0, 4);
        let x = [0.0f32, 0.2, -0.2, 0.4, 1.0, -0.41];
        let mut q = [0u8; 6];
        quantize_dead_zone(
            &x,
            &[a],
            &[0.4],
            Channels::TENSOR,
            4,
            NonFinite::Error,
            &mut q,
        )
        .unwrap();
        let mut y = [0f32; 6];
        quant::dequantize(&q, &[a], Channels::TENSOR, &mut y);
        assert_eq!(&y[..4], &[0.0; 4]);
        for (v, w) in x.iter().zip(&y) {
            assert!((v - w).abs() <= (a.scale / 2.0).max(0.4) * (1.0 + 1e-6));
        }
        assert_ne!(y[5], 0.0);
    }
}
