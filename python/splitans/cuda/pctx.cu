// splitans GPU path: the parallel context coder of fitted codecs (FORMAT.md 9.4), one warp per
// chunk (pctx_common.cuh: 2^16 codes, or whole planes a lane).
//
//   pctx_encode  a chunk's final lane states and its words (in a scratch buffer of n words,
//                chunk k's words at the end of its m-word region) and word count;
//   pctx_pack    the chunks in the body's layout at byte offsets the host computed from the
//                word counts (the host writes the chunk directory and the blob header);
//   pctx_decode  the codes of every chunk and a DecStatus per chunk.
//
// The model's tables (pre-scaled property classes, context map, cumulative frequencies) and
// the sample layout (PCTX_GEO u64 words) come from the Rust codec (`_core.Codec.gpu_tables`),
// so the bytes match the CPU coder by construction.
#include "pctx_common.cuh"

using namespace spn;

namespace {

/// Chunks (warps) per block.
constexpr u32 PCTX_WARPS = 4;

}  // namespace

extern "C" __global__ void __launch_bounds__(PCTX_WARPS * WARP_SIZE)
    pctx_encode(const u8* __restrict__ q, u64 n, const u64* __restrict__ geo,
                const u32* __restrict__ ctx_g, const u32* __restrict__ ctx_a,
                const u32* __restrict__ ctx_b, const u32* __restrict__ ctx_c,
                const u8* __restrict__ context_map, const u16* __restrict__ cums,
                const u8* __restrict__ fill, u32* __restrict__ states, u16* __restrict__ scratch,
                u32* __restrict__ n_words) {
    const u64 k = (u64)blockIdx.x * PCTX_WARPS + threadIdx.x / WARP_SIZE;
    if (k >= pctx_chunks(n, geo[PCTX_GEO_PLANE])) return;
    const PctxChunk c = pctx_chunk(n, geo[PCTX_GEO_PLANE], k);
    const PctxModel M = pctx_model(geo, ctx_g, ctx_a, ctx_b, ctx_c, context_map, cums, fill);
    const DeviceWarp w{threadIdx.x % WARP_SIZE};
    pctx_encode_chunk(w, M, q, c.start, c.m, c.lanes, c.seg, scratch + c.start, states + 32 * k,
                      n_words + k);
}

/// Chunk k: its lanes' states, then its words, little-endian, at out + offsets[k].
extern "C" __global__ void __launch_bounds__(PCTX_WARPS * WARP_SIZE)
    pctx_pack(const u32* __restrict__ states, const u16* __restrict__ scratch,
              const u32* __restrict__ n_words, const u64* __restrict__ offsets, u64 n, u64 plane,
              u8* __restrict__ out) {
    const u64 k = (u64)blockIdx.x * PCTX_WARPS + threadIdx.x / WARP_SIZE;
    if (k >= pctx_chunks(n, plane)) return;
    const DeviceWarp w{threadIdx.x % WARP_SIZE};
    const PctxChunk c = pctx_chunk(n, plane, k);
    const u16* words = scratch + c.start + (c.m - n_words[k]);
    pack_chunk(w, states + 32 * k, c.lanes, words, n_words[k], out + offsets[k]);
}

/// Decodes the n codes: chunk k's states at blob + state_off[k], its n_words[k] words at
/// blob + word_off[k] (byte offsets the Rust parser checked). status[k] = DecStatus.
extern "C" __global__ void __launch_bounds__(PCTX_WARPS * WARP_SIZE)
    pctx_decode(const u8* __restrict__ blob, const u64* __restrict__ state_off,
                const u64* __restrict__ word_off, const u32* __restrict__ n_words, u64 n,
                const u64* __restrict__ geo, const u32* __restrict__ ctx_g,
                const u32* __restrict__ ctx_a, const u32* __restrict__ ctx_b,
                const u32* __restrict__ ctx_c, const u8* __restrict__ context_map,
                const u16* __restrict__ cums, const u8* __restrict__ fill, u8* __restrict__ q,
                u32* __restrict__ status) {
    const u64 k = (u64)blockIdx.x * PCTX_WARPS + threadIdx.x / WARP_SIZE;
    if (k >= pctx_chunks(n, geo[PCTX_GEO_PLANE])) return;
    const PctxChunk c = pctx_chunk(n, geo[PCTX_GEO_PLANE], k);
    const PctxModel M = pctx_model(geo, ctx_g, ctx_a, ctx_b, ctx_c, context_map, cums, fill);
    const DeviceWarp w{threadIdx.x % WARP_SIZE};
    const u32 st = pctx_decode_chunk(w, M, blob + state_off[k], blob + word_off[k], n_words[k],
                                     c.start, c.m, c.lanes, c.seg, q);
    if (w.lane == 0) status[k] = st;
}
