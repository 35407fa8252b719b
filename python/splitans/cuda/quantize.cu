// splitans GPU path: the range scan, quantization and dequantization of a float32 feature
// (rust/src/quant/mod.rs; FORMAT.md 6.3, 6.4, 6.7). The per-element arithmetic is feature_common.cuh,
// IEEE binary32 with subnormals whatever the compiler's -ftz setting.
//
// Element i of the flat tensor is in channel (i / inner) % channels (channels = 1 per tensor).
#include "feature_common.cuh"

using namespace spn;

namespace {

constexpr u32 BLOCK = 256;

/// Flat index of the t-th element of channel c (t < n / channels), the tensor seen as
/// (outer, channels, inner).
__device__ __forceinline__ u64 channel_element(u64 t, u32 c, u32 channels, u64 inner) {
    if (channels == 1) return t;
    return (t / inner) * ((u64)channels * inner) + (u64)c * inner + t % inner;
}

__device__ __forceinline__ u32 warp_min(u32 v) {
    for (u32 o = WARP_SIZE / 2; o > 0; o /= 2) v = min(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

__device__ __forceinline__ u32 warp_max(u32 v) {
    for (u32 o = WARP_SIZE / 2; o > 0; o /= 2) v = max(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

__device__ __forceinline__ u64 warp_sum(u64 v) {
    for (u32 o = WARP_SIZE / 2; o > 0; o /= 2) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

template <typename Code>
__device__ __forceinline__ void quantize_impl(const float* __restrict__ x, u64 n, u32 channels,
                                              u64 inner, const float* __restrict__ scale,
                                              const int* __restrict__ zero_point, u32 bits,
                                              const float* __restrict__ ranges, u32 count_outside,
                                              Code* __restrict__ q, unsigned long long* outside,
                                              u32* nonfinite) {
    const float levels = levels_f32(bits);
    u64 out_count = 0;
    u32 bad = 0;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = x[i];
        const u32 c = channel_of(i, channels, inner);
        q[i] = (Code)quantize_one(v, scale[c], zero_point[c], levels);
        bad |= f32_is_finite(v) ? 0u : 1u;
        if (count_outside && outside_range(v, ranges[2 * c], ranges[2 * c + 1])) ++out_count;
    }
    out_count = warp_sum(out_count);
    bad = __any_sync(FULL_MASK, bad != 0) ? 1u : 0u;
    if (threadIdx.x % WARP_SIZE == 0) {
        if (out_count != 0) atomicAdd(outside, (unsigned long long)out_count);
        if (bad) atomicOr(nonfinite, 1u);
    }
}

template <typename Code>
__device__ __forceinline__ void dequantize_impl(const Code* __restrict__ q, u64 n, u32 channels,
                                                u64 inner, const float* __restrict__ scale,
                                                const int* __restrict__ zero_point, u32 bits,
                                                u32 out_f64, void* __restrict__ out, u32* bad_code) {
    const u32 levels = (1u << bits) - 1u;
    u32 bad = 0;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const u32 code = q[i];
        const u32 c = channel_of(i, channels, inner);
        bad |= code > levels ? 1u : 0u;
        const float v = dequantize_one(code, zero_point[c], scale[c]);
        if (out_f64) {
            static_cast<double*>(out)[i] = f64_from_f32(v);
        } else {
            static_cast<float*>(out)[i] = v;
        }
    }
    if (__any_sync(FULL_MASK, bad != 0) && threadIdx.x % WARP_SIZE == 0) atomicOr(bad_code, 1u);
}

}  // namespace

/// Per channel, the least and the greatest finite value as order keys (f32_order_key):
/// keys[2c] = atomicMin, keys[2c + 1] = atomicMax (set them to KEY_NONE_MIN / KEY_NONE_MAX
/// first: a channel without finite values keeps them). *nonfinite |= any NaN or infinity.
/// Grid (x, y): blocks along y take channels y, y + grid.y, ...; along x they split a channel.
extern "C" __global__ void __launch_bounds__(BLOCK)
    feature_minmax(const float* __restrict__ x, u64 n, u32 channels, u64 inner, u32* keys,
                   u32* nonfinite) {
    __shared__ u32 s_lo[BLOCK / WARP_SIZE], s_hi[BLOCK / WARP_SIZE], s_bad[BLOCK / WARP_SIZE];
    const u64 per_channel = n / channels;
    const u32 warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
    for (u32 c = blockIdx.y; c < channels; c += gridDim.y) {
        u32 lo = KEY_NONE_MIN, hi = KEY_NONE_MAX, bad = 0;
        for (u64 t = (u64)blockIdx.x * blockDim.x + threadIdx.x; t < per_channel;
             t += (u64)gridDim.x * blockDim.x) {
            const float v = x[channel_element(t, c, channels, inner)];
            if (f32_is_finite(v)) {
                const u32 k = f32_order_key(v);
                lo = min(lo, k);
                hi = max(hi, k);
            } else {
                bad = 1;
            }
        }
        lo = warp_min(lo);
        hi = warp_max(hi);
        bad = __any_sync(FULL_MASK, bad != 0) ? 1u : 0u;
        if (lane == 0) {
            s_lo[warp] = lo;
            s_hi[warp] = hi;
            s_bad[warp] = bad;
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (u32 w = 1; w < BLOCK / WARP_SIZE; ++w) {
                lo = min(lo, s_lo[w]);
                hi = max(hi, s_hi[w]);
                bad |= s_bad[w];
            }
            if (lo != KEY_NONE_MIN) atomicMin(&keys[2 * c], lo);
            if (hi != KEY_NONE_MAX) atomicMax(&keys[2 * c + 1], hi);
            if (bad) atomicOr(nonfinite, 1u);
        }
        __syncthreads();
    }
}

/// q[i] = quantize_one(x[i]) with its channel's scale and zero point (feature_common.cuh).
/// With count_outside, *outside += elements with x < ranges[2c] or x > ranges[2c + 1]
/// (quant.rs count_outside). *nonfinite |= any NaN or infinity.
extern "C" __global__ void __launch_bounds__(BLOCK)
    quantize_u8(const float* __restrict__ x, u64 n, u32 channels, u64 inner,
                const float* __restrict__ scale, const int* __restrict__ zero_point, u32 bits,
                const float* __restrict__ ranges, u32 count_outside, u8* __restrict__ q,
                unsigned long long* outside, u32* nonfinite) {
    quantize_impl<u8>(x, n, channels, inner, scale, zero_point, bits, ranges, count_outside, q,
                      outside, nonfinite);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    quantize_u16(const float* __restrict__ x, u64 n, u32 channels, u64 inner,
                 const float* __restrict__ scale, const int* __restrict__ zero_point, u32 bits,
                 const float* __restrict__ ranges, u32 count_outside, u16* __restrict__ q,
                 unsigned long long* outside, u32* nonfinite) {
    quantize_impl<u16>(x, n, channels, inner, scale, zero_point, bits, ranges, count_outside, q,
                       outside, nonfinite);
}

/// out[i] = (q[i] - zero_point) * scale of its channel, as float32 or (out_f64) float64.
/// *bad_code |= any code above 2^bits - 1 (FORMAT.md 6.6 step 4).
extern "C" __global__ void __launch_bounds__(BLOCK)
    dequantize_u8(const u8* __restrict__ q, u64 n, u32 channels, u64 inner,
                  const float* __restrict__ scale, const int* __restrict__ zero_point, u32 bits,
                  u32 out_f64, void* __restrict__ out, u32* bad_code) {
    dequantize_impl<u8>(q, n, channels, inner, scale, zero_point, bits, out_f64, out, bad_code);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    dequantize_u16(const u16* __restrict__ q, u64 n, u32 channels, u64 inner,
                   const float* __restrict__ scale, const int* __restrict__ zero_point, u32 bits,
                   u32 out_f64, void* __restrict__ out, u32* bad_code) {
    dequantize_impl<u16>(q, n, channels, inner, scale, zero_point, bits, out_f64, out, bad_code);
}

/// The input conversions of FORMAT.md 6.7.1, bit-exact with numpy's astype(np.float32):
/// float64 rounded to nearest even (subnormal results kept), float16 exactly.
extern "C" __global__ void __launch_bounds__(BLOCK)
    f64_to_f32(const double* __restrict__ x, u64 n, float* __restrict__ out) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = f32_from_f64(x[i]);
}

extern "C" __global__ void __launch_bounds__(BLOCK)
    f16_to_f32(const u16* __restrict__ x, u64 n, float* __restrict__ out) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) out[i] = f32_from_f16_bits(x[i]);
}
