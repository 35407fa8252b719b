// Host build of the splitans kernels, for tests/test_cuda_host_logic.py (through ctypes).
//
// Each function here is what the kernel of the same name in python/splitans/cuda/*.cu does, run
// on the CPU: the per-element functions and the chunk coders are the very ones the kernels call
// (rans_common.cuh, feature_common.cuh). The rANS chunk coders run with HostWarp, which executes
// the warp's 32 lanes one after the other in each phase and builds every ballot mask from their
// predicates, so the word placement (ballot + prefix popcount), the symbol tiles and the word
// ring are exercised exactly as written for the device. What differs is only the scheduling
// (grid-stride loops, shared-memory privatization, atomics), which does not change a result.
#include <cstddef>

#include "feature_common.cuh"
#include "pctx_common.cuh"
#include "rans_common.cuh"

using namespace spn;

namespace {

template <typename Sym>
void encode_all(const Sym* syms, u64 n, u32 chunk_log2, u32 lanes, u32 p, const EncSym* table,
                u32* states, u16* scratch, u32* n_words) {
    static Sym tile[ENC_TILE];  // the warp's shared-memory tile
    const u64 chunks = (n + (1ull << chunk_log2) - 1) >> chunk_log2;
    const HostWarp w;
    for (u64 k = 0; k < chunks; ++k) {
        const u64 start = k << chunk_log2;
        encode_chunk(w, syms + start, chunk_symbols(n, chunk_log2, k), lanes, p, table, tile,
                     scratch + start, states + k * lanes, n_words + k);
    }
}

template <typename Sym>
void decode_all(const u8* blob, const u64* state_off, const u64* word_off, const u32* n_words,
                u64 n, u32 chunk_log2, u32 lanes, u32 p, const u32* fb, const u16* dsym, Sym* out,
                u32* status) {
    static u16 ring[DEC_RING];  // the warp's shared-memory word ring
    const u64 chunks = (n + (1ull << chunk_log2) - 1) >> chunk_log2;
    const HostWarp w;
    for (u64 k = 0; k < chunks; ++k) {
        status[k] = decode_chunk(w, blob + state_off[k], blob + word_off[k], n_words[k],
                                 chunk_symbols(n, chunk_log2, k), lanes, p, fb, dsym, ring,
                                 out + (k << chunk_log2));
    }
}

template <typename Code>
void quantize_all(const float* x, u64 n, u32 channels, u64 inner, const float* scale,
                  const int* zero_point, u32 bits, const float* ranges, u32 count_outside,
                  Code* q, u64* outside, u32* nonfinite) {
    const float levels = levels_f32(bits);
    for (u64 i = 0; i < n; ++i) {
        const float v = x[i];
        const u32 c = channel_of(i, channels, inner);
        q[i] = (Code)quantize_one(v, scale[c], zero_point[c], levels);
        if (!f32_is_finite(v)) *nonfinite = 1;
        if (count_outside && outside_range(v, ranges[2 * c], ranges[2 * c + 1])) ++*outside;
    }
}

template <typename Code>
void dequantize_all(const Code* q, u64 n, u32 channels, u64 inner, const float* scale,
                    const int* zero_point, u32 bits, u32 out_f64, void* out, u32* bad) {
    const u32 levels = (1u << bits) - 1u;
    for (u64 i = 0; i < n; ++i) {
        const u32 c = channel_of(i, channels, inner);
        if (q[i] > levels) *bad = 1;
        const float v = dequantize_one(q[i], zero_point[c], scale[c]);
        if (out_f64) {
            static_cast<double*>(out)[i] = f64_from_f32(v);
        } else {
            static_cast<float*>(out)[i] = v;
        }
    }
}

}  // namespace

extern "C" {

// histogram.cu
void spn_histogram(const void* syms, u32 width, u64 n, u64* counts) {
    for (u64 i = 0; i < n; ++i) {
        ++counts[width == 1 ? static_cast<const u8*>(syms)[i] : static_cast<const u16*>(syms)[i]];
    }
}

// rans_encode.cu
void spn_enc_table(const u32* symbols, const u32* freqs, const u32* cums, u32 m, EncSym* table) {
    for (u32 i = 0; i < m; ++i) table[symbols[i]] = enc_symbol(freqs[i], cums[i]);
}

void spn_encode(const void* syms, u32 width, u64 n, u32 chunk_log2, u32 lanes, u32 p,
                const EncSym* table, u32* states, u16* scratch, u32* n_words) {
    if (width == 1) {
        encode_all(static_cast<const u8*>(syms), n, chunk_log2, lanes, p, table, states, scratch, n_words);
    } else {
        encode_all(static_cast<const u16*>(syms), n, chunk_log2, lanes, p, table, states, scratch, n_words);
    }
}

void spn_pack(const u32* states, const u16* scratch, const u32* n_words, const u64* offsets, u64 n,
              u32 chunk_log2, u32 lanes, u64 chunks, u8* out) {
    const HostWarp w;
    for (u64 k = 0; k < chunks; ++k) {
        const u32 m = chunk_symbols(n, chunk_log2, k);
        const u16* words = scratch + (k << chunk_log2) + (m - n_words[k]);
        pack_chunk(w, states + k * lanes, lanes, words, n_words[k], out + offsets[k]);
    }
}

// rans_decode.cu
void spn_dec_table(const u32* symbols, const u32* freqs, const u32* cums, u32 m, u32 p, u32* fb,
                   u16* dsym) {
    for (u32 slot = 0; slot < (1u << p); ++slot) {
        const u32 i = dec_find_entry(cums, m, slot);
        fb[slot] = dec_table_entry(freqs[i], cums[i], slot);
        dsym[slot] = (u16)symbols[i];
    }
}

void spn_decode(const u8* blob, const u64* state_off, const u64* word_off, const u32* n_words,
                u64 n, u32 chunk_log2, u32 lanes, u32 p, const u32* fb, const u16* dsym,
                u32 width, void* out, u32* status) {
    if (width == 1) {
        decode_all(blob, state_off, word_off, n_words, n, chunk_log2, lanes, p, fb, dsym,
                   static_cast<u8*>(out), status);
    } else {
        decode_all(blob, state_off, word_off, n_words, n, chunk_log2, lanes, p, fb, dsym,
                   static_cast<u16*>(out), status);
    }
}

// quantize.cu
void spn_minmax(const float* x, u64 n, u32 channels, u64 inner, u32* keys, u32* nonfinite) {
    for (u64 i = 0; i < n; ++i) {
        const float v = x[i];
        const u32 c = channel_of(i, channels, inner);
        if (f32_is_finite(v)) {
            const u32 k = f32_order_key(v);
            if (k < keys[2 * c]) keys[2 * c] = k;
            if (k > keys[2 * c + 1]) keys[2 * c + 1] = k;
        } else {
            *nonfinite = 1;
        }
    }
}

void spn_quantize(const float* x, u64 n, u32 channels, u64 inner, const float* scale,
                  const int* zero_point, u32 bits, const float* ranges, u32 count_outside,
                  u32 width, void* q, u64* outside, u32* nonfinite) {
    if (width == 1) {
        quantize_all(x, n, channels, inner, scale, zero_point, bits, ranges, count_outside,
                     static_cast<u8*>(q), outside, nonfinite);
    } else {
        quantize_all(x, n, channels, inner, scale, zero_point, bits, ranges, count_outside,
                     static_cast<u16*>(q), outside, nonfinite);
    }
}

void spn_dequantize(const void* q, u32 width, u64 n, u32 channels, u64 inner, const float* scale,
                    const int* zero_point, u32 bits, u32 out_f64, void* out, u32* bad) {
    if (width == 1) {
        dequantize_all(static_cast<const u8*>(q), n, channels, inner, scale, zero_point, bits,
                       out_f64, out, bad);
    } else {
        dequantize_all(static_cast<const u16*>(q), n, channels, inner, scale, zero_point, bits,
                       out_f64, out, bad);
    }
}

void spn_f64_to_f32(const double* x, u64 n, float* out) {
    for (u64 i = 0; i < n; ++i) out[i] = f32_from_f64(x[i]);
}

void spn_f16_to_f32(const u16* x, u64 n, float* out) {
    for (u64 i = 0; i < n; ++i) out[i] = f32_from_f16_bits(x[i]);
}

// sparse.cu
void spn_csr_flags(const void* q, u32 width, u64 n, u32 channels, u64 inner,
                   const int* zero_point, u32* flags) {
    for (u64 i = 0; i < n; ++i) {
        const u32 code = width == 1 ? static_cast<const u8*>(q)[i] : static_cast<const u16*>(q)[i];
        flags[i] = is_nonzero(code, zero_point[channel_of(i, channels, inner)]) ? 1u : 0u;
    }
}

void spn_csr_compact(const void* q, u32 width, u64 n, const u32* flags, const u64* prefix,
                     u64 cols, u16* col_idx, void* values) {
    for (u64 i = 0; i < n; ++i) {
        if (!flags[i]) continue;
        const u64 k = prefix[i] - 1;
        col_idx[k] = (u16)column_of(i, cols);
        if (width == 1) {
            static_cast<u8*>(values)[k] = static_cast<const u8*>(q)[i];
        } else {
            static_cast<u16*>(values)[k] = static_cast<const u16*>(q)[i];
        }
    }
}

void spn_csr_positions(u64 n, const u32* flags, const u64* prefix, u64* positions) {
    for (u64 i = 0; i < n; ++i)
        if (flags[i]) positions[prefix[i] - 1] = i;
}

void spn_csr_row_counts(const u64* prefix, u64 rows, u64 cols, u16* counts) {
    for (u64 r = 0; r < rows; ++r) {
        const u64 before = r == 0 ? 0 : prefix[r * cols - 1];
        counts[r] = (u16)(prefix[(r + 1) * cols - 1] - before);
    }
}

void spn_csr_fill_zero_points(void* out, u32 width, u64 n, u32 channels, u64 inner,
                              const int* zero_point) {
    for (u64 i = 0; i < n; ++i) {
        const int z = zero_point[channel_of(i, channels, inner)];
        if (width == 1) {
            static_cast<u8*>(out)[i] = (u8)z;
        } else {
            static_cast<u16*>(out)[i] = (u16)z;
        }
    }
}

void spn_csr_scatter(const u16* counts, const u64* row_start, u64 rows, u64 cols,
                     const u16* col_idx, const void* values, u32 width, void* out, u32* bad) {
    for (u64 r = 0; r < rows; ++r) {
        const u64 start = row_start[r];
        for (u32 j = 0; j < counts[r]; ++j) {
            const u32 col = col_idx[start + j];
            const u32 prev = j > 0 ? col_idx[start + j - 1] : 0u;
            if (!csr_column_ok(j == 0, prev, col, cols)) {
                *bad = 1;
                continue;
            }
            if (width == 1) {
                static_cast<u8*>(out)[r * cols + col] = static_cast<const u8*>(values)[start + j];
            } else {
                static_cast<u16*>(out)[r * cols + col] = static_cast<const u16*>(values)[start + j];
            }
        }
    }
}

// pctx.cu: one HostWarp per chunk, in chunk order.
void spn_pctx_encode(const u8* q, u64 n, const u64* geo, const u32* ctx_g, const u32* ctx_a,
                     const u32* ctx_b, const u32* ctx_c, const u8* context_map, const u16* cums,
                     const u8* fill, u32* states, u16* scratch, u32* n_words) {
    const PctxModel M = pctx_model(geo, ctx_g, ctx_a, ctx_b, ctx_c, context_map, cums, fill);
    const HostWarp w;
    for (u64 k = 0; k < pctx_chunks(n, geo[PCTX_GEO_PLANE]); ++k) {
        const PctxChunk c = pctx_chunk(n, geo[PCTX_GEO_PLANE], k);
        pctx_encode_chunk(w, M, q, c.start, c.m, c.lanes, c.seg, scratch + c.start,
                          states + 32 * k, n_words + k);
    }
}

void spn_pctx_pack(const u32* states, const u16* scratch, const u32* n_words, const u64* offsets,
                   u64 n, u64 plane, u8* out) {
    const HostWarp w;
    for (u64 k = 0; k < pctx_chunks(n, plane); ++k) {
        const PctxChunk c = pctx_chunk(n, plane, k);
        const u16* words = scratch + c.start + (c.m - n_words[k]);
        pack_chunk(w, states + 32 * k, c.lanes, words, n_words[k], out + offsets[k]);
    }
}

void spn_pctx_decode(const u8* blob, const u64* state_off, const u64* word_off,
                     const u32* n_words, u64 n, const u64* geo, const u32* ctx_g,
                     const u32* ctx_a, const u32* ctx_b, const u32* ctx_c, const u8* context_map,
                     const u16* cums, const u8* fill, u8* q, u32* status) {
    const PctxModel M = pctx_model(geo, ctx_g, ctx_a, ctx_b, ctx_c, context_map, cums, fill);
    const HostWarp w;
    for (u64 k = 0; k < pctx_chunks(n, geo[PCTX_GEO_PLANE]); ++k) {
        const PctxChunk c = pctx_chunk(n, geo[PCTX_GEO_PLANE], k);
        status[k] = pctx_decode_chunk(w, M, blob + state_off[k], blob + word_off[k], n_words[k],
                                      c.start, c.m, c.lanes, c.seg, q);
    }
}

// The number of chunks of a sample (pctx_chunks), for the launch checks.
u64 spn_pctx_chunks(u64 n, u64 plane) { return pctx_chunks(n, plane); }

// Layout checks for the ctypes side.
u32 spn_sizeof_encsym() { return (u32)sizeof(EncSym); }
u32 spn_enc_tile() { return ENC_TILE; }
u32 spn_dec_ring() { return DEC_RING; }

}  // extern "C"
