// splitans GPU path: the element-wise arithmetic of the feature pipeline (rust/src/quant/mod.rs,
// rust/src/layout/sparse.rs), for the kernels and for host C++ (tests/cuda_host/driver.cpp).
//
// Bit-exactness with the Rust f32 code needs IEEE single precision with subnormals and no
// contraction. CuPy compiles every kernel with -ftz=true (appended after the caller's options),
// which turns plain float `/`, `+`, `*` and comparisons into their flush-to-zero forms. So on
// the device every float operation that decides a code is inline PTX without `.ftz`
// (div.rn.f32, add.rn.f32, mul.rn.f32, setp.f32, cvt), which the compiler flags cannot change.
#pragma once

#include "rans_common.cuh"

#if !defined(__CUDA_ARCH__)
#include <cstring>
#endif

namespace spn {

SPN_HD u32 f32_bits(float v) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(v);
#else
    u32 b;
    std::memcpy(&b, &v, 4);
    return b;
#endif
}

SPN_HD float f32_from_bits(u32 b) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(b);
#else
    float v;
    std::memcpy(&v, &b, 4);
    return v;
#endif
}

/// a / b, a + b, a * b rounded to nearest even, subnormals kept.
SPN_HD float f32_div(float a, float b) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("div.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return a / b;
#endif
}

SPN_HD float f32_add(float a, float b) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return a + b;
#endif
}

SPN_HD float f32_mul(float a, float b) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
#else
    return a * b;
#endif
}

/// IEEE a < b and a > b (false when either is NaN), subnormals compared as themselves.
SPN_HD bool f32_lt(float a, float b) {
#if defined(__CUDA_ARCH__)
    u32 r;
    asm("{\n\t.reg .pred p;\n\tsetp.lt.f32 p, %1, %2;\n\tselp.u32 %0, 1, 0, p;\n\t}"
        : "=r"(r)
        : "f"(a), "f"(b));
    return r != 0;
#else
    return a < b;
#endif
}

SPN_HD bool f32_gt(float a, float b) { return f32_lt(b, a); }

/// An int (|v| < 2^24 here, so exact) as a float.
SPN_HD float f32_from_i32(int v) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("cvt.rn.f32.s32 %0, %1;" : "=f"(r) : "r"(v));
    return r;
#else
    return (float)v;
#endif
}

/// Truncation toward zero to an int (|v| < 2^31).
SPN_HD int f32_to_i32_rz(float v) {
#if defined(__CUDA_ARCH__)
    int r;
    asm("cvt.rzi.s32.f32 %0, %1;" : "=r"(r) : "f"(v));
    return r;
#else
    return (int)v;
#endif
}

/// f32 to f64 (exact, subnormals included) and f64 to f32 (round to nearest even, subnormal
/// results kept), as numpy's astype does.
SPN_HD double f64_from_f32(float v) {
#if defined(__CUDA_ARCH__)
    double r;
    asm("cvt.f64.f32 %0, %1;" : "=d"(r) : "f"(v));
    return r;
#else
    return (double)v;
#endif
}

SPN_HD float f32_from_f64(double v) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(r) : "d"(v));
    return r;
#else
    return (float)v;
#endif
}

/// A float16 (its bits) as a float32, exactly.
SPN_HD float f32_from_f16_bits(u16 h) {
#if defined(__CUDA_ARCH__)
    float r;
    asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
    return r;
#else
    const u32 sign = (u32)(h & 0x8000u) << 16;
    u32 exp = (h >> 10) & 0x1fu;
    u32 man = h & 0x3ffu;
    u32 bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {  // subnormal half: normalize
        exp = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            --exp;
        }
        bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
    return f32_from_bits(bits);
#endif
}

SPN_HD bool f32_is_nan(float v) { return (f32_bits(v) & 0x7fffffffu) > 0x7f800000u; }
SPN_HD bool f32_is_finite(float v) { return (f32_bits(v) & 0x7f800000u) != 0x7f800000u; }
SPN_HD bool f32_is_zero(float v) { return (f32_bits(v) & 0x7fffffffu) == 0; }

/// An order-preserving map of floats (not NaN) to u32: a < b exactly when key(a) < key(b), with
/// -0.0 just below +0.0. Minimum and maximum become integer atomics, which no float mode alters.
/// Finite keys lie in [0x00800000, 0xff7fffff], so 0xffffffff / 0 mean "no value yet".
SPN_HD u32 f32_order_key(float v) {
    const u32 b = f32_bits(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

SPN_HD float f32_from_order_key(u32 k) {
    return f32_from_bits((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

constexpr u32 KEY_NONE_MIN = 0xffffffffu;
constexpr u32 KEY_NONE_MAX = 0u;

/// Channel of flat element i: (i / inner) % channels, 0 for per-tensor parameters.
SPN_HD u32 channel_of(u64 i, u32 channels, u64 inner) {
    if (channels == 1) return 0;
    if (i <= 0xffffffffull && inner <= 0xffffffffull) return ((u32)i / (u32)inner) % channels;
    return (u32)((i / inner) % channels);
}

/// 2^bits - 1 as a float (exact).
SPN_HD float levels_f32(u32 bits) { return f32_from_i32((int)((1u << bits) - 1u)); }

/// The code of one element (quant.rs `quantize`):
/// q = clamp(round_half_even(v / scale) + zero_point, 0, levels), rounding by the 1.5 * 2^23
/// trick (two IEEE additions); NaN and a zero scale give the zero point.
SPN_HD u32 quantize_one(float v, float scale, int zero_point, float levels) {
    if (f32_is_zero(scale) || f32_is_nan(v)) return (u32)zero_point;
    const float magic = 12582912.0f;
    const float t = f32_div(v, scale);
    const float r = f32_add(f32_add(t, magic), -magic);
    float c = f32_add(r, f32_from_i32(zero_point));
    // f32::clamp(c, 0, levels): `if c < 0 { 0 }`, then `if c > levels { levels }`.
    if (f32_lt(c, 0.0f)) c = 0.0f;
    if (f32_gt(c, levels)) c = levels;
    // c is a whole number in [0, levels] (or -0.0): truncation is exact.
    return (u32)f32_to_i32_rz(c);
}

/// quant.rs `count_outside`: v < lo or v > hi (NaN never, infinities always).
SPN_HD bool outside_range(float v, float lo, float hi) { return f32_lt(v, lo) || f32_gt(v, hi); }

/// The value of one code (quant.rs `dequantize`): (q - zero_point) as f32 * scale.
SPN_HD float dequantize_one(u32 q, int zero_point, float scale) {
    return f32_mul(f32_from_i32((int)q - zero_point), scale);
}

// ---------------------------------------------------------------------------------------------
// CSR of the codes viewed as rows x cols (sparse.rs): an element is a nonzero when it differs
// from its channel's zero point; nonzeros are listed in flat order.

SPN_HD bool is_nonzero(u32 code, int zero_point) { return (int)code != zero_point; }

/// Column of flat element i.
SPN_HD u32 column_of(u64 i, u64 cols) { return (u32)(i % cols); }

/// sparse.rs `scatter` check for the k-th entry of a row: its column must be below `cols` and
/// above the previous entry's (`prev`, ignored for the first entry).
SPN_HD bool csr_column_ok(bool first, u32 prev, u32 col, u64 cols) {
    return (u64)col < cols && (first || col > prev);
}

}  // namespace spn
