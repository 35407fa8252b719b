//! The raster decoder of the parallel context coder (FORMAT.md 9.4) with AVX-512: the AVX2
//! kernel's arithmetic 16 lanes a vector, its lane selections as mask registers, the words
//! handed to the lanes that need them by an expanding load. It gives exactly the portable
//! decoder's codes.
//!
//! Why a second kernel: the AVX2 one runs a chunk's 32 lanes as four vectors whose steps
//! (~200 instructions each) wait on a chain of dependent gathers (context, table, slot,
//! interval); with two vectors of 16 lanes a step is half the instructions, and twice as much
//! of the chain's wait is overlapped by the other lanes' work (benches/NOTES.md 46). Two
//! things only this one does: the property classes are looked up in registers (`vpermi2b`),
//! not gathered (NOTES 47), and past `FAST_SLOT_BYTES` a lane's symbol comes from its run of
//! 16 slots and the symbol boundaries in it (`Tables::runs`, NOTES 49), not from a coarse
//! symbol checked against its interval. Its group and fill counters move by events, as the
//! AVX2 kernel's (NOTES 48); where every lane is at the same column and row (lanes of whole
//! planes) it keeps one position for all, and the blends of a lane that has every neighbour
//! fold away (NOTES 51).

use super::avx2::{write_stage, STAGE};
use super::{RasterLane, Tables, Walk};
use std::arch::x86_64::*;

/// The state of 16 lanes, one array per field (RasterLane transposed).
#[derive(Clone, Copy, Default)]
struct Group {
    x: [u32; 16],
    cx: [u32; 16],
    cy: [u32; 16],
    cg: [u32; 16],
    rg: [u32; 16],
    cf: [u32; 16],
    rf: [u32; 16],
    prev: [u32; 16],
    left: [u32; 16],
    above: [u32; 16],
    eabove: [u32; 16],
    /// The fill of the lane's quantization channel and its group's context offset.
    f: [u32; 16],
    gctx: [u32; 16],
}

#[inline(always)]
unsafe fn ld(a: &[u32; 16]) -> __m512i {
    _mm512_loadu_si512(a.as_ptr().cast())
}

#[inline(always)]
unsafe fn st(a: &mut [u32; 16], v: __m512i) {
    _mm512_storeu_si512(a.as_mut_ptr().cast(), v)
}

/// Bytes at `base + idx` (each gather reads 4 bytes: 3 bytes of padding must follow).
#[inline(always)]
pub(super) unsafe fn bytes(base: *const u8, idx: __m512i) -> __m512i {
    _mm512_and_si512(
        _mm512_i32gather_epi32::<1>(idx, base.cast()),
        _mm512_set1_epi32(0xff),
    )
}

#[inline(always)]
unsafe fn words32(base: *const u32, idx: __m512i) -> __m512i {
    _mm512_i32gather_epi32::<4>(idx, base.cast())
}

/// The bytes of a 256-byte table (four registers) at 16 lanes' values (each below 256): two
/// in-register lookups of 128 bytes each, chosen by the value's bit 7.
#[inline(always)]
pub(super) unsafe fn lookup256(t: &[__m512i; 4], v: __m512i) -> __m512i {
    let lo = _mm512_permutex2var_epi8(t[0], v, t[1]);
    let hi = _mm512_permutex2var_epi8(t[2], v, t[3]);
    _mm512_and_si512(
        _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi),
        _mm512_set1_epi32(0xff),
    )
}

/// 16 bytes at `p`, one a lane.
#[inline(always)]
unsafe fn load16(p: *const u8) -> __m512i {
    _mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast()))
}

/// Advances counters (c, r) with period `period` and length `len` by `k` elements, at most
/// as many as bring the first lane to its period; and whether any lane's `c` moved.
#[inline(always)]
unsafe fn tick(c: &mut [u32; 16], r: &mut [u32; 16], period: usize, len: usize, k: usize) -> bool {
    let (period, len) = (
        _mm512_set1_epi32(period as i32),
        _mm512_set1_epi32(len as i32),
    );
    let (c0, rk) = (ld(c), _mm512_add_epi32(ld(r), _mm512_set1_epi32(k as i32)));
    let wrap = _mm512_cmpeq_epi32_mask(rk, period);
    let c1 = _mm512_mask_add_epi32(c0, wrap, c0, _mm512_set1_epi32(1));
    st(
        c,
        _mm512_maskz_mov_epi32(!_mm512_cmpeq_epi32_mask(c1, len), c1),
    );
    st(r, _mm512_maskz_mov_epi32(!wrap, rk));
    wrap != 0
}

/// One chunk's part of a kernel call: its lanes, its words (`n_words`, then 16 more that are
/// read and never used) and word position, and its rings of codes and folded residuals.
pub(super) struct Lanes<'a> {
    pub(super) ln: &'a mut [RasterLane; 32],
    pub(super) words: &'a [u16],
    pub(super) n_words: usize,
    pub(super) pos: usize,
    pub(super) rows: &'a mut [u8],
    pub(super) erows: &'a mut [u8],
}

/// Steps `0..s_end` of `C` chunks (one or two) of `16 · G` lanes (16 or 32) that all have an
/// element at each of those steps and the same steps, for predictor `P` (0 none, 1 med, 2
/// med-residual, which also writes each element's folded residual into `e`): `avx2::steps` 16
/// lanes at a time. Two chunks' lanes depend on nothing of each other's (their own words,
/// their own elements), so decoding them together gives the chain of gathers twice the
/// independent work to overlap. Every neighbour comes from a chunk's ring `rows` (the last
/// `dx + 1` steps' codes, `16 · G` bytes a step; the folded residuals likewise in `erows` when
/// `P` is 2), never from `q`, and the codes are written out `STAGE` steps at a time. Leaves
/// each chunk's word position in its `pos`.
///
/// # Safety
/// AVX-512 F, BW, VL, VBMI and VBMI2 and POPCNT must be available; `tb.slots` must be built;
/// `q` must hold every element index of the chunks, and so must `e` when `P` is 2 unless it is
/// empty (no folded residual is then written); each `rows` must hold `(w.dx + 1) · 16 · G`
/// bytes, and so must `erows` when `P` is 2; each `words` `n_words` words plus 16; `fill` one
/// entry per quantization channel; every index below 2^31; `w.dx` at least 2.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,popcnt")]
pub(super) unsafe fn steps<const P: u8, const G: usize, const C: usize, const V: usize>(
    tb: &Tables,
    w: &Walk,
    s_end: usize,
    fill: &[u32],
    q: &mut [u8],
    e: &mut [u8],
    chunks: &mut [Lanes; C],
) {
    // Lanes of whole planes (FORMAT.md 9.4) all start a plane: every lane is then at the same
    // column and row at every step, and the kernel keeps one position for all (NOTES 51).
    let (x0, y0) = (chunks[0].ln[0].cx, chunks[0].ln[0].cy);
    let aligned = chunks
        .iter()
        .all(|ch| ch.ln[..16 * G].iter().all(|r| (r.cx, r.cy) == (x0, y0)));
    if aligned {
        steps_in::<P, G, C, V, true>(tb, w, s_end, fill, q, e, chunks)
    } else {
        steps_in::<P, G, C, V, false>(tb, w, s_end, fill, q, e, chunks)
    }
}

/// `steps`, with one position for every lane (`A`) or one a lane.
///
/// # Safety
/// As `steps`; with `A`, every lane's `cx` and `cy` the same.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,popcnt")]
unsafe fn steps_in<const P: u8, const G: usize, const C: usize, const V: usize, const A: bool>(
    tb: &Tables,
    w: &Walk,
    s_end: usize,
    fill: &[u32],
    q: &mut [u8],
    e: &mut [u8],
    chunks: &mut [Lanes; C],
) {
    let lanes = 16 * G;
    let (mut px, mut py) = (chunks[0].ln[0].cx, chunks[0].ln[0].cy);
    const { assert!(V == G * C) };
    let mut g = [[Group::default(); G]; C];
    let mut pos = [0usize; C];
    let mut n_words = [0usize; C];
    let mut wp = [std::ptr::null::<u16>(); C];
    let mut rp = [std::ptr::null_mut::<u8>(); C];
    let mut erp = [std::ptr::null_mut::<u8>(); C];
    for (c, ch) in chunks.iter_mut().enumerate() {
        pos[c] = ch.pos;
        n_words[c] = ch.n_words;
        wp[c] = ch.words.as_ptr();
        rp[c] = ch.rows.as_mut_ptr();
        erp[c] = ch.erows.as_mut_ptr();
    }
    for (gc, ch) in g.iter_mut().zip(chunks.iter()) {
        for (k, grp) in gc.iter_mut().enumerate() {
            for j in 0..16 {
                let r = &ch.ln[16 * k + j];
                grp.x[j] = r.x;
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
    }
    let p = tb.precision as i32;
    let shift_p = _mm_cvtsi32_si128(p);
    let shift_bits = _mm_cvtsi32_si128(tb.bits as i32);
    let slot_mask = _mm512_set1_epi32((1 << p) - 1);
    let code_mask = _mm512_set1_epi32((1 << tb.bits) - 1);
    let alphabet = _mm512_set1_epi32(1 << tb.bits);
    let zero = _mm512_setzero_si512();
    let dx = _mm512_set1_epi32(w.dx as i32);
    let dx1 = _mm512_set1_epi32(w.dx as i32 - 1);
    let dy = _mm512_set1_epi32(w.dy as i32);
    let one = _mm512_set1_epi32(1);
    let ring = w.dx + 1;
    let mut row = 0;
    let ctx_g = tb.ctx_g.as_ptr();
    let ctx_a = tb.ctx_a.as_ptr();
    let ctx_b = tb.ctx_b.as_ptr();
    let ctx_c = tb.ctx_c.as_ptr();
    let map = tb.padded_map.as_ptr();
    let slots = tb.slots.as_ptr();
    let coarse = !tb.runs.is_empty();
    let runsp = tb.runs.as_ptr();
    let shift_runs = _mm_cvtsi32_si128(p - 4);
    let fifteen = _mm512_set1_epi32(15);
    let intervals = tb.intervals.as_ptr();
    let fillp = fill.as_ptr();
    // The class tables in registers where they fit in bytes (`Tables::class_bytes`), else
    // gathered.
    let in_regs = !tb.class_bytes.is_empty();
    let mut cls = [[zero; 4]; 3];
    if in_regs {
        for (r, t) in cls.iter_mut().zip(&tb.class_bytes) {
            for (j, v) in r.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(t.as_ptr().add(64 * j).cast());
            }
        }
    }
    let a_stride = _mm512_set1_epi32(tb.a_stride as i32);
    let byte_max = _mm512_set1_epi32(255);
    // A context from the three property values.
    let context = |gctx: __m512i, a: __m512i, b: __m512i, c: __m512i| {
        if in_regs {
            let a = lookup256(&cls[0], _mm512_min_epu32(a, byte_max));
            // class_a · n_b · n_c <= 15 · 256: the low 16 bits of each lane's product.
            let a = _mm512_mullo_epi16(a, a_stride);
            _mm512_add_epi32(
                _mm512_add_epi32(gctx, a),
                _mm512_add_epi32(lookup256(&cls[1], b), lookup256(&cls[2], c)),
            )
        } else {
            _mm512_add_epi32(
                _mm512_add_epi32(gctx, words32(ctx_a, a)),
                _mm512_add_epi32(words32(ctx_b, b), words32(ctx_c, c)),
            )
        }
    };
    for grp in g.iter_mut().flatten() {
        st(&mut grp.f, words32(fillp, ld(&grp.cf)));
        st(&mut grp.gctx, words32(ctx_g, ld(&grp.cg)));
    }
    let mut stage = [[[0u8; 32]; STAGE]; C];
    let mut estage = [[[0u8; 32]; STAGE]; C];
    let mut held = 0;
    let write_e = !e.is_empty();
    let mut at = [[0usize; 32]; C];
    for (a, ch) in at.iter_mut().zip(chunks.iter()) {
        for (a, r) in a.iter_mut().zip(ch.ln.iter()).take(lanes) {
            *a = r.i;
        }
    }
    let next = |r: usize| if r + 1 == ring { 0 } else { r + 1 };
    // The group and fill counters move by events: the `since` steps after the last one are
    // applied at once when the first lane of any vector reaches its period (`event` steps
    // after the last), so that a step pays nothing for them. A counter of one channel never
    // changes the context or the fill, and is set at the end.
    let (g_live, f_live) = (w.g_channels > 1, w.f_channels > 1);
    let next_event = |g: &[[Group; G]; C]| {
        let steps = g
            .iter()
            .flatten()
            .map(|grp| w.steps_to_event(&grp.rg, &grp.rf));
        steps.min().unwrap_or(usize::MAX)
    };
    let (mut since, mut event) = (0, next_event(&g));
    for s in 0..s_end {
        // The rows of the lanes' upper and upper-right neighbours (before step dx: rows not
        // yet written, read and never used).
        let (row_s, row_u, row_ur) = (row * lanes, next(row) * lanes, next(next(row)) * lanes);
        row = next(row);
        // The step in phases, each over every vector (chunk c's vector k is v = c · G + k):
        // the gathers of one phase depend on nothing of each other's, and so overlap.
        let mut ctxs = [zero; V];
        let mut preds = [zero; V];
        let mut aboves = [zero; V];
        let mut eaboves = [zero; V];
        // Phase 1 for the lanes' neighbour masks `$masks(grp)`: which of the left, upper,
        // upper-left and upper-right neighbours each lane has.
        macro_rules! neighbours {
            ($masks:expr) => {
                for (v, grp) in g.iter().flatten().enumerate() {
                    let (c, k) = (v / G, v % G);
                    let (rp, erp) = (rp[c], erp[c]);
                    let (has_l, has_u, has_ul, has_ur): (u16, u16, u16, u16) = $masks(grp);
                    let f = ld(&grp.f);
                    let above = load16(rp.add(row_u + 16 * k));
                    let l = _mm512_mask_blend_epi32(has_l, f, ld(&grp.left));
                    let u = _mm512_mask_blend_epi32(has_u, f, above);
                    let ul = _mm512_mask_blend_epi32(has_ul, f, ld(&grp.above));
                    let gctx = ld(&grp.gctx);
                    let eabove = if P == 2 {
                        load16(erp.add(row_u + 16 * k))
                    } else {
                        zero
                    };
                    let (ctx, pred) = if P != 0 {
                        let ur =
                            _mm512_mask_blend_epi32(has_ur, u, load16(rp.add(row_ur + 16 * k)));
                        let act = _mm512_add_epi32(
                            _mm512_add_epi32(
                                _mm512_abs_epi32(_mm512_sub_epi32(l, ul)),
                                _mm512_abs_epi32(_mm512_sub_epi32(u, ul)),
                            ),
                            _mm512_abs_epi32(_mm512_sub_epi32(ur, u)),
                        );
                        let lo = _mm512_min_epi32(l, u);
                        let hi = _mm512_max_epi32(l, u);
                        let grad = _mm512_sub_epi32(_mm512_add_epi32(l, u), ul);
                        // ul >= hi: lo; ul <= lo: hi; else l + u - ul.
                        let ge_hi = _mm512_cmpge_epi32_mask(ul, hi);
                        let le_lo = _mm512_cmple_epi32_mask(ul, lo);
                        let pred = _mm512_mask_blend_epi32(
                            ge_hi,
                            _mm512_mask_blend_epi32(le_lo, grad, hi),
                            lo,
                        );
                        let prop_c = if P == 2 {
                            _mm512_max_epi32(
                                _mm512_max_epi32(
                                    _mm512_maskz_mov_epi32(has_l, ld(&grp.prev)),
                                    _mm512_maskz_mov_epi32(has_u, eabove),
                                ),
                                _mm512_maskz_mov_epi32(has_ul, ld(&grp.eabove)),
                            )
                        } else {
                            ld(&grp.prev)
                        };
                        (context(gctx, act, pred, prop_c), pred)
                    } else {
                        (context(gctx, l, u, ul), zero)
                    };
                    (ctxs[v], preds[v], aboves[v], eaboves[v]) = (ctx, pred, above, eabove);
                }
            };
        }
        if A {
            // Every lane at (px, py): the masks are the same for all, and where a lane has
            // every neighbour they are constants, so that the blends fold away.
            let flag = |c: bool| if c { u16::MAX } else { 0 };
            let has_l = s >= 1 && px > 0;
            let has_u = s >= w.dx && py > 0;
            let has_ul = has_l && has_u && s > w.dx;
            let has_ur = has_u && px + 1 < w.dx;
            if has_l && has_u && has_ul && has_ur {
                neighbours!(|_| (u16::MAX, u16::MAX, u16::MAX, u16::MAX));
            } else {
                let m = (flag(has_l), flag(has_u), flag(has_ul), flag(has_ur));
                neighbours!(|_| m);
            }
        } else {
            let flag = |c: bool| if c { u16::MAX } else { 0 };
            let step_l = flag(s >= 1);
            let step_u = flag(s >= w.dx);
            let step_ul = flag(s > w.dx);
            neighbours!(|grp: &Group| {
                let cx = ld(&grp.cx);
                let cy = ld(&grp.cy);
                let has_l = _mm512_cmpgt_epi32_mask(cx, zero) & step_l;
                let has_u = _mm512_cmpgt_epi32_mask(cy, zero) & step_u;
                let has_ul = has_l & has_u & step_ul;
                (
                    has_l,
                    has_u,
                    has_ul,
                    has_u & _mm512_cmpgt_epi32_mask(dx1, cx),
                )
            });
        }
        let tabs = ctxs.map(|ctx| bytes(map, ctx));
        // A lane's symbol: from its run's entry where there are runs (`Tables::runs`: the
        // run's first symbol and where the next two start), from the slot table for the lanes
        // of a run of more symbols, and for all where there are no runs.
        let mut syms = [zero; V];
        let mut slotv = [zero; V];
        for (v, grp) in g.iter().flatten().enumerate() {
            slotv[v] = _mm512_and_si512(ld(&grp.x), slot_mask);
            let in_slots = _mm512_or_si512(_mm512_sll_epi32(tabs[v], shift_p), slotv[v]);
            syms[v] = if coarse {
                let at = _mm512_or_si512(
                    _mm512_sll_epi32(tabs[v], shift_runs),
                    _mm512_srli_epi32::<4>(slotv[v]),
                );
                // Each gather reads 4 bytes at a 2-byte entry: one entry of padding follows.
                let e = _mm512_i32gather_epi32::<2>(at, runsp.cast());
                let b1 = _mm512_and_si512(_mm512_srli_epi32::<8>(e), fifteen);
                let b2 = _mm512_and_si512(_mm512_srli_epi32::<12>(e), fifteen);
                let o = _mm512_and_si512(slotv[v], fifteen);
                let has1 = _mm512_test_epi32_mask(b1, b1);
                let k1 = _mm512_mask_cmpge_epu32_mask(has1, o, b1);
                let k2 = _mm512_mask_cmpge_epu32_mask(has1 & _mm512_test_epi32_mask(b2, b2), o, b2);
                let sym = _mm512_and_si512(e, _mm512_set1_epi32(0xff));
                let sym = _mm512_mask_add_epi32(sym, k1, sym, one);
                let sym = _mm512_mask_add_epi32(sym, k2, sym, one);
                let many = _mm512_test_epi32_mask(b2, b2) & !has1;
                if many != 0 {
                    let s = _mm512_mask_i32gather_epi32::<1>(sym, many, in_slots, slots.cast());
                    _mm512_mask_and_epi32(sym, many, s, _mm512_set1_epi32(0xff))
                } else {
                    sym
                }
            } else {
                bytes(slots, in_slots)
            };
        }
        let mut ivs = [zero; V];
        for v in 0..V {
            let at = _mm512_or_si512(_mm512_sll_epi32(tabs[v], shift_bits), syms[v]);
            ivs[v] = words32(intervals, at);
        }
        for (v, grp) in g.iter_mut().flatten().enumerate() {
            let (c, k) = (v / G, v % G);
            let (rp, erp) = (rp[c], erp[c]);
            let (sym, e, pred, above, eabove) = (syms[v], ivs[v], preds[v], aboves[v], eaboves[v]);
            let x = ld(&grp.x);
            let slot = _mm512_and_si512(x, slot_mask);
            let cum = _mm512_and_si512(e, _mm512_set1_epi32(0xffff));
            let freq = _mm512_srli_epi32::<16>(e);
            let xn = _mm512_add_epi32(
                _mm512_mullo_epi32(freq, _mm512_srl_epi32(x, shift_p)),
                _mm512_sub_epi32(slot, cum),
            );
            let need = _mm512_cmplt_epu32_mask(xn, _mm512_set1_epi32(1 << 16));
            // SAFETY: `words` holds 16 words past `n_words`; the load reads as many as `need`
            // has lanes, in lane order (the format's).
            let wv = _mm512_cvtepu16_epi32(_mm256_maskz_expandloadu_epi16(
                need,
                wp[c].add(pos[c].min(n_words[c])).cast(),
            ));
            st(
                &mut grp.x,
                _mm512_mask_or_epi32(xn, need, _mm512_slli_epi32::<16>(xn), wv),
            );
            pos[c] += need.count_ones() as usize;
            let code = if P != 0 {
                _mm512_and_si512(_mm512_add_epi32(sym, pred), code_mask)
            } else {
                sym
            };
            let folded = _mm512_min_epu32(sym, _mm512_sub_epi32(alphabet, sym));
            let packed = _mm512_cvtepi32_epi8(code);
            _mm_storeu_si128(rp.add(row_s + 16 * k).cast(), packed);
            _mm_storeu_si128(stage[c][held].as_mut_ptr().add(16 * k).cast(), packed);
            if P == 2 {
                let packed = _mm512_cvtepi32_epi8(folded);
                _mm_storeu_si128(erp.add(row_s + 16 * k).cast(), packed);
                _mm_storeu_si128(estage[c][held].as_mut_ptr().add(16 * k).cast(), packed);
                st(&mut grp.eabove, eabove);
            }
            st(&mut grp.prev, folded);
            st(&mut grp.left, code);
            st(&mut grp.above, above);
            if !A {
                let c = _mm512_add_epi32(ld(&grp.cx), one);
                let wrap_x = _mm512_cmpeq_epi32_mask(c, dx);
                st(&mut grp.cx, _mm512_maskz_mov_epi32(!wrap_x, c));
                let cy = ld(&grp.cy);
                let cy = _mm512_mask_add_epi32(cy, wrap_x, cy, one);
                st(
                    &mut grp.cy,
                    _mm512_maskz_mov_epi32(!_mm512_cmpeq_epi32_mask(cy, dy), cy),
                );
            }
        }
        if A {
            px += 1;
            if px == w.dx {
                px = 0;
                py += 1;
                if py == w.dy {
                    py = 0;
                }
            }
        }
        since += 1;
        if since == event {
            for grp in g.iter_mut().flatten() {
                if g_live && tick(&mut grp.cg, &mut grp.rg, w.g_inner, w.g_channels, since) {
                    st(&mut grp.gctx, words32(ctx_g, ld(&grp.cg)));
                }
                if f_live && tick(&mut grp.cf, &mut grp.rf, w.f_inner, w.f_channels, since) {
                    st(&mut grp.f, words32(fillp, ld(&grp.cf)));
                }
            }
            (since, event) = (0, next_event(&g));
        }
        held += 1;
        if held == STAGE {
            for c in 0..C {
                write_stage(&stage[c], &at[c], lanes, q.as_mut_ptr());
                if P == 2 && write_e {
                    write_stage(&estage[c], &at[c], lanes, e.as_mut_ptr());
                }
                for a in at[c].iter_mut() {
                    *a += STAGE;
                }
            }
            held = 0;
        }
    }
    for c in 0..C {
        for (l, &a) in at[c].iter().enumerate().take(lanes) {
            for j in 0..held {
                q[a + j] = stage[c][j][l];
                if P == 2 && write_e {
                    e[a + j] = estage[c][j][l];
                }
            }
        }
    }
    for ((gc, ch), at) in g.iter().zip(chunks.iter_mut()).zip(at.iter()) {
        for (k, grp) in gc.iter().enumerate() {
            for j in 0..16 {
                let r = &mut ch.ln[16 * k + j];
                r.x = grp.x[j];
                r.i = at[16 * k + j] + held;
                (r.cx, r.cy) = if A {
                    (px, py)
                } else {
                    (grp.cx[j] as usize, grp.cy[j] as usize)
                };
                r.cg = grp.cg[j] as usize;
                r.cf = grp.cf[j] as usize;
                (r.rg, r.rf) = w.counters_after(grp.rg[j], grp.rf[j], since, s_end);
                r.prev = grp.prev[j];
                r.left = grp.left[j] as i32;
                r.above = grp.above[j] as i32;
                r.eabove = grp.eabove[j];
            }
        }
    }
    for (ch, p) in chunks.iter_mut().zip(pos) {
        ch.pos = p;
    }
}
