//! The NEON decoder of `entropy::rans` (aarch64, where NEON is always present): the full 32-lane
//! steps, eight vectors of four states.
//!
//! NEON has no gather, so the table entries of a vector are four scalar loads put into its lanes
//! (as the AVX2 kernel does too: scalar loads beat `vpgatherdd` on the cores measured there).
//! What the vectors buy is the rest of the step: the multiply-add of four states at once, and
//! the renormalization without the portable loop's serial hand-out of words lane by lane. Each
//! vector's lanes that need a word form a 4-bit mask; the masks of all eight vectors come first,
//! so the only chain between them is a running sum of their word counts (eight scalar adds), and
//! one `tbl` per vector moves the next words into the lanes that take them. The same states,
//! words and symbols as the portable loop (`entropy::rans`'s tests compare them on every table and
//! random data; they run on aarch64 under qemu in `.ci/run`). Unmeasured on hardware: see
//! benches/NOTES.md.

use super::{Decoder, MAX_LANES};
use std::arch::aarch64::*;

/// For each 4-lane mask of the lanes that read a word: the `tbl` indices that put the next words
/// into those lanes, in lane order (lane `l` of rank `r` takes bytes `2r, 2r + 1` of the words
/// into its low half); index 0xff (a zero byte) everywhere else.
static TAKE: [[u8; 16]; 16] = {
    let mut t = [[0xffu8; 16]; 16];
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

/// The number of lanes in each 4-lane mask.
static COUNT: [u8; 16] = [0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4];

/// An output symbol type of the kernel.
pub(super) trait Out: Copy {
    /// Stores the 32 symbols of a step (lanes `4k..4k + 4` in `v[k]`, each the low bits of a
    /// 32-bit lane: `sym_mask` of them) at `p`, truncated to `Self` as the portable loop's
    /// `from_index` does.
    ///
    /// # Safety
    /// 32 elements writable at `p`.
    unsafe fn store(p: *mut Self, v: &[uint32x4_t; 8], sym_mask: uint32x4_t);
}

impl Out for u8 {
    #[inline(always)]
    unsafe fn store(p: *mut u8, v: &[uint32x4_t; 8], _: uint32x4_t) {
        // Narrowing moves keep the low half of each lane: the low byte in the end.
        let h = |a: uint32x4_t, b: uint32x4_t| vcombine_u16(vmovn_u32(a), vmovn_u32(b));
        let lo = vcombine_u8(vmovn_u16(h(v[0], v[1])), vmovn_u16(h(v[2], v[3])));
        let hi = vcombine_u8(vmovn_u16(h(v[4], v[5])), vmovn_u16(h(v[6], v[7])));
        // SAFETY: 32 bytes writable at p (caller).
        vst1q_u8(p, lo);
        vst1q_u8(p.add(16), hi);
    }
}

impl Out for u16 {
    #[inline(always)]
    unsafe fn store(p: *mut u16, v: &[uint32x4_t; 8], sym_mask: uint32x4_t) {
        for k in 0..4 {
            let a = vmovn_u32(vandq_u32(v[2 * k], sym_mask));
            let b = vmovn_u32(vandq_u32(v[2 * k + 1], sym_mask));
            // SAFETY: 32 u16s writable at p (caller).
            vst1q_u16(p.add(8 * k), vcombine_u16(a, b));
        }
    }
}

/// The 32-bit entries `table[idx[k]]` of the four lanes.
///
/// # Safety
/// `table + idx[k]` readable for every lane.
#[inline(always)]
unsafe fn gather(table: *const u32, idx: uint32x4_t) -> uint32x4_t {
    let t = |k: u32| *table.add(k as usize);
    let v = vdupq_n_u32(t(vgetq_lane_u32::<0>(idx)));
    let v = vsetq_lane_u32::<1>(t(vgetq_lane_u32::<1>(idx)), v);
    let v = vsetq_lane_u32::<2>(t(vgetq_lane_u32::<2>(idx)), v);
    vsetq_lane_u32::<3>(t(vgetq_lane_u32::<3>(idx)), v)
}

/// `gather` of u16 entries, zero-extended.
///
/// # Safety
/// `table + idx[k]` readable for every lane.
#[inline(always)]
unsafe fn gather_u16(table: *const u16, idx: uint32x4_t) -> uint32x4_t {
    let t = |k: u32| u32::from(*table.add(k as usize));
    let v = vdupq_n_u32(t(vgetq_lane_u32::<0>(idx)));
    let v = vsetq_lane_u32::<1>(t(vgetq_lane_u32::<1>(idx)), v);
    let v = vsetq_lane_u32::<2>(t(vgetq_lane_u32::<2>(idx)), v);
    vsetq_lane_u32::<3>(t(vgetq_lane_u32::<3>(idx)), v)
}

/// What every step of a decoder reads: its tables and constants.
struct Tables {
    /// `fb` or (`PACKED`) `packed`: 2^p entries.
    table: *const u32,
    /// 2^p + 1 symbols (unless `PACKED`).
    syms: *const u16,
    /// 2^p - 1 in every lane.
    mask: uint32x4_t,
    /// -p in every lane: `vshlq_u32` by it shifts right by p.
    shift: int32x4_t,
    sym_mask: uint32x4_t,
}

impl Tables {
    /// # Safety
    /// `PACKED` only where `d.packed` was built.
    unsafe fn of<const PACKED: bool>(d: &Decoder) -> Tables {
        let p = d.precision_bits;
        // The tables hold exactly 2^p (+1) entries (`Decoder::new`): every masked slot is inside.
        let table = if PACKED { &d.packed } else { &d.fb };
        assert!(p <= 16 && table.len() == 1 << p && d.syms.len() > 1 << p);
        Tables {
            table: table.as_ptr(),
            syms: d.syms.as_ptr(),
            mask: vdupq_n_u32((1u32 << p) - 1),
            shift: vdupq_n_s32(-(p as i32)),
            sym_mask: vdupq_n_u32(if PACKED { 0xff } else { 0xffff }),
        }
    }
}

/// One full step of the 32 lanes `x` (lanes `4k..4k + 4` in `x[k]`), renormalized from the
/// words at `*pos`; stores the symbols at `out`.
///
/// # Safety
/// `t` from `Tables::of::<PACKED>`; at least 32 words (64 bytes) readable at `wp + 2 * *pos`;
/// 32 symbols writable at `out`.
#[inline(always)]
unsafe fn step<O: Out, const PACKED: bool>(
    t: &Tables,
    x: &mut [uint32x4_t; 8],
    wp: *const u8,
    pos: &mut usize,
    out: *mut O,
) {
    let zero = vdupq_n_u32(0);
    let mut sym = [zero; 8];
    let mut need = [zero; 8];
    for k in 0..8 {
        let slot = vandq_u32(x[k], t.mask);
        // SAFETY: every slot is below 2^p (masked): inside both tables.
        let e = gather(t.table, slot);
        let (freq, bias, s) = if PACKED {
            let bias = vandq_u32(vshrq_n_u32::<8>(e), vdupq_n_u32(0xfff));
            (vshrq_n_u32::<20>(e), bias, e)
        } else {
            let bias = vandq_u32(e, vdupq_n_u32(0xffff));
            (vshrq_n_u32::<16>(e), bias, gather_u16(t.syms, slot))
        };
        // Wrapping u32 arithmetic, as the portable step.
        let xn = vaddq_u32(vmulq_u32(freq, vshlq_u32(x[k], t.shift)), bias);
        x[k] = xn;
        sym[k] = s;
        // All ones in the lanes that need a word (x < 2^16).
        need[k] = vceqq_u32(vshrq_n_u32::<16>(xn), zero);
    }
    let bits = vcombine_u32(vcreate_u32(1 | 2 << 32), vcreate_u32(4 | 8 << 32));
    let mut at = *pos;
    for k in 0..8 {
        let m = vaddvq_u32(vandq_u32(need[k], bits)) as usize;
        // SAFETY: vector k starts at most 4k words past the step's first word, of which 32 are
        // readable: its 4 words (8 bytes) are inside.
        let w = vcombine_u8(vld1_u8(wp.add(2 * at)), vdup_n_u8(0));
        let w = vreinterpretq_u32_u8(vqtbl1q_u8(w, vld1q_u8(TAKE[m].as_ptr())));
        x[k] = vbslq_u32(need[k], vorrq_u32(vshlq_n_u32::<16>(x[k]), w), x[k]);
        at += usize::from(COUNT[m]);
    }
    *pos = at;
    O::store(out, &sym, t.sym_mask);
}

/// # Safety
/// `x` holds 32 u32s.
#[inline(always)]
unsafe fn load(x: &[u32; MAX_LANES]) -> [uint32x4_t; 8] {
    std::array::from_fn(|k| vld1q_u32(x.as_ptr().add(4 * k)))
}

/// # Safety
/// `x` holds 32 u32s.
#[inline(always)]
unsafe fn store(x: &mut [u32; MAX_LANES], v: &[uint32x4_t; 8]) {
    for (k, &v) in v.iter().enumerate() {
        vst1q_u32(x.as_mut_ptr().add(4 * k), v);
    }
}

/// `Decoder::decode_fast` with NEON: full 32-lane steps from the start of `out` while at least
/// 32 words remain; returns the symbols decoded.
///
/// # Safety
/// `PACKED` only where `d.packed` was built.
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

/// `decode` of two chunks at once, a step of each in turn (sixteen vectors of independent
/// states to fill the latency of the table loads), while both have steps and 32 words left;
/// returns the symbols decoded in each.
///
/// # Safety
/// `PACKED` only where `d.packed` was built.
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
