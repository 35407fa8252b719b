//! The AVX-512 decode kernels of the interleaved rANS coder (FORMAT.md 4.3): two vectors of
//! sixteen states, the table read by the gather instruction, and the words handed to the lanes
//! that need them by an expanding load (`vpexpandw`, which places the next words in the lanes
//! of a mask, in lane order: exactly the order the format reads them in). Each gives exactly
//! the portable loop's states, words and symbols. The encoder keeps the AVX2 kernel.
//!
//! Chosen (`Kernel::Avx512`) only where `cpu::avx512_decode` says so: the gather instruction
//! is what makes it fast, and it is fast on Intel cores, not on the AMD cores measured
//! (benches/NOTES.md 36).

use super::avx2::Side;
use super::{Decoder, MAX_LANES};
use std::arch::x86_64::*;

/// An output symbol type of the AVX-512 kernels.
pub(super) trait Out: Copy {
    /// Stores step `s` (32 symbols, lanes 0..16 in `v[0]`, 16..32 in `v[1]`, each in the bits
    /// `sym_mask` of a 32-bit lane) to `out[32 * s..32 * s + 32]`.
    ///
    /// # Safety
    /// AVX-512 F must be available and `32 * s + 32 <= out.len()`.
    unsafe fn store(out: &mut [Self], s: usize, v: [__m512i; 2], sym_mask: __m512i);
}

impl Out for u8 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(out: &mut [u8], s: usize, v: [__m512i; 2], _: __m512i) {
        // A u8 output's symbols are below 2^8, so truncation keeps exactly the symbol (the
        // packed entry's low byte; the u16 symbol table's value).
        let p = out.as_mut_ptr().add(32 * s);
        // SAFETY: the caller guarantees that the 32 bytes at 32 * s are inside `out`.
        _mm_storeu_si128(p.cast(), _mm512_cvtepi32_epi8(v[0]));
        _mm_storeu_si128(p.add(16).cast(), _mm512_cvtepi32_epi8(v[1]));
    }
}

impl Out for u16 {
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(out: &mut [u16], s: usize, v: [__m512i; 2], w: __m512i) {
        let p = out.as_mut_ptr().add(32 * s);
        // SAFETY: the caller guarantees that the 32 symbols at 32 * s are inside `out`.
        _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(_mm512_and_si512(v[0], w)));
        _mm256_storeu_si256(
            p.add(16).cast(),
            _mm512_cvtepi32_epi16(_mm512_and_si512(v[1], w)),
        );
    }
}

/// One decode step of sixteen lanes `xv`, renormalized from the words at `*pos`; returns the
/// symbols (in the low bits of each 32-bit lane).
///
/// # Safety
/// AVX-512 F, BW, VL and VBMI2 and POPCNT must be available; `table` must hold `2^p` entries,
/// `syms` (unless `PACKED`) `2^p + 1` u16s, `mask` must be `2^p - 1` in every lane, and 16
/// words (32 bytes) must be readable at `wp + 2 * *pos`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")]
unsafe fn lanes16<const PACKED: bool>(
    xv: &mut __m512i,
    table: *const i32,
    syms: *const i32,
    mask: __m512i,
    shift: __m128i,
    wp: *const u8,
    pos: &mut usize,
) -> __m512i {
    let slot = _mm512_and_si512(*xv, mask);
    // SAFETY: every slot is below 2^p (masked), so every 4-byte read is inside `table`
    // (2^p u32s) and `syms` (2^p + 1 u16s, read at byte offset 2 * slot).
    let e = _mm512_i32gather_epi32::<4>(slot, table);
    let (freq, bias, sym) = if PACKED {
        let bias = _mm512_and_si512(_mm512_srli_epi32::<8>(e), _mm512_set1_epi32(0xfff));
        (_mm512_srli_epi32::<20>(e), bias, e)
    } else {
        let bias = _mm512_and_si512(e, _mm512_set1_epi32(0xffff));
        let sym = _mm512_i32gather_epi32::<2>(slot, syms);
        (_mm512_srli_epi32::<16>(e), bias, sym)
    };
    let x = _mm512_add_epi32(_mm512_mullo_epi32(freq, _mm512_srl_epi32(*xv, shift)), bias);
    let need = _mm512_cmplt_epu32_mask(x, _mm512_set1_epi32(1 << 16));
    // SAFETY: the caller guarantees 16 readable words at wp + 2 * pos; the load reads as many
    // as `need` has lanes.
    let w = _mm256_maskz_expandloadu_epi16(need, wp.add(2 * *pos).cast());
    let w = _mm512_cvtepu16_epi32(w);
    *xv = _mm512_mask_or_epi32(x, need, _mm512_slli_epi32::<16>(x), w);
    *pos += need.count_ones() as usize;
    sym
}

/// `Decoder::decode_fast` with AVX-512: the 32 states in two vectors.
///
/// # Safety
/// AVX-512 F, BW, VL and VBMI2 and POPCNT must be available.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")]
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
    let mask = _mm512_set1_epi32(((1u32 << p) - 1) as i32);
    let shift = _mm_cvtsi32_si128(p as i32);
    let sym_mask = _mm512_set1_epi32(if PACKED { 0xff } else { 0xffff });
    let n_words = words.len() / 2;
    // Keeps `n_words - ps` below from wrapping.
    assert!(*pos <= n_words);
    let wp = words.as_ptr();
    let steps = out.len() / MAX_LANES;
    let xp = x.as_mut_ptr();
    // SAFETY: `x` is 32 u32s: two unaligned 64-byte vectors.
    let mut x0 = _mm512_loadu_epi32(xp.cast());
    let mut x1 = _mm512_loadu_epi32(xp.add(16).cast());
    let mut ps = *pos;
    let mut s = 0;
    // SAFETY (reads of words): a step starts with at least 32 words left at `ps`, and its
    // second vector reads at most 16 words past the at most 16 the first took.
    while s < steps && n_words - ps >= MAX_LANES {
        let s0 = lanes16::<PACKED>(&mut x0, table, syms, mask, shift, wp, &mut ps);
        let s1 = lanes16::<PACKED>(&mut x1, table, syms, mask, shift, wp, &mut ps);
        // SAFETY: s < steps = out.len() / 32.
        O::store(out, s, [s0, s1], sym_mask);
        s += 1;
    }
    _mm512_storeu_epi32(xp.cast(), x0);
    _mm512_storeu_epi32(xp.add(16).cast(), x1);
    *pos = ps;
    s * MAX_LANES
}

/// `decode` of two chunks at once, their steps interleaved (four vectors of independent
/// states), while both have steps and 32 words left; returns the symbols decoded in each.
///
/// # Safety
/// AVX-512 F, BW, VL and VBMI2 and POPCNT must be available.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi2,popcnt")]
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
    let mask = _mm512_set1_epi32(((1u32 << p) - 1) as i32);
    let shift = _mm_cvtsi32_si128(p as i32);
    let sym_mask = _mm512_set1_epi32(if PACKED { 0xff } else { 0xffff });
    let (na, nb) = (wa.len() / 2, wb.len() / 2);
    assert!(*pa <= na && *pb <= nb);
    let (wpa, wpb) = (wa.as_ptr(), wb.as_ptr());
    let steps = (oa.len() / MAX_LANES).min(ob.len() / MAX_LANES);
    let (xpa, xpb) = (xa.as_mut_ptr(), xb.as_mut_ptr());
    // SAFETY: each of `xa`, `xb` is 32 u32s: two unaligned 64-byte vectors.
    let mut a0 = _mm512_loadu_epi32(xpa.cast());
    let mut a1 = _mm512_loadu_epi32(xpa.add(16).cast());
    let mut b0 = _mm512_loadu_epi32(xpb.cast());
    let mut b1 = _mm512_loadu_epi32(xpb.add(16).cast());
    let (mut qa, mut qb) = (*pa, *pb);
    let mut s = 0;
    // SAFETY (reads of words): as in `decode`, for each chunk separately.
    while s < steps && na - qa >= MAX_LANES && nb - qb >= MAX_LANES {
        let sa0 = lanes16::<PACKED>(&mut a0, table, syms, mask, shift, wpa, &mut qa);
        let sb0 = lanes16::<PACKED>(&mut b0, table, syms, mask, shift, wpb, &mut qb);
        let sa1 = lanes16::<PACKED>(&mut a1, table, syms, mask, shift, wpa, &mut qa);
        let sb1 = lanes16::<PACKED>(&mut b1, table, syms, mask, shift, wpb, &mut qb);
        // SAFETY: s < steps, within both outputs.
        O::store(oa, s, [sa0, sa1], sym_mask);
        O::store(ob, s, [sb0, sb1], sym_mask);
        s += 1;
    }
    _mm512_storeu_epi32(xpa.cast(), a0);
    _mm512_storeu_epi32(xpa.add(16).cast(), a1);
    _mm512_storeu_epi32(xpb.cast(), b0);
    _mm512_storeu_epi32(xpb.add(16).cast(), b1);
    *pa = qa;
    *pb = qb;
    (s * MAX_LANES, s * MAX_LANES)
}
