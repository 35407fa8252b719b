//! The 128-bit decoder of `entropy::rans` (x86-64 with SSE4.1 and POPCNT): the full 32-lane
//! steps as eight vectors of four states, the NEON kernel's layout (`rans/neon.rs`) in SSE.
//!
//! Why beside the AVX2 kernel: a CPU that runs each 256-bit operation as two 128-bit halves
//! (AMD's Zen 1, where the AVX2 kernel decodes at a third of its Zen 3 speed: benches/NOTES.md
//! 78) pays for the 256-bit kernel's lane-crossing steps (`vpermd`, `vinserti128`) without
//! getting the width, and a CPU without AVX2 (older or smaller x86-64 cores) has no vector
//! decoder otherwise. Four lanes a vector need no lane crossing: a vector's lanes that take a
//! word form a 4-bit mask, one `pshufb` from a 16-entry table moves the next words into them, and
//! the table entries are four scalar loads put into a vector. The same states, words and
//! symbols as the portable loop (`entropy::rans`'s tests compare them on every table and random
//! data on any x86-64 machine with SSE4.1).

use super::{Decoder, MAX_LANES};
use std::arch::x86_64::*;

/// For each 4-lane mask of the lanes that read a word: the `pshufb` control that puts the next
/// words into those lanes, in lane order (lane `l` of rank `r` takes bytes `2r, 2r + 1` of the
/// words into its low half); 0x80 (a zero byte) everywhere else.
static TAKE: [[u8; 16]; 16] = {
    let mut t = [[0x80u8; 16]; 16];
    let mut m = 0;
    while m < 16 {
        let mut r = 0u8;
        let mut l = 0;
        while l < 4 {
            if m >> l & 1 == 1 {
                t[m][4 * l] = 2 * r;
                t[m][4 * l + 1] = 2 * r + 1;
                r += 1;
            }
            l += 1;
        }
        m += 1;
    }
    t
};

/// An output symbol type of the kernel.
pub(super) trait Out: Copy {
    /// Stores 16 symbols (lanes `4k..4k + 4` in `v[k]`, each the low bits of a 32-bit lane:
    /// `sym_mask` of them) at `p`, truncated to `Self` as the portable loop's `from_index` does.
    ///
    /// # Safety
    /// SSE4.1 must be available; 16 elements writable at `p`.
    unsafe fn store(p: *mut Self, v: [__m128i; 4], sym_mask: __m128i);
}

impl Out for u8 {
    #[inline]
    #[target_feature(enable = "sse4.1")]
    unsafe fn store(p: *mut u8, v: [__m128i; 4], _: __m128i) {
        // Unsigned saturation keeps a value of at most 0xff as it is: the low byte in the end.
        let b = _mm_set1_epi32(0xff);
        let a01 = _mm_packus_epi32(_mm_and_si128(v[0], b), _mm_and_si128(v[1], b));
        let a23 = _mm_packus_epi32(_mm_and_si128(v[2], b), _mm_and_si128(v[3], b));
        // SAFETY: 16 bytes writable at p (caller).
        _mm_storeu_si128(p.cast(), _mm_packus_epi16(a01, a23));
    }
}

impl Out for u16 {
    #[inline]
    #[target_feature(enable = "sse4.1")]
    unsafe fn store(p: *mut u16, v: [__m128i; 4], w: __m128i) {
        let a01 = _mm_packus_epi32(_mm_and_si128(v[0], w), _mm_and_si128(v[1], w));
        let a23 = _mm_packus_epi32(_mm_and_si128(v[2], w), _mm_and_si128(v[3], w));
        // SAFETY: 16 u16s writable at p (caller).
        _mm_storeu_si128(p.cast(), a01);
        _mm_storeu_si128(p.add(8).cast(), a23);
    }
}

/// `t` of each lane's index (read as unsigned), by four scalar loads put together in a vector.
///
/// # Safety
/// SSE4.1; `t` must be safe to call with every lane's index.
#[inline(always)]
unsafe fn loads(idx: __m128i, t: impl Fn(usize) -> i32) -> __m128i {
    let (i01, i23) = (
        _mm_cvtsi128_si64(idx) as u64,
        _mm_extract_epi64::<1>(idx) as u64,
    );
    let u = |i: u64| t(i as u32 as usize);
    _mm_setr_epi32(u(i01), u(i01 >> 32), u(i23), u(i23 >> 32))
}

/// What every step of a decoder reads: its tables and constants.
struct Tables {
    /// `fb` or (`PACKED`) `packed`: 2^p entries.
    table: *const i32,
    /// 2^p + 1 symbols (unless `PACKED`).
    syms: *const u16,
    /// 2^p - 1 in every lane.
    mask: __m128i,
    /// p, the shift count of `_mm_srl_epi32`.
    shift: __m128i,
    sym_mask: __m128i,
}

impl Tables {
    /// # Safety
    /// SSE4.1; `PACKED` only where `d.packed` was built.
    #[inline]
    #[target_feature(enable = "sse4.1")]
    unsafe fn of<const PACKED: bool>(d: &Decoder) -> Tables {
        let p = d.precision_bits;
        // The tables hold exactly 2^p (+1) entries (`Decoder::new`): every masked slot is inside.
        let table = if PACKED { &d.packed } else { &d.fb };
        assert!(p <= 16 && table.len() == 1 << p && d.syms.len() > 1 << p);
        Tables {
            table: table.as_ptr().cast(),
            syms: d.syms.as_ptr(),
            mask: _mm_set1_epi32(((1u32 << p) - 1) as i32),
            shift: _mm_cvtsi32_si128(p as i32),
            sym_mask: _mm_set1_epi32(if PACKED { 0xff } else { 0xffff }),
        }
    }
}

/// One decode step of the four lanes `xv`, renormalized from the words at `*pos`; returns the
/// symbols (in the low bits of each 32-bit lane).
///
/// # Safety
/// SSE4.1 and POPCNT; `t` from `Tables::of::<PACKED>`; 4 words (8 bytes) readable at
/// `wp + 2 * *pos`.
#[inline(always)]
unsafe fn lanes4<const PACKED: bool>(
    xv: &mut __m128i,
    t: &Tables,
    wp: *const u8,
    pos: &mut usize,
) -> __m128i {
    let slot = _mm_and_si128(*xv, t.mask);
    // SAFETY: every slot is below 2^p (masked), so inside `table` (2^p entries) and `syms`.
    let (table, syms) = (t.table, t.syms);
    let e = loads(slot, |i| *table.add(i));
    let (freq, bias, sym) = if PACKED {
        let bias = _mm_and_si128(_mm_srli_epi32::<8>(e), _mm_set1_epi32(0xfff));
        (_mm_srli_epi32::<20>(e), bias, e)
    } else {
        let bias = _mm_and_si128(e, _mm_set1_epi32(0xffff));
        let sym = loads(slot, |i| i32::from(*syms.add(i)));
        (_mm_srli_epi32::<16>(e), bias, sym)
    };
    // Wrapping u32 arithmetic, as the portable step.
    let x = _mm_add_epi32(_mm_mullo_epi32(freq, _mm_srl_epi32(*xv, t.shift)), bias);
    let need = _mm_cmpeq_epi32(_mm_srli_epi32::<16>(x), _mm_setzero_si128());
    let m = _mm_movemask_ps(_mm_castsi128_ps(need)) as usize & 0xf;
    // SAFETY: the caller guarantees 8 readable bytes at wp + 2 * pos; `m < 16`.
    let w = _mm_loadl_epi64(wp.add(2 * *pos).cast());
    let w = _mm_shuffle_epi8(w, _mm_loadu_si128(TAKE.get_unchecked(m).as_ptr().cast()));
    *xv = _mm_blendv_epi8(x, _mm_or_si128(_mm_slli_epi32::<16>(x), w), need);
    *pos += (m as u32).count_ones() as usize;
    sym
}

/// One full step of the 32 lanes `x` (lanes `4k..4k + 4` in `x[k]`), renormalized from the
/// words at `*pos`; stores the symbols at `out`.
///
/// # Safety
/// SSE4.1 and POPCNT; `t` from `Tables::of::<PACKED>`; at least 32 words (64 bytes) readable
/// at `wp + 2 * *pos`; 32 symbols writable at `out`.
#[inline(always)]
unsafe fn step<O: Out, const PACKED: bool>(
    t: &Tables,
    x: &mut [__m128i; 8],
    wp: *const u8,
    pos: &mut usize,
    out: *mut O,
) {
    // SAFETY (reads of words): vector k reads 4 words at most 4k words past the step's first,
    // of which 32 are readable.
    for half in 0..2 {
        let v: [__m128i; 4] =
            std::array::from_fn(|k| lanes4::<PACKED>(&mut x[4 * half + k], t, wp, pos));
        // SAFETY: 32 symbols writable at out (caller).
        O::store(out.add(16 * half), v, t.sym_mask);
    }
}

/// # Safety
/// SSE2; `x` holds 32 u32s.
#[inline]
#[target_feature(enable = "sse4.1")]
unsafe fn load(x: &[u32; MAX_LANES]) -> [__m128i; 8] {
    std::array::from_fn(|k| _mm_loadu_si128(x.as_ptr().add(4 * k).cast()))
}

/// # Safety
/// SSE2; `x` holds 32 u32s.
#[inline]
#[target_feature(enable = "sse4.1")]
unsafe fn store(x: &mut [u32; MAX_LANES], v: &[__m128i; 8]) {
    for (k, &v) in v.iter().enumerate() {
        _mm_storeu_si128(x.as_mut_ptr().add(4 * k).cast(), v);
    }
}

/// `Decoder::decode_fast` with SSE4.1: full 32-lane steps from the start of `out` while at least
/// 32 words remain; returns the symbols decoded.
///
/// # Safety
/// SSE4.1 and POPCNT must be available; `PACKED` only where `d.packed` was built.
#[target_feature(enable = "sse4.1,popcnt")]
pub(super) unsafe fn decode<O: Out, const PACKED: bool>(
    d: &Decoder,
    x: &mut [u32; MAX_LANES],
    words: &[u8],
    pos: &mut usize,
    out: &mut [O],
) -> usize {
    let t = Tables::of::<PACKED>(d);
    let n_words = words.len() / 2;
    // Keeps `n_words - ps` below from wrapping.
    assert!(*pos <= n_words);
    let steps = out.len() / MAX_LANES;
    let mut xv = load(x);
    let mut ps = *pos;
    let mut s = 0;
    while s < steps && n_words - ps >= MAX_LANES {
        // SAFETY: 32 words left at ps; s < steps, so 32 symbols fit at 32 * s.
        step::<O, PACKED>(
            &t,
            &mut xv,
            words.as_ptr(),
            &mut ps,
            out.as_mut_ptr().add(32 * s),
        );
        s += 1;
    }
    store(x, &xv);
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

/// `decode` of two chunks at once, a step of each in turn (independent states to fill the
/// latency of the table loads), while both have steps and 32 words left; returns the symbols
/// decoded in each.
///
/// # Safety
/// SSE4.1 and POPCNT must be available; `PACKED` only where `d.packed` was built.
#[target_feature(enable = "sse4.1,popcnt")]
pub(super) unsafe fn decode_pair<O: Out, const PACKED: bool>(
    d: &Decoder,
    (xa, wa, pa, oa): Side<'_, O>,
    (xb, wb, pb, ob): Side<'_, O>,
) -> (usize, usize) {
    let t = Tables::of::<PACKED>(d);
    let (na, nb) = (wa.len() / 2, wb.len() / 2);
    assert!(*pa <= na && *pb <= nb);
    let steps = (oa.len() / MAX_LANES).min(ob.len() / MAX_LANES);
    let (mut va, mut vb) = (load(xa), load(xb));
    let (mut qa, mut qb) = (*pa, *pb);
    let mut s = 0;
    while s < steps && na - qa >= MAX_LANES && nb - qb >= MAX_LANES {
        // SAFETY: as in `decode`, for each chunk.
        step::<O, PACKED>(
            &t,
            &mut va,
            wa.as_ptr(),
            &mut qa,
            oa.as_mut_ptr().add(32 * s),
        );
        step::<O, PACKED>(
            &t,
            &mut vb,
            wb.as_ptr(),
            &mut qb,
            ob.as_mut_ptr().add(32 * s),
        );
        s += 1;
    }
    store(xa, &va);
    store(xb, &vb);
    *pa = qa;
    *pb = qb;
    (s * MAX_LANES, s * MAX_LANES)
}
