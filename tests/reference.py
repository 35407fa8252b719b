"""The quantizer of FORMAT.md 6.7 written again from the document alone, in numpy float32, so
that properties can check the codec against parameters it did not compute itself; and the
format's varint, which the tests' independent readers of containers and codecs share."""

from typing import Optional, Tuple

import numpy as np

F32 = np.float32
F32_MAX = F32(np.finfo(np.float32).max)
TINY = np.uint32(1).view(np.float32)  # the smallest subnormal


def from_range(lo, hi, bits: int) -> Tuple[np.float32, int, bool]:
    """(scale, zero_point, wide) of FORMAT.md 6.7.2 for the range [lo, hi] (float32 values);
    `wide` says the bound there is a whole step, not half (the last step of the rule moved z
    or set s, or a 1-bit range wider than f32::MAX)."""
    levels = F32((1 << bits) - 1)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        lo = min(F32(lo), F32(0))
        hi = max(F32(hi), F32(0))
        d = F32(hi - lo)
        s = F32(d / levels) if np.isfinite(d) else F32(F32(hi / levels) - F32(lo / levels))
        wide = False
        if np.isinf(s):
            s, wide = F32_MAX, True
        if s == 0 and d > 0:
            s = TINY
        if np.isnan(s) or s <= 0:
            return F32(0), 0, False
        for _ in range(4):
            if not np.isfinite(d) or F32(levels * s) >= d:
                break
            s = np.nextafter(s, F32(np.inf))

        def zp(s, lo_z=F32(0), hi_z=levels):
            return np.clip(np.rint(F32(-lo / s)), lo_z, hi_z).astype(np.float32)

        def ends_finite(s, z):
            return bool(np.isfinite(F32((levels - z) * s)) and np.isfinite(F32(z * s)))

        z = zp(s)
        for _ in range(4):
            if ends_finite(s, z):
                break
            s = np.nextafter(s, F32(-np.inf))
            z = zp(s)
        if not ends_finite(s, z):
            wide = True
            m = min(F32(np.floor(F32(F32_MAX / s))), levels)
            while m > 0 and not np.isfinite(F32(m * s)):
                m = F32(m - 1)
            while m < levels and np.isfinite(F32(F32(m + 1) * s)):
                m = F32(m + 1)
            if 2 * m < levels:
                m = F32(1 << (bits - 1))
                s = F32(F32_MAX / m)
            z = zp(s, F32(levels - m), m)
    return F32(s), int(z), wide


def min_max(x: np.ndarray) -> Tuple[np.float32, np.float32]:
    """The least and greatest finite float32 values, (0, 0) when there are none."""
    f = x[np.isfinite(x)]
    return (F32(f.min()), F32(f.max())) if f.size else (F32(0), F32(0))


def codes(x: np.ndarray, s: np.float32, z: int, bits: int) -> np.ndarray:
    """FORMAT.md 6.7.3 for one channel: q = clamp(rhe(f32(x / s)) + z, 0, levels)."""
    x = x.astype(np.float32)
    if s == 0:
        return np.full(x.shape, z, np.int64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = (x / s).astype(np.float32)
    q = np.clip(np.rint(t.astype(np.float64)) + z, 0, (1 << bits) - 1)
    q[np.isnan(x)] = z
    return q.astype(np.int64)


def dequantize(q: np.ndarray, s: np.float32, z: int) -> np.ndarray:
    """FORMAT.md 6.4: f32(q - z) * s in float32."""
    with np.errstate(over="ignore"):
        return ((q - z).astype(np.float32) * F32(s)).astype(np.float32)


def per_channel(x: np.ndarray, axis: Optional[int]):
    """(channel index of each element, channel count) for FORMAT.md 6.3."""
    if axis is None:
        return np.zeros(x.shape, np.int64), 1
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return np.broadcast_to(np.arange(x.shape[axis]).reshape(shape), x.shape), x.shape[axis]


def expected(x32: np.ndarray, bits: int, axis: Optional[int]):
    """The decoded float32 values, and per element the scale and whether its bound is a whole
    step, for min/max parameters (no clip, no calibration)."""
    ch, n = per_channel(x32, axis)
    out = np.zeros(x32.shape, np.float32)
    scale = np.zeros(x32.shape, np.float64)
    wide = np.zeros(x32.shape, bool)
    params = []
    for c in range(n):
        sel = ch == c
        s, z, w = from_range(*min_max(x32[sel]), bits)
        params.append((s, z))
        out[sel] = dequantize(codes(x32[sel], s, z, bits), s, z)
        scale[sel], wide[sel] = float(s), w
    return out, scale, wide, params


def to_float16(v: np.ndarray) -> np.ndarray:
    """FORMAT.md 6.1: float16, rounded to nearest even after clamping to ±65504."""
    return np.clip(v, -65504, 65504).astype(np.float16)


def varint(data: bytes, pos: int) -> Tuple[int, int]:
    """One LEB128 varint at `pos` (FORMAT.md 9 and 10): its value and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
