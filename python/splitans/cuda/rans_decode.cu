// splitans GPU path: rANS decoding of one stream (FORMAT.md 4.2, 4.3), one warp per chunk.
//
// The host validates the container and gets every offset from gpu.rs (the Rust parser), then:
//   rans_dec_table  the slot table of the stream's frequency table (one thread per slot);
//   rans_decode_*   one warp per chunk (decode_chunk in rans_common.cuh): the chunk's symbols
//                   and a status per chunk (DecStatus; 0 = passed the end-of-chunk checks).
// The decode table goes to shared memory when the host says it fits (p <= 12: 24 KB), else it is read
// from global memory (through L1/L2).
#include "rans_common.cuh"

using namespace spn;

namespace {

/// Chunks (warps) per block.
constexpr u32 DEC_WARPS = 4;

template <typename Sym>
__device__ __forceinline__ void decode_impl(const u8* __restrict__ blob,
                                            const u64* __restrict__ state_off,
                                            const u64* __restrict__ word_off,
                                            const u32* __restrict__ n_words, u64 n,
                                            u32 chunk_log2, u32 lanes, u32 p,
                                            const u32* __restrict__ g_fb,
                                            const u16* __restrict__ g_sym, u32 table_in_shared,
                                            u64 n_chunks, Sym* __restrict__ out,
                                            u32* __restrict__ status) {
    __shared__ u16 rings[DEC_WARPS][DEC_RING];
    extern __shared__ u32 s_table[];  // table_in_shared: 2^p entries, then 2^p u16 symbols
    const u32* fb = g_fb;
    const u16* dsym = g_sym;
    if (table_in_shared) {
        const u32 size = 1u << p;
        u16* s_sym = reinterpret_cast<u16*>(s_table + size);
        for (u32 i = threadIdx.x; i < size; i += blockDim.x) {
            s_table[i] = g_fb[i];
            s_sym[i] = g_sym[i];
        }
        __syncthreads();
        fb = s_table;
        dsym = s_sym;
    }
    const u32 warp = threadIdx.x / WARP_SIZE;
    const u64 k = (u64)blockIdx.x * DEC_WARPS + warp;
    if (k >= n_chunks) return;
    const DeviceWarp w{threadIdx.x % WARP_SIZE};
    const u32 st = decode_chunk(w, blob + state_off[k], blob + word_off[k], n_words[k],
                                chunk_symbols(n, chunk_log2, k), lanes, p, fb, dsym, rings[warp],
                                out + (k << chunk_log2));
    if (w.lane == 0) status[k] = st;
}

}  // namespace

/// fb[slot] = dec_table_entry and dsym[slot] = symbol of the table entry holding the slot, for
/// the 2^p slots (m entries, cums ascending from 0).
extern "C" __global__ void rans_dec_table(const u32* __restrict__ symbols,
                                          const u32* __restrict__ freqs,
                                          const u32* __restrict__ cums, u32 m, u32 p,
                                          u32* __restrict__ fb, u16* __restrict__ dsym) {
    const u32 slot = blockIdx.x * blockDim.x + threadIdx.x;
    if (slot >= (1u << p)) return;
    const u32 i = dec_find_entry(cums, m, slot);
    fb[slot] = dec_table_entry(freqs[i], cums[i], slot);
    dsym[slot] = (u16)symbols[i];
}

/// Decodes the n symbols of a stream in chunks of 2^chunk_log2 with `lanes` lanes: chunk k's
/// states at blob + state_off[k], its n_words[k] words at blob + word_off[k] (byte offsets into
/// the container). status[k] = DecStatus of chunk k. Block: DEC_WARPS warps; grid:
/// ceil(n_chunks / DEC_WARPS); dynamic shared memory 6 << p bytes when table_in_shared.
extern "C" __global__ void __launch_bounds__(DEC_WARPS * WARP_SIZE)
    rans_decode_u8(const u8* __restrict__ blob, const u64* __restrict__ state_off,
                   const u64* __restrict__ word_off, const u32* __restrict__ n_words, u64 n,
                   u32 chunk_log2, u32 lanes, u32 p, const u32* __restrict__ fb,
                   const u16* __restrict__ dsym, u32 table_in_shared, u64 n_chunks,
                   u8* __restrict__ out, u32* __restrict__ status) {
    decode_impl<u8>(blob, state_off, word_off, n_words, n, chunk_log2, lanes, p, fb, dsym,
                    table_in_shared, n_chunks, out, status);
}

extern "C" __global__ void __launch_bounds__(DEC_WARPS * WARP_SIZE)
    rans_decode_u16(const u8* __restrict__ blob, const u64* __restrict__ state_off,
                    const u64* __restrict__ word_off, const u32* __restrict__ n_words, u64 n,
                    u32 chunk_log2, u32 lanes, u32 p, const u32* __restrict__ fb,
                    const u16* __restrict__ dsym, u32 table_in_shared, u64 n_chunks,
                    u16* __restrict__ out, u32* __restrict__ status) {
    decode_impl<u16>(blob, state_off, word_off, n_words, n, chunk_log2, lanes, p, fb, dsym,
                     table_in_shared, n_chunks, out, status);
}
