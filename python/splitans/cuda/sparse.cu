// splitans GPU path: the CSR form of the codes (rust/src/layout/sparse.rs; FORMAT.md 6.4, 6.6 step 5).
//
// Encoding: csr_flags marks the elements that are not their channel's zero point; the host takes
// an inclusive prefix sum of the flags (cupy.cumsum), whose last value is nnz; then csr_compact
// writes each nonzero's column and value at its rank, csr_row_counts the count of every row (a
// difference of two prefix values), and csr_positions the flat index of every nonzero (for
// reshape="search", which re-derives the columns for each candidate row count).
// Decoding: csr_fill_zero_points, then csr_scatter (one warp per row) with the checks of 6.6.5.
#include "feature_common.cuh"

using namespace spn;

namespace {

constexpr u32 BLOCK = 256;
constexpr u32 ROW_WARPS = BLOCK / WARP_SIZE;

template <typename Code>
__device__ __forceinline__ void flags_impl(const Code* __restrict__ q, u64 n, u32 channels,
                                           u64 inner, const int* __restrict__ zero_point,
                                           u32* __restrict__ flags) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        flags[i] = is_nonzero(q[i], zero_point[channel_of(i, channels, inner)]) ? 1u : 0u;
}

template <typename Code>
__device__ __forceinline__ void compact_impl(const Code* __restrict__ q, u64 n,
                                             const u32* __restrict__ flags,
                                             const u64* __restrict__ prefix, u64 cols,
                                             u16* __restrict__ col_idx, Code* __restrict__ values) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        if (flags[i]) {
            const u64 k = prefix[i] - 1;
            col_idx[k] = (u16)column_of(i, cols);
            values[k] = q[i];
        }
    }
}

template <typename Code>
__device__ __forceinline__ void fill_impl(Code* __restrict__ out, u64 n, u32 channels, u64 inner,
                                          const int* __restrict__ zero_point) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = (Code)zero_point[channel_of(i, channels, inner)];
}

template <typename Code>
__device__ __forceinline__ void scatter_impl(const u16* __restrict__ counts,
                                             const u64* __restrict__ row_start, u64 rows,
                                             u64 cols, const u16* __restrict__ col_idx,
                                             const Code* __restrict__ values,
                                             Code* __restrict__ out, u32* __restrict__ bad) {
    const u32 lane = threadIdx.x % WARP_SIZE;
    const u64 warps = (u64)gridDim.x * ROW_WARPS;
    u32 fail = 0;
    for (u64 r = (u64)blockIdx.x * ROW_WARPS + threadIdx.x / WARP_SIZE; r < rows; r += warps) {
        const u64 start = row_start[r];
        const u32 count = counts[r];
        for (u32 j = lane; j < count; j += WARP_SIZE) {
            const u32 col = col_idx[start + j];
            const u32 prev = j > 0 ? col_idx[start + j - 1] : 0u;
            if (csr_column_ok(j == 0, prev, col, cols)) {
                out[r * cols + col] = values[start + j];
            } else {
                fail = 1;
            }
        }
    }
    if (__any_sync(FULL_MASK, fail != 0) && lane == 0) atomicOr(bad, 1u);
}

}  // namespace

/// flags[i] = 1 if code i is not its channel's zero point, else 0.
extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_flags_u8(const u8* __restrict__ q, u64 n, u32 channels, u64 inner,
                 const int* __restrict__ zero_point, u32* __restrict__ flags) {
    flags_impl<u8>(q, n, channels, inner, zero_point, flags);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_flags_u16(const u16* __restrict__ q, u64 n, u32 channels, u64 inner,
                  const int* __restrict__ zero_point, u32* __restrict__ flags) {
    flags_impl<u16>(q, n, channels, inner, zero_point, flags);
}

/// For every flagged element i, with k = prefix[i] - 1 (prefix: inclusive sum of the flags):
/// col_idx[k] = i % cols, values[k] = q[i]. The nonzeros keep their flat order.
extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_compact_u8(const u8* __restrict__ q, u64 n, const u32* __restrict__ flags,
                   const u64* __restrict__ prefix, u64 cols, u16* __restrict__ col_idx,
                   u8* __restrict__ values) {
    compact_impl<u8>(q, n, flags, prefix, cols, col_idx, values);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_compact_u16(const u16* __restrict__ q, u64 n, const u32* __restrict__ flags,
                    const u64* __restrict__ prefix, u64 cols, u16* __restrict__ col_idx,
                    u16* __restrict__ values) {
    compact_impl<u16>(q, n, flags, prefix, cols, col_idx, values);
}

/// positions[prefix[i] - 1] = i for every flagged element i.
extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_positions(u64 n, const u32* __restrict__ flags, const u64* __restrict__ prefix,
                  u64* __restrict__ positions) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        if (flags[i]) positions[prefix[i] - 1] = i;
}

/// counts[r] = nonzeros among elements [r * cols, (r + 1) * cols) (at most cols <= 65535).
extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_row_counts(const u64* __restrict__ prefix, u64 rows, u64 cols, u16* __restrict__ counts) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 r = (u64)blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += stride) {
        const u64 before = r == 0 ? 0 : prefix[r * cols - 1];
        counts[r] = (u16)(prefix[(r + 1) * cols - 1] - before);
    }
}

/// out[i] = its channel's zero point.
extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_fill_zero_points_u8(u8* __restrict__ out, u64 n, u32 channels, u64 inner,
                            const int* __restrict__ zero_point) {
    fill_impl<u8>(out, n, channels, inner, zero_point);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_fill_zero_points_u16(u16* __restrict__ out, u64 n, u32 channels, u64 inner,
                             const int* __restrict__ zero_point) {
    fill_impl<u16>(out, n, channels, inner, zero_point);
}

/// Row r's entries are [row_start[r], row_start[r] + counts[r]) of col_idx and values (row_start:
/// exclusive prefix sum of counts). Writes out[r * cols + column] = value; a column not above the
/// previous one of its row, or not below cols, sets *bad (sparse.rs scatter). One warp per row.
extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_scatter_u8(const u16* __restrict__ counts, const u64* __restrict__ row_start, u64 rows,
                   u64 cols, const u16* __restrict__ col_idx, const u8* __restrict__ values,
                   u8* __restrict__ out, u32* __restrict__ bad) {
    scatter_impl<u8>(counts, row_start, rows, cols, col_idx, values, out, bad);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    csr_scatter_u16(const u16* __restrict__ counts, const u64* __restrict__ row_start, u64 rows,
                    u64 cols, const u16* __restrict__ col_idx, const u16* __restrict__ values,
                    u16* __restrict__ out, u32* __restrict__ bad) {
    scatter_impl<u16>(counts, row_start, rows, cols, col_idx, values, out, bad);
}
