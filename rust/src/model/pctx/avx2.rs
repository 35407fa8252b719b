//! The vector raster decoder of the parallel context coder (FORMAT.md 9.4): 8 lanes a
//! vector, every lane of the chunk active. It gives exactly the portable decoder's codes.

use super::{RasterLane, Tables, Walk};
use crate::entropy::rans::avx2::loads;
use std::arch::x86_64::*;

/// Per 8-lane mask of the lanes that take a word: each lane's rank among them, one byte a
/// lane (which of the next eight words it takes).
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

/// The state of 8 lanes, one array per field (RasterLane transposed).
#[derive(Clone, Copy, Default)]
struct Group {
    x: [u32; 8],
    i: [u32; 8],
    cx: [u32; 8],
    cy: [u32; 8],
    cg: [u32; 8],
    rg: [u32; 8],
    cf: [u32; 8],
    rf: [u32; 8],
    prev: [u32; 8],
    left: [u32; 8],
    above: [u32; 8],
    eabove: [u32; 8],
    /// The fill of the lane's quantization channel and its group's context offset.
    f: [u32; 8],
    gctx: [u32; 8],
}

#[inline(always)]
unsafe fn ld(a: &[u32; 8]) -> __m256i {
    _mm256_loadu_si256(a.as_ptr().cast())
}

#[inline(always)]
unsafe fn st(a: &mut [u32; 8], v: __m256i) {
    _mm256_storeu_si256(a.as_mut_ptr().cast(), v)
}

/// Bytes at `base + idx`: with `G`, by the gather instruction (each lane reads 4 bytes: 3
/// bytes of padding must follow), else by eight scalar loads (`loads`, shared with the static
/// coder's AVX2 kernel; on this project's Zen 3 they decode the fitted stem 13 % faster than
/// the instruction, on Intel the instruction was the faster: `cpu::fast_gather`,
/// benches/NOTES.md 57).
#[inline(always)]
unsafe fn bytes<const G: bool>(base: *const u8, idx: __m256i) -> __m256i {
    if G {
        _mm256_and_si256(
            _mm256_i32gather_epi32::<1>(base.cast(), idx),
            _mm256_set1_epi32(0xff),
        )
    } else {
        loads(idx, |i| i32::from(*base.add(i)))
    }
}

/// The u32 entries at `base + idx`, by the gather instruction with `G`, else by scalar loads.
#[inline(always)]
unsafe fn words32<const G: bool>(base: *const u32, idx: __m256i) -> __m256i {
    if G {
        _mm256_i32gather_epi32::<4>(base.cast(), idx)
    } else {
        loads(idx, |i| *base.add(i) as i32)
    }
}

/// Steps staged before their codes are written out lane by lane.
pub(super) const STAGE: usize = 16;

/// Writes out the `STAGE` staged steps of `lanes` lanes (`stage[j][l]`: lane `l`'s code at the
/// `j`-th staged step) to `out[at[l]..at[l] + STAGE]`: a byte transpose of two 16 x 16 blocks
/// at once (lanes 0-15 in the low halves, 16-31 in the high), four rounds of unpacks instead
/// of a store an element. A round interleaves register `j` with `j + 8`, which rotates the
/// bits of (register, position) by one; after four the register is the lane and the position
/// the step with its four bits reversed, so the rows are loaded in that order.
#[inline(always)]
pub(super) unsafe fn write_stage(
    stage: &[[u8; 32]; STAGE],
    at: &[usize; 32],
    lanes: usize,
    out: *mut u8,
) {
    const REV: [usize; 16] = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
    let mut r = [_mm256_setzero_si256(); 16];
    for (j, v) in r.iter_mut().enumerate() {
        *v = _mm256_loadu_si256(stage[REV[j]].as_ptr().cast());
    }
    macro_rules! round {
        ($lo:ident, $hi:ident) => {{
            let mut t = [_mm256_setzero_si256(); 16];
            for j in 0..8 {
                t[2 * j] = $lo(r[j], r[j + 8]);
                t[2 * j + 1] = $hi(r[j], r[j + 8]);
            }
            r = t;
        }};
    }
    round!(_mm256_unpacklo_epi8, _mm256_unpackhi_epi8);
    round!(_mm256_unpacklo_epi16, _mm256_unpackhi_epi16);
    round!(_mm256_unpacklo_epi32, _mm256_unpackhi_epi32);
    round!(_mm256_unpacklo_epi64, _mm256_unpackhi_epi64);
    for (l, v) in r.iter().enumerate() {
        if l < lanes {
            _mm_storeu_si128(out.add(at[l]).cast(), _mm256_castsi256_si128(*v));
        }
        if l + 16 < lanes {
            _mm_storeu_si128(
                out.add(at[l + 16]).cast(),
                _mm256_extracti128_si256::<1>(*v),
            );
        }
    }
}

/// Advances counters (c, r) with period `period` and length `len` by `k` elements, at most
/// as many as bring the first lane to its period; and whether any lane's `c` moved.
#[inline(always)]
unsafe fn tick(c: &mut [u32; 8], r: &mut [u32; 8], period: usize, len: usize, k: usize) -> bool {
    let rk = _mm256_add_epi32(ld(r), _mm256_set1_epi32(k as i32));
    let wrap = _mm256_cmpeq_epi32(rk, _mm256_set1_epi32(period as i32));
    st(r, _mm256_andnot_si256(wrap, rk));
    let c1 = _mm256_sub_epi32(ld(c), wrap);
    st(
        c,
        _mm256_andnot_si256(_mm256_cmpeq_epi32(c1, _mm256_set1_epi32(len as i32)), c1),
    );
    _mm256_testz_si256(wrap, wrap) == 0
}

/// Steps `s_begin..s_end` of a chunk whose `lanes` (a multiple of 8) lanes all have an
/// element at each of those steps: the scalar raster decoder's arithmetic, 8 lanes at a time,
/// for predictor `P` (0 none, 1 med, 2 med-residual, which also writes each element's folded
/// residual into `e`). A lane's upper neighbours are its own codes `dx` and `dx - 1` steps
/// before, so the last `dx + 1` steps' codes are kept step by step in the ring `rows` (step
/// `s`'s codes of the lanes at row `s mod (dx + 1)`, `lanes` bytes a row; the folded residuals
/// likewise in `erows` when `P` is 2), and the neighbours are plain loads of a row, not
/// gathers; with a predictor the codes (and folded residuals) go out to `q` (and `e`) `STAGE`
/// steps at a time by `write_stage`. The group and fill of a lane change only at their
/// counters' wraps, so their lookups are redone only then. The tables are read by the gather instruction with `G`, else
/// by scalar loads (`loads`), except the slot table's fallback lanes, whose masked gather
/// reads only the lanes that need it (loads of every lane measured 10 % slower on the stem).
/// Returns the word position.
///
/// # Safety
/// AVX2 and POPCNT must be available; `tb.slots` must be built; `q` must hold every element
/// index of the sample (plus 3 bytes when `P` is 0: the code above is gathered), and so must
/// `e` when `P` is 2 unless it is empty (no folded residual is then written); `rows` must
/// hold `(w.dx + 1) · lanes` bytes, and so must `erows` when `P` is 2; `words` must hold
/// `n_words` words plus 8; `fill` one entry per quantization channel; every index below 2^31;
/// `w.dx` at least 2; `s_begin` 0 (the ring starts empty).
#[target_feature(enable = "avx2,popcnt")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn steps<const P: u8, const G: bool>(
    tb: &Tables,
    w: &Walk,
    lanes: usize,
    s_begin: usize,
    s_end: usize,
    ln: &mut [RasterLane; 32],
    words: &[u16],
    n_words: usize,
    mut pos: usize,
    fill: &[u32],
    q: &mut [u8],
    e: &mut [u8],
    rows: &mut [u8],
    erows: &mut [u8],
) -> usize {
    let groups = lanes / 8;
    let mut g = [Group::default(); 4];
    for (k, grp) in g.iter_mut().enumerate().take(groups) {
        for j in 0..8 {
            let r = &ln[8 * k + j];
            grp.x[j] = r.x;
            grp.i[j] = r.i as u32;
            grp.cx[j] = r.cx as u32;
            grp.cy[j] = r.cy as u32;
            grp.cg[j] = r.cg as u32;
            grp.rg[j] = r.rg as u32;
            grp.cf[j] = r.cf as u32;
            grp.rf[j] = r.rf as u32;
            grp.prev[j] = r.prev;
            grp.left[j] = r.left as u32;
            grp.above[j] = r.above as u32;
            grp.eabove[j] = r.eabove;
        }
    }
    let p = tb.precision as i32;
    let shift_p = _mm_cvtsi32_si128(p);
    let shift_bits = _mm_cvtsi32_si128(tb.bits as i32);
    let slot_mask = _mm256_set1_epi32((1 << p) - 1);
    let code_mask = _mm256_set1_epi32((1 << tb.bits) - 1);
    let alphabet = _mm256_set1_epi32(1 << tb.bits);
    let zero = _mm256_setzero_si256();
    let dx = _mm256_set1_epi32(w.dx as i32);
    let dx1 = _mm256_set1_epi32(w.dx as i32 - 1);
    let dy = _mm256_set1_epi32(w.dy as i32);
    let qp = q.as_mut_ptr();
    let ep = e.as_mut_ptr();
    let write_e = !e.is_empty();
    let rp = rows.as_mut_ptr();
    let erp = erows.as_mut_ptr();
    let ring = w.dx + 1;
    // Step s's row in the ring; s - dx and s - dx + 1 are the next two (mod dx + 1).
    let mut row = s_begin % ring;
    let mut codes = [0u32; 8];
    let mut index = [0u32; 8];
    let ctx_g = tb.ctx_g.as_ptr();
    let ctx_a = tb.ctx_a.as_ptr();
    let ctx_b = tb.ctx_b.as_ptr();
    let ctx_c = tb.ctx_c.as_ptr();
    let map = tb.padded_map.as_ptr();
    let slots = tb.slots.as_ptr();
    let coarse = !tb.coarse.is_empty();
    let coarsep = tb.coarse.as_ptr();
    let shift_coarse = _mm_cvtsi32_si128(tb.coarse_bits as i32);
    let shift_run = _mm_cvtsi32_si128(p - tb.coarse_bits as i32);
    let intervals = tb.intervals.as_ptr();
    let fillp = fill.as_ptr();
    for grp in g.iter_mut().take(groups) {
        st(&mut grp.f, words32::<G>(fillp, ld(&grp.cf)));
        st(&mut grp.gctx, words32::<G>(ctx_g, ld(&grp.cg)));
    }
    // Byte 0 of each 32-bit lane, within each 128-bit half.
    let low_bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let pack = |v: __m256i| -> __m128i {
        let b = _mm256_shuffle_epi8(v, low_bytes);
        _mm_unpacklo_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256::<1>(b))
    };
    let load8 = |p: *const u8| -> __m256i { _mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())) };
    // The group and fill counters move by events, as in `avx512::steps`: the `since` steps
    // after the last one are applied at once when the first lane of any vector reaches its
    // period; a counter of one channel is set at the end.
    let (g_live, f_live) = (w.g_channels > 1, w.f_channels > 1);
    let next_event = |g: &[Group; 4]| {
        let steps = g
            .iter()
            .take(groups)
            .map(|grp| w.steps_to_event(&grp.rg, &grp.rf));
        steps.min().unwrap_or(usize::MAX)
    };
    let (mut since, mut event) = (0, next_event(&g));
    // With a predictor the codes (and folded residuals) are staged and written out `STAGE`
    // steps at a time (`write_stage`) instead of a store an element; without one the code
    // above is gathered from `q`, so each is stored at once.
    let mut stage = [[0u8; 32]; STAGE];
    let mut estage = [[0u8; 32]; STAGE];
    let mut held = 0;
    let mut at = [0usize; 32];
    for (a, r) in at.iter_mut().zip(ln.iter()).take(lanes) {
        *a = r.i;
    }
    for s in s_begin..s_end {
        let flag = |c: bool| _mm256_set1_epi32(-(c as i32));
        let step_l = flag(s >= 1);
        let step_u = flag(s >= w.dx);
        let step_ul = flag(s > w.dx);
        // The rows of the lanes' upper and upper-right neighbours (before step dx: rows not
        // yet written, read and never used).
        let next = |r: usize| if r + 1 == ring { 0 } else { r + 1 };
        let (row_s, row_u, row_ur) = (row * lanes, next(row) * lanes, next(next(row)) * lanes);
        row = next(row);
        // The step in phases, each over every vector (contexts, tables, symbols, intervals,
        // then the states): the gathers of one phase depend on nothing of each other's, and
        // so overlap (benches/NOTES.md 46).
        let zeros = [zero; 4];
        let (mut ctxs, mut preds, mut aboves, mut eaboves) = (zeros, zeros, zeros, zeros);
        for (k, grp) in g.iter_mut().take(groups).enumerate() {
            let i = ld(&grp.i);
            let cx = ld(&grp.cx);
            let cy = ld(&grp.cy);
            let has_l = _mm256_and_si256(_mm256_cmpgt_epi32(cx, zero), step_l);
            let has_u = _mm256_and_si256(_mm256_cmpgt_epi32(cy, zero), step_u);
            let has_ul = _mm256_and_si256(_mm256_and_si256(has_l, has_u), step_ul);
            let f = ld(&grp.f);
            // Without a predictor only the code above is read: its gather stays (the ring's
            // load and store measured no faster there, benches/NOTES.md 45).
            let above = if P == 0 {
                bytes::<G>(qp, _mm256_sub_epi32(i, _mm256_and_si256(dx, has_u)))
            } else {
                load8(rp.add(row_u + 8 * k))
            };
            let l = _mm256_blendv_epi8(f, ld(&grp.left), has_l);
            let u = _mm256_blendv_epi8(f, above, has_u);
            let ul = _mm256_blendv_epi8(f, ld(&grp.above), has_ul);
            let gctx = ld(&grp.gctx);
            // Med-residual: the folded residual above (a gather) and those carried from the
            // previous step (left: the lane's previous element; upper left: its residual above).
            let eabove = if P == 2 {
                load8(erp.add(row_u + 8 * k))
            } else {
                zero
            };
            let (ctx, pred) = if P != 0 {
                let has_ur = _mm256_and_si256(has_u, _mm256_cmpgt_epi32(dx1, cx));
                let ur_raw = load8(rp.add(row_ur + 8 * k));
                let ur = _mm256_blendv_epi8(u, ur_raw, has_ur);
                let act = _mm256_add_epi32(
                    _mm256_add_epi32(
                        _mm256_abs_epi32(_mm256_sub_epi32(l, ul)),
                        _mm256_abs_epi32(_mm256_sub_epi32(u, ul)),
                    ),
                    _mm256_abs_epi32(_mm256_sub_epi32(ur, u)),
                );
                let lo = _mm256_min_epi32(l, u);
                let hi = _mm256_max_epi32(l, u);
                let grad = _mm256_sub_epi32(_mm256_add_epi32(l, u), ul);
                // ul >= hi: lo; ul <= lo: hi; else l + u - ul.
                let ge_hi = _mm256_cmpeq_epi32(_mm256_max_epi32(ul, hi), ul);
                let le_lo = _mm256_cmpeq_epi32(_mm256_min_epi32(ul, lo), ul);
                let pred = _mm256_blendv_epi8(_mm256_blendv_epi8(grad, hi, le_lo), lo, ge_hi);
                let prop_c = if P == 2 {
                    _mm256_max_epi32(
                        _mm256_max_epi32(
                            _mm256_and_si256(ld(&grp.prev), has_l),
                            _mm256_and_si256(eabove, has_u),
                        ),
                        _mm256_and_si256(ld(&grp.eabove), has_ul),
                    )
                } else {
                    ld(&grp.prev)
                };
                let ctx = _mm256_add_epi32(
                    _mm256_add_epi32(gctx, words32::<G>(ctx_a, act)),
                    _mm256_add_epi32(words32::<G>(ctx_b, pred), words32::<G>(ctx_c, prop_c)),
                );
                (ctx, pred)
            } else {
                let ctx = _mm256_add_epi32(
                    _mm256_add_epi32(gctx, words32::<G>(ctx_a, l)),
                    _mm256_add_epi32(words32::<G>(ctx_b, u), words32::<G>(ctx_c, ul)),
                );
                (ctx, zero)
            };
            (ctxs[k], preds[k], aboves[k], eaboves[k]) = (ctx, pred, above, eabove);
        }
        let mut tabs = zeros;
        for k in 0..groups {
            tabs[k] = bytes::<G>(map, ctxs[k]);
        }
        // A lane's symbol: from the coarse table where there is one (the symbol of the first
        // slot of the slot's run), then from the slot table for the lanes whose slot lies past
        // that symbol's interval.
        let (mut syms, mut ivs) = (zeros, zeros);
        for (k, grp) in g.iter().take(groups).enumerate() {
            let slot = _mm256_and_si256(ld(&grp.x), slot_mask);
            syms[k] = if coarse {
                let run = _mm256_srl_epi32(slot, shift_run);
                bytes::<G>(
                    coarsep,
                    _mm256_or_si256(_mm256_sll_epi32(tabs[k], shift_coarse), run),
                )
            } else {
                bytes::<G>(
                    slots,
                    _mm256_or_si256(_mm256_sll_epi32(tabs[k], shift_p), slot),
                )
            };
        }
        let interval_at =
            |k: usize, sym: __m256i| _mm256_or_si256(_mm256_sll_epi32(tabs[k], shift_bits), sym);
        for k in 0..groups {
            ivs[k] = words32::<G>(intervals, interval_at(k, syms[k]));
        }
        if coarse {
            for (k, grp) in g.iter().take(groups).enumerate() {
                let slot = _mm256_and_si256(ld(&grp.x), slot_mask);
                let cum = _mm256_and_si256(ivs[k], _mm256_set1_epi32(0xffff));
                let freq = _mm256_srli_epi32::<16>(ivs[k]);
                // slot - cum >= freq, unsigned (max(a, b) == a): past the interval.
                let d = _mm256_sub_epi32(slot, cum);
                let past = _mm256_cmpeq_epi32(_mm256_max_epu32(d, freq), d);
                if _mm256_testz_si256(past, past) == 0 {
                    let at = _mm256_or_si256(_mm256_sll_epi32(tabs[k], shift_p), slot);
                    let sym = _mm256_mask_i32gather_epi32::<1>(syms[k], slots.cast(), at, past);
                    syms[k] = _mm256_and_si256(sym, _mm256_set1_epi32(0xff));
                    ivs[k] = _mm256_mask_i32gather_epi32::<4>(
                        ivs[k],
                        intervals.cast(),
                        interval_at(k, syms[k]),
                        past,
                    );
                }
            }
        }
        for (k, grp) in g.iter_mut().take(groups).enumerate() {
            let (sym, e, pred) = (syms[k], ivs[k], preds[k]);
            let (above, eabove) = (aboves[k], eaboves[k]);
            let x = ld(&grp.x);
            let i = ld(&grp.i);
            let cx = ld(&grp.cx);
            let cy = ld(&grp.cy);
            let slot = _mm256_and_si256(x, slot_mask);
            let cum = _mm256_and_si256(e, _mm256_set1_epi32(0xffff));
            let freq = _mm256_srli_epi32::<16>(e);
            let xn = _mm256_add_epi32(
                _mm256_mullo_epi32(freq, _mm256_srl_epi32(x, shift_p)),
                _mm256_sub_epi32(slot, cum),
            );
            let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(xn), zero);
            let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize & 0xff;
            let at = pos.min(n_words);
            let wv = _mm256_cvtepu16_epi32(_mm_loadu_si128(words.as_ptr().add(at).cast()));
            let ranks = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(EXPAND[m] as i64));
            let wv = _mm256_permutevar8x32_epi32(wv, ranks);
            st(
                &mut grp.x,
                _mm256_blendv_epi8(xn, _mm256_or_si256(_mm256_slli_epi32::<16>(xn), wv), need),
            );
            pos += (m as u32).count_ones() as usize;
            let code = if P != 0 {
                _mm256_and_si256(_mm256_add_epi32(sym, pred), code_mask)
            } else {
                sym
            };
            let folded = _mm256_min_epu32(sym, _mm256_sub_epi32(alphabet, sym));
            if P != 0 {
                let packed = pack(code);
                _mm_storel_epi64(rp.add(row_s + 8 * k).cast(), packed);
                _mm_storel_epi64(stage[held].as_mut_ptr().add(8 * k).cast(), packed);
            } else {
                st(&mut codes, code);
                st(&mut index, i);
                for j in 0..8 {
                    *qp.add(index[j] as usize) = codes[j] as u8;
                }
            }
            if P == 2 {
                let packed = pack(folded);
                _mm_storel_epi64(erp.add(row_s + 8 * k).cast(), packed);
                if write_e {
                    _mm_storel_epi64(estage[held].as_mut_ptr().add(8 * k).cast(), packed);
                }
                st(&mut grp.eabove, eabove);
            }
            st(&mut grp.prev, folded);
            st(&mut grp.left, code);
            st(&mut grp.above, above);
            st(&mut grp.i, _mm256_add_epi32(i, _mm256_set1_epi32(1)));
            let (cx, wrap_x) = {
                let c = _mm256_add_epi32(cx, _mm256_set1_epi32(1));
                let wrap = _mm256_cmpeq_epi32(c, dx);
                (_mm256_andnot_si256(wrap, c), wrap)
            };
            st(&mut grp.cx, cx);
            let cy = _mm256_sub_epi32(cy, wrap_x);
            st(
                &mut grp.cy,
                _mm256_andnot_si256(_mm256_cmpeq_epi32(cy, dy), cy),
            );
        }
        since += 1;
        if since == event {
            for grp in g.iter_mut().take(groups) {
                if g_live && tick(&mut grp.cg, &mut grp.rg, w.g_inner, w.g_channels, since) {
                    st(&mut grp.gctx, words32::<G>(ctx_g, ld(&grp.cg)));
                }
                if f_live && tick(&mut grp.cf, &mut grp.rf, w.f_inner, w.f_channels, since) {
                    st(&mut grp.f, words32::<G>(fillp, ld(&grp.cf)));
                }
            }
            (since, event) = (0, next_event(&g));
        }
        if P != 0 {
            held += 1;
            if held == STAGE {
                write_stage(&stage, &at, lanes, qp);
                if P == 2 && write_e {
                    write_stage(&estage, &at, lanes, ep);
                }
                for a in at.iter_mut() {
                    *a += STAGE;
                }
                held = 0;
            }
        }
    }
    for (l, &a) in at.iter().enumerate().take(lanes) {
        for j in 0..held {
            *qp.add(a + j) = stage[j][l];
            if P == 2 && write_e {
                *ep.add(a + j) = estage[j][l];
            }
        }
    }
    for (k, grp) in g.iter().enumerate().take(groups) {
        for j in 0..8 {
            let r = &mut ln[8 * k + j];
            r.x = grp.x[j];
            r.i = grp.i[j] as usize;
            r.cx = grp.cx[j] as usize;
            r.cy = grp.cy[j] as usize;
            r.cg = grp.cg[j] as usize;
            r.cf = grp.cf[j] as usize;
            (r.rg, r.rf) = w.counters_after(grp.rg[j], grp.rf[j], since, s_end - s_begin);
            r.prev = grp.prev[j];
            r.left = grp.left[j] as i32;
            r.above = grp.above[j] as i32;
            r.eabove = grp.eabove[j];
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write_stage` puts lane `l`'s staged bytes, step by step, at `at[l]`, for each lane
    /// count the kernel runs, and writes nothing for the lanes past `lanes`.
    #[test]
    fn write_stage_transposes_the_staged_steps() {
        if !crate::cpu::avx2_popcnt() {
            return;
        }
        let mut stage = [[0u8; 32]; STAGE];
        for (j, row) in stage.iter_mut().enumerate() {
            for (l, b) in row.iter_mut().enumerate() {
                *b = (j * 32 + l) as u8 ^ 0x5a;
            }
        }
        for lanes in [8, 16, 24, 32] {
            let mut at = [0usize; 32];
            for (l, a) in at.iter_mut().enumerate() {
                // Out of lane order, with gaps.
                *a = (31 - l) * 20 + 3;
            }
            let mut out = vec![0xeeu8; 32 * 20 + 3];
            // SAFETY: AVX2 is present; every lane's 16 bytes lie inside `out`.
            unsafe { write_stage(&stage, &at, lanes, out.as_mut_ptr()) };
            let mut want = vec![0xeeu8; out.len()];
            for l in 0..lanes {
                for j in 0..STAGE {
                    want[at[l] + j] = stage[j][l];
                }
            }
            assert_eq!(out, want, "{lanes} lanes");
        }
    }
}
