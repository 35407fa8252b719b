// splitans GPU path: the parallel context coder of docs/FORMAT.md 9.4 (fitted codecs), written
// once for the CUDA kernels (pctx.cu) and for plain host C++ (tests/cuda_host/driver.cpp runs it
// with HostWarp and compares the bytes with the Rust coder).
//
// A chunk of m codes is cut into `lanes` contiguous segments of g elements (pctx_chunk: g =
// ceil(m / lanes), or whole planes with plane lanes); lane l owns elements [l*g, min((l+1)*g,
// m)) and at step s codes its element l*g + s. Each code
// is coded with the static table that its already-coded neighbours select (left, up, upper
// left, upper right, and the lane's previous residual). All lanes share one word stream in step
// order, lanes ascending within a step: the ballot + prefix-popcount placement of the static
// coder (rans_common.cuh).
#pragma once

#include "rans_common.cuh"

namespace spn {

/// The model and the sample layout a kernel needs (FORMAT.md 9.3, 9.4).
struct PctxModel {
    // Strides and lengths of the left and up axes (stride 0: no such neighbour); the group
    // axis and the quantization channels as (inner, channels): index (i / inner) % channels.
    u64 sx, dx, sy, dy;
    u64 g_inner, g_channels, f_inner, f_channels;
    u32 bits;       // code width B
    u32 precision;  // p: every table sums to 2^p
    u32 med;        // predictor: 0 none, 1 the median edge detector, 2 med-residual
    // context = ctx_g[group index] + ctx_a[a] + ctx_b[b] + ctx_c[c]; table = context_map[context]
    const u32* ctx_g;
    const u32* ctx_a;
    const u32* ctx_b;
    const u32* ctx_c;
    const u8* context_map;
    // 2^B + 1 cumulative frequencies per table (the last is 2^p).
    const u16* cums;
    // Code of zero of each quantization channel: stands in for a missing neighbour.
    const u8* fill;
};

/// Number of u64 layout words a kernel takes: PctxModel's integers in field order, then the
/// plane span with plane lanes (9.4), 0 without (PCTX_GEO_PLANE; pctx_chunk's, not the model's).
constexpr u32 PCTX_GEO = 12;
constexpr u32 PCTX_GEO_PLANE = 11;

/// The model from its layout words and tables.
SPN_HD PctxModel pctx_model(const u64* geo, const u32* ctx_g, const u32* ctx_a, const u32* ctx_b,
                            const u32* ctx_c, const u8* context_map, const u16* cums,
                            const u8* fill) {
    PctxModel m;
    m.sx = geo[0];
    m.dx = geo[1];
    m.sy = geo[2];
    m.dy = geo[3];
    m.g_inner = geo[4];
    m.g_channels = geo[5];
    m.f_inner = geo[6];
    m.f_channels = geo[7];
    m.bits = (u32)geo[8];
    m.precision = (u32)geo[9];
    m.med = (u32)geo[10];
    m.ctx_g = ctx_g;
    m.ctx_a = ctx_a;
    m.ctx_b = ctx_b;
    m.ctx_c = ctx_c;
    m.context_map = context_map;
    m.cums = cums;
    m.fill = fill;
    return m;
}

/// lanes_for(m) of FORMAT.md 5.5.
SPN_HD u32 pctx_lanes(u64 m) {
    if (m >= 65536) return 32;
    u64 want = m / 4096;
    if (want < 1) want = 1;
    u32 l = 1;
    while ((u64)l * 2 <= want) l *= 2;
    return l;
}

/// Chunks of 2^16 elements, the last shorter (FORMAT.md 9.4), unless lanes own whole planes.
constexpr u32 PCTX_CHUNK_LOG2 = 16;
/// Plane lanes take planes of at most this many elements (longer ones: the default rule).
constexpr u64 PCTX_MAX_PLANE = 1ull << 16;

/// One chunk: elements [start, start + m) in `lanes` segments of `seg`.
struct PctxChunk {
    u64 start;
    u32 m;
    u32 lanes;
    u32 seg;
};

SPN_HD bool pctx_plane_lanes(u64 plane) { return plane != 0 && plane <= PCTX_MAX_PLANE; }

/// With plane lanes: the default's first chunk's lane count and its segment, rounded up to
/// whole planes (the segment of every chunk).
SPN_HD u64 pctx_plane_seg(u64 n, u64 plane) {
    const u64 first = min_u64(n, 1ull << PCTX_CHUNK_LOG2);
    const u64 lanes = pctx_lanes(first);
    const u64 g0 = (first + lanes - 1) / lanes;
    return (g0 + plane - 1) / plane * plane;
}

/// Elements of every chunk but the last.
SPN_HD u64 pctx_chunk_span(u64 n, u64 plane) {
    if (n == 0 || !pctx_plane_lanes(plane)) return 1ull << PCTX_CHUNK_LOG2;
    return pctx_lanes(min_u64(n, 1ull << PCTX_CHUNK_LOG2)) * pctx_plane_seg(n, plane);
}

SPN_HD u64 pctx_chunks(u64 n, u64 plane) {
    const u64 span = pctx_chunk_span(n, plane);
    return (n + span - 1) / span;
}

/// Chunk k of a sample of n elements (FORMAT.md 9.4; `plane` the layout word PCTX_GEO_PLANE).
SPN_HD PctxChunk pctx_chunk(u64 n, u64 plane, u64 k) {
    const u64 span = pctx_chunk_span(n, plane);
    PctxChunk c;
    c.start = k * span;
    c.m = (u32)(min_u64(c.start + span, n) - c.start);
    if (pctx_plane_lanes(plane)) {
        c.seg = (u32)pctx_plane_seg(n, plane);
        c.lanes = (c.m + c.seg - 1) / c.seg;
    } else {
        c.lanes = pctx_lanes(c.m);
        c.seg = (c.m + c.lanes - 1) / c.lanes;
    }
    return c;
}

SPN_HD int pctx_abs(int v) { return v < 0 ? -v : v; }

/// The median edge detector of LOCO-I.
SPN_HD int pctx_med(int l, int u, int ul) {
    const int lo = l < u ? l : u;
    const int hi = l < u ? u : l;
    if (ul >= hi) return lo;
    if (ul <= lo) return hi;
    return l + u - ul;
}

/// min(r, 2^B - r): the magnitude of a residual symbol.
SPN_HD u32 pctx_fold(u32 r, u32 bits) {
    const u32 o = (1u << bits) - r;
    return r < o ? r : o;
}

/// The neighbours of element `i` at step `s` of its segment (FORMAT.md 9.4): left, up,
/// upper left, and (for the predictor) upper right.
struct PctxNeighbours {
    int l, u, ul, ur;
};

SPN_HD PctxNeighbours pctx_neighbours(const PctxModel& M, const u8* q, u64 i, u64 s) {
    const u64 cx = M.sx ? (i / M.sx) % M.dx : 0;
    const u64 cy = M.sy ? (i / M.sy) % M.dy : 0;
    const bool has_l = M.sx != 0 && cx > 0 && s >= M.sx;
    const bool has_u = M.sy != 0 && cy > 0 && s >= M.sy;
    const int f = M.fill[(i / M.f_inner) % M.f_channels];
    PctxNeighbours nb;
    nb.l = has_l ? (int)q[i - M.sx] : f;
    nb.u = has_u ? (int)q[i - M.sy] : f;
    nb.ul = (has_l && has_u && s >= M.sx + M.sy) ? (int)q[i - M.sy - M.sx] : f;
    const bool has_ur = has_u && M.sx != 0 && cx + 1 < M.dx && s + M.sx >= M.sy;
    nb.ur = has_ur ? (int)q[i - M.sy + M.sx] : nb.u;
    return nb;
}

/// The folded residual of element `j` at step `sj` of its segment, from the codes (its own and
/// its neighbours', known to encoder and decoder alike): what med-residual's third property
/// reads at a neighbour, recomputed rather than stored.
SPN_HD u32 pctx_residual_at(const PctxModel& M, const u8* q, u64 j, u64 sj) {
    const PctxNeighbours nb = pctx_neighbours(M, q, j, sj);
    const u32 sym = (u32)((int)q[j] - pctx_med(nb.l, nb.u, nb.ul)) & ((1u << M.bits) - 1u);
    return pctx_fold(sym, M.bits);
}

/// Med-residual's third property of element `i` at step `s` (FORMAT.md 9.4): the largest
/// folded residual of its left, upper and upper-left neighbours that are there, 0 for none.
SPN_HD u32 pctx_neighbour_residual(const PctxModel& M, const u8* q, u64 i, u64 s) {
    const u64 cx = M.sx ? (i / M.sx) % M.dx : 0;
    const u64 cy = M.sy ? (i / M.sy) % M.dy : 0;
    const bool has_l = M.sx != 0 && cx > 0 && s >= M.sx;
    const bool has_u = M.sy != 0 && cy > 0 && s >= M.sy;
    u32 c = 0;
    if (has_l) c = pctx_residual_at(M, q, i - M.sx, s - M.sx);
    if (has_u) {
        const u32 e = pctx_residual_at(M, q, i - M.sy, s - M.sy);
        c = e > c ? e : c;
    }
    if (has_l && has_u && s >= M.sx + M.sy) {
        const u32 e = pctx_residual_at(M, q, i - M.sy - M.sx, s - M.sy - M.sx);
        c = e > c ? e : c;
    }
    return c;
}

/// The table of element `i` (step `s`, the lane's previous folded residual `prev`) and its
/// prediction (0 without a predictor).
SPN_HD u32 pctx_table(const PctxModel& M, const u8* q, u64 i, u64 s, u32 prev, int* pred) {
    const PctxNeighbours nb = pctx_neighbours(M, q, i, s);
    u32 ctx = M.ctx_g[(i / M.g_inner) % M.g_channels];
    if (M.med) {
        const int act = pctx_abs(nb.l - nb.ul) + pctx_abs(nb.u - nb.ul) + pctx_abs(nb.ur - nb.u);
        *pred = pctx_med(nb.l, nb.u, nb.ul);
        const u32 c = M.med == 2 ? pctx_neighbour_residual(M, q, i, s) : prev;
        ctx += M.ctx_a[act] + M.ctx_b[*pred] + M.ctx_c[c];
    } else {
        *pred = 0;
        ctx += M.ctx_a[nb.l] + M.ctx_b[nb.u] + M.ctx_c[nb.ul];
    }
    return M.context_map[ctx];
}

/// The symbol coded for code `code` with prediction `pred`.
SPN_HD u32 pctx_symbol(const PctxModel& M, u32 code, int pred) {
    return M.med ? (u32)((int)code - pred) & ((1u << M.bits) - 1u) : code;
}

/// The symbol of table row `row` (2^B + 1 cumulative frequencies) whose interval holds `slot`.
SPN_HD u32 pctx_find(const u16* row, u32 a, u32 slot) {
    u32 lo = 0, hi = a;  // row[lo] <= slot < row[hi]
    while (hi - lo > 1) {
        const u32 mid = lo + (hi - lo) / 2;
        if ((u32)row[mid] <= slot) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/// Encodes chunk [start, start + m) of the sample's codes `q` with `lanes` lanes of `seg` (9.4): steps
/// from last to first; in each step the lanes that renormalize write their words just below
/// `top` in increasing lane order, the decoder's reading order. The words end up in
/// words[m - W, m), W = *n_words; `states` gets the lanes' final states.
template <class W>
SPN_HD void pctx_encode_chunk(const W& w, const PctxModel& M, const u8* q, u64 start, u32 m,
                              u32 lanes, u32 seg, u16* words, u32* states, u32* n_words) {
    typename W::template Lanes<u32> x;
    typename W::template Lanes<u32> cum;
    typename W::template Lanes<u32> freq;
    typename W::template Lanes<bool> need;
    const u32 a = 1u << M.bits;
    const u32 p = M.precision;
    w.each([&](u32 l) { x[l] = RANS_L; });
    u32 top = m;
    for (u32 s = seg; s-- > 0;) {
        w.each([&](u32 l) {
            need[l] = false;
            const u64 j = (u64)l * seg + s;
            if (l < lanes && j < m) {
                const u64 i = start + j;
                u32 prev = 0;
                if (M.med == 1 && s > 0) {
                    // The lane's previous residual: its prediction needs only its neighbours.
                    const PctxNeighbours nb = pctx_neighbours(M, q, i - 1, s - 1);
                    prev = pctx_fold(pctx_symbol(M, q[i - 1], pctx_med(nb.l, nb.u, nb.ul)), M.bits);
                }
                int pred;
                const u32 t = pctx_table(M, q, i, s, prev, &pred);
                const u32 sym = pctx_symbol(M, q[i], pred);
                const u16* row = M.cums + (u64)t * (a + 1);
                cum[l] = row[sym];
                freq[l] = (u32)row[sym + 1] - row[sym];
                need[l] = enc_needs_word(x[l], freq[l], p);
            }
        });
        const u32 mask = w.ballot(need);
        w.each([&](u32 l) {
            const u64 j = (u64)l * seg + s;
            if (l < lanes && j < m) {
                if (need[l]) words[enc_word_slot(top, mask, l)] = enc_renorm(x[l]);
                const u32 v = x[l];
                x[l] = ((v / freq[l]) << p) + (v % freq[l]) + cum[l];
            }
        });
        top -= popc(mask);
    }
    w.each([&](u32 l) {
        if (l < lanes) states[l] = x[l];
        if (l == 0) *n_words = m - top;
    });
}

/// Decodes chunk [start, start + m) into `q` from its little-endian initial states and words,
/// with the end-of-chunk checks of 9.4; returns a DecStatus. A lane reads the neighbours it
/// decoded itself at earlier steps (its own writes), so lanes need no synchronization.
template <class W>
SPN_HD u32 pctx_decode_chunk(const W& w, const PctxModel& M, const u8* state_bytes,
                             const u8* word_bytes, u32 n_words, u64 start, u32 m, u32 lanes,
                             u32 seg, u8* q) {
    typename W::template Lanes<u32> x;
    typename W::template Lanes<u32> prev;
    typename W::template Lanes<bool> flag;
    const u32 a = 1u << M.bits;
    const u32 p = M.precision;
    const u32 slot_mask = (1u << p) - 1u;
    w.each([&](u32 l) {
        x[l] = RANS_L;
        prev[l] = 0;
        flag[l] = false;
        if (l < lanes) {
            x[l] = load_u32_le(state_bytes + 4 * l);
            flag[l] = x[l] < RANS_L;
        }
    });
    if (w.ballot(flag) != 0) return DEC_BAD_INITIAL_STATE;
    u32 pos = 0;
    for (u32 s = 0; s < seg; ++s) {
        w.each([&](u32 l) {
            flag[l] = false;
            const u64 j = (u64)l * seg + s;
            if (l < lanes && j < m) {
                const u64 i = start + j;
                int pred;
                const u32 t = pctx_table(M, q, i, s, prev[l], &pred);
                const u16* row = M.cums + (u64)t * (a + 1);
                const u32 slot = x[l] & slot_mask;
                const u32 sym = pctx_find(row, a, slot);
                const u32 cum = row[sym];
                x[l] = ((u32)row[sym + 1] - cum) * (x[l] >> p) + slot - cum;
                q[i] = (u8)(M.med ? (u32)((int)sym + pred) & (a - 1u) : sym);
                prev[l] = pctx_fold(sym, M.bits);
                flag[l] = x[l] < RANS_L;
            }
        });
        const u32 mask = w.ballot(flag);
        if (pos + popc(mask) > n_words) return DEC_OUT_OF_WORDS;
        w.each([&](u32 l) {
            if (flag[l]) x[l] = dec_renorm(x[l], load_u16_le(word_bytes + 2 * dec_word_slot(pos, mask, l)));
        });
        pos += popc(mask);
    }
    if (pos != n_words) return DEC_UNREAD_WORDS;
    w.each([&](u32 l) { flag[l] = l < lanes && x[l] != RANS_L; });
    if (w.ballot(flag) != 0) return DEC_BAD_FINAL_STATE;
    return DEC_OK;
}

}  // namespace spn
