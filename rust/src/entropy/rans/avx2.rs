//! The AVX2 kernels of the interleaved rANS coder (FORMAT.md 4.3): four vectors of eight states,
//! table gathers, and the words handed to the lanes that need them by a permutation looked up
//! from the lanes' mask. Each gives exactly the portable loop's words.

use super::{Decoder, Encoder, ENC_PAD, MAX_LANES};
use std::arch::x86_64::*;

/// For each 8-lane mask of the lanes that read a word: per lane, its rank among those lanes
/// (one byte per lane), i.e. which of the next eight words it takes.
static EXPAND: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0u64;
        let mut l = 0;
        while l < 8 {
            if m >> l & 1 == 1 {
                t[m] |= k << (8 * l);
                k += 1;
            }
            l += 1;
        }
        m += 1;
    }
    t
};

/// An output symbol type of the vector kernels.
pub(super) trait Out: Copy {
    /// Stores step `s` (32 symbols, lanes 0..8 in `v[0]` and so on, each in the bits
    /// `sym_mask` of a 32-bit lane, at most the low 16) to `out[32 * s..32 * s + 32]`.
    ///
    /// # Safety
    /// AVX2 must be available and `32 * s + 32 <= out.len()`.
    unsafe fn store(out: &mut [Self], s: usize, v: [__m256i; 4], sym_mask: __m256i);
}

impl Out for u8 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(out: &mut [u8], s: usize, v: [__m256i; 4], _: __m256i) {
        let b = _mm256_set1_epi32(0xff);
        let a01 = _mm256_packus_epi32(_mm256_and_si256(v[0], b), _mm256_and_si256(v[1], b));
        let a23 = _mm256_packus_epi32(_mm256_and_si256(v[2], b), _mm256_and_si256(v[3], b));
        // Dwords [0a 1a 2a 3a 0b 1b 2b 3b] (a, b: the low and high four lanes of a vector).
        let bytes = _mm256_packus_epi16(a01, a23);
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let bytes = _mm256_permutevar8x32_epi32(bytes, order);
        // SAFETY: the caller guarantees that the 32 bytes at 32 * s are inside `out`.
        _mm256_storeu_si256(out.as_mut_ptr().add(32 * s).cast(), bytes);
    }
}

impl Out for u16 {
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn store(out: &mut [u16], s: usize, v: [__m256i; 4], w: __m256i) {
        let a01 = _mm256_packus_epi32(_mm256_and_si256(v[0], w), _mm256_and_si256(v[1], w));
        let a23 = _mm256_packus_epi32(_mm256_and_si256(v[2], w), _mm256_and_si256(v[3], w));
        let a01 = _mm256_permute4x64_epi64::<0b11_01_10_00>(a01);
        let a23 = _mm256_permute4x64_epi64::<0b11_01_10_00>(a23);
        let p = out.as_mut_ptr().add(32 * s);
        // SAFETY: the caller guarantees that the 32 symbols at 32 * s are inside `out`.
        _mm256_storeu_si256(p.cast(), a01);
        _mm256_storeu_si256(p.add(16).cast(), a23);
    }
}

/// `t` of each lane's index (read as unsigned), by eight scalar loads put together in a
/// vector: a gather without the gather instruction, which runs faster on the AMD cores
/// measured (Zen 4, and Zen 3 for the fitted codec's kernels: a microcoded gather; the loads
/// fold into `vpinsrd`). Shared with the fitted codec's AVX2 kernels
/// (`model::pctx::avx2`).
///
/// # Safety
/// AVX2; `t` must be safe to call with every lane's index.
#[inline(always)]
pub(crate) unsafe fn loads(idx: __m256i, t: impl Fn(usize) -> i32) -> __m256i {
    let lo = _mm256_castsi256_si128(idx);
    let hi = _mm256_extracti128_si256::<1>(idx);
    let (i01, i23) = (
        _mm_cvtsi128_si64(lo) as u64,
        _mm_extract_epi64::<1>(lo) as u64,
    );
    let (i45, i67) = (
        _mm_cvtsi128_si64(hi) as u64,
        _mm_extract_epi64::<1>(hi) as u64,
    );
    let u = |i: u64| t(i as u32 as usize);
    let a = _mm_setr_epi32(u(i01), u(i01 >> 32), u(i23), u(i23 >> 32));
    let b = _mm_setr_epi32(u(i45), u(i45 >> 32), u(i67), u(i67 >> 32));
    _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(a), b)
}

/// `_mm256_i32gather_epi32::<4>(table, idx)` as eight scalar loads (`loads`).
///
/// # Safety
/// AVX2; `table + idx[k]` readable for every lane.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn gather(table: *const i32, idx: __m256i) -> __m256i {
    loads(idx, |i| *table.add(i))
}

/// `gather` of u16 entries, zero-extended.
///
/// # Safety
/// AVX2; `table + idx[k]` readable for every lane.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn gather_u16(table: *const u16, idx: __m256i) -> __m256i {
    loads(idx, |i| i32::from(*table.add(i)))
}

/// One decode step of eight lanes `xv`, renormalized from the words at `*pos`; returns the
/// symbols (in the low bits of each 32-bit lane).
///
/// # Safety
/// AVX2 and POPCNT must be available; `table` must hold `2^p` entries, `syms` (unless
/// `PACKED`) `2^p + 1` u16s, `mask` must be `2^p - 1` in every lane, and 8 words (16 bytes)
/// must be readable at `wp + 2 * *pos`.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
#[allow(clippy::too_many_arguments)]
unsafe fn lanes8<const PACKED: bool>(
    xv: &mut __m256i,
    table: *const i32,
    syms: *const i32,
    mask: __m256i,
    shift: __m128i,
    wp: *const u8,
    pos: &mut usize,
) -> __m256i {
    let slot = _mm256_and_si256(*xv, mask);
    // SAFETY: every slot is below 2^p (masked), so every 4-byte read is inside `table`
    // (2^p u32s) and `syms` (2^p + 1 u16s, read at byte offset 2 * slot).
    let e = gather(table, slot);
    let (freq, bias, sym) = if PACKED {
        let bias = _mm256_and_si256(_mm256_srli_epi32::<8>(e), _mm256_set1_epi32(0xfff));
        (_mm256_srli_epi32::<20>(e), bias, e)
    } else {
        let bias = _mm256_and_si256(e, _mm256_set1_epi32(0xffff));
        let sym = gather_u16(syms.cast(), slot);
        (_mm256_srli_epi32::<16>(e), bias, sym)
    };
    let x = _mm256_add_epi32(_mm256_mullo_epi32(freq, _mm256_srl_epi32(*xv, shift)), bias);
    let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(x), _mm256_setzero_si256());
    let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize & 0xff;
    // SAFETY: the caller guarantees 16 readable bytes at wp + 2 * pos.
    let w = _mm256_cvtepu16_epi32(_mm_loadu_si128(wp.add(2 * *pos).cast()));
    let ranks = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(EXPAND[m] as i64));
    let w = _mm256_permutevar8x32_epi32(w, ranks);
    *xv = _mm256_blendv_epi8(x, _mm256_or_si256(_mm256_slli_epi32::<16>(x), w), need);
    *pos += (m as u32).count_ones() as usize;
    sym
}

/// `Decoder::decode_fast` with AVX2: the 32 states in four vectors.
///
/// # Safety
/// AVX2 and POPCNT must be available.
#[target_feature(enable = "avx2,popcnt")]
pub(super) unsafe fn decode<O: Out, const PACKED: bool>(
    d: &Decoder,
    x: &mut [u32; MAX_LANES],
    words: &[u8],
    pos: &mut usize,
    out: &mut [O],
) -> usize {
    let p = d.precision_bits;
    // The tables hold exactly 2^p (+1) entries (`Decoder::new`); PACKED only when built.
    let table = if PACKED { &d.packed } else { &d.fb };
    assert!(p <= 16 && table.len() == 1 << p && d.syms.len() > 1 << p);
    let table = table.as_ptr().cast::<i32>();
    let syms = d.syms.as_ptr().cast::<i32>();
    let mask = _mm256_set1_epi32(((1u32 << p) - 1) as i32);
    let shift = _mm_cvtsi32_si128(p as i32);
    let sym_mask = _mm256_set1_epi32(if PACKED { 0xff } else { 0xffff });
    let n_words = words.len() / 2;
    // Keeps `n_words - ps` below from wrapping.
    assert!(*pos <= n_words);
    let wp = words.as_ptr();
    let steps = out.len() / MAX_LANES;
    let xp = x.as_mut_ptr().cast::<__m256i>();
    // SAFETY: `x` is 32 u32s: four unaligned 32-byte vectors.
    let mut x0 = _mm256_loadu_si256(xp);
    let mut x1 = _mm256_loadu_si256(xp.add(1));
    let mut x2 = _mm256_loadu_si256(xp.add(2));
    let mut x3 = _mm256_loadu_si256(xp.add(3));
    let mut ps = *pos;
    let mut s = 0;
    // SAFETY (reads of words): a step starts with at least 32 words left at `ps`, and its
    // k-th vector reads 8 words at `ps` plus at most 8 * k words taken by the vectors
    // before it, so every read ends at most 32 words past the step's start.
    while s < steps && n_words - ps >= MAX_LANES {
        let s0 = lanes8::<PACKED>(&mut x0, table, syms, mask, shift, wp, &mut ps);
        let s1 = lanes8::<PACKED>(&mut x1, table, syms, mask, shift, wp, &mut ps);
        let s2 = lanes8::<PACKED>(&mut x2, table, syms, mask, shift, wp, &mut ps);
        let s3 = lanes8::<PACKED>(&mut x3, table, syms, mask, shift, wp, &mut ps);
        // SAFETY: s < steps = out.len() / 32.
        O::store(out, s, [s0, s1, s2, s3], sym_mask);
        s += 1;
    }
    _mm256_storeu_si256(xp, x0);
    _mm256_storeu_si256(xp.add(1), x1);
    _mm256_storeu_si256(xp.add(2), x2);
    _mm256_storeu_si256(xp.add(3), x3);
    *pos = ps;
    s * MAX_LANES
}

/// One chunk's side of `decode_pair`: states, words, next word, output.
pub(super) type Side<'a, O> = (
    &'a mut [u32; MAX_LANES],
    &'a [u8],
    &'a mut usize,
    &'a mut [O],
);

/// `decode` of two chunks at once, their steps interleaved (eight vectors of independent
/// states), while both have steps and 32 words left; returns the symbols decoded in each.
///
/// # Safety
/// AVX2 and POPCNT must be available.
#[target_feature(enable = "avx2,popcnt")]
pub(super) unsafe fn decode_pair<O: Out, const PACKED: bool>(
    d: &Decoder,
    (xa, wa, pa, oa): Side<'_, O>,
    (xb, wb, pb, ob): Side<'_, O>,
) -> (usize, usize) {
    let p = d.precision_bits;
    let table = if PACKED { &d.packed } else { &d.fb };
    assert!(p <= 16 && table.len() == 1 << p && d.syms.len() > 1 << p);
    let table = table.as_ptr().cast::<i32>();
    let syms = d.syms.as_ptr().cast::<i32>();
    let mask = _mm256_set1_epi32(((1u32 << p) - 1) as i32);
    let shift = _mm_cvtsi32_si128(p as i32);
    let sym_mask = _mm256_set1_epi32(if PACKED { 0xff } else { 0xffff });
    let (na, nb) = (wa.len() / 2, wb.len() / 2);
    assert!(*pa <= na && *pb <= nb);
    let (wpa, wpb) = (wa.as_ptr(), wb.as_ptr());
    let steps = (oa.len() / MAX_LANES).min(ob.len() / MAX_LANES);
    let (xpa, xpb) = (
        xa.as_mut_ptr().cast::<__m256i>(),
        xb.as_mut_ptr().cast::<__m256i>(),
    );
    // SAFETY: each of `xa`, `xb` is 32 u32s: four unaligned 32-byte vectors.
    let mut a0 = _mm256_loadu_si256(xpa);
    let mut a1 = _mm256_loadu_si256(xpa.add(1));
    let mut a2 = _mm256_loadu_si256(xpa.add(2));
    let mut a3 = _mm256_loadu_si256(xpa.add(3));
    let mut b0 = _mm256_loadu_si256(xpb);
    let mut b1 = _mm256_loadu_si256(xpb.add(1));
    let mut b2 = _mm256_loadu_si256(xpb.add(2));
    let mut b3 = _mm256_loadu_si256(xpb.add(3));
    let (mut qa, mut qb) = (*pa, *pb);
    let mut s = 0;
    // SAFETY (reads of words): as in `decode`, for each chunk separately.
    while s < steps && na - qa >= MAX_LANES && nb - qb >= MAX_LANES {
        let sa0 = lanes8::<PACKED>(&mut a0, table, syms, mask, shift, wpa, &mut qa);
        let sb0 = lanes8::<PACKED>(&mut b0, table, syms, mask, shift, wpb, &mut qb);
        let sa1 = lanes8::<PACKED>(&mut a1, table, syms, mask, shift, wpa, &mut qa);
        let sb1 = lanes8::<PACKED>(&mut b1, table, syms, mask, shift, wpb, &mut qb);
        let sa2 = lanes8::<PACKED>(&mut a2, table, syms, mask, shift, wpa, &mut qa);
        let sb2 = lanes8::<PACKED>(&mut b2, table, syms, mask, shift, wpb, &mut qb);
        let sa3 = lanes8::<PACKED>(&mut a3, table, syms, mask, shift, wpa, &mut qa);
        let sb3 = lanes8::<PACKED>(&mut b3, table, syms, mask, shift, wpb, &mut qb);
        // SAFETY: s < steps, within both outputs.
        O::store(oa, s, [sa0, sa1, sa2, sa3], sym_mask);
        O::store(ob, s, [sb0, sb1, sb2, sb3], sym_mask);
        s += 1;
    }
    _mm256_storeu_si256(xpa, a0);
    _mm256_storeu_si256(xpa.add(1), a1);
    _mm256_storeu_si256(xpa.add(2), a2);
    _mm256_storeu_si256(xpa.add(3), a3);
    _mm256_storeu_si256(xpb, b0);
    _mm256_storeu_si256(xpb.add(1), b1);
    _mm256_storeu_si256(xpb.add(2), b2);
    _mm256_storeu_si256(xpb.add(3), b3);
    *pa = qa;
    *pb = qb;
    (s * MAX_LANES, s * MAX_LANES)
}

/// The vector encoder keeps lane `ENC_ORDER[i]` of its eight in 32-bit element `i`: the
/// order in which two 4-entry gathers of lanes 0..4 and 4..8 come out of `shuffle_ps`.
/// (`ENC_ORDER` is its own inverse.)
const ENC_ORDER: [u32; 8] = [0, 1, 4, 5, 2, 3, 6, 7];

/// For each 8-bit mask of the elements whose lanes emit a word: the `pshufb` control that
/// moves their words (8 u16s in element order) to the bottom of the vector, highest lane
/// first (the order in which the encoder emits them).
static EMIT: [[u8; 16]; 256] = {
    let mut t = [[0x80u8; 16]; 256];
    let mut m = 0;
    while m < 256 {
        let mut j = 0;
        let mut lane = 8;
        while lane > 0 {
            lane -= 1;
            // The element holding `lane`.
            let i = ENC_ORDER[lane] as usize;
            if m >> i & 1 == 1 {
                t[m][2 * j] = 2 * i as u8;
                t[m][2 * j + 1] = 2 * i as u8 + 1;
                j += 1;
            }
        }
        m += 1;
    }
    t
};

/// An input symbol type of the vector encoder.
pub(super) trait In: Copy {
    /// Symbol `k` at `p`.
    ///
    /// # Safety
    /// `p + k` readable.
    unsafe fn get(p: *const Self, k: usize) -> usize;
}

impl In for u8 {
    #[inline(always)]
    unsafe fn get(p: *const u8, k: usize) -> usize {
        // SAFETY: readable by the caller's guarantee.
        usize::from(*p.add(k))
    }
}

impl In for u16 {
    #[inline(always)]
    unsafe fn get(p: *const u16, k: usize) -> usize {
        // SAFETY: readable by the caller's guarantee.
        usize::from(*p.add(k))
    }
}

/// One encode step of eight lanes `xv` (in `ENC_ORDER`) with the symbols of lanes 0..8 at
/// `sp`; the words the lanes emit are stored at `wp`, highest lane first; returns their
/// count.
///
/// # Safety
/// AVX2 and POPCNT must be available; 8 symbols readable at `sp`; `vt` must have an entry
/// for each of them; 8 u16s must be writable at `wp`.
#[inline]
#[target_feature(enable = "avx2,popcnt")]
unsafe fn enc8<I: In>(
    xv: &mut __m256i,
    sp: *const I,
    vt: *const i64,
    kshift: __m128i,
    big_m: __m256i,
    wp: *mut u16,
) -> usize {
    // SAFETY: every symbol has an 8-byte entry at vt + 8 * sym (caller). Scalar loads
    // folded into inserts run faster than `vpgatherdq` on the AMD cores measured.
    let e = |k: usize| *vt.add(I::get(sp, k));
    let a = _mm256_castsi256_ps(_mm256_setr_epi64x(e(0), e(1), e(2), e(3)));
    let b = _mm256_castsi256_ps(_mm256_setr_epi64x(e(4), e(5), e(6), e(7)));
    // Low and high halves of the entries, in ENC_ORDER.
    let magic = _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(a, b));
    let fc = _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(a, b));
    let freq = _mm256_and_si256(fc, _mm256_set1_epi32(0xffff));
    let cum = _mm256_srli_epi32::<16>(fc);
    let x = *xv;
    // x >= freq << (32 - p) exactly when x >> (32 - p) >= freq (freq < 2^p); both sides
    // are below 2^31, so the signed compare is right.
    let keep = _mm256_cmpgt_epi32(freq, _mm256_srl_epi32(x, kshift));
    let m = !_mm256_movemask_ps(_mm256_castsi256_ps(keep)) as usize & 0xff;
    // The low halves of the eight states, in element order, in the low 128 bits.
    let halves = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12, 13, -1, -1,
        -1, -1, -1, -1, -1, -1,
    );
    let w = _mm256_permute4x64_epi64::<0b1000>(_mm256_shuffle_epi8(x, halves));
    let ctl = _mm_loadu_si128(EMIT[m].as_ptr().cast());
    // SAFETY: 8 u16s are writable at wp (caller).
    _mm_storeu_si128(wp.cast(), _mm_shuffle_epi8(_mm256_castsi256_si128(w), ctl));
    let xr = _mm256_blendv_epi8(_mm256_srli_epi32::<16>(x), x, keep);
    // q = xr / freq by `div_magic`: t = (xr * magic) >> 32 in 64-bit lanes, even elements
    // then odd ones moved down, and l - 1 = floor(log2(freq - 1)) from the exponent of
    // the (exact) float freq - 1.
    let te = _mm256_srli_epi64::<32>(_mm256_mul_epu32(xr, magic));
    let to = _mm256_mul_epu32(_mm256_srli_epi64::<32>(xr), _mm256_srli_epi64::<32>(magic));
    let t = _mm256_blend_epi32::<0b1010_1010>(te, to);
    let one = _mm256_set1_epi32(1);
    let fm1 = _mm256_cvtepi32_ps(_mm256_sub_epi32(freq, one));
    let lm1 = _mm256_sub_epi32(
        _mm256_srli_epi32::<23>(_mm256_castps_si256(fm1)),
        _mm256_set1_epi32(127),
    );
    // lm1 is negative for freq == 1 (where q = xr) and at least 32 for freq == 0 (an
    // absent symbol: q = 0, srlv gives 0; `EncSymbol::code` gets the same state from its
    // cmpl_freq of 0).
    let q = _mm256_srlv_epi32(
        _mm256_add_epi32(t, _mm256_srli_epi32::<1>(_mm256_sub_epi32(xr, t))),
        lm1,
    );
    let q = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(q),
        _mm256_castsi256_ps(xr),
        _mm256_castsi256_ps(lm1),
    ));
    let cmpl = _mm256_sub_epi32(big_m, freq);
    *xv = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(q, cmpl), xr), cum);
    (m as u32).count_ones() as usize
}

/// `Encoder::encode_fast` with AVX2: the 32 states in four vectors.
///
/// # Safety
/// AVX2 and POPCNT must be available.
#[target_feature(enable = "avx2,popcnt")]
pub(super) unsafe fn encode<I: In>(
    e: &Encoder,
    x: &mut [u32; MAX_LANES],
    symbols: &[I],
    words: &mut Vec<u16>,
) {
    let p = e.precision_bits;
    // Every value of I has an entry: the gathers stay inside the table.
    assert!(e.vt.len() >= 1 << (8 * std::mem::size_of::<I>()) && (1..=16).contains(&p));
    assert!(symbols.len().is_multiple_of(MAX_LANES));
    // Each vector emits at most 8 words and stores 8 at the current end.
    words.reserve(symbols.len() + ENC_PAD);
    let vt = e.vt.as_ptr().cast::<i64>();
    let kshift = _mm_cvtsi32_si128(32 - p as i32);
    let big_m = _mm256_set1_epi32(1 << p);
    let order = _mm256_loadu_si256(ENC_ORDER.as_ptr().cast());
    let xp = x.as_mut_ptr().cast::<__m256i>();
    // SAFETY: `x` is 32 u32s: four unaligned 32-byte vectors.
    let mut x0 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp), order);
    let mut x1 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp.add(1)), order);
    let mut x2 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp.add(2)), order);
    let mut x3 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(xp.add(3)), order);
    let wp = words.as_mut_ptr();
    let mut len = words.len();
    // SAFETY (words): capacity >= len + symbols.len() + 8 at the start; every vector
    // stores 8 u16s at wp + len and then adds at most 8 to len, its lanes' symbol count,
    // so every store ends within the capacity.
    for step in symbols.chunks_exact(MAX_LANES).rev() {
        let sp = step.as_ptr();
        // SAFETY: step holds 32 symbols.
        len += enc8(&mut x3, sp.add(24), vt, kshift, big_m, wp.add(len));
        len += enc8(&mut x2, sp.add(16), vt, kshift, big_m, wp.add(len));
        len += enc8(&mut x1, sp.add(8), vt, kshift, big_m, wp.add(len));
        len += enc8(&mut x0, sp.add(0), vt, kshift, big_m, wp.add(len));
    }
    // SAFETY: the first `len` u16s of the buffer are initialized: the ones before are
    // `words`' own, the new ones were stored by `enc8` (the emitting lanes' words come
    // first in each store) and len <= capacity.
    words.set_len(len);
    _mm256_storeu_si256(xp, _mm256_permutevar8x32_epi32(x0, order));
    _mm256_storeu_si256(xp.add(1), _mm256_permutevar8x32_epi32(x1, order));
    _mm256_storeu_si256(xp.add(2), _mm256_permutevar8x32_epi32(x2, order));
    _mm256_storeu_si256(xp.add(3), _mm256_permutevar8x32_epi32(x3, order));
}
