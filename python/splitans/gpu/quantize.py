"""Quantization on the device (quantize.cu): float conversion, the range scan, quantization with
the clamped count, dequantization; and the host side of the parameters (FORMAT.md 6.7)."""

from __future__ import annotations

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
    (None: none can be), and the non-finite flag when already known: the CPU encoder's
    ``resolve_params`` in Rust (FORMAT.md 6.7.2, 6.7.5), with the data's range scanned on the
    device."""
    finite = None
    if scale is not None:
        # As splitans.Options normalized them: tuples of float32 values and in-range integers.
        resolved = _core.gpu_resolve_params(bits, channels, params=(list(scale), list(zero_point)))
    elif clip is not None:
        resolved = _core.gpu_resolve_params(bits, channels, clip=[(float(lo), float(hi)) for lo, hi in clip])
    else:
        keys, nonfinite = ops.minmax(x, channels, inner)
        pairs = []
        for c in range(channels):
            klo, khi = int(keys[2 * c]), int(keys[2 * c + 1])
            if klo == 0xFFFFFFFF:  # a channel without elements
                pairs.append((0.0, 0.0))
            else:
                pairs.append((float(from_order_key(klo)), float(from_order_key(khi))))
        finite = not nonfinite
        resolved = _core.gpu_resolve_params(bits, channels, min_max=(pairs, finite))
    s, z, ranges = resolved
    return (
        np.array(s, np.float32),
        np.array(z, np.int32),
        None if ranges is None else np.array(ranges, np.float32),
        finite,
    )


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
