// splitans GPU path: symbol histograms (FORMAT.md 5.2 step 2), privatized in shared memory.
//
// Each block counts into its own shared-memory table of u32 counters and adds it to the global
// u64 counts once at the end. 8-bit symbols need 256 counters. 16-bit symbols need 65536 (256 KB,
// more than a block's shared memory), so the bins are split into 2^(16 - part_bits) parts of
// 2^part_bits counters: block (x, y) counts only the symbols whose value >> part_bits == y
// (grid.y = number of parts; the host picks part_bits from the device's shared memory). Lanes
// of a warp that hit the same bin are combined with __match_any_sync first, so a dominant
// symbol (the zero point of a ReLU feature) costs one shared atomic per warp, not 32.
//
// A block's u32 counters cannot overflow: the host launches at least n / 2^31 blocks along x.
#include "rans_common.cuh"

using namespace spn;

namespace {

constexpr u32 HIST_BLOCK = 512;
constexpr u32 NO_BIN = 0xffffffffu;

template <typename Sym>
__device__ __forceinline__ void histogram_impl(const Sym* __restrict__ syms, u64 n, u32 part_bits,
                                               unsigned long long* __restrict__ counts) {
    extern __shared__ u32 bins[];
    const u32 n_bins = 1u << part_bits;
    for (u32 i = threadIdx.x; i < n_bins; i += blockDim.x) bins[i] = 0;
    __syncthreads();
    const u32 part = blockIdx.y;
    const u32 lane = threadIdx.x % WARP_SIZE;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    // `base` is the same for the whole warp, so every lane runs every iteration and
    // __match_any_sync sees the full warp.
    for (u64 base = (u64)blockIdx.x * blockDim.x + (threadIdx.x - lane); base < n; base += stride) {
        const u64 i = base + lane;
        u32 bin = NO_BIN;
        if (i < n) {
            const u32 v = syms[i];
            if ((v >> part_bits) == part) bin = v & (n_bins - 1u);
        }
        const u32 peers = __match_any_sync(FULL_MASK, bin);
        if (bin != NO_BIN && lane == (u32)(__ffs(peers) - 1)) atomicAdd(&bins[bin], (u32)__popc(peers));
    }
    __syncthreads();
    const u64 first = (u64)part << part_bits;
    for (u32 i = threadIdx.x; i < n_bins; i += blockDim.x) {
        if (bins[i] != 0) atomicAdd(&counts[first + i], (unsigned long long)bins[i]);
    }
}

}  // namespace

/// counts[s] += occurrences of s among syms[0, n) (256 counts; dynamic shared memory 1 KB,
/// part_bits 8, grid.y 1). Block: HIST_BLOCK threads.
extern "C" __global__ void __launch_bounds__(HIST_BLOCK) histogram_u8(const u8* __restrict__ syms, u64 n, u32 part_bits,
                                        unsigned long long* __restrict__ counts) {
    histogram_impl<u8>(syms, n, part_bits, counts);
}

/// counts[s] += occurrences of s among syms[0, n) (65536 counts; dynamic shared memory
/// 4 << part_bits bytes, grid.y = 2^(16 - part_bits)).
extern "C" __global__ void __launch_bounds__(HIST_BLOCK) histogram_u16(const u16* __restrict__ syms, u64 n, u32 part_bits,
                                         unsigned long long* __restrict__ counts) {
    histogram_impl<u16>(syms, n, part_bits, counts);
}
