// splitans GPU path: rANS encoding of one stream (FORMAT.md 4.4, 5.2 step 7), one warp per chunk.
//
// The host plans the stream (gpu.rs: table, precision, chunk size, lanes, from the histogram)
// and then runs, on the stream's symbols:
//   rans_enc_table  the per-symbol encoder constants, from the quantized table;
//   rans_encode_*   one warp per chunk (encode_chunk in rans_common.cuh): final states, the
//                   chunk's words in decoder order at the end of its region of `scratch`, and
//                   its word count;
//   rans_pack       with the chunk offsets (an exclusive prefix sum of 4 * lanes + 2 * W_k),
//                   every chunk's states and words, little-endian, into one byte buffer: the
//                   chunks of the stream body back to back.
// Only the word counts (for the directory and the offsets) and the packed bytes go to the host.
#include "rans_common.cuh"

using namespace spn;

namespace {

/// Chunks (warps) per block.
constexpr u32 ENC_WARPS = 4;

template <typename Sym>
__device__ __forceinline__ void encode_impl(const Sym* __restrict__ syms, u64 n, u32 chunk_log2,
                                            u32 lanes, u32 p, const EncSym* __restrict__ g_table,
                                            u64 n_chunks, u32* __restrict__ states,
                                            u16* __restrict__ scratch, u32* __restrict__ n_words) {
    __shared__ Sym tiles[ENC_WARPS][ENC_TILE];
    const EncSym* table = g_table;
    if constexpr (sizeof(Sym) == 1) {
        // 256 entries, 4 KB: the whole table in shared memory.
        __shared__ EncSym s_table[256];
        for (u32 i = threadIdx.x; i < 256; i += blockDim.x) s_table[i] = g_table[i];
        __syncthreads();
        table = s_table;
    }
    const u32 warp = threadIdx.x / WARP_SIZE;
    const u64 k = (u64)blockIdx.x * ENC_WARPS + warp;
    if (k >= n_chunks) return;
    const u64 start = k << chunk_log2;
    const DeviceWarp w{threadIdx.x % WARP_SIZE};
    encode_chunk(w, syms + start, chunk_symbols(n, chunk_log2, k), lanes, p, table, tiles[warp],
                 scratch + start, states + k * lanes, n_words + k);
}

}  // namespace

/// table[symbols[i]] = enc_symbol(freqs[i], cums[i]) for the m entries of the quantized table
/// (the table, 16 bytes per symbol of the alphabet, is zeroed by the caller).
extern "C" __global__ void rans_enc_table(const u32* __restrict__ symbols,
                                          const u32* __restrict__ freqs,
                                          const u32* __restrict__ cums, u32 m,
                                          EncSym* __restrict__ table) {
    const u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < m) table[symbols[i]] = enc_symbol(freqs[i], cums[i]);
}

/// Encodes the n symbols in chunks of 2^chunk_log2 with `lanes` lanes at precision p.
/// states: n_chunks * lanes; scratch: n words (chunk k uses [k << chunk_log2, + its length));
/// n_words: n_chunks. Block: ENC_WARPS warps; grid: ceil(n_chunks / ENC_WARPS).
extern "C" __global__ void __launch_bounds__(ENC_WARPS * WARP_SIZE)
    rans_encode_u8(const u8* __restrict__ syms, u64 n, u32 chunk_log2, u32 lanes, u32 p,
                   const EncSym* __restrict__ table, u64 n_chunks, u32* __restrict__ states,
                   u16* __restrict__ scratch, u32* __restrict__ n_words) {
    encode_impl<u8>(syms, n, chunk_log2, lanes, p, table, n_chunks, states, scratch, n_words);
}

extern "C" __global__ void __launch_bounds__(ENC_WARPS * WARP_SIZE)
    rans_encode_u16(const u16* __restrict__ syms, u64 n, u32 chunk_log2, u32 lanes, u32 p,
                    const EncSym* __restrict__ table, u64 n_chunks, u32* __restrict__ states,
                    u16* __restrict__ scratch, u32* __restrict__ n_words) {
    encode_impl<u16>(syms, n, chunk_log2, lanes, p, table, n_chunks, states, scratch, n_words);
}

/// Writes chunk k (its states, then its words) at out + offsets[k]. One warp per chunk,
/// ENC_WARPS warps per block.
extern "C" __global__ void __launch_bounds__(ENC_WARPS * WARP_SIZE)
    rans_pack(const u32* __restrict__ states, const u16* __restrict__ scratch,
              const u32* __restrict__ n_words, const u64* __restrict__ offsets, u64 n,
              u32 chunk_log2, u32 lanes, u64 n_chunks, u8* __restrict__ out) {
    const u64 k = (u64)blockIdx.x * ENC_WARPS + threadIdx.x / WARP_SIZE;
    if (k >= n_chunks) return;
    const u32 m = chunk_symbols(n, chunk_log2, k);
    const u32 w_k = n_words[k];
    const u16* words = scratch + (k << chunk_log2) + (m - w_k);
    pack_chunk(DeviceWarp{threadIdx.x % WARP_SIZE}, states + k * lanes, lanes, words, w_k,
               out + offsets[k]);
}
