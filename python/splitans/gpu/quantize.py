"""Quantization on the device (quantize.cu): float conversion, the range scan, quantization with
the clamped count, dequantization; and the host side of the parameters (FORMAT.md 6.7)."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from .. import _core
from .loader import BLOCK, blocks, u32, u64


class QuantizeOps:
    """The kernels of quantize.cu (mixed into the device operations, ``pipelines.CupyOps``)."""

    def to_f32(self, x):
        cp = self.cp
        if x.dtype == cp.float32:
            return cp.ascontiguousarray(x)
        x = cp.ascontiguousarray(x)
        out = cp.empty(x.shape, dtype=cp.float32)
        n = int(x.size)
        if n:
            if x.dtype == cp.float64:
                self._k("quantize.cu", "f64_to_f32")((self._grid(n),), (BLOCK,), (x, u64(n), out))
            elif x.dtype == cp.float16:
                self._k("quantize.cu", "f16_to_f32")((self._grid(n),), (BLOCK,), (x.view(cp.uint16), u64(n), out))
            else:
                raise TypeError(f"expected a float array, got {x.dtype}")
        return out

    def minmax(self, x, channels: int, inner: int) -> Tuple[np.ndarray, bool]:
        cp = self.cp
        keys = cp.empty(2 * channels, dtype=cp.uint32)
        keys[0::2] = 0xFFFFFFFF
        keys[1::2] = 0
        flag = cp.zeros(1, dtype=cp.uint32)
        n = int(x.size)
        gy = min(channels, 65535)
        gx = max(1, min(blocks(n // channels, BLOCK), (self.sms * 16) // gy))
        self._k("quantize.cu", "feature_minmax")(
            (gx, gy), (BLOCK,), (x, u64(n), u32(channels), u64(inner), keys, flag)
        )
        return cp.asnumpy(keys), bool(int(flag[0]))

    def quantize(
        self,
        x,
        channels: int,
        inner: int,
        scale: np.ndarray,
        zero_point: np.ndarray,
        bits: int,
        ranges: Optional[np.ndarray],
    ):
        cp = self.cp
        n = int(x.size)
        q = cp.empty(n, dtype=cp.uint8 if bits <= 8 else cp.uint16)
        outside = cp.zeros(1, dtype=cp.uint64)
        flag = cp.zeros(1, dtype=cp.uint32)
        r = cp.asarray(ranges if ranges is not None else np.zeros(2, np.float32))
        kernel = self._k("quantize.cu", "quantize_u8" if bits <= 8 else "quantize_u16")
        kernel(
            (self._grid(n),),
            (BLOCK,),
            (
                x,
                u64(n),
                u32(channels),
                u64(inner),
                cp.asarray(scale),
                cp.asarray(zero_point),
                u32(bits),
                r,
                u32(ranges is not None),
                q,
                outside,
                flag,
            ),
        )
        host = cp.asnumpy(cp.concatenate([outside, flag.astype(cp.uint64)]))
        return q, int(host[0]), bool(host[1])

    def dequantize(self, q, channels: int, inner: int, scale: np.ndarray, zero_point: np.ndarray, bits: int, f64: bool):
        cp = self.cp
        n = int(q.size)
        out = cp.empty(n, dtype=cp.float64 if f64 else cp.float32)
        bad = cp.zeros(1, dtype=cp.uint32)
        if n:
            kernel = self._k("quantize.cu", "dequantize_u8" if q.dtype == cp.uint8 else "dequantize_u16")
            kernel(
                (self._grid(n),),
                (BLOCK,),
                (
                    q,
                    u64(n),
                    u32(channels),
                    u64(inner),
                    cp.asarray(scale),
                    cp.asarray(zero_point),
                    u32(bits),
                    u32(f64),
                    out,
                    bad,
                ),
            )
        return out, bool(int(bad[0]))


def resolve(ops, x, bits: int, channels: int, inner: int, clip, scale, zero_point):
    """Per-channel (scale, zero_point), the range outside which an element counts as clamped
    (None: none can be), and the non-finite flag when already known (rust feature.rs
    resolve_params; FORMAT.md 6.7.2, 6.7.5)."""
    top = (1 << bits) - 1

    def per_channel(n: int, what: str) -> None:
        if n != channels and n != 1:
            raise ValueError(f"{what} has {n} entries, expected 1 or {channels}")

    if scale is not None:
        s, z = list(scale), list(zero_point)  # as splitans.Options normalized them
        if len(s) != len(z):
            raise ValueError("scale and zero_point differ in length")
        per_channel(len(s), "scale/zero_point")
        for sc, zp in zip(s, z):
            if not (math.isfinite(sc) and sc >= 0.0) or zp < 0 or zp > top:
                raise ValueError(
                    f"scale {sc} / zero_point {zp} invalid for {bits} bits (scale finite and >= 0, zero_point in 0..={top})"
                )
        s = [s[min(c, len(s) - 1)] for c in range(channels)]
        z = [z[min(c, len(z) - 1)] for c in range(channels)]
        ranges = []
        with np.errstate(over="ignore", invalid="ignore"):
            for sc, zp in zip(s, z):
                sc32 = np.float32(sc)
                half = sc32 / np.float32(2.0)
                ranges.append(((-np.float32(zp)) * sc32 - half, np.float32(top - zp) * sc32 + half))
        return np.array(s, np.float32), np.array(z, np.int32), np.array(ranges, np.float32).reshape(-1), None
    if clip is not None:
        pairs = [(np.float32(lo), np.float32(hi)) for lo, hi in clip]
        per_channel(len(pairs), "clip")
        for lo, hi in pairs:
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"clip range ({lo}, {hi}) is not finite lo <= hi")
        pairs = [pairs[min(c, len(pairs) - 1)] for c in range(channels)]
        finite = None
        may_clip = True
    else:
        keys, nonfinite = ops.minmax(x, channels, inner)
        pairs = []
        for c in range(channels):
            klo, khi = int(keys[2 * c]), int(keys[2 * c + 1])
            if klo == 0xFFFFFFFF:
                pairs.append((np.float32(0.0), np.float32(0.0)))
            else:
                pairs.append((from_order_key(klo), from_order_key(khi)))
        finite = not nonfinite
        may_clip = nonfinite
    params = [_core.gpu_affine_from_range(float(lo), float(hi), bits) for lo, hi in pairs]
    s = np.array([a[0] for a in params], np.float32)
    z = np.array([a[1] for a in params], np.int32)
    ranges = None
    if may_clip:
        ranges = np.array(
            [(min(lo, np.float32(0.0)), max(hi, np.float32(0.0))) for lo, hi in pairs], np.float32
        ).reshape(-1)
    return s, z, ranges, finite


def from_order_key(k: int) -> np.float32:
    bits = (k & 0x7FFFFFFF) if k & 0x80000000 else (~k & 0xFFFFFFFF)
    return np.array([bits], np.uint32).view(np.float32)[0]


def first_nonfinite(ops, x) -> str:
    xp = ops.xp
    bad = xp.flatnonzero(~xp.isfinite(x.reshape(-1)))
    i = int(ops.to_host(bad[:1])[0])
    v = float(ops.to_host(x.reshape(-1)[i : i + 1])[0])
    return (
        f"input holds NaN or infinity (first at flat index {i}, value {v}); "
        'pass nonfinite="clamp" to map NaN to 0 and infinities to the range ends'
    )
